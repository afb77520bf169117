"""Training loop: data parallelism, bitwise resume, NaN stop, checkpoint/config checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import only_models, subprocess_env

from jaxrobust.errors import CheckpointMismatchError, ConfigError, NonFiniteLossError
from jaxrobust.evaluate import restore_model
from jaxrobust.train import ModelCheckpoints, build_from_config, checkpoint_dir, train_and_evaluate
from jaxrobust.train.loop import abstract_variables
from jaxrobust.train.optim import build_optimizer
from jaxrobust.workdir import read_metrics

WORKER = Path(__file__).parent / "train_worker.py"


def run_worker(workdir, *args, xla_devices=None, check=True):
    env = subprocess_env()
    if xla_devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={xla_devices}"
    cmd = [sys.executable, str(WORKER), "--workdir", str(workdir), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=check, timeout=600)


def final_state(config, workdir, name):
    """(variables, opt_state) of the last checkpoint, restored onto one device."""
    model, preprocess = build_from_config(config, name)
    checkpoints = ModelCheckpoints(checkpoint_dir(workdir, name))
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    variables = abstract_variables(model, preprocess, config, sharding)
    opt = build_optimizer(config.models[name].training.optimizer.to_dict(), 1)
    opt_state = jax.eval_shape(opt.init, variables["params"])
    opt_state = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), opt_state
    )
    epoch = checkpoints.latest_epoch()
    restored_variables, restored_opt_state, _ = checkpoints.restore_train_state(
        epoch, variables, opt_state
    )
    checkpoints.close()
    return epoch, {"variables": restored_variables, "opt_state": restored_opt_state}


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_resume_after_kill_is_bitwise_identical(synthetic_data, tiny_config, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    epochs = ["models.vae.training.num_epochs=4", "models.classifier.training.num_epochs=4"]
    run_worker(straight, *epochs)
    killed = run_worker(resumed, "--kill-after", "classifier:2", *epochs, check=False)
    assert killed.returncode == -9, killed.stderr  # SIGKILL, mid-run
    assert ModelCheckpoints(checkpoint_dir(resumed, "classifier")).latest_epoch() == 2
    assert not checkpoint_dir(resumed, "vae").exists() or not any(
        checkpoint_dir(resumed, "vae").iterdir()
    )
    run_worker(resumed, *epochs)

    tiny_config.models.vae.training.num_epochs = 4
    tiny_config.models.classifier.training.num_epochs = 4
    for name in ("classifier", "vae"):
        epoch_a, a = final_state(tiny_config, straight, name)
        epoch_b, b = final_state(tiny_config, resumed, name)
        assert epoch_a == epoch_b == 4
        for x, y in zip(
            leaves(a["variables"]) + leaves(a["opt_state"]),
            leaves(b["variables"]) + leaves(b["opt_state"]),
            strict=True,
        ):
            assert x.dtype == y.dtype and np.array_equal(x, y), name
    rows = read_metrics(resumed, "classifier")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["resumed_from_epoch"] == 2 and rows[2]["dropped_rows"] == 0


def test_one_and_four_devices_train_the_same_model(synthetic_data, tiny_config, tmp_path):
    one, four = tmp_path / "one", tmp_path / "four"
    run_worker(one, "--devices", "1", xla_devices=4)
    run_worker(four, "--devices", "4", xla_devices=4)
    for name in ("classifier", "vae"):
        _, a = final_state(tiny_config, one, name)
        _, b = final_state(tiny_config, four, name)
        for x, y in zip(leaves(a["variables"]), leaves(b["variables"]), strict=True):
            np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)
    # The two runs really differ in layout: the 4-device metrics say so through their sharding.
    for r1, r4 in zip(read_metrics(one), read_metrics(four), strict=True):
        np.testing.assert_allclose(r1["val/loss"], r4["val/loss"], rtol=1e-4)


def test_stacked_runs_split_over_devices_train_the_same_models(
    synthetic_data, tiny_config, tmp_path
):
    """4 runs (ensemble members) over 2 devices: the state is split along the run axis (each
    device trains 2 runs, no data parallelism) and the runs equal the single-device ones."""
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["--vae-runs", "4", "models.vae.training.num_epochs=1", "data.train_limit=256"]
    run_worker(one, "--devices", "1", *args, xla_devices=2)
    run_worker(two, "--devices", "2", *args, xla_devices=2)
    row_one, row_two = read_metrics(one)[-1], read_metrics(two)[-1]
    assert row_one["parallelism"] == "data over 1 device(s)"
    assert row_two["parallelism"] == "runs over 2 device(s)"
    np.testing.assert_allclose(row_one["val/loss/runs"], row_two["val/loss/runs"], rtol=1e-4)
    only_models(tiny_config, "vae")
    tiny_config.models.vae.training.num_runs = 4
    _, _, a, _ = restore_model(one, "vae", "last", config=tiny_config)
    _, _, b, _ = restore_model(two, "vae", "last", config=tiny_config)
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(
    synthetic_data, tiny_config, tmp_path
):
    config = only_models(tiny_config, "classifier")
    config.models.classifier.training.num_epochs = 3
    # The learning rate jumps from 1e-3 to 1e27 after the first epoch: the loss overflows.
    config.models.classifier.training.optimizer.update(
        {"name": "sgd", "decay_every_epochs": 1, "decay_factor": 1e30}
    )
    with pytest.raises(NonFiniteLossError, match=r"at step (9|1[0-6]) \(epoch 2") as err:
        train_and_evaluate(config, tmp_path)
    assert "last good checkpoint (epoch 1)" in str(err.value)
    checkpoints = ModelCheckpoints(checkpoint_dir(tmp_path, "classifier"))
    assert checkpoints.epochs() == [1]
    _, _, variables, epoch = restore_model(tmp_path, "classifier", "last", config=config)
    assert epoch == 1
    assert all(np.isfinite(leaf).all() for leaf in leaves(variables))


def test_checkpoint_that_does_not_match_config_is_refused(synthetic_data, tiny_config, tmp_path):
    config = only_models(tiny_config, "vae")
    config.models.vae.training.num_epochs = 1
    train_and_evaluate(config, tmp_path)
    config.models.vae.architecture.latent_dim = 6
    with pytest.raises(CheckpointMismatchError, match=r"encoder/Dense_0/kernel.*\(784, 8\)"):
        restore_model(tmp_path, "vae", config=config)
    # Training again in the same workdir with a different model is refused as well.
    with pytest.raises(ConfigError, match="models.vae.architecture.latent_dim"):
        train_and_evaluate(config, tmp_path)


@pytest.mark.gpu
def test_metrics_log_and_best_checkpoint(synthetic_data, tiny_config, tmp_path):
    config = only_models(tiny_config, "classifier")
    config.models.classifier.training.num_epochs = 3
    train_and_evaluate(config, tmp_path)
    rows = read_metrics(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(r["images_per_second"] > 0 and np.isfinite(r["train/loss"]) for r in rows)
    losses = [r["val/loss"] for r in rows]
    best = int(np.argmin(losses)) + 1
    checkpoints = ModelCheckpoints(checkpoint_dir(tmp_path, "classifier"))
    assert checkpoints.best_epoch() == best
    assert set(checkpoints.epochs()) == {best, 3}  # last and best kept, nothing else
    # The synthetic classes are separable: training must actually learn them.
    assert rows[-1]["val/accuracy"] > 0.9


@pytest.mark.parametrize("mode", ["min", "max"])
def test_checkpoints_keep_exactly_last_and_best(tmp_path, mode):
    values = [5.0, 3.0, 2.0, 6.0, 4.0]
    checkpoints = ModelCheckpoints(tmp_path, best_metric="val/loss", best_mode=mode)
    for epoch, value in enumerate(values, start=1):
        tree = {"w": np.full(2, epoch, np.float32)}
        checkpoints.save(epoch, tree, tree, {"epoch": epoch}, {"val/loss": value})
        checkpoints.wait()
        seen = values[:epoch]
        best = 1 + int(np.argmin(seen) if mode == "min" else np.argmax(seen))
        assert checkpoints.best_epoch() == best
        assert set(checkpoints.epochs()) == {best, epoch}
    checkpoints.close()


def test_workdir_from_before_a_new_config_key_still_resumes(synthetic_data, tiny_config, tmp_path):
    """A key added to the schema later (stored in no old config.json, equal to its default) is
    no difference; a changed value still is."""
    import json

    config = only_models(tiny_config, "vae")
    config.models.vae.training.num_epochs = 1
    train_and_evaluate(config, tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    del stored["data"]["feed"]  # as written before data.feed and compute_dtype existed
    del stored["models"]["vae"]["architecture"]["compute_dtype"]
    (tmp_path / "config.json").write_text(json.dumps(stored))
    config.models.vae.training.num_epochs = 2
    train_and_evaluate(config, tmp_path)
    assert [row["epoch"] for row in read_metrics(tmp_path)] == [1, 2]
    config.models.vae.training.num_epochs = 3
    config.models.vae.architecture.latent_dim = 3
    with pytest.raises(ConfigError, match="latent_dim"):
        train_and_evaluate(config, tmp_path)

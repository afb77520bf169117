"""The command line end to end, on the synthetic stand-in datasets, in separate processes."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
from conftest import TINY_CONFIG, subprocess_env

from jaxrobust.cli import main


def jaxrobust(*args, data_root):
    env = subprocess_env(JAXROBUST_DATA=str(data_root))
    cmd = [sys.executable, "-m", "jaxrobust.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_train_then_evaluate_in_another_process(synthetic_data_root, tmp_path):
    workdir = tmp_path / "run"
    trained = jaxrobust(
        "train",
        "--config",
        str(TINY_CONFIG),
        "--workdir",
        str(workdir),
        "--config.models.vae.training.num_epochs=3",
        data_root=synthetic_data_root,
    )
    assert trained.returncode == 0, trained.stderr
    assert (
        json.loads((workdir / "config.json").read_text())["models"]["vae"]["training"]["num_epochs"]
        == 3
    )

    evaluated = jaxrobust("evaluate", "--workdir", str(workdir), data_root=synthetic_data_root)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "| classifier |" in evaluated.stdout and "| vae/kl | OOD |" in evaluated.stdout

    results = json.loads((workdir / "results.json").read_text())
    assert results["meta"]["checkpoints"] == {"classifier": 2, "vae": 3}
    classifier = results["classification"]["classifier"]
    assert classifier["accuracy"] > 0.9  # the synthetic classes are separable
    assert 0.0 <= classifier["ece"] <= 1.0 and classifier["ece_bins"] == 15
    calibration_keys = {"ece_equal_mass", "classwise_ece", "mce", "brier", "nll"}
    assert calibration_keys <= set(classifier)
    ood = results["ood"]["fashion_mnist->mnist"]
    assert set(ood) == {"vae/elbo", "vae/kl", "classifier/max_softmax"}
    # Uniform noise is far from the dark square images: the ELBO must separate them.
    assert ood["vae/elbo"]["auroc"] > 0.95
    assert ood["vae/elbo"]["mean_in"] > ood["vae/elbo"]["mean_out"]
    detection_keys = {"auroc", "aupr_in", "aupr_out", "fpr80", "fpr95"}
    assert detection_keys <= set(ood["vae/kl"]) and ood["vae/kl"]["positive"] == "in"
    markdown = (workdir / "results.md").read_text()
    assert "## OOD detection: fashion_mnist (in) vs mnist (out)" in markdown
    assert "| AUROC (%) | AUPR-in (%) | AUPR-out (%) | FPR@80 (%) | FPR@95 (%) |" in markdown
    assert "| classwise ECE (%) |" in markdown
    plots = sorted(p.name for p in (workdir / "plots").iterdir())
    assert "roc_fashion_mnist_vs_mnist.png" in plots
    assert "reliability_classifier.png" in plots
    assert sum(name.startswith("hist_") for name in plots) == 3
    assert all((workdir / "plots" / name).read_bytes()[:4] == b"\x89PNG" for name in plots)


def test_evaluate_with_a_mismatched_config_fails_clearly(synthetic_data_root, tmp_path):
    workdir = tmp_path / "run"
    args = [
        "--config.models.vae.training.num_epochs=1",
        "--config.models.classifier.training.num_epochs=1",
    ]
    trained = jaxrobust(
        "train",
        "--config",
        str(TINY_CONFIG),
        "--workdir",
        str(workdir),
        *args,
        data_root=synthetic_data_root,
    )
    assert trained.returncode == 0, trained.stderr
    evaluated = jaxrobust(
        "evaluate",
        "--workdir",
        str(workdir),
        "--config",
        str(TINY_CONFIG),
        "--config.models.classifier.architecture.network=resnet18",
        data_root=synthetic_data_root,
    )
    assert evaluated.returncode == 1
    assert "does not match the model the config builds" in evaluated.stderr
    assert "Traceback" not in evaluated.stderr


def test_cli_errors_name_the_problem(synthetic_data, tmp_path, capsys):
    assert main(["evaluate", "--workdir", str(tmp_path)]) == 1
    assert "not a jaxrobust training directory" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--config",
                str(TINY_CONFIG),
                "--workdir",
                str(tmp_path),
                "--config.models.vae.architecture.latent_dimension=3",
            ]
        )
        == 1
    )
    assert (
        "Unknown config key 'models.vae.architecture.latent_dimension'" in capsys.readouterr().err
    )
    assert main(["data", "fetch", "not_a_dataset"]) == 1
    assert "Known datasets" in capsys.readouterr().err


def test_data_list_shows_the_cache(synthetic_data, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert str(synthetic_data) in out
    assert "fashion_mnist" in out and "synthetic" in out and "512" in out


def test_help_documents_each_command(capsys):
    for command in (["train"], ["evaluate"], ["data", "fetch"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        assert "usage: jaxrobust" in capsys.readouterr().out


# --- the error surface: one message and an exit status, never a raw traceback ---------------


def _train_args(workdir, *extra):
    return ["train", "--config", str(TINY_CONFIG), "--workdir", str(workdir), *extra]


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err, err


def test_a_workdir_that_is_a_file_is_refused(synthetic_data, tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.write_text("not a directory")
    assert main(_train_args(workdir)) == 1
    err = capsys.readouterr().err
    _no_traceback(err)
    assert str(workdir) in err and "--workdir" in err
    assert workdir.read_text() == "not a directory"


def test_a_workdir_below_a_file_is_refused(synthetic_data, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    workdir = tmp_path / "file" / "run"
    assert main(_train_args(workdir)) == 1
    err = capsys.readouterr().err
    _no_traceback(err)
    assert str(tmp_path / "file") in err and "--workdir" in err


def test_a_read_only_workdir_is_refused_with_the_fix(synthetic_data, tmp_path, capsys, monkeypatch):
    workdir = tmp_path / "run"
    workdir.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: simulate what a read-only directory raises
        import jaxrobust.train

        def read_only(config, workdir, **kwargs):
            path = os.path.join(workdir, "config.json")
            raise PermissionError(errno.EACCES, "Permission denied", path)

        monkeypatch.setattr(jaxrobust.train, "train_and_evaluate", read_only)
    else:
        workdir.chmod(0o555)
    try:
        assert main(_train_args(workdir)) == 1
    finally:
        workdir.chmod(0o755)
    err = capsys.readouterr().err
    _no_traceback(err)
    assert str(workdir) in err and "writable" in err and "--workdir" in err


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_full_disk_is_reported_with_the_path_and_the_fix(tmp_path, capsys, monkeypatch, command):
    import jaxrobust.evaluate
    import jaxrobust.train
    from jaxrobust.config import load_config, save_config

    workdir = tmp_path / "run"
    save_config(load_config(TINY_CONFIG), workdir)  # a trained workdir's config.json

    def full_disk(*args, **kwargs):
        path = os.path.join(workdir, "results.json" if command == "evaluate" else "metrics.jsonl")
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(jaxrobust.train, "train_and_evaluate", full_disk)
    monkeypatch.setattr(jaxrobust.evaluate, "evaluate", full_disk)
    args = _train_args(workdir) if command == "train" else ["evaluate", "--workdir", str(workdir)]
    assert main(args) == 1
    err = capsys.readouterr().err
    _no_traceback(err)
    assert f"jaxrobust {command}: error: No space left on device: {workdir}" in err
    assert "Free space" in err and "rerun the same command" in err


def test_a_workdir_error_is_shown_as_its_message(tmp_path, capsys, monkeypatch):
    import jaxrobust.train
    from jaxrobust.errors import WorkdirError

    def locked(*args, **kwargs):
        raise WorkdirError(f"Cannot write {tmp_path}/x: disk full. Fix: free space.")

    monkeypatch.setattr(jaxrobust.train, "train_and_evaluate", locked)
    assert main(_train_args(tmp_path / "run")) == 1
    err = capsys.readouterr().err
    _no_traceback(err)
    assert f"jaxrobust train: error: Cannot write {tmp_path}/x: disk full. Fix: free space." in err


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    import jaxrobust.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxrobust.train, "train_and_evaluate", interrupted)
    try:
        status = main(_train_args(tmp_path / "run"))
    except KeyboardInterrupt:  # (caught here: escaping, it would stop the whole pytest run)
        pytest.fail("KeyboardInterrupt escaped jaxrobust.cli.main with a traceback")
    assert status == 130
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "interrupted; rerun the same command to resume" in err


def test_a_bug_shows_its_traceback_and_how_to_report_it(tmp_path, capsys, monkeypatch):
    import jaxrobust.train

    def bug(*args, **kwargs):
        raise RuntimeError("an internal invariant broke")

    monkeypatch.setattr(jaxrobust.train, "train_and_evaluate", bug)
    assert main(_train_args(tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: an internal invariant broke" in err
    assert err.strip().splitlines()[-1].startswith("jaxrobust train: error: unexpected error")
    assert "please report it" in err


def test_a_workdir_config_json_is_a_valid_config_file(
    synthetic_data, tmp_path, capsys, monkeypatch
):
    import jaxrobust.train
    from jaxrobust.config import config_to_dict, load_config, save_config

    stored = save_config(load_config(TINY_CONFIG), tmp_path / "old")
    seen = {}

    def record(config, workdir, **kwargs):
        seen["config"] = config
        return {}

    monkeypatch.setattr(jaxrobust.train, "train_and_evaluate", record)
    args = ["train", "--config", str(stored), "--workdir", str(tmp_path / "new")]
    assert main([*args, "--config.models.vae.training.num_epochs=3"]) == 0
    _no_traceback(capsys.readouterr().err)
    assert seen["config"].models.vae.training.num_epochs == 3
    expected = config_to_dict(load_config(TINY_CONFIG, ["models.vae.training.num_epochs=3"]))
    assert config_to_dict(seen["config"]) == expected


@pytest.mark.parametrize(
    "body, match",
    [
        ("def get_config():\n    return None\n", "got NoneType"),
        ("def get_config():\n    raise RuntimeError('boom')\n", "raised RuntimeError: boom"),
        ("import no_such_module_anywhere\n", "failed to import: ModuleNotFoundError"),
    ],
)
def test_a_broken_config_file_is_named(tmp_path, capsys, body, match):
    path = tmp_path / "broken.py"
    path.write_text(body)
    assert main(["train", "--config", str(path), "--workdir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    _no_traceback(err)
    assert str(path) in err and match in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["train", "--config", "x.py"],  # no --workdir
        ["train", "--config", "x.py", "--workdir", "w", "--config.seed"],  # no value
        ["train", "--config", "x.py", "--workdir", "w", "--config..seed=1"],  # empty key part
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "usage: jaxrobust" in err
    _no_traceback(err)

"""Files beside the checkpoints survive kills and full disks: metrics.jsonl rows (atomic, one per
(model, epoch), partial tails repaired), plots (renamed when complete), results.json/results.md
/plots committed as one generation, config.json provenance, filesystem errors translated."""

from __future__ import annotations

import builtins
import errno
import importlib.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib.figure
import ml_collections
import pytest
from conftest import TINY_CONFIG, only_models, subprocess_env

import jaxrobust
from jaxrobust.config import load_config
from jaxrobust.evaluate import evaluate
from jaxrobust.train import ModelCheckpoints, train_and_evaluate

try:  # new in issue 13; the fallbacks let these tests run (and fail) on the code before it
    from jaxrobust.errors import WorkdirError
except ImportError:  # pragma: no cover

    class WorkdirError(Exception):
        pass


ROOT = Path(jaxrobust.__file__).resolve().parents[1]  # the checkout under test


class Killed(BaseException):
    """Stands for SIGKILL inside the process (the files on disk are what a kill leaves)."""


def tiny_classifier(epochs: int) -> ml_collections.ConfigDict:
    config = only_models(load_config(TINY_CONFIG), "classifier")
    config.models.classifier.training.num_epochs = epochs
    return config


def eval_config() -> ml_collections.ConfigDict:
    """The classifier's evaluation without the OOD task (one pass, one plot: fast)."""
    config = tiny_classifier(3)
    del config.evaluate["ood"]
    return config


def raw_rows(workdir: Path) -> list[dict]:
    """Every line of metrics.jsonl parsed strictly (a glued or partial line fails)."""
    text = (workdir / "metrics.jsonl").read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def copy_workdir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_env(synthetic_data_root):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAXROBUST_DATA", str(synthetic_data_root))
        yield synthetic_data_root


@pytest.fixture(scope="module")
def killed_at_epoch_3(data_env, tmp_path_factory) -> Path:
    """A classifier workdir whose run was killed after logging epoch 3, before its checkpoint:
    checkpoints 1 and 2, metrics rows 1, 2 and 3."""
    workdir = tmp_path_factory.mktemp("killed") / "run"
    original = ModelCheckpoints.save

    def save(self, epoch, *args, **kwargs):
        if epoch == 3:
            raise Killed
        return original(self, epoch, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ModelCheckpoints, "save", save)
        with pytest.raises(Killed):
            train_and_evaluate(tiny_classifier(3), workdir)
    assert [r["epoch"] for r in raw_rows(workdir)] == [1, 2, 3]
    return workdir


@pytest.fixture(scope="module")
def evaluated(killed_at_epoch_3, tmp_path_factory) -> Path:
    """A trained classifier workdir (the one above), evaluated once."""
    workdir = copy_workdir(killed_at_epoch_3, tmp_path_factory.mktemp("evaluated") / "run")
    evaluate(workdir, eval_config())
    return workdir


# ---------------------------------------------------------------------------- metrics.jsonl


def test_killed_epoch_rows_are_repaired_and_logged_once_with_the_resume_recorded(
    killed_at_epoch_3, tmp_path
):
    """Killed between epoch 3's row and its checkpoint, then resumed and killed again in the
    middle of appending row 3: the next run must neither glue its row onto the partial one nor
    keep two rows of epoch 3."""
    workdir = copy_workdir(killed_at_epoch_3, tmp_path / "run")
    path = workdir / "metrics.jsonl"
    killed_row = raw_rows(workdir)[-1]
    with open(path, "ab") as f:
        f.write(json.dumps(killed_row).encode()[:40])  # half a row, no newline
    with pytest.warns(UserWarning, match="partial"):
        train_and_evaluate(tiny_classifier(4), workdir)
    rows = raw_rows(workdir)
    assert [(r["model"], r["epoch"]) for r in rows] == [("classifier", e) for e in (1, 2, 3, 4)]
    assert rows[2]["resumed_from_epoch"] == 2 and rows[2]["dropped_rows"] == 1
    assert rows[2]["dropped_epoch_seconds"] == pytest.approx(killed_row["epoch_seconds"])
    assert "resumed_from_epoch" not in rows[3]


def test_resume_with_fewer_epochs_is_refused_and_config_json_kept(killed_at_epoch_3, tmp_path):
    workdir = copy_workdir(killed_at_epoch_3, tmp_path / "run")
    before = (workdir / "config.json").read_bytes()
    with pytest.raises(ValueError, match=r"trained to epoch 2.*num_epochs >= 2") as err:
        train_and_evaluate(tiny_classifier(1), workdir)
    assert type(err.value).__name__ == "ConfigError"
    assert "evaluate.checkpoint=" in str(err.value) and "'classifier'" in str(err.value)
    assert (workdir / "config.json").read_bytes() == before


def test_experiment_readers_tolerate_a_partial_last_line(tmp_path):
    rows = [
        {"model": "cnn", "epoch": 1, "epoch_seconds": 2.0, "compile_seconds": 1.0},
        {"model": "cnn", "epoch": 2, "epoch_seconds": 3.0, "val/accuracy": 0.5},
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"model": "cnn", "epoch": 3, "ep'
    (tmp_path / "metrics.jsonl").write_text(text)
    result = {"meta": {"seconds": 4.0}}
    with pytest.warns(UserWarning, match="partial"):
        negative = load_script(ROOT / "experiments" / "negative_sampling" / "run_all.py")
        assert negative.wall_and_epochs(tmp_path, result) == (10.0, 2)
    with pytest.warns(UserWarning, match="partial"):
        bayesian = load_script(ROOT / "experiments" / "bayesian_vae" / "run_all.py")
        assert bayesian.wall_seconds(tmp_path, result) == 10.0
    training = {
        "num_epochs": 2,
        "batch_size": 64,
        "optimizer": {"name": "adam"},
        "adversarial_training": None,
    }
    config = ml_collections.ConfigDict({"models": {"cnn": {"training": training}}})
    with pytest.warns(UserWarning, match="partial"):
        curve = load_script(ROOT / "experiments" / "attacks" / "robustness_curve.py")
        summary = curve.training_summary(config, tmp_path)
    assert summary["train_seconds"] == 5.0 and summary["final_clean_val_accuracy"] == 0.5


def test_jsonl_helpers_repair_recover_and_reconcile(tmp_path):
    from jaxrobust.workdir import (
        PartialLineWarning,
        append_jsonl,
        read_jsonl,
        read_metrics,
        reconcile_metrics,
    )

    path = tmp_path / "metrics.jsonl"
    # What the code before issue 13 left: a partial row with the next one glued onto it.
    path.write_text('{"model": "a", "epoch": 1}\n{"model": "a", "ep{"model": "a", "epoch": 2}\n')
    with pytest.warns(PartialLineWarning, match=r"damaged line\(s\) \['2 \(whole row"):
        assert [r["epoch"] for r in read_jsonl(path)] == [1, 2]
    path.write_text('{"model": "a", "epoch": 1}\n{"model": "a", "epoch": 2}\n{"mo')
    with pytest.warns(PartialLineWarning, match="partial line"):
        append_jsonl(path, {"model": "a", "epoch": 3})
    assert path.read_text().splitlines()[-1] == '{"model": "a", "epoch": 3}'
    for row in ({"model": "b", "epoch": 1}, {"model": "a", "epoch": 2}, {"model": "a", "epoch": 4}):
        append_jsonl(path, row)
    dropped = reconcile_metrics(tmp_path, "a", 2)  # epoch 2 twice, 3 and 4 not checkpointed
    assert [r["epoch"] for r in dropped] == [2, 3, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [(r["model"], r["epoch"]) for r in read_metrics(tmp_path)] == [
            ("a", 1),
            ("b", 1),
            ("a", 2),
        ]
    assert read_metrics(tmp_path, "b") == [{"model": "b", "epoch": 1}]


def test_append_on_a_full_disk_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    from jaxrobust.workdir import append_jsonl

    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"epoch": 1})
    before = path.read_bytes()
    real_write = os.write

    def short_write(fd, data):  # the disk fills after 5 bytes
        return real_write(fd, data[:5])

    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(WorkdirError, match="no space left.*Fix: free disk space"):
        append_jsonl(path, {"epoch": 2, "loss": 0.5})
    monkeypatch.undo()
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------- plots


def fake_savefig_then(action):
    def savefig(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"\x89PNG\r\n")  # the first bytes, then the process dies
        action()

    return savefig


def test_plot_interrupted_mid_write_leaves_no_partial_png(tmp_path, monkeypatch):
    from jaxrobust.metrics import plots

    def fail():
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", fake_savefig_then(fail))
    target = tmp_path / "plots" / "rel.png"
    with pytest.raises(OSError, match="(?i)no space left"):
        plots.plot_robustness_curves({"fgsm": ([0.0, 0.1], [0.9, 0.5])}, "t", target)
    assert files_under(tmp_path) == ["plots"]  # neither the PNG nor its temporary file


def test_plot_killed_mid_write_leaves_no_png(tmp_path):
    target = tmp_path / "plots" / "roc.png"
    script = f"""
import os, signal
from pathlib import Path
import matplotlib.figure
import numpy as np
from jaxrobust.metrics import plots

def savefig(self, fname, *args, **kwargs):
    Path(fname).write_bytes(b"")  # matplotlib opens (truncates) the file, then is killed
    os.kill(os.getpid(), signal.SIGKILL)

matplotlib.figure.Figure.savefig = savefig
curve = (np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0.5)
plots.plot_roc_curves({{"s": curve}}, "ROC", Path({str(target)!r}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env(), capture_output=True, timeout=300
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not target.exists()  # no 0-byte roc.png (a hidden temporary file may remain)


# ---------------------------------------------------------------------------- generations


def generation_of(workdir: Path) -> tuple[int, str]:
    results = json.loads((workdir / "results.json").read_text())
    return results["meta"]["generation"], (workdir / "results.md").read_text()


def test_evaluation_results_are_one_generation(evaluated, tmp_path):
    workdir = copy_workdir(evaluated, tmp_path / "run")
    assert generation_of(workdir)[0] == 1
    evaluate(workdir, eval_config())
    generation, markdown = generation_of(workdir)
    assert generation == 2 and "Folder: evaluations/2." in markdown
    for name in ("results.json", "results.md", "plots"):
        assert (workdir / name).is_symlink()
        assert (workdir / name).resolve() == (workdir / "evaluations" / "2" / name).resolve()
    assert (workdir / "plots" / "reliability_classifier.png").read_bytes()[:4] == b"\x89PNG"
    evaluate(workdir, eval_config())
    assert generation_of(workdir)[0] == 3
    assert sorted(p.name for p in (workdir / "evaluations").iterdir()) == ["2", "3", "current"]


def snapshot(workdir: Path) -> dict:
    plots = workdir / "plots"
    return {
        "results.json": (workdir / "results.json").read_bytes(),
        "results.md": (workdir / "results.md").read_bytes(),
        "plots": {p.name: p.read_bytes() for p in sorted(plots.iterdir())},
    }


def no_temporaries(workdir: Path) -> list[str]:
    return [name for name in files_under(workdir) if ".tmp" in name]


def test_full_disk_between_the_result_files_keeps_the_previous_generation(
    evaluated, tmp_path, monkeypatch
):
    workdir = copy_workdir(evaluated, tmp_path / "run")
    before = snapshot(workdir)
    real_open = builtins.open

    def full_disk_open(file, mode="r", *args, **kwargs):
        name = os.path.basename(os.fspath(file)) if isinstance(file, (str, os.PathLike)) else ""
        if "results" in name and ".md" in name and any(c in mode for c in "wax"):
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk_open)
    monkeypatch.setattr(io, "open", full_disk_open)
    with pytest.raises(WorkdirError, match=r"results\.md.*Fix: free disk space"):
        evaluate(workdir, eval_config())
    monkeypatch.undo()
    assert snapshot(workdir) == before  # results.json, results.md, plots: all the old ones
    assert no_temporaries(workdir) == []


def test_full_disk_while_plotting_keeps_the_previous_generation(evaluated, tmp_path, monkeypatch):
    workdir = copy_workdir(evaluated, tmp_path / "run")
    before = snapshot(workdir)

    def fail():
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", fake_savefig_then(fail))
    with pytest.raises(WorkdirError, match=r"\.png.*Fix: free disk space"):
        evaluate(workdir, eval_config())
    monkeypatch.undo()
    assert snapshot(workdir) == before
    assert no_temporaries(workdir) == []


def test_old_layout_is_migrated_to_generations(evaluated, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(evaluated, workdir, symlinks=True)
    for name in ("results.json", "results.md", "plots", "evaluations"):
        path = workdir / name
        if not (path.exists() or path.is_symlink()):
            continue
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)
    (workdir / "results.json").write_text('{"old": true}\n')  # what the code before wrote
    (workdir / "results.md").write_text("# old\n")
    (workdir / "plots").mkdir()
    (workdir / "plots" / "old.png").write_bytes(b"\x89PNG old")
    evaluate(workdir, eval_config())
    generation, markdown = generation_of(workdir)
    assert generation == 2 and "Folder: evaluations/2." in markdown
    assert (workdir / "plots").is_symlink() and not (workdir / "plots" / "old.png").exists()
    assert (workdir / "evaluations" / "1" / "results.json").read_text() == '{"old": true}\n'
    assert (workdir / "evaluations" / "1" / "plots" / "old.png").is_file()


# ---------------------------------------------------------------------------- filesystem errors


def test_workdir_that_is_a_file_is_refused(data_env, tmp_path):
    path = tmp_path / "run"
    path.write_text("not a directory")
    with pytest.raises(WorkdirError, match=r"run is a file.*Fix: choose another --workdir"):
        train_and_evaluate(tiny_classifier(1), path)
    with pytest.raises(WorkdirError, match="run is a file"):
        evaluate(path, tiny_classifier(1))
    assert path.read_text() == "not a directory"


class read_only:
    """Make ``path`` read-only: chmod for a normal user; as root (which chmod does not stop),
    the immutable attribute, or else EROFS injected into every write under ``path``."""

    def __init__(self, path: Path, monkeypatch):
        self.path, self.monkeypatch, self.undo = path, monkeypatch, None

    def __enter__(self):
        if os.geteuid() != 0:
            mode = self.path.stat().st_mode
            self.path.chmod(0o555)
            self.undo = lambda: self.path.chmod(mode)
            return self
        done = subprocess.run(["chattr", "+i", str(self.path)], capture_output=True)
        if done.returncode == 0:
            self.undo = lambda: subprocess.run(["chattr", "-i", str(self.path)], check=True)
            return self
        root = str(self.path.resolve())
        real_open, real_os_open = builtins.open, os.open

        def inside(file) -> bool:
            return isinstance(file, (str, os.PathLike)) and os.path.abspath(file).startswith(root)

        def fail(file):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(file))

        def guarded_open(file, mode="r", *args, **kwargs):
            if inside(file) and any(c in mode for c in "wax+"):
                fail(file)
            return real_open(file, mode, *args, **kwargs)

        def guarded_os_open(file, flags, *args, **kwargs):
            if inside(file) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                fail(file)
            return real_os_open(file, flags, *args, **kwargs)

        self.monkeypatch.setattr(builtins, "open", guarded_open)
        self.monkeypatch.setattr(io, "open", guarded_open)
        self.monkeypatch.setattr(os, "open", guarded_os_open)
        self.undo = self.monkeypatch.undo
        return self

    def __exit__(self, *exc):
        self.undo()


def test_read_only_workdir_is_refused_before_training(data_env, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    workdir.mkdir()
    with read_only(workdir, monkeypatch):
        with pytest.raises(WorkdirError, match=r"(?i)(read-only|permission).*Fix: "):
            train_and_evaluate(tiny_classifier(1), workdir)
    assert files_under(workdir) == []  # refused before anything was trained or written


def test_read_only_workdir_is_refused_by_evaluate(evaluated, tmp_path, monkeypatch):
    workdir = copy_workdir(evaluated, tmp_path / "run")
    before = snapshot(workdir)
    with read_only(workdir, monkeypatch):
        with pytest.raises(WorkdirError, match=r"(?i)(read-only|permission).*Fix: "):
            evaluate(workdir, eval_config())
    assert snapshot(workdir) == before

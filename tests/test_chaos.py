"""The chaos harness (tools/chaos.py): a 3-trial run that kills training and evaluation and
compares every artifact bitwise with an uninterrupted run, and its detectors on damaged inputs.

The 3-trial run uses the smallest target (``runs``: one tiny CNN, R = 3 stacked runs). Its first
trial sends SIGKILL right after a ``metrics.jsonl`` row is appended, which on main before issue 13
left that epoch logged twice (a row without a checkpoint, then the resumed run's row); the second
and third send SIGINT and SIGTERM. ``python tools/chaos.py --trials 20`` covers every target.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))

import chaos  # noqa: E402

from jaxrobust.evaluate import results_markdown  # noqa: E402


def test_three_trials_resume_to_bitwise_equal_artifacts(synthetic_data, tmp_path):
    out = tmp_path / "chaos.json"
    argv = ["--trials", "3", "--seed", "0", "--targets", "runs", "--workdir",
            str(tmp_path / "chaos"), "--out", str(out), "--train-kills", "1-1",
            "--eval-kills", "1-1", "--data", str(synthetic_data)]  # fmt: skip
    code = chaos.main(argv)
    report = json.loads(out.read_text())
    problems = [(t["trial"], t["failures"], t["differences"]) for t in report["trials"]]
    assert code == 0 and report["all_equal"], problems
    trials = report["trials"]
    assert len(trials) == 3 and {t["target"] for t in trials} == {"runs"}
    # Trials resumed; each compared checkpoint arrays, metrics rows, config and results.
    assert sum(t["resumes"] for t in trials) >= 2
    assert all(t["arrays_compared"] > 0 for t in trials)
    assert all(t["artifacts_compared"] >= 10 for t in trials)
    planned = [k["plan"] for t in trials for k in t["kills"]]
    assert {p["signal"] for p in planned} >= {"KILL", "INT", "TERM"}
    assert {p["mode"] for p in planned if "skip" in p} >= {"log", "checkpoint"}
    # Kills actually landed (a planned kill may find the process already finished).
    assert sum(t["train_kills"] for t in trials) >= 2
    assert sum(t["evaluate_kills"] for t in trials) >= 1
    # The first trial's SIGKILL landed right after a metrics row was appended.
    first = trials[0]["kills"][0]
    assert first["plan"] == {**first["plan"], "mode": "log", "signal": "KILL"}
    assert "fired" in first and first["returncode"] == -9


# --- the detectors, on hand-made damage (no training) ----------------------------------------


def _results(workdir: Path, epoch: int, png: bytes) -> None:
    """Result files as an evaluation of checkpoint ``epoch`` writes them (md rendered from json)."""
    workdir.mkdir(parents=True, exist_ok=True)
    meta = {"device": "cpu", "seconds": 1.0 + epoch, "checkpoints": {"m": epoch}}
    results = {"experiment": "x", "meta": meta}
    (workdir / "results.json").write_text(json.dumps(results))
    (workdir / "results.md").write_text(results_markdown(results) + "\n")
    (workdir / "plots").mkdir(exist_ok=True)
    (workdir / "plots" / "roc.png").write_bytes(png)


def test_result_checks_catch_mixed_generations_and_half_written_plots(tmp_path):
    png_a = chaos.PNG_HEAD + b"a" * 20 + chaos.PNG_TAIL
    png_b = chaos.PNG_HEAD + b"b" * 20 + chaos.PNG_TAIL
    _results(tmp_path / "old", 1, png_a)
    _results(tmp_path / "new", 2, png_b)
    generations = {
        "decoy": chaos.evaluation_artifacts(tmp_path / "old"),
        "reference": chaos.evaluation_artifacts(tmp_path / "new"),
    }
    assert chaos.check_results(tmp_path / "old", generations) == ("decoy", [])
    assert chaos.check_results(tmp_path / "new", generations) == ("reference", [])
    # A new results.json beside an old results.md (a kill between the two renames).
    mixed = tmp_path / "mixed"
    _results(mixed, 1, png_a)
    (mixed / "results.json").write_text((tmp_path / "new" / "results.json").read_text())
    _, problems = chaos.check_results(mixed, generations)
    assert any("not the rendering of results.json" in p for p in problems)
    # A 0-byte plot, a truncated one, and a missing results.md.
    (mixed / "plots" / "roc.png").write_bytes(b"")
    (mixed / "plots" / "hist.png").write_bytes(png_b[:-5])
    (mixed / "results.md").unlink()
    _, problems = chaos.check_results(mixed, generations)
    assert "only results.json exists" in problems
    assert sum("not a whole PNG" in p for p in problems) == 2
    # The final comparison: the timing/device fields are ignored, the numbers are not.
    same = chaos.compare_artifacts(
        generations["reference"], chaos.evaluation_artifacts(tmp_path / "new")
    )
    assert same[2] == []
    _, _, differences = chaos.compare_artifacts(generations["reference"], generations["decoy"])
    assert any(d.startswith("results.json") for d in differences)


def test_artifact_comparison_catches_duplicate_rows_and_changed_arrays(tmp_path):
    import orbax.checkpoint as ocp

    def workdir(name: str, rows: list[dict], weight: np.ndarray) -> Path:
        w = tmp_path / name
        (w / "checkpoints" / "m").mkdir(parents=True)
        (w / "config.json").write_text(json.dumps({"seed": 0, "created": name}))
        (w / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save((w / "checkpoints" / "m" / "1" / "variables").absolute(),
                              {"params": {"w": weight}})  # fmt: skip
        return w

    row = {"model": "m", "epoch": 1, "train/loss": 0.5, "epoch_seconds": 0.1}
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    reference = chaos.training_artifacts(workdir("ref", [row], weight))
    timing_only = workdir(
        "timing", [{**row, "epoch_seconds": 9.0, "resumed_from_epoch": 0}], weight
    )
    compared, arrays, differences = chaos.compare_artifacts(
        reference, chaos.training_artifacts(timing_only)
    )
    assert differences == [] and arrays == 1 and compared == 3
    flipped = weight.copy()
    flipped.view(np.uint32)[0, 0] ^= 1  # one bit of one weight
    damaged = workdir("damaged", [row, row], flipped)
    (damaged / "metrics.jsonl").write_text((damaged / "metrics.jsonl").read_text() + '{"mod')
    _, _, differences = chaos.compare_artifacts(reference, chaos.training_artifacts(damaged))
    text = "\n".join(differences)
    assert "2 rows (one expected)" in text
    assert "array differs" in text and "checkpoints/m/1/variables" in text
    assert "does not end with a newline" in text and "is not JSON" in text


@pytest.mark.parametrize("target", chaos.TARGETS)
def test_every_target_config_resolves(target):
    from jaxrobust.config import load_config

    config = load_config(chaos.CONFIGS / f"{target}.py")
    assert config.models and config.progress is False


def test_doctests_of_the_harness():
    import doctest

    assert doctest.testmod(chaos).failed == 0


def test_fuzz_report_table_counts_every_outcome():
    """tools/fuzz_report.py renders the fuzz counters RELIABILITY.md shows; a traceback or a
    NaN result must show up in its columns (and its doctest)."""
    import doctest

    import fuzz_report

    assert doctest.testmod(fuzz_report).failed == 0
    entry = {
        "examples_per_property": 1,
        "cases": 4,
        "totals": {},
        "classes": {"x": {"ok": 1, "refused": 1, "traceback": 1, "nan_result": 1}},
    }
    row = fuzz_report.fuzz_table({"m": entry}).splitlines()[2]
    assert row == "| m | x | 4 | 1 | 1 | 0 | 1 | 1 |"

"""The GPU suite (tools/gpu/) cannot rot: its driver, and its smoke run on the CPU.

- The driver (fake steps, seconds): a step past its time box is killed and recorded as timed
  out, its workloads still listed with that status, and the steps after it run; what a step
  wrote is kept; ratios are recomputed from the figures; at most 8 output files.
- The smoke run (``tools/gpu/run.sh OUT --smoke``, slow): every workload of the GPU suite in
  the JSON with jaxrobust's and a peer's figures (torchattacks' only where it imports), ratios
  equal to the quotients of those figures, one markdown table per workload, device, versions and
  today's date in both files; and a real step given a tiny box through
  ``$JAXROBUST_SUITE_BOXES`` times out while the next one still runs.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(TOOLS / "gpu"))

import bench_report  # noqa: E402
import suite  # noqa: E402

#: Every workload of the GPU suite (issue 14), by the JSON key its step writes.
WORKLOADS = (
    "train_vae",
    "train_resnet18",
    "train_resnet18_bf16",
    "iwae",
    "posterior",
    "ensemble",
    "pgd",
    "cw",
    "metrics",
)
MAX_OUTPUT_FILES = 8


def check_outputs(out: Path) -> list[Path]:
    """At most 8 plain files, no deeper than 2 folders below ``out``."""
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 0 < len(files) <= MAX_OUTPUT_FILES, files
    assert all(len(p.relative_to(out).parts) <= 3 for p in files)
    return files


def fake_step(name: str, code: str, workloads=(), box: float = 30.0) -> suite.Step:
    return suite.Step(
        name,
        [sys.executable, "-c", code],
        {"smoke": box},
        tuple(workloads),
        {w: f"title of {w}" for w in workloads},
        bench=False,
    )


WRITER = """
import json, sys
sys.path.insert(0, {tools!r})
import bench_report as b
figs = {{"jaxrobust": b.figure("ours", [1.0, 2.0, 3.0], 30, side="jaxrobust"),
        "pytorch": b.figure("theirs", [4.0], 20, side="pytorch")}}
rec = b.workload_record("Made up", "images/s", figs, [b.ratio_spec("jaxrobust", "pytorch",
                        target=1.5, name="ours / theirs")])
rec["ratios"][0]["value"] = 123.0  # a wrong value: the driver must recompute it
b.atomic_write_json({path!r}, {{"environment": {{}}, "workloads": {{"made_up": rec}}}})
"""


def test_driver_times_out_a_step_and_runs_the_next(tmp_path):
    out = tmp_path / "out"
    runner = suite.Suite(out, "smoke", "cpu", 60.0, {}, "never", "test")
    # The bench protocol is not used here: each fake step writes its JSON where the driver looks.
    steps = [
        fake_step(
            "first",
            WRITER.format(tools=str(TOOLS), path=str(runner.scratch / "first.json")),
            ["made_up"],
        ),
        fake_step(
            "slow",
            "import time; print('working', flush=True); time.sleep(60)",
            ["never_done"],
            box=1.0,
        ),  # fmt: skip
        fake_step("after", "print('after ran')", ["not_written"]),
    ]
    tic = __import__("time").monotonic()
    results = runner.run(steps)
    assert __import__("time").monotonic() - tic < 30  # the sleeping step was killed at its box
    assert [results["steps"][s]["status"] for s in ("first", "slow", "after")] == [
        "ok",
        "timed_out",
        "ok",
    ]
    made_up = results["workloads"]["made_up"]
    spec = made_up["ratios"][0]
    assert spec["value"] == pytest.approx((30 / 2.0) / (20 / 4.0))  # medians 2 s and 4 s
    assert spec["met"] is True  # 3.0 >= 1.5
    assert results["workloads"]["never_done"]["status"] == "step slow timed out"
    assert results["workloads"]["not_written"]["status"] == "step after not written"
    check_outputs(out)
    on_disk = json.loads((out / "gpu_suite.json").read_text())
    assert on_disk["finished"] and on_disk["steps"]["slow"]["status"] == "timed_out"
    text = (out / "gpu_suite.md").read_text()
    assert "## Made up" in text and "**3.00x** (met)" in text
    assert "## title of never_done" in text and "step slow timed out" in text
    log = (out / "gpu_suite.log").read_text()
    assert "working" in log and "after ran" in log


def test_deadline_skips_the_steps_it_cannot_start(tmp_path):
    runner = suite.Suite(tmp_path / "out", "smoke", "cpu", 3.0, {}, "never", "test")
    steps = [
        fake_step("sleeps", "import time; time.sleep(30)", box=30.0),
        fake_step("late", "print('never')", ["late_workload"]),
    ]
    results = runner.run(steps)
    assert results["steps"]["sleeps"]["status"] == "skipped"  # 3 s deadline - 5 s reserve
    assert results["steps"]["late"]["status"] == "skipped"
    assert results["workloads"]["late_workload"]["status"] == "not reached (out of time)"


def test_boxes_and_the_tools_doctests():
    import doctest

    assert suite.parse_boxes(["iwae=90,metrics=5", "tests=1"]) == {
        "iwae": 90.0,
        "metrics": 5.0,
        "tests": 1.0,
    }
    with pytest.raises(SystemExit, match="NAME=SECONDS"):
        suite.parse_boxes(["iwae"])
    assert doctest.testmod(suite).failed == 0
    assert doctest.testmod(bench_report).failed == 0
    # Every step of the GPU preset has a box and the boxes fit the suite's deadline roughly.
    steps = [s for s in suite.default_steps("gpu") if s.default]
    assert {w for s in steps for w in s.workloads} == set(WORKLOADS)
    assert sum(s.boxes["gpu"] for s in steps) < 600


# ----------------------------------------------------------------------------------- smoke


def smoke_env(synthetic_data_root: Path, tmp_path: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        JAXROBUST_DATA=str(synthetic_data_root),
        JAXROBUST_SITE=str(tmp_path / "site"),
        PYTHON=sys.executable,
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    )
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


@pytest.mark.slow
def test_smoke_run_records_every_workload_with_both_sides(synthetic_data_root, tmp_path):
    pytest.importorskip("torch")  # the PyTorch peer (the test extra's CPU build)
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(TOOLS / "gpu" / "run.sh"), str(out), "--smoke"],
        cwd=ROOT,
        env=smoke_env(synthetic_data_root, tmp_path),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = {p.name for p in check_outputs(out)}
    assert {"gpu_suite.json", "gpu_suite.md", "gpu_suite.log", "gpu_preflight.log"} <= names
    results = json.loads((out / "gpu_suite.json").read_text())
    assert results["finished"] and results["preset"] == "smoke"
    assert all(step["status"] == "ok" for step in results["steps"].values()), results["steps"]
    assert results["tests"]["counts"].get("passed", 0) >= 1
    assert not results["tests"]["failed"]

    from jaxrobust.config import sections

    bf16_available = "compute_dtype" in sections.CLASSIFIER_ARCHITECTURE
    # Importable where the suite ran (run.sh may have installed the carried wheels).
    preflight = (out / "gpu_preflight.log").read_text()
    peer_libs = {lib: f"{lib}: ok" in preflight for lib in ("torchattacks", "foolbox")}
    for key in WORKLOADS:
        record = results["workloads"][key]
        figures = record["figures"]
        ours = [f for f in figures.values() if f["side"] == "jaxrobust" and "rate" in f]
        peers = [f for f in figures.values() if f["side"] != "jaxrobust" and "rate" in f]
        if key == "train_resnet18_bf16" and not bf16_available:
            assert figures["jaxrobust"]["missing"].startswith("option not available")
        else:
            assert ours, (key, figures)
        assert peers, (key, figures)
        for fig in ours + peers:
            assert fig["rate"] > 0 and fig["median_s"] > 0 and fig["seconds"]
            assert fig["rate"] == pytest.approx(fig["items"] / fig["median_s"])
        for spec in record["ratios"]:
            num, den = figures[spec["num"]], figures[spec["den"]]
            per = spec.get("per", "rate")
            if per in num and per in den:
                quotient = num[per] / den[per]
                want = quotient if spec["kind"] == "speedup" else 1 / quotient
                assert spec["value"] == pytest.approx(want), (key, spec)
            else:
                assert spec["value"] is None
        assert any(spec["value"] is not None for spec in record["ratios"]), (key, record)
    for key in ("pgd", "cw"):
        for lib, importable in peer_libs.items():
            peer = results["workloads"][key]["figures"][lib]
            assert ("rate" in peer) == importable, peer
            assert importable or "not importable" in peer["missing"]
    # The strategy checks of issue 14 ran: lax.map and vmap both measured, the faster named.
    posterior = results["workloads"]["posterior"]
    jax_rates = {k: f["rate"] for k, f in posterior["figures"].items() if k.startswith("jax_")}
    assert {"jax_map", "jax_vmap_all"} <= set(jax_rates)
    assert posterior["params"]["strategy_fastest"] == max(jax_rates, key=jax_rates.get)
    ensemble = results["workloads"]["ensemble"]
    rates = {s: ensemble["figures"][f"jax_{s}"]["rate"] for s in ("vmap", "map")}
    assert ensemble["params"]["strategy_fastest"] == max(rates, key=rates.get)
    # Where the time goes: compile time and XLA cost for jaxrobust, a profile (metrics, smoke).
    vae = results["workloads"]["train_vae"]["figures"]["jaxrobust"]
    assert vae["compile_s"] > 0 and vae["cost"]["flops_per_call"] > 0
    assert vae["cost"]["xla_bytes"] > 0 and vae["cost"]["achieved_tflops"] > 0
    assert results["workloads"]["metrics"]["profile"]["top"]

    env = results["environment"]
    today = datetime.date.today().isoformat()
    assert env["stamp"]["date"] == today
    for package in ("python", "jax", "jaxlib", "flax", "torch"):
        assert env["stamp"][package] not in ("", "not installed")
    text = (out / "gpu_suite.md").read_text()
    assert f"Measured {today} on {env['device']}" in text
    for package in ("jax", "jaxlib", "flax", "torch"):
        assert f"{package} {env['stamp'][package]}" in text
    assert f"Python {env['stamp']['python']}" in text
    sections_md = text.split("\n## ")
    for key in WORKLOADS:
        title = results["workloads"][key]["title"]
        section = next(s for s in sections_md if s.startswith(title))
        assert "| implementation | side |" in section and env["device"] in section


@pytest.mark.slow
def test_a_real_step_past_its_box_times_out_and_the_next_still_runs(synthetic_data_root, tmp_path):
    out = tmp_path / "out"
    env = smoke_env(synthetic_data_root, tmp_path, JAXROBUST_SUITE_BOXES="train_vae=1")
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "gpu" / "suite.py"), str(out), "--smoke",
         "--steps", "train_vae,metrics"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 1  # a step did not finish
    results = json.loads((out / "gpu_suite.json").read_text())
    assert results["steps"]["train_vae"]["status"] == "timed_out"
    assert results["steps"]["train_vae"]["seconds"] < 15
    assert results["workloads"]["train_vae"]["status"] == "step train_vae timed out"
    assert results["steps"]["metrics"]["status"] == "ok"
    assert results["workloads"]["metrics"]["figures"]["jax_summary"]["rate"] > 0
    assert "Not measured: step train_vae timed out." in (out / "gpu_suite.md").read_text()
    check_outputs(out)

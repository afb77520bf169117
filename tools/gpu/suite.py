"""The GPU suite's driver: every step time-boxed, results written after each step.

``tools/gpu/run.sh OUT_DIR [--smoke]`` calls it; it may also be run directly::

    python tools/gpu/suite.py OUT_DIR                    # the GPU suite (preset gpu, ~8 min)
    python tools/gpu/suite.py OUT_DIR --smoke            # the same Python on CPU, tiny sizes
    python tools/gpu/suite.py OUT_DIR --steps iwae,metrics --box iwae=90

Steps, in order (each a subprocess in its own process group, killed when its box runs out, so a
hang or a slow step cannot eat the window; the whole suite stops starting steps at
``--deadline-s``): ``env`` (device and versions), ``tests`` (``pytest -m gpu``: the tests marked
for the GPU; in the smoke preset one of them), then the benchmarks of ``tools/`` in suite mode
(``python tools/bench_x.py --preset P --device D --json FILE --budget-s S``), jaxrobust beside
PyTorch on the same device (``runs``, bench_runs' R = 5, only with ``--steps``). After every
step ``OUT_DIR`` holds, written atomically:

- ``gpu_suite.json``: the environment, every step's status and seconds, every workload's
  figures (seconds of each timed call, median, rate, compile time, XLA cost and achieved
  TFLOP/s and GB/s), its ratios (recomputed here from the figures) and notes, the test results;
- ``gpu_suite.md``: the same as tables, one per workload, device and versions named;
- ``gpu_suite.log``: every step's output.

A workload whose step failed, timed out or was not reached still appears, with that status.
Boxes: ``--box NAME=SECONDS`` (repeatable) or ``$JAXROBUST_SUITE_BOXES="name=s,name=s"``;
deadline: ``--deadline-s`` or ``$JAXROBUST_SUITE_DEADLINE_S``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from bench_report import atomic_write_json, ratio_value, target_met  # noqa: E402

OUTPUTS = {"json": "gpu_suite.json", "markdown": "gpu_suite.md", "log": "gpu_suite.log"}
#: XLA flags of the smoke preset (fast compilation; its figures do not matter).
SMOKE_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
#: Characters of a step's output kept in gpu_suite.log (the end).
MAX_STEP_LOG = 200_000
#: Seconds kept back from the deadline when a step's box is cut to fit.
RESERVE_S = 5.0
#: A step gets at least this many seconds, else it is skipped (not reached).
MIN_STEP_S = {"gpu": 15.0, "cpu": 15.0, "smoke": 1.0}
#: A few issue-14 facts for the report: the H200 SXM's dense peaks (NVIDIA's data sheet).
PEAKS = {
    "H200": "H200 SXM peaks (dense): FP32 67 TFLOP/s, TF32 495, BF16 989; HBM3e 4.8 TB/s.",
    "H100": "H100 SXM peaks (dense): FP32 67 TFLOP/s, TF32 495, BF16 989; HBM3 3.35 TB/s.",
}


@dataclass
class Step:
    """One time-boxed subprocess; ``workloads`` are the keys its JSON should fill."""

    name: str
    command: list[str]
    boxes: dict[str, float]  # preset -> seconds
    workloads: tuple[str, ...] = ()
    titles: dict[str, str] = field(default_factory=dict)
    bench: bool = True  # takes --preset/--device/--json/--budget-s/--profile
    default: bool = True  # run unless --steps names others


def default_steps(preset: str) -> list[Step]:
    """The suite's steps. Boxes (s) for the gpu preset add up to about the 8-minute window."""
    py = sys.executable
    # One process (no pyproject addopts: xdist's workers would change the -v output parsed below).
    tests = [py, "-m", "pytest", "-o", "addopts=", "-v", "-m", "gpu", "-p", "no:cacheprovider"]
    tests.append("-rfE")
    if preset == "smoke":  # one marked test: the plumbing, not the numerics
        tests += ["tests/test_runs.py::test_over_runs_matches_a_loop_over_runs"]
    else:  # only the files with marked tests are collected (others may need absent packages)
        tests += ["--durations=12", *gpu_test_files()]
    bench = [py]
    return [
        Step("env", [py, "tools/gpu/env_probe.py"], {"gpu": 30, "cpu": 60, "smoke": 60},
             bench=False),
        Step("tests", tests, {"gpu": 75, "cpu": 300, "smoke": 120}, bench=False),
        Step("train_vae", bench + ["tools/bench_train_step.py", "--workloads", "vae"],
             {"gpu": 45, "cpu": 120, "smoke": 120}, ("train_vae",),
             {"train_vae": "Quickstart VAE training step (fp32)"}),
        Step("train_resnet18",
             bench + ["tools/bench_train_step.py", "--workloads", "resnet18,resnet18_bf16"],
             {"gpu": 105, "cpu": 300, "smoke": 180}, ("train_resnet18", "train_resnet18_bf16"),
             {"train_resnet18": "CIFAR ResNet-18 training step (fp32)",
              "train_resnet18_bf16": "CIFAR ResNet-18 training step (bf16 mixed precision)"}),
        Step("iwae", bench + ["tools/bench_iwae.py"], {"gpu": 75, "cpu": 300, "smoke": 120},
             ("iwae",), {"iwae": "IWAE log p(x), K = 1000"}),
        Step("posterior", bench + ["tools/bench_posterior.py", "--workloads", "posterior"],
             {"gpu": 60, "cpu": 300, "smoke": 120}, ("posterior",),
             {"posterior": "Posterior scoring, S = 200 x K = 100"}),
        Step("ensemble", bench + ["tools/bench_posterior.py", "--workloads", "ensemble"],
             {"gpu": 40, "cpu": 200, "smoke": 120}, ("ensemble",),
             {"ensemble": "8-member ensemble trained as one program"}),
        Step("attacks", bench + ["tools/bench_attacks.py"], {"gpu": 50, "cpu": 300, "smoke": 120},
             ("pgd", "cw"), {"pgd": "PGD-40 L-inf", "cw": "CW-L2 5 x 100"}),
        Step("metrics", bench + ["tools/bench_metrics.py"], {"gpu": 45, "cpu": 120, "smoke": 60},
             ("metrics",), {"metrics": "Detection metrics on 10^7 scores"}),
        # Only when asked (--steps runs): bench_runs' R = 5 runs; the ensemble step already
        # measures the same stacked-runs program (both strategies) at M = 8.
        Step("runs", bench + ["tools/bench_runs.py"], {"gpu": 40, "cpu": 200, "smoke": 120},
             ("runs",), {"runs": "5 stacked runs as one program"}, default=False),
    ]  # fmt: skip


def gpu_test_files() -> list[str]:
    """The test files (relative to the repository) with a test marked ``gpu``."""
    return sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").glob("test_*.py")
        if "pytest.mark.gpu" in p.read_text(errors="replace")
    )


def parse_boxes(items: list[str]) -> dict[str, float]:
    """``["iwae=90", "a=1,b=2"]`` -> ``{"iwae": 90.0, "a": 1.0, "b": 2.0}``.

    Examples:
        >>> parse_boxes(["iwae=90", "a=1.5,b=2"])
        {'iwae': 90.0, 'a': 1.5, 'b': 2.0}
    """
    boxes = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            name, sep, seconds = part.partition("=")
            if not sep:
                raise SystemExit(f"box {part!r} is not NAME=SECONDS (e.g. iwae=90).")
            boxes[name.strip()] = float(seconds)
    return boxes


# ----------------------------------------------------------------------------------- results


def recompute_ratios(record: dict) -> None:
    """Fill every ratio's value and ``met`` from the record's figures (in place)."""
    for spec in record.get("ratios", []):
        spec["value"] = ratio_value(record.get("figures", {}), spec)
        spec["met"] = target_met(spec, spec["value"])


def parse_pytest(output: str) -> dict:
    """Counts, failed test ids and the slowest durations from ``pytest -v -rfE`` output; from
    the per-test lines when the summary is missing (the step was killed), ``complete`` False.

    Examples:
        >>> text = "FAILED tests/t.py::test_a - AssertionError\\n3 passed, 1 failed in 2.5s"
        >>> r = parse_pytest(text)
        >>> r["counts"], r["failed"], r["complete"]
        ({'passed': 3, 'failed': 1}, ['tests/t.py::test_a - AssertionError'], True)
        >>> parse_pytest("tests/t.py::test_a PASSED [ 50%]\\ntests/t.py::test_b FAILED")["counts"]
        {'passed': 1, 'failed': 1}
    """
    counts: dict[str, int] = {}
    lines = output.strip().splitlines()
    complete = False
    for line in reversed(lines):
        found = re.findall(
            r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)", line
        )
        if found and (" in " in line or "no tests ran" in line):
            for number, kind in found:
                counts["error" if kind.startswith("error") else kind] = int(number)
            complete = True
            break
    per_test = re.findall(
        r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)", output, flags=re.MULTILINE
    )
    if not complete:
        for _, outcome in per_test:
            kind = {"XFAIL": "xfailed", "XPASS": "xpassed"}.get(outcome, outcome.lower())
            counts[kind] = counts.get(kind, 0) + 1
    failed = [line.split(" ", 1)[1] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    if not failed:
        failed = [test for test, outcome in per_test if outcome in ("FAILED", "ERROR")]
    durations = [line.strip() for line in lines if re.match(r"^\s*\d+\.\d+s (call|setup)", line)]
    return {
        "counts": counts,
        "complete": complete,
        "failed": failed[:50],
        "durations": durations[:12],
        "ran": [test for test, _ in per_test][:200],
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.{digits}f}"
    return f"{value:.3g}"


def _ratio_text(spec: dict) -> str:
    value = spec.get("value")
    if value is None:
        return "n/a"
    target = spec.get("target")
    mark = "" if target is None else (" (met)" if spec.get("met") else " (MISSED)")
    unit = "x" if spec["kind"] == "speedup" else ""
    return f"**{value:.2f}{unit}**{mark}"


def _target_text(spec: dict) -> str:
    target = spec.get("target")
    if target is None:
        return "-"
    return f">= {target}x" if spec["kind"] == "speedup" else f"<= {target}"


def environment_text(env: dict) -> str:
    """One line: date, device, versions (Python, jax, jaxlib, flax, torch, CUDA, ...)."""
    if not env:
        return "Environment unknown (the env step did not finish)."
    stamp = dict(env.get("stamp", {}))
    date = stamp.pop("date", "?")
    order = ["python", "jax", "jaxlib", "flax", "optax", "numpy", "torch"]
    names = order + [k for k in stamp if k not in order]
    versions = ", ".join(
        f"{'Python' if k == 'python' else k} {stamp[k]}" for k in names if k in stamp
    )
    extra = []
    if env.get("torch_device"):
        extra.append(f"torch sees {env['torch_device']}")
    if env.get("torch_cuda"):
        extra.append(f"torch CUDA {env['torch_cuda']}, cuDNN {env.get('torch_cudnn')}")
    if env.get("jax_cuda"):
        extra.append(", ".join(f"{k} {v}" for k, v in env["jax_cuda"].items()))
    if isinstance(env.get("jax_cuda_versions"), dict):
        extra.append(
            "JAX's CUDA: " + ", ".join(f"{k} {v}" for k, v in env["jax_cuda_versions"].items())
        )
    smi = env.get("nvidia_smi")
    if isinstance(smi, dict) and smi.get("rows"):
        extra.append(f"nvidia-smi ({smi['query']}): {'; '.join(smi['rows'])}")
    tail = f" ({'; '.join(extra)})" if extra else ""
    return f"Measured {date} on {env.get('device', '?')}{tail}; {versions}."


def short_versions(env: dict) -> str:
    """E.g. ``jax 0.11.2, jaxlib 0.11.2, flax 0.12.8, torch 2.11.0+cu130, CUDA 13.0``."""
    stamp = env.get("stamp", {})
    parts = [f"{k} {stamp[k]}" for k in ("jax", "jaxlib", "flax", "torch") if k in stamp]
    if env.get("torch_cuda"):
        parts.append(f"CUDA {env['torch_cuda']}")
    return ", ".join(parts) or "versions unknown"


def render_markdown(results: dict) -> str:
    """The report: header (device, versions, date), summary, steps, one table per workload."""
    env = results.get("environment", {})
    device = env.get("device", "unknown device")
    lines = [
        f"# jaxrobust GPU suite (preset {results['preset']})",
        "",
        environment_text(env),
        "",
        f"Command: `{results['command']}`. Started {results['started']}; "
        f"{results.get('elapsed_s', 0):.0f} s of the {results['deadline_s']:.0f} s deadline "
        f"used{' (finished)' if results.get('finished') else ' (still running or cut short)'}.",
    ]
    for key, text in PEAKS.items():
        if key in device:
            lines += ["", text]
    lines += [
        "",
        "## Summary",
        "",
        "| workload | ratio | value | target |",
        "|---|---|---:|---:|",
    ]
    for key, record in results["workloads"].items():
        specs = record.get("ratios") or []
        if not specs:
            lines.append(f"| {record.get('title', key)} | {record.get('status', '-')} | - | - |")
            continue
        spec = next(
            (s for s in specs if s.get("target") is not None),
            next((s for s in specs if s.get("value") is not None), specs[0]),
        )
        lines.append(
            f"| {record.get('title', key)} | {spec.get('name') or spec['num']} | "
            f"{_ratio_text(spec)} | {_target_text(spec)} |"
        )
    lines += [
        "",
        "## Steps",
        "",
        "| step | status | seconds | box (s) | note |",
        "|---|---|---:|---:|---|",
    ]
    for name, step in results["steps"].items():
        lines.append(
            f"| {name} | {step['status']} | {_fmt(step.get('seconds'), 1)} | "
            f"{_fmt(step.get('box_s'), 0)} | {step.get('note', '')} |"
        )
    tests = results.get("tests")
    if tests:
        counts = ", ".join(f"{v} {k}" for k, v in tests.get("counts", {}).items()) or "none ran"
        cut = "" if tests.get("complete") else f" (incomplete: the step {tests.get('status')})"
        lines += [
            "",
            "## Tests marked `gpu`",
            "",
            f"`{tests.get('command', '')}`: {counts}{cut}.",
        ]
        if tests.get("failed"):
            lines += ["", "Failed:", ""] + [f"- `{f}`" for f in tests["failed"]]
        if tests.get("durations"):
            lines += ["", "Slowest:", ""] + [f"- {d}" for d in tests["durations"]]
    for key, record in results["workloads"].items():
        lines += ["", f"## {record.get('title', key)}", ""]
        if record.get("status") and not record.get("figures"):
            lines.append(f"Not measured: {record['status']}.")
            continue
        unit = record.get("unit", "items/s")
        lines += [
            f"Device: {device} ({short_versions(env)}). Workload key `{key}`.",
            "",
            f"| implementation | side | {unit} | median s per call | compile s | "
            "dot+conv TFLOP/s | GB/s (est.) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for fig in record.get("figures", {}).values():
            if "missing" in fig:
                lines.append(f"| {fig['label']} | {fig['side']} | {fig['missing']} | | | | |")
                continue
            cost = fig.get("cost") or {}
            lines.append(
                f"| {fig['label']} | {fig['side']} | {_fmt(fig['rate'])} | "
                f"{_fmt(fig['median_s'])} | {_fmt(fig.get('compile_s'), 1)} | "
                f"{_fmt(cost.get('achieved_tflops'))} | {_fmt(cost.get('achieved_gbs'))} |"
            )
        if record.get("ratios"):
            lines += [""]
            for spec in record["ratios"]:
                name = spec.get("name") or f"{spec['num']} / {spec['den']}"
                if spec.get("per") == "call_rate" and "call" not in name:
                    name += " (per model call)"
                lines.append(f"- {name}: {_ratio_text(spec)}; target {_target_text(spec)}")
        for note in record.get("notes", []):
            lines += ["", note]
        if record.get("status"):
            lines += ["", f"Step status: {record['status']}."]
        profile = record.get("profile")
        if profile and "top" in profile:
            lines += [
                "",
                f"Where the time goes (jax.profiler, one call, {profile['where']}: "
                f"{profile['busy_ms']:.1f} ms busy in {profile['wall_ms']:.1f} ms wall):",
                "",
                "| op | ms | count | share |",
                "|---|---:|---:|---:|",
            ]
            for op in profile["top"]:
                name = op["name"].replace("|", "/")
                lines.append(f"| `{name}` | {op['ms']:.2f} | {op['count']} | {op['share']:.0%} |")
        elif profile:
            lines += ["", f"Profile: {profile.get('error')}"]
    return "\n".join(lines) + "\n"


class Suite:
    """Runs the steps, keeps ``results`` and rewrites the output files after each step."""

    def __init__(self, out_dir: Path, preset: str, device: str, deadline_s: float,
                 boxes: dict[str, float], profile: str, command: str) -> None:  # fmt: skip
        self.out = out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.preset, self.device, self.profile = preset, device, profile
        self.deadline_s, self.boxes = deadline_s, boxes
        self.start = time.monotonic()
        self.scratch = Path(tempfile.mkdtemp(prefix="jaxrobust-suite-"))
        self.log_path = self.out / OUTPUTS["log"]
        self.log_path.write_text("")
        self.results: dict = {
            "preset": preset,
            "device_requested": device,
            "command": command,
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "deadline_s": deadline_s,
            "environment": {},
            "steps": {},
            "workloads": {},
            "finished": False,
        }

    def log(self, text: str) -> None:
        stamp = f"[suite {time.monotonic() - self.start:6.1f}s] "
        with open(self.log_path, "a") as f:
            f.write(stamp + text.rstrip("\n") + "\n")
        print(stamp + text, flush=True)

    def left(self) -> float:
        return self.deadline_s - (time.monotonic() - self.start)

    def write(self) -> None:
        self.results["elapsed_s"] = time.monotonic() - self.start
        atomic_write_json(self.out / OUTPUTS["json"], self.results)
        tmp = self.out / f".{OUTPUTS['markdown']}.tmp"
        tmp.write_text(render_markdown(self.results))
        os.replace(tmp, self.out / OUTPUTS["markdown"])

    def env(self) -> dict:
        env = dict(os.environ)
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        env.setdefault("GIT_PYTHON_REFRESH", "quiet")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        if self.preset == "smoke" and "XLA_FLAGS" not in env:
            env["XLA_FLAGS"] = SMOKE_XLA_FLAGS
        return env

    def run_step(self, step: Step) -> None:
        box = self.boxes.get(step.name, step.boxes.get(self.preset, 120.0))
        timeout = min(box, self.left() - RESERVE_S)
        entry = {"box_s": box, "status": "not started"}
        self.results["steps"][step.name] = entry
        if timeout < min(MIN_STEP_S.get(self.preset, 10.0), box):
            entry.update(status="skipped", note=f"not reached: {self.left():.0f} s left")
            self.log(f"{step.name}: skipped, {self.left():.0f} s left of the deadline")
            self._fill_missing(step, "not reached (out of time)")
            self.write()
            return
        json_path = self.scratch / f"{step.name}.json"
        command = list(step.command)
        if step.name == "env":
            command += ["--device", self.device, "--json", str(json_path)]
        elif step.bench:
            profile = self.profile
            if self.preset == "smoke" and profile == "auto":  # the code path once, cheaply
                profile = "always" if step.name == "metrics" else "never"
            command += [
                "--preset", self.preset, "--device", self.device, "--json", str(json_path),
                "--budget-s", f"{0.85 * timeout:.0f}", "--profile", profile,
            ]  # fmt: skip
        entry.update(command=" ".join(command), timeout_s=timeout, status="running")
        self.write()
        self.log(
            f"{step.name}: start (box {box:.0f} s, timeout {timeout:.0f} s): {entry['command']}"
        )
        step_log = self.scratch / f"{step.name}.log"
        tic = time.monotonic()
        with open(step_log, "w") as out:
            proc = subprocess.Popen(
                command, cwd=ROOT, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            try:
                rc = proc.wait(timeout=max(timeout, 0.1))
                status = "ok" if rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                rc, status = None, "timed_out"
        entry.update(status=status, returncode=rc, seconds=time.monotonic() - tic)
        output = step_log.read_text(errors="replace")
        if len(output) > MAX_STEP_LOG:  # what comes back from the machine is limited
            output = (
                f"[... {len(output) - MAX_STEP_LOG} characters cut ...]\n" + output[-MAX_STEP_LOG:]
            )
        with open(self.log_path, "a") as f:
            f.write(f"----- {step.name} output ({status}) -----\n{output}\n")
        if status != "ok":
            tail = [line for line in output.strip().splitlines() if line.strip()][-3:]
            entry["note"] = (" / ".join(tail))[-300:].replace("|", "/")
        self.log(f"{step.name}: {status} in {entry['seconds']:.1f} s (rc {rc})")
        self._collect(step, json_path, status, output)
        self.write()

    def _collect(self, step: Step, json_path: Path, status: str, output: str) -> None:
        data = {}
        if json_path.exists():
            try:
                data = json.loads(json_path.read_text())
            except json.JSONDecodeError as err:
                self.log(f"{step.name}: unreadable JSON ({err})")
        if data.get("environment") and (step.name == "env" or not self.results["environment"]):
            self.results["environment"] = data["environment"]
        for key, record in data.get("workloads", {}).items():
            recompute_ratios(record)
            self.results["workloads"][key] = record
        if step.name == "tests":
            self.results["tests"] = {
                "command": " ".join(step.command),
                "status": status,
                **parse_pytest(output),
                "tail": output.strip().splitlines()[-40:],
            }
        reason = {"timed_out": "timed out", "failed": "failed"}.get(status, "not written")
        self._fill_missing(step, f"step {step.name} {reason}")

    def _fill_missing(self, step: Step, reason: str) -> None:
        for key in step.workloads:
            if key not in self.results["workloads"]:
                self.results["workloads"][key] = {
                    "title": step.titles.get(key, key),
                    "status": reason,
                    "figures": {},
                    "ratios": [],
                    "notes": [],
                }

    def run(self, steps: list[Step]) -> dict:
        self.log(
            f"preset {self.preset}, device {self.device}, deadline {self.deadline_s:.0f} s, "
            f"steps {[s.name for s in steps]}, out {self.out}"
        )
        self.write()
        for step in steps:
            self.run_step(step)
        self.results["finished"] = True
        self.write()
        shutil.rmtree(self.scratch, ignore_errors=True)  # its logs and JSON are merged above
        self.log(f"done in {time.monotonic() - self.start:.0f} s: {sorted(os.listdir(self.out))}")
        return self.results


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the step's process group, SIGKILL it 5 s later if still there."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", help="where gpu_suite.{json,md,log} go")
    parser.add_argument("--smoke", action="store_true", help="preset smoke on the CPU")
    parser.add_argument("--preset", choices=("gpu", "cpu", "smoke"), default=None)
    parser.add_argument("--device", choices=("auto", "gpu", "cpu"), default=None)
    parser.add_argument("--steps", default=None, help="only these steps (comma-separated)")
    parser.add_argument("--skip", default="", help="leave these steps out (comma-separated)")
    parser.add_argument("--box", action="append", default=[], help="NAME=SECONDS (repeatable)")
    parser.add_argument("--deadline-s", type=float, default=None)
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto")
    args = parser.parse_args(argv)

    preset = args.preset or ("smoke" if args.smoke else "gpu")
    device = args.device or {"gpu": "gpu", "cpu": "cpu", "smoke": "auto"}[preset]
    deadline = args.deadline_s or float(
        os.environ.get(
            "JAXROBUST_SUITE_DEADLINE_S", {"gpu": 450, "cpu": 3000, "smoke": 900}[preset]
        )
    )
    boxes = parse_boxes([os.environ.get("JAXROBUST_SUITE_BOXES", ""), *args.box])
    steps = default_steps(preset)
    known = [s.name for s in steps]
    defaults = ",".join(s.name for s in steps if s.default)
    chosen = [n for n in (args.steps or defaults).split(",") if n]
    skip = {n for n in args.skip.split(",") if n}
    unknown = (set(chosen) | skip | set(boxes)) - set(known)
    if unknown:
        parser.error(f"unknown step(s) {sorted(unknown)}; known: {known}")
    steps = [s for s in steps if s.name in chosen and s.name not in skip]
    command = "python tools/gpu/suite.py " + " ".join(argv if argv is not None else sys.argv[1:])
    suite = Suite(Path(args.out_dir), preset, device, deadline, boxes, args.profile, command)
    results = suite.run(steps)
    bad = [n for n, s in results["steps"].items() if s["status"] not in ("ok", "skipped")]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

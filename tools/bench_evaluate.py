"""``jaxrobust evaluate`` on the quickstart workdir: before vs after the evaluation redesign.

Before (commit b06cba1): one pass over the data per score, the test set re-uploaded for each.
After: every model makes one jitted pass per dataset for all tasks. Both run as the same
command line in fresh processes (compile included, as a user sees it) on the same checkpoints:
the "before" process imports a checkout of the old commit (``--before``, e.g. ``git worktree
add /work/before b06cba1``) and reads a copy of the workdir whose ``config.json`` is written in
the old flat layout (the checkpoints are shared through symlinks). Runs are interleaved.

    python tools/bench_evaluate.py --before /work/before --workdir runs/quickstart --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_report import run_stamp, stamp_text, write_section

BEGIN, END = "<!-- bench_evaluate:begin -->", "<!-- bench_evaluate:end -->"


def flat_config(config: dict) -> dict:
    """The resolved config in the layout before the redesign: one section per model, with its
    architecture and training keys side by side."""
    old = json.loads(json.dumps(config))
    for name, section in config["models"].items():
        merged = {"kind": section["kind"], **section.get("architecture", {})}
        merged.update({k: v for k, v in section["training"].items() if v is not None})
        merged.pop("latent", None)
        old["models"][name] = merged
    old["evaluate"] = {
        k: v for k, v in config["evaluate"].items() if k not in ("attacks", "rejection")
    }
    return old


def before_workdir(workdir: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for child in ("checkpoints", "posterior", "metrics.jsonl"):
        if (workdir / child).exists():
            (target / child).symlink_to((workdir / child).absolute())
    config = json.loads((workdir / "config.json").read_text())
    (target / "config.json").write_text(json.dumps(flat_config(config), indent=2))
    return target


def timed(cmd: list[str], env: dict, cwd: str) -> float:
    tic = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - tic


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="checkout of commit b06cba1")
    p.add_argument("--workdir", default="runs/quickstart")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--output", default="BENCHMARKS.md")
    args = p.parse_args(argv)
    workdir = Path(args.workdir)
    old_dir = before_workdir(workdir, workdir.parent / f"{workdir.name}_before_eval")
    base = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cli = [sys.executable, "-m", "jaxrobust.cli", "evaluate"]
    before = str(Path(args.before).absolute())
    # Each process runs in its own checkout (``-m`` puts the working directory on sys.path).
    runs = {
        "before": (
            cli + ["--workdir", str(old_dir.absolute())],
            {**base, "PYTHONPATH": before},
            before,
        ),
        "after": (cli + ["--workdir", str(workdir.absolute())], base, str(Path.cwd())),
    }
    seconds = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (cmd, env, cwd) in runs.items():
            seconds[name].append(timed(cmd, env, cwd))
    best = {name: min(values) for name, values in seconds.items()}
    result = {"seconds": seconds, "best": best, "ratio": best["before"] / best["after"]}
    result["stamp"] = run_stamp()
    from jaxrobust.devices import describe_devices

    config = json.loads((workdir / "config.json").read_text())
    scores = config["evaluate"]["ood"]["scores"]
    section = "\n".join(
        [
            BEGIN,
            "## Evaluation: one pass per model and dataset (`tools/bench_evaluate.py`)",
            "",
            stamp_text(result["stamp"], on=describe_devices()) + " `jaxrobust evaluate` on the "
            f"quickstart workdir ({', '.join(scores)}, classification; Fashion-MNIST and MNIST "
            "test sets), whole command in a fresh process, compile included, best of "
            f"{args.repeats} interleaved runs.",
            "",
            "| evaluate | seconds | ratio |",
            "|---|---|---|",
            f"| before (b06cba1: one pass per score) | {best['before']:.1f} | 1.00 |",
            f"| after (one pass per model and dataset) | {best['after']:.1f} | "
            f"{result['ratio']:.2f}x faster |",
            END,
        ]
    )
    write_section(Path(args.output), BEGIN, END, section)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

"""Detection metrics on 10^6 scores: jaxrobust (jitted) vs scikit-learn, in one process.

Task: AUROC + AUPR + FPR95 of ``--num-scores`` scores (half in-distribution, half OOD by
default, float32, rounded to 4 decimals so that ties occur, as they do in real score files).

- jaxrobust: ``jaxrobust.metrics.detection_summary`` (one sort shared by all metrics), the
  scores already on the device; compile time reported separately, then the median of
  ``--repeats`` calls, each ended by ``block_until_ready``. The three single-metric functions
  (``auroc``, ``average_precision``, ``fpr_at_tpr``: three sorts) are timed too.
- scikit-learn: ``roc_auc_score`` + ``average_precision_score`` + ``roc_curve`` (FPR95 =
  ``fpr[argmax(tpr >= 0.95)]``) on the same float32 arrays, median of ``--repeats`` calls.

The two sides' numbers are printed (they agree to float32 precision) and the calls alternate, so
load on a shared machine hits both alike. Usage::

    python tools/bench_metrics.py --output BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bench_report import add_suite_arguments, run_stamp, stamp_text, write_section
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from jaxrobust import metrics
from jaxrobust.devices import describe_devices

BEGIN, END = "<!-- bench_metrics:begin -->", "<!-- bench_metrics:end -->"


def make_scores(num_scores: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    half = num_scores // 2
    scores_in = np.round(rng.normal(1.0, 1.0, num_scores - half), 4).astype(np.float32)
    scores_out = np.round(rng.normal(0.0, 1.0, half), 4).astype(np.float32)
    return scores_in, scores_out


def sklearn_metrics(scores_in: np.ndarray, scores_out: np.ndarray) -> dict[str, float]:
    y = np.r_[np.ones(len(scores_in)), np.zeros(len(scores_out))]
    s = np.r_[scores_in, scores_out]
    fpr, tpr, _ = roc_curve(y, s)
    return {
        "auroc": roc_auc_score(y, s),
        "aupr_in": average_precision_score(y, s),
        "fpr95": float(fpr[np.argmax(tpr >= 0.95)]),
    }


def jax_summary(scores_in, scores_out) -> dict[str, jax.Array]:
    return metrics.detection_summary(scores_in, scores_out, higher_is_ood=False, tprs=(0.95,))


def jax_single(scores_in, scores_out) -> dict[str, jax.Array]:
    direction = dict(higher_is_ood=False)
    return {
        "auroc": metrics.auroc(scores_in, scores_out, **direction),
        "aupr_in": metrics.average_precision(scores_in, scores_out, **direction),
        "fpr95": metrics.fpr_at_tpr(scores_in, scores_out, tpr=0.95, **direction),
    }


def timed(fn, *args) -> tuple[float, dict]:
    """(seconds, result) of ``fn(*args)``, JAX results waited for."""
    tic = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - tic, out


def run(num_scores: int, repeats: int) -> dict:
    host_in, host_out = make_scores(num_scores)
    dev_in, dev_out = jnp.asarray(host_in), jnp.asarray(host_out)
    jax.block_until_ready((dev_in, dev_out))
    compile_summary, _ = timed(jax_summary, dev_in, dev_out)
    compile_single, _ = timed(jax_single, dev_in, dev_out)
    times = {"jaxrobust summary": [], "jaxrobust single": [], "scikit-learn": []}
    values = {}
    for _ in range(repeats):
        seconds, values["jaxrobust summary"] = timed(jax_summary, dev_in, dev_out)
        times["jaxrobust summary"].append(seconds)
        seconds, values["jaxrobust single"] = timed(jax_single, dev_in, dev_out)
        times["jaxrobust single"].append(seconds)
        seconds, values["scikit-learn"] = timed(sklearn_metrics, host_in, host_out)
        times["scikit-learn"].append(seconds)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {
        "stamp": run_stamp(),
        "num_scores": num_scores,
        "repeats": repeats,
        "compile": {"jaxrobust summary": compile_summary, "jaxrobust single": compile_single},
        "median_s": medians,
        "values": {
            side: {k: float(values[side][k]) for k in ("auroc", "aupr_in", "fpr95")}
            for side in values
        },
    }


def markdown(result: dict) -> str:
    sk = result["median_s"]["scikit-learn"]
    rows = [
        f"{BEGIN}",
        f"{stamp_text(result['stamp'], on=describe_devices())} {result['num_scores']:,} float32 "
        f"scores, median of {result['repeats']} alternating calls.",
        "",
        "| implementation | median time (ms) | speed-up vs scikit-learn | compile (s, once) | "
        "AUROC | AUPR | FPR95 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, seconds in result["median_s"].items():
        v = result["values"][name]
        compile_s = result["compile"].get(name)
        compiled = f"{compile_s:.2f}" if compile_s is not None else "-"
        rows.append(
            f"| {name} | {1e3 * seconds:,.1f} | {sk / seconds:.1f}x | {compiled} | "
            f"{v['auroc']:.6f} | {v['aupr_in']:.6f} | {v['fpr95']:.6f} |"
        )
    rows.append(END)
    return "\n".join(rows)


# ----------------------------------------------------------------------------------- suite mode

#: Suite presets (tools/gpu/suite.py): scores, timed repeats (scikit-learn: fewer, it is slow).
SUITE_SIZES = {
    "smoke": {"num_scores": 10_000, "repeats": 1, "sklearn_repeats": 1},
    "cpu": {"num_scores": 1_000_000, "repeats": 7, "sklearn_repeats": 7},
    "gpu": {"num_scores": 10_000_000, "repeats": 5, "sklearn_repeats": 2},
}


def torchmetrics_runner(scores_in: np.ndarray, scores_out: np.ndarray, dev):
    """``run() -> {auroc, aupr_in, fpr95}`` with torchmetrics' functional metrics on ``dev``
    (exact: ``thresholds=None``), the scores already there. Raises ImportError without it."""
    import torch
    from bench_report import torch_sync
    from torchmetrics.functional.classification import (
        binary_auroc,
        binary_average_precision,
        binary_roc,
    )

    preds = torch.from_numpy(np.r_[scores_in, scores_out]).to(dev)
    target = torch.cat(
        [
            torch.ones(len(scores_in), dtype=torch.long),
            torch.zeros(len(scores_out), dtype=torch.long),
        ]
    ).to(dev)
    torch_sync(dev)

    def run() -> dict:
        fpr, tpr, _ = binary_roc(preds, target, thresholds=None)
        out = {
            "auroc": binary_auroc(preds, target, thresholds=None),
            "aupr_in": binary_average_precision(preds, target, thresholds=None),
            "fpr95": fpr[torch.argmax((tpr >= 0.95).to(torch.int32))],
        }
        torch_sync(dev)
        return out

    return run


def suite_main(args) -> int:
    from bench_report import (
        figure,
        missing,
        open_suite,
        program_cost,
        ratio_spec,
        workload_record,
    )

    start = time.perf_counter()
    device, dev, recorder, sizes = open_suite(args, SUITE_SIZES)
    n = args.num_scores or sizes["num_scores"]
    repeats = args.repeats or sizes["repeats"]
    host_in, host_out = make_scores(n)
    dev_in, dev_out = jnp.asarray(host_in), jnp.asarray(host_out)
    jax.block_until_ready((dev_in, dev_out))
    compile_summary, _ = timed(jax_summary, dev_in, dev_out)
    compile_single, _ = timed(jax_single, dev_in, dev_out)
    runs = {
        "jax_summary": lambda: jax_summary(dev_in, dev_out),
        "jax_single": lambda: jax_single(dev_in, dev_out),
        "sklearn": lambda: sklearn_metrics(host_in, host_out),
    }
    absent = {}
    try:
        runs["torchmetrics"] = torchmetrics_runner(host_in, host_out, dev)
        runs["torchmetrics"]()  # warm-up
    except ImportError as err:
        absent["torchmetrics"] = f"not importable ({err})"
        runs.pop("torchmetrics", None)
    times = {k: [] for k in runs}
    values = {}
    budget = args.budget_s or float("inf")
    for i in range(repeats):
        for key, run in runs.items():
            if key == "sklearn" and times["sklearn"]:
                # Slow on 10^7 scores: another call only if it fits in what is left.
                left = budget - (time.perf_counter() - start) - 10.0
                if i >= sizes["sklearn_repeats"] or left < 1.5 * max(times["sklearn"]):
                    continue
            seconds, values[key] = timed(run)
            times[key].append(seconds)
    jitted = jax.jit(jax_summary)
    compiled = jitted.lower(dev_in, dev_out).compile()
    labels = {
        "jax_summary": f"jaxrobust detection_summary (jit, {device})",
        "jax_single": f"jaxrobust auroc + average_precision + fpr_at_tpr ({device})",
        "torchmetrics": f"torchmetrics functional, thresholds=None ({dev.type})",
        "sklearn": "scikit-learn (CPU, float64 inside)",
    }
    sides = {"torchmetrics": "pytorch", "sklearn": "scikit-learn"}
    compiles = {"jax_summary": compile_summary, "jax_single": compile_single}
    figures = {}
    for key, label in labels.items():
        if key not in runs:
            figures[key] = missing(label, "pytorch", absent.get(key, "not run"))
            continue
        cost = program_cost(jitted, (dev_in, dev_out), compiled) if key == "jax_summary" else None
        figures[key] = figure(
            label, times[key], n, side=sides.get(key, "jaxrobust"), compile_s=compiles.get(key),
            cost=cost, values={k: float(values[key][k]) for k in ("auroc", "aupr_in", "fpr95")},
        )  # fmt: skip
    ratios = [
        ratio_spec("jax_summary", "torchmetrics", name="jaxrobust summary / torchmetrics"),
        ratio_spec("jax_summary", "sklearn", name="jaxrobust summary / scikit-learn (CPU)"),
        ratio_spec("jax_single", "torchmetrics", name="jaxrobust single / torchmetrics"),
    ]
    agree = max(
        abs(figures[k]["values"][m] - figures["sklearn"]["values"][m])
        for k in figures
        if "values" in figures[k]
        for m in ("auroc", "aupr_in", "fpr95")
    )
    record = workload_record(
        f"Detection metrics (AUROC + AUPR + FPR95) on {n:,} scores",
        "scores/s",
        figures,
        ratios,
        params={"num_scores": n, "repeats": repeats, "sklearn_repeats": len(times["sklearn"]),
                "max_abs_difference_vs_sklearn": agree},
        notes=[
            f"{n:,} float32 scores (half in-distribution N(1, 1), half OOD N(0, 1), rounded to "
            "4 decimals so that ties occur), on the device for jaxrobust and torchmetrics, on "
            f"the host for scikit-learn; median of {repeats} alternating calls "
            f"(scikit-learn: {len(times['sklearn'])}); largest difference of any metric "
            f"from scikit-learn's: {agree:.1e}.",
        ],
    )  # fmt: skip
    recorder.add_profiled(
        "metrics", record, args, lambda i: jax.block_until_ready(jitted(dev_in, dev_out))
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-scores", type=int, default=None, help="scores (10^6)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (7)")
    parser.add_argument("--output", default=None, help="update this markdown file (section)")
    add_suite_arguments(parser)
    args = parser.parse_args(argv)
    if args.preset:
        return suite_main(args)
    args.num_scores = args.num_scores or 1_000_000
    args.repeats = args.repeats or 7
    result = run(args.num_scores, args.repeats)
    section = markdown(result)
    print(section)
    if args.output:
        write_section(Path(args.output), BEGIN, END, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

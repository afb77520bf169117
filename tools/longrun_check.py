"""Long-run check: memory flat and no recompilation over many epochs and evaluation batches.

  python tools/longrun_check.py [--epochs 50] [--batches 1000] [--rss-growth-mb 50]
                                [--out RELIABILITY-longrun.json] [--write-report [RELIABILITY.md]]

Trains ``tools/chaos_configs/point.py`` (a tiny VAE and a tiny CNN on the synthetic stand-ins of
tests/synthetic.py) for ``--epochs`` epochs each, in this process, through
``train_and_evaluate`` with an epoch hook that records the resident set size (psutil, else
/proc/self/statm) and the number of XLA compilations so far (a ``jax.monitoring`` listener on
``/jax/core/compile/backend_compile_duration``, one event per backend compilation; traces are
counted from ``/jax/core/compile/jaxpr_trace_duration``). Then restores each model and runs
``--batches`` evaluation batches through ``jaxrobust.evaluate.batched.map_dataset`` in a Python
loop (one fixed-size batch per call, a new key per call: the same compiled function must serve
every call), recording the same figures per batch.

Passes when, for every model: no compilation after the first epoch (to the last) and none after
the first evaluation batch; RSS growth from epoch ``--warmup-epochs`` to the last epoch and from
batch ``--warmup-batches`` to the last below ``--rss-growth-mb``. Prints the figures, writes them
to ``--out`` and, with ``--write-report``, rewrites the long-run section of RELIABILITY.md.
Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIG = HERE / "chaos_configs" / "point.py"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
REPORT_BEGIN = "<!-- longrun:begin (written by tools/longrun_check.py --write-report) -->"
REPORT_END = "<!-- longrun:end -->"


def rss_mb() -> float:
    """Resident set size of this process in MiB (psutil if installed, else /proc/self/statm).

    Examples:
        >>> rss_mb() > 0
        True
    """
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    return psutil.Process().memory_info().rss / 2**20


class CompileCounter:
    """Counts XLA backend compilations (and jaxpr traces) from ``jax.monitoring`` events.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> counter = CompileCounter()
        >>> f = jax.jit(lambda x: x * 3 + 1)
        >>> x3, x4 = jnp.ones(3), jnp.ones(4)
        >>> with counter.listening():
        ...     _ = f(x3); first = counter.compiles
        ...     _ = f(x3); same = counter.compiles
        ...     _ = f(x4); new_shape = counter.compiles
        >>> (same - first, new_shape - same)
        (0, 1)
    """

    def __init__(self) -> None:
        self.compiles = 0
        self.traces = 0
        self.names: list[str] = []

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        if event == COMPILE_EVENT:
            self.compiles += 1
            self.names.append(str(kwargs.get("fun_name", "?")))
        elif event == TRACE_EVENT:
            self.traces += 1

    @contextmanager
    def listening(self):
        from jax import monitoring

        monitoring.register_event_duration_secs_listener(self._listen)
        try:
            yield self
        finally:
            monitoring.unregister_event_duration_listener(self._listen)


def verdict(record: dict, rss_growth_mb: float) -> list[str]:
    """The failed checks of a :func:`run` record (empty when it passes).

    Examples:
        >>> ok = {"models": {"m": {"compiles_after_epoch_1": 0, "rss_growth_mb": 3.0,
        ...        "eval_compiles_after_batch_1": 0, "eval_rss_growth_mb": 1.0}}}
        >>> verdict(ok, 50.0)
        []
        >>> ok["models"]["m"]["compiles_after_epoch_1"] = 2
        >>> verdict(ok, 50.0)
        ['m: 2 compilations after epoch 1']
    """
    failed = []
    for name, m in record["models"].items():
        if m["compiles_after_epoch_1"]:
            failed.append(f"{name}: {m['compiles_after_epoch_1']} compilations after epoch 1")
        if m["eval_compiles_after_batch_1"]:
            failed.append(
                f"{name}: {m['eval_compiles_after_batch_1']} compilations after evaluation batch 1"
            )
        for key, what in (("rss_growth_mb", "training"), ("eval_rss_growth_mb", "evaluation")):
            if m[key] >= rss_growth_mb:
                failed.append(
                    f"{name}: RSS grew {m[key]:.1f} MiB during {what} (limit {rss_growth_mb})"
                )
    return failed


def _point(rows: list[dict], index: int) -> dict:
    return rows[min(index, len(rows)) - 1]


def run(
    workdir: Path,
    epochs: int,
    batches: int,
    warmup_epochs: int = 5,
    warmup_batches: int = 100,
    batch_size: int = 64,
    models: list[str] | None = None,
) -> dict:
    """Train and evaluate in this process; per-epoch and per-batch RSS and compile counts."""
    import jax
    import numpy as np

    from jaxrobust import data as datasets
    from jaxrobust.config import load_config
    from jaxrobust.evaluate import restore_model
    from jaxrobust.evaluate.batched import map_dataset
    from jaxrobust.train import train_and_evaluate

    base = load_config(CONFIG)
    overrides = [f"models.{name}.training.num_epochs={epochs}" for name in base.models]
    config = load_config(CONFIG, overrides)
    if models:
        unknown = sorted(set(models) - set(config.models))
        if unknown:
            raise SystemExit(f"unknown models {unknown}; {CONFIG.name} has {list(config.models)}")
        config.models = {name: config.models[name] for name in models}
        ev = config.evaluate
        if ev.get("classification") is not None:
            ev.classification.models = [m for m in ev.classification.models if m in models]
        ev.ood.scores = [s for s in ev.ood.scores if s.split("/")[0] in models]
    counter = CompileCounter()
    epochs_seen: dict[str, list[dict]] = {name: [] for name in config.models}
    start = time.perf_counter()

    def hook(name, epoch, state):
        epochs_seen[name].append(
            {
                "epoch": epoch,
                "rss_mb": round(rss_mb(), 2),
                "compiles": counter.compiles,
                "traces": counter.traces,
            }
        )

    with counter.listening():
        rss_start = rss_mb()
        train_and_evaluate(config, workdir, hooks=[hook])
        train_seconds = time.perf_counter() - start
        images, _ = datasets.load(config.data.name, "test")
        images = np.asarray(images)
        batches_seen: dict[str, list[dict]] = {}
        eval_tic = time.perf_counter()
        for name in config.models:
            model, preprocess, variables, _ = restore_model(workdir, name, "last", config=config)
            wanted = ("elbo",) if model.kind == "vae" else ("logits",)

            def fn(v, x, k, model=model, wanted=wanted):
                return model.outputs(v, x, key=k, names=wanted)[wanted[0]]

            key = jax.random.key(0)
            rows = []
            for b in range(batches):
                lo = (b * batch_size) % (len(images) - batch_size + 1)
                out = map_dataset(
                    fn,
                    variables,
                    images[lo : lo + batch_size],
                    preprocess,
                    jax.random.fold_in(key, b),
                    batch_size=batch_size,
                )
                if not all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(out)):
                    raise FloatingPointError(f"{name}: non-finite outputs in batch {b}")
                rows.append(
                    {
                        "batch": b + 1,
                        "rss_mb": round(rss_mb(), 2),
                        "compiles": counter.compiles,
                        "traces": counter.traces,
                    }
                )
            batches_seen[name] = rows
        eval_seconds = time.perf_counter() - eval_tic
    models = {}
    for name in config.models:
        rows, evals = epochs_seen[name], batches_seen[name]
        first, warm, last = rows[0], _point(rows, warmup_epochs), rows[-1]
        e_first, e_warm, e_last = evals[0], _point(evals, warmup_batches), evals[-1]
        models[name] = {
            "epochs": len(rows),
            "compiles_after_epoch_1": last["compiles"] - first["compiles"],
            "traces_after_epoch_1": last["traces"] - first["traces"],
            "rss_epoch_1_mb": first["rss_mb"],
            "rss_warm_epoch": warm["epoch"],
            "rss_warm_mb": warm["rss_mb"],
            "rss_last_mb": last["rss_mb"],
            "rss_growth_mb": round(last["rss_mb"] - warm["rss_mb"], 2),
            "rss_max_mb": max(r["rss_mb"] for r in rows[rows.index(warm) :]),
            "eval_batches": len(evals),
            "eval_compiles_after_batch_1": e_last["compiles"] - e_first["compiles"],
            "eval_traces_after_batch_1": e_last["traces"] - e_first["traces"],
            "eval_rss_warm_batch": e_warm["batch"],
            "eval_rss_warm_mb": e_warm["rss_mb"],
            "eval_rss_last_mb": e_last["rss_mb"],
            "eval_rss_growth_mb": round(e_last["rss_mb"] - e_warm["rss_mb"], 2),
            "per_epoch": rows,
            "per_batch": evals[:: max(1, len(evals) // 100)] + [e_last],
        }
    return {
        "epochs": epochs,
        "batches": batches,
        "batch_size": batch_size,
        "rss_start_mb": round(rss_start, 2),
        "train_seconds": round(train_seconds, 2),
        "eval_seconds": round(eval_seconds, 2),
        "compiled_functions": counter.names,
        "models": models,
    }


def table(record: dict) -> str:
    lines = [
        "| model | epochs | compilations after epoch 1 | RSS epoch 1 / warm / last (MiB) "
        "| growth (MiB) | eval batches | compilations after batch 1 "
        "| eval RSS warm / last (MiB) | growth (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in record["models"].items():
        lines.append(
            f"| {name} | {m['epochs']} | {m['compiles_after_epoch_1']} "
            f"| {m['rss_epoch_1_mb']:.0f} / {m['rss_warm_mb']:.0f} (epoch {m['rss_warm_epoch']})"
            f" / {m['rss_last_mb']:.0f} | {m['rss_growth_mb']:+.1f} | {m['eval_batches']} "
            f"| {m['eval_compiles_after_batch_1']} | {m['eval_rss_warm_mb']:.0f} "
            f"(batch {m['eval_rss_warm_batch']}) / {m['eval_rss_last_mb']:.0f} "
            f"| {m['eval_rss_growth_mb']:+.1f} |"
        )
    return "\n".join(lines)


def report_section(record: dict) -> str:
    sys.path.insert(0, str(HERE))
    from bench_report import stamp_text

    failed = record["failed"]
    return "\n".join(
        [
            REPORT_BEGIN,
            "",
            "```",
            record["command"],
            "```",
            "",
            stamp_text(record["stamp"], record.get("device")),
            "",
            table(record),
            "",
            f"Training {record['train_seconds']:.0f} s, {record['batches']} evaluation batches "
            f"of {record['batch_size']} images per model {record['eval_seconds']:.0f} s. "
            f"Limit on RSS growth: {record['rss_growth_limit_mb']:.0f} MiB. Verdict: "
            + ("**pass**." if not failed else "**FAIL**: " + "; ".join(failed) + ".")
            + f" Per-epoch and per-batch figures: `{record['out']}`.",
            "",
            REPORT_END,
        ]
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--warmup-epochs", type=int, default=5)
    parser.add_argument("--warmup-batches", type=int, default=100)
    parser.add_argument("--rss-growth-mb", type=float, default=50.0)
    parser.add_argument("--models", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--data", type=Path, default=None, help="JAXROBUST_DATA (default: write "
                        "the synthetic stand-ins into the workdir)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("RELIABILITY-longrun.json"))
    parser.add_argument(
        "--write-report",
        nargs="?",
        const=REPO / "RELIABILITY.md",
        type=Path,
        default=None,
        help="rewrite the long-run section of this file (default RELIABILITY.md)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.epochs < 2 or args.batches < 2:
        raise SystemExit("--epochs and --batches must be >= 2 (the checks compare to the first)")
    with tempfile.TemporaryDirectory(prefix="longrun-") as tmp:
        workdir = (args.workdir or Path(tmp)).absolute() / "workdir"
        if workdir.exists():
            import shutil

            shutil.rmtree(workdir)
        data = args.data
        if data is None:
            sys.path.insert(0, str(REPO / "tests"))
            from synthetic import write_synthetic_cache

            data = write_synthetic_cache(workdir.parent / "data")
        previous = os.environ.get("JAXROBUST_DATA")
        os.environ["JAXROBUST_DATA"] = str(Path(data).absolute())
        try:
            models = [m.strip() for m in args.models.split(",") if m.strip()] or None
            record = run(
                workdir,
                args.epochs,
                args.batches,
                args.warmup_epochs,
                args.warmup_batches,
                models=models,
            )
        finally:
            if previous is None:
                os.environ.pop("JAXROBUST_DATA", None)
            else:
                os.environ["JAXROBUST_DATA"] = previous
    sys.path.insert(0, str(HERE))
    from bench_report import run_stamp

    from jaxrobust.devices import describe_devices

    record["failed"] = verdict(record, args.rss_growth_mb)
    record["rss_growth_limit_mb"] = args.rss_growth_mb
    record["command"] = "python tools/longrun_check.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    record["stamp"] = run_stamp(("orbax-checkpoint",))
    record["device"] = describe_devices()
    record["out"] = str(args.out)
    print(table(record))
    print(
        f"train {record['train_seconds']:.1f} s, evaluation {record['eval_seconds']:.1f} s; "
        f"{len(record['compiled_functions'])} compilations in all"
    )
    for line in record["failed"]:
        print(f"FAIL: {line}")
    if not record["failed"]:
        print("pass: no recompilation, RSS flat")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    if args.write_report:
        from bench_report import write_section

        write_section(args.write_report, REPORT_BEGIN, REPORT_END, report_section(record),
                      "## Long-run check")  # fmt: skip
        print(f"Rewrote the long-run section of {args.write_report}")
    return 1 if record["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

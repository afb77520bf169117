"""R runs of one model as one program vs one run: training throughput per run-image.

Workload: the quickstart VAE (experiments/quickstart.py), synthetic uint8 28x28x1 images,
``--images`` per epoch, batch 128. Times one jitted epoch (``make_train_epoch``) of a single
unstacked run and of ``--runs`` runs stacked on a leading axis with each strategy of
``jaxrobust.runs`` ("vmap", "map"), each compiled with ``cpu_compiler_options()`` on CPU;
median of ``--repeats`` epochs after a warm-up. Reports run-images/s and the ratio to R separate
single-run epochs.

    python tools/bench_runs.py --output BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bench_report import (
    add_suite_arguments,
    measure,
    open_suite,
    run_stamp,
    stamp_text,
    write_section,
)

from jaxrobust.config import load_config
from jaxrobust.devices import describe_devices
from jaxrobust.models.base import split_variables
from jaxrobust.nn.conv_ops import cpu_compiler_options
from jaxrobust.train.epoch import TrainState, make_train_epoch
from jaxrobust.train.loop import _per_run, build_from_config, run_keys
from jaxrobust.train.optim import build_optimizer
from jaxrobust.train.sharding import data_mesh

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench_runs:begin -->", "<!-- bench_runs:end -->"


def epoch_program(num_runs, strategy, images, labels, init: str = "model") -> dict:
    """One jitted epoch of the quickstart VAE for ``num_runs`` stacked runs (None: one unstacked
    run) mapped with ``strategy`` ("vmap", "map"; None: ``runs_strategy()``), compiled:
    ``{"run": run(i) (blocking), "compile_s", "fn", "args", "compiled", "steps"}``.
    ``init="random"``: NumPy-drawn variables in the model's shapes (fast to set up)."""
    from bench_train_step import random_variables

    previous = os.environ.get("JAXROBUST_RUNS")
    if strategy:
        os.environ["JAXROBUST_RUNS"] = strategy  # read when the epoch function is built
    try:
        config = load_config(ROOT / "experiments" / "quickstart.py")
        model, preprocess = build_from_config(config, "vae")
        steps = images.shape[0] // 128
        optimizer = build_optimizer(config.models.vae.training.optimizer.to_dict(), steps)

        def init_state(key):
            example = preprocess(images[:1])
            if init == "random":
                variables = random_variables(jax.eval_shape(model.init, key, example))
            else:
                variables = model.init(key, example)
            params, state = split_variables(variables)
            return TrainState(jnp.zeros((), jnp.int32), params, state, optimizer.init(params))

        keys = run_keys(0, "vae", num_runs)
        if init == "random" and num_runs:
            state = jax.tree.map(lambda *xs: jnp.stack(xs), *[init_state(k) for k in keys])
        else:
            state = _per_run(init_state, keys, num_runs)
        epoch = make_train_epoch(model, optimizer, preprocess, 128, data_mesh(), num_runs)
    finally:
        if previous is None:
            os.environ.pop("JAXROBUST_RUNS", None)
        else:
            os.environ["JAXROBUST_RUNS"] = previous
    epoch_keys = _per_run(lambda k: jax.random.fold_in(k, 1), keys, num_runs)
    args = (state, images, labels, epoch_keys, None)
    start = time.perf_counter()
    compiled = epoch.lower(*args).compile(compiler_options=cpu_compiler_options() or None)
    compile_s = time.perf_counter() - start
    box = [state]

    def run(i: int) -> None:
        box[0], metrics = compiled(box[0], images, labels, epoch_keys, None)
        jax.block_until_ready(metrics)

    return {
        "run": run,
        "compile_s": compile_s,
        "fn": epoch,
        "args": args,
        "compiled": compiled,
        "steps": steps,
    }


def time_epochs(num_runs, strategy, images, labels, repeats):
    """Run-images/s of :func:`epoch_program`: median of ``repeats`` epochs after a warm-up."""
    program = epoch_program(num_runs, strategy, images, labels)
    program["run"](-1)  # warm-up
    seconds = []
    for i in range(repeats):
        tic = time.perf_counter()
        program["run"](i)
        seconds.append(time.perf_counter() - tic)
    return program["steps"] * 128 * (num_runs or 1) / statistics.median(seconds)


# ----------------------------------------------------------------------------------- suite mode

#: Suite presets (tools/gpu/suite.py): images per epoch (batch 128), timed repeats.
SUITE_SIZES = {
    "smoke": {"images": 128, "repeats": 1},
    "cpu": {"images": 6400, "repeats": 3},
    "gpu": {"images": 6400, "repeats": 5},
}


def stacked_runs_record(args, members: int, images_per_epoch: int, repeats: int, dev,
                        target: float | None, title: str) -> tuple:  # fmt: skip
    """``members`` stacked runs of the quickstart VAE as one jitted epoch (vmap and map) beside
    one unstacked run and PyTorch training one member after another; member-images/s.
    Returns (record, the vmapped program's run, for a profile)."""
    from bench_report import (
        figure,
        program_cost,
        ratio_spec,
        workload_record,
    )
    from bench_train_step import torch_runner

    from jaxrobust.runs import runs_strategy

    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (images_per_epoch, 28, 28, 1), dtype=np.uint8))
    labels = jnp.zeros(images_per_epoch, jnp.int32)
    init = "random" if args.preset == "smoke" else "model"
    programs = {
        "jax_1": epoch_program(None, None, images, labels, init),
        "jax_vmap": epoch_program(members, "vmap", images, labels, init),
        "jax_map": epoch_program(members, "map", images, labels, init),
    }
    steps = programs["jax_1"]["steps"]
    costs = {k: program_cost(p["fn"], p["args"], p["compiled"]) for k, p in programs.items()}
    runners = {k: p["run"] for k, p in programs.items()}
    runners["pytorch_1"] = torch_runner("vae", steps, 128, dev)
    seconds = measure(runners, repeats)
    labels_ = {
        "jax_1": "jaxrobust, 1 member (unstacked)",
        "jax_vmap": f"jaxrobust, {members} members as one program, vmap",
        "jax_map": f"jaxrobust, {members} members as one program, lax.map",
        "pytorch_1": f"PyTorch eager, 1 member ({members} members: {members} such epochs)",
    }
    figures = {}
    for key, label in labels_.items():
        m = members if key in ("jax_vmap", "jax_map") else 1
        figures[key] = figure(
            label,
            seconds[key],
            steps * 128 * m,
            side="pytorch" if key.startswith("pytorch") else "jaxrobust",
            compile_s=programs[key]["compile_s"] if key in programs else None,
            cost=costs.get(key),
        )
    auto = runs_strategy()
    ratios = [
        ratio_spec(
            "jax_vmap", "jax_1", kind="time", target=target,
            name=f"vmapped {members}-member step / {members} single-member steps",
        ),
        ratio_spec(
            "jax_map", "jax_1", kind="time",
            name=f"lax.map {members}-member step / {members} single-member steps",
        ),
        ratio_spec(
            "jax_" + auto, "pytorch_1",
            name=f"jaxrobust {members} members ({auto}, the default here) / PyTorch one after "
            "another",
        ),
    ]  # fmt: skip
    fastest = "vmap" if figures["jax_vmap"]["rate"] >= figures["jax_map"]["rate"] else "map"
    record = workload_record(
        title,
        "member-images/s",
        figures,
        ratios,
        params={
            "members": members, "images_per_epoch": images_per_epoch, "batch": 128,
            "steps": steps, "strategy_default": auto, "strategy_fastest": fastest,
            "default_is_fastest": auto == fastest,
        },
        notes=[
            f"One epoch = {steps} steps of batch 128 per member (synthetic uint8 images), "
            f"median of {repeats} interleaved epochs after a warm-up. Strategy check: "
            f"{fastest} is faster here; runs_strategy() picks {auto} on this backend"
            + (" (right)." if auto == fastest else " (WRONG: the other is faster)."),
        ],
    )  # fmt: skip
    return record, programs["jax_vmap"]["run"]


def suite_main(args) -> int:
    device, dev, recorder, sizes = open_suite(args, SUITE_SIZES)
    record, profile_run = stacked_runs_record(
        args, args.runs, sizes["images"], args.repeats or sizes["repeats"], dev, None,
        f"{args.runs} stacked runs of the quickstart VAE as one program",
    )  # fmt: skip
    recorder.add_profiled("runs", record, args, profile_run)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--images", type=int, default=6400)
    parser.add_argument("--repeats", type=int, default=None, help="timed epochs (3)")
    parser.add_argument("--output", default=None)
    add_suite_arguments(parser)
    args = parser.parse_args(argv)
    if args.preset:
        return suite_main(args)
    args.repeats = args.repeats or 3
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (args.images, 28, 28, 1), dtype=np.uint8))
    labels = jnp.zeros(args.images, jnp.int32)
    single = time_epochs(None, None, images, labels, args.repeats)
    rows = [("1 run, unstacked", single)]
    for strategy in ("vmap", "map"):
        rate = time_epochs(args.runs, strategy, images, labels, args.repeats)
        rows.append((f"{args.runs} runs, {strategy}", rate))
    lines = [
        BEGIN,
        f"{stamp_text(run_stamp(), on=describe_devices())} Quickstart VAE, "
        f"{args.images} images per epoch, batch 128, median of {args.repeats} epochs.",
        "",
        "| program | run-images/s | vs separate single-run epochs |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {rate:,.0f} | {rate / single:.2f}x |" for name, rate in rows]
    lines.append(END)
    section = "\n".join(lines)
    print(section)
    if args.output:
        write_section(Path(args.output), BEGIN, END, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

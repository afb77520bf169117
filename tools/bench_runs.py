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
from bench_report import run_stamp, stamp_text, write_section

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


def time_epochs(num_runs, strategy, images, labels, repeats):
    if strategy:
        os.environ["JAXROBUST_RUNS"] = strategy
    config = load_config(ROOT / "experiments" / "quickstart.py")
    model, preprocess = build_from_config(config, "vae")
    steps = images.shape[0] // 128
    optimizer = build_optimizer(config.models.vae.training.optimizer.to_dict(), steps)

    def init(key):
        params, state = split_variables(model.init(key, preprocess(images[:1])))
        return TrainState(jnp.zeros((), jnp.int32), params, state, optimizer.init(params))

    keys = run_keys(0, "vae", num_runs)
    state = _per_run(init, keys, num_runs)
    epoch = make_train_epoch(model, optimizer, preprocess, 128, data_mesh(), num_runs)
    epoch_keys = _per_run(lambda k: jax.random.fold_in(k, 1), keys, num_runs)
    compiled = epoch.lower(state, images, labels, epoch_keys, None).compile(
        compiler_options=cpu_compiler_options() or None
    )
    state, metrics = compiled(state, images, labels, epoch_keys, None)  # warm-up
    jax.block_until_ready(metrics)
    seconds = []
    for _ in range(repeats):
        tic = time.perf_counter()
        state, metrics = compiled(state, images, labels, epoch_keys, None)
        jax.block_until_ready(metrics)
        seconds.append(time.perf_counter() - tic)
    return steps * 128 * (num_runs or 1) / statistics.median(seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--images", type=int, default=6400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
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

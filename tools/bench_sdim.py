"""SDIM (seed 003): a training step vs a PyTorch twin, and threshold fitting + rejection vs NumPy.

Workloads (issue 18):

- ``step``: one SDIM training epoch of ``--steps`` steps at batch ``--batch-size`` (128),
  ResNet10 encoder (n = 1, 32x32x1 synthetic uint8 images, the MNIST cells' shape), d = 64,
  Adam 1e-3, loss J_MI (JSD, derangement negatives) + J_NLL + J_LM (K = 10). jaxrobust:
  ``make_train_epoch`` (one jitted ``lax.scan`` over the steps). PyTorch: a twin written from
  the paper's description (digest section 1: option-A shortcuts, the Linear-BN-ReLU-Linear
  head, the concat-and-convolve T of 1x1 convs, diagonal class Gaussians), eager steps. The
  twins have the same parameter count (checked).
- ``rejection``: per-class thresholds at the 1st and 2nd percentiles of the class scores of
  the correctly classified among ``--num-scores`` (60,000) training inputs, then Eq. 9 on
  10,000 test inputs: :func:`jaxrobust.metrics.class_thresholds_from_percentile` +
  ``accept_above_class_thresholds`` + ``classification_with_rejection``, jitted together, vs the
  same in NumPy (a per-class ``np.percentile`` loop, the obvious implementation).

Ratio = jaxrobust rate / peer rate (above 1: jaxrobust faster). Usage::

    python tools/bench_sdim.py --output BENCHMARKS.md       # a few minutes on 2 CPU cores
    python tools/bench_sdim.py --quick                      # tiny sizes (a smoke check)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bench_report import measure, run_stamp, stamp_text, write_section
from bench_train_step import random_variables

from jaxrobust import metrics
from jaxrobust.data.preprocess import Preprocess
from jaxrobust.devices import describe_devices
from jaxrobust.models import build_model
from jaxrobust.models.base import split_variables
from jaxrobust.nn.conv_ops import cpu_compiler_options
from jaxrobust.train.epoch import TrainState, make_train_epoch
from jaxrobust.train.optim import build_optimizer
from jaxrobust.train.sharding import data_mesh

BEGIN, END = "<!-- bench_sdim:begin -->", "<!-- bench_sdim:end -->"
SHAPE, CLASSES = (32, 32, 1), 10


def jax_program(steps: int, batch: int, widths):
    """``(run(i), compile seconds, parameter count)`` of the jitted SDIM epoch."""
    architecture = {"n": 1, "widths": list(widths)}
    model = build_model("sdim", architecture, SHAPE, CLASSES)
    preprocess = Preprocess()
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (steps * batch, *SHAPE), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, CLASSES, steps * batch, dtype=np.int32))
    optimizer = build_optimizer({"name": "adam", "learning_rate": 1e-3}, steps)
    shapes = jax.eval_shape(model.init, jax.random.key(0), preprocess(images[:1]))
    params, state = split_variables(random_variables(shapes, 0))
    box = [TrainState(jnp.zeros((), jnp.int32), params, state, optimizer.init(params))]
    epoch = make_train_epoch(model, optimizer, preprocess, batch, data_mesh(), None)
    key = jax.random.key(1)
    tic = time.perf_counter()
    compiled = epoch.lower(box[0], images, labels, key, None).compile(
        compiler_options=cpu_compiler_options() or None
    )
    compile_s = time.perf_counter() - tic

    def run(i: int) -> None:
        box[0], out = compiled(box[0], images, labels, key, None)
        jax.block_until_ready((box[0], out))

    count = sum(math.prod(p.shape) for p in jax.tree.leaves(shapes["params"]))
    return run, compile_s, count


def torch_epoch(steps: int, batch: int, widths):
    """``(run(i), parameter count)``: eager steps of the PyTorch twin (module docstring)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)

    class Block(nn.Module):  # BasicBlock with the option-A (zero-pad) shortcut
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.stride, self.pad = stride, cout - cin
            self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)

        def forward(self, x):
            h = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
            s = x[:, :, :: self.stride, :: self.stride]
            return F.relu(h + (F.pad(s, (0, 0, 0, 0, 0, self.pad)) if self.pad else s))

    class SDIM(nn.Module):
        def __init__(self, d=64, hidden=256, t_hidden=256):
            super().__init__()
            layers, cin = [nn.Conv2d(1, widths[0], 3, 1, 1, bias=False),
                           nn.BatchNorm2d(widths[0]), nn.ReLU()], widths[0]  # fmt: skip
            for stage, cout in enumerate(widths):
                layers.append(Block(cin, cout, 2 if stage > 0 else 1))
                cin = cout
            self.body = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Linear(cin, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                      nn.Linear(hidden, d))  # fmt: skip
            self.t = nn.Sequential(nn.Conv2d(cin + d, t_hidden, 1), nn.ReLU(),
                                   nn.Conv2d(t_hidden, t_hidden, 1), nn.ReLU(),
                                   nn.Conv2d(t_hidden, 1, 1))  # fmt: skip
            self.mean = nn.Parameter(torch.randn(CLASSES, d))
            self.log_scale = nn.Parameter(torch.zeros(CLASSES, d))

        def t_scores(self, local, rep):
            tiled = rep[:, :, None, None].expand(-1, -1, *local.shape[2:])
            return self.t(torch.cat([local, tiled], 1))[:, 0]

        def forward(self, x, y):
            local = self.body(x)
            rep = self.head(local.mean((2, 3)))
            b = x.shape[0]
            cycle = torch.randperm(b)  # a random single cycle: a derangement
            derange = torch.empty_like(cycle)
            derange[cycle] = torch.roll(cycle, 1)
            positive, negative = self.t_scores(local, rep), self.t_scores(local[derange], rep)
            mi = (-F.softplus(-positive)).mean((1, 2)) - F.softplus(negative).mean((1, 2))
            log_scale = self.log_scale.clamp(min=math.log(1e-5))
            z = (rep[:, None] - self.mean[None]) / log_scale.exp()[None]
            logits = (-0.5 * z.square() - log_scale[None] - 0.5 * math.log(2 * math.pi)).sum(-1)
            own = logits.gather(1, y[:, None])
            nll = -own[:, 0]
            hinge = F.relu(logits + 10.0 - own).square()
            margin = (hinge.sum(1) - hinge.gather(1, y[:, None])[:, 0]) / (CLASSES - 1)
            return (-mi + nll + margin).mean()

    model = SDIM()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    n = steps * batch
    images = torch.randint(0, 256, (n, 1, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, CLASSES, (n,), generator=gen)

    def run(i: int) -> None:
        perm = torch.randperm(n, generator=gen)
        for step in range(steps):
            idx = perm[step * batch : (step + 1) * batch]
            optimizer.zero_grad(set_to_none=True)
            loss = model(images[idx].float().div_(255.0), labels[idx])
            loss.backward()
            optimizer.step()

    return run, sum(p.numel() for p in model.parameters())


def rejection_inputs(num_train: int, num_test: int):
    """SDIM-like class scores: the own class near 480 nats, the others far below."""
    rng = np.random.default_rng(0)

    def scores(n):
        labels = rng.integers(0, CLASSES, n)
        s = rng.normal(-500.0, 200.0, (n, CLASSES)).astype(np.float32)
        s[np.arange(n), labels] = rng.normal(480.0, 10.0, n)
        return s, labels.astype(np.int32)

    return (*scores(num_train), *scores(num_test))


def jax_rejection(train_s, train_y, test_s, test_y, percentiles):
    @jax.jit
    def fit_and_reject(train_s, train_y, test_s, test_y):
        out = []
        for p in percentiles:
            thresholds = metrics.class_thresholds_from_percentile(train_s, train_y, p)
            predictions, accepted = metrics.accept_above_class_thresholds(test_s, thresholds)
            out.append(metrics.classification_with_rejection(predictions, test_y, accepted))
        return out

    args = [jnp.asarray(a) for a in (train_s, train_y, test_s, test_y)]
    jax.block_until_ready(fit_and_reject(*args))  # compile

    def run(i: int) -> None:
        jax.block_until_ready(fit_and_reject(*args))

    return run, fit_and_reject(*args)


def numpy_rejection(train_s, train_y, test_s, test_y, percentiles):
    def fit_and_reject():
        out = []
        correct = train_s.argmax(1) == train_y
        for p in percentiles:
            thresholds = np.array([
                np.percentile(train_s[(train_y == c) & correct, c], p) for c in range(CLASSES)
            ])  # fmt: skip
            predicted = test_s.argmax(1)
            accepted = test_s.max(1) >= thresholds[predicted]
            accuracy = np.mean(predicted[accepted] == test_y[accepted])
            out.append((accuracy, 1.0 - accepted.mean(), int(accepted.sum())))
        return out

    return (lambda i: fit_and_reject()), fit_and_reject()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-scores", type=int, default=60000, help="training inputs scored")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke check)")
    parser.add_argument("--output", default=None, help="update this markdown file (section)")
    args = parser.parse_args(argv)
    widths = (32, 64, 128, 256)
    if args.quick:
        args.batch_size, args.steps, args.repeats, args.num_scores = 8, 2, 1, 2000
        widths = (4, 8, 8, 16)
    stamp = run_stamp()
    device = describe_devices()
    tic_all = time.perf_counter()

    jax_run, compile_s, jax_count = jax_program(args.steps, args.batch_size, widths)
    torch_run, torch_count = torch_epoch(args.steps, args.batch_size, widths)
    if jax_count != torch_count:
        raise SystemExit(f"the twins differ: {jax_count} vs {torch_count} parameters")
    seconds = measure({"jaxrobust": jax_run, "pytorch": torch_run}, args.repeats)
    items = args.steps * args.batch_size
    step_rate = {k: items / float(np.median(v)) for k, v in seconds.items()}

    num_test = min(10000, args.num_scores)
    inputs = rejection_inputs(args.num_scores, num_test)
    percentiles = (1.0, 2.0)
    jax_rej, jax_out = jax_rejection(*inputs, percentiles)
    np_rej, np_out = numpy_rejection(*inputs, percentiles)
    for ours, theirs in zip(jax_out, np_out, strict=True):  # the same answer, or no ratio
        if int(ours.num_accepted) != theirs[2] or not math.isclose(
            float(ours.accuracy_on_accepted), theirs[0], rel_tol=1e-6
        ):
            raise SystemExit(f"rejection differs from NumPy: {ours} vs {theirs}")
    rej_seconds = measure({"jaxrobust": jax_rej, "numpy": np_rej}, max(args.repeats, 5))
    rej = {k: float(np.median(v)) for k, v in rej_seconds.items()}
    total = time.perf_counter() - tic_all

    lines = [
        BEGIN,
        "## SDIM: a training step, and threshold fitting + rejection",
        "",
        f"Command: `python tools/bench_sdim.py {' '.join(sys.argv[1:])}` ({total:.0f} s in "
        f"all). {stamp_text(stamp, on=device)} Medians of interleaved repeats after a warm-up.",
        "",
        f"SDIM with a ResNet10 encoder (widths {list(widths)}, {jax_count:,} parameters on both "
        f"sides), {args.steps} steps of batch {args.batch_size}, 32x32x1 synthetic images:",
        "",
        "| side | images / s | ratio jaxrobust / side |",
        "|---|---:|---:|",
        f"| jaxrobust, jitted epoch (compile {compile_s:.1f} s, once) | "
        f"{step_rate['jaxrobust']:.1f} | 1 |",
        f"| PyTorch eager twin | {step_rate['pytorch']:.1f} | "
        f"**{step_rate['jaxrobust'] / step_rate['pytorch']:.2f}x** |",
        "",
        f"Thresholds at the 1st and 2nd percentiles from {args.num_scores:,} training inputs' "
        f"class scores, then Eq. 9 and accuracy left on {num_test:,} test inputs (both sides give "
        "the same counts, checked):",
        "",
        "| side | ms | ratio side / jaxrobust time |",
        "|---|---:|---:|",
        f"| jaxrobust, one jitted function | {1e3 * rej['jaxrobust']:.1f} | 1 |",
        f"| NumPy, a per-class np.percentile loop | {1e3 * rej['numpy']:.1f} | "
        f"**{rej['numpy'] / rej['jaxrobust']:.2f}x** |",
        END,
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        write_section(Path(args.output), BEGIN, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

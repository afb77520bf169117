"""Deep hybrid models (seed 000): a DHM training step vs a PyTorch twin, and the 6-alpha sweep as
one program vs 6 separate programs.

Workloads (issue 17):

- ``step``: one DHM training epoch of ``--steps`` steps at batch ``--batch-size`` (128), full
  width by default (``--width``), 32x32x3 synthetic uint8 images, Adam 1e-3, loss alpha * CE +
  beta_G * (MSE_mean + 0.1 KL_mean) with the head on concat(features, mu) (the author's code).
  jaxrobust: ``make_train_epoch`` (one jitted ``lax.scan`` over the steps). PyTorch: a twin of
  the author's architecture (b-turan/hybrid_robustness, written from reading it: pl_bolts
  ``resnet18_encoder`` / ``resnet18_decoder``, fc_mu / fc_var, the Dropout-Linear-Dropout-Linear
  head on a second ResNet-18), eager steps. The twins have the same parameter count (checked).
- ``sweep``: DHM-0..DHM-5 (6 alphas) x ``--runs`` seeds as one swept program (``training.sweep``,
  one jitted epoch over all 6R members) vs 6 programs of R runs, one per alpha, run one after
  another; at ``--sweep-width`` (narrow: the stand-ins' setting) so that it fits a CPU.

Ratio = jaxrobust rate / peer rate (images/s; above 1: jaxrobust faster). Usage::

    python tools/bench_hybrid.py --output BENCHMARKS.md          # tens of minutes on 2 CPU cores
    python tools/bench_hybrid.py --quick                         # tiny sizes (a smoke check)
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

from jaxrobust.data.preprocess import Preprocess
from jaxrobust.devices import describe_devices
from jaxrobust.models import build_model
from jaxrobust.models.base import split_variables
from jaxrobust.nn.conv_ops import cpu_compiler_options
from jaxrobust.train.epoch import TrainState, make_train_epoch
from jaxrobust.train.optim import build_optimizer
from jaxrobust.train.sharding import data_mesh

BEGIN, END = "<!-- bench_hybrid:begin -->", "<!-- bench_hybrid:end -->"
SHAPE, CLASSES, LATENT = (32, 32, 3), 10, 256
ALPHAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def _architecture(width: float, **extra) -> dict:
    return {"variant": "dhm", "width": width, "head_input": "mu", "beta_g": 1.0, **extra}


def _data(steps: int, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = steps * batch
    images = jnp.asarray(rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, CLASSES, n, dtype=np.int32))
    return images, labels


def jax_program(width: float, steps: int, batch: int, members: int | None):
    """The compiled DHM epoch for ``members`` stacked members (None: one unstacked model):
    ``(compiled, make_state(alphas), images, labels, compile seconds, parameters per model)``."""
    from jaxrobust.sweep import LOSS_WEIGHTS_COLLECTION

    model = build_model("hybrid", _architecture(width), SHAPE, CLASSES)
    preprocess = Preprocess()
    images, labels = _data(steps, batch)
    optimizer = build_optimizer({"name": "adam", "learning_rate": 1e-3}, steps)
    shapes = jax.eval_shape(model.init, jax.random.key(0), preprocess(images[:1]))

    def make_state(alphas):
        """One member per alpha (the same initial weights), or an unstacked model (None)."""
        params, state = split_variables(random_variables(shapes, 0))
        one = TrainState(jnp.zeros((), jnp.int32), params, state, optimizer.init(params))
        if alphas is None:
            return one
        stacked = jax.tree.map(lambda a: jnp.stack([a] * len(alphas)), one)
        weights = {"alpha": jnp.asarray(alphas, jnp.float32)}
        return stacked._replace(
            model_state={**stacked.model_state, LOSS_WEIGHTS_COLLECTION: weights}
        )

    state = make_state(None if members is None else [1.0] * members)
    key = jax.random.key(1) if members is None else jax.random.split(jax.random.key(1), members)
    epoch = make_train_epoch(model, optimizer, preprocess, batch, data_mesh(), members)
    tic = time.perf_counter()
    compiled = epoch.lower(state, images, labels, key, None).compile(
        compiler_options=cpu_compiler_options() or None
    )
    compile_s = time.perf_counter() - tic
    count = sum(math.prod(p.shape) for p in jax.tree.leaves(shapes["params"]))
    return compiled, make_state, images, labels, key, compile_s, count


def runner(compiled, state, images, labels, key):
    """``run(i)``: one epoch from the state left by the previous call."""
    box = [state]

    def run(i: int) -> None:
        box[0], metrics = compiled(box[0], images, labels, key, None)
        jax.block_until_ready((box[0], metrics))

    return run


def torch_epoch(width: float, steps: int, batch: int):
    """``(run(i), parameter count)``: eager steps of the PyTorch twin (module docstring)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    w = [max(1, round(width * c)) for c in (64, 128, 256, 512)]

    class Block(nn.Module):  # pl_bolts encoder BasicBlock
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))  # fmt: skip

        def forward(self, x):
            h = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
            return F.relu(h + (x if self.down is None else self.down(x)))

    def encoder():  # resnet18_encoder(first_conv=False, maxpool1=False): 3x3 stem, no pool
        layers, cin = [nn.Conv2d(3, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]),
                       nn.ReLU()], w[0]  # fmt: skip
        for stage, cout in enumerate(w):
            for block in range(2):
                layers.append(Block(cin, cout, 2 if stage > 0 and block == 0 else 1))
                cin = cout
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())

    class UpBlock(nn.Module):  # pl_bolts DecoderBlock
        def __init__(self, cin, cout, scale):
            super().__init__()
            self.scale = scale
            self.c1, self.b1 = nn.Conv2d(cin, cin, 3, 1, 1, bias=False), nn.BatchNorm2d(cin)
            self.c2, self.b2 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.up = None
            if scale != 1 or cin != cout:
                self.up = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

        def _resize(self, x):
            return F.interpolate(x, scale_factor=self.scale) if self.scale != 1 else x

        def forward(self, x):
            h = self.b2(self.c2(self._resize(F.relu(self.b1(self.c1(x))))))
            return F.relu(h + (x if self.up is None else self.up(self._resize(x))))

    class Decoder(nn.Module):  # resnet18_decoder(latent, 32, False, False)
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(LATENT, w[3] * 16)
            blocks, cin = [], w[3]
            for stage, cout in enumerate((w[2], w[1], w[0], w[0])):
                for block in range(2):
                    blocks.append(UpBlock(cin, cout, 2 if stage < 3 and block == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.out = nn.Conv2d(w[0], 3, 3, 1, 1, bias=False)

        def forward(self, z):
            return self.out(self.blocks(self.linear(z).view(-1, w[3], 4, 4)))

    class DHM(nn.Module):
        def __init__(self):
            super().__init__()
            self.vae_encoder, self.classifier, self.decoder = encoder(), encoder(), Decoder()
            self.fc_mu, self.fc_var = nn.Linear(w[3], LATENT), nn.Linear(w[3], LATENT)
            self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(w[3] + LATENT, 256),
                                      nn.Dropout(0.25), nn.Linear(256, CLASSES))  # fmt: skip

        def forward(self, x, y, alpha=1.0, beta_g=1.0, beta=0.1):
            h = self.vae_encoder(x)
            mu, log_var = self.fc_mu(h), self.fc_var(h)
            z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
            logits = self.head(torch.cat([self.classifier(x), mu], dim=1))
            mse = (self.decoder(z) - x).square().flatten(1).mean(1)
            kl = 0.5 * (mu.square() + log_var.exp() - 1.0 - log_var).mean(1)
            return (alpha * F.cross_entropy(logits, y, reduction="none")
                    + beta_g * (mse + beta * kl)).mean()  # fmt: skip

    model = DHM()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    n = steps * batch
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep-width", type=float, default=0.125)
    parser.add_argument("--sweep-steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1, help="seeds per alpha in the sweep")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke check)")
    parser.add_argument("--output", default=None, help="update this markdown file (section)")
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.batch_size, args.steps, args.repeats = 0.0625, 8, 2, 1
        args.sweep_width, args.sweep_steps = 0.0625, 2
    stamp = run_stamp()
    device = describe_devices()
    tic_all = time.perf_counter()

    compiled, make_state, images, labels, key, compile_s, jax_count = jax_program(
        args.width, args.steps, args.batch_size, None
    )
    jax_run = runner(compiled, make_state(None), images, labels, key)
    torch_run, torch_count = torch_epoch(args.width, args.steps, args.batch_size)
    if jax_count != torch_count:
        raise SystemExit(f"the twins differ: {jax_count} vs {torch_count} parameters")
    seconds = measure({"jaxrobust": jax_run, "pytorch": torch_run}, args.repeats)
    items = args.steps * args.batch_size
    step_rate = {k: items / float(np.median(v)) for k, v in seconds.items()}

    # The sweep: 6 alphas x R members in one program, vs the R-member program once per alpha
    # (the same shapes: compiled once and run 6 times with each alpha's state; separate
    # processes would also compile it 6 times, which the compile column counts).
    r = args.runs
    swept = jax_program(args.sweep_width, args.sweep_steps, args.batch_size, len(ALPHAS) * r)
    one_alpha = jax_program(args.sweep_width, args.sweep_steps, args.batch_size, r)
    sweep_run = runner(*swept[:1], swept[1]([a for a in ALPHAS for _ in range(r)]), *swept[2:5])
    per_alpha = [runner(*one_alpha[:1], one_alpha[1]([a] * r), *one_alpha[2:5]) for a in ALPHAS]
    sweep_compile, separate_compile = swept[5], len(ALPHAS) * one_alpha[5]

    def run_separate(i: int) -> None:
        for run in per_alpha:
            run(i)

    sweep_seconds = measure({"swept": sweep_run, "separate": run_separate}, args.repeats)
    sweep_items = args.sweep_steps * args.batch_size * len(ALPHAS) * args.runs
    sweep_rate = {k: sweep_items / float(np.median(v)) for k, v in sweep_seconds.items()}
    total = time.perf_counter() - tic_all

    lines = [
        BEGIN,
        "## Deep hybrid models: a DHM training step, and the alpha sweep as one program",
        "",
        f"Command: `python tools/bench_hybrid.py {' '.join(sys.argv[1:])}` ({total:.0f} s in "
        f"all). {stamp_text(stamp, on=device)} Synthetic 32x32x3 images, Adam 1e-3; medians "
        f"of {args.repeats} interleaved repeats after a warm-up.",
        "",
        f"DHM (width {args.width:g}, {jax_count:,} parameters on both sides), {args.steps} "
        f"steps of batch {args.batch_size}:",
        "",
        "| side | images / s | ratio jaxrobust / side |",
        "|---|---:|---:|",
        f"| jaxrobust, jitted epoch (compile {compile_s:.1f} s, once) | "
        f"{step_rate['jaxrobust']:.1f} | 1 |",
        f"| PyTorch eager twin of the author's architecture | {step_rate['pytorch']:.1f} | "
        f"**{step_rate['jaxrobust'] / step_rate['pytorch']:.2f}x** |",
        "",
        f"DHM-0..DHM-5 x {args.runs} run(s) (width {args.sweep_width:g}), {args.sweep_steps} "
        f"steps of batch {args.batch_size} per member:",
        "",
        "| program | member-images / s | compile (s) | ratio swept / side |",
        "|---|---:|---:|---:|",
        f"| one swept program (6 alphas stacked) | {sweep_rate['swept']:.1f} | "
        f"{sweep_compile:.1f} | 1 |",
        f"| 6 separate programs, one per alpha | {sweep_rate['separate']:.1f} | "
        f"{separate_compile:.1f} | **{sweep_rate['swept'] / sweep_rate['separate']:.2f}x** |",
        END,
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        write_section(Path(args.output), BEGIN, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

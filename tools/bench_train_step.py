"""Training throughput (images/s): jaxrobust's jitted epoch vs the same model in PyTorch eager.

Workloads (batch 128 by default, synthetic device-resident uint8 data, same optimizer both sides):

- ``vae``: the quickstart VAE, latent 16, encoder (32, 64) / decoder (64, 32), 28x28x1, Bernoulli
  likelihood, loss = mean over the batch of the negative ELBO, Adam 1e-3.
- ``resnet18``: CIFAR ResNet-18 (3x3 stem, no max-pool, BasicBlocks [2, 2, 2, 2], BatchNorm),
  32x32x3, softmax cross-entropy, SGD lr 0.1 momentum 0.9.

jaxrobust runs a whole epoch of ``--steps`` steps as one jitted call
(``jaxrobust.train.epoch.make_train_epoch``: ``lax.scan`` over steps) with the convolution
implementation ``auto`` (``jaxrobust.nn.conv_ops``: canonical-layout custom gradients on CPU),
compiled as is and with ``conv_ops.cpu_compiler_options()`` (XLA:CPU's YNNPACK convolutions off,
Eigen's on); ``JAXROBUST_CONV_IMPL=lax`` (plain JAX gradients, i.e. before the fix) is timed
once, on a short epoch, because it is so slow. PyTorch runs ``--steps`` eager steps per epoch
(``torch.set_num_threads`` = core count). The jaxrobust and PyTorch epochs are interleaved
(one warm-up each, then ``--repeats`` rounds) so that load drifting on a shared machine hits all
alike; throughput = steps * batch / median seconds.

Usage::

    python tools/bench_train_step.py --workloads vae,resnet18 --output BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_report import add_suite_arguments, measure, run_stamp, stamp_text, write_section

IMAGE_SHAPES = {"vae": (28, 28, 1), "resnet18": (32, 32, 3)}
DEFAULT_STEPS = {"vae": 20, "resnet18": 3}
BEFORE_STEPS = {"vae": 5, "resnet18": 1}
NUM_CLASSES = 10


def cpu_model() -> str:
    """``model name`` from /proc/cpuinfo (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ----------------------------------------------------------------------------------- jaxrobust


def jax_program(
    workload: str,
    steps: int,
    batch: int,
    impl: str,
    options: bool,
    compute_dtype: str = "float32",
    init: str = "model",
) -> dict:
    """One jitted ``make_train_epoch`` epoch, compiled: ``{"run": run(i), "compile_s", "fn",
    "args", "compiled", "model"}`` (``run`` = one epoch of ``steps`` steps, blocking).
    ``init="random"``: variables drawn with NumPy in the shapes of the model's (the smoke
    preset: XLA:CPU takes ~20 s to compile ResNet-18's own initialisation)."""
    import jax
    import jax.numpy as jnp

    from jaxrobust.data.preprocess import Preprocess
    from jaxrobust.models import build_model
    from jaxrobust.models.base import split_variables
    from jaxrobust.nn.conv_ops import conv_impl, cpu_compiler_options
    from jaxrobust.train.epoch import TrainState, make_train_epoch
    from jaxrobust.train.optim import build_optimizer
    from jaxrobust.train.sharding import data_mesh

    shape = IMAGE_SHAPES[workload]
    if workload == "vae":
        cfg = {
            "kind": "vae",
            "latent_dim": 16,
            "encoder_features": (32, 64),
            "decoder_features": (64, 32),
        }
        opt_cfg = {"name": "adam", "learning_rate": 1e-3}
    else:
        cfg = {"kind": "classifier", "network": "resnet18"}
        opt_cfg = {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}
    if compute_dtype != "float32":
        cfg["compute_dtype"] = compute_dtype
    model = build_model(cfg.pop("kind"), cfg, shape, NUM_CLASSES)
    preprocess = Preprocess()
    rng = np.random.default_rng(0)
    n = steps * batch
    images = jnp.asarray(rng.integers(0, 256, (n, *shape), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, NUM_CLASSES, n, dtype=np.int32))
    example = preprocess(images[:1])
    if init == "random":
        variables = random_variables(jax.eval_shape(model.init, jax.random.key(0), example))
    else:
        variables = jax.jit(model.init)(jax.random.key(0), example)
    params, state = split_variables(variables)
    optimizer = build_optimizer(opt_cfg, steps)
    train_state = TrainState(jnp.zeros((), jnp.int32), params, state, optimizer.init(params))
    compiler_options = cpu_compiler_options() if options else None
    args = (train_state, images, labels, jax.random.key(1))
    with conv_impl(impl):  # read when the epoch is traced, i.e. by lower()
        epoch = make_train_epoch(model, optimizer, preprocess, batch, data_mesh())
        start = time.perf_counter()
        compiled = epoch.lower(*args).compile(compiler_options=compiler_options or None)
        compile_s = time.perf_counter() - start
    box = [train_state]

    def run_epoch(i: int) -> None:
        box[0], metrics = compiled(box[0], images, labels, jax.random.key(100 + i))
        jax.block_until_ready((box[0], metrics))

    return {
        "run": run_epoch,
        "compile_s": compile_s,
        "fn": epoch,
        "args": args,
        "compiled": compiled,
        "model": model,
        "impl": impl,
    }


def random_variables(shapes, seed: int = 0):
    """Variables of the shapes ``shapes`` (a tree of ShapeDtypeStruct): scales and variances 1,
    biases and means 0, other leaves N(0, 0.05^2)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name in ("scale", "var"):
            return jnp.ones(leaf.shape, leaf.dtype)
        if name in ("bias", "mean"):
            return jnp.zeros(leaf.shape, leaf.dtype)
        return jnp.asarray(0.05 * rng.standard_normal(leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def jax_runner(workload: str, steps: int, batch: int, impl: str, options: bool):
    """(run_epoch, compile seconds): one call = one jitted ``make_train_epoch`` epoch."""
    program = jax_program(workload, steps, batch, impl, options)
    return program["run"], program["compile_s"]


def computes_in(model, shape, dtype_name: str) -> bool:
    """Whether ``model``'s logits or loss are computed with ``dtype_name`` arrays (jaxpr)."""
    import jax
    import jax.numpy as jnp

    x = jnp.zeros((1, *shape), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    jaxpr = jax.make_jaxpr(lambda v, x: model.logits(v, x))(variables, x)
    return dtype_name in str(jaxpr)


# ----------------------------------------------------------------------------------- PyTorch


def torch_models(workload: str):
    """The PyTorch twin of the jaxrobust model: (module, loss_fn(module, x, y) -> scalar)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    if workload == "vae":

        class VAE(nn.Module):
            """Conv(k4, s2, p1) = flax SAME here; ConvTranspose(k4, s2, p1) = flax SAME."""

            def __init__(self, latent: int = 16) -> None:
                super().__init__()
                self.enc = nn.Sequential(
                    nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU()
                )
                self.stats = nn.Linear(7 * 7 * 64, 2 * latent)
                self.dense = nn.Linear(latent, 7 * 7 * 64)
                self.dec = nn.Sequential(
                    nn.ConvTranspose2d(64, 32, 4, 2, 1),
                    nn.ReLU(),
                    nn.ConvTranspose2d(32, 1, 4, 2, 1),
                )

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                """Per-example negative ELBO (nats), one reparameterised sample."""
                mu, log_var = self.stats(self.enc(x).flatten(1)).chunk(2, dim=1)
                z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
                h = F.relu(self.dense(z)).view(-1, 64, 7, 7)
                logits = self.dec(h)
                nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
                kl = 0.5 * (mu.square() + log_var.exp() - 1.0 - log_var).sum(1)
                return nll.flatten(1).sum(1) + kl

        def vae_loss(model, x, y):
            del y
            return model(x).mean()

        model = VAE()
        return model, torch.optim.Adam(model.parameters(), lr=1e-3), vae_loss

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))

    class ResNet18(nn.Module):
        """CIFAR ResNet-18: 3x3 stem, no max-pool, BasicBlocks [2, 2, 2, 2] at 64..512."""

        def __init__(self, num_classes: int = NUM_CLASSES) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64))
            blocks, cin = [], 64
            for stage, width in enumerate((64, 128, 256, 512)):
                for block in range(2):
                    stride = 2 if stage > 0 and block == 0 else 1
                    blocks.append(BasicBlock(cin, width, stride))
                    cin = width
            self.blocks = nn.Sequential(*blocks)
            self.head = nn.Linear(512, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.blocks(F.relu(self.stem(x)))
            return self.head(h.mean(dim=(2, 3)))

    def ce_loss(model, x, y):
        return F.cross_entropy(model(x), y)

    model = ResNet18()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, optimizer, ce_loss


def torch_runner(
    workload: str,
    steps: int,
    batch: int,
    device=None,
    channels_last: bool = False,
    autocast_bf16: bool = False,
) -> Callable[[int], None]:
    """One call = ``steps`` eager PyTorch training steps (batch gather + scale to [0, 1]) on
    ``device`` (default: the CPU, one thread per core), ending with a device synchronisation;
    ``channels_last`` memory format, ``autocast_bf16`` = ``torch.autocast(bfloat16)``."""
    import torch
    from bench_report import torch_sync

    if device is None:
        torch.set_num_threads(os.cpu_count() or 1)
        device = torch.device("cpu")
    torch.manual_seed(0)
    model, optimizer, loss_fn = torch_models(workload)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    # The optimizer was built on the CPU parameters: rebuild it on the moved ones.
    optimizer = type(optimizer)(model.parameters(), **optimizer.defaults)
    model.train()
    height, width, channels = IMAGE_SHAPES[workload]
    n = steps * batch
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, height, width), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    images, labels = images.to(device), labels.to(device)

    def autocast():
        if autocast_bf16:
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def run_epoch(i: int) -> None:
        perm = torch.randperm(n, generator=gen).to(device)
        for step in range(steps):
            idx = perm[step * batch : (step + 1) * batch]
            x = images[idx].float().div_(255.0).contiguous(memory_format=memory_format)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(model, x, labels[idx])
            loss.backward()
            optimizer.step()
        torch_sync(device)

    return run_epoch


# ----------------------------------------------------------------------------------- report


BEGIN, END = "<!-- bench_train_step:begin -->", "<!-- bench_train_step:end -->"
COLUMNS = {
    "lax": "jaxrobust before (`JAXROBUST_CONV_IMPL=lax`)",
    "auto": "jaxrobust (`auto`)",
    "auto_opts": "jaxrobust (`auto` + `cpu_compiler_options()`)",
    "torch": "PyTorch eager",
}


def markdown(rows: list[dict], meta: dict) -> str:
    """The generated BENCHMARKS.md section: setup, command and one table row per workload."""
    header = " | ".join(COLUMNS.values())
    lines = [
        BEGIN,
        stamp_text(meta["stamp"], on=f"{meta['cpu']}, {meta['cores']} cores, no GPU"),
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Images/s (higher is better), batch {meta['batch']}, median of {meta['repeats']} "
        "interleaved timed epochs after a warm-up epoch (the slow `lax` column: "
        f"{meta['before_steps']} step(s), timed once).",
        "",
        f"| workload | steps/epoch | {header} | jaxrobust / PyTorch | gain vs before |",
        "|---|---:|" + "---:|" * len(COLUMNS) + "---:|---:|",
    ]
    for r in rows:
        best = max(r["auto"], r["auto_opts"])
        cells = " | ".join(f"{r[key]:.0f}" for key in COLUMNS)
        lines.append(
            f"| {r['workload']} | {r['steps']} | {cells} | "
            f"{r['auto'] / r['torch']:.2f}x / {r['auto_opts'] / r['torch']:.2f}x | "
            f"{best / r['lax']:.0f}x |"
        )
    lines += [
        "",
        "jaxrobust / PyTorch: without / with `cpu_compiler_options()`.",
        END,
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- suite mode

#: Suite presets (tools/gpu/suite.py): steps per timed epoch, batch size, timed repeats.
SUITE_SIZES = {
    "smoke": {
        "steps": {"vae": 2, "resnet18": 1},
        "batch": {"vae": 16, "resnet18": 2},
        "repeats": 1,
    },
    "cpu": {
        "steps": {"vae": 20, "resnet18": 3},
        "batch": {"vae": 128, "resnet18": 128},
        "repeats": 5,
    },
    "gpu": {
        "steps": {"vae": 200, "resnet18": 20},
        "batch": {"vae": 128, "resnet18": 128},
        "repeats": 5,
    },
}
#: Issue 14's targets on a GPU: jaxrobust / PyTorch images/s.
TARGETS = {"vae": 1.5, "resnet18": 1.3}
SUITE_WORKLOADS = {
    "vae": ("train_vae", "vae", "float32", "Quickstart VAE training step (fp32, Adam)"),
    "resnet18": ("train_resnet18", "resnet18", "float32", "CIFAR ResNet-18 training step (fp32)"),
    "resnet18_bf16": (
        "train_resnet18_bf16",
        "resnet18",
        "bfloat16",
        "CIFAR ResNet-18 training step (bf16 mixed precision)",
    ),
}


def suite_main(args, workloads: list[str]) -> int:
    """The suite mode: each workload's jaxrobust epoch beside PyTorch eager on the same device."""
    from bench_report import (
        figure,
        missing,
        open_suite,
        program_cost,
        ratio_spec,
        workload_record,
    )

    device, dev, recorder, sizes = open_suite(args, SUITE_SIZES)
    for name in workloads:
        key, base, dtype, title = SUITE_WORKLOADS[name]
        steps = args.steps or sizes["steps"][base]
        batch = sizes["batch"][base]
        items = steps * batch
        bf16 = dtype == "bfloat16"
        figures, runners, notes = {}, {}, []
        program = None
        jax_label = "jaxrobust, jitted epoch" + (" (compute_dtype bfloat16)" if bf16 else "")
        try:
            program = jax_program(
                base, steps, batch, "auto", device == "cpu", dtype,
                init="random" if args.preset == "smoke" else "model",
            )  # fmt: skip
            if bf16 and not computes_in(program["model"], IMAGE_SHAPES[base], "bf16"):
                raise ValueError("the network built with it computes in float32")
        except Exception as err:
            if not bf16:
                raise
            program = None
            figures["jaxrobust"] = missing(
                jax_label, "jaxrobust",
                f"option not available: architecture.compute_dtype = 'bfloat16' "
                f"({type(err).__name__}: {str(err)[:200]})",
            )  # fmt: skip
        cost = None
        if program is not None:
            runners["jaxrobust"] = program["run"]
            cost = program_cost(program["fn"], program["args"], program["compiled"])
        torch_labels = {"pytorch": "PyTorch eager (NCHW)"}
        if base == "resnet18":
            torch_labels["pytorch_cl"] = "PyTorch eager (channels_last)"
        for tkey in torch_labels:
            runners[tkey] = torch_runner(
                base, steps, batch, dev, channels_last=tkey == "pytorch_cl", autocast_bf16=bf16
            )
            if bf16:
                torch_labels[tkey] += " + autocast bf16"
        seconds = measure(runners, args.repeats or sizes["repeats"])
        if program is not None:
            figures["jaxrobust"] = figure(
                jax_label,
                seconds["jaxrobust"],
                items,
                side="jaxrobust",
                compile_s=program["compile_s"],
                cost=cost,
            )
        for tkey, label in torch_labels.items():
            figures[tkey] = figure(label, seconds[tkey], items, side="pytorch")
        best = max(torch_labels, key=lambda k: figures[k]["rate"])
        ratios = [
            ratio_spec(
                "jaxrobust", best, target=TARGETS[base], name="jaxrobust / PyTorch (faster layout)"
            )
        ]
        ratios += [
            ratio_spec("jaxrobust", k, name=f"jaxrobust / {torch_labels[k]}")
            for k in torch_labels
            if k != best
        ]
        notes.append(
            f"{steps} steps of batch {batch} per timed call (synthetic device-resident uint8 "
            "images); jaxrobust: one jitted make_train_epoch call (lax.scan over the steps); "
            "PyTorch: eager steps, synchronised at the end of each call."
        )
        if device == "gpu":
            notes.append("TF32 allowed on both sides (JAX's default for float32 on a GPU).")
        else:
            notes.append("jaxrobust compiled with cpu_compiler_options(), as training is.")
        record = workload_record(
            title,
            "images/s",
            figures,
            ratios,
            params={"steps": steps, "batch": batch, "compute_dtype": dtype},
            notes=notes,
        )
        recorder.add_profiled(key, record, args, program["run"] if program else None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="vae,resnet18")
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per epoch (default: vae 20, resnet18 3)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed epochs per measurement (default 5)"
    )
    parser.add_argument(
        "--before-steps",
        type=int,
        default=None,
        help="steps of the slow JAXROBUST_CONV_IMPL=lax epoch (default: vae 5, resnet18 1)",
    )
    parser.add_argument("--output", default=None, help="update this markdown file (section)")
    add_suite_arguments(parser)
    args = parser.parse_args(argv)

    workloads = [w for w in args.workloads.split(",") if w]
    if args.preset:
        unknown = set(workloads) - set(SUITE_WORKLOADS)
        if unknown:
            parser.error(f"unknown workload(s) {sorted(unknown)}; known: {sorted(SUITE_WORKLOADS)}")
        return suite_main(args, workloads)
    unknown = set(workloads) - set(IMAGE_SHAPES)
    if unknown:
        parser.error(f"unknown workload(s) {sorted(unknown)}; known: {sorted(IMAGE_SHAPES)}")
    batch = args.batch_size
    rows = []
    for workload in workloads:
        steps = args.steps or DEFAULT_STEPS[workload]
        runners: dict[str, Callable[[int], None]] = {}
        for key, options in (("auto", False), ("auto_opts", True)):
            runners[key], compile_s = jax_runner(workload, steps, batch, "auto", options)
            print(f"{workload}: compiled jaxrobust {key} in {compile_s:.1f} s", flush=True)
        runners["torch"] = torch_runner(workload, steps, batch)
        seconds = measure(runners, args.repeats or 5)
        row = {"workload": workload, "steps": steps}
        for key, values in seconds.items():
            row[key] = steps * batch / statistics.median(values)
            rates = ", ".join(f"{steps * batch / v:.0f}" for v in values)
            print(f"{workload}: {COLUMNS[key]}: {row[key]:.1f} img/s ({rates})", flush=True)
        # Before the fix: the plain lax gradient in the scanned epoch (very slow on CPU).
        before_steps = args.before_steps or BEFORE_STEPS[workload]
        run_lax, _ = jax_runner(workload, before_steps, batch, "lax", True)
        lax_seconds = measure({"lax": run_lax}, 1)["lax"]
        row["lax"] = before_steps * batch / lax_seconds[0]
        print(f"{workload}: {COLUMNS['lax']}: {row['lax']:.1f} img/s", flush=True)
        rows.append(row)

    meta = {
        "stamp": run_stamp(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "command": "python " + " ".join(["tools/bench_train_step.py", *(argv or sys.argv[1:])]),
        "batch": batch,
        "repeats": args.repeats or 5,
        "before_steps": ", ".join(f"{w} {args.before_steps or BEFORE_STEPS[w]}" for w in workloads),
    }
    section = markdown(rows, meta)
    print()
    print(section)
    if args.output:
        write_section(Path(args.output), BEGIN, END, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

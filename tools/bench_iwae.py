"""IWAE log p(x) throughput (images/s): jaxrobust's jitted ``iwae`` score vs a PyTorch twin.

Task: the importance-weighted estimate log p_K(x) = logsumexp_k log w_k - log K with K = 1000
importance samples (Burda et al. 2016) for the quickstart VAE of ``experiments/quickstart.py``
(conv encoder 4x4 stride 2, widths 32, 64 -> dense 2 * 16; latent 16; decoder dense -> 7x7x64 ->
transposed 4x4 stride-2 convs 32 then 1; Bernoulli logits) on 28x28x1 images: synthetic uint8
images scaled to [0, 1], or the cached Fashion-MNIST test split with ``--real``.

- jaxrobust: ``build_model({"kind": "vae", ..., "iwae_samples": K, "iwae_chunk": C})`` and its
  ``iwae`` score (``scores.importance``: C samples at a time by ``vmap``, chunks under
  ``lax.scan``, streaming logsumexp), jitted for an image batch of B and compiled once (compile
  time reported separately), as is and with ``conv_ops.cpu_compiler_options()``; a Python loop
  over the image batches.
- PyTorch: a twin module holding the *same* weights (copied from jaxrobust's initialisation:
  NHWC -> NCHW, HWIO -> OIHW, dense rows/columns permuted from HWC to CHW order, and
  jaxrobust's transposed convolution -- an unflipped kernel on the stride-dilated input with
  padding (2, 2) -- as ``conv_transpose2d(padding=1)`` with the kernel flipped in space and
  stored (in, out, kh, kw)), written as a careful PyTorch user would: ``torch.inference_mode``,
  ``torch.set_num_threads(cores)``, per batch of B images one encoder pass, then chunks of C
  samples as one ``[C * B]`` decoder pass each, log-weights ``[K, B]``, one ``logsumexp``.

Parity check first (on a few images, K small, the same eps ~ N(0, I) on both sides: the eps that
jaxrobust draws for sample k, ``normal(fold_in(key, k), [n, 16])``, are fed to PyTorch): the
individual log-weights (jaxrobust's K = 1 score for each key) and log p_K(x) must agree to 1e-4
relative, with the initial weights and again with random biases (the initial biases are zero).

Timing: the two sides are interleaved in one process (one warm-up call each, then ``--repeats``
rounds), throughput = images / median seconds. Each side is timed for a few (B, C) settings on
``--sweep-images`` images and the best of each is then timed on ``--timed-images`` images.

Usage::

    python tools/bench_iwae.py --output BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_report import add_suite_arguments, measure, run_stamp, stamp_text, write_section

IMAGE_SHAPE = (28, 28, 1)
LATENT = 16
LOG_2PI = math.log(2.0 * math.pi)


def model_config(samples: int, chunk: int) -> dict:
    return {
        "kind": "vae",
        "latent_dim": LATENT,
        "encoder_features": (32, 64),
        "decoder_features": (64, 32),
        "iwae_samples": samples,
        "iwae_chunk": chunk,
    }


def parse_settings(text: str) -> list[tuple[int, int]]:
    """``"100:50,200:25"`` -> [(100, 50), (200, 25)]: (image batch B, sample chunk C)."""
    pairs = []
    for item in text.split(","):
        batch, chunk = item.split(":")
        pairs.append((int(batch), int(chunk)))
    return pairs


def load_images(num: int, real: bool) -> np.ndarray:
    """float32 [num, 28, 28, 1] in [0, 1]: Fashion-MNIST test (``real``) or synthetic uint8."""
    if real:
        from jaxrobust.data import load

        images, _ = load("fashion_mnist", "test", sources=["cache"], progress=False)
        images = np.asarray(images[:num])
        if len(images) < num:
            raise ValueError(f"fashion_mnist test has {len(images)} images, asked for {num}.")
    else:
        images = np.random.default_rng(0).integers(0, 256, (num, *IMAGE_SHAPE), dtype=np.uint8)
    return images.astype(np.float32) / 255.0


# ----------------------------------------------------------------------------------- jaxrobust


def jax_init():
    """jaxrobust's initial variables of the quickstart VAE (independent of K and C)."""
    import jax
    import jax.numpy as jnp

    from jaxrobust.models import build_model

    model = build_model("vae", model_config(1, 1), IMAGE_SHAPE, 10)
    return model.init(jax.random.key(0), jnp.zeros((1, *IMAGE_SHAPE), jnp.float32))


def jax_iwae_program(samples: int, chunk: int, batch: int, options: bool) -> dict:
    """``{"compiled", "compile_s", "fn", "args"}``: the jitted score ``(variables, images [B,
    ...], key) -> [B]`` compiled for an image batch of ``batch``."""
    import jax
    import jax.numpy as jnp

    from jaxrobust.models import build_model
    from jaxrobust.nn.conv_ops import cpu_compiler_options

    model = build_model("vae", model_config(samples, chunk), IMAGE_SHAPE, 10)
    variables = jax_init()
    images = jnp.zeros((batch, *IMAGE_SHAPE), jnp.float32)
    fn = jax.jit(lambda v, x, k: model.log_likelihood(v, x, key=k))
    args = (variables, images, jax.random.key(0))
    start = time.perf_counter()
    compiled = fn.lower(*args).compile(
        compiler_options=(cpu_compiler_options() or None) if options else None
    )
    return {"compiled": compiled, "compile_s": time.perf_counter() - start, "fn": fn, "args": args}


def jax_iwae(samples: int, chunk: int, batch: int, options: bool):
    """(compiled score ``(variables, images [B, ...], key) -> [B]``, compile seconds)."""
    program = jax_iwae_program(samples, chunk, batch, options)
    return program["compiled"], program["compile_s"]


def jax_runner(
    variables,
    images: np.ndarray,
    samples: int,
    chunk: int,
    batch: int,
    options: bool,
    program: dict | None = None,
):
    """(run(i) -> log p_K(x) of all ``images``, compile seconds); the warm-up call
    ``run(-1)`` scores the first batch only."""
    import jax
    import jax.numpy as jnp

    if len(images) % batch:
        raise ValueError(f"{len(images)} images are not a multiple of the batch {batch}.")
    program = program or jax_iwae_program(samples, chunk, batch, options)
    compiled = program["compiled"]
    device_images = jnp.asarray(images)
    variables = jax.device_put(variables)

    def run(i: int) -> jax.Array:
        key = jax.random.key(1000 + i)
        stop = batch if i < 0 else len(images)
        out = [
            compiled(variables, device_images[s : s + batch], jax.random.fold_in(key, s))
            for s in range(0, stop, batch)
        ]
        return jax.block_until_ready(jnp.concatenate(out))

    return run, program["compile_s"]


# ----------------------------------------------------------------------------------- PyTorch


def torch_vae():
    """The PyTorch twin (NCHW): ``encode(x) -> (mu, log_var)``, ``decode(z) -> logits``."""
    from torch import nn
    from torch.nn import functional as F

    class VAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 4, 2, 1)  # flax SAME on 28 -> 14: padding (1, 1)
            self.conv2 = nn.Conv2d(32, 64, 4, 2, 1)
            self.stats = nn.Linear(7 * 7 * 64, 2 * LATENT)
            self.dense = nn.Linear(LATENT, 7 * 7 * 64)
            self.deconv1 = nn.ConvTranspose2d(64, 32, 4, 2, 1)
            self.deconv2 = nn.ConvTranspose2d(32, 1, 4, 2, 1)

        def encode(self, x):
            h = F.relu(self.conv2(F.relu(self.conv1(x))))
            return self.stats(h.flatten(1)).chunk(2, dim=1)

        def decode(self, z):
            h = F.relu(self.dense(z)).view(-1, 64, 7, 7)
            return self.deconv2(F.relu(self.deconv1(h)))

    return VAE()


def copy_weights(module, variables) -> None:
    """jaxrobust variables -> the twin, in place (see the module docstring for the mapping)."""
    import jax
    import torch

    p = jax.tree_util.tree_map(np.asarray, variables["params"])
    enc, dec = p["encoder"], p["decoder"]

    def conv(w):  # HWIO -> OIHW
        return w.transpose(3, 2, 0, 1)

    def deconv(w):  # unflipped HWIO on the dilated input -> (in, out, kh, kw), flipped
        return w[::-1, ::-1].transpose(2, 3, 0, 1)

    # Dense after the encoder: rows in (h, w, c) order -> (c, h, w) order of torch's flatten.
    stats = enc["Dense_0"]["kernel"].reshape(7, 7, 64, -1).transpose(2, 0, 1, 3).reshape(3136, -1)
    # Dense of the decoder: columns (h, w, c) -> (c, h, w) of torch's view(-1, 64, 7, 7).
    dense_w = dec["Dense_0"]["kernel"].reshape(-1, 7, 7, 64).transpose(0, 3, 1, 2).reshape(-1, 3136)
    dense_b = dec["Dense_0"]["bias"].reshape(7, 7, 64).transpose(2, 0, 1).reshape(-1)
    values = {
        "conv1.weight": conv(enc["Conv_0"]["kernel"]),
        "conv1.bias": enc["Conv_0"]["bias"],
        "conv2.weight": conv(enc["Conv_1"]["kernel"]),
        "conv2.bias": enc["Conv_1"]["bias"],
        "stats.weight": stats.T,
        "stats.bias": enc["Dense_0"]["bias"],
        "dense.weight": dense_w.T,
        "dense.bias": dense_b,
        "deconv1.weight": deconv(dec["ConvTranspose_0"]["kernel"]),
        "deconv1.bias": dec["ConvTranspose_0"]["bias"],
        "deconv2.weight": deconv(dec["ConvTranspose_1"]["kernel"]),
        "deconv2.bias": dec["ConvTranspose_1"]["bias"],
    }
    state = {k: torch.from_numpy(np.array(v, np.float32)) for k, v in values.items()}
    module.load_state_dict(state, strict=True)


def torch_chunk_log_weights(model, x, mu, log_var, eps):
    """log w ``[c, B]`` for eps ``[c, B, latent]`` (z = mu + exp(log_var / 2) * eps)."""
    from torch.nn import functional as F

    c, b = eps.shape[:2]
    z = mu + (0.5 * log_var).exp() * eps
    logits = model.decode(z.reshape(c * b, LATENT)).view(c, b, *x.shape[1:])
    bce = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
    log_lik = -bce.sum(dim=(2, 3, 4))
    log_prior = -0.5 * (LOG_2PI + z.square()).sum(-1)
    log_q = -0.5 * (LOG_2PI + log_var + eps.square()).sum(-1)
    return log_lik + log_prior - log_q


def torch_iwae(model, x, samples: int, chunk: int, eps_fn: Callable | None = None):
    """log p_K(x) ``[B]``: one encoder pass, K samples in chunks of ``chunk``, one logsumexp."""
    import torch

    mu, log_var = model.encode(x)
    log_w = x.new_empty(samples, x.shape[0])
    for start in range(0, samples, chunk):
        c = min(chunk, samples - start)
        eps = (
            torch.randn(c, *mu.shape, device=mu.device)
            if eps_fn is None
            else eps_fn(start, c).to(mu.device)
        )
        log_w[start : start + c] = torch_chunk_log_weights(model, x, mu, log_var, eps)
    return torch.logsumexp(log_w, dim=0) - math.log(samples), log_w


def torch_runner(variables, images: np.ndarray, samples: int, chunk: int, batch: int, device=None):
    """run(i) -> log p_K(x) of all ``images`` (NCHW float32, batches of ``batch``) on ``device``
    (default: the CPU with one thread per core); ``run(-1)`` scores the first batch only."""
    import torch
    from bench_report import torch_sync

    if device is None:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        device = torch.device("cpu")
    torch.manual_seed(0)
    model = torch_vae().eval()
    copy_weights(model, variables)
    model = model.to(device)
    x_all = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)
    if len(images) % batch:
        raise ValueError(f"{len(images)} images are not a multiple of the batch {batch}.")

    def run(i: int):
        stop = batch if i < 0 else len(images)
        with torch.inference_mode():
            out = torch.cat(
                [
                    torch_iwae(model, x_all[s : s + batch], samples, chunk)[0]
                    for s in range(0, stop, batch)
                ]
            )
        torch_sync(device)
        return out

    return run


# ----------------------------------------------------------------------------------- parity


def parity(variables, images: np.ndarray, samples: int, device=None) -> dict:
    """Max relative differences of the log-weights and of log p_K(x), same eps both sides
    (PyTorch on ``device``, default the CPU)."""
    import jax
    import jax.numpy as jnp
    import torch

    key = jax.random.key(7)
    n = len(images)
    x = jnp.asarray(images)
    single, _ = jax_iwae(1, 1, n, False)
    # jaxrobust's K = 1 score with key k' is the log-weight of eps = normal(fold_in(k', 0), ...).
    keys = [jax.random.fold_in(key, k) for k in range(samples)]
    jax_log_w = np.stack([np.asarray(single(variables, x, k)) for k in keys])
    eps = np.stack(
        [np.asarray(jax.random.normal(jax.random.fold_in(k, 0), (n, LATENT))) for k in keys]
    )
    many, _ = jax_iwae(samples, max(1, samples // 3), n, False)
    jax_ll = np.asarray(many(variables, x, key))
    # The K-sample score draws sample k from fold_in(key, k).
    eps_many = np.stack(
        [
            np.asarray(jax.random.normal(jax.random.fold_in(key, k), (n, LATENT)))
            for k in range(samples)
        ]
    )

    model = torch_vae().eval()
    copy_weights(model, variables)
    device = device or torch.device("cpu")
    model = model.to(device)
    x_t = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)
    with torch.inference_mode():
        _, torch_log_w = torch_iwae(
            model, x_t, samples, 5, lambda s, c: torch.from_numpy(eps[s : s + c])
        )
        torch_ll, _ = torch_iwae(
            model, x_t, samples, 5, lambda s, c: torch.from_numpy(eps_many[s : s + c])
        )

    def rel(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))

    return {
        "log_w": rel(torch_log_w.cpu().numpy(), jax_log_w),
        "log_p": rel(torch_ll.cpu().numpy(), jax_ll),
        "mean_log_p": float(np.mean(jax_ll)),
    }


def randomised_biases(variables, seed: int = 3):
    """``variables`` with every bias drawn from N(0, 0.1^2) (the initial biases are zero)."""
    import jax

    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if getattr(path[-1], "key", None) == "bias":
            return (0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)
        return leaf

    return jax.tree_util.tree_map_with_path(draw, variables)


# ----------------------------------------------------------------------------------- timing


# ----------------------------------------------------------------------------------- report


BEGIN, END = "<!-- bench_iwae:begin -->", "<!-- bench_iwae:end -->"


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        BEGIN,
        f"{stamp_text(meta['stamp'], on=meta['device'])} Torch threads: {meta['threads']}. "
        f"Images: {meta['images']}.",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Parity (same eps both sides, {meta['parity_images']} images, K = "
        f"{meta['parity_samples']}): max relative difference of the log-weights "
        f"{meta['parity']['log_w']:.1e}, of log p_K(x) {meta['parity']['log_p']:.1e} "
        f"(random biases: {meta['parity_bias']['log_w']:.1e}, "
        f"{meta['parity_bias']['log_p']:.1e}).",
        "",
        f"K = {meta['samples']} importance samples per image. {meta['scope']}",
        "",
        "| implementation | image batch B | sample chunk C | compile (s, once) | images/s | "
        "s per 10,000 images | jaxrobust / PyTorch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    torch_rate = next(r["rate"] for r in rows if r["side"] == "torch")
    for r in rows:
        compile_s = f"{r['compile']:.1f}" if r.get("compile") is not None else "-"
        ratio = f"{r['rate'] / torch_rate:.2f}x" if r["side"] != "torch" else "1.00x"
        lines.append(
            f"| {r['name']} | {r['batch']} | {r['chunk']} | {compile_s} | {r['rate']:.1f} | "
            f"{10_000 / r['rate']:.0f} | {ratio} |"
        )
    lines += ["", meta["sweep"], END]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- suite mode

#: Suite presets (tools/gpu/suite.py). ``images``: at most this many timed (fewer when the time
#: budget is short; the 10,000-image time is then extrapolated); settings: image batch B :
#: sample chunk C, swept on ``sweep_images``.
SUITE_SIZES = {
    "smoke": {"samples": 8, "images": 8, "sweep_images": 4, "jax": "4:4", "torch": "4:4",
              "repeats": 1, "parity_images": 2, "parity_samples": 3},
    "cpu": {"samples": 1000, "images": 200, "sweep_images": 20, "jax": "20:50",
            "torch": "20:100", "repeats": 3, "parity_images": 6, "parity_samples": 12},
    "gpu": {"samples": 1000, "images": 10_000, "sweep_images": 1000,
            "jax": "500:100,1000:50", "torch": "500:100,1000:50,250:200",
            "repeats": 3, "parity_images": 6, "parity_samples": 12},
}  # fmt: skip
TARGET = 2.0  # issue 14, on a GPU: jaxrobust / PyTorch images/s


def suite_images(num: int) -> tuple[np.ndarray, str]:
    """float32 [num, 28, 28, 1]: the cached Fashion-MNIST test split, else synthetic images."""
    try:
        images = load_images(num, real=True)
        return images, f"Fashion-MNIST test (first {num:,})"
    except Exception as err:  # no cache here: the cost does not depend on the pixels
        return load_images(num, real=False), (
            f"synthetic uint8 / 255 (Fashion-MNIST cache unavailable: {type(err).__name__})"
        )


def suite_main(args) -> int:
    """The suite mode: the best (B, C) of each side, then both timed on the same images."""
    from bench_report import (
        figure,
        fit_count,
        open_suite,
        program_cost,
        ratio_spec,
        workload_record,
    )

    start = time.perf_counter()
    device, dev, recorder, sizes = open_suite(args, SUITE_SIZES)
    budget = args.budget_s or float("inf")
    K = args.samples or sizes["samples"]
    repeats = args.repeats or sizes["repeats"]
    variables = jax_init()
    images, source = suite_images(sizes["images"])
    checks = {}
    for label, v in (("init", variables), ("bias", randomised_biases(variables))):
        checks[label] = parity(
            v, images[: sizes["parity_images"]], sizes["parity_samples"], device=dev
        )
        if args.preset == "smoke":  # the code path once is enough
            checks["bias"] = checks["init"]
            break
    options = device == "cpu"
    sweep, best = [], {}
    sweep_images = images[: sizes["sweep_images"]]
    for side in ("jax", "torch"):
        for batch, chunk in parse_settings(sizes[side]):
            if side == "jax":
                program = jax_iwae_program(K, chunk, batch, options)
                run, _ = jax_runner(variables, sweep_images, K, chunk, batch, options, program)
            else:
                program = None
                run = torch_runner(variables, sweep_images, K, chunk, batch, dev)
            secs = measure({side: run}, 1)[side][0]
            rate = len(sweep_images) / secs
            sweep.append({"side": side, "batch": batch, "chunk": chunk, "images_per_s": rate})
            print(f"sweep {side} B={batch} C={chunk}: {rate:.1f} img/s", flush=True)
            if rate > best.get(side, {"rate": 0.0})["rate"]:
                best[side] = {"rate": rate, "batch": batch, "chunk": chunk, "program": program}
    # As many images as fit in what is left of the budget (all of them, given the time).
    bj, bt = best["jax"]["batch"], best["torch"]["batch"]
    multiple = math.lcm(bj, bt)
    per_image = (repeats + 0.5) * (1 / best["jax"]["rate"] + 1 / best["torch"]["rate"])
    left = budget - (time.perf_counter() - start) - 15.0
    num = fit_count(
        per_image, 0.8 * left, maximum=len(images) // multiple * multiple, minimum=multiple,
        multiple=multiple,
    )  # fmt: skip
    timed = images[:num]
    program = best["jax"]["program"]
    jax_run, compile_s = jax_runner(variables, timed, K, best["jax"]["chunk"], bj, options, program)
    runners = {
        "jaxrobust": jax_run,
        "pytorch": torch_runner(variables, timed, K, best["torch"]["chunk"], bt, dev),
    }
    cost = program_cost(program["fn"], program["args"], program["compiled"], calls=num // bj)
    seconds = measure(runners, repeats)
    figures = {
        "jaxrobust": figure(
            f"jaxrobust `iwae` score (jit), B = {bj}, C = {best['jax']['chunk']}",
            seconds["jaxrobust"], num, side="jaxrobust", compile_s=compile_s, cost=cost,
            batch=bj, chunk=best["jax"]["chunk"],
        ),
        "pytorch": figure(
            f"PyTorch inference_mode, batched samples, B = {bt}, C = {best['torch']['chunk']}",
            seconds["pytorch"], num, side="pytorch", batch=bt, chunk=best["torch"]["chunk"],
        ),
    }  # fmt: skip
    ratios = [ratio_spec("jaxrobust", "pytorch", target=TARGET, name="jaxrobust / PyTorch")]
    notes = [
        f"K = {K} importance samples per image, quickstart VAE; images: {source}; {num:,} "
        f"images timed, median of {repeats} interleaved runs after a warm-up batch"
        + ("." if num >= 10_000 else "; the 10,000-image time is extrapolated linearly."),
        f"Parity (same eps both sides, {sizes['parity_images']} images, K = "
        f"{sizes['parity_samples']}): max relative difference of the log-weights "
        f"{checks['init']['log_w']:.1e}, of log p_K(x) {checks['init']['log_p']:.1e} (random "
        f"biases: {checks['bias']['log_w']:.1e}, {checks['bias']['log_p']:.1e}).",
        "Best (B, C) of each side from a sweep on "
        f"{len(sweep_images):,} images: "
        + "; ".join(
            f"{r['side']} B={r['batch']} C={r['chunk']}: {r['images_per_s']:.1f}/s" for r in sweep
        )
        + ".",
    ]
    record = workload_record(
        f"IWAE log p(x), K = {K}",
        "images/s",
        figures,
        ratios,
        params={
            "samples": K, "timed_images": num, "parity": checks, "sweep": sweep,
            "seconds_per_10000_images": {k: 10_000 / f["rate"] for k, f in figures.items()},
        },
        notes=notes,
    )  # fmt: skip
    recorder.add_profiled("iwae", record, args, lambda i: jax_run(-1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=None, help="K importance samples (1000)")
    parser.add_argument("--timed-images", type=int, default=10_000)
    parser.add_argument("--sweep-images", type=int, default=20)
    parser.add_argument("--jax-settings", default="20:25,20:50,10:100", help="B:C,...")
    parser.add_argument("--torch-settings", default="20:50,20:100,10:250", help="B:C,...")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (3)")
    parser.add_argument("--parity-images", type=int, default=6)
    parser.add_argument("--parity-samples", type=int, default=12)
    parser.add_argument("--real", action="store_true", help="Fashion-MNIST test from the cache")
    parser.add_argument("--output", default=None, help="update this markdown file (section)")
    add_suite_arguments(parser)
    args = parser.parse_args(argv)
    if args.preset:
        return suite_main(args)
    args.samples = args.samples or 1000
    args.repeats = args.repeats or 3

    import torch

    from jaxrobust.devices import describe_devices

    variables = jax_init()
    images = load_images(max(args.timed_images, args.sweep_images), args.real)

    checks = {}
    for label, v in (("init", variables), ("bias", randomised_biases(variables))):
        checks[label] = parity(v, images[: args.parity_images], args.parity_samples)
        print(f"parity ({label} weights): {checks[label]}", flush=True)
        if max(checks[label]["log_w"], checks[label]["log_p"]) > 1e-4:
            raise SystemExit("jaxrobust and PyTorch disagree: not benchmarking.")

    K = args.samples
    sweep_lines = []
    best = {}
    for side, settings in (("jax", args.jax_settings), ("torch", args.torch_settings)):
        for batch, chunk in parse_settings(settings):
            if side == "jax":
                for options in (False, True):
                    name = "jax_opts" if options else "jax"
                    run, compile_s = jax_runner(
                        variables, images[: args.sweep_images], K, chunk, batch, options
                    )
                    secs = measure({name: run}, 1)[name][0]
                    rate = args.sweep_images / secs
                    print(f"sweep {name} B={batch} C={chunk}: {rate:.1f} img/s "
                          f"(compile {compile_s:.1f} s)", flush=True)  # fmt: skip
                    sweep_lines.append(f"{name} B={batch} C={chunk}: {rate:.0f}")
                    if rate > best.get(name, (0,))[0]:
                        best[name] = (rate, batch, chunk)
            else:
                run = torch_runner(variables, images[: args.sweep_images], K, chunk, batch)
                secs = measure({"torch": run}, 1)["torch"][0]
                rate = args.sweep_images / secs
                print(f"sweep torch B={batch} C={chunk}: {rate:.1f} img/s", flush=True)
                sweep_lines.append(f"torch B={batch} C={chunk}: {rate:.0f}")
                if rate > best.get("torch", (0,))[0]:
                    best["torch"] = (rate, batch, chunk)

    timed = images[: args.timed_images]
    runners, compiles = {}, {}
    for name in ("jax", "jax_opts"):
        _, batch, chunk = best[name]
        runners[name], compiles[name] = jax_runner(
            variables, timed, K, chunk, batch, name == "jax_opts"
        )
    _, batch, chunk = best["torch"]
    runners["torch"] = torch_runner(variables, timed, K, chunk, batch)
    seconds = measure(runners, args.repeats)
    names = {
        "jax": "jaxrobust `iwae` (jit)",
        "jax_opts": "jaxrobust `iwae` (jit + `cpu_compiler_options()`)",
        "torch": "PyTorch (inference_mode, batched samples)",
    }
    rows = []
    for key, values in seconds.items():
        rate = len(timed) / statistics.median(values)
        rates = ", ".join(f"{len(timed) / v:.1f}" for v in values)
        print(f"{names[key]}: {rate:.1f} img/s ({rates})", flush=True)
        _, batch, chunk = best[key]
        rows.append({"side": key, "name": names[key], "batch": batch, "chunk": chunk,
                     "rate": rate, "compile": compiles.get(key)})  # fmt: skip

    scope = (
        f"Timed on the first {len(timed):,} images (median of {args.repeats} interleaved calls "
        "after a warm-up)"
        + (
            "; the full 10,000-image run is too slow for this CPU's time budget, so the "
            '"s per 10,000 images" column extrapolates linearly.'
            if len(timed) < 10_000
            else "."
        )
    )
    meta = {
        "stamp": run_stamp(),
        "device": describe_devices(),
        "threads": torch.get_num_threads(),
        "images": "Fashion-MNIST test" if args.real else "synthetic uint8 28x28x1 / 255",
        "command": "python " + " ".join(["tools/bench_iwae.py", *(argv or sys.argv[1:])]),
        "parity_images": args.parity_images,
        "parity_samples": args.parity_samples,
        "parity": checks["init"],
        "parity_bias": checks["bias"],
        "samples": K,
        "scope": scope,
        "sweep": f"Chunk sweep on {args.sweep_images} images, one call each after a warm-up "
        "(images/s; "
        "`jax_opts` = with `cpu_compiler_options()`): " + "; ".join(sweep_lines) + ".",
    }
    section = markdown(rows, meta)
    print(section)
    if args.output:
        write_section(Path(args.output), BEGIN, END, section, "## IWAE log p(x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

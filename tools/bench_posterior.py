"""Posterior scoring and ensemble training throughput: jaxrobust vs a PyTorch loop, one script.

1. Scoring (issue: S = 200 posterior samples, K = 100 importance samples, 10,000 inputs): the
   per-sample importance-weighted log p(x | theta_s) that the Bayesian-VAE scores need, for the
   quickstart VAE of ``tools/bench_iwae.py`` with S decoder samples (the initial decoder plus
   N(0, 0.01^2) noise: a stand-in posterior, the cost does not depend on the values).
   - jaxrobust: :func:`jaxrobust.inference.predict.posterior_log_likelihoods` of the model's
     ``iwae`` score, jitted per image batch (samples by ``lax.map`` on CPU, vmapped chunks of 8
     on GPU; K in chunks by ``vmap`` under ``lax.scan``), a Python loop over image batches.
   - PyTorch, as the original code evaluates a posterior: a Python loop over the S samples,
     each loading its decoder weights (``load_state_dict`` of pre-converted tensors) and then
     running the careful batched IWAE of ``bench_iwae.torch_iwae`` over the image batches,
     under ``torch.inference_mode`` with all cores.
   Parity first: for 2 samples, K = 6, the same eps on both sides (jaxrobust draws sample k of
   posterior sample s from ``normal(fold_in(split(key, S)[s], k))``): log p(x | theta_s) agree.
   Both sides are timed on ``--timed-images`` images (interleaved, median of ``--repeats``) and
   reported as images/s (all S x K work per image) with the projected time for 10,000 images.
2. Ensemble training: one jitted epoch of M = ``--members`` members as one program (vmapped and
   mapped: ``jaxrobust.runs``) vs M single-member epochs (``tools/bench_runs.py``'s timing).

    python tools/bench_posterior.py --output BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from bench_iwae import LATENT, copy_weights, jax_init, model_config, torch_iwae, torch_vae
from bench_report import measure, run_stamp, stamp_text, write_section

IMAGE_SHAPE = (28, 28, 1)
BEGIN, END = "<!-- bench_posterior:begin -->", "<!-- bench_posterior:end -->"


def posterior_stack(num_samples: int):
    """(PosteriorSamples over the decoder, full variables of every sample as NumPy dicts)."""
    import jax

    from jaxrobust.inference import subset
    from jaxrobust.inference.samples import stack_samples

    variables = jax_init()
    params = variables["params"]
    decoder = subset.select(params, "^decoder/")
    keys = jax.random.split(jax.random.key(11), num_samples)

    def perturb(key):
        leaves, treedef = jax.tree.flatten(decoder)
        ks = jax.random.split(key, len(leaves))
        noisy = [x + 0.01 * jax.random.normal(k, x.shape) for x, k in zip(leaves, ks, strict=True)]
        return jax.tree.unflatten(treedef, noisy)

    samples = jax.vmap(perturb)(keys)
    return stack_samples(samples, subset.reject(params, "^decoder/"))


def jax_scorer(num_importance: int, chunk: int):
    """Jitted ``(posterior, images [B], key) -> log_lik [S, B]``."""
    import jax

    from jaxrobust.inference.predict import posterior_log_likelihoods
    from jaxrobust.models import build_model

    model = build_model("vae", model_config(num_importance, chunk), IMAGE_SHAPE, 10)

    def iwae(v, x, k):
        return model.log_likelihood(v, x, key=k)

    return jax.jit(lambda p, x, k: posterior_log_likelihoods(iwae, p, x, k))


def jax_runner(posterior, images: np.ndarray, num_importance: int, chunk: int, batch: int):
    """(run(i) -> log_lik of all ``images``, compile seconds); CPU compiler options as training."""
    import time

    import jax
    import jax.numpy as jnp

    from jaxrobust.nn.conv_ops import cpu_compiler_options

    x = jnp.asarray(images)
    start = time.perf_counter()
    lowered = jax_scorer(num_importance, chunk).lower(posterior, x[:batch], jax.random.key(0))
    compiled = lowered.compile(compiler_options=cpu_compiler_options() or None)
    compile_seconds = time.perf_counter() - start

    def run(i: int):
        key = jax.random.key(100 + i)
        out = [
            compiled(posterior, x[s : s + batch], jax.random.fold_in(key, s))
            for s in range(0, len(images), batch)
        ]
        return jax.block_until_ready(out)

    return run, compile_seconds


def torch_state_dicts(posterior) -> list[dict]:
    """Every sample's full weights as a PyTorch state dict (converted once, before timing)."""
    import jax

    from jaxrobust.inference.samples import sample_variables

    module = torch_vae()
    dicts = []
    for s in range(posterior.num_samples):
        one = jax.tree.map(lambda x, s=s: x[s], posterior.samples)
        copy_weights(module, sample_variables(one, posterior.fixed))
        dicts.append({k: v.clone() for k, v in module.state_dict().items()})
    return dicts


def torch_runner(state_dicts, images: np.ndarray, num_importance: int, chunk: int, batch: int):
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    model = torch_vae().eval()
    x_all = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))

    def run(i: int):
        rows = []
        with torch.inference_mode():
            for state in state_dicts:  # the original evaluation: one posterior sample at a time
                model.load_state_dict(state)
                rows.append(
                    torch.cat(
                        [
                            torch_iwae(model, x_all[s : s + batch], num_importance, chunk)[0]
                            for s in range(0, len(images), batch)
                        ]
                    )
                )
        return torch.stack(rows)

    return run


def parity(posterior, images: np.ndarray) -> float:
    """Max relative difference of log p(x | theta_s), 2 samples, K = 6, the same eps."""
    import jax
    import jax.numpy as jnp
    import torch

    from jaxrobust.inference.samples import PosteriorSamples

    two = PosteriorSamples(jax.tree.map(lambda x: x[:2], posterior.samples), posterior.fixed)
    k_samples, n = 6, len(images)
    score = jax_scorer(k_samples, 3)
    key = jax.random.key(5)
    ours = np.asarray(score(two, jnp.asarray(images), key))
    dicts = torch_state_dicts(two)
    model = torch_vae().eval()
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    worst = 0.0
    for s, sample_key in enumerate(jax.random.split(key, 2)):
        eps = np.stack(
            [
                np.asarray(jax.random.normal(jax.random.fold_in(sample_key, k), (n, LATENT)))
                for k in range(k_samples)
            ]
        )
        model.load_state_dict(dicts[s])
        with torch.inference_mode():
            theirs, _ = torch_iwae(
                model, x, k_samples, 3, lambda a, c, e=eps: torch.from_numpy(e[a : a + c])
            )
        rel = np.abs(theirs.numpy() - ours[s]) / np.maximum(np.abs(ours[s]), 1e-6)
        worst = max(worst, float(np.max(rel)))
    return worst


def ensemble_rates(members: int, images: int, repeats: int) -> list[tuple[str, float]]:
    """Member-images/s of one member alone and of M members as one program (vmap, map)."""
    import jax.numpy as jnp
    from bench_runs import time_epochs

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(0, 256, (images, *IMAGE_SHAPE), dtype=np.uint8))
    y = jnp.zeros(images, jnp.int32)
    rows = [("1 member", time_epochs(None, None, x, y, repeats))]
    for strategy in ("vmap", "map"):
        rows.append(
            (f"{members} members, {strategy}", time_epochs(members, strategy, x, y, repeats))
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--importance", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--timed-images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--ensemble-images", type=int, default=3200)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)

    from jaxrobust.devices import describe_devices

    rng = np.random.default_rng(0)
    images = (rng.integers(0, 256, (args.timed_images, *IMAGE_SHAPE)) / 255.0).astype(np.float32)
    posterior = posterior_stack(args.samples)
    max_rel = parity(posterior, images[:4])
    if max_rel > 1e-4:
        raise SystemExit(f"parity failed: max relative difference {max_rel:.2e}")
    ours, compile_seconds = jax_runner(posterior, images, args.importance, args.chunk, args.batch)
    theirs = torch_runner(
        torch_state_dicts(posterior), images, args.importance, args.chunk, args.batch
    )
    times = measure({"jaxrobust": ours, "pytorch": theirs}, args.repeats)
    rate = {name: args.timed_images / float(np.median(t)) for name, t in times.items()}
    ensemble = ensemble_rates(args.members, args.ensemble_images, args.repeats)
    lines = [
        BEGIN,
        stamp_text(run_stamp(), on=describe_devices()),
        "",
        f"**Posterior scoring**: S = {args.samples} decoder samples x K = {args.importance} "
        f"importance samples per image (quickstart VAE), {args.timed_images} images timed "
        f"(batches of {args.batch}), median of {args.repeats}; parity max relative difference "
        f"{max_rel:.1e}; jaxrobust compile {compile_seconds:.1f} s (once).",
        "",
        "| implementation | images/s | projected for 10,000 images | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name in ("jaxrobust", "pytorch"):
        label = {"jaxrobust": "jaxrobust (one jitted call per batch)",
                 "pytorch": "PyTorch, loop over samples"}[name]  # fmt: skip
        hours = 10_000 / rate[name] / 3600
        lines.append(
            f"| {label} | {rate[name]:.2f} | {hours:.1f} h | {rate[name] / rate['pytorch']:.2f}x |"
        )
    lines += [
        "",
        f"**Ensemble training**: one jitted epoch, quickstart VAE, {args.ensemble_images} "
        f"images, batch 128, median of {args.repeats} epochs.",
        "",
        "| program | member-images/s | step time / (M x single-member step) |",
        "|---|---:|---:|",
    ]
    single = ensemble[0][1]
    for name, member_rate in ensemble:
        lines.append(f"| {name} | {member_rate:,.0f} | {single / member_rate:.2f} |")
    lines.append(END)
    section = "\n".join(lines)
    print(section)
    if args.output:
        write_section(Path(args.output), BEGIN, END, section, "## Posterior scoring and ensembles")
    return 0


if __name__ == "__main__":
    sys.exit(main())

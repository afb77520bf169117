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
from bench_report import (
    add_suite_arguments,
    measure,
    open_suite,
    run_stamp,
    stamp_text,
    write_section,
)

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


def jax_scorer(num_importance: int, chunk: int, sample_batch_size: int | None | str = "auto"):
    """Jitted ``(posterior, images [B], key) -> log_lik [S, B]``; ``sample_batch_size`` as
    :func:`~jaxrobust.inference.predict.posterior_log_likelihoods` takes it (None: a lax.map
    one sample after another, n: vmapped chunks of n samples, "auto": by backend)."""
    import jax

    from jaxrobust.inference.predict import posterior_log_likelihoods
    from jaxrobust.models import build_model

    model = build_model("vae", model_config(num_importance, chunk), IMAGE_SHAPE, 10)

    def iwae(v, x, k):
        return model.log_likelihood(v, x, key=k)

    return jax.jit(
        lambda p, x, k: posterior_log_likelihoods(
            iwae, p, x, k, sample_batch_size=sample_batch_size
        )
    )


def jax_runner(
    posterior,
    images: np.ndarray,
    num_importance: int,
    chunk: int,
    batch: int,
    sample_batch_size: int | None | str = "auto",
    info: dict | None = None,
):
    """(run(i) -> log_lik of all ``images``, compile seconds); CPU compiler options as training.
    ``run(-1)`` scores the first batch only, ``run(i, count)`` the first ``count`` images;
    ``info`` (a dict) receives the compiled program,
    the jitted function and its example arguments (for the cost analysis)."""
    import time

    import jax
    import jax.numpy as jnp

    from jaxrobust.nn.conv_ops import cpu_compiler_options

    x = jnp.asarray(images)
    scorer = jax_scorer(num_importance, chunk, sample_batch_size)
    args = (posterior, x[:batch], jax.random.key(0))
    start = time.perf_counter()
    compiled = scorer.lower(*args).compile(compiler_options=cpu_compiler_options() or None)
    compile_seconds = time.perf_counter() - start
    if info is not None:
        info.update(compiled=compiled, fn=scorer, args=args)

    def run(i: int, count: int | None = None):
        key = jax.random.key(100 + i)
        stop = batch if i < 0 else count or len(images)
        out = [
            compiled(posterior, x[s : s + batch], jax.random.fold_in(key, s))
            for s in range(0, stop, batch)
        ]
        return jax.block_until_ready(out)

    return run, compile_seconds


def torch_state_dicts(posterior, device=None) -> list[dict]:
    """Every sample's full weights as a PyTorch state dict (converted once, before timing), on
    ``device`` (default: the CPU)."""
    import jax

    from jaxrobust.inference.samples import sample_variables

    module = torch_vae()
    dicts = []
    for s in range(posterior.num_samples):
        one = jax.tree.map(lambda x, s=s: x[s], posterior.samples)
        copy_weights(module, sample_variables(one, posterior.fixed))
        dicts.append({k: v.clone().to(device or "cpu") for k, v in module.state_dict().items()})
    return dicts


def torch_runner(
    state_dicts,
    images: np.ndarray,
    num_importance: int,
    chunk: int,
    batch: int,
    device=None,
):
    """run(i) -> log_lik [S, N] of all ``images``, one posterior sample after another, on
    ``device`` (default: the CPU, one thread per core); ``run(-1)``: the first batch only,
    ``run(i, count)``: the first ``count`` images."""
    import torch
    from bench_report import torch_sync

    if device is None:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        device = torch.device("cpu")
    torch.manual_seed(0)
    model = torch_vae().eval().to(device)
    x_all = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)

    def run(i: int, count: int | None = None):
        rows = []
        stop = batch if i < 0 else count or len(images)
        with torch.inference_mode():
            for state in state_dicts:  # the original evaluation: one posterior sample at a time
                model.load_state_dict(state)
                rows.append(
                    torch.cat(
                        [
                            torch_iwae(model, x_all[s : s + batch], num_importance, chunk)[0]
                            for s in range(0, stop, batch)
                        ]
                    )
                )
        out = torch.stack(rows)
        torch_sync(device)
        return out

    return run


def parity(posterior, images: np.ndarray, device=None) -> float:
    """Max relative difference of log p(x | theta_s), 2 samples, K = 6, the same eps (PyTorch
    on ``device``, default the CPU)."""
    import jax
    import jax.numpy as jnp
    import torch

    from jaxrobust.inference.samples import PosteriorSamples

    two = PosteriorSamples(jax.tree.map(lambda x: x[:2], posterior.samples), posterior.fixed)
    k_samples, n = 6, len(images)
    score = jax_scorer(k_samples, 3)
    key = jax.random.key(5)
    ours = np.asarray(score(two, jnp.asarray(images), key))
    device = device or torch.device("cpu")
    dicts = torch_state_dicts(two, device)
    model = torch_vae().eval().to(device)
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)
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
        theirs = theirs.cpu().numpy()
        rel = np.abs(theirs - ours[s]) / np.maximum(np.abs(ours[s]), 1e-6)
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


# ----------------------------------------------------------------------------------- suite mode

#: Suite presets (tools/gpu/suite.py). Scoring strategies: (name, sample_batch_size (None:
#: lax.map one sample after another; "S": all samples vmapped), chunk C of the K importance
#: samples, image batch B), at most 5 x 10^4 decoder passes in flight on a GPU (about 0.3
#: TFLOP per image: a batch of 50 is about a second);
#: ``max_images``: at most this many timed (fewer if the budget is short; 10,000 extrapolated).
SUITE_SIZES = {
    "smoke": {
        "samples": 4, "importance": 6, "max_images": 8, "torch": (4, 3), "repeats": 1,
        "strategies": [("map", None, 3, 4), ("vmap 2", 2, 3, 4), ("vmap all", "S", 3, 4)],
        "members": 2, "ensemble_images": 128,
    },
    "cpu": {
        "samples": 200, "importance": 100, "max_images": 20, "torch": (20, 50), "repeats": 3,
        "strategies": [("map", None, 50, 20), ("vmap 8", 8, 50, 20)],
        "members": 8, "ensemble_images": 3200,
    },
    "gpu": {
        "samples": 200, "importance": 100, "max_images": 500, "torch": (50, 100), "repeats": 3,
        "strategies": [("map", None, 100, 50), ("vmap 8", 8, 100, 50),
                       ("vmap all", "S", 10, 25)],
        "members": 8, "ensemble_images": 6400,
    },
}  # fmt: skip
TARGET = 2.0  # issue 14, on a GPU: jaxrobust / PyTorch images/s
ENSEMBLE_TARGET = 0.5  # M-member step / M single-member steps


def _per_image_seconds(run, batch: int) -> float:
    """Seconds per image of ``run`` from one first-batch call (after another as a warm-up)."""
    import time

    run(-1)
    tic = time.perf_counter()
    run(-1)
    return (time.perf_counter() - tic) / batch


def posterior_record(args, sizes: dict, dev, budget: float) -> tuple:
    """(The posterior-scoring record, a run of the default strategy for a profile)."""
    import math
    import time

    from bench_iwae import suite_images
    from bench_report import (
        figure,
        fit_count,
        program_cost,
        ratio_spec,
        workload_record,
    )

    from jaxrobust.inference.predict import default_sample_batch_size

    start = time.perf_counter()
    S, K = sizes["samples"], sizes["importance"]
    repeats = args.repeats or sizes["repeats"]
    images, source = suite_images(sizes["max_images"])
    posterior = posterior_stack(S)
    max_rel = parity(posterior, images[:4], dev)
    runners, infos, per_image, batches, labels = {}, {}, {}, {}, {}
    for name, sbs, chunk, batch in sizes["strategies"]:
        sbs = S if sbs == "S" else sbs
        key = "jax_" + name.replace(" ", "_")
        infos[key] = {"sample_batch_size": sbs, "chunk": chunk}
        runners[key], infos[key]["compile_s"] = jax_runner(
            posterior, images, K, chunk, batch, sbs, infos[key]
        )
        batches[key] = batch
        labels[key] = (
            f"jaxrobust, samples {'by lax.map' if sbs is None else f'vmapped {sbs} at a time'}, "
            f"B = {batch}, C = {chunk}"
        )
        per_image[key] = _per_image_seconds(runners[key], batch)
    tb, tc = sizes["torch"]
    runners["pytorch"] = torch_runner(torch_state_dicts(posterior, dev), images, K, tc, tb, dev)
    batches["pytorch"] = tb
    labels["pytorch"] = f"PyTorch, loop over the {S} samples, B = {tb}, C = {tc}"
    per_image["pytorch"] = _per_image_seconds(runners["pytorch"], tb)
    multiple = math.lcm(*batches.values())
    left = budget - (time.perf_counter() - start) - 15.0
    num = fit_count(
        (repeats + 1) * sum(per_image.values()), 0.8 * left, minimum=multiple, multiple=multiple,
        maximum=len(images) // multiple * multiple,
    )  # fmt: skip
    timed = {k: (lambda i, r=r: r(i, num)) for k, r in runners.items()}
    seconds = measure(timed, repeats)
    figures = {}
    for key, label in labels.items():
        info = infos.get(key)
        cost = None
        if info:
            cost = program_cost(
                info["fn"], info["args"], info["compiled"], calls=num // batches[key]
            )
        figures[key] = figure(
            label, seconds[key], num, side="pytorch" if key == "pytorch" else "jaxrobust",
            compile_s=info["compile_s"] if info else None, cost=cost,
        )  # fmt: skip
    auto = default_sample_batch_size(S)
    default = next(
        (k for k, info in infos.items() if info["sample_batch_size"] == auto), next(iter(infos))
    )
    fastest = max(infos, key=lambda k: figures[k]["rate"])
    ratios = [
        ratio_spec(
            default,
            "pytorch",
            target=TARGET,
            name="jaxrobust (the default strategy here) / PyTorch",
        ),
    ] + [ratio_spec(k, "pytorch", name=f"{labels[k]} / PyTorch") for k in infos if k != default]
    record = workload_record(
        f"Posterior scoring, S = {S} x K = {K}",
        "images/s",
        figures,
        ratios,
        params={
            "samples": S, "importance": K, "timed_images": num, "parity_max_rel": max_rel,
            "default_sample_batch_size": auto, "strategy_default": default,
            "strategy_fastest": fastest, "default_is_fastest": default == fastest,
            "hours_per_10000_images": {k: 10_000 / f["rate"] / 3600 for k, f in figures.items()},
        },
        notes=[
            f"log p(x | theta_s) for S = {S} decoder samples, K = {K} importance samples each "
            f"(quickstart VAE), {num:,} images ({source}) timed, median of {repeats} "
            "interleaved runs after a warm-up batch"
            + ("." if num >= 10_000 else "; the 10,000-image time is extrapolated linearly."),
            f"Parity (2 samples, K = 6, the same eps): max relative difference {max_rel:.1e}.",
            f"Strategy check: {labels[fastest]} is the fastest; the default here "
            f"(sample_batch_size {auto}) is {labels[default]}"
            + (" (right)." if default == fastest else " (not the fastest)."),
        ],
    )  # fmt: skip
    return record, (lambda i: runners[default](-1))


def suite_main(args, workloads: list[str]) -> int:
    import time

    from bench_runs import stacked_runs_record

    start = time.perf_counter()
    device, dev, recorder, sizes = open_suite(args, SUITE_SIZES)
    budget = args.budget_s or float("inf")
    for name in workloads:
        left = budget - (time.perf_counter() - start)
        if name == "posterior":
            record, profile_run = posterior_record(args, sizes, dev, left)
            recorder.add_profiled("posterior", record, args, profile_run)
        elif name == "ensemble":
            members = sizes["members"]
            record, profile_run = stacked_runs_record(
                args, members, sizes["ensemble_images"], args.repeats or sizes["repeats"], dev,
                ENSEMBLE_TARGET, f"{members}-member ensemble trained as one program",
            )  # fmt: skip
            recorder.add_profiled("ensemble", record, args, profile_run)
        else:
            raise SystemExit(f"unknown workload {name!r}; known: posterior, ensemble")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--importance", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--timed-images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (3)")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--ensemble-images", type=int, default=3200)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--workloads", default="posterior,ensemble", help="suite mode: posterior, ensemble"
    )
    add_suite_arguments(parser)
    args = parser.parse_args(argv)
    if args.preset:
        return suite_main(args, [w for w in args.workloads.split(",") if w])
    args.repeats = args.repeats or 3

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

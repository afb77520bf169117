"""Latent HMC (Algorithm 3): jaxrobust vs PyTorch, one chain per input.

Workload (issue 16): ``--chains`` (1000) inputs, one HMC chain each on U(z) = -log p(x|z) -
log p(z) of an MLP VAE decoder (latent 10, 10-256-512-784 ReLU, Bernoulli likelihood; random
initial weights, the cost does not depend on training), ``--steps`` (100) HMC steps of
``--leapfrog`` (10) leapfrog steps, the step size of each chain adapted toward 0.9 acceptance by
Kuzina et al.'s rule (eta <- eta (1 + 0.01 (alpha - 0.9) / 0.9)), started at z = 0.

- jaxrobust: :func:`jaxrobust.inference.latent_hmc` with the model's ``log_joint`` capability
  (BlackJAX's HMC kernel, ``vmap`` over the chains, ``lax.scan`` over the steps, one jitted
  call), ``adaptation="kuzina"`` (the same rule as the PyTorch side).
- PyTorch, batched (the fair peer): a twin of Kuzina et al.'s ``HMC_sampler`` (AKuzina/
  defend_vae_mcmc, ``vae/model/hmc.py``, written from reading it): every chain in one batch,
  gradients by autograd, half-kick / drift / half-kick, Metropolis per chain, with one step size
  per chain (their code shares one across the batch) updated by the same rule.
- PyTorch, a loop over the inputs (how a per-input defense is often written): the same sampler
  on one input at a time; timed on ``--loop-inputs`` inputs and reported per chain (the rate is
  chains/s, so the figure is comparable; the 1000-chain time is that rate's extrapolation).

Checks before timing: the two log p(x|z) + log p(z) and their gradients agree on the same
weights; after the timed runs, both chain sets end at the same mean potential within 5 standard
errors (the samplers are the same algorithm with different random numbers).

Ratio = jaxrobust rate / PyTorch rate (above 1: jaxrobust faster). Usage::

    python tools/bench_latent_hmc.py --output BENCHMARKS.md      # a few minutes on 2 CPU cores
    python tools/bench_latent_hmc.py --quick --json /tmp/h.json  # tiny sizes (tests)
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
import torch
import torch.nn.functional as F
from bench_report import (
    atomic_write_json,
    figure,
    ratio_spec,
    run_stamp,
    stamp_text,
    torch_device,
    workload_record,
    write_section,
)

from jaxrobust.devices import describe_devices
from jaxrobust.inference.latent_hmc import latent_hmc
from jaxrobust.models import build_model

BEGIN, END = "<!-- bench_latent_hmc:begin -->", "<!-- bench_latent_hmc:end -->"
LATENT, HIDDEN, TARGET, RATE = 10, (512, 256), 0.9, 0.01


def build(seed: int = 0):
    """The jaxrobust VAE (random weights) and its decoder's layers as float32 torch tensors."""
    model = build_model(
        "vae",
        {"latent_dim": LATENT, "network": "mlp", "network_options": {"hidden": list(HIDDEN)}},
        (28, 28, 1),
        10,
    )
    variables = model.init(jax.random.key(seed), jnp.zeros((1, 28, 28, 1)))
    decoder = variables["params"]["decoder"]
    layers = [
        (
            torch.tensor(np.asarray(decoder[f"Dense_{i}"]["kernel"])),
            torch.tensor(np.asarray(decoder[f"Dense_{i}"]["bias"])),
        )
        for i in range(3)
    ]
    return model, variables, layers


def torch_energy(layers, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """U(z) = -log p(x|z) - log p(z) per chain: Bernoulli log-likelihood of the decoder's
    logits, standard-normal prior (the same terms as jaxrobust's ``log_joint``)."""
    h = z
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = F.relu(h)
    log_lik = -F.binary_cross_entropy_with_logits(h, x, reduction="none").sum(-1)
    log_prior = -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
    return -(log_lik + log_prior)


def _grad(layers, z, x):
    z = z.detach().requires_grad_(True)
    energy = torch_energy(layers, z, x)
    (g,) = torch.autograd.grad(energy.sum(), z)
    return energy.detach(), g


def torch_hmc(layers, x, z0, eps0, num_steps: int, leapfrog: int, seed: int):
    """Kuzina et al.'s HMC transition over a batch of chains, one step size per chain."""
    gen = torch.Generator().manual_seed(seed)
    z, eps = z0.clone(), eps0.clone()
    energy, grad = _grad(layers, z, x)
    for _ in range(num_steps):
        p0 = torch.randn(z.shape, generator=gen)
        e = eps[:, None]
        zn, p = z.clone(), p0 - 0.5 * e * grad
        for i in range(leapfrog):
            zn = zn + e * p
            energy_n, grad_n = _grad(layers, zn, x)
            p = p - (e if i < leapfrog - 1 else 0.5 * e) * grad_n
        log_ratio = energy - energy_n + 0.5 * ((p0 * p0).sum(-1) - (p * p).sum(-1))
        alpha = torch.exp(torch.clamp(log_ratio, max=0.0))
        alpha = torch.where(torch.isfinite(alpha), alpha, torch.zeros_like(alpha))
        accept = torch.rand(alpha.shape, generator=gen) < alpha
        z = torch.where(accept[:, None], zn, z)
        energy = torch.where(accept, energy_n, energy)
        grad = torch.where(accept[:, None], grad_n, grad)
        eps = eps * (1 + RATE * (alpha - TARGET) / TARGET)
    return z, energy


def inputs(num: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(num, 28, 28, 1)) < 0.2).astype(np.float32)


def run(args) -> dict:
    torch_device("cpu", "cpu")
    load_before = os.getloadavg()
    tic_all = time.perf_counter()
    model, variables, layers = build()
    x = inputs(args.chains)
    x_j, z0_j = jnp.asarray(x), jnp.zeros((args.chains, LATENT))
    x_t, z0_t = torch.from_numpy(x.reshape(args.chains, -1)), torch.zeros(args.chains, LATENT)
    eps0 = torch.full((args.chains,), args.step_size)

    # parity of the two potentials and gradients on the same weights
    z_probe = np.random.default_rng(1).normal(size=(8, LATENT)).astype(np.float32)
    ours = -np.asarray(model.log_joint(variables, x_j[:8], jnp.asarray(z_probe)))
    ours_grad = np.asarray(
        jax.grad(lambda z: -model.log_joint(variables, x_j[:8], z).sum())(jnp.asarray(z_probe))
    )
    theirs, theirs_grad = _grad(layers, torch.from_numpy(z_probe), x_t[:8])
    parity = {
        "energy_max_rel": float(np.max(np.abs(ours - theirs.numpy()) / np.abs(theirs.numpy()))),
        "grad_max_abs": float(np.max(np.abs(ours_grad - theirs_grad.numpy()))),
        "grad_scale": float(np.max(np.abs(theirs_grad.numpy()))),
    }
    if parity["energy_max_rel"] > 1e-4 or parity["grad_max_abs"] > 1e-3 * parity["grad_scale"]:
        raise SystemExit(f"the PyTorch potential differs from jaxrobust's: {parity}")

    options = {
        "num_steps": args.steps,
        "num_integration_steps": args.leapfrog,
        "step_size": args.step_size,
        "adaptation": "kuzina",
    }
    tic = time.perf_counter()
    latent_hmc(
        model.log_joint, x_j, z0_j, key=jax.random.key(0), variables=variables, **options
    )  # compiles
    first_call = time.perf_counter() - tic

    finals = {}

    def run_jax(i):
        out = latent_hmc(
            model.log_joint, x_j, z0_j, key=jax.random.key(10 + i), variables=variables, **options
        )
        finals["jaxrobust"] = np.asarray(jax.block_until_ready(out.potential))

    def run_batched(i):
        _, energy = torch_hmc(layers, x_t, z0_t, eps0, args.steps, args.leapfrog, 10 + i)
        finals["pytorch_batched"] = energy.numpy()

    loop_n = min(args.loop_inputs, args.chains)

    def run_loop(i):
        for j in range(loop_n):
            torch_hmc(
                layers,
                x_t[j : j + 1],
                z0_t[j : j + 1],
                eps0[j : j + 1],
                args.steps,
                args.leapfrog,
                1000 * i + j,
            )

    torch_hmc(layers, x_t, z0_t, eps0, 1, args.leapfrog, 0)  # PyTorch warm-up (one step)
    seconds = {"jaxrobust": [], "pytorch_batched": [], "pytorch_loop": []}
    for i in range(args.repeats):  # interleaved
        for name, fn in (
            ("jaxrobust", run_jax),
            ("pytorch_batched", run_batched),
            ("pytorch_loop", run_loop),
        ):
            tic = time.perf_counter()
            fn(i)
            seconds[name].append(time.perf_counter() - tic)
    a, b = finals["jaxrobust"], finals["pytorch_batched"]
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    agreement = {
        "mean_potential_jaxrobust": float(a.mean()),
        "mean_potential_pytorch": float(b.mean()),
        "z": float((a.mean() - b.mean()) / se),
    }
    figures = {
        "jaxrobust": figure(
            "jaxrobust latent_hmc (jit, vmap + scan)",
            seconds["jaxrobust"],
            args.chains,
            side="jaxrobust",
            compile_s=first_call - min(seconds["jaxrobust"]),
        ),
        "pytorch_batched": figure(
            "PyTorch, all chains batched", seconds["pytorch_batched"], args.chains, side="pytorch"
        ),
        "pytorch_loop": figure(
            f"PyTorch, a loop over {loop_n} inputs", seconds["pytorch_loop"], loop_n, side="pytorch"
        ),
    }
    record = workload_record(
        "latent HMC",
        "chains/s",
        figures,
        [
            ratio_spec("jaxrobust", "pytorch_batched", name="vs batched PyTorch"),
            ratio_spec("jaxrobust", "pytorch_loop", name="vs a PyTorch loop over inputs"),
        ],
        params={
            "chains": args.chains,
            "steps": args.steps,
            "leapfrog": args.leapfrog,
            "step_size": args.step_size,
            "repeats": args.repeats,
            "loop_inputs": loop_n,
        },
    )
    return {
        "stamp": run_stamp(extra=("blackjax",)),
        "device": describe_devices(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "total_s": time.perf_counter() - tic_all,
        "quick": bool(args.quick),
        "workload": record,
        "parity": parity,
        "agreement": agreement,
    }


def _s(f: dict) -> str:
    return f"{f['median_s']:.2f}"


def markdown(result: dict) -> str:
    w, p = result["workload"], result["workload"]["params"]
    f = w["figures"]
    cmd = "python tools/bench_latent_hmc.py --output BENCHMARKS.md" + (
        " --quick" if result["quick"] else ""
    )
    per_chain_loop = f["pytorch_loop"]["median_s"] / p["loop_inputs"]
    before, after = result["load_average_before"][0], result["load_average_after"][0]
    ag, par = result["agreement"], result["parity"]
    lines = [
        BEGIN,
        "## Latent HMC (Algorithm 3): jaxrobust vs PyTorch, one chain per input",
        "",
        f"Command: `{cmd}` ({result['total_s']:.0f} s in all). "
        f"{stamp_text(result['stamp'], on=result['device'])} PyTorch CPU with "
        f"{result['torch_threads']} threads; the three sides interleaved in one process, median "
        f"of {p['repeats']} repeats; 1-minute load average {before:.1f} before, {after:.1f} "
        f"after (this benchmark's own threads included). {p['chains']:,} chains (one per input) "
        f"x {p['steps']} HMC steps x {p['leapfrog']} leapfrog steps on an MLP VAE decoder "
        "(latent 10, 10-256-512-784, Bernoulli), Kuzina et al.'s step-size rule on both sides. "
        "PyTorch: a twin of Kuzina et al.'s batched `HMC_sampler` (per-chain step sizes), and "
        f"the same sampler looping over inputs (timed on {p['loop_inputs']} inputs; its "
        "1,000-chain time is extrapolated). Ratio = jaxrobust rate / PyTorch rate (chains/s).",
        "",
        "| side | chains timed | seconds (median) | chains / s | ratio jaxrobust / side |",
        "|---|---:|---:|---:|---:|",
        f"| jaxrobust `latent_hmc` (compile {f['jaxrobust']['compile_s']:.1f} s, once) | "
        f"{p['chains']:,} | {_s(f['jaxrobust'])} | {f['jaxrobust']['rate']:.1f} | 1 |",
        f"| PyTorch, all chains batched (the fair peer) | {p['chains']:,} | "
        f"{_s(f['pytorch_batched'])} | {f['pytorch_batched']['rate']:.1f} | "
        f"**{w['ratios'][0]['value']:.2f}x** |",
        f"| PyTorch, a loop over inputs | {p['loop_inputs']} | {_s(f['pytorch_loop'])} "
        f"({per_chain_loop * p['chains']:,.0f} s extrapolated to {p['chains']:,}) | "
        f"{f['pytorch_loop']['rate']:.2f} | **{w['ratios'][1]['value']:.1f}x** |",
        "",
        f"Checks: the PyTorch potential equals jaxrobust's `log_joint` on the same weights "
        f"(max relative difference {par['energy_max_rel']:.1e}, gradients within "
        f"{par['grad_max_abs']:.1e} of a largest entry {par['grad_scale']:.1f}); after the timed "
        f"runs, mean final potential {ag['mean_potential_jaxrobust']:.2f} (jaxrobust) vs "
        f"{ag['mean_potential_pytorch']:.2f} (PyTorch), z = {ag['z']:+.2f}.",
        END,
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--leapfrog", type=int, default=10)
    parser.add_argument("--step-size", type=float, default=0.05)
    parser.add_argument("--loop-inputs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (tests)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.chains, args.steps, args.leapfrog, args.loop_inputs, args.repeats = 40, 5, 3, 2, 1
    result = run(args)
    if args.json:
        atomic_write_json(args.json, result)
    text = markdown(result)
    print(text)
    if args.output:
        write_section(Path(args.output), BEGIN, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

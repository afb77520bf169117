"""von Mises-Fisher sampling and the VAE hole indicator: jaxrobust vs the S-VAE authors' PyTorch.

Workloads (issue 15), jaxrobust and PyTorch interleaved in one process, median of the repeats:

- **vMF sampling**, m = 3 and m = 64: ``--samples`` draws (10^6) z ~ vMF(mu_i, kappa_i), one
  per posterior of a batch (like a VAE's batch of posteriors): unit mu_i uniform on the sphere,
  kappa_i log-uniform on [1, 1000]. jaxrobust: ``von_mises_fisher.sample`` (jitted; Wood's
  rejection sampler as one ``lax.while_loop``, every m). PyTorch: :func:`torch_vmf_rsample`, a
  twin of ``VonMisesFisher.rsample`` of the authors' code (nicola-decao/s-vae-pytorch,
  ``hyperspherical_vae/distributions/von_mises_fisher.py``, written from reading it, not
  copied): for m = 3 the closed-form inverse CDF of w, otherwise Wood's rejection loop in torch
  (``k = 1`` proposal per element and round, all elements redrawn each round), then
  v ~ U(S^{m-2}) and their Householder map. One change: Wood's b is exact (stable form). The
  authors switch to the Taylor form b = (m-1) / (4 kappa) above kappa = 10, valid only for
  kappa >> m: at m = 64 their samples are biased (mean resultant length 0.12 instead of
  A_64(20) = 0.29 at kappa = 20); that variant, same cost, is checked on 10^5 samples and
  reported, not timed.
  Both sides' samples are checked before timing: the z-score of sum_i (mu_i.z_i - A_m(kappa_i))
  against its standard deviation sqrt(sum_i Var_i), Var = 1 - A^2 - (m-1) A / kappa (the vMF
  variance of mu.z), overall and per kappa decade, A_m from
  ``von_mises_fisher.mean_resultant_length``; the benchmark stops if |z| > 5.
- **Hole indicator** (std_k log p(x|z_k), K = 100, ddof 1, eq. 4.17) on ``--images`` (10,000)
  synthetic uint8 28x28 images: jaxrobust's ``make_vae((28, 28, 1), 3, latent=
  "von_mises_fisher", network="mlp", hidden (256, 128), iwae_samples=100, iwae_chunk=50)`` with
  random initial weights, ``model.score(..., ["hole_indicator"])`` over the dataset in one
  jitted call (``jaxrobust.evaluate.batched.map_dataset``, batches of ``--batch``; the score
  also computes the IWAE log-weights of the same samples). PyTorch: the same architecture as
  ``torch.nn.Linear`` layers with the JAX weights copied (784-256-128-4 encoder, mu = h[:3] /
  ||h[:3]||, kappa = softplus(h[3]) + 1 as the authors' example; 3-128-256-784 decoder),
  ``inference_mode``, per batch one encoder pass, ``torch_vmf_rsample`` of K samples, one
  decoder pass over K x B latents, Bernoulli log p(x|z) = -BCE-with-logits summed, std over
  the K samples (only log p(x|z): no log q, less work than the jaxrobust score).
  Checked: encoder and decoder outputs of both sides agree (same weights), and the hole
  indicators agree within sampling error (their means over the images, the per-image median
  relative difference; the samplers differ, the distributions do not).

Ratio = jaxrobust rate / PyTorch rate (above 1: jaxrobust faster). Usage::

    python tools/bench_vmf.py --output BENCHMARKS.md          # about 4 minutes on 2 CPU cores
    python tools/bench_vmf.py --quick --json /tmp/vmf.json    # tiny sizes (tests/test_bench_vmf.py)
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

from jaxrobust.data.preprocess import Preprocess
from jaxrobust.devices import describe_devices
from jaxrobust.distributions import von_mises_fisher as vmf
from jaxrobust.evaluate.batched import map_dataset
from jaxrobust.models import make_vae

BEGIN, END = "<!-- bench_vmf:begin -->", "<!-- bench_vmf:end -->"
KAPPA_RANGE = (1.0, 1000.0)
LATENT_DIM, HIDDEN, NUM_SAMPLES, CHUNK = 3, (256, 128), 100, 50
#: The largest |z-score| of a sampler's mean resultant length that passes the check.
MAX_ABS_Z = 5.0


# ------------------------------------------------------------------------- the PyTorch twin


def _wood_b(scale: torch.Tensor, m: int, authors: bool) -> torch.Tensor:
    """Wood's b. ``authors``: as the authors compute it, (-2 kappa + sqrt(4 kappa^2 + (m-1)^2))
    / (m-1) blended linearly into the Taylor form (m-1) / (4 kappa) for 10 < kappa < 11 (that
    form holds only for kappa >> m: at m = 64 it biases the samples, see the checks); otherwise
    the exact b in its stable form (m-1) / (2 kappa + sqrt(4 kappa^2 + (m-1)^2))."""
    c = torch.sqrt(4 * scale**2 + (m - 1) ** 2)
    if not authors:
        return (m - 1) / (2 * scale + c)
    b_true = (-2 * scale + c) / (m - 1)
    b_app = (m - 1) / (4 * scale)
    s = torch.clamp(scale - 10, 0.0, 1.0)
    return b_app * s + b_true * (1 - s)


def _torch_w_rejection(
    scale: torch.Tensor, m: int, k: int = 1, eps: float = 1e-20, authors_b: bool = False
):
    """Wood's rejection loop as in the authors' ``__while_loop``: each round draws ``k``
    proposals eps ~ Beta((m-1)/2, (m-1)/2) and u ~ U(eps, 1-eps) for EVERY element, keeps the
    first accepted one of the elements still waiting, until all have accepted."""
    c = torch.sqrt(4 * scale**2 + (m - 1) ** 2)
    b = _wood_b(scale, m, authors_b)
    a = (m - 1 + 2 * scale + c) / 4
    d = 4 * a * b / (1 + b) - (m - 1) * math.log(m - 1)
    b, a, d = (e.reshape(-1, 1) for e in (b, a, d))
    w = torch.zeros_like(b)
    waiting = torch.ones_like(b, dtype=torch.bool)
    half = torch.tensor((m - 1) / 2, dtype=torch.float64)
    beta = torch.distributions.Beta(half, half)
    while bool(waiting.any()):
        e_ = beta.sample(torch.Size([b.shape[0], k])).to(b.dtype)
        u = torch.empty_like(e_).uniform_(eps, 1 - eps)
        w_ = (1 - (1 + b) * e_) / (1 - (1 - b) * e_)
        t = (2 * a * b) / (1 - (1 - b) * e_)
        accept = ((m - 1.0) * t.log() - t + d) > torch.log(u)
        first = torch.where(accept.any(-1), accept.float().argmax(-1), -1).unsqueeze(1)
        w_ = w_.gather(1, first.clamp(0))
        now = waiting & (first >= 0)
        w[now] = w_[now]
        waiting[now] = False
    return w.reshape(scale.shape)


def torch_vmf_rsample(
    loc: torch.Tensor, scale: torch.Tensor, num: int | None = None, *, authors_b: bool = False
):
    """z ~ vMF(loc, scale) as the authors' ``VonMisesFisher(loc, scale).rsample(num)``: ``loc``
    ``[..., m]`` unit, ``scale`` ``[..., 1]``; returns ``[num, ..., m]`` (or ``[..., m]``).
    Wood's b (m != 3) exact unless ``authors_b`` (their Taylor switch above kappa = 10)."""
    m = loc.shape[-1]
    shape = torch.Size([] if num is None else [num])
    scale_full = scale.expand(shape + scale.shape)
    if m == 3:  # the closed-form inverse CDF of w = mu.z on S^2
        u = torch.rand(scale_full.shape, dtype=loc.dtype, device=loc.device)
        w = 1 + torch.stack([torch.log(u), torch.log(1 - u) - 2 * scale_full]).logsumexp(0) / (
            scale_full
        )
    else:
        w = _torch_w_rejection(scale_full.contiguous(), m, authors_b=authors_b)
    v = torch.randn(shape + loc.shape, dtype=loc.dtype, device=loc.device)[..., 1:]
    v = v / v.norm(dim=-1, keepdim=True)
    x = torch.cat((w, torch.sqrt(torch.clamp(1 - w**2, 1e-10)) * v), -1)
    e1 = torch.zeros(m, dtype=loc.dtype, device=loc.device)
    e1[0] = 1.0
    u = e1 - loc
    u = u / (u.norm(dim=-1, keepdim=True) + 1e-5)
    return x - 2 * (x * u).sum(-1, keepdim=True) * u


class TorchVMFVAE(torch.nn.Module):
    """The MLP vMF VAE of the benchmark in PyTorch, weights copied from the flax variables."""

    def __init__(self, variables) -> None:
        super().__init__()
        params = variables["params"]

        def linears(tree):
            layers = []
            for i in range(len(tree)):
                kernel = np.asarray(tree[f"Dense_{i}"]["kernel"])
                layer = torch.nn.Linear(*kernel.shape)
                with torch.no_grad():
                    layer.weight.copy_(torch.from_numpy(kernel.T.copy()))
                    layer.bias.copy_(torch.from_numpy(np.array(tree[f"Dense_{i}"]["bias"])))
                layers.append(layer)
            return torch.nn.ModuleList(layers)

        self.enc, self.dec = linears(params["encoder"]), linears(params["decoder"])

    def encode(self, x):
        h = x.reshape(x.shape[0], -1)
        for layer in self.enc[:-1]:
            h = F.relu(layer(h))
        h = self.enc[-1](h)
        loc = h[:, :-1] / h[:, :-1].norm(dim=-1, keepdim=True)
        return loc, F.softplus(h[:, -1:]) + 1

    def decode(self, z):
        h = z
        for layer in self.dec[:-1]:
            h = F.relu(layer(h))
        return self.dec[-1](h)

    def hole_indicator(self, x, num_samples: int):
        """std over ``num_samples`` z ~ q(z|x) of the Bernoulli log p(x|z) (ddof 1), ``[B]``."""
        loc, scale = self.encode(x)
        z = torch_vmf_rsample(loc, scale, num_samples)  # [K, B, m]
        logits = self.decode(z)
        target = x.reshape(1, x.shape[0], -1).expand_as(logits)
        log_lik = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
        return log_lik.std(dim=0)


# ---------------------------------------------------------------------------------- checks


def resultant_check(mu: np.ndarray, kappa: np.ndarray, z: np.ndarray, m: int) -> dict:
    """z-scores of sum (mu.z - A_m(kappa)) / sqrt(sum Var(mu.z)), overall and per kappa decade,
    and the largest deviation of ||z|| from 1."""
    cos = np.einsum("ij,ij->i", mu.astype(np.float64), z.astype(np.float64))
    a = np.asarray(vmf.mean_resultant_length(jnp.asarray(kappa), m), np.float64)
    k = kappa.astype(np.float64)
    var = np.maximum(1.0 - a**2 - (m - 1) * a / k, 1e-12)
    out = {"mean_cos": float(cos.mean()), "mean_A": float(a.mean())}

    def z_of(sel):
        return float((cos[sel] - a[sel]).sum() / math.sqrt(var[sel].sum()))

    out["z"] = z_of(slice(None))
    out["z_per_decade"] = {}
    for lo in (1.0, 10.0, 100.0):
        sel = (k >= lo) & (k < 10 * lo)
        if sel.sum() >= 10:
            out["z_per_decade"][f"{lo:g}-{10 * lo:g}"] = z_of(sel)
    out["max_abs_z"] = max(abs(out["z"]), *(abs(v) for v in out["z_per_decade"].values()))
    out["max_norm_error"] = float(np.abs(np.linalg.norm(z.astype(np.float64), axis=-1) - 1).max())
    # The authors' Householder map divides by ||e_1 - mu|| + 1e-5: for mu near e_1 it is not
    # exactly orthogonal (||z|| off by up to ~5e-3 among 10^6 random mu).
    out["ok"] = bool(out["max_abs_z"] <= MAX_ABS_Z and out["max_norm_error"] < 1e-2)
    return out


def _require(check: dict, what: str) -> None:
    if not check["ok"]:
        raise SystemExit(f"{what} failed its check before timing: {check}")


# ------------------------------------------------------------------------------- workloads


def posteriors(num: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + m)
    mu = rng.standard_normal((num, m)).astype(np.float32)
    mu /= np.linalg.norm(mu, axis=-1, keepdims=True)
    lo, hi = np.log(KAPPA_RANGE[0]), np.log(KAPPA_RANGE[1])
    kappa = np.exp(rng.uniform(lo, hi, num)).astype(np.float32)
    return mu, kappa


def timed(fn, i):
    tic = time.perf_counter()
    out = fn(i)
    return time.perf_counter() - tic, out


def interleave(runners: dict, repeats: int) -> tuple[dict, dict]:
    """Seconds of ``repeats`` rounds calling every runner once in turn; the last outputs."""
    seconds, last = {name: [] for name in runners}, {}
    for i in range(repeats):
        for name, run in runners.items():
            s, last[name] = timed(run, i)
            seconds[name].append(s)
    return seconds, last


def sampling_workload(m: int, num: int, repeats: int, method: str = "wood") -> dict:
    mu, kappa = posteriors(num, m)
    mu_j, kappa_j = jnp.asarray(mu), jnp.asarray(kappa)
    jitted = jax.jit(lambda key, a, b: vmf.sample(key, a, b, method=method))
    tic = time.perf_counter()
    compiled = jitted.lower(jax.random.key(0), mu_j, kappa_j).compile()
    compile_s = time.perf_counter() - tic
    loc, scale = torch.from_numpy(mu), torch.from_numpy(kappa).unsqueeze(-1)

    def run_jax(i):
        return jax.block_until_ready(compiled(jax.random.key(100 + i), mu_j, kappa_j))

    def run_torch(i):
        torch.manual_seed(100 + i)
        return torch_vmf_rsample(loc, scale)

    # The checks (full size) are also both sides' warm-up calls.
    checks = {
        "jaxrobust": resultant_check(mu, kappa, np.asarray(run_jax(-1)), m),
        "pytorch": resultant_check(mu, kappa, run_torch(-1).numpy(), m),
    }
    if (
        m != 3 and method == "wood"
    ):  # the authors' b as they wrote it (not timed: same cost), on up to 10^5 samples
        sub = min(num, 100_000)
        torch.manual_seed(99)
        z = torch_vmf_rsample(loc[:sub], scale[:sub], authors_b=True).numpy()
        checks["pytorch, the authors' b"] = resultant_check(mu[:sub], kappa[:sub], z, m)
    _require(checks["pytorch"], f"the PyTorch twin (m = {m})")
    _require(checks["jaxrobust"], f"jaxrobust's sampler (m = {m})")
    seconds, _ = interleave({"jaxrobust": run_jax, "pytorch": run_torch}, repeats)
    figures = {
        "jaxrobust": figure(
            f"jaxrobust vmf.sample(method={method!r}) (jit)",
            seconds["jaxrobust"],
            num,
            side="jaxrobust",
            compile_s=compile_s,
        ),  # fmt: skip
        "pytorch": figure(
            "PyTorch twin of the authors' rsample", seconds["pytorch"], num, side="pytorch"
        ),  # fmt: skip
    }
    title = f"vMF sampling, m = {m}" + (", jaxrobust inverse CDF" if method != "wood" else "")
    return workload_record(
        title,
        "samples/s",
        figures,
        [ratio_spec("jaxrobust", "pytorch", name="jaxrobust / PyTorch")],
        params={
            "m": m,
            "samples": num,
            "repeats": repeats,
            "kappa": "log-uniform [1, 1000]",
            "method": method,
        },  # fmt: skip
        notes=[f"checks: {checks}"],
    ) | {"checks": checks}


def hole_workload(num_images: int, batch: int, repeats: int) -> dict:
    model = make_vae((28, 28, 1), LATENT_DIM, latent="von_mises_fisher", network="mlp",
                     network_options={"hidden": HIDDEN}, iwae_samples=NUM_SAMPLES,
                     iwae_chunk=CHUNK)  # fmt: skip
    images = np.random.default_rng(1).integers(0, 256, (num_images, 28, 28, 1), dtype=np.uint8)
    x = images.astype(np.float32) / 255.0
    variables = model.init(jax.random.key(0), jnp.asarray(x[:2]))
    twin = TorchVMFVAE(variables).eval()

    def score(var, xb, key):
        return model.score(var, xb, ["hole_indicator"], key=key)["hole_indicator"]

    # Same weights: encoder and decoder outputs of both sides.
    probe = x[: min(64, num_images)]
    mu_j, kappa_j = model.encode(variables, jnp.asarray(probe))
    with torch.inference_mode():
        loc_t, scale_t = twin.encode(torch.from_numpy(probe))
        logits_t = twin.decode(torch.from_numpy(np.array(mu_j))).numpy()
    decoded = np.asarray(model.decode(variables, mu_j)).reshape(len(probe), -1)  # sigmoid(logits)
    parity = {
        "mean_direction_max_abs": float(np.abs(np.asarray(mu_j) - loc_t.numpy()).max()),
        "kappa_max_rel": float(
            np.abs(np.asarray(kappa_j) - scale_t[:, 0].numpy()).max() / np.asarray(kappa_j).min()
        ),
        "decoder_mean_max_abs": float(np.abs(decoded - 1 / (1 + np.exp(-logits_t))).max()),
    }
    x_torch = torch.from_numpy(x)
    preprocess = Preprocess()

    def run_jax(i):
        return map_dataset(score, variables, images, preprocess, jax.random.key(200 + i), batch)

    def run_torch(i):
        torch.manual_seed(200 + i)
        with torch.inference_mode():
            parts = [twin.hole_indicator(x_torch[s : s + batch], NUM_SAMPLES)
                     for s in range(0, num_images, batch)]  # fmt: skip
        return torch.cat(parts).numpy()

    tic = time.perf_counter()
    run_jax(-1)  # compile + one run
    first_s = time.perf_counter() - tic
    run_torch(-1)
    seconds, last = interleave({"jaxrobust": run_jax, "pytorch": run_torch}, repeats)
    hj, ht = np.asarray(last["jaxrobust"], np.float64), np.asarray(last["pytorch"], np.float64)
    agreement = {
        "mean_jaxrobust": float(hj.mean()),
        "mean_pytorch": float(ht.mean()),
        "rel_diff_of_means": float(abs(hj.mean() - ht.mean()) / ht.mean()),
        "median_rel_diff_per_image": float(np.median(np.abs(hj - ht) / ht)),
        "expected_rel_sd_per_estimate": 1 / math.sqrt(2 * (NUM_SAMPLES - 1)),
        "finite": bool(np.isfinite(hj).all() and np.isfinite(ht).all()),
    }
    figures = {
        "jaxrobust": figure(
            "jaxrobust score hole_indicator (map_dataset, jit)",
            seconds["jaxrobust"],
            num_images,
            side="jaxrobust",
            first_call_s=first_s,
        ),  # fmt: skip
        "pytorch": figure(
            "PyTorch twin (inference_mode)", seconds["pytorch"], num_images, side="pytorch"
        ),  # fmt: skip
    }
    return workload_record(
        f"hole indicator, K = {NUM_SAMPLES}",
        "images/s",
        figures,
        [ratio_spec("jaxrobust", "pytorch", name="jaxrobust / PyTorch")],
        params={
            "images": num_images,
            "batch": batch,
            "repeats": repeats,
            "K": NUM_SAMPLES,
            "chunk": CHUNK,
            "latent_dim": LATENT_DIM,
            "hidden": HIDDEN,
        },  # fmt: skip
    ) | {"parity": parity, "agreement": agreement}


def run(args) -> dict:
    torch_device("cpu", "cpu")  # one thread per core
    load_before = os.getloadavg()
    tic = time.perf_counter()
    workloads = {}
    for m in (3, 64):
        repeats = args.repeats if m == 3 else args.repeats_64
        workloads[f"vmf_m{m}"] = sampling_workload(m, args.samples, repeats)
        print(f"vmf m={m}: {workloads[f'vmf_m{m}']['ratios'][0]['value']:.3f}", flush=True)
    workloads["vmf_m3_inverse_cdf"] = sampling_workload(
        3, args.samples, args.repeats, method="inverse_cdf"
    )
    print(f"vmf m=3 inverse CDF: {workloads['vmf_m3_inverse_cdf']['ratios'][0]['value']:.3f}")
    workloads["hole_indicator"] = hole_workload(args.images, args.batch, args.repeats_hole)
    print(f"hole: {workloads['hole_indicator']['ratios'][0]['value']:.3f}", flush=True)
    return {
        "stamp": run_stamp(),
        "device": describe_devices(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "total_s": time.perf_counter() - tic,
        "quick": bool(args.quick),
        "workloads": workloads,
    }


# -------------------------------------------------------------------------------- markdown


def _ms(f: dict) -> str:
    return f"{1e3 * f['median_s']:,.0f}" if f["median_s"] >= 0.1 else f"{1e3 * f['median_s']:.1f}"


def _load_text(result: dict) -> str:
    """The machine's load, judged from the 1-minute load average before the run (other jobs
    only; the one after includes this benchmark's own threads)."""
    before, after = result["load_average_before"][0], result["load_average_after"][0]
    cores = os.cpu_count() or 1
    state = (
        "The machine was loaded by other jobs"
        if before > 0.5 * cores
        else "The machine is shared with other jobs, lightly loaded at the start"
    )
    return (
        f"{state} (1-minute load average {before:.1f} before the run, {after:.1f} after it, "
        f"which includes this benchmark's own threads; {cores} cores): single calls vary, the "
        "interleaved side-by-side ratio is the figure to read."
    )


def markdown(result: dict) -> str:
    w = result["workloads"]
    cmd = "python tools/bench_vmf.py --output BENCHMARKS.md" + (" --quick" if result["quick"]
                                                                else "")  # fmt: skip
    lines = [
        BEGIN,
        "## von Mises-Fisher sampling and the hole indicator: jaxrobust vs the S-VAE authors' "
        "PyTorch sampler",
        "",
        f"Command: `{cmd}` ({result['total_s']:.0f} s in all). "
        f"{stamp_text(result['stamp'], on=result['device'])} PyTorch CPU with "
        f"{result['torch_threads']} threads; jaxrobust and PyTorch calls interleaved in one "
        f"process, median of the repeats. {_load_text(result)} "
        "PyTorch side: `tools/bench_vmf.py`'s twin of `VonMisesFisher.rsample` of the authors' "
        "code (nicola-decao/s-vae-pytorch: closed-form w for m = 3, Wood's rejection loop in "
        "torch otherwise, Householder map) and of the MLP VAE's hole indicator (same weights). "
        "jaxrobust: Wood's rejection sampler for every m (the default, its later rounds "
        "re-propose only the rejected elements), and for m = 3 also the closed-form inverse "
        "CDF (`method='inverse_cdf'`, the authors' m = 3 method: like for like). "
        "Ratio = jaxrobust rate / PyTorch rate (above 1: jaxrobust faster). The timed PyTorch "
        "sampler uses Wood's exact b; the authors' switch to the Taylor form b = (m-1) / "
        "(4 kappa) above kappa = 10 (valid only for kappa >> m) biases their m = 64 samples "
        '(the check "pytorch, the authors\' b" below), at the same cost.',
        "",
        "| workload | size | jaxrobust (ms) | PyTorch (ms) | jaxrobust compile (s, once) | "
        "repeats | ratio jaxrobust / PyTorch |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key in ("vmf_m3", "vmf_m3_inverse_cdf", "vmf_m64", "hole_indicator"):
        rec = w[key]
        fj, ft = rec["figures"]["jaxrobust"], rec["figures"]["pytorch"]
        p = rec["params"]
        if key == "hole_indicator":
            size = f"{p['images']:,} images, K = {p['K']}, batches of {p['batch']}"
            compile_s = f"{fj['first_call_s'] - fj['median_s']:.1f} (first call - median)"
        else:
            size = f"{p['samples']:,} samples, one per (mu, kappa), kappa log-uniform [1, 1000]"
            compile_s = f"{fj['compile_s']:.1f}"
        lines.append(
            f"| {rec['title']} | {size} | {_ms(fj)} | {_ms(ft)} | {compile_s} | "
            f"{p['repeats']} | **{rec['ratios'][0]['value']:.2f}x** |"
        )
    lines += ["", "Checks, before timing (both samplers, on the timed workload's own samples):"]
    for key in ("vmf_m3", "vmf_m3_inverse_cdf", "vmf_m64"):
        m, method = w[key]["params"]["m"], w[key]["params"]["method"]
        for side, c in w[key]["checks"].items():
            side = f"{side} ({method})" if side == "jaxrobust" else side
            decades = ", ".join(f"{k}: {v:+.2f}" for k, v in c["z_per_decade"].items())
            lines.append(
                f"- m = {m}, {side}: mean mu.z {c['mean_cos']:.5f} vs mean A_m(kappa) "
                f"{c['mean_A']:.5f}, z-score {c['z']:+.2f} (per kappa decade {decades}; "
                f"|z| <= {MAX_ABS_Z:g} required), max | ||z|| - 1 | {c['max_norm_error']:.1e}"
            )
    h = w["hole_indicator"]
    par, agr = h["parity"], h["agreement"]
    lines += [
        f"- hole indicator, same weights: mean directions agree to "
        f"{par['mean_direction_max_abs']:.1e} (abs), kappa to {par['kappa_max_rel']:.1e} (rel), "
        f"decoder means to {par['decoder_mean_max_abs']:.1e}; hole indicator mean over the "
        f"images {agr['mean_jaxrobust']:.4f} (jaxrobust) vs {agr['mean_pytorch']:.4f} (PyTorch), "
        f"relative difference {agr['rel_diff_of_means']:.1e}; per image median relative "
        f"difference {agr['median_rel_diff_per_image']:.3f} (two independent K = "
        f"{NUM_SAMPLES} estimates; one estimate's relative sd is about "
        f"{agr['expected_rel_sd_per_estimate']:.3f} for Gaussian log-likelihoods).",
        "",
        "The jaxrobust hole-indicator score also computes the IWAE log-weights (log q and the "
        "prior) of the same samples; the PyTorch twin computes log p(x|z) only. Synthetic uint8 "
        "images, random initial weights (the cost does not depend on training).",
        END,
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5, help="m = 3 sampling")
    parser.add_argument("--repeats-64", type=int, default=2, help="m = 64 sampling")
    parser.add_argument("--repeats-hole", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (tests)")
    parser.add_argument("--json", default=None, help="write every figure here")
    parser.add_argument("--output", default=None, help="write the section into this markdown")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.images, args.batch = 2000, 40, 20
        args.repeats = args.repeats_64 = args.repeats_hole = 1
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

"""Full-batch HMC / NUTS over a parameter pytree with NumPyro (the dissertation's gold-standard
posterior for small parameter subsets, e.g. one decoder layer, Ch.3).

``run_nuts(potential_fn, init_params, key, ...)`` samples ``p(theta) ~ exp(-potential_fn(theta))``
with ``numpyro.infer.NUTS`` (Hoffman & Gelman 2014) or ``HMC`` (Neal 2011), step size and a
diagonal (or dense) mass matrix adapted during warmup (dual averaging, windowed adaptation).
``potential_fn`` is the FULL potential ``U(theta) = -sum_i log p(x_i | theta) - log p(theta)``
(not divided by N). Several chains run vectorized in one program and are flattened to one
[chains * samples, ...] sample axis; the diagnostics (acceptance, divergences, split R-hat and
effective sample size per leaf, Gelman et al. BDA3 ch. 11) come back as plain Python numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import HMC, MCMC, NUTS

PyTree = Any


def _leaf_name(path) -> str:
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts) or "theta"


def run_nuts(
    potential_fn: Callable[[PyTree], jax.Array],
    init_params: PyTree,
    key: jax.Array,
    *,
    num_warmup: int,
    num_samples: int,
    thinning: int = 1,
    num_chains: int = 1,
    target_accept_prob: float = 0.8,
    algorithm: str = "nuts",
    step_size: float = 1.0,
    num_steps: int | None = None,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    init_jitter: float = 0.0,
    progress_bar: bool = False,
) -> tuple[PyTree, dict]:
    """Sample ``exp(-potential_fn(theta))`` starting from ``init_params``.

    Args:
      potential_fn: full potential of a single parameter pytree, returns a scalar.
      init_params: a pytree (e.g. a pruned param dict of the chosen layer); every chain starts
        here, plus ``init_jitter * N(0, 1)`` per chain when ``init_jitter > 0``.
      key: PRNG key.
      num_warmup, num_samples: per chain; ``num_samples`` counts draws before thinning.
      thinning: keep every ``thinning``-th draw.
      num_chains: chains run with ``chain_method="vectorized"`` when > 1.
      algorithm: ``"nuts"`` or ``"hmc"`` (then ``num_steps`` leapfrog steps, or NumPyro's default
        trajectory length 2 pi when None).
      step_size: initial step size (adapted during warmup).

    Returns:
      ``(samples, diagnostics)``: samples with leading axis ``num_chains * num_samples //
      thinning``; diagnostics a JSON-able dict (acceptance, divergences, ESS, R-hat, step
      sizes, sizes and seconds).

    Examples:
        A 2-D standard normal, U(theta) = |theta|^2 / 2:

        >>> samples, info = run_nuts(
        ...     lambda theta: 0.5 * jnp.sum(theta["x"] ** 2),
        ...     {"x": jnp.zeros(2)},
        ...     jax.random.key(0),
        ...     num_warmup=100,
        ...     num_samples=200,
        ... )
        >>> samples["x"].shape, info["num_draws"], info["num_divergences"]
        ((200, 2), 200, 0)
        >>> bool(jnp.all(jnp.abs(samples["x"].mean(0)) < 0.3)), 0.5 < info["accept_prob"] <= 1
        (True, True)
        >>> sorted(info["ess"]), info["max_r_hat"] < 1.1
        (['x'], True)
        >>> run_nuts(lambda theta: jnp.sum(jnp.log(theta)), jnp.zeros(1), jax.random.key(0),
        ...          num_warmup=10, num_samples=10)
        Traceback (most recent call last):
        ...
        ValueError: run_nuts: the potential at init_params is -inf, not finite; ...
    """
    if algorithm not in ("nuts", "hmc"):
        raise ValueError(f"run_nuts: algorithm must be 'nuts' or 'hmc', got {algorithm!r}.")
    if num_warmup < 0 or num_samples < 1 or thinning < 1 or num_chains < 1:
        raise ValueError(
            "run_nuts: need num_warmup >= 0, num_samples >= 1, thinning >= 1, num_chains >= 1; "
            f"got {num_warmup}, {num_samples}, {thinning}, {num_chains}."
        )
    if num_samples // thinning < 4:
        raise ValueError(
            f"run_nuts: {num_samples // thinning} kept draws per chain; effective sample size "
            "and R-hat need at least 4 (raise num_samples or lower thinning / num_chains)."
        )
    if not jax.tree.leaves(init_params):
        raise ValueError("run_nuts: init_params has no array leaves.")
    init_params = jax.tree.map(jnp.asarray, init_params)
    u0 = float(potential_fn(init_params))
    if not math.isfinite(u0):
        raise ValueError(
            f"run_nuts: the potential at init_params is {u0}, not finite; start from a point of "
            "positive density (e.g. trained params) and check potential_fn for log(0) or overflow."
        )

    if algorithm == "nuts":
        kernel = NUTS(
            potential_fn=potential_fn,
            step_size=step_size,
            target_accept_prob=target_accept_prob,
            max_tree_depth=max_tree_depth,
            dense_mass=dense_mass,
        )
    else:
        kernel = HMC(
            potential_fn=potential_fn,
            step_size=step_size,
            target_accept_prob=target_accept_prob,
            num_steps=num_steps,
            trajectory_length=None if num_steps is not None else 2 * math.pi,
            dense_mass=dense_mass,
        )

    key, init_key = jax.random.split(key)
    if num_chains > 1:
        leaves, treedef = jax.tree.flatten(init_params)
        keys = jax.random.split(init_key, len(leaves))
        start = jax.tree.unflatten(
            treedef,
            [
                x[None] + init_jitter * jax.random.normal(k, (num_chains, *x.shape), x.dtype)
                for x, k in zip(leaves, keys, strict=True)
            ],
        )
    else:
        start = init_params
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        thinning=thinning,
        chain_method="vectorized" if num_chains > 1 else "sequential",
        progress_bar=progress_bar,
    )
    t0 = time.perf_counter()
    mcmc.run(key, init_params=start, extra_fields=("diverging", "accept_prob"))
    grouped = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(grouped)
    seconds = time.perf_counter() - t0

    extra = mcmc.get_extra_fields(group_by_chain=True)
    ess, r_hat = {}, {}
    for path, x in jax.tree_util.tree_flatten_with_path(grouped)[0]:
        x = np.asarray(x, np.float64)
        e = np.asarray(effective_sample_size(x)).ravel()
        r = np.asarray(split_gelman_rubin(x)).ravel()
        name = _leaf_name(path)
        ess[name] = {"min": float(np.min(e)), "median": float(np.median(e))}
        r_hat[name] = float(np.max(r))
    step_sizes = np.atleast_1d(np.asarray(mcmc.last_state.adapt_state.step_size)).ravel()
    diagnostics = {
        "algorithm": algorithm,
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "thinning": thinning,
        "num_draws": int(jax.tree.leaves(grouped)[0].shape[1]) * num_chains,
        "accept_prob": float(np.mean(np.asarray(extra["accept_prob"]))),
        "num_divergences": int(np.sum(np.asarray(extra["diverging"]))),
        "step_size": [float(s) for s in step_sizes],
        "ess": ess,
        "min_ess": min(v["min"] for v in ess.values()),
        "r_hat": r_hat,
        "max_r_hat": max(r_hat.values()),
        "potential_at_init": u0,
        "seconds": seconds,
    }
    samples = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), grouped)
    return samples, diagnostics

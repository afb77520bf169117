"""Per-sample outputs of a posterior stack (``log_lik[S, N]``, logits ``[S, N, C]``) in one call.

For S posterior samples theta_s (or ensemble members) and inputs x, the Bayesian-VAE scores of
the dissertation (Ch.3, eq. 3.3) need log p(x | theta_s), each an importance-sampled estimate
with K samples of z ~ q(z|x). :func:`posterior_log_likelihoods` evaluates a per-model function
(e.g. a VAE's ``iwae`` score, chunked over K) for every sample: ``lax.map`` over the sample axis,
vmapping ``sample_batch_size`` samples at a time (1 on CPU, where vmapping a convolution over its
kernel becomes a slow grouped convolution; chunks of 8 on GPU/TPU). The K importance samples are
independent between posterior samples (one key per sample). The stack then goes to
:func:`jaxrobust.scores.stacked_scores`. :func:`map_posterior` is the same map for any
per-sample output (e.g. a classifier's logits for the Bayesian model average).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxrobust.inference import from_stack
    >>> posterior = from_stack({"params": {"w": jnp.array([1.0, 2.0, 3.0])}})  # 3 samples
    >>> f = lambda v, x, key: v["params"]["w"] * x  # "log-likelihood" w * x
    >>> posterior_log_likelihoods(f, posterior, jnp.array([1.0, 10.0]), jax.random.key(0))
    Array([[ 1., 10.],
           [ 2., 20.],
           [ 3., 30.]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxrobust.inference.samples import PosteriorSamples, sample_variables
from jaxrobust.runs import runs_strategy

PyTree = Any
LogLikFn = Callable[[PyTree, jax.Array, jax.Array], jax.Array]  # (variables, x[B,...], key) -> [B]


def default_sample_batch_size(num_samples: int) -> int | None:
    """None (strictly one sample after another) on CPU, else vmapped chunks of up to 8."""
    return None if runs_strategy() == "map" else min(num_samples, 8)


def posterior_log_likelihoods(
    log_lik_fn: LogLikFn,
    posterior: PosteriorSamples,
    images: jax.Array,
    key: jax.Array,
    *,
    sample_batch_size: int | None | str = "auto",
) -> jax.Array:
    """``log_lik[S, B]``: ``log_lik_fn(variables_s, images, key_s)`` for every sample s.

    Jittable; call it inside the caller's jit (e.g. per batch of a dataset map).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxrobust.inference import from_stack
        >>> stack = from_stack({"params": {"b": jnp.array([0.0, -1.0])}})
        >>> f = lambda v, x, key: v["params"]["b"] + 0.0 * x.sum(-1)
        >>> posterior_log_likelihoods(f, stack, jnp.ones((3, 2)), jax.random.key(0)).tolist()
        [[0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]]
    """
    num = posterior.num_samples
    if sample_batch_size == "auto":
        sample_batch_size = default_sample_batch_size(num)
    keys = jax.random.split(key, num)

    def one(args):
        sample, sample_key = args
        return log_lik_fn(sample_variables(sample, posterior.fixed), images, sample_key)

    return jax.lax.map(one, (posterior.samples, keys), batch_size=sample_batch_size)


def map_posterior(
    fn: Callable[[PyTree, jax.Array, jax.Array], Any],
    posterior: PosteriorSamples,
    images: jax.Array,
    key: jax.Array,
    *,
    sample_batch_size: int | None | str = "auto",
) -> Any:
    """``fn(variables_s, images, key_s)`` for every sample s, stacked on a leading ``[S]`` axis
    (any output pytree; the map of :func:`posterior_log_likelihoods`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxrobust.inference import from_stack
        >>> posterior = from_stack({"params": {"w": jnp.array([1.0, 2.0])}})
        >>> out = map_posterior(lambda v, x, k: {"y": v["params"]["w"] * x}, posterior,
        ...                     jnp.ones((4, 3)), jax.random.key(0))
        >>> out["y"].shape
        (2, 4, 3)
    """
    return posterior_log_likelihoods(
        fn, posterior, images, key, sample_batch_size=sample_batch_size
    )

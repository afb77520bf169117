"""Importance-weighted estimates of log p(x) for latent-variable models (Burda et al. 2016).

For inputs x_1..x_N, a proposal q(z|x) and K reparameterised samples z_k ~ q(z|x), the
importance log-weights are

    log w_k(x) = log p(x | z_k) + log p(z_k) - log q(z_k | x),

and the IWAE estimate of the log-likelihood is

    log p_K(x) = log (1/K) sum_k w_k = logsumexp_k log w_k - log K,

a lower bound in expectation that increases with K and converges to log p(x) (Burda, Grosse and
Salakhutdinov 2016, "Importance Weighted Autoencoders", eq. 8 and theorem 1). K = 1 is the
single-sample ELBO. Alongside it, :func:`importance_weighted_log_likelihood` returns the mean of
the log-weights (the K-sample ELBO estimate) and their standard deviation (ddof 1, the Chapter-4
"std of LLs" score); :func:`repeated_log_likelihood_std` repeats the whole estimate R times and
returns the spread of log p_K(x) (the Chapter-5 score of the classical VAE).

The model enters only through ``log_weight_fn(key) -> [N]``: one importance log-weight per input
for one z ~ q(z|x) drawn with ``key``. Sample k uses ``jax.random.fold_in(key, k)``, whatever the
chunking, so estimates with different chunk sizes agree to float32 rounding, and an estimate
with K samples reuses the samples of every smaller K. Samples are evaluated ``chunk_size`` at a
time by ``vmap`` and the chunks run sequentially under ``lax.scan`` (memory O(chunk_size * N));
their statistics are merged streaming: a running max-shifted logsumexp and Chan et al.'s
pairwise merge of counts, means and sums of squared deviations (float32-safe, no sum of
squares). Everything is jittable with ``num_samples``, ``chunk_size`` and ``num_repeats`` static.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrobust.errors import InputError
from jaxrobust.scores._checks import check_key, refuse_non_finite_result

LogWeightFn = Callable[[jax.Array], jax.Array]

__all__ = [
    "IWAEResult",
    "importance_weighted_log_likelihood",
    "repeated_log_likelihood_std",
    "repeated_log_likelihoods",
]


class IWAEResult(NamedTuple):
    """Per-input statistics of K importance log-weights, each ``[N]`` (nats).

    - ``log_likelihood``: logsumexp_k log w_k - log K, the IWAE estimate of log p(x).
    - ``std_log_weights``: sample std of the log-weights (ddof 1; NaN when K = 1).
    - ``elbo``: mean_k log w_k, the K-sample Monte Carlo ELBO.

    Examples:
        >>> IWAEResult._fields  # see importance_weighted_log_likelihood for values
        ('log_likelihood', 'std_log_weights', 'elbo')
    """

    log_likelihood: jax.Array
    std_log_weights: jax.Array
    elbo: jax.Array


class _Running(NamedTuple):
    max: jax.Array  # running max of the log-weights (-inf before any)
    sum_exp: jax.Array  # sum_k exp(log w_k - max)
    count: jax.Array  # scalar: samples merged so far
    mean: jax.Array
    m2: jax.Array  # sum_k (log w_k - mean)^2


def _check_positive(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return value


def _output_shape(log_weight_fn: LogWeightFn, key: jax.Array):
    check_key(key)
    if not callable(log_weight_fn):
        raise InputError(f"log_weight_fn must be a function key -> [N], got {log_weight_fn!r}.")
    shape = jax.eval_shape(log_weight_fn, key)
    if not hasattr(shape, "shape") or len(shape.shape) != 1 or shape.shape[0] == 0:
        got = getattr(shape, "shape", type(shape).__name__)
        raise InputError(
            f"log_weight_fn(key) must return one log-weight per input, shape [N]; got {got}."
        )
    dtype = jnp.promote_types(shape.dtype, jnp.float32)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise InputError(f"log_weight_fn(key) must return floats, got dtype {shape.dtype}.")
    return shape.shape[0], dtype


def _merge_chunk(state: _Running, log_w: jax.Array, valid: jax.Array) -> _Running:
    """Merge the statistics of one chunk ``log_w [c, N]`` (rows where ``valid`` is False are
    padding) into the running state."""
    valid_col = valid[:, None]
    n_b = jnp.sum(valid).astype(log_w.dtype)
    # Chunk logsumexp, shifted by the chunk max.
    max_b = jnp.max(jnp.where(valid_col, log_w, -jnp.inf), axis=0)
    new_max = jnp.maximum(state.max, max_b)
    shift = jnp.where(jnp.isfinite(new_max), new_max, 0.0)  # all -inf so far: nothing to shift
    sum_b = jnp.sum(jnp.where(valid_col, jnp.exp(log_w - shift), 0.0), axis=0)
    sum_exp = state.sum_exp * jnp.exp(state.max - shift) + sum_b
    # Chunk moments (two-pass inside the chunk), then Chan et al.'s pairwise merge.
    mean_b = jnp.sum(jnp.where(valid_col, log_w, 0.0), axis=0) / jnp.maximum(n_b, 1.0)
    m2_b = jnp.sum(jnp.where(valid_col, (log_w - mean_b) ** 2, 0.0), axis=0)
    count = state.count + n_b
    delta = mean_b - state.mean
    mean = state.mean + delta * (n_b / count)
    # Two -inf means (log-weights of a zero likelihood) merge to -inf, not -inf - -inf = NaN.
    mean = jnp.where(jnp.isinf(mean_b) & (state.mean == mean_b), mean_b, mean)
    m2 = state.m2 + m2_b + delta**2 * (state.count * n_b / count)
    return _Running(new_max, sum_exp, count, mean, m2)


def importance_weighted_log_likelihood(
    log_weight_fn: LogWeightFn, *, key: jax.Array, num_samples: int, chunk_size: int
) -> IWAEResult:
    """IWAE estimate of log p(x) from ``num_samples`` importance samples, chunked and streaming.

    Args:
      log_weight_fn: ``key -> [N]``, log w = log p(x|z) + log p(z) - log q(z|x) for one
        reparameterised z ~ q(z|x) per input, drawn with ``key``.
      key: PRNG key; sample k uses ``jax.random.fold_in(key, k)``.
      num_samples: K >= 1.
      chunk_size: at most this many samples are evaluated at once (vmap); the K samples are
        split into ceil(K / chunk_size) equal chunks of ceil(K / num_chunks) <= chunk_size, the
        last padded (padding is evaluated and masked out, fewer than num_chunks evaluations).

    Returns:
      :class:`IWAEResult` with ``log_likelihood = logsumexp_k log w_k - log K``,
      ``std_log_weights`` (ddof 1, NaN for K = 1) and ``elbo = mean_k log w_k``, each ``[N]``.
      Inputs whose log-weights are all -inf get log_likelihood -inf.

    Raises:
      InputError: a bad ``num_samples``/``chunk_size`` (int >= 1), ``key`` (not a PRNG key) or
        ``log_weight_fn`` (not returning floats ``[N]``, N >= 1).
      NonFiniteScoreError: (eagerly) ``log_weight_fn`` returned NaN or +inf, so the estimate
        is NaN / +inf for some input; inside a caller's ``jit`` that input's estimate is NaN.

    Examples:
        Log-weights log w ~ N(0, 1): log E[w] = 1/2 (the IWAE estimate for large K), while
        E[log w] = 0 (the ELBO) and the log-weights' std is 1.

        >>> def log_weight_fn(key):  # one log-weight per input, 3 inputs
        ...     return jax.random.normal(key, (3,))
        >>> result = importance_weighted_log_likelihood(
        ...     log_weight_fn, key=jax.random.key(0), num_samples=4096, chunk_size=512
        ... )
        >>> [round(v, 1) for v in result.log_likelihood.tolist()]
        [0.5, 0.5, 0.5]
        >>> [round(v, 1) for v in result.std_log_weights.tolist()]
        [1.0, 1.0, 1.0]
        >>> bool(jnp.all(jnp.abs(result.elbo) < 0.1))
        True
    """
    _check_positive("num_samples", num_samples, 1)
    _check_positive("chunk_size", chunk_size, 1)
    num_chunks = -(-num_samples // chunk_size)
    per_chunk = -(-num_samples // num_chunks)  # <= chunk_size, minimises the padding
    num_inputs, dtype = _output_shape(log_weight_fn, key)

    def body(state, chunk_index):
        sample_index = chunk_index * per_chunk + jnp.arange(per_chunk)
        keys = jax.vmap(lambda k: jax.random.fold_in(key, k))(sample_index)
        log_w = jax.vmap(log_weight_fn)(keys).astype(dtype)
        return _merge_chunk(state, log_w, sample_index < num_samples), None

    zeros = jnp.zeros((num_inputs,), dtype)
    init = _Running(
        jnp.full((num_inputs,), -jnp.inf, dtype), zeros, jnp.zeros((), dtype), zeros, zeros
    )
    state, _ = jax.lax.scan(body, init, jnp.arange(num_chunks))

    log_likelihood = state.max + jnp.log(state.sum_exp) - math.log(num_samples)
    log_likelihood = jnp.where(state.max == -jnp.inf, -jnp.inf, log_likelihood)
    if num_samples > 1:
        std = jnp.sqrt(state.m2 / (num_samples - 1))
    else:
        std = jnp.full((num_inputs,), jnp.nan, dtype)
    refuse_non_finite_result("the IWAE log-likelihood", log_likelihood, "log_weight_fn")
    return IWAEResult(log_likelihood, std, state.mean)


def repeated_log_likelihoods(
    log_weight_fn: LogWeightFn,
    *,
    key: jax.Array,
    num_samples: int,
    num_repeats: int,
    chunk_size: int,
) -> jax.Array:
    """R independent IWAE estimates log p_K(x), ``[R, N]``; repeat r uses
    ``jax.random.split(key, R)[r]``. The repeats are vmapped, so memory is
    O(R * chunk_size * N).

    Examples:
        Equal log-weights give the same estimate in every repeat:

        >>> estimates = repeated_log_likelihoods(
        ...     lambda key: jnp.array([-1.0, -2.0]),
        ...     key=jax.random.key(0),
        ...     num_samples=8,
        ...     num_repeats=3,
        ...     chunk_size=4,
        ... )
        >>> estimates.tolist()
        [[-1.0, -2.0], [-1.0, -2.0], [-1.0, -2.0]]
    """
    _check_positive("num_repeats", num_repeats, 1)
    check_key(key)
    keys = jax.random.split(key, num_repeats)

    def one(repeat_key):
        return importance_weighted_log_likelihood(
            log_weight_fn, key=repeat_key, num_samples=num_samples, chunk_size=chunk_size
        ).log_likelihood

    estimates = jax.vmap(one)(keys)
    refuse_non_finite_result("the repeated IWAE log-likelihoods", estimates, "log_weight_fn")
    return estimates


def repeated_log_likelihood_std(
    log_weight_fn: LogWeightFn,
    *,
    key: jax.Array,
    num_samples: int,
    num_repeats: int,
    chunk_size: int,
) -> jax.Array:
    """Sample std (ddof 1) over R independent IWAE estimates of log p(x), ``[N]``.

    std_r log p_K^(r)(x) with log p_K^(r) = logsumexp_k log w_k^(r) - log K: the Chapter-5 score
    of the classical VAE (the importance-sampled log p(x) estimate repeated several times; larger
    = more OOD). Repeat r uses ``jax.random.split(key, R)[r]`` (see
    :func:`repeated_log_likelihoods`); two-pass moments in float32.

    Examples:
        With log w ~ N(0, 1), one sample per estimate (K = 1) is one log-weight, so the spread
        over 2,000 repeats is the log-weights' std, 1.

        >>> def log_weight_fn(key):  # 2 inputs
        ...     return jax.random.normal(key, (2,))
        >>> std = repeated_log_likelihood_std(
        ...     log_weight_fn, key=jax.random.key(0), num_samples=1, num_repeats=2000, chunk_size=1
        ... )
        >>> [round(v, 1) for v in std.tolist()]
        [1.0, 1.0]
    """
    _check_positive("num_repeats", num_repeats, 2)
    estimates = repeated_log_likelihoods(
        log_weight_fn,
        key=key,
        num_samples=num_samples,
        num_repeats=num_repeats,
        chunk_size=chunk_size,
    )
    deviations = estimates - jnp.mean(estimates, axis=0)
    return jnp.sqrt(jnp.sum(deviations**2, axis=0) / (num_repeats - 1))

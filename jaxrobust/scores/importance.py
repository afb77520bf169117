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

The hole indicator (the dissertation's eq. 4.17 = eq. 5.20) is the sample std (ddof 1) of the
log-likelihood terms log p(x | z_i), z_i ~ q(z|x), i = 1..N: large where q(z|x) covers a region
of the latent space ("a hole") whose codes decode to very different images.
:func:`hole_indicator` computes it alone; :func:`iwae_and_hole_indicator` computes it from the
same samples z_i as the IWAE estimate (one scan gives log p_K(x), the log-weights' std and the
hole indicator: a VAE's ``iwae``, ``iwae_std`` and ``hole_indicator`` scores).

The model enters only through ``log_weight_fn(key) -> [N]``: one importance log-weight per input
for one z ~ q(z|x) drawn with ``key`` (``log_terms_fn(key) -> (log_w [N], log p(x|z) [N])`` for
the shared path). Sample k uses ``jax.random.fold_in(key, k)``, whatever the
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
LogTermsFn = Callable[[jax.Array], tuple[jax.Array, jax.Array]]

__all__ = [
    "IWAEResult",
    "hole_indicator",
    "importance_weighted_log_likelihood",
    "iwae_and_hole_indicator",
    "iwae_and_term_stds",
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


class _Moments(NamedTuple):
    count: jax.Array  # scalar: samples merged so far
    mean: jax.Array
    m2: jax.Array  # sum_k (value_k - mean)^2


class _Running(NamedTuple):
    max: jax.Array  # running max of the log-weights (-inf before any)
    sum_exp: jax.Array  # sum_k exp(log w_k - max)
    moments: _Moments  # of the log-weights


def _check_positive(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return value


def _output_shape(fn, key: jax.Array, *, name: str = "log_weight_fn", arity: int = 1):
    """``(N, float dtype)`` of ``fn(key)``: one ``[N]`` array, or a tuple of ``arity`` of them."""
    check_key(key)
    what = "one log-weight per input" if arity == 1 else f"a tuple of {arity} arrays [N]"
    if not callable(fn):
        raise InputError(f"{name} must be a function key -> [N] ({what}), got {fn!r}.")
    shape = jax.eval_shape(fn, key)
    parts = (shape,) if arity == 1 else shape
    if arity > 1 and (not isinstance(parts, (tuple, list)) or len(parts) != arity):
        raise InputError(f"{name}(key) must return {what}; got {shape}.")
    sizes = set()
    for part in parts:
        if not hasattr(part, "shape") or len(part.shape) != 1 or part.shape[0] == 0:
            got = getattr(part, "shape", type(part).__name__)
            raise InputError(f"{name}(key) must return {what}, shape [N]; got {got}.")
        sizes.add(part.shape[0])
    if len(sizes) != 1:
        raise InputError(f"{name}(key) must return arrays of one length N; got {sorted(sizes)}.")
    dtype = jnp.result_type(jnp.float32, *(part.dtype for part in parts))
    if not jnp.issubdtype(dtype, jnp.floating):
        raise InputError(f"{name}(key) must return floats, got dtype {dtype}.")
    return sizes.pop(), dtype


def _merge_moments(state: _Moments, values: jax.Array, valid: jax.Array) -> _Moments:
    """Chan et al.'s pairwise merge of a chunk ``values [c, N]`` (rows where ``valid`` is False
    are padding) into running counts, means and sums of squared deviations."""
    valid_col = valid[:, None]
    n_b = jnp.sum(valid).astype(values.dtype)
    # Chunk moments (two-pass inside the chunk), then the pairwise merge.
    mean_b = jnp.sum(jnp.where(valid_col, values, 0.0), axis=0) / jnp.maximum(n_b, 1.0)
    m2_b = jnp.sum(jnp.where(valid_col, (values - mean_b) ** 2, 0.0), axis=0)
    count = state.count + n_b
    delta = mean_b - state.mean
    mean = state.mean + delta * (n_b / count)
    # Two -inf means (log-weights of a zero likelihood) merge to -inf, not -inf - -inf = NaN.
    mean = jnp.where(jnp.isinf(mean_b) & (state.mean == mean_b), mean_b, mean)
    m2 = state.m2 + m2_b + delta**2 * (state.count * n_b / count)
    return _Moments(count, mean, m2)


def _merge_chunk(state: _Running, log_w: jax.Array, valid: jax.Array) -> _Running:
    """Merge the statistics of one chunk ``log_w [c, N]`` (rows where ``valid`` is False are
    padding) into the running state."""
    valid_col = valid[:, None]
    # Chunk logsumexp, shifted by the chunk max.
    max_b = jnp.max(jnp.where(valid_col, log_w, -jnp.inf), axis=0)
    new_max = jnp.maximum(state.max, max_b)
    shift = jnp.where(jnp.isfinite(new_max), new_max, 0.0)  # all -inf so far: nothing to shift
    sum_b = jnp.sum(jnp.where(valid_col, jnp.exp(log_w - shift), 0.0), axis=0)
    sum_exp = state.sum_exp * jnp.exp(state.max - shift) + sum_b
    return _Running(new_max, sum_exp, _merge_moments(state.moments, log_w, valid))


def _init_moments(num_inputs: int, dtype) -> _Moments:
    zeros = jnp.zeros((num_inputs,), dtype)
    return _Moments(jnp.zeros((), dtype), zeros, zeros)


def _init_running(num_inputs: int, dtype) -> _Running:
    return _Running(
        jnp.full((num_inputs,), -jnp.inf, dtype),
        jnp.zeros((num_inputs,), dtype),
        _init_moments(num_inputs, dtype),
    )


def _stream(fn, merge, init, *, key, num_samples: int, chunk_size: int):
    """``lax.scan`` over ceil(K / chunk_size) chunks of samples; sample k is ``fn(fold_in(key,
    k))`` (a pytree of ``[N]`` arrays), each chunk ``vmap``ped and merged into ``init``."""
    num_chunks = -(-num_samples // chunk_size)
    per_chunk = -(-num_samples // num_chunks)  # <= chunk_size, minimises the padding

    def body(state, chunk_index):
        sample_index = chunk_index * per_chunk + jnp.arange(per_chunk)
        keys = jax.vmap(lambda k: jax.random.fold_in(key, k))(sample_index)
        return merge(state, jax.vmap(fn)(keys), sample_index < num_samples), None

    state, _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
    return state


def _std(moments: _Moments, num_samples: int) -> jax.Array:
    """Sample std (ddof 1) of the merged values; NaN for one sample."""
    if num_samples > 1:
        return jnp.sqrt(moments.m2 / (num_samples - 1))
    return jnp.full(moments.mean.shape, jnp.nan, moments.mean.dtype)


def _iwae_result(state: _Running, num_samples: int) -> IWAEResult:
    log_likelihood = state.max + jnp.log(state.sum_exp) - math.log(num_samples)
    log_likelihood = jnp.where(state.max == -jnp.inf, -jnp.inf, log_likelihood)
    return IWAEResult(log_likelihood, _std(state.moments, num_samples), state.moments.mean)


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
    num_inputs, dtype = _output_shape(log_weight_fn, key)
    state = _stream(
        log_weight_fn,
        lambda st, log_w, valid: _merge_chunk(st, log_w.astype(dtype), valid),
        _init_running(num_inputs, dtype),
        key=key,
        num_samples=num_samples,
        chunk_size=chunk_size,
    )
    result = _iwae_result(state, num_samples)
    refuse_non_finite_result("the IWAE log-likelihood", result.log_likelihood, "log_weight_fn")
    return result


def iwae_and_hole_indicator(
    log_terms_fn: LogTermsFn, *, key: jax.Array, num_samples: int, chunk_size: int
) -> tuple[IWAEResult, jax.Array]:
    """The IWAE estimate and the hole indicator from ONE set of samples z_1..z_K ~ q(z|x).

    Args:
      log_terms_fn: ``key -> (log_w [N], log_lik [N])`` for one reparameterised z ~ q(z|x) per
        input drawn with ``key``: log w = log p(x|z) + log p(z) - log q(z|x) and
        log_lik = log p(x|z).
      key, num_samples, chunk_size: as :func:`importance_weighted_log_likelihood` (sample k uses
        ``fold_in(key, k)``; chunking changes nothing beyond float32 rounding).

    Returns:
      ``(IWAEResult, hole)``: the :class:`IWAEResult` of the log-weights (the samples and
      statistics of :func:`importance_weighted_log_likelihood` for ``lambda k: log_terms_fn(k)[0]``)
      and ``hole = std_i log p(x|z_i)`` (ddof 1, eq. 4.17; NaN for K = 1), each ``[N]``.

    Raises:
      InputError: bad ``num_samples``/``chunk_size``/``key``, or ``log_terms_fn`` not returning
        a pair of float arrays ``[N]``.
      NonFiniteScoreError: (eagerly) NaN/+inf log-weights, or (K > 1) a non-finite hole
        indicator (a NaN or infinite log p(x|z)).

    Examples:
        log p(x|z) = 2 eps and log w = eps, eps ~ N(0, 1): the log-weights' std is 1 and the
        hole indicator 2.

        >>> def log_terms_fn(key):  # 3 inputs
        ...     eps = jax.random.normal(key, (3,))
        ...     return eps, 2.0 * eps
        >>> iwae, hole = iwae_and_hole_indicator(
        ...     log_terms_fn, key=jax.random.key(0), num_samples=4096, chunk_size=512
        ... )
        >>> [round(v, 1) for v in iwae.std_log_weights.tolist()]
        [1.0, 1.0, 1.0]
        >>> [round(v, 1) for v in hole.tolist()]
        [2.0, 2.0, 2.0]
    """
    result, (hole,) = _iwae_and_stds(log_terms_fn, key, num_samples, chunk_size, 2)
    if num_samples > 1:
        refuse_non_finite_result("the hole indicator", hole, "log_terms_fn")
    return result, hole


def iwae_and_term_stds(
    log_terms_fn: Callable[[jax.Array], tuple[jax.Array, ...]],
    *,
    key: jax.Array,
    num_samples: int,
    chunk_size: int,
) -> tuple[IWAEResult, tuple[jax.Array, ...]]:
    """The IWAE estimate and the sample std (ddof 1) of each term of the log-weight, from ONE
    set of samples z_1..z_K ~ q(z|x) (the per-term stds of the dissertation's Fig. 5.1).

    ``log_terms_fn(key) -> (log_w, t_1, ..., t_m)``, each ``[N]`` (for a VAE: log w and its
    terms log p(x|z), log q(z|x), log p(z)); returns ``(IWAEResult, (std t_1, ..., std t_m))``.
    :func:`iwae_and_hole_indicator` is the case m = 1, t_1 = log p(x|z).

    Example:
        >>> def log_terms_fn(key):  # log w = a - b with independent a ~ N(0, 4), b ~ N(0, 1)
        ...     a, b = 2.0 * jax.random.normal(key, (2, 3))
        ...     return a - b / 2.0, a, b / 2.0
        >>> iwae, (std_a, std_b) = iwae_and_term_stds(
        ...     log_terms_fn, key=jax.random.key(0), num_samples=4096, chunk_size=512)
        >>> [round(v, 1) for v in std_a.tolist()], [round(v, 1) for v in std_b.tolist()]
        ([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    """
    if not callable(log_terms_fn):
        raise InputError(f"log_terms_fn must be a function key -> (log_w, terms...), got "
                         f"{log_terms_fn!r}.")  # fmt: skip
    check_key(key)
    arity = len(jax.eval_shape(log_terms_fn, key))
    if arity < 2:
        raise InputError("log_terms_fn(key) must return (log_w, t_1, ...): at least one term.")
    result, stds = _iwae_and_stds(log_terms_fn, key, num_samples, chunk_size, arity)
    if num_samples > 1:
        for std in stds:
            refuse_non_finite_result("a per-term std", std, "log_terms_fn")
    return result, stds


def _iwae_and_stds(log_terms_fn, key, num_samples: int, chunk_size: int, arity: int):
    """One scan over the samples: the IWAE running state of the first output (the log-weight)
    and the streamed moments of every other output."""
    _check_positive("num_samples", num_samples, 1)
    _check_positive("chunk_size", chunk_size, 1)
    num_inputs, dtype = _output_shape(log_terms_fn, key, name="log_terms_fn", arity=arity)

    def merge(state, terms, valid):
        running, moments = state
        return (
            _merge_chunk(running, terms[0].astype(dtype), valid),
            tuple(
                _merge_moments(m, t.astype(dtype), valid)
                for m, t in zip(moments, terms[1:], strict=True)
            ),
        )

    init = (
        _init_running(num_inputs, dtype),
        tuple(_init_moments(num_inputs, dtype) for _ in range(arity - 1)),
    )
    running, moments = _stream(
        log_terms_fn, merge, init, key=key, num_samples=num_samples, chunk_size=chunk_size
    )
    result = _iwae_result(running, num_samples)
    refuse_non_finite_result("the IWAE log-likelihood", result.log_likelihood, "log_terms_fn")
    return result, tuple(_std(m, num_samples) for m in moments)


def hole_indicator(
    log_lik_fn: LogWeightFn, *, key: jax.Array, num_samples: int, chunk_size: int
) -> jax.Array:
    """Hole indicator Sigma_z[x] = std_i log p(x | z_i), z_i ~ q(z|x) (ddof 1, eq. 4.17), ``[N]``.

    Args:
      log_lik_fn: ``key -> [N]``, log p(x|z) for one z ~ q(z|x) per input drawn with ``key``.
      key: sample i uses ``jax.random.fold_in(key, i)`` (as the IWAE estimator, so the same
        ``key`` gives the same z_i as :func:`iwae_and_hole_indicator`).
      num_samples: N >= 2.
      chunk_size: samples evaluated at once (vmap); chunks run under ``lax.scan`` and their
        moments are merged streaming (Chan et al.), so memory is O(chunk_size * inputs).

    Raises:
      InputError: bad ``num_samples`` (< 2), ``chunk_size``, ``key`` or ``log_lik_fn``.
      NonFiniteScoreError: (eagerly) ``log_lik_fn`` returned NaN or infinite values.

    Examples:
        log p(x|z) = 3 eps, eps ~ N(0, 1): the indicator is 3, up to the Monte Carlo error of a
        std from N = 4096 samples (3 / sqrt(2 N) = 0.03).

        >>> std = hole_indicator(lambda key: 3.0 * jax.random.normal(key, (2,)),
        ...                      key=jax.random.key(0), num_samples=4096, chunk_size=1024)
        >>> bool(jnp.all(jnp.abs(std - 3.0) < 0.15))
        True
    """
    _check_positive("num_samples", num_samples, 2)
    _check_positive("chunk_size", chunk_size, 1)
    num_inputs, dtype = _output_shape(log_lik_fn, key, name="log_lik_fn")
    moments = _stream(
        log_lik_fn,
        lambda st, log_lik, valid: _merge_moments(st, log_lik.astype(dtype), valid),
        _init_moments(num_inputs, dtype),
        key=key,
        num_samples=num_samples,
        chunk_size=chunk_size,
    )
    hole = _std(moments, num_samples)
    refuse_non_finite_result("the hole indicator", hole, "log_lik_fn")
    return hole


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

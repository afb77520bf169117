"""Importance-weighted log-likelihood (IWAE) estimator on a linear-Gaussian VAE, whose marginal
p(x) = N(b, W W^T + sigma^2 I) and posterior are known in closed form."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from jaxrobust.distributions import gaussian_log_prob, standard_normal_log_prob
from jaxrobust.scores.importance import (
    IWAEResult,
    importance_weighted_log_likelihood,
    repeated_log_likelihood_std,
    repeated_log_likelihoods,
)

LATENT, DATA, NOISE, INPUTS = 2, 5, 0.5, 256


@functools.cache
def linear_gaussian():
    """W, b, inputs x ~ p(x), the exact log p(x) (SciPy) and the exact posterior."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (DATA, LATENT))
    b = rng.normal(0, 1, DATA)
    marginal = stats.multivariate_normal(b, w @ w.T + NOISE**2 * np.eye(DATA))
    x = marginal.rvs(INPUTS, random_state=rng)
    post_cov = np.linalg.inv(np.eye(LATENT) + w.T @ w / NOISE**2)
    post_mean = (x - b) @ w @ post_cov.T / NOISE**2  # [N, d]: Sigma W^T (x - b) / sigma^2
    return w, b, x, marginal.logpdf(x), post_mean, post_cov


def make_log_weight_fn(q_mean: np.ndarray, q_chol: np.ndarray):
    """key -> [N] log p(x|z) + log p(z) - log q(z|x), z = q_mean + q_chol eps (one z per input).

    The observation density reuses :func:`gaussian_log_prob` on [N, 1, 1, D] "images".
    """
    w, b, x, *_ = linear_gaussian()
    w, b, x = (jnp.asarray(a, jnp.float32) for a in (w, b, x))
    q_mean, q_chol = jnp.asarray(q_mean, jnp.float32), jnp.asarray(q_chol, jnp.float32)
    log_det = jnp.sum(jnp.log(jnp.diag(q_chol)))

    def log_weight_fn(key):
        eps = jax.random.normal(key, (INPUTS, LATENT))
        z = q_mean + eps @ q_chol.T
        mean = (z @ w.T + b)[:, None, None, :]
        log_lik = gaussian_log_prob(mean, jnp.log(NOISE), x[:, None, None, :])
        log_q = -0.5 * jnp.sum(eps**2, -1) - log_det - 0.5 * LATENT * np.log(2 * np.pi)
        return log_lik + standard_normal_log_prob(z) - log_q

    return log_weight_fn


def approximate_posterior_fn():
    """A mean-field q, off-centre and twice as wide as the posterior: the IWAE bound has a
    visible gap, and the weights are bounded (a too-narrow q would give heavy-tailed ones)."""
    *_, post_mean, post_cov = linear_gaussian()
    return make_log_weight_fn(0.6 * post_mean, np.diag(np.sqrt(2.0 * np.diag(post_cov))))


def test_single_sample_is_the_elbo():
    fn = approximate_posterior_fn()
    key = jax.random.key(1)
    result = importance_weighted_log_likelihood(fn, key=key, num_samples=1, chunk_size=4)
    assert isinstance(result, IWAEResult)
    elbo = fn(jax.random.fold_in(key, 0))  # sample k is drawn with fold_in(key, k)
    np.testing.assert_allclose(result.log_likelihood, elbo, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(result.elbo, elbo, rtol=1e-6, atol=1e-5)
    assert np.all(np.isnan(result.std_log_weights))  # ddof 1 with one sample


def test_estimate_increases_with_k_towards_log_px():
    *_, log_px, _, _ = linear_gaussian()
    fn = approximate_posterior_fn()
    key = jax.random.key(2)
    averages = [
        float(
            jnp.mean(
                importance_weighted_log_likelihood(
                    fn, key=key, num_samples=k, chunk_size=250
                ).log_likelihood
            )
        )
        for k in (1, 10, 100, 1000)
    ]  # sample k is the same draw for every K, so the four estimates are nested
    exact = float(np.mean(log_px))
    assert averages == sorted(averages), averages
    gaps = exact - np.array(averages)
    assert gaps[0] > 1.0, gaps  # the ELBO of the mean-field q is visibly below log p(x)
    assert gaps[1] > 10 * abs(gaps[-1]) and abs(gaps[-1]) < 0.01, gaps


def test_exact_posterior_gives_constant_weights():
    *_, log_px, post_mean, post_cov = linear_gaussian()
    fn = make_log_weight_fn(post_mean, np.linalg.cholesky(post_cov))
    result = importance_weighted_log_likelihood(
        fn, key=jax.random.key(3), num_samples=100, chunk_size=32
    )
    np.testing.assert_allclose(result.log_likelihood, log_px, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(result.elbo, log_px, rtol=1e-5, atol=1e-4)
    assert float(jnp.max(result.std_log_weights)) < 1e-4


def _all_log_weights(fn, key, num_samples) -> np.ndarray:
    keys = jax.vmap(lambda k: jax.random.fold_in(key, k))(jnp.arange(num_samples))
    return np.asarray(jax.vmap(fn)(keys), np.float64)  # [K, N]


@functools.cache
def _chunking_references(num_samples: int):
    """The one-pass estimate (chunk_size = K) and all K log-weights in float64."""
    fn = approximate_posterior_fn()
    key = jax.random.key(4)
    unchunked = importance_weighted_log_likelihood(
        fn, key=key, num_samples=num_samples, chunk_size=num_samples
    )
    return fn, key, unchunked, _all_log_weights(fn, key, num_samples)


@pytest.mark.gpu
@pytest.mark.parametrize("chunk_size", [1, 5, 8, 37, 100])
def test_chunking_matches_one_pass_and_numpy(chunk_size):
    num_samples = 37  # prime: every chunk size but 1 and 37 leaves a remainder
    fn, key, unchunked, log_w = _chunking_references(num_samples)
    result = importance_weighted_log_likelihood(
        fn, key=key, num_samples=num_samples, chunk_size=chunk_size
    )
    for got, whole in zip(result, unchunked, strict=True):
        np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        result.log_likelihood, logsumexp(log_w, axis=0) - np.log(num_samples), rtol=1e-5, atol=1e-4
    )
    np.testing.assert_allclose(result.elbo, log_w.mean(0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(result.std_log_weights, log_w.std(0, ddof=1), rtol=1e-4)


@pytest.mark.gpu
def test_streaming_moments_are_float32_safe():
    """Log-weights of -10^4 nats with a spread of 0.01: a float32 sum of squares would lose the
    variance entirely; the chunk-wise merge keeps it."""

    def fn(key):
        return -1e4 + 0.01 * jax.random.normal(key, (8,))

    key = jax.random.key(5)
    log_w = _all_log_weights(fn, key, 1000)
    result = importance_weighted_log_likelihood(fn, key=key, num_samples=1000, chunk_size=64)
    np.testing.assert_allclose(result.std_log_weights, log_w.std(0, ddof=1), rtol=2e-2)
    np.testing.assert_allclose(result.log_likelihood, logsumexp(log_w, 0) - np.log(1000), rtol=1e-7)


def test_impossible_inputs_give_minus_infinity():
    def fn(key):
        return jnp.array([-jnp.inf, 0.0]) + jax.random.normal(key, (2,))

    result = importance_weighted_log_likelihood(
        fn, key=jax.random.key(6), num_samples=10, chunk_size=3
    )
    assert float(result.log_likelihood[0]) == -np.inf
    assert np.isfinite(float(result.log_likelihood[1]))


def test_repeated_std_matches_separate_calls():
    fn = approximate_posterior_fn()
    key = jax.random.key(7)
    num_samples, repeats = 20, 5
    one = jax.jit(
        lambda k: importance_weighted_log_likelihood(
            fn, key=k, num_samples=num_samples, chunk_size=8
        )
    )
    separate = np.stack([np.asarray(one(k).log_likelihood) for k in jax.random.split(key, repeats)])
    stacked = repeated_log_likelihoods(
        fn, key=key, num_samples=num_samples, num_repeats=repeats, chunk_size=8
    )
    np.testing.assert_allclose(stacked, separate, rtol=1e-6, atol=1e-5)
    std = repeated_log_likelihood_std(
        fn, key=key, num_samples=num_samples, num_repeats=repeats, chunk_size=8
    )
    np.testing.assert_allclose(std, separate.astype(np.float64).std(0, ddof=1), rtol=1e-3)
    assert std.shape == (INPUTS,)


@pytest.mark.gpu
def test_jit_matches_eager():
    fn = approximate_posterior_fn()
    key = jax.random.key(8)
    eager = importance_weighted_log_likelihood(fn, key=key, num_samples=30, chunk_size=7)
    jitted = jax.jit(
        lambda k: importance_weighted_log_likelihood(fn, key=k, num_samples=30, chunk_size=7)
    )(key)
    for a, b in zip(eager, jitted, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-5)


def test_argument_errors():
    fn = approximate_posterior_fn()
    key = jax.random.key(9)
    with pytest.raises(ValueError, match="num_samples"):
        importance_weighted_log_likelihood(fn, key=key, num_samples=0, chunk_size=4)
    with pytest.raises(ValueError, match="chunk_size"):
        importance_weighted_log_likelihood(fn, key=key, num_samples=4, chunk_size=0)
    with pytest.raises(ValueError, match="num_repeats"):
        repeated_log_likelihood_std(fn, key=key, num_samples=4, num_repeats=1, chunk_size=4)
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        importance_weighted_log_likelihood(
            lambda k: jnp.zeros((3, 2)), key=key, num_samples=4, chunk_size=4
        )

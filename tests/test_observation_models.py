"""Observation models p(x|z) and Gaussian latent helpers against SciPy / mpmath references."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from jaxrobust import distributions as D

SHAPE = (3, 4, 5, 2)  # [N, H, W, C]


def _images(seed: int, shape=SHAPE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, shape) / 255.0).astype(np.float32)


def _sum_image(per_pixel: np.ndarray) -> np.ndarray:
    return per_pixel.sum(axis=(-3, -2, -1))


# --- Bernoulli, Gaussian, learned Gaussian ------------------------------------------------------


def test_bernoulli_matches_grey_level_formula():
    model = D.make_observation_model("bernoulli")
    x = _images(0)
    logits = np.random.default_rng(1).normal(0, 3, SHAPE).astype(np.float32)
    p = expit(logits.astype(np.float64))
    reference = _sum_image(x * np.log(p) + (1 - x) * np.log1p(-p))
    assert model.decoder_channels(3) == 3 and model.init_params() == {}
    np.testing.assert_allclose(model.log_prob(logits, x), reference, rtol=1e-5)
    np.testing.assert_allclose(model.log_prob(logits, x), D.bernoulli_log_prob(logits, x))
    np.testing.assert_allclose(model.mean(logits), p, rtol=1e-6)
    sample = model.sample(jax.random.key(0), logits)
    assert sample.shape == SHAPE and set(np.unique(np.asarray(sample))) <= {0.0, 1.0}


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_fixed_gaussian_matches_norm_logpdf(scale):
    model = D.make_observation_model("gaussian", scale=scale)
    x = _images(2)
    mean = np.random.default_rng(3).uniform(-0.2, 1.2, SHAPE).astype(np.float32)
    reference = _sum_image(stats.norm.logpdf(x, mean.astype(np.float64), scale))
    assert model.decoder_channels(2) == 2
    np.testing.assert_allclose(model.log_prob(mean, x), reference, rtol=2e-6)
    np.testing.assert_allclose(model.mean(mean), mean)
    draws = model.sample(jax.random.key(1), np.broadcast_to(mean[:1], (4000, *SHAPE[1:])))
    np.testing.assert_allclose(np.std(np.asarray(draws) - mean[:1]), scale, rtol=0.02)


def test_learned_gaussian_per_pixel_matches_norm_logpdf():
    model = D.make_observation_model("gaussian_learned", per_pixel=True)
    x = _images(4)
    rng = np.random.default_rng(5)
    mean = rng.uniform(0, 1, SHAPE).astype(np.float32)
    log_scale = rng.uniform(-4, 1, SHAPE).astype(np.float32)
    out = np.concatenate([mean, log_scale], axis=-1)
    assert model.decoder_channels(2) == 4 and model.init_params() == {}
    reference = _sum_image(stats.norm.logpdf(x, mean, np.exp(log_scale.astype(np.float64))))
    np.testing.assert_allclose(model.log_prob(out, x), reference, rtol=1e-5)
    np.testing.assert_allclose(model.mean(out), mean)
    # A floor on the log-scale clamps from below.
    floored = D.make_observation_model("gaussian_learned", per_pixel=True, min_log_scale=-1.0)
    ref_floor = stats.norm.logpdf(x, mean, np.exp(np.maximum(log_scale, -1.0).astype(np.float64)))
    np.testing.assert_allclose(floored.log_prob(out, x), _sum_image(ref_floor), rtol=1e-5)


def test_learned_gaussian_shared_scale_is_a_model_parameter():
    model = D.make_observation_model("gaussian_learned", per_pixel=False, init_log_scale=-1.0)
    x = _images(6)
    mean = np.random.default_rng(7).uniform(0, 1, SHAPE).astype(np.float32)
    params = model.init_params()
    assert model.decoder_channels(2) == 2 and float(params["log_scale"]) == -1.0
    params = {"log_scale": jnp.asarray(-2.3)}
    reference = _sum_image(stats.norm.logpdf(x, mean, np.exp(-2.3)))
    np.testing.assert_allclose(model.log_prob(mean, x, params), reference, rtol=1e-5)
    # The scale is learnable: d/d log_sigma sum log N = sum((x - mu)^2 / sigma^2 - 1).
    grad = jax.grad(lambda p: model.log_prob(mean, x, p).sum())(params)["log_scale"]
    expected = np.sum((x - mean).astype(np.float64) ** 2 / np.exp(-2.3) ** 2 - 1.0)
    np.testing.assert_allclose(grad, expected, rtol=1e-4)
    with pytest.raises(ValueError, match="log_scale"):
        model.log_prob(mean, x)


# --- quantized Gaussian -------------------------------------------------------------------------


def _quantized_reference_cdf(x, mean, scale):
    """P(x) by norm.cdf differences in float64, first and last bins extended to -inf / +inf.

    Bins above the mean use the survival function (the same differences, reflected), so nothing
    cancels until the probabilities underflow float64 (|z| > 37).
    """
    x, mean, scale = (np.asarray(a, np.float64) for a in (x, mean, scale))
    lo = np.where(x < 1 / 510, -np.inf, (x - 1 / 510 - mean) / scale)
    hi = np.where(x > 1 - 1 / 510, np.inf, (x + 1 / 510 - mean) / scale)
    below = stats.norm.cdf(hi) - stats.norm.cdf(lo)
    above = stats.norm.sf(lo) - stats.norm.sf(hi)
    return np.where(lo > 0, above, below)


def _quantized_reference_mpmath(x, mean, scale):
    """log P(x) at 50 digits (erfc of the tail nearest both ends), for the extreme tails."""
    mpmath.mp.dps = 50
    x, mean, scale = (mpmath.mpf(float(v)) for v in (x, mean, scale))
    lo = (x - mpmath.mpf(1) / 510 - mean) / scale
    hi = (x + mpmath.mpf(1) / 510 - mean) / scale
    if x < mpmath.mpf(1) / 510:
        lo = mpmath.ninf
    if x > 1 - mpmath.mpf(1) / 510:
        hi = mpmath.inf
    if lo > 0:
        lo, hi = -hi, -lo
    cdf = lambda z: mpmath.erfc(-z / mpmath.sqrt(2)) / 2  # noqa: E731
    return float(mpmath.log(cdf(hi) - cdf(lo)))


_jit_quantized = jax.jit(D.quantized_gaussian_log_prob)


def _per_pixel(values) -> np.ndarray:
    return np.asarray(values, np.float32).reshape(-1, 1, 1, 1)


def test_quantized_gaussian_matches_cdf_differences():
    model = D.make_observation_model("quantized_gaussian")
    assert model.decoder_channels(3) == 6 and model.init_params() == {}
    x = _images(8)
    x[0, 0, :, 0] = 0.0  # first bin
    x[0, 1, :, 0] = 1.0  # last bin
    rng = np.random.default_rng(9)
    mean = rng.uniform(-0.3, 1.3, SHAPE).astype(np.float32)
    log_scale = rng.uniform(np.log(0.05), np.log(2.0), SHAPE).astype(np.float32)
    out = np.concatenate([mean, log_scale], axis=-1)
    p = _quantized_reference_cdf(x, mean, np.exp(log_scale.astype(np.float64)))
    assert p.min() > 1e-250  # |z| <= 32: float64 is exact enough; far tails are checked below
    got = np.asarray(model.log_prob(out, x))
    reference = _sum_image(np.log(p))
    np.testing.assert_allclose(got, reference, rtol=1e-5)


@pytest.mark.parametrize(
    ("mean", "scale"),
    [
        (0.5, 1e-4),  # bins of 20 standard deviations
        (0.5, 0.3),  # bins of 0.013 standard deviations: the midpoint expansion
        (0.5, 100.0),  # nearly flat
        (-50.0, 0.2),  # mean far below the range: every bin in the far upper tail
        (40.0, 1e-2),  # mean far above, narrow: log P ~ -10^7
        (1.5, 1e-3),
        (-0.01, 5e-3),
    ],
)
def test_quantized_gaussian_extreme_means_and_scales(mean, scale):
    # The reference is evaluated at the float32 inputs the function actually receives.
    levels = (np.arange(256) / 255.0).astype(np.float32)
    mean, log_scale = np.float32(mean), np.float32(np.log(scale))
    scale = np.exp(np.float64(log_scale))
    ref = np.array([_quantized_reference_mpmath(v, mean, scale) for v in levels])
    got = _jit_quantized(_per_pixel(np.full(256, mean)), log_scale, _per_pixel(levels))
    got = np.asarray(got)
    assert np.all(np.isfinite(got))
    # float32 arithmetic on z = (x - mean) / sigma moves log P ~ -z^2/2 by ~1e-7 z^2.
    np.testing.assert_allclose(got, ref, rtol=3e-6, atol=2e-5)
    # Where float64 CDF differences are accurate (not in the far tails) they agree too.
    p = _quantized_reference_cdf(levels, mean, scale)
    ok = p > 1e-12
    np.testing.assert_allclose(got[ok], np.log(p[ok]), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("scale", [1e-4, 3e-3, 0.05, 0.3, 1.0, 30.0])
def test_quantized_gaussian_probabilities_sum_to_one(scale):
    levels = _per_pixel(np.arange(256) / 255.0)
    for mean in (-0.4, 0.0, 0.37, 1.0, 1.6):
        log_p = _jit_quantized(np.float32(mean), np.float32(np.log(scale)), levels)
        total = float(jnp.sum(jnp.exp(log_p)))
        assert abs(total - 1.0) < 2e-5, (mean, scale, total)


def test_quantized_gaussian_gradients_are_finite_at_extremes():
    levels = _per_pixel([0.0, 1 / 255, 0.5, 254 / 255, 1.0])

    def total(mean, log_scale):
        return jnp.sum(D.quantized_gaussian_log_prob(mean, log_scale, levels))

    means, log_scales = np.meshgrid([-80.0, -1.0, 0.5, 3.0, 80.0], [-12.0, -6.0, -1.0, 0.0, 5.0])
    grads = jax.jit(jax.vmap(jax.grad(total, argnums=(0, 1))))(
        means.ravel().astype(np.float32), log_scales.ravel().astype(np.float32)
    )
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g))), (means, log_scales, grads)


def test_quantized_gaussian_mean_and_samples():
    model = D.make_observation_model("quantized_gaussian")
    mean = np.array([-0.2, 0.0, 0.31, 0.9, 1.2], np.float32).reshape(1, 1, 5, 1)
    log_scale = np.log(np.array([0.3, 0.01, 0.1, 0.2, 0.5], np.float32)).reshape(1, 1, 5, 1)
    out = np.concatenate([mean, log_scale], axis=-1)
    levels = np.arange(256) / 255.0
    p = _quantized_reference_cdf(
        levels[:, None], mean.reshape(1, 5), np.exp(log_scale.astype(np.float64)).reshape(1, 5)
    )
    expected = np.sum(levels[:, None] * p, axis=0)
    np.testing.assert_allclose(np.asarray(model.mean(out)).ravel(), expected, atol=1e-5)
    draws = np.asarray(model.sample(jax.random.key(3), np.broadcast_to(out, (20000, 1, 5, 2))))
    np.testing.assert_allclose(draws * 255, np.round(draws * 255), atol=1e-4)  # on the grid
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    np.testing.assert_allclose(draws.mean(axis=0).ravel(), expected, atol=0.01)


def test_quantized_gaussian_shared_and_fixed_scale():
    x = _images(10)
    mean = np.random.default_rng(11).uniform(0, 1, SHAPE).astype(np.float32)
    shared = D.make_observation_model("quantized_gaussian", per_pixel=False)
    fixed = D.make_observation_model("quantized_gaussian", scale=0.05)
    assert shared.decoder_channels(2) == 2 and fixed.decoder_channels(2) == 2
    reference = _sum_image(np.log(_quantized_reference_cdf(x, mean, 0.05)))
    np.testing.assert_allclose(fixed.log_prob(mean, x), reference, rtol=1e-5)
    params = {"log_scale": jnp.log(0.05)}
    np.testing.assert_allclose(shared.log_prob(mean, x, params), reference, rtol=1e-5)


# --- the factory, shapes, bits per dim ----------------------------------------------------------


def test_factory_errors():
    with pytest.raises(ValueError, match="bernoulli, gaussian, gaussian_learned"):
        D.make_observation_model("laplace")
    with pytest.raises(ValueError, match="accepts: scale"):
        D.make_observation_model("gaussian", per_pixel=True)
    with pytest.raises(ValueError, match="positive"):
        D.make_observation_model("gaussian", scale=0.0)
    model = D.make_observation_model("gaussian_learned")
    x = _images(12)
    with pytest.raises(ValueError, match="decoder_channels"):
        model.log_prob(x, x)  # C channels where 2C are needed
    assert set(D.OBSERVATION_MODELS) == {
        "bernoulli",
        "gaussian",
        "gaussian_learned",
        "quantized_gaussian",
    }


class LogProbVariantsTest(chex.TestCase):
    """log p(x|z) equals its SciPy reference both eagerly and inlined in a caller's ``jax.jit``."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_bernoulli_matches_grey_level_formula(self):
        x = _images(0)
        logits = np.random.default_rng(1).normal(0, 3, SHAPE).astype(np.float32)
        p = expit(logits.astype(np.float64))
        reference = _sum_image(x * np.log(p) + (1 - x) * np.log1p(-p))
        log_prob = self.variant(D.make_observation_model("bernoulli").log_prob)
        np.testing.assert_allclose(log_prob(logits, x), reference, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_fixed_gaussian_matches_norm_logpdf(self):
        x = _images(2)
        mean = np.random.default_rng(3).uniform(-0.2, 1.2, SHAPE).astype(np.float32)
        reference = _sum_image(stats.norm.logpdf(x, mean.astype(np.float64), 0.1))
        log_prob = self.variant(D.make_observation_model("gaussian", scale=0.1).log_prob)
        np.testing.assert_allclose(log_prob(mean, x), reference, rtol=2e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_quantized_gaussian_matches_cdf_differences(self):
        x = _images(8)
        x[0, 0, :, 0] = 0.0  # first bin
        x[0, 1, :, 0] = 1.0  # last bin
        rng = np.random.default_rng(9)
        mean = rng.uniform(-0.3, 1.3, SHAPE).astype(np.float32)
        log_scale = rng.uniform(np.log(0.05), np.log(2.0), SHAPE).astype(np.float32)
        out = np.concatenate([mean, log_scale], axis=-1)
        p = _quantized_reference_cdf(x, mean, np.exp(log_scale.astype(np.float64)))
        log_prob = self.variant(D.make_observation_model("quantized_gaussian").log_prob)
        np.testing.assert_allclose(log_prob(out, x), _sum_image(np.log(p)), rtol=1e-5)


def test_log_prob_is_jittable_and_batched():
    model = D.make_observation_model("quantized_gaussian")
    x = _images(13)
    out = np.concatenate([x, np.full_like(x, -2.0)], axis=-1)
    jitted = jax.jit(model.log_prob)(out, x)
    assert jitted.shape == (SHAPE[0],)
    np.testing.assert_allclose(jitted, model.log_prob(out, x), rtol=1e-6)


def test_bits_per_dim_and_dequantization_offset():
    num_dims = 784
    np.testing.assert_allclose(D.bits_per_dim(num_dims * np.log(2.0), num_dims), 1.0, rtol=1e-7)
    nll = np.float32(-1000.0)  # a continuous density on [0, 1] pixels can have negative NLL
    shifted = D.bits_per_dim(nll, num_dims, dequantize_256=True)
    np.testing.assert_allclose(shifted, (nll + num_dims * np.log(256.0)) / (num_dims * np.log(2)))
    np.testing.assert_allclose(shifted - D.bits_per_dim(nll, num_dims), 8.0, rtol=1e-6)


# --- Gaussian latent helpers --------------------------------------------------------------------


def _latents(seed: int, n: int = 6, d: int = 4):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, (n, d)).astype(np.float32) for _ in range(3)] + [
        rng.uniform(-2, 1, (n, d)).astype(np.float32) for _ in range(2)
    ]


def test_gaussian_log_probs_match_multivariate_normal():
    z, mu, _, log_var, _ = _latents(20)
    reference = [
        stats.multivariate_normal(mu[i], np.diag(np.exp(log_var[i].astype(np.float64)))).logpdf(
            z[i]
        )
        for i in range(len(z))
    ]
    np.testing.assert_allclose(D.diagonal_gaussian_log_prob(z, mu, log_var), reference, rtol=1e-5)
    standard = stats.multivariate_normal(np.zeros(4), np.eye(4)).logpdf(z)
    np.testing.assert_allclose(D.standard_normal_log_prob(z), standard, rtol=1e-6)
    np.testing.assert_allclose(
        D.diagonal_gaussian_log_prob(z, 0.0 * z, 0.0 * z), standard, rtol=1e-6
    )


def test_gaussian_kl_closed_form_against_monte_carlo():
    rng = np.random.default_rng(21)
    mu_q, mu_p = rng.normal(0, 1, (2, 3))
    lv_q, lv_p = rng.uniform(-1, 1, (2, 3))
    z = mu_q + np.exp(0.5 * lv_q) * rng.normal(size=(400_000, 3))
    q = stats.multivariate_normal(mu_q, np.diag(np.exp(lv_q)))
    p = stats.multivariate_normal(mu_p, np.diag(np.exp(lv_p)))
    log_ratio = q.logpdf(z) - p.logpdf(z)
    kl = float(D.diagonal_gaussian_kl(*(np.float32(a) for a in (mu_q, lv_q, mu_p, lv_p))))
    stderr = log_ratio.std() / np.sqrt(len(z))
    assert abs(kl - log_ratio.mean()) < 4 * stderr, (kl, log_ratio.mean(), stderr)
    # KL to N(0, I) and to the negative-sampling prior N(s 1, I) are special cases.
    zero = np.zeros(3, np.float32)
    np.testing.assert_allclose(
        D.diagonal_gaussian_kl(mu_q, lv_q, zero, zero),
        D.diagonal_gaussian_kl_to_standard(mu_q, lv_q),
        rtol=1e-6,
    )
    assert float(D.diagonal_gaussian_kl(mu_q, lv_q, mu_q, lv_q)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("shift", [8.0, 25.0])
def test_shifted_normal_kl(shift):
    rng = np.random.default_rng(22)
    mu_q = rng.normal(0, 1, (5, 3)).astype(np.float32)
    lv_q = rng.uniform(-1, 1, (5, 3)).astype(np.float32)
    got = D.shifted_normal_kl(mu_q, lv_q, shift)
    shifted = np.full_like(mu_q, shift)
    np.testing.assert_allclose(
        got, D.diagonal_gaussian_kl(mu_q, lv_q, shifted, np.zeros_like(mu_q)), rtol=1e-6
    )
    # Monte Carlo for one row: E_q[log q(z) - log N(z; s 1, I)].
    z = mu_q[0] + np.exp(0.5 * lv_q[0]) * rng.normal(size=(200_000, 3))
    q = stats.multivariate_normal(mu_q[0], np.diag(np.exp(lv_q[0].astype(np.float64))))
    log_ratio = q.logpdf(z) - stats.multivariate_normal(np.full(3, shift), np.eye(3)).logpdf(z)
    assert abs(float(got[0]) - log_ratio.mean()) < 4 * log_ratio.std() / np.sqrt(len(z))


def test_diagonal_gaussian_sample_moments():
    mu = np.array([1.0, -2.0], np.float32)
    log_var = np.log(np.array([0.25, 4.0], np.float32))
    z = D.diagonal_gaussian_sample(jax.random.key(4), np.broadcast_to(mu, (50_000, 2)), log_var)
    np.testing.assert_allclose(z.mean(0), mu, atol=0.03)
    np.testing.assert_allclose(z.var(0), np.exp(log_var), rtol=0.03)

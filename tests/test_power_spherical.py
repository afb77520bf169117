"""Power Spherical: normaliser, moments, entropy and KLs against SciPy closed forms and
quadrature, the sampler's cosine law against SciPy's Beta, the reparameterised gradient, bad
input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

import jaxrobust.distributions.power_spherical as ps
from jaxrobust.distributions.latent import get_latent_family
from jaxrobust.errors import InputError

KAPPAS = np.array([1e-3, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4])


def _mu(m: int) -> np.ndarray:
    mu = np.arange(1.0, m + 1.0)
    return mu / np.linalg.norm(mu)


def _log_area(m: int) -> float:
    """log |S^{m-1}| = log(2 pi^{m/2} / Gamma(m/2))."""
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - special.gammaln(0.5 * m)


def _reference_log_normalizer(kappa: float, m: int) -> float:
    """-log of the integral of (1 + t)^kappa over S^{m-1}: |S^{m-2}| times the cosine integral
    int (1 + t)^kappa (1 - t^2)^{(m-3)/2} dt = 2^{kappa + m - 2} B(kappa + (m-1)/2, (m-1)/2)."""
    beta = 0.5 * (m - 1)
    log_cosine_integral = (kappa + m - 2) * math.log(2.0) + special.betaln(kappa + beta, beta)
    return -(_log_area(m - 1) + log_cosine_integral)


def _reference_log_prob(x: np.ndarray, mu: np.ndarray, kappa: float) -> np.ndarray:
    m = mu.shape[-1]
    return _reference_log_normalizer(kappa, m) + kappa * np.log1p(x @ mu)


def _beta_expectation_log1p(kappa: float, m: int) -> float:
    """E[log(1 + t)] with (1 + t) / 2 ~ Beta(alpha, beta), by SciPy's digamma."""
    alpha, beta = kappa + 0.5 * (m - 1), 0.5 * (m - 1)
    return math.log(2.0) + special.digamma(alpha) - special.digamma(alpha + beta)


def _numpy_sample(rng, mu: np.ndarray, kappa: float, n: int) -> np.ndarray:
    """An independent sampler: t = 2B - 1 from SciPy's Beta, v uniform on S^{m-2}, and the
    rotation e_1 -> mu by an explicit orthonormal basis (not a Householder reflection)."""
    m = mu.shape[0]
    t = 2.0 * stats.beta(kappa + 0.5 * (m - 1), 0.5 * (m - 1)).rvs(n, random_state=rng) - 1.0
    v = rng.standard_normal((n, m - 1))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    basis, _ = np.linalg.qr(np.column_stack([mu, rng.standard_normal((m, m - 1))]))
    basis[:, 0] *= np.sign(basis[:, 0] @ mu)
    local = np.column_stack([t, np.sqrt(np.clip(1 - t**2, 0, None))[:, None] * v])
    return local @ basis.T


@pytest.mark.parametrize("m", [2, 3, 4, 10, 64])
def test_log_normalizer_matches_the_beta_integral_for_every_kappa(m):
    got = np.asarray(ps.log_normalizer(jnp.asarray(KAPPAS, jnp.float32), m), np.float64)
    expected = np.array([_reference_log_normalizer(k, m) for k in KAPPAS])
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=2e-5)


@pytest.mark.parametrize("m", [3, 10])
@pytest.mark.parametrize("kappa", [0.5, 7.0])
def test_the_density_integrates_to_one(m, kappa):
    """Quadrature over the cosine: |S^{m-2}| int q(t) (1 - t^2)^{(m-3)/2} dt = 1, with q from
    the library's log_prob at points of cosine t."""
    mu = np.eye(m)[0]

    def density(t):
        x = np.zeros(m)
        x[0], x[1] = t, math.sqrt(max(1.0 - t * t, 0.0))
        log_q = float(ps.log_prob(jnp.asarray(x), jnp.asarray(mu), kappa))
        return math.exp(log_q) * (1.0 - t * t) ** (0.5 * (m - 3))

    total, _ = integrate.quad(density, -1.0, 1.0, limit=200)
    assert math.exp(_log_area(m - 1)) * total == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("m", [3, 4, 10, 64])
def test_log_prob_matches_the_closed_form_at_every_kappa(m):
    rng = np.random.default_rng(m)
    mu = _mu(m)
    x = rng.standard_normal((6, m))
    x = np.concatenate([x / np.linalg.norm(x, axis=1, keepdims=True), mu[None]])  # + the mode
    x32 = np.asarray(jnp.asarray(x, jnp.float32), np.float64)
    x32 /= np.linalg.norm(x32, axis=1, keepdims=True)
    kappa = jnp.asarray(KAPPAS, jnp.float32)[:, None]  # [7, 1] against x [7 points]
    got = np.asarray(ps.log_prob(jnp.asarray(x32, jnp.float32), jnp.asarray(mu, jnp.float32),
                                 kappa), np.float64)  # fmt: skip
    expected = np.stack([_reference_log_prob(x32, mu, k) for k in KAPPAS])
    scale = KAPPAS[:, None] * 2e-7 * m  # float32 rounding of mu.x, times kappa
    error = np.abs(got - expected)
    assert np.all(error <= 1e-4 + scale + 1e-5 * np.abs(expected)), error.max()


@pytest.mark.parametrize(("m", "kappa"), [(2, 1.0), (3, 0.5), (3, 20.0), (10, 5.0), (64, 50.0)])
def test_sample_cosines_follow_the_beta_law_and_the_tangent_is_uniform(m, kappa):
    mu = _mu(m)
    z = np.asarray(
        ps.sample(jax.random.key(0), jnp.asarray(mu, jnp.float32), kappa, shape=(20000,)),
        np.float64,
    )
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    cosines = z @ mu
    law = stats.beta(kappa + 0.5 * (m - 1), 0.5 * (m - 1))
    assert stats.kstest((cosines + 1.0) / 2.0, law.cdf).pvalue > 1e-3
    expected = kappa / (kappa + m - 1)
    assert float(ps.mean_resultant_length(kappa, m)) == pytest.approx(expected, rel=1e-6)
    assert abs(cosines.mean() - expected) < 4 * cosines.std() / np.sqrt(len(z))
    if m > 2:  # the tangent part has mean zero in every direction orthogonal to mu
        tangent = z - cosines[:, None] * mu
        stderr = tangent.std(0) / np.sqrt(len(z))
        assert np.all(np.abs(tangent.mean(0)) < 5 * stderr + 1e-4)


@pytest.mark.parametrize("m", [2, 3, 10, 64])
def test_entropy_and_kl_to_uniform_match_beta_expectations(m):
    kappa = np.array([1e-2, 1.0, 10.0, 300.0, 1e4])
    expected_h = np.array(
        [-_reference_log_normalizer(k, m) - k * _beta_expectation_log1p(k, m) for k in kappa]
    )
    got_h = np.asarray(ps.entropy(jnp.asarray(kappa, jnp.float32), m), np.float64)
    np.testing.assert_allclose(got_h, expected_h, rtol=1e-5, atol=1e-4)
    got_kl = np.asarray(ps.kl_to_uniform(jnp.asarray(kappa, jnp.float32), m), np.float64)
    expected_kl = _log_area(m) - expected_h
    np.testing.assert_allclose(got_kl, expected_kl, rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(got_kl) > 0)  # more concentrated: further from uniform


@pytest.mark.parametrize(("m", "kappa"), [(3, 4.0), (10, 30.0)])
def test_kl_to_uniform_matches_monte_carlo(m, kappa):
    rng = np.random.default_rng(3)
    mu = _mu(m)
    z = _numpy_sample(rng, mu, kappa, 100_000)
    log_ratio = _reference_log_prob(z, mu, kappa) + _log_area(m)
    stderr = log_ratio.std() / np.sqrt(len(z))
    assert float(ps.kl_to_uniform(kappa, m)) == pytest.approx(log_ratio.mean(), abs=4 * stderr)


@pytest.mark.parametrize(("m", "k1", "k2"), [(3, 2.0, 9.0), (4, 30.0, 5.0), (64, 200.0, 50.0)])
def test_kl_divergence_at_a_shared_direction_has_its_closed_form(m, k1, k2):
    """mu1 = mu2: KL = log C(k1) - log C(k2) + (k1 - k2) E_1[log(1 + t)], exactly."""
    mu = _mu(m)
    expected = (
        _reference_log_normalizer(k1, m)
        - _reference_log_normalizer(k2, m)
        + (k1 - k2) * _beta_expectation_log1p(k1, m)
    )
    got = float(ps.kl_divergence(jnp.asarray(mu), k1, jnp.asarray(mu), k2))
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize(
    ("m", "k1", "k2", "angle"),
    [(3, 10.0, 4.0, 0.7), (4, 2.0, 8.0, 1.5), (10, 40.0, 40.0, 0.3), (64, 100.0, 20.0, 2.0)],
)
def test_kl_divergence_matches_monte_carlo_between_directions(m, k1, k2, angle):
    rng = np.random.default_rng(7)
    mu1 = np.eye(m)[0]
    mu2 = math.cos(angle) * np.eye(m)[0] + math.sin(angle) * np.eye(m)[1]
    z = _numpy_sample(rng, mu1, k1, 200_000)
    log_ratio = _reference_log_prob(z, mu1, k1) - _reference_log_prob(z, mu2, k2)
    stderr = log_ratio.std() / np.sqrt(len(z))
    got = float(ps.kl_divergence(jnp.asarray(mu1), k1, jnp.asarray(mu2), k2))
    assert got == pytest.approx(log_ratio.mean(), abs=4 * stderr + 2e-3 * abs(got))
    sym = ps.symmetric_kl(jnp.asarray(mu1), k1, jnp.asarray(mu2), k2)
    back = ps.kl_divergence(jnp.asarray(mu2), k2, jnp.asarray(mu1), k1)
    assert float(sym) == pytest.approx(got + float(back), rel=1e-6)


def test_the_reparameterised_gradient_of_the_mean_cosine_is_unbiased():
    """d/dkappa E[mu.z] = (m - 1) / (kappa + m - 1)^2, by pathwise Monte Carlo through the
    sampler (no rejection, no correction term)."""
    m, kappa = 5, 3.0
    mu = jnp.asarray(_mu(m), jnp.float32)

    def mean_cosine(k):
        z = ps.sample(jax.random.key(11), mu, k, shape=(200_000,))
        return jnp.mean(z @ mu)

    got = float(jax.grad(mean_cosine)(jnp.float32(kappa)))
    expected = (m - 1) / (kappa + m - 1) ** 2
    assert got == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("kappa", [1e4, 1e5])
def test_large_concentrations_stay_finite_and_on_the_mode(kappa):
    mu = jnp.asarray(_mu(10), jnp.float32)
    z = ps.sample(jax.random.key(2), mu, kappa, shape=(100,))
    assert np.all(np.isfinite(np.asarray(z)))
    assert float(jnp.min(z @ mu)) > 1.0 - 50.0 / kappa
    for value in (ps.log_prob(mu, mu, kappa), ps.kl_to_uniform(kappa, 10), ps.entropy(kappa, 10)):
        assert np.isfinite(float(value))


def test_bad_input_is_refused_with_the_fix():
    mu = jnp.array([0.0, 0.0, 1.0])
    with pytest.raises(InputError, match="concentration"):
        ps.sample(jax.random.key(0), mu, 0.0)
    with pytest.raises(InputError, match="concentration"):
        ps.log_prob(mu, mu, -1.0)
    with pytest.raises(InputError, match="concentration"):
        ps.kl_to_uniform(float("nan"), 3)
    with pytest.raises(InputError, match="unit"):
        ps.log_prob(mu, jnp.array([0.0, 0.0, 2.0]), 1.0)
    with pytest.raises(InputError, match="unit"):
        ps.sample(jax.random.key(0), jnp.array([1.0, 1.0, 0.0]), 1.0)
    with pytest.raises(InputError, match="2"):
        ps.kl_to_uniform(1.0, 1)
    with pytest.raises(InputError, match="2"):
        ps.log_prob(jnp.array([1.0]), jnp.array([1.0]), 1.0)
    with pytest.raises(InputError, match="dimension"):
        ps.log_prob(jnp.array([1.0, 0.0]), mu, 1.0)
    with pytest.raises(InputError, match="num_nodes"):
        ps.kl_divergence(mu, 1.0, mu, 2.0, num_nodes=(1, 8))


def test_latent_family_round_trip_under_jit():
    family = get_latent_family("power_spherical")
    assert family.head_width(3) == 4
    head = jnp.array([[3.0, 0.0, 4.0, 0.5], [0.0, -2.0, 0.0, 10.0]])
    params = family.params(head)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(params[0]), axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(params[0][0], [0.6, 0.0, 0.8], atol=1e-6)
    np.testing.assert_allclose(params[1], np.log1p(np.exp([0.5, 10.0])) + 1.0, rtol=1e-5)

    @jax.jit
    def step(head, key):
        p = family.params(head)
        z = family.sample(key, p)
        return z, family.log_prob(z, p), family.kl_to_prior(p)

    z, log_q, kl = step(head, jax.random.key(0))
    expected_log_q = [_reference_log_prob(np.asarray(z[i], np.float64), np.asarray(
        params[0][i], np.float64), float(params[1][i])) for i in range(2)]  # fmt: skip
    np.testing.assert_allclose(log_q, expected_log_q, rtol=1e-4, atol=1e-4)
    expected_kl = [
        _log_area(3) + _reference_log_normalizer(float(k), 3)
        + float(k) * _beta_expectation_log1p(float(k), 3)
        for k in params[1]
    ]  # fmt: skip
    np.testing.assert_allclose(kl, expected_kl, rtol=1e-4, atol=1e-4)
    prior = family.prior_log_prob(z)
    np.testing.assert_allclose(prior, -_log_area(3), rtol=1e-6)

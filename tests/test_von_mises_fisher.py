"""von Mises-Fisher: densities vs SciPy, sampler vs A_m(kappa), KLs vs Monte Carlo, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import jaxrobust.distributions.von_mises_fisher as vmf
from jaxrobust.distributions.latent import get_latent_family
from jaxrobust.errors import InputError

KAPPAS = (1e-3, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


def _mu(m: int) -> np.ndarray:
    mu = np.arange(1.0, m + 1.0)
    return mu / np.linalg.norm(mu)


@pytest.mark.parametrize("m", [3, 4, 10, 64])
@pytest.mark.parametrize("kappa", KAPPAS)
def test_log_prob_matches_scipy(m, kappa):
    mu = _mu(m)
    reference = stats.vonmises_fisher(mu, kappa)
    x = reference.rvs(5, random_state=1)
    x = np.concatenate([x, -mu[None]])  # the antipode too: the density's minimum
    expected = reference.logpdf(x)
    got = np.asarray(vmf.log_prob(jnp.asarray(x, jnp.float32), jnp.asarray(mu, jnp.float32),
                                  jnp.float32(kappa)), np.float64)  # fmt: skip
    # float32: relative 1e-5 of the value, or 1e-3 absolute (x is rounded to float32 on input,
    # which moves kappa mu.x by up to kappa * 6e-8)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3 + kappa * 2e-7 * m)


@pytest.mark.parametrize("order", [0.0, 0.5, 1.0, 1.5, 4.0, 31.0])
def test_log_bessel_matches_scipy(order):
    x = np.array([1e-3, 0.1, 1.0, 7.0, 14.9, 15.1, 50.0, 1e3, 1e4])
    expected = np.log(special.ive(order, x)) + x
    got = np.asarray(vmf.log_bessel_iv(order, jnp.asarray(x, jnp.float32)), np.float64)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(("m", "kappa"), [(3, 0.5), (3, 20.0), (10, 5.0), (64, 50.0)])
def test_samples_have_the_mean_resultant_length_and_direction(m, kappa):
    mu = jnp.asarray(_mu(m), jnp.float32)
    z = np.asarray(vmf.sample(jax.random.key(0), mu, jnp.float32(kappa), shape=(20000,)))
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    cosines = z @ np.asarray(mu)
    expected = float(special.ive(m / 2, kappa) / special.ive(m / 2 - 1, kappa))  # A_m(kappa)
    stderr = cosines.std() / np.sqrt(len(cosines))
    assert abs(cosines.mean() - expected) < 4 * stderr + 1e-6
    assert float(vmf.mean_resultant_length(kappa, m)) == pytest.approx(expected, rel=1e-5)
    direction = z.mean(0) / np.linalg.norm(z.mean(0))
    assert direction @ np.asarray(mu) > 0.99


@pytest.mark.parametrize(("m", "kappa"), [(3, 2.0), (4, 10.0), (10, 30.0)])
def test_kl_to_uniform_and_entropy_match_monte_carlo(m, kappa):
    mu = jnp.asarray(_mu(m), jnp.float32)
    z = vmf.sample(jax.random.key(1), mu, jnp.float32(kappa), shape=(20000,))
    log_q = np.asarray(vmf.log_prob(z, mu, jnp.float32(kappa)), np.float64)
    log_area = np.log(2) + m / 2 * np.log(np.pi) - special.gammaln(m / 2)
    stderr = log_q.std() / np.sqrt(len(log_q))
    kl_mc = log_q.mean() + log_area  # E_q[log q - log p], p = 1 / |S^{m-1}|
    assert abs(float(vmf.kl_to_uniform(kappa, m)) - kl_mc) < 4 * stderr + 1e-4
    assert abs(float(vmf.entropy(kappa, m)) + log_q.mean()) < 4 * stderr + 1e-4


def test_symmetric_kl_matches_monte_carlo():
    m, k1, k2 = 4, 5.0, 12.0
    mu1 = jnp.asarray(_mu(m), jnp.float32)
    mu2 = jnp.asarray(np.roll(_mu(m), 1), jnp.float32)
    z1 = vmf.sample(jax.random.key(2), mu1, k1, shape=(40000,))
    z2 = vmf.sample(jax.random.key(3), mu2, k2, shape=(40000,))
    d12 = np.asarray(vmf.log_prob(z1, mu1, k1) - vmf.log_prob(z1, mu2, k2), np.float64)
    d21 = np.asarray(vmf.log_prob(z2, mu2, k2) - vmf.log_prob(z2, mu1, k1), np.float64)
    stderr = np.hypot(d12.std(), d21.std()) / np.sqrt(40000)
    got = float(vmf.symmetric_kl(mu1, k1, mu2, k2))
    assert abs(got - (d12.mean() + d21.mean())) < 4 * stderr


def test_corrected_gradient_matches_the_derivative_of_a_m():
    kappa = 2.0  # m = 3
    mu = jnp.array([1.0, 0.0, 0.0])
    exact = (
        1.0 - (1 / np.tanh(kappa) - 1 / kappa) ** 2 - 2 * (1 / np.tanh(kappa) - 1 / kappa) / kappa
    )

    def surrogate(k, key):
        z, c = vmf.sample_and_log_correction(key, mu, k, shape=(50000,))
        f = z @ mu
        return jnp.mean(f + jax.lax.stop_gradient(f) * (c - jax.lax.stop_gradient(c)))

    def rep_only(k, key):
        return jnp.mean(vmf.sample(key, mu, k, shape=(50000,)) @ mu)

    corrected = [float(jax.grad(surrogate)(kappa, jax.random.key(i))) for i in range(4)]
    assert abs(np.mean(corrected) - exact) < 0.02  # exact = 0.1413
    rep = float(jax.grad(rep_only)(kappa, jax.random.key(0)))
    assert abs(rep - exact) > 0.02  # g_rep alone is biased (the official code's choice)


def test_inverse_cdf_sampler_on_s2_matches_the_cosine_cdf_and_has_an_exact_gradient():
    mu = jnp.asarray(_mu(3), jnp.float32)
    for kappa in (1e-2, 1.0, 30.0):
        z = vmf.sample(jax.random.key(5), mu, kappa, (20000,), method="inverse_cdf")
        w = np.asarray(z @ mu, np.float64)
        # on S^2 the cosine has CDF (e^{k w} - e^{-k}) / (e^k - e^{-k}) (Mardia & Jupp 9.3)
        cdf = lambda t, k=kappa: np.expm1(k * (t + 1)) / np.expm1(2 * k)  # noqa: E731
        assert stats.kstest(w, cdf).pvalue > 1e-3, kappa
        np.testing.assert_allclose(np.linalg.norm(np.asarray(z), axis=-1), 1.0, atol=1e-5)
    kappa = 2.0
    a = 1 / np.tanh(kappa) - 1 / kappa
    exact = 1.0 - a**2 - 2 * a / kappa  # d A_3 / d kappa = 0.1413

    def mean_cosine(k, key):
        return jnp.mean(vmf.sample(key, mu, k, (50000,), method="inverse_cdf") @ mu)

    grads = [float(jax.grad(mean_cosine)(kappa, jax.random.key(i))) for i in range(2)]
    assert abs(np.mean(grads) - exact) < 0.01  # unbiased without a correction term
    with pytest.raises(InputError, match="needs m = 3"):
        vmf.sample(jax.random.key(0), jnp.eye(4)[0], 1.0, method="inverse_cdf")
    with pytest.raises(InputError, match="unknown method 'exact'"):
        vmf.sample(jax.random.key(0), jnp.eye(3)[0], 1.0, method="exact")


@pytest.mark.parametrize("kappa", [1e4, 1e5])
def test_large_concentrations_stay_finite(kappa):
    mu = jnp.asarray(_mu(10), jnp.float32)
    z = vmf.sample(jax.random.key(0), mu, jnp.float32(kappa), shape=(100,))
    values = [vmf.log_prob(z, mu, kappa), vmf.kl_to_uniform(kappa, 10), z]
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in values)


def test_bad_input_is_refused_with_the_fix():
    mu = jnp.array([1.0, 0.0, 0.0])
    with pytest.raises(InputError, match="concentration"):
        vmf.log_prob(mu, mu, 0.0)
    with pytest.raises(InputError, match="concentration"):
        vmf.sample(jax.random.key(0), mu, jnp.nan)
    with pytest.raises(InputError, match="unit"):
        vmf.sample(jax.random.key(0), 2 * mu, 1.0)
    with pytest.raises(InputError, match="m >= 2|dim"):
        vmf.kl_to_uniform(1.0, 1)
    with pytest.raises(InputError):
        vmf.log_prob(jnp.array([1.0, 1.0, 0.0]), mu, 1.0)  # x off the sphere


def test_latent_family_round_trip_under_jit_and_a_vae_gradient():
    family = get_latent_family("von_mises_fisher")
    head = jax.random.normal(jax.random.key(0), (5, 4))
    params = family.params(head)

    @jax.jit
    def round_trip(key):
        z = family.sample(key, params)
        return z, family.log_prob(z, params), family.kl_to_prior(params)

    z, log_q, kl = round_trip(jax.random.key(1))
    assert z.shape == (5, 3) and log_q.shape == kl.shape == (5,)
    expected = [stats.vonmises_fisher(np.asarray(mu, np.float64), float(k)).logpdf(
        np.asarray(zi, np.float64)) for mu, k, zi in zip(*params, z, strict=True)]  # fmt: skip
    np.testing.assert_allclose(log_q, expected, rtol=1e-4, atol=1e-4)
    from jaxrobust.models import make_vae

    vae = make_vae((8, 8, 1), 3, latent="von_mises_fisher", network="mlp",
                   network_options={"hidden": (16,)})  # fmt: skip
    x = jnp.full((4, 8, 8, 1), 0.5)
    variables = vae.init(jax.random.key(0), x)
    grads = jax.grad(lambda v: vae.loss(v, {"image": x}, key=jax.random.key(1))[0].mean())(
        variables
    )
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_a_zero_direction_head_gives_a_unit_mean_and_a_vae_initialises_on_blank_images():
    from jaxrobust.distributions.latent import spherical_params
    from jaxrobust.models import make_vae

    mu, kappa = spherical_params(jnp.array([[0.0, 0.0, 0.0, 0.0], [3.0, 4.0, 0.0, 0.0]]))
    np.testing.assert_allclose(mu, [[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]], atol=1e-7)
    np.testing.assert_allclose(kappa, [1.0 + np.log(2.0), 1.0 + np.log1p(np.e**0.0)], rtol=1e-6)
    vae = make_vae((8, 8, 1), 3, latent="von_mises_fisher", network="mlp",
                   network_options={"hidden": (16,)})  # fmt: skip
    variables = vae.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)))  # zero head: biases are 0
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(variables))

"""Latent HMC on a linear-Gaussian VAE: the chains sample the closed-form posterior."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.errors import InputError
from jaxrobust.inference.latent_hmc import latent_hmc

D, OBS, SIGMA = 3, 8, 0.5


@pytest.fixture(scope="module")
def linear_gaussian():
    """p(z) = N(0, I), p(x | z) = N(W z + b, sigma^2 I): p(z | x) = N(m, S) with
    S = (I + W^T W / sigma^2)^-1, m = S W^T (x - b) / sigma^2."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(OBS, D)).astype(np.float32)
    b = rng.normal(size=OBS).astype(np.float32)
    xs = (rng.normal(size=(2, D)) @ w.T + b + SIGMA * rng.normal(size=(2, OBS))).astype(np.float32)

    def log_joint(variables, x, z):
        w, b = variables
        residual = x - (z @ w.T + b)
        return -0.5 * jnp.sum(residual**2, -1) / SIGMA**2 - 0.5 * jnp.sum(z**2, -1)

    cov = np.linalg.inv(np.eye(D) + w.T @ w / SIGMA**2)
    means = [cov @ w.T @ (x - b) / SIGMA**2 for x in xs]
    return log_joint, (jnp.asarray(w), jnp.asarray(b)), xs, means, cov


@pytest.mark.parametrize("adaptation", ["dual_averaging", "kuzina"])
def test_chains_sample_the_closed_form_posterior_at_the_target_acceptance(
    linear_gaussian, adaptation
):
    log_joint, variables, xs, means, cov = linear_gaussian
    chains = 2000  # per input: the last states of independent chains are posterior draws
    x = jnp.asarray(np.repeat(xs, chains, axis=0))
    out = latent_hmc(
        log_joint, x, jnp.zeros((len(x), D)), key=jax.random.key(1), variables=variables,
        num_steps=250, num_adaptation_steps=150, num_integration_steps=10, step_size=0.5,
        adaptation=adaptation,
    )  # fmt: skip
    z = np.asarray(out.z).reshape(2, chains, D)
    for i in range(2):
        standard_error = np.sqrt(np.diag(cov) / chains)
        assert np.all(np.abs(z[i].mean(0) - means[i]) < 4.5 * standard_error), adaptation
        # sample covariance: relative error of each entry ~ sqrt(2 / chains) = 0.03
        scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
        assert np.all(np.abs(np.cov(z[i].T) - cov) / scale < 0.15), adaptation
    assert out.step_size.shape == (len(x),) and np.all(np.asarray(out.step_size) < 0.5)
    if adaptation == "dual_averaging":  # the frozen step reaches the target acceptance
        assert abs(float(out.acceptance_rate.mean()) - 0.9) < 0.06
    assert int(out.num_divergent.sum()) == 0


def test_without_adaptation_the_step_stays_and_the_trace_has_every_state(linear_gaussian):
    log_joint, variables, xs, _, _ = linear_gaussian
    x = jnp.asarray(xs)
    out = latent_hmc(
        log_joint, x, jnp.zeros((2, D)), key=jax.random.key(0), variables=variables,
        num_steps=7, num_integration_steps=3, step_size=jnp.array([0.01, 0.02]),
        adaptation="none", return_trace=True,
    )  # fmt: skip
    np.testing.assert_allclose(out.step_size, [0.01, 0.02])
    assert out.trace.shape == (7, 2, D)
    np.testing.assert_allclose(out.trace[-1], out.z)
    np.testing.assert_allclose(out.potential, -log_joint(variables, x, out.z), rtol=1e-5)
    assert float(out.acceptance_rate.min()) > 0.95  # tiny steps: nearly every proposal accepted


def test_non_finite_potentials_and_bad_options_are_refused(linear_gaussian):
    log_joint, variables, xs, _, _ = linear_gaussian
    x, z0 = jnp.asarray(xs), jnp.zeros((2, D))

    def nan_joint(variables, x, z):
        return log_joint(variables, x, z) * jnp.where(x[:, 0] > 0, jnp.nan, 1.0)

    with pytest.raises(InputError, match="not finite at the initial z"):
        latent_hmc(nan_joint, x.at[0, 0].set(1.0), z0, key=jax.random.key(0), variables=variables)
    with pytest.raises(InputError, match="z_init must be"):
        latent_hmc(log_joint, x, jnp.zeros((3, D)), key=jax.random.key(0), variables=variables)
    with pytest.raises(InputError, match="unknown adaptation"):
        latent_hmc(log_joint, x, z0, key=jax.random.key(0), variables=variables, adaptation="x")
    with pytest.raises(InputError, match="target_acceptance"):
        latent_hmc(log_joint, x, z0, key=jax.random.key(0), target_acceptance=1.0)
    with pytest.raises(InputError, match="step_size must be positive"):
        latent_hmc(log_joint, x, z0, key=jax.random.key(0), variables=variables, step_size=0.0)

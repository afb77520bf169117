"""Observation model, KL and VAE/classifier losses against independent references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as npd
import optax
from numpyro.distributions.kl import kl_divergence

from jaxrobust.distributions import (
    bernoulli_log_prob,
    bits_per_dim,
    diagonal_gaussian_kl_to_standard,
)
from jaxrobust.models import build_model
from jaxrobust.models.base import split_variables


def test_bernoulli_log_prob_matches_optax_on_grey_levels():
    key_l, key_x = jax.random.split(jax.random.key(0))
    logits = 3.0 * jax.random.normal(key_l, (5, 28, 28, 1))
    x = jax.random.uniform(key_x, (5, 28, 28, 1))  # not binarised
    # NumPyro's Bernoulli rejects non-binary values; optax's soft-label cross-entropy does not.
    reference = -optax.sigmoid_binary_cross_entropy(logits, x).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(bernoulli_log_prob(logits, x), reference, rtol=1e-5)
    # and the textbook form in float64
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    xs = np.asarray(x, np.float64)
    textbook = (xs * np.log(p) + (1 - xs) * np.log1p(-p)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(bernoulli_log_prob(logits, x), textbook, rtol=1e-4)


def test_gaussian_kl_matches_numpyro():
    mu = jnp.array([[0.3, -1.2, 2.0], [0.0, 0.0, 0.0]])
    log_var = jnp.array([[-0.5, 0.7, 0.0], [0.0, 0.0, 0.0]])
    q = npd.Normal(mu, jnp.exp(0.5 * log_var))
    reference = kl_divergence(q, npd.Normal(0.0, 1.0)).sum(-1)
    np.testing.assert_allclose(diagonal_gaussian_kl_to_standard(mu, log_var), reference, rtol=1e-6)
    assert float(diagonal_gaussian_kl_to_standard(mu, log_var)[1]) == 0.0


def test_bits_per_dim():
    np.testing.assert_allclose(bits_per_dim(784 * np.log(2.0), 784), 1.0, rtol=1e-7)


def test_vae_loss_is_the_negative_elbo_of_its_parts():
    model = build_model(
        "vae",
        {"latent_dim": 4, "encoder_features": (8, 16), "decoder_features": (16, 8)},
        (28, 28, 1),
        10,
    )
    x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
    params, state = split_variables(model.init(jax.random.key(0), x))
    loss, (metrics, _) = model.loss(
        {"params": params, **state}, {"image": x}, key=jax.random.key(2), train=True
    )
    elbo = model.score({"params": params}, x, ["elbo"], key=jax.random.key(2))["elbo"]
    np.testing.assert_allclose(loss, -elbo, rtol=1e-6)
    kl = model.score({"params": params}, x, ["kl"], key=None)["kl"]
    np.testing.assert_allclose(metrics["kl"], kl, rtol=1e-6)
    assert model.scores["kl"].higher_is_ood and not model.scores["elbo"].higher_is_ood


def test_classifier_loss_is_cross_entropy():
    model = build_model("classifier", {"network": "small_cnn"}, (28, 28, 1), 10)
    x = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1))
    y = jnp.array([0, 3, 9, 1])
    params, state = split_variables(model.init(jax.random.key(0), x))
    loss, (metrics, _) = model.loss(
        {"params": params, **state}, {"image": x, "label": y}, key=None, train=False
    )
    logits = np.asarray(model.logits({"params": params}, x), np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(loss, -log_probs[np.arange(4), np.asarray(y)], rtol=1e-5)
    probs = np.exp(log_probs).max(-1)
    np.testing.assert_allclose(
        model.score({"params": params}, x, ["max_softmax"], key=None)["max_softmax"],
        probs,
        rtol=1e-5,
    )


def test_vae_repeated_iwae_std_is_the_std_of_independent_iwae_estimates():
    """Ch.5 classical-VAE score: std (ddof 1) over R IWAE estimates, repeat r uses split(key)[r]."""
    from jaxrobust.models.vae import make_vae

    model = make_vae((8, 8, 1), 3, network="mlp", iwae_samples=6, iwae_chunk=4, iwae_repeats=4)
    x = jax.random.uniform(jax.random.key(1), (5, 8, 8, 1))
    variables = model.init(jax.random.key(0), x)
    key = jax.random.key(3)
    got = model.score(variables, x, ["iwae_repeat_std"], key=key)["iwae_repeat_std"]
    estimates = np.stack(
        [model.score(variables, x, ["iwae"], key=k)["iwae"] for k in jax.random.split(key, 4)]
    ).astype(np.float64)
    np.testing.assert_allclose(got, estimates.std(axis=0, ddof=1), rtol=1e-4)
    assert model.scores["iwae_repeat_std"].higher_is_ood

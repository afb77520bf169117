"""Observation models and closed-form divergences used by the VAEs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

IMAGE_EVENT_AXES = (-3, -2, -1)


def bernoulli_log_prob(logits: jax.Array, x: jax.Array) -> jax.Array:
    """Bernoulli log-likelihood of pixels in [0, 1], summed over the image (nats).

    log p(x | logits) = sum_i x_i * l_i - softplus(l_i); x is not binarised (the usual, unnormalised
    "Bernoulli on grey levels" of the VAE literature).
    """
    per_pixel = x * logits - jax.nn.softplus(logits)
    return jnp.sum(per_pixel, axis=IMAGE_EVENT_AXES)


def diagonal_gaussian_kl_to_standard(mu: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL(N(mu, diag exp(log_var)) || N(0, I)) = 1/2 sum(exp(lv) + mu^2 - 1 - lv), last axis."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + mu**2 - 1.0 - log_var, axis=-1)


def bits_per_dim(nll_nats: jax.Array, num_dims: int) -> jax.Array:
    """Negative log-likelihood in nats -> bits per dimension: nll / (D * ln 2)."""
    return nll_nats / (num_dims * np.log(2.0))

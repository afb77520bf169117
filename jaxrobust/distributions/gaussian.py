"""Diagonal Gaussian densities and KL divergences for latent variables (nats, last axis summed).

For q = N(mu_q, diag exp(lv_q)) and p = N(mu_p, diag exp(lv_p)) over R^d:

    log N(z; mu, diag exp(lv)) = -1/2 sum_i [log 2 pi + lv_i + (z_i - mu_i)^2 exp(-lv_i)]
    KL(q || p) = 1/2 sum_i [lv_p,i - lv_q,i + (exp(lv_q,i) + (mu_q,i - mu_p,i)^2) exp(-lv_p,i) - 1]

The negative-sampling prior of the hyperspherical / negative-sampling VAEs is the shifted
standard normal p_neg = N(s * 1, I), s = 8 for grey-scale and s = 25 for colour images:
:func:`shifted_normal_kl` is KL(q || p_neg).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


def diagonal_gaussian_log_prob(z: jax.Array, mu: jax.Array, log_var: jax.Array) -> jax.Array:
    """log N(z; mu, diag exp(log_var)), summed over the last axis (nats).

    Examples:
        At the mean of a 2-D standard normal, -log(2 pi); one standard deviation (2) away in
        one coordinate, another -1/2 - log 2:

        >>> import math
        >>> zeros = jnp.zeros(2)
        >>> round(float(diagonal_gaussian_log_prob(zeros, zeros, zeros)), 4)
        -1.8379
        >>> log_var = jnp.array([math.log(4.0), 0.0])
        >>> lp = diagonal_gaussian_log_prob(jnp.array([2.0, 0.0]), zeros, log_var)
        >>> round(float(lp), 4), round(-math.log(2 * math.pi) - 0.5 - math.log(2.0), 4)
        (-3.031, -3.031)
    """
    return -0.5 * jnp.sum(LOG_2PI + log_var + (z - mu) ** 2 * jnp.exp(-log_var), axis=-1)


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
    """log N(z; 0, I) = -1/2 sum_i (log 2 pi + z_i^2), summed over the last axis (nats).

    Examples:
        >>> z = jnp.array([[0.0, 0.0], [1.0, -1.0]])  # two points in 2-D
        >>> [round(v, 4) for v in standard_normal_log_prob(z).tolist()]  # -log 2 pi - |z|^2 / 2
        [-1.8379, -2.8379]
    """
    return -0.5 * jnp.sum(LOG_2PI + z**2, axis=-1)


def diagonal_gaussian_sample(key: jax.Array, mu: jax.Array, log_var: jax.Array) -> jax.Array:
    """Reparameterised sample z = mu + exp(log_var / 2) * eps, eps ~ N(0, I).

    Examples:
        10,000 draws of N(3, 2^2):

        >>> import math
        >>> mu = jnp.full((10_000,), 3.0)
        >>> z = diagonal_gaussian_sample(jax.random.key(0), mu, jnp.full_like(mu, math.log(4.0)))
        >>> round(float(z.mean()), 1), round(float(z.std()), 1)
        (3.0, 2.0)
    """
    eps = jax.random.normal(key, jnp.shape(mu), jnp.result_type(mu, jnp.float32))
    return mu + jnp.exp(0.5 * log_var) * eps


def diagonal_gaussian_kl(
    mu_q: jax.Array, log_var_q: jax.Array, mu_p: jax.Array, log_var_p: jax.Array
) -> jax.Array:
    """KL(N(mu_q, diag exp(lv_q)) || N(mu_p, diag exp(lv_p))) in closed form, last axis summed.

    1/2 sum_i [lv_p - lv_q + (exp(lv_q) + (mu_q - mu_p)^2) exp(-lv_p) - 1].

    Examples:
        KL(N(0, 1) || N(0, 2^2)) = log 2 + 1/8 - 1/2, and zero between equal Gaussians:

        >>> import math
        >>> zero, log4 = jnp.zeros(1), jnp.full(1, math.log(4.0))
        >>> round(float(diagonal_gaussian_kl(zero, zero, zero, log4)), 4)
        0.3181
        >>> round(math.log(2.0) + 1 / 8 - 1 / 2, 4)
        0.3181
        >>> float(diagonal_gaussian_kl(zero, log4, zero, log4))
        0.0
    """
    ratio = (jnp.exp(log_var_q) + (mu_q - mu_p) ** 2) * jnp.exp(-log_var_p)
    return 0.5 * jnp.sum(log_var_p - log_var_q + ratio - 1.0, axis=-1)


def diagonal_gaussian_kl_to_standard(mu: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL(N(mu, diag exp(log_var)) || N(0, I)) = 1/2 sum(exp(lv) + mu^2 - 1 - lv), last axis.

    Examples:
        A unit shift of the mean costs 1/2 nat per coordinate:

        >>> mu = jnp.array([[0.0, 0.0], [1.0, 0.0], [1.0, -1.0]])
        >>> diagonal_gaussian_kl_to_standard(mu, jnp.zeros_like(mu)).tolist()
        [0.0, 0.5, 1.0]
    """
    return 0.5 * jnp.sum(jnp.exp(log_var) + mu**2 - 1.0 - log_var, axis=-1)


def shifted_normal_kl(mu_q: jax.Array, log_var_q: jax.Array, shift: float) -> jax.Array:
    """KL(N(mu_q, diag exp(lv_q)) || N(shift * 1, I)), last axis summed.

    1/2 sum_i [exp(lv_q,i) + (mu_q,i - shift)^2 - 1 - lv_q,i]: the KL to the negative-sampling
    prior p_neg = N(s * 1, I) (s = 8 grey-scale, s = 25 colour).

    Examples:
        From q = N(0, I) in 2-D to N(8 * 1, I): 1/2 * (8^2 + 8^2) nats.

        >>> zeros = jnp.zeros(2)
        >>> [float(shifted_normal_kl(mu, zeros, 8.0)) for mu in (zeros, zeros + 8.0)]
        [64.0, 0.0]
    """
    return 0.5 * jnp.sum(jnp.exp(log_var_q) + (mu_q - shift) ** 2 - 1.0 - log_var_q, axis=-1)

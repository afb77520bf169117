"""Latent families q(z|x) with their prior p(z): the seam through which a VAE gets its latent space.

A :class:`LatentFamily` is a NamedTuple of pure functions, in the style of
:class:`~jaxrobust.distributions.ObservationModel`. An encoder emits ``head_width(latent_dim)``
raw features per input; ``params(head)`` maps them to the family's parameters (a pytree, each
leaf ``[..., ...]`` with the batch axes leading); everything else works on those parameters:

- ``sample(key, params)``: one reparameterised z ~ q(z|x) per input, ``[..., latent_dim]``;
- ``log_prob(z, params)``: log q(z|x), ``[...]``; ``prior_log_prob(z)``: log p(z);
- ``kl_to_prior(params)``: KL(q(z|x) || p(z)), closed form, ``[...]``;
- ``mean(params)``: the location of q (the code a deterministic encoder would give);
- ``sample_prior(key, shape)``: z ~ p(z) for ``shape = (..., latent_dim)``;
- ``divergence(params_a, params_b)``: the divergence the latent (encoder) attack maximises,
  ``[...]`` (:func:`jaxrobust.attacks.latent_attack`);
- ``kl_to_shifted_prior(params, shift)``: KL to the negative-sampling prior (seed 004), or None
  when the family has none.

:data:`GAUSSIAN`: q = N(mu, diag exp(log_var)), p = N(0, I), head ``[mu, log_var]`` of width
``2 * latent_dim``. Its densities and KLs are those of :mod:`jaxrobust.distributions.gaussian`
(checked against NumPyro in the tests), written here rather than taken from
``numpyro.distributions`` because the VAE needs the reparameterised sample with a key that
reproduces the earlier ``mu + exp(log_var / 2) * normal(key)`` draws bit for bit.

:data:`VON_MISES_FISHER` and :data:`POWER_SPHERICAL` (names ``"von_mises_fisher"``,
``"power_spherical"``): q on the sphere S^{m-1} (m = ``latent_dim``, the ambient dimension: S^2
is m = 3), p = U(S^{m-1}), head ``[direction (m), kappa (1)]`` of width m + 1 mapped by
:func:`spherical_params`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> head = jnp.zeros((2, 6))  # two inputs, latent_dim 3: mu = 0, log_var = 0
    >>> params = GAUSSIAN.params(head)
    >>> GAUSSIAN.kl_to_prior(params)  # q = p
    Array([0., 0.], dtype=float32)
    >>> GAUSSIAN.sample(jax.random.key(0), params).shape
    (2, 3)
    >>> round(float(GAUSSIAN.log_prob(jnp.zeros((1, 3)), GAUSSIAN.params(jnp.zeros((1, 6))))[0]), 4)
    -2.7568
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrobust.distributions import power_spherical as ps
from jaxrobust.distributions import von_mises_fisher as vmf
from jaxrobust.distributions._sphere import log_sphere_area
from jaxrobust.distributions.gaussian import (
    diagonal_gaussian_kl_to_standard,
    diagonal_gaussian_log_prob,
    shifted_normal_kl,
    standard_normal_log_prob,
)
from jaxrobust.registry import Registry

Params = Any  # the family's parameter pytree, e.g. (mu, log_var)


class LatentFamily(NamedTuple):
    """A family of q(z|x) with its prior p(z), as pure functions (see the module docstring)."""

    name: str
    head_width: Callable[[int], int]
    params: Callable[[jax.Array], Params]
    sample: Callable[[jax.Array, Params], jax.Array]
    log_prob: Callable[[jax.Array, Params], jax.Array]
    prior_log_prob: Callable[[jax.Array], jax.Array]
    kl_to_prior: Callable[[Params], jax.Array]
    mean: Callable[[Params], jax.Array]
    sample_prior: Callable[[jax.Array, tuple[int, ...]], jax.Array]
    divergence: Callable[[Params, Params], jax.Array]
    kl_to_shifted_prior: Callable[[Params, float], jax.Array] | None = None


def symmetric_gaussian_kl(params_a: Params, params_b: Params) -> jax.Array:
    """``KL(a || b) + KL(b || a)`` of diagonal Gaussians ``(mu, log_var)``, summed over the last
    axis (the divergence of the dissertation's encoder attack, eq. 5.1).

    Example:
        >>> import jax.numpy as jnp
        >>> a = (jnp.zeros((1, 2)), jnp.zeros((1, 2)))
        >>> b = (jnp.ones((1, 2)), jnp.zeros((1, 2)))  # unit variances, means 1 apart
        >>> symmetric_gaussian_kl(a, b)  # 2 coordinates x (1/2 + 1/2)
        Array([2.], dtype=float32)
    """
    (mu1, log_var1), (mu2, log_var2) = params_a, params_b
    diff = log_var1 - log_var2
    per_coordinate = 0.5 * (
        jnp.exp(diff)
        + jnp.exp(-diff)
        + jnp.square(mu1 - mu2) * (jnp.exp(-log_var1) + jnp.exp(-log_var2))
        - 2.0
    )
    return jnp.sum(per_coordinate, axis=-1)


def _gaussian_params(head: jax.Array) -> tuple[jax.Array, jax.Array]:
    mu, log_var = jnp.split(head, 2, axis=-1)
    return mu, log_var


def _gaussian_sample(key: jax.Array, params: Params) -> jax.Array:
    mu, log_var = params
    return mu + jnp.exp(0.5 * log_var) * jax.random.normal(key, mu.shape, mu.dtype)


GAUSSIAN = LatentFamily(
    name="gaussian",
    head_width=lambda latent_dim: 2 * latent_dim,
    params=_gaussian_params,
    sample=_gaussian_sample,
    log_prob=lambda z, p: diagonal_gaussian_log_prob(z, *p),
    prior_log_prob=standard_normal_log_prob,
    kl_to_prior=lambda p: diagonal_gaussian_kl_to_standard(*p),
    mean=lambda p: p[0],
    sample_prior=lambda key, shape: jax.random.normal(key, shape),
    divergence=symmetric_gaussian_kl,
    kl_to_shifted_prior=lambda p, shift: shifted_normal_kl(*p, shift),
)


def spherical_params(head: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(mean_direction, concentration)`` of a spherical family from a head of width m + 1:
    ``mu = h[:m] / ||h[:m]||``, ``kappa = softplus(h[m]) + 1`` (the S-VAE authors' code; kappa
    >= 1 keeps the rejection sampler and the gradients well conditioned).

    Example:
        >>> mu, kappa = spherical_params(jnp.array([[3.0, 4.0, 0.0]]))
        >>> mu.tolist(), round(float(kappa[0]), 4)
        ([[0.6000000238418579, 0.800000011920929]], 1.6931)
    """
    direction = head[..., :-1]
    norm = jnp.sqrt(jnp.sum(jnp.square(direction), axis=-1, keepdims=True))
    # a zero direction (e.g. a bias-free head at init on blank images) points along e_1
    first_axis = jnp.zeros_like(direction).at[..., 0].set(1.0)
    mu = jnp.where(norm > 0, direction / jnp.where(norm > 0, norm, 1.0), first_axis)
    return mu, jax.nn.softplus(head[..., -1]) + 1.0


def _uniform_sphere_log_prob(z: jax.Array) -> jax.Array:
    return jnp.full(z.shape[:-1], -log_sphere_area(z.shape[-1]), z.dtype)


def _uniform_sphere_sample(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    g = jax.random.normal(key, shape)
    return g / jnp.linalg.norm(g, axis=-1, keepdims=True)


#: q = vMF(mu, kappa) on S^{m-1} (m = latent_dim, the ambient dimension), p = U(S^{m-1}), head
#: ``[direction (m), kappa (1)]``: the hyperspherical VAE (Davidson et al. 2018). The sample is
#: Wood's rejection sampler with the g_rep gradient only (as the authors' code; see
#: :mod:`jaxrobust.distributions.von_mises_fisher` for the g_cor term); KL in closed form; the
#: latent attack's divergence is the symmetric vMF KL.
VON_MISES_FISHER = LatentFamily(
    name="von_mises_fisher",
    head_width=lambda latent_dim: latent_dim + 1,
    params=spherical_params,
    sample=lambda key, p: vmf.sample(key, p[0], p[1]),
    log_prob=lambda z, p: vmf.log_prob(z, p[0], p[1]),
    prior_log_prob=_uniform_sphere_log_prob,
    kl_to_prior=lambda p: vmf.kl_to_uniform(p[1], p[0].shape[-1]),
    mean=lambda p: p[0],
    sample_prior=_uniform_sphere_sample,
    divergence=lambda a, b: vmf.symmetric_kl(a[0], a[1], b[0], b[1]),
)

#: q = PowerSpherical(mu, kappa) (De Cao & Aziz 2020) on S^{m-1}, p = U(S^{m-1}), the same head
#: and parameters as :data:`VON_MISES_FISHER`: an exact reparameterised sample (no rejection, no
#: gradient correction needed), KL to the uniform in closed form; the divergence is the
#: symmetric KL by deterministic quadrature (:func:`jaxrobust.distributions.power_spherical.
#: kl_divergence`: no closed form exists; exact at equal parameters).
POWER_SPHERICAL = LatentFamily(
    name="power_spherical",
    head_width=lambda latent_dim: latent_dim + 1,
    params=spherical_params,
    sample=lambda key, p: ps.sample(key, p[0], p[1]),
    log_prob=lambda z, p: ps.log_prob(z, p[0], p[1]),
    prior_log_prob=_uniform_sphere_log_prob,
    kl_to_prior=lambda p: ps.kl_to_uniform(p[1], p[0].shape[-1]),
    mean=lambda p: p[0],
    sample_prior=_uniform_sphere_sample,
    divergence=lambda a, b: ps.symmetric_kl(a[0], a[1], b[0], b[1]),
)

#: Latent families by name (``architecture.latent`` of a VAE config); open for registration.
LATENT_FAMILIES: Registry[LatentFamily] = Registry("latent family")
LATENT_FAMILIES.register("gaussian", GAUSSIAN)
LATENT_FAMILIES.register("von_mises_fisher", VON_MISES_FISHER)
LATENT_FAMILIES.register("power_spherical", POWER_SPHERICAL)


def register_latent_family(family: LatentFamily, *, overwrite: bool = False) -> None:
    """Make ``family`` available as ``architecture.latent = family.name``.

    Example:
        >>> register_latent_family(GAUSSIAN._replace(name="my_gaussian"))
        >>> get_latent_family("my_gaussian").head_width(4)
        8
    """
    LATENT_FAMILIES.register(family.name, family, overwrite=overwrite)


def get_latent_family(name: str | LatentFamily) -> LatentFamily:
    """The registered family ``name`` (a :class:`LatentFamily` is returned as it is).

    Example:
        >>> get_latent_family("gaussian") is GAUSSIAN
        True
    """
    if isinstance(name, LatentFamily):
        return name
    return LATENT_FAMILIES.get(name, where="architecture.latent")

"""Shared pieces of the distributions on the unit sphere S^{m-1} in R^m (von Mises-Fisher, Power
Spherical): the sphere's area, uniform tangent directions, the Householder map e_1 -> mu, and the
input checks.

Checks of dimensions and shapes always run (they are static); checks of values (concentration
> 0, unit norms, NaN) run only on concrete arrays, so the functions stay jittable: under a
caller's ``jit`` bad values propagate as NaN instead of raising.
"""

from __future__ import annotations

import math
import operator

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.arrays import first_position, is_traced, real_array
from jaxrobust.errors import InputError

#: Relative tolerance of the unit-norm checks: float32 rounding of a normalised vector is ~1e-7.
UNIT_NORM_TOLERANCE = 1e-3


def log_sphere_area(dim: int) -> float:
    """log |S^{m-1}| = log(2 pi^{m/2} / Gamma(m/2)), the log surface area of the unit sphere in
    R^m (``dim`` = m); the uniform density on the sphere is its negative exponential.

    Example:
        >>> round(log_sphere_area(3), 6) == round(math.log(4 * math.pi), 6)
        True
    """
    return math.log(2.0) + 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim)


def check_dim(dim, *, where: str) -> int:
    """``dim`` (m, the ambient dimension of S^{m-1}) as a Python int >= 2."""
    try:
        m = operator.index(dim)
    except TypeError:
        raise InputError(
            f"{where}: dim must be a Python int (the ambient dimension m of the sphere "
            f"S^(m-1)), got {dim!r}; it is static, pass e.g. dim=3 for S^2."
        ) from None
    if m < 2:
        raise InputError(
            f"{where}: dim m = {m} < 2; these distributions live on the sphere S^(m-1) in R^m and "
            "need m >= 2 (m = 2: the circle, m = 3: S^2)."
        )
    return m


def as_float(name: str, values, *, where: str) -> jax.Array:
    """``values`` as a floating jax array (ints converted); refuses non-numeric input."""
    return real_array(f"{where}: {name}", values)


def check_concentration(kappa, *, where: str) -> jax.Array:
    """Concentration kappa > 0, finite (eagerly)."""
    kappa = as_float("concentration", kappa, where=where)
    if not is_traced(kappa):
        values = np.asarray(kappa)
        bad = ~(values > 0) | ~np.isfinite(values)
        if bad.any():
            raise InputError(
                f"{where}: concentration must be finite and > 0; got {values[bad].ravel()[0]!r} "
                f"({int(bad.sum())} bad value(s), first at {first_position(bad)}). kappa -> 0 is "
                "the uniform distribution (use kl/entropy of the uniform there); from a network "
                "head use softplus(h) + 1, as the hyperspherical VAE does."
            )
    return kappa


def check_unit(name: str, vectors, *, where: str) -> jax.Array:
    """Vectors ``[..., m]`` with m >= 2 and unit norm within :data:`UNIT_NORM_TOLERANCE`."""
    vectors = as_float(name, vectors, where=where)
    if vectors.ndim < 1:
        raise InputError(f"{where}: {name} must be [..., m] vectors, got a scalar.")
    check_dim(vectors.shape[-1], where=f"{where} ({name}.shape[-1])")
    if not is_traced(vectors):
        values = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(values, axis=-1)
        bad = ~(np.abs(norms - 1.0) <= UNIT_NORM_TOLERANCE)
        if bad.any():
            raise InputError(
                f"{where}: {name} must be unit vectors on the sphere (norm 1 within relative "
                f"{UNIT_NORM_TOLERANCE:g}); found norm {norms[bad].ravel()[0]!r} at index "
                f"{first_position(bad)} ({int(bad.sum())} of {norms.size}). Normalise it: "
                f"{name} / jnp.linalg.norm({name}, axis=-1, keepdims=True)."
            )
    return vectors


def batch_shape(where: str, **shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The broadcast of the named batch shapes, or :class:`InputError` saying which clash."""
    try:
        return tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        listed = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise InputError(
            f"{where}: batch shapes do not broadcast: {listed}. Vectors are [..., m] and the "
            "concentration [...]; give them matching (or broadcastable) leading axes."
        ) from None


def check_sample_shape(shape) -> tuple[int, ...]:
    try:
        out = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise InputError(f"shape must be a tuple of ints, got {shape!r}.") from None
    if any(s < 0 for s in out):
        raise InputError(f"shape must be non-negative ints, got {out}.")
    return out


def check_key(key) -> None:
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if np.shape(key) != ():
            raise InputError(f"key must be one PRNG key, got a key array of shape {key.shape}.")
        return
    if dtype == np.uint32 and np.shape(key) == (2,):
        return
    raise InputError(f"key must be a PRNG key (jax.random.key(seed)), got {key!r}.")


def squared_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    """||x - y||^2 over the last axis; for unit vectors 1 - x.y = ||x - y||^2 / 2, without the
    cancellation of 1 - x.y near x = y (where samples of a concentrated distribution lie)."""
    return jnp.sum(jnp.square(x - y), axis=-1)


def uniform_tangent(key: jax.Array, shape: tuple[int, ...], dim: int, dtype) -> jax.Array:
    """v ~ U(S^{m-2}) as ``shape + (m - 1,)`` (normalised Gaussians; m = 2 gives +-1)."""
    g = jax.random.normal(key, shape + (dim - 1,), dtype)
    return g / jnp.linalg.norm(g, axis=-1, keepdims=True)


def householder_from_e1(z: jax.Array, mu: jax.Array) -> jax.Array:
    """Apply the Householder reflection H = I - 2 u u^T / u^T u, u = e_1 - mu, which maps e_1 to
    the unit vector ``mu``, to ``z`` (both ``[..., m]``). u_1 = 1 - mu_1 is computed as
    ||mu_{2:}||^2 / (1 + mu_1) when mu_1 > 0 (no cancellation near mu = e_1); mu = e_1 exactly
    gives H = I.

    Example:
        >>> import jax.numpy as jnp
        >>> householder_from_e1(jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 0.6, 0.8]))
        Array([0. , 0.6, 0.8], dtype=float32)
    """
    mu1, rest = mu[..., :1], mu[..., 1:]
    rest_sq = jnp.sum(jnp.square(rest), axis=-1, keepdims=True)
    positive = mu1 > 0
    u1 = jnp.where(positive, rest_sq / jnp.where(positive, 1.0 + mu1, 1.0), 1.0 - mu1)
    u = jnp.concatenate([u1, -rest], axis=-1)
    uu = jnp.sum(jnp.square(u), axis=-1, keepdims=True)
    nonzero = uu > 0
    scale = 2.0 * jnp.sum(u * z, axis=-1, keepdims=True) / jnp.where(nonzero, uu, 1.0)
    return z - jnp.where(nonzero, scale, 0.0) * u


def tangent_point(cos: jax.Array, sin: jax.Array, v: jax.Array) -> jax.Array:
    """z' = (cos, sin * v) for ``cos``, ``sin`` ``[...]`` and v ``[..., m - 1]``."""
    return jnp.concatenate([cos[..., None], sin[..., None] * v], axis=-1)

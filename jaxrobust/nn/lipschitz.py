"""Lipschitz networks in the inf-norm (dissertation Ch. 4, the Lipschitz VAE).

A linear layer ``y = W x`` satisfies ``||W x||_inf <= max_i ||w_i||_1 ||x||_inf`` (``w_i`` the
rows of ``W``), so projecting every row onto the L1 ball of radius 1 (:func:`project_rows_l1`)
makes it 1-Lipschitz in the inf-norm; GroupSort (:func:`group_sort`), a permutation within
groups, is 1-Lipschitz in every norm and keeps gradient norms. :class:`LipschitzMLP` applies the
projection in every layer's forward pass (no bias), scales each layer by ``M ** (1 / L)`` so the
network is M-Lipschitz, and GroupSort after the hidden layers.

The projection is Duchi et al. (2008)'s projection onto the simplex, applied to ``|w|`` with
the signs restored (its support found by bisection rather than sorting, see
:func:`project_rows_l1`); rows already inside the ball are left as they are. No JAX
package provides it (optax's projections cover the L1 ball of a whole vector, not row by row in
a network's forward pass), so it is written here, about ten lines.

:func:`rescale_rows_l1` is the alternative of Gouk et al. (2021, "Regularisation of neural
networks by enforcing Lipschitz continuity"): a row outside the ball is divided by its L1 norm.
Same bound, but every weight keeps its gradient, where the projection zeroes (and stops the
gradient of) all entries below theta; ``LipschitzMLP(projection="rescale")`` uses it (an
ablation: Algorithm 1 prints the projection).

Examples:
    >>> import jax.numpy as jnp
    >>> project_rows_l1(jnp.array([[0.2, -0.3], [3.0, -1.0]])).tolist()
    [[0.20000000298023224, -0.30000001192092896], [1.0, -0.0]]
    >>> group_sort(jnp.array([3.0, 1.0, 2.0, 5.0])).tolist()
    [1.0, 3.0, 2.0, 5.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def project_rows_l1(weights: jax.Array, radius: float = 1.0, *, iterations: int = 40) -> jax.Array:
    """Each row of ``weights`` (``[..., out, in]``) projected onto ``{w : ||w||_1 <= radius}``.

    Outside the ball: ``w -> sign(w) * max(|w| - theta, 0)`` with the ``theta`` that makes the
    row's L1 norm ``radius`` (the Euclidean projection); inside: the identity.

    ``theta = (sum_{i in S} |w_i| - radius) / |S|`` over the support ``S = {i : |w_i| > theta}``
    (Duchi et al. 2008). The support is found by ``iterations`` bisection steps on theta (without
    gradient), then theta is computed exactly from it, so value and gradient are those of the
    sort-based algorithm; XLA's sort (and its gradient) on CPU was 20x slower for a 512 x 784
    kernel, and this runs in every forward pass.

    Examples:
        >>> import jax.numpy as jnp
        >>> w = project_rows_l1(jnp.array([[2.0, 1.0, -1.0]]), radius=1.0)
        >>> w.tolist(), float(jnp.abs(w).sum())
        ([[1.0, 0.0, -0.0]], 1.0)
    """
    if radius <= 0:
        raise ValueError(
            f"radius must be > 0, got {radius}; it is the bound on each row's L1 norm."
        )
    magnitude = jnp.abs(weights)
    fixed = jax.lax.stop_gradient(magnitude)

    def bisect(_, bounds):  # invariant: lo <= theta <= hi
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        over = jnp.sum(jnp.maximum(fixed - mid, 0.0), axis=-1, keepdims=True) > radius
        return jnp.where(over, mid, lo), jnp.where(over, hi, mid)

    start = (jnp.zeros_like(fixed[..., :1]), jnp.max(fixed, axis=-1, keepdims=True))
    lo, _ = jax.lax.fori_loop(0, iterations, bisect, start)
    support = (fixed > lo).astype(weights.dtype)
    count = jnp.maximum(jnp.sum(support, axis=-1, keepdims=True), 1.0)
    theta = (jnp.sum(magnitude * support, axis=-1, keepdims=True) - radius) / count
    projected = jnp.sign(weights) * jnp.maximum(magnitude - theta, 0.0)
    inside = jnp.sum(magnitude, axis=-1, keepdims=True) <= radius
    return jnp.where(inside, weights, projected)


def rescale_rows_l1(weights: jax.Array, radius: float = 1.0) -> jax.Array:
    """Each row of ``weights`` (``[..., out, in]``) divided by ``max(1, ||w||_1 / radius)``:
    rows inside the ball unchanged, rows outside scaled onto its surface (Gouk et al. 2021).

    Examples:
        >>> import jax.numpy as jnp
        >>> rescale_rows_l1(jnp.array([[0.2, -0.3], [3.0, -1.0]])).tolist()
        [[0.20000000298023224, -0.30000001192092896], [0.75, -0.25]]
    """
    if radius <= 0:
        raise ValueError(
            f"radius must be > 0, got {radius}; it is the bound on each row's L1 norm."
        )
    norm = jnp.sum(jnp.abs(weights), axis=-1, keepdims=True)
    return weights / jnp.maximum(1.0, norm / radius)


#: LipschitzMLP(projection=...): how each kernel row is kept in the unit L1 ball
ROW_CONSTRAINTS = {"l1_ball": project_rows_l1, "rescale": rescale_rows_l1}


def group_sort(x: jax.Array, group_size: int = 2) -> jax.Array:
    """Sort the last axis of ``x`` within consecutive groups of ``group_size`` (ascending);
    ``group_size=2`` is MaxMin. The last axis must be a multiple of ``group_size``.

    Examples:
        >>> import jax.numpy as jnp
        >>> group_sort(jnp.array([[4.0, 3.0, 2.0, 1.0]]), group_size=4).tolist()
        [[1.0, 2.0, 3.0, 4.0]]
    """
    if group_size < 1 or x.shape[-1] % group_size:
        raise ValueError(
            f"group_sort: the last axis ({x.shape[-1]}) must be a positive multiple of "
            f"group_size={group_size}; choose layer widths divisible by the group size."
        )
    groups = x.reshape(*x.shape[:-1], x.shape[-1] // group_size, group_size)
    if group_size == 2:  # MaxMin without XLA's (slow on CPU) sort
        low, high = groups[..., 0], groups[..., 1]
        groups = jnp.stack([jnp.minimum(low, high), jnp.maximum(low, high)], axis=-1)
        return groups.reshape(x.shape)
    return jnp.sort(groups, axis=-1).reshape(x.shape)


class LipschitzMLP(nn.Module):
    """An MLP that is ``lipschitz``-Lipschitz in the inf-norm: every layer's kernel has its rows
    (one per output unit) projected onto the unit L1 ball in the forward pass and is scaled by
    ``lipschitz ** (1 / L)``; no biases; GroupSort after every hidden layer. ``projection``:
    "l1_ball" (Algorithm 1, :func:`project_rows_l1`) or "rescale" (:func:`rescale_rows_l1`).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> mlp = LipschitzMLP(features=(8, 3), lipschitz=2.0)
        >>> x = jnp.ones((1, 5))
        >>> params = mlp.init(jax.random.key(0), x)
        >>> mlp.apply(params, x).shape
        (1, 3)
    """

    features: Sequence[int]
    lipschitz: float = 1.0
    group_size: int = 2
    dtype: Any = None  # compute dtype (None: float32); kernels and outputs stay float32
    projection: str = "l1_ball"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.lipschitz <= 0:
            raise ValueError(f"lipschitz must be > 0, got {self.lipschitz}.")
        if self.projection not in ROW_CONSTRAINTS:
            raise ValueError(
                f"unknown projection {self.projection!r}; choose one of {sorted(ROW_CONSTRAINTS)}."
            )
        constrain = ROW_CONSTRAINTS[self.projection]
        scale = self.lipschitz ** (1.0 / len(self.features))
        for i, width in enumerate(self.features):
            kernel = self.param(
                f"kernel_{i}", nn.initializers.lecun_normal(), (x.shape[-1], width), jnp.float32
            )
            rows = constrain(kernel.T)  # [out, in]: one row per output unit
            if self.dtype is not None:
                x, rows = x.astype(self.dtype), rows.astype(self.dtype)
            x = scale * (x @ rows.T)
            if i < len(self.features) - 1:
                x = group_sort(x, self.group_size)
        return x.astype(jnp.float32)

"""Array helpers shared by every package; imports jax only, nothing of jaxrobust.

Checks on values (NaN, ranges) can run only on concrete arrays: inside a transformation (``jit``,
``vmap``, ``grad``) an array is a tracer whose values are not known yet. :func:`is_traced` tells
the two apart, so a function can validate its inputs when called eagerly and stay jittable.
"""

from __future__ import annotations

import jax

__all__ = ["is_traced"]


def is_traced(*arrays) -> bool:
    """True if any of ``arrays`` is a tracer (inside jit, vmap, grad), whose values are unknown.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> is_traced(jnp.ones(3)), is_traced(1.0, "not an array")
        (False, False)
        >>> jax.jit(lambda x: jnp.asarray(is_traced(x)))(jnp.ones(3)).item()
        True
        >>> jax.vmap(lambda x: jnp.asarray(is_traced(jnp.ones(2), x)))(jnp.ones(2)).tolist()
        [True, True]
    """
    return any(isinstance(a, jax.core.Tracer) for a in arrays)

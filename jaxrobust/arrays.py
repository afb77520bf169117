"""Array helpers shared by every package; imports jax, numpy and ``jaxrobust.errors`` only.

Checks on values (NaN, ranges) can run only on concrete arrays: inside a transformation (``jit``,
``vmap``, ``grad``) an array is a tracer whose values are not known yet. :func:`is_traced` tells
the two apart, so a function can validate its inputs when called eagerly and stay jittable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.errors import InputError

__all__ = ["first_position", "is_traced", "real_array"]


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


def real_array(name: str, values, *, what: str = "") -> jax.Array:
    """``values`` as a jax float array (ints converted to float32); refuses non-numeric input
    with an :class:`~jaxrobust.errors.InputError` naming ``name`` (and ``what`` it is for).

    Examples:
        >>> real_array("x", [1, 2]).dtype
        dtype('float32')
        >>> real_array("x", ["a"], what="of the scores")
        Traceback (most recent call last):
        ...
        jaxrobust.errors.InputError: x must be real numbers of the scores, got dtype <U1.
    """
    suffix = f" {what}" if what else ""
    if not hasattr(values, "dtype"):
        try:
            values = np.asarray(values)
        except (TypeError, ValueError) as err:  # ragged lists
            raise InputError(f"{name} must be a numeric array{suffix}: {err}") from None
    dtype = values.dtype
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise InputError(f"{name} must be real numbers{suffix}, got dtype {dtype}.")
    values = jnp.asarray(values)
    if not jnp.issubdtype(values.dtype, jnp.floating):
        values = values.astype(jnp.float32)
    return values


def first_position(mask) -> str:
    """The index of the first True entry of ``mask``, as a tuple string (for error messages).

    Examples:
        >>> first_position([[False, False], [False, True]])
        '(1, 1)'
    """
    return str(tuple(int(i) for i in np.argwhere(np.asarray(mask))[0]))

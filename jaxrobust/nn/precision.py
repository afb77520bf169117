"""Mixed precision: the compute dtypes a network accepts, and the float32 output boundary.

A network's ``dtype`` attribute (Flax's convention: the dtype of the computation) is None by
default, i.e. float32 for float32 parameters and inputs. With ``dtype=jnp.bfloat16`` the
convolutions, dense layers and activations run in bfloat16 while the parameters stay float32
(``param_dtype``: the optimizer updates float32 and gradients arrive in float32), batch-norm
statistics are reduced in float32 (Flax's ``force_float32_reductions``), and every network of
:mod:`jaxrobust.nn` returns its outputs (logits, features, encoder heads, decoder outputs) cast
to float32 by :func:`as_float32`, so losses and likelihoods are computed in float32.

Config: ``models.<name>.architecture.compute_dtype`` = ``"float32"`` (default) or
``"bfloat16"``, turned into a ``dtype`` by :func:`compute_dtype`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

#: Compute dtype names -> the Flax ``dtype`` of a network (None: as the parameters, float32).
COMPUTE_DTYPES: dict[str, Any] = {"float32": None, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str) -> Any:
    """The Flax ``dtype`` for compute dtype ``name``: None for float32, ``jnp.bfloat16``.

    Examples:
        >>> compute_dtype("float32") is None, compute_dtype("bfloat16")
        (True, <class 'jax.numpy.bfloat16'>)
        >>> compute_dtype("float16")
        Traceback (most recent call last):
        ...
        ValueError: Unknown compute dtype 'float16'; choose one of ['float32', 'bfloat16'] ...
    """
    if name not in COMPUTE_DTYPES:
        raise ValueError(
            f"Unknown compute dtype {name!r}; choose one of {list(COMPUTE_DTYPES)} "
            "(bfloat16: mixed precision with float32 parameters)."
        )
    return COMPUTE_DTYPES[name]


def as_float32(x: jax.Array) -> jax.Array:
    """``x`` in at least float32: a bfloat16/float16 array is cast up, others are unchanged.

    Examples:
        >>> as_float32(jnp.ones(2, jnp.bfloat16)).dtype, as_float32(jnp.ones(2)).dtype
        (dtype('float32'), dtype('float32'))
    """
    if jnp.issubdtype(x.dtype, jnp.floating) and jnp.finfo(x.dtype).bits < 32:
        return x.astype(jnp.float32)
    return x

"""Input checks of the score functions: dtype, shape and non-finite values (issue 13).

Checks of shapes and dtypes always run; checks of values run only on concrete arrays (eagerly),
so the scores stay jittable. Inside a caller's ``jit`` a NaN input gives a NaN score, which
the metrics then turn into a NaN metric (never a plausible number).
"""

from __future__ import annotations

import jax
import numpy as np

from jaxrobust.arrays import first_position, is_traced, real_array
from jaxrobust.errors import InputError, JaxrobustError


class NonFiniteScoreError(JaxrobustError, FloatingPointError):
    """A score came out NaN or +inf from a model function (e.g. ``log_weight_fn``) when it was
    computed eagerly: the model's output is not finite there.

    Examples:
        >>> issubclass(NonFiniteScoreError, FloatingPointError)
        True
    """


def check_logits(logits, *, stacked: bool) -> jax.Array:
    """Logits ``[N, C]`` (``[S, N, C]`` when ``stacked``), C >= 1, N >= 1, no NaN or +inf and at
    least one finite logit per row (eagerly); -inf (a masked class) is allowed."""
    name, layout = ("logits_stack", "[S, N, C]") if stacked else ("logits", "[N, C]")
    logits = real_array(name, logits, what=layout)
    if logits.ndim != (3 if stacked else 2):
        raise InputError(
            f"{name} must be {layout} ({'samples x ' if stacked else ''}inputs x classes), got "
            f"shape {logits.shape}."
        )
    if 0 in logits.shape:
        raise InputError(f"{name} is empty, shape {logits.shape}; scores need {layout}, all >= 1.")
    if not is_traced(logits):
        values = np.asarray(logits)
        bad = np.isnan(values) | (values == np.inf)
        if bad.any():
            raise InputError(
                f"{name} has {int(bad.sum())} NaN/+inf values (first at {first_position(bad)}); "
                "softmax is undefined there: fix the model or its checkpoint."
            )
        dead = ~np.isfinite(values).any(axis=-1)
        if dead.any():
            raise InputError(
                f"{name} has rows whose logits are all -inf (first at {first_position(dead)}); "
                "softmax is undefined there."
            )
    return logits


def refuse_non_finite_result(name: str, values: jax.Array, source: str) -> None:
    """Eagerly: a result with NaN or +inf raises :class:`NonFiniteScoreError`."""
    if is_traced(values):
        return
    arr = np.asarray(values)
    bad = np.isnan(arr) | (arr == np.inf)
    if bad.any():
        raise NonFiniteScoreError(
            f"{name} has {int(bad.sum())} NaN/+inf values of {arr.size} (first at "
            f"{first_position(bad)}): {source} returned non-finite values there. Check the "
            "model at those inputs (or its checkpoint)."
        )


def check_key(key) -> None:
    """A PRNG key: a typed key array, or a raw uint32 ``[2]`` key."""
    if key is None:
        raise InputError("key is required: pass key=jax.random.key(seed).")
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if np.shape(key) != ():
            raise InputError(f"key must be one PRNG key, got a key array of shape {key.shape}.")
        return
    if dtype == np.uint32 and np.shape(key) == (2,):
        return
    raise InputError(f"key must be a PRNG key (jax.random.key(seed)), got {key!r}.")

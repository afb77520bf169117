"""Shared plumbing of the metrics: input checks that explain themselves, and float32-safe sums.

Checks on values (NaN, ranges, sums) run only on concrete arrays, i.e. when a metric is called
eagerly; inside a caller's ``jax.jit`` they cannot raise, and the metrics return NaN instead of a
misleading number where the input has NaN. Checks on shapes always run (shapes are static).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.arrays import is_traced
from jaxrobust.errors import InputError, PrecisionWarning


class InputTypeError(InputError, TypeError):
    """An argument of the wrong kind (e.g. ``higher_is_ood="yes"``): an :class:`InputError`
    that is also the ``TypeError`` it used to be.

    Examples:
        >>> issubclass(InputTypeError, InputError), issubclass(InputTypeError, TypeError)
        (True, True)
    """


def default_float():
    """float32, or float64 when jax's x64 mode is enabled (then no conversion loses digits)."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def score_values(name: str, values, *, axis: int | None = None):
    """Scores validated for a metric: a NumPy array (concrete input) or the tracer.

    Without ``axis`` the scores must be 1-D ``[N]``; with ``axis`` that axis holds the scores
    and is moved last (the other axes are rows of a stack). Refuses empty scores, NaN, and
    non-numeric dtypes (InputError naming the fix). Concrete inputs stay on the host (NumPy) in
    their own dtype, so :func:`warn_if_precision_lost` can see digits the float conversion
    would drop.
    """
    if is_traced(values):
        shape, dtype = values.shape, values.dtype
    else:
        try:
            values = np.asarray(values)
        except (TypeError, ValueError) as err:  # ragged lists
            raise InputError(f"{name} must be a numeric array of scores: {err}") from None
        shape, dtype = values.shape, values.dtype
    if dtype is np.dtype(object) or not (
        jnp.issubdtype(dtype, jnp.floating)
        or jnp.issubdtype(dtype, jnp.integer)
        or dtype == np.bool_
    ):
        raise InputError(f"{name} must be real numbers (float or int), got dtype {dtype}.")
    if axis is None:
        if len(shape) != 1:
            raise InputError(
                f"{name} has shape {tuple(shape)}; detection metrics take 1-D scores [N]. For a "
                "stack of runs [R, N] pass axis=-1 (one value per row) or jax.vmap the metric; "
                "to pool scores on purpose, ravel them yourself."
            )
    else:
        if len(shape) == 0:
            raise InputError(f"{name} is a scalar; pass scores [..., N] with axis= the N axis.")
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise InputTypeError(f"axis must be an int or None, got {axis!r}.")
        if not -len(shape) <= axis < len(shape):
            raise InputError(f"axis {axis} is out of range for {name} of shape {tuple(shape)}.")
        values = (
            jnp.moveaxis(values, axis, -1) if is_traced(values) else np.moveaxis(values, axis, -1)
        )
        shape = values.shape
    if shape[-1] == 0:
        raise InputError(f"{name} is empty; detection metrics need at least one score per side.")
    if not is_traced(values) and jnp.issubdtype(dtype, jnp.floating):
        nan = np.isnan(values)
        bad = int(nan.sum())
        if bad:
            first = tuple(int(i) for i in np.argwhere(nan)[0])
            raise InputError(
                f"{name} has {bad} NaN of {values.size} scores (first at {first}); a score is "
                "undefined for those inputs (check the model or its checkpoint, or drop them "
                "explicitly)."
            )
    return values


def warn_if_precision_lost(what: str, *host_values) -> None:
    """Warn (:class:`PrecisionWarning`) when converting the scores to the metrics' float type
    (float32 unless x64 is enabled) merges distinct values into ties.

    The conversion is monotonic, so it never reverses an order; it can only create ties (int
    scores above 2**24, float64 scores that differ below float32 precision, float64 beyond the
    float32 range), and ties change AUROC, AUPR and FPR. All sides are checked together, since
    a tie between an in- and an out-distribution score matters as much as one within a side.
    """
    target = default_float()
    arrays = [v for v in host_values if isinstance(v, np.ndarray)]
    if all(_exact_in(v.dtype, target) for v in arrays):
        return
    flat = np.concatenate([v.ravel() for v in arrays])
    with np.errstate(over="ignore", invalid="ignore"):
        converted = flat.astype(target)
    distinct, after = np.unique(flat).size, np.unique(converted).size
    if after < distinct:
        warnings.warn(
            f"{what}: converting the {flat.dtype} scores to {target} merges {distinct} distinct "
            f"values into {after}; the new ties change the metric. Enable float64 "
            "(jax.config.update('jax_enable_x64', True)), or shift and rescale the scores "
            "(e.g. subtract their median) so they differ in float32.",
            PrecisionWarning,
            stacklevel=3,
        )


def _exact_in(dtype, target) -> bool:
    """Whether every value of ``dtype`` is exactly representable in the float type ``target``."""
    if dtype == np.bool_:
        return True
    if jnp.issubdtype(dtype, jnp.floating):
        return np.dtype(dtype).itemsize <= np.dtype(target).itemsize
    size = np.dtype(dtype).itemsize  # ints: exact up to 2**24 in float32, 2**53 in float64
    return size <= 2 or (np.dtype(target).itemsize == 8 and size <= 4)


def to_float(values) -> jax.Array:
    """Scores as a jax float array: ints and bools to float32 (float64 with x64), floats kept."""
    target = default_float()
    if isinstance(values, np.ndarray) and not _exact_in(values.dtype, target):
        with np.errstate(over="ignore"):  # float64 beyond the float32 range: +-inf, warned
            values = values.astype(target)
    if not jnp.issubdtype(values.dtype, jnp.floating):
        return jnp.asarray(values, target)
    return jnp.asarray(values)


def as_float_vector(name: str, values) -> jax.Array:
    """A 1-D float array (float32 unless x64 is enabled); raises on empty, NaN or >1-D input,
    warns when the conversion merges distinct values."""
    host = score_values(name, values)
    warn_if_precision_lost(name, host)
    return to_float(host)


def as_labels(name: str, labels, num_examples: int, num_classes: int) -> jax.Array:
    """Integer class labels [N] in [0, num_classes)."""
    if not hasattr(labels, "dtype"):
        try:
            labels = np.asarray(labels)
        except (TypeError, ValueError) as err:
            raise InputError(f"{name} must be an integer array [N]: {err}") from None
    if labels.shape != (num_examples,):
        raise InputError(f"{name} must have shape [N] = [{num_examples}], got {labels.shape}.")
    if labels.dtype == np.bool_ or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise InputError(f"{name} must be integer class indices, got dtype {labels.dtype}.")
    labels = jnp.asarray(labels)
    if not is_traced(labels) and labels.size:
        lo, hi = int(jnp.min(labels)), int(jnp.max(labels))
        if lo < 0 or hi >= num_classes:
            raise InputError(
                f"{name} must lie in [0, {num_classes}) for {num_classes} classes; found values "
                f"in [{lo}, {hi}]."
            )
    return labels


def class_indices(name: str, values, *, non_negative: bool = True) -> jax.Array:
    """Integer class indices (predictions, labels, targets) ``[N]``; refuses float or bool
    dtypes (a float "label" compares equal to nothing useful) and, eagerly, negative values."""
    if not hasattr(values, "dtype"):
        try:
            values = np.asarray(values)
        except (TypeError, ValueError) as err:
            raise InputError(f"{name} must be an integer array [N]: {err}") from None
    if values.dtype == np.bool_ or not jnp.issubdtype(values.dtype, jnp.integer):
        raise InputError(
            f"{name} must be integer class indices, got dtype {values.dtype}; pass "
            f"argmax(logits, axis=-1) or {name}.astype(int)."
        )
    values = jnp.asarray(values)
    if non_negative and not is_traced(values) and values.size and int(jnp.min(values)) < 0:
        first = int(jnp.argmax(values < 0))
        raise InputError(
            f"{name} has negative class indices (first at position {first}: "
            f"{int(values[first])}); map the classes to 0..C-1."
        )
    return values


def as_probabilities(probs, sum_tolerance: float = 1e-3) -> jax.Array:
    """Class probabilities [N, C], C >= 2, each row in [0, 1] and summing to one."""
    if not hasattr(probs, "dtype"):
        try:
            probs = np.asarray(probs)
        except (TypeError, ValueError) as err:
            raise InputError(f"probs must be a float array [N, classes]: {err}") from None
    if probs.dtype == object:
        raise InputError("probs must be a float array [N, classes], got dtype object.")
    probs = jnp.asarray(probs)
    if probs.ndim != 2:
        raise InputError(f"probs must be [N, classes], got shape {probs.shape}.")
    if probs.shape[0] == 0:
        raise InputError("probs is empty (N = 0); calibration needs at least one prediction.")
    if probs.shape[1] < 2:
        raise InputError(
            f"probs has {probs.shape[1]} class column; pass [N, C] with C >= 2 "
            "(for a binary model, stack [1 - p, p])."
        )
    if not jnp.issubdtype(probs.dtype, jnp.floating):
        raise InputError(f"probs must be floating point, got dtype {probs.dtype}.")
    if not is_traced(probs):
        if bool(jnp.any(~jnp.isfinite(probs))):
            raise InputError("probs contains NaN or inf; pass softmax(logits) of finite logits.")
        if float(jnp.min(probs)) < 0.0 or float(jnp.max(probs)) > 1.0 + 1e-6:
            raise InputError(
                "probs must lie in [0, 1]; these look like logits: pass jax.nn.softmax(logits)."
            )
        row_error = jnp.abs(jnp.sum(probs.astype(jnp.float32), axis=1) - 1.0)
        worst = int(jnp.argmax(row_error))
        if float(row_error[worst]) > sum_tolerance:
            raise InputError(
                f"probs rows must sum to one; row {worst} sums to "
                f"{float(jnp.sum(probs[worst])):.6f}. Pass jax.nn.softmax(logits), or normalise "
                "the rows."
            )
    return probs


def check_same_length(**arrays) -> int:
    try:
        shapes = {name: np.shape(a) for name, a in arrays.items()}  # lists too, and tracers
    except ValueError as err:  # ragged lists
        raise InputError(f"Expected 1-D arrays of one length [N]: {err}") from None
    lengths = {s[0] if len(s) == 1 else None for s in shapes.values()}
    if len(lengths) != 1 or None in lengths:
        described = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise InputError(f"Expected 1-D arrays of one length [N]; got {described}.")
    n = lengths.pop()
    if n == 0:
        raise InputError("Empty inputs (N = 0): nothing to classify.")
    return n


def tree_sum(values: jax.Array, axis: int = -1) -> jax.Array:
    """Pairwise (tree) sum along ``axis``: float32 rounding error O(log n * eps), not O(n * eps).

    XLA may sum a long float32 vector sequentially; over 10^6 terms that can lose four digits.
    Halving the axis level by level costs log2(n) small reductions and keeps every partial sum
    over numbers of similar size.
    """
    values = jnp.moveaxis(values, axis, -1)
    while values.shape[-1] > 1:
        if values.shape[-1] % 2:
            values = jnp.concatenate([values, jnp.zeros_like(values[..., :1])], axis=-1)
        values = values[..., 0::2] + values[..., 1::2]
    if values.shape[-1] == 0:
        return jnp.zeros(values.shape[:-1], values.dtype)
    return values[..., 0]


def binned_sums(bins: jax.Array, values: jax.Array, num_bins: int, chunk: int = 1024):
    """``out[b] = sum_{i: bins[i] = b} values[i]``, accumulated in chunks then by a tree sum."""
    n = bins.shape[0]
    num_chunks = max(1, -(-n // chunk))
    pad = num_chunks * chunk - n
    bins = jnp.pad(bins, (0, pad)).reshape(num_chunks, chunk)
    values = jnp.pad(values, (0, pad)).reshape(num_chunks, chunk)
    per_chunk = jax.vmap(lambda b, v: jax.ops.segment_sum(v, b, num_segments=num_bins))(
        bins, values
    )
    return tree_sum(per_chunk, axis=0)


def static_count_at_least(fraction: float, total: int) -> int:
    """Smallest k with k / total >= fraction, evaluated in float64 as scikit-learn compares."""
    k = int(np.ceil(fraction * total))
    while k > 0 and (k - 1) / total >= fraction:
        k -= 1
    while k / total < fraction:
        k += 1
    return k

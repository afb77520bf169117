"""Shared plumbing of the metrics: input checks that explain themselves, and float32-safe sums.

Checks on values (NaN, ranges, sums) run only on concrete arrays, i.e. when a metric is called
eagerly; inside a caller's ``jax.jit`` they cannot raise, and the metrics return NaN instead of a
misleading number where the input has NaN. Checks on shapes always run (shapes are static).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.arrays import is_traced


def as_float_vector(name: str, values) -> jax.Array:
    """A 1-D float array (float32 unless x64 is enabled); raises on empty or NaN input."""
    values = jnp.asarray(values)
    if not jnp.issubdtype(values.dtype, jnp.floating):
        values = values.astype(jnp.float32)
    values = jnp.ravel(values)
    if values.size == 0:
        raise ValueError(f"{name} is empty; detection metrics need at least one score per side.")
    if not is_traced(values):
        bad = int(jnp.sum(jnp.isnan(values)))
        if bad:
            raise ValueError(
                f"{name} has {bad} NaN of {values.size} scores; a score is undefined for those "
                "inputs (check the model or its checkpoint, or drop them explicitly)."
            )
    return values


def as_labels(name: str, labels, num_examples: int, num_classes: int) -> jax.Array:
    """Integer class labels [N] in [0, num_classes)."""
    labels = jnp.asarray(labels)
    if labels.shape != (num_examples,):
        raise ValueError(f"{name} must have shape [N] = [{num_examples}], got {labels.shape}.")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"{name} must be integer class indices, got dtype {labels.dtype}.")
    if not is_traced(labels) and labels.size:
        lo, hi = int(jnp.min(labels)), int(jnp.max(labels))
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{name} must lie in [0, {num_classes}) for {num_classes} classes; found values "
                f"in [{lo}, {hi}]."
            )
    return labels


def as_probabilities(probs, sum_tolerance: float = 1e-3) -> jax.Array:
    """Class probabilities [N, C], C >= 2, each row in [0, 1] and summing to one."""
    probs = jnp.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(f"probs must be [N, classes], got shape {probs.shape}.")
    if probs.shape[0] == 0:
        raise ValueError("probs is empty (N = 0); calibration needs at least one prediction.")
    if probs.shape[1] < 2:
        raise ValueError(
            f"probs has {probs.shape[1]} class column; pass [N, C] with C >= 2 "
            "(for a binary model, stack [1 - p, p])."
        )
    if not jnp.issubdtype(probs.dtype, jnp.floating):
        raise ValueError(f"probs must be floating point, got dtype {probs.dtype}.")
    if not is_traced(probs):
        if bool(jnp.any(~jnp.isfinite(probs))):
            raise ValueError("probs contains NaN or inf; pass softmax(logits) of finite logits.")
        if float(jnp.min(probs)) < 0.0 or float(jnp.max(probs)) > 1.0 + 1e-6:
            raise ValueError(
                "probs must lie in [0, 1]; these look like logits: pass jax.nn.softmax(logits)."
            )
        row_error = jnp.abs(jnp.sum(probs.astype(jnp.float32), axis=1) - 1.0)
        worst = int(jnp.argmax(row_error))
        if float(row_error[worst]) > sum_tolerance:
            raise ValueError(
                f"probs rows must sum to one; row {worst} sums to "
                f"{float(jnp.sum(probs[worst])):.6f}. Pass jax.nn.softmax(logits), or normalise "
                "the rows."
            )
    return probs


def check_same_length(**arrays) -> int:
    shapes = {name: np.shape(a) for name, a in arrays.items()}  # lists too, and tracers
    lengths = {s[0] if len(s) == 1 else None for s in shapes.values()}
    if len(lengths) != 1 or None in lengths:
        described = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise ValueError(f"Expected 1-D arrays of one length [N]; got {described}.")
    n = lengths.pop()
    if n == 0:
        raise ValueError("Empty inputs (N = 0): nothing to classify.")
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

"""Calibration of classifiers: ECE (top-label, classwise; equal-width, equal-mass bins), MCE,
Brier score, NLL and reliability-diagram data.

ECE (Naeini et al. 2015; hybrid-models thesis, seed 000, eq. 4.1) with M bins B_m:
    ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)| = sum_m |sum_{i in B_m} (c_i - h_i)| / n,
top-label: c_i = max_k p_ik, h_i = 1[argmax_k p_ik = y_i]. Classwise ECE (Kull et al. 2019) is
the mean over classes k of the same quantity with c_i = p_ik, h_i = 1[y_i = k]. MCE is the
largest |acc(B_m) - conf(B_m)| over non-empty bins (Naeini et al. 2015).

Bins: ``"equal_width"`` B_m = ((m-1)/M, m/M] (eq. 4.1; confidence 0 falls in the first bin);
``"equal_mass"`` splits the sorted confidences into M groups of sizes differing by at most one
(the first n mod M groups one larger) with bin edges halfway between neighbouring groups, and
M = n when n < M. This is the binning of Kumar et al. 2019 (``uncertainty-calibration``, the
reference the tests compare against); ties on an edge fall into the lower bin.

Per-bin sums are accumulated in chunks and summed pairwise in float32. All functions are
jitted; value checks (NaN, rows that do not sum to one, labels out of range) run when called
eagerly.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.errors import InputError
from jaxrobust.metrics._arrays import as_labels, as_probabilities, binned_sums, tree_sum

BINNINGS = ("equal_width", "equal_mass")
MODES = ("top_label", "classwise")


def _check_options(num_bins: int, binning: str, mode: str = "top_label") -> None:
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise InputError(f"num_bins must be a positive integer, got {num_bins!r}.")
    if not isinstance(binning, str) or binning not in BINNINGS:
        raise InputError(f"binning must be one of {BINNINGS}, got {binning!r}.")
    if not isinstance(mode, str) or mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}.")


def _validated(probs, labels):
    probs = as_probabilities(probs)
    labels = as_labels("labels", labels, probs.shape[0], probs.shape[1])
    return probs.astype(jnp.promote_types(probs.dtype, jnp.float32)), labels


def _upper_edges(confidence: jax.Array, num_bins: int, binning: str) -> jax.Array:
    """Upper bin edges [M'] (the last is 1); M' = min(M, n) for equal-mass bins."""
    if binning == "equal_width":
        # Edges m/M rounded down to the float type, so that c <= edge <=> c <= m/M exactly
        # (rounding up would move a confidence equal to float32(m/M) > m/M into bin m).
        exact = np.arange(1, num_bins + 1) / num_bins
        dtype = np.dtype(confidence.dtype)
        edges = exact.astype(dtype)
        edges = np.where(
            edges.astype(np.float64) > exact, np.nextafter(edges, dtype.type(0)), edges
        )
        return jnp.asarray(edges, dtype)
    n = confidence.shape[0]
    num_bins = min(num_bins, n)
    sizes = np.full(num_bins, n // num_bins) + (np.arange(num_bins) < n % num_bins)
    ends = np.cumsum(sizes)[:-1]  # first index of groups 1..M-1
    ordered = jnp.sort(confidence)
    middles = (ordered[ends - 1] + ordered[ends]) / 2.0
    return jnp.concatenate([middles, jnp.ones(1, confidence.dtype)])


def _bin_statistics(confidence, hit, num_bins: int, binning: str) -> dict[str, jax.Array]:
    """Per-bin count, sum of confidences and sum of hits, with the bin edges."""
    upper = _upper_edges(confidence, num_bins, binning)
    m = upper.shape[0]
    index = jnp.clip(jnp.searchsorted(upper, confidence, side="left"), 0, m - 1)
    return {
        "count": binned_sums(index, jnp.ones_like(confidence), m),
        "sum_confidence": binned_sums(index, confidence, m),
        "sum_hit": binned_sums(index, hit, m),
        "upper": upper,
    }


def _ece_1d(confidence, hit, num_bins, binning):
    stats = _bin_statistics(confidence, hit, num_bins, binning)
    gaps = jnp.abs(stats["sum_confidence"] - stats["sum_hit"])
    return tree_sum(gaps) / confidence.shape[0]


def _mce_1d(confidence, hit, num_bins, binning):
    stats = _bin_statistics(confidence, hit, num_bins, binning)
    count = stats["count"]
    gaps = jnp.abs(stats["sum_confidence"] - stats["sum_hit"]) / jnp.maximum(count, 1.0)
    return jnp.max(jnp.where(count > 0, gaps, 0.0))


def _top_label(probs, labels):
    confidence = jnp.max(probs, axis=-1)
    hit = (jnp.argmax(probs, axis=-1) == labels).astype(probs.dtype)
    return confidence, hit


def _per_class(probs, labels):
    """[C, N] confidences p_ik and hits 1[y_i = k]."""
    hits = jax.nn.one_hot(labels, probs.shape[1], dtype=probs.dtype)
    return probs.T, hits.T


@functools.partial(jax.jit, static_argnames=("num_bins", "binning", "mode", "maximum"))
def _calibration_error_jit(probs, labels, num_bins, binning, mode, maximum):
    one_dimensional = _mce_1d if maximum else _ece_1d
    if mode == "top_label":
        return one_dimensional(*_top_label(probs, labels), num_bins, binning)
    per_class = jax.vmap(lambda c, h: one_dimensional(c, h, num_bins, binning))
    return jnp.mean(per_class(*_per_class(probs, labels)))


def _calibration_error(probs, labels, num_bins, binning, mode, maximum: bool) -> jax.Array:
    _check_options(num_bins, binning, mode)
    probs, labels = _validated(probs, labels)
    return _calibration_error_jit(
        probs, labels, num_bins=int(num_bins), binning=binning, mode=mode, maximum=maximum
    )


def expected_calibration_error(
    probs,
    labels,
    num_bins: int = 15,
    *,
    binning: str = "equal_width",
    mode: str = "top_label",
) -> jax.Array:
    """ECE in [0, 1]; default top-label with 15 equal-width bins, as the hybrid-models thesis.

    Examples:
        Confidences 0.9, 0.7, 0.7, 0.9 with hits 1, 0, 1, 1: the bin (0.8, 1] is off by
        |1.8 - 2| and the bin (0.6, 0.8] by |1.4 - 1|, so ECE = (0.2 + 0.4) / 4.

        >>> probs = [[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.1, 0.9]]
        >>> labels = [0, 1, 1, 1]
        >>> round(float(expected_calibration_error(probs, labels, num_bins=5)), 4)
        0.15

        Classwise: class 0 has p = 0.9, 0.7, 0.3, 0.1 with hits 1, 0, 0, 0, each in its own
        bin, so its ECE is (0.1 + 0.7 + 0.3 + 0.1) / 4; class 1 mirrors it (equal-mass bins:
        see :func:`calibration_summary`).

        >>> round(float(expected_calibration_error(probs, labels, 5, mode="classwise")), 4)
        0.3
    """
    return _calibration_error(probs, labels, num_bins, binning, mode, maximum=False)


def maximum_calibration_error(
    probs,
    labels,
    num_bins: int = 15,
    *,
    binning: str = "equal_width",
    mode: str = "top_label",
) -> jax.Array:
    """MCE: the largest |acc - conf| over non-empty bins (classwise: mean over classes).

    Examples:
        The bins of :func:`expected_calibration_error`'s example: |1 - 0.9| and |0.5 - 0.7|.

        >>> probs = [[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.1, 0.9]]
        >>> round(float(maximum_calibration_error(probs, [0, 1, 1, 1], num_bins=5)), 4)
        0.2
    """
    return _calibration_error(probs, labels, num_bins, binning, mode, maximum=True)


@functools.partial(jax.jit, static_argnames=("num_bins", "binning"))
def _reliability_jit(probs, labels, num_bins, binning):
    confidence, hit = _top_label(probs, labels)
    stats = _bin_statistics(confidence, hit, num_bins, binning)
    count = stats["count"]
    safe = jnp.maximum(count, 1.0)
    edges = jnp.concatenate([jnp.zeros(1, probs.dtype), stats["upper"]])
    return {
        "count": count,
        "confidence": stats["sum_confidence"] / safe,
        "accuracy": stats["sum_hit"] / safe,
        "edges": edges,
    }


def reliability_bins(
    probs, labels, num_bins: int = 15, *, binning: str = "equal_width"
) -> dict[str, jax.Array]:
    """Top-label reliability-diagram data: per-bin ``count``, mean ``confidence``, ``accuracy``
    (0 in empty bins) and the bin ``edges`` [M + 1].

    Examples:
        >>> import numpy as np
        >>> probs = [[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.1, 0.9]]
        >>> bins = reliability_bins(probs, [0, 1, 1, 1], num_bins=5)
        >>> {k: np.round(np.asarray(v, float), 4).tolist() for k, v in sorted(bins.items())}
        {'accuracy': [0.0, 0.0, 0.0, 0.5, 1.0],
         'confidence': [0.0, 0.0, 0.0, 0.7, 0.9],
         'count': [0.0, 0.0, 0.0, 2.0, 2.0],
         'edges': [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]}
    """
    _check_options(num_bins, binning)
    probs, labels = _validated(probs, labels)
    return _reliability_jit(probs, labels, num_bins=int(num_bins), binning=binning)


@jax.jit
def _brier_jit(probs, labels):
    targets = jax.nn.one_hot(labels, probs.shape[1], dtype=probs.dtype)
    return tree_sum(jnp.sum((probs - targets) ** 2, axis=1)) / probs.shape[0]


def brier_score(probs, labels) -> jax.Array:
    """Multi-class Brier score (Brier 1950): mean_i sum_k (p_ik - 1[y_i = k])^2, in [0, 2].

    Examples:
        >>> probs = [[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.1, 0.9]]
        >>> round(float(brier_score(probs, [0, 1, 1, 1])), 4)  # (0.02 + 0.98 + 0.18 + 0.02) / 4
        0.3
    """
    return _brier_jit(*_validated(probs, labels))


@jax.jit
def _nll_jit(probs, labels):
    p_true = jnp.take_along_axis(probs, labels[:, None], axis=1)[:, 0]
    tiny = jnp.finfo(probs.dtype).tiny
    return tree_sum(-jnp.log(jnp.maximum(p_true, tiny))) / probs.shape[0]


def negative_log_likelihood(probs, labels) -> jax.Array:
    """Mean -log p(y_i | x_i) in nats (probabilities below the float's tiny are clipped to it).

    Examples:
        >>> import math
        >>> probs = [[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.1, 0.9]]
        >>> round(float(negative_log_likelihood(probs, [0, 1, 1, 1])), 4)
        0.4428
        >>> round(-(2 * math.log(0.9) + math.log(0.3) + math.log(0.7)) / 4, 4)
        0.4428
    """
    return _nll_jit(*_validated(probs, labels))


@functools.partial(jax.jit, static_argnames="num_bins")
def _summary_jit(probs, labels, num_bins):
    top = _top_label(probs, labels)
    per_class = _per_class(probs, labels)

    def classwise(fn, binning):
        return jnp.mean(jax.vmap(lambda c, h: fn(c, h, num_bins, binning))(*per_class))

    return {
        "accuracy": tree_sum(top[1]) / probs.shape[0],
        "ece": _ece_1d(*top, num_bins, "equal_width"),
        "ece_equal_mass": _ece_1d(*top, num_bins, "equal_mass"),
        "classwise_ece": classwise(_ece_1d, "equal_width"),
        "classwise_ece_equal_mass": classwise(_ece_1d, "equal_mass"),
        "mce": _mce_1d(*top, num_bins, "equal_width"),
        "brier": _brier_jit(probs, labels),
        "nll": _nll_jit(probs, labels),
    }


def calibration_summary(probs, labels, num_bins: int = 15) -> dict[str, jax.Array]:
    """Accuracy, ECE (top-label and classwise, equal-width and equal-mass), MCE, Brier, NLL.

    Examples:
        The values of the single-metric examples (:func:`expected_calibration_error`, ...):

        >>> probs = [[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.1, 0.9]]
        >>> summary = calibration_summary(probs, [0, 1, 1, 1], num_bins=5)
        >>> {k: round(float(v), 4) for k, v in sorted(summary.items())}
        {'accuracy': 0.75, 'brier': 0.3, 'classwise_ece': 0.3, 'classwise_ece_equal_mass': 0.3,
         'ece': 0.15, 'ece_equal_mass': 0.15, 'mce': 0.2, 'nll': 0.4428}
    """
    _check_options(num_bins, "equal_width")
    probs, labels = _validated(probs, labels)
    return _summary_jit(probs, labels, num_bins=int(num_bins))

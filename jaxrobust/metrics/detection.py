"""OOD detection metrics from ``(scores_in, scores_out)`` with a declared direction.

Every function takes the scores of in-distribution and out-of-distribution inputs and
``higher_is_ood`` (False: a larger score means "more in-distribution"; True: "more OOD").
``positive`` says which side is the positive class of the binary problem, ``"in"`` or ``"out"``;
AUROC does not depend on it, AUPR and FPR@TPR do. Nothing is guessed.

Definitions follow scikit-learn, ties included (one curve point per distinct score). Each side
is sorted once, as integer keys with the order of the floats, and every count "how many
positives / negatives score at least s" is a binary search in those sorted keys.
- AUROC = P(s_pos > s_neg) + P(s_pos = s_neg) / 2, the area under the ROC curve with ties as
  diagonal segments (``roc_auc_score``).
- AUPR = average precision = sum_i (R_i - R_{i-1}) P_i over thresholds i
  (``average_precision_score``).
- FPR@TPR t = FPR at the first threshold, from the top, with TPR >= t, i.e. at the most
  stringent threshold that passes a fraction t of the positives (``fpr[argmax(tpr >= t)]`` of
  ``roc_curve(..., drop_intermediate=False)``; FPR80 and FPR95 in the documents). scikit-learn's
  default ``drop_intermediate=True`` drops ROC points collinear with their neighbours, which can
  drop that threshold and report the FPR of a later one; with continuous scores the two agree
  (they do on every number of the Chapter-3 tables).

Counts are int32 (exact up to 2^31 inputs), sums are pairwise in float32, so 10^6 scores give
the same digits as scikit-learn's float64. Scores are compared in float32 (float64 and int
inputs are converted unless x64 is enabled), and XLA flushes float32 subnormals
(|s| < 1.2e-38) to zero, so those tie with 0. All functions but :func:`roc_curve` are jitted;
inside a caller's jit they are inlined, and NaN scores make the result NaN instead of raising.

Input checks (:class:`~jaxrobust.errors.InputError`, eagerly): scores must be 1-D ``[N]``
(a stack ``[R, N]`` is refused rather than silently pooled; pass ``axis=`` for one value per
row, vmapped), non-empty, numeric and without NaN (inf is a valid score). Precision: when the
conversion to float32 merges distinct scores into ties (int scores above 2**24, float64 scores
that differ below float32 precision), the metrics *warn* with
:class:`~jaxrobust.errors.PrecisionWarning` and compute on the converted scores (the ties are
counted as ties); with x64 enabled nothing is converted. ``detection_summary`` refuses two
TPRs that round to the same key.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.arrays import is_traced
from jaxrobust.errors import InputError
from jaxrobust.metrics._arrays import (
    InputTypeError,
    as_float_vector,
    score_values,
    static_count_at_least,
    to_float,
    tree_sum,
    warn_if_precision_lost,
)

POSITIVE_SIDES = ("in", "out")


def _oriented(scores_in, scores_out, higher_is_ood: bool, axis: int | None = None):
    """Validated scores, both flipped so that larger means "more in-distribution".

    With ``axis``, the score axis is moved last and the other axes must agree between the two
    sides (rows of a stack, one metric value each).
    """
    if not isinstance(higher_is_ood, (bool, np.bool_)):
        raise InputTypeError(f"higher_is_ood must be True or False, got {higher_is_ood!r}.")
    scores_in = score_values("scores_in", scores_in, axis=axis)
    scores_out = score_values("scores_out", scores_out, axis=axis)
    if scores_in.shape[:-1] != scores_out.shape[:-1]:
        raise InputError(
            f"scores_in {tuple(scores_in.shape)} and scores_out {tuple(scores_out.shape)} have "
            f"different row shapes {tuple(scores_in.shape[:-1])} and "
            f"{tuple(scores_out.shape[:-1])} around the score axis {axis}; stacks must have the "
            "same rows on both sides."
        )
    warn_if_precision_lost("scores_in and scores_out", scores_in, scores_out)
    scores_in, scores_out = to_float(scores_in), to_float(scores_out)
    if higher_is_ood:
        return -scores_in, -scores_out
    return scores_in, scores_out


def _per_row(fn, in_high, out_low, axis: int | None):
    """``fn(in_high, out_low)``; with ``axis``, vmapped over the rows of the stacks."""
    if axis is None:
        return fn(in_high, out_low)
    rows = in_high.shape[:-1]
    flat_in = in_high.reshape((-1, in_high.shape[-1]))
    flat_out = out_low.reshape((-1, out_low.shape[-1]))
    values = jax.vmap(fn)(flat_in, flat_out)
    return jax.tree_util.tree_map(lambda v: v.reshape(rows + v.shape[1:]), values)


def _check_positive(positive: str) -> None:
    if not isinstance(positive, str) or positive not in POSITIVE_SIDES:
        raise InputError(f"positive must be 'in' or 'out', got {positive!r}.")


def _order_keys(scores: jax.Array) -> jax.Array:
    """Integers with the order of the float scores (-0.0 and +0.0 equal): x <= y <=> k(x) <= k(y).

    XLA:CPU sorts integers about 5x faster than floats (whose comparator handles NaN), and
    ``~k`` reverses the order exactly, so one ascending sort per side serves both positives.
    """
    if scores.dtype not in (jnp.float32, jnp.float64):
        scores = scores.astype(jnp.float32)
    int_type = jnp.int64 if scores.dtype == jnp.float64 else jnp.int32
    magnitude = np.iinfo(int_type).max
    scores = jnp.where(scores == 0, jnp.zeros_like(scores), scores)
    bits = jax.lax.bitcast_convert_type(scores, int_type)
    return jnp.where(bits < 0, bits ^ int_type(magnitude), bits)


class _Sides(NamedTuple):
    """Keys of the positive and negative class, each sorted ascending (larger = more positive)."""

    pos: jax.Array
    neg: jax.Array


def _sides(in_high, out_low) -> dict[str, _Sides]:
    """Both choices of positive class from one sort per side."""
    keys_in = jnp.sort(_order_keys(in_high))
    keys_out = jnp.sort(_order_keys(out_low))
    # Out positive: rank by the negated score; ~k reverses the order, so reverse the arrays.
    return {"in": _Sides(keys_in, keys_out), "out": _Sides(~keys_out[::-1], ~keys_in[::-1])}


def _count_below(sorted_keys, queries):
    return jnp.searchsorted(sorted_keys, queries, side="left").astype(jnp.int32)


def _count_at_most(sorted_keys, queries):
    return jnp.searchsorted(sorted_keys, queries, side="right").astype(jnp.int32)


def _auroc(s: _Sides) -> jax.Array:
    """Mean over positives of (#neg below + #neg tied / 2) / N."""
    wins = (_count_below(s.neg, s.pos) + _count_at_most(s.neg, s.pos)).astype(jnp.float32)
    return tree_sum(wins / (2.0 * s.neg.shape[0])) / s.pos.shape[0]


def _average_precision(s: _Sides) -> jax.Array:
    """(1/P) sum over positives of the precision at the threshold equal to their score.

    The recall step at a threshold is (#positives with that score) / P, and only thresholds
    holding a positive have one, so sum_i (R_i - R_{i-1}) P_i is this mean over positives.
    """
    num_pos, num_neg = s.pos.shape[0], s.neg.shape[0]
    true_pos = num_pos - _count_below(s.pos, s.pos)
    false_pos = num_neg - _count_below(s.neg, s.pos)
    precision = true_pos.astype(jnp.float32) / (true_pos + false_pos).astype(jnp.float32)
    return tree_sum(precision) / num_pos


def _fpr_at_tpr(s: _Sides, tpr: float) -> jax.Array:
    """FPR at the threshold v_k = the k-th largest positive, k = min{k: k / P >= tpr}.

    Thresholds above v_k pass fewer than k positives; at v_k at least k pass (ties included).
    """
    num_pos, num_neg = s.pos.shape[0], s.neg.shape[0]
    needed = static_count_at_least(tpr, num_pos)
    if needed == 0:
        return jnp.float32(0.0)
    threshold = s.pos[num_pos - needed]
    false_pos = num_neg - _count_below(s.neg, threshold)
    return false_pos.astype(jnp.float32) / num_neg


def _nan_if_any(value, *arrays):
    has_nan = functools.reduce(jnp.logical_or, [jnp.any(jnp.isnan(a)) for a in arrays])
    return jnp.where(has_nan, jnp.nan, value)


def _check_tpr(tpr: float) -> float:
    if isinstance(tpr, (bool, np.bool_)) or not isinstance(tpr, (int, float, np.number)):
        raise InputError(f"tpr must be a number in [0, 1] (e.g. 0.95 for FPR95), got {tpr!r}.")
    tpr = float(tpr)
    if not 0.0 <= tpr <= 1.0:
        raise InputError(f"tpr must lie in [0, 1] (e.g. 0.95 for FPR95), got {tpr}.")
    return tpr


def _fpr_key(tpr: float) -> str:
    return f"fpr{round(100 * tpr):d}"


def _check_tprs(tprs) -> tuple[float, ...]:
    """The TPRs of :func:`detection_summary`; two that give the same key are refused."""
    if isinstance(tprs, (str, bytes)) or not hasattr(tprs, "__iter__"):
        raise InputError(
            f"tprs must be a sequence of TPRs in [0, 1], e.g. (0.8, 0.95); got {tprs!r}."
        )
    tprs = tuple(_check_tpr(t) for t in tprs)
    seen: dict[str, float] = {}
    for tpr in tprs:
        key = _fpr_key(tpr)
        if key in seen:
            raise InputError(
                f"tprs {seen[key]} and {tpr} both give the key {key!r} (keys are "
                "round(100 * tpr)), so one would be dropped; pass TPRs that differ in whole "
                "percent, or call fpr_at_tpr for each."
            )
        seen[key] = tpr
    return tprs


@jax.jit
def _auroc_jit(in_high, out_low):
    return _nan_if_any(_auroc(_sides(in_high, out_low)["in"]), in_high, out_low)


@functools.partial(jax.jit, static_argnames="positive")
def _average_precision_jit(in_high, out_low, positive):
    return _nan_if_any(_average_precision(_sides(in_high, out_low)[positive]), in_high, out_low)


@functools.partial(jax.jit, static_argnames=("positive", "tpr"))
def _fpr_at_tpr_jit(in_high, out_low, positive, tpr):
    return _nan_if_any(_fpr_at_tpr(_sides(in_high, out_low)[positive], tpr), in_high, out_low)


@functools.partial(jax.jit, static_argnames=("positive", "tprs"))
def _summary_jit(in_high, out_low, positive, tprs):
    sides = _sides(in_high, out_low)
    values = {
        "auroc": _auroc(sides["in"]),
        "aupr_in": _average_precision(sides["in"]),
        "aupr_out": _average_precision(sides["out"]),
    }
    for tpr in tprs:
        values[_fpr_key(tpr)] = _fpr_at_tpr(sides[positive], tpr)
    return {k: _nan_if_any(v, in_high, out_low) for k, v in values.items()}


def auroc(scores_in, scores_out, *, higher_is_ood: bool, axis: int | None = None) -> jax.Array:
    """Area under the ROC curve: P(s_in ranks above s_out) + 1/2 P(tie).

    Scores are 1-D ``[N_in]`` and ``[N_out]``; for stacks (``[R, N]``, one row per run) pass
    ``axis`` (the score axis; the other axes are rows, equal on both sides) to get one AUROC
    per row, ``[R]``.

    Examples:
        Five of the six (in, out) pairs are ranked correctly:

        >>> round(float(auroc([0.9, 0.8, 0.4], [0.5, 0.1], higher_is_ood=False)), 4)
        0.8333
        >>> round(float(auroc([0.9, 0.8, 0.4], [0.5, 0.1], higher_is_ood=True)), 4)  # 1/6
        0.1667

        A tie counts one half: 3 * (1/2 + 1) / 6 pairs.

        >>> float(auroc([1.0, 1.0, 1.0], [1.0, 0.0], higher_is_ood=False))
        0.75

        Two runs stacked ``[R, N]``: one value per row with ``axis=-1`` (without it, stacks
        are refused rather than pooled):

        >>> auroc([[0.9, 0.8], [0.1, 0.2]], [[0.5], [0.5]], higher_is_ood=False, axis=-1)
        Array([1., 0.], dtype=float32)
    """
    return _per_row(_auroc_jit, *_oriented(scores_in, scores_out, higher_is_ood, axis), axis)


def average_precision(
    scores_in, scores_out, *, higher_is_ood: bool, positive: str = "in", axis: int | None = None
) -> jax.Array:
    """AUPR = average precision sum_i (R_i - R_{i-1}) P_i; ``positive`` is the positive class.

    1-D scores, or stacks with ``axis`` as in :func:`auroc`.

    Examples:
        Ranked from the top: in (3), out (2), in (1). With in positive, recall steps by 1/2 at
        precisions 1 and 2/3; with out positive (ranked from the bottom: in, out, in), by 1 at
        precision 1/2.

        >>> ap = average_precision([3.0, 1.0], [2.0], higher_is_ood=False)
        >>> round(float(ap), 4)  # 1/2 * 1 + 1/2 * 2/3
        0.8333
        >>> float(average_precision([3.0, 1.0], [2.0], higher_is_ood=False, positive="out"))
        0.5
    """
    _check_positive(positive)
    fn = functools.partial(_average_precision_jit, positive=positive)
    return _per_row(fn, *_oriented(scores_in, scores_out, higher_is_ood, axis), axis)


def fpr_at_tpr(
    scores_in,
    scores_out,
    *,
    higher_is_ood: bool,
    tpr: float = 0.95,
    positive: str = "in",
    axis: int | None = None,
) -> jax.Array:
    """False-positive rate at the first threshold (from the top) whose TPR reaches ``tpr``.

    1-D scores, or stacks with ``axis`` as in :func:`auroc`.

    Examples:
        Half the positives pass the threshold 3, which also passes one of three negatives
        (3.5); all of them pass 1, which passes two negatives.

        >>> scores_in, scores_out = [4.0, 3.0, 2.0, 1.0], [3.5, 1.5, 0.0]
        >>> round(float(fpr_at_tpr(scores_in, scores_out, higher_is_ood=False, tpr=0.5)), 4)
        0.3333
        >>> round(float(fpr_at_tpr(scores_in, scores_out, higher_is_ood=False)), 4)  # FPR95
        0.6667
    """
    _check_positive(positive)
    fn = functools.partial(_fpr_at_tpr_jit, positive=positive, tpr=_check_tpr(tpr))
    return _per_row(fn, *_oriented(scores_in, scores_out, higher_is_ood, axis), axis)


def detection_summary(
    scores_in,
    scores_out,
    *,
    higher_is_ood: bool,
    positive: str = "in",
    tprs: tuple[float, ...] = (0.8, 0.95),
    axis: int | None = None,
) -> dict[str, jax.Array]:
    """AUROC, AUPR with each side positive, and FPR at each TPR in ``tprs``, from one sort.

    Returns ``{"auroc", "aupr_in", "aupr_out", "fpr80", "fpr95"}`` (FPR keys are
    ``round(100 * tpr)``; two TPRs with the same key, e.g. 0.95 and 0.951, raise
    ``InputError``; FPR uses ``positive`` as the positive class). Fractions in [0, 1]. 1-D
    scores, or stacks with ``axis`` as in :func:`auroc` (then every value is per row).

    Examples:
        The same numbers as :func:`auroc`, :func:`average_precision` and :func:`fpr_at_tpr`:

        >>> summary = detection_summary([3.0, 1.0], [2.0], higher_is_ood=False, tprs=(0.5, 1.0))
        >>> {k: round(float(v), 4) for k, v in summary.items()}
        {'aupr_in': 0.8333, 'aupr_out': 0.5, 'auroc': 0.5, 'fpr100': 1.0, 'fpr50': 0.0}
    """
    _check_positive(positive)
    fn = functools.partial(_summary_jit, positive=positive, tprs=_check_tprs(tprs))
    return _per_row(fn, *_oriented(scores_in, scores_out, higher_is_ood, axis), axis)


def roc_curve(
    scores_in, scores_out, *, higher_is_ood: bool, positive: str = "in"
) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` at every distinct threshold, from (0, 0) to (1, 1); for plots (NumPy).

    Examples:
        Thresholds 3, 2, 1 pass the positives {3}, {3}, {3, 1} and the negatives {}, {2}, {2}:

        >>> fpr, tpr = roc_curve([3.0, 1.0], [2.0], higher_is_ood=False)
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0])
    """
    _check_positive(positive)
    in_high, out_low = _oriented(scores_in, scores_out, higher_is_ood)
    keys_in = np.asarray(_order_keys(in_high))
    keys_out = np.asarray(_order_keys(out_low))
    if positive == "in":
        pos, neg = keys_in, keys_out
    else:
        pos, neg = ~keys_out, ~keys_in
    pos, neg = np.sort(pos), np.sort(neg)
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    tp = pos.size - np.searchsorted(pos, thresholds, side="left")
    fp = neg.size - np.searchsorted(neg, thresholds, side="left")
    return np.r_[0.0, fp / neg.size], np.r_[0.0, tp / pos.size]


class DetectionAtThreshold(NamedTuple):
    """Rates of inputs flagged as OOD by one fixed threshold.

    Examples:
        Three of the four OOD scores and two of the five in-distribution ones lie below 2.5:

        >>> s_in, s_out = [5.0, 4.0, 3.0, 2.0, 1.0], [0.0, 1.0, 2.0, 6.0]
        >>> rates = detection_at_threshold(s_in, s_out, higher_is_ood=False, threshold=2.5)
        >>> {name: round(float(rate), 4) for name, rate in rates._asdict().items()}
        {'detection_rate': 0.75, 'false_alarm_rate': 0.4}
    """

    detection_rate: jax.Array  # fraction of OOD inputs flagged (the SDIM paper's detection rate)
    false_alarm_rate: jax.Array  # fraction of in-distribution inputs flagged


def detection_at_threshold(
    scores_in, scores_out, *, higher_is_ood: bool, threshold
) -> DetectionAtThreshold:
    """Flag an input as OOD when its score is on the OOD side of ``threshold`` (strictly).

    With ``higher_is_ood=False`` an input is flagged when ``score < threshold`` (the SDIM rule:
    reject when log p(x|c) < delta_c); with ``higher_is_ood=True`` when ``score > threshold``.

    Examples:
        Below 2.5 lie three of the four OOD scores and two of the five in-distribution ones:

        >>> scores_in, scores_out = [5.0, 4.0, 3.0, 2.0, 1.0], [0.0, 1.0, 2.0, 6.0]
        >>> rates = detection_at_threshold(
        ...     scores_in, scores_out, higher_is_ood=False, threshold=2.5
        ... )
        >>> round(float(rates.detection_rate), 4), round(float(rates.false_alarm_rate), 4)
        (0.75, 0.4)
    """
    in_high, out_low = _oriented(scores_in, scores_out, higher_is_ood)
    if not hasattr(threshold, "dtype") and not isinstance(threshold, (int, float, np.number)):
        raise InputError(f"threshold must be a number, got {threshold!r}.")
    if isinstance(threshold, bool) or not (jnp.issubdtype(jnp.result_type(threshold), jnp.number)):
        raise InputError(f"threshold must be a number, got {threshold!r}.")
    threshold = jnp.asarray(threshold, in_high.dtype)
    if threshold.ndim:
        raise InputError(f"threshold must be a scalar, got shape {threshold.shape}.")
    if not is_traced(threshold) and bool(jnp.isnan(threshold)):
        raise InputError("threshold is NaN: it would flag nothing; pass a number.")
    oriented_threshold = -threshold if higher_is_ood else threshold
    return _at_threshold_jit(in_high, out_low, oriented_threshold)


@jax.jit
def _at_threshold_jit(in_high, out_low, threshold):
    def rate(scores):
        flagged = jnp.sum(scores < threshold, dtype=jnp.int32)
        return _nan_if_any(flagged.astype(jnp.float32) / scores.shape[0], scores)

    return DetectionAtThreshold(rate(out_low), rate(in_high))


def threshold_from_percentile(scores_in, *, higher_is_ood: bool, percentile: float) -> jax.Array:
    """Threshold that flags ``percentile`` % of the in-distribution scores (linear interpolation).

    The SDIM paper's delta: the 1st or 2nd percentile of in-distribution log-likelihoods
    (``higher_is_ood=False``); for a score where larger means OOD, the (100 - p)-th percentile.

    Examples:
        >>> import numpy as np
        >>> scores_in = np.arange(101.0)  # 0, 1, ..., 100
        >>> float(threshold_from_percentile(scores_in, higher_is_ood=False, percentile=2))
        2.0
        >>> float(threshold_from_percentile(scores_in, higher_is_ood=True, percentile=2))
        98.0
    """
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.number)):
        raise InputError(f"percentile must be a number in [0, 100], got {percentile!r}.")
    if not 0.0 <= percentile <= 100.0:
        raise InputError(f"percentile must lie in [0, 100], got {percentile}.")
    if not isinstance(higher_is_ood, (bool, np.bool_)):
        raise InputTypeError(f"higher_is_ood must be True or False, got {higher_is_ood!r}.")
    scores_in = as_float_vector("scores_in", scores_in)
    q = 100.0 - percentile if higher_is_ood else percentile
    return jnp.percentile(scores_in, q)

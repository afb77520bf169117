"""OOD detection metrics from ``(scores_in, scores_out)`` with a declared direction.

Every function takes the scores of in-distribution and out-of-distribution inputs and
``higher_is_ood`` (False: a larger score means "more in-distribution"; True: "more OOD").
``positive`` says which side is the positive class of the binary problem, ``"in"`` or ``"out"``;
AUROC does not depend on it, AUPR and FPR@TPR do. Nothing is guessed.

Definitions follow scikit-learn, ties included: all inputs are ranked once by score (one sort of
N_in + N_out values); the ROC and precision-recall curves have one point per distinct score.
- AUROC = sum over thresholds of (FPR_i - FPR_{i-1}) (TPR_i + TPR_{i-1}) / 2, i.e.
  P(s_pos > s_neg) + P(s_pos = s_neg) / 2 (``roc_auc_score``).
- AUPR = average precision = sum_i (R_i - R_{i-1}) P_i (``average_precision_score``).
- FPR@TPR t = FPR at the first threshold, from the top, with TPR >= t (``roc_curve`` then
  ``fpr[argmax(tpr >= t)]``, as the Chapter-3 evaluation code; FPR80 and FPR95 in the documents).

Counts are int32 (exact up to 2^31 inputs), sums are pairwise in float32, so 10^6 scores give
the same digits as scikit-learn's float64. Scores are compared in float32 (float64 inputs are
rounded unless x64 is enabled), and XLA flushes float32 subnormals (|s| < 1.2e-38) to zero, so
those tie with 0. All functions but :func:`roc_curve` are jitted; inside
a caller's jit they are inlined, and NaN scores make the result NaN instead of raising.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.metrics._arrays import (
    as_float_vector,
    static_count_at_least,
    tree_sum,
)

POSITIVE_SIDES = ("in", "out")


def _oriented(scores_in, scores_out, higher_is_ood: bool):
    """Validated scores, both flipped so that larger means "more in-distribution"."""
    if not isinstance(higher_is_ood, (bool, np.bool_)):
        raise TypeError(f"higher_is_ood must be True or False, got {higher_is_ood!r}.")
    scores_in = as_float_vector("scores_in", scores_in)
    scores_out = as_float_vector("scores_out", scores_out)
    if higher_is_ood:
        return -scores_in, -scores_out
    return scores_in, scores_out


def _check_positive(positive: str) -> None:
    if positive not in POSITIVE_SIDES:
        raise ValueError(f"positive must be 'in' or 'out', got {positive!r}.")


class _Ranking(NamedTuple):
    """Inputs sorted from most to least positive; cumulative counts at each position."""

    true_pos: jax.Array  # int32 [n]: positives ranked at or above position i
    false_pos: jax.Array  # int32 [n]
    last_of_threshold: jax.Array  # bool [n]: position i ends a run of equal scores
    num_pos: int
    num_neg: int


def _rankings(in_high, out_low) -> tuple[_Ranking, _Ranking]:
    """Rankings with "in" positive and with "out" positive, from one descending sort."""
    num_in, num_out = in_high.shape[0], out_low.shape[0]
    scores = jnp.concatenate([in_high, out_low])
    is_in = jnp.concatenate([jnp.ones(num_in, jnp.int32), jnp.zeros(num_out, jnp.int32)])
    neg_sorted, is_in = jax.lax.sort((-scores, is_in), num_keys=1)
    position = jnp.arange(1, scores.shape[0] + 1, dtype=jnp.int32)
    boundary = neg_sorted[1:] != neg_sorted[:-1]
    last = jnp.concatenate([boundary, jnp.array([True])])
    tp_in = jnp.cumsum(is_in)
    in_positive = _Ranking(tp_in, position - tp_in, last, num_in, num_out)
    # Reversed order = ranking by the negated score; "out" becomes the positive class.
    is_out = 1 - is_in[::-1]
    tp_out = jnp.cumsum(is_out)
    last_reversed = jnp.concatenate([boundary[::-1], jnp.array([True])])
    out_positive = _Ranking(tp_out, position - tp_out, last_reversed, num_out, num_in)
    return in_positive, out_positive


def _previous_at_threshold(values, last):
    """For each position, the value at the previous threshold point (0 before the first)."""
    at_points = jnp.where(last, values, 0)
    running = jax.lax.cummax(at_points)
    return jnp.concatenate([jnp.zeros(1, values.dtype), running[:-1]])


def _auroc(r: _Ranking) -> jax.Array:
    tp, fp = r.true_pos, r.false_pos
    prev_tp = _previous_at_threshold(tp, r.last_of_threshold)
    prev_fp = _previous_at_threshold(fp, r.last_of_threshold)
    width = (fp - prev_fp).astype(jnp.float32) / r.num_neg
    height = (tp + prev_tp).astype(jnp.float32) / (2.0 * r.num_pos)
    return tree_sum(jnp.where(r.last_of_threshold, width * height, 0.0))


def _average_precision(r: _Ranking) -> jax.Array:
    tp, fp = r.true_pos, r.false_pos
    prev_tp = _previous_at_threshold(tp, r.last_of_threshold)
    recall_step = (tp - prev_tp).astype(jnp.float32) / r.num_pos
    precision = tp.astype(jnp.float32) / (tp + fp).astype(jnp.float32)
    return tree_sum(jnp.where(r.last_of_threshold, recall_step * precision, 0.0))


def _fpr_at_tpr(r: _Ranking, tpr: float) -> jax.Array:
    needed = static_count_at_least(tpr, r.num_pos)
    if needed == 0:
        return jnp.float32(0.0)
    first = jnp.argmax(r.last_of_threshold & (r.true_pos >= needed))
    return r.false_pos[first].astype(jnp.float32) / r.num_neg


def _nan_if_any(value, *arrays):
    has_nan = functools.reduce(jnp.logical_or, [jnp.any(jnp.isnan(a)) for a in arrays])
    return jnp.where(has_nan, jnp.nan, value)


def _check_tpr(tpr: float) -> float:
    tpr = float(tpr)
    if not 0.0 <= tpr <= 1.0:
        raise ValueError(f"tpr must lie in [0, 1] (e.g. 0.95 for FPR95), got {tpr}.")
    return tpr


@jax.jit
def _auroc_jit(in_high, out_low):
    ranking, _ = _rankings(in_high, out_low)
    return _nan_if_any(_auroc(ranking), in_high, out_low)


@functools.partial(jax.jit, static_argnames="positive")
def _average_precision_jit(in_high, out_low, positive):
    rankings = dict(zip(POSITIVE_SIDES, _rankings(in_high, out_low), strict=True))
    return _nan_if_any(_average_precision(rankings[positive]), in_high, out_low)


@functools.partial(jax.jit, static_argnames=("positive", "tpr"))
def _fpr_at_tpr_jit(in_high, out_low, positive, tpr):
    rankings = dict(zip(POSITIVE_SIDES, _rankings(in_high, out_low), strict=True))
    return _nan_if_any(_fpr_at_tpr(rankings[positive], tpr), in_high, out_low)


@functools.partial(jax.jit, static_argnames=("positive", "tprs"))
def _summary_jit(in_high, out_low, positive, tprs):
    in_pos, out_pos = _rankings(in_high, out_low)
    chosen = in_pos if positive == "in" else out_pos
    values = {
        "auroc": _auroc(in_pos),
        "aupr_in": _average_precision(in_pos),
        "aupr_out": _average_precision(out_pos),
    }
    for tpr in tprs:
        values[f"fpr{round(100 * tpr):d}"] = _fpr_at_tpr(chosen, tpr)
    return {k: _nan_if_any(v, in_high, out_low) for k, v in values.items()}


def auroc(scores_in, scores_out, *, higher_is_ood: bool) -> jax.Array:
    """Area under the ROC curve: P(s_in ranks above s_out) + 1/2 P(tie)."""
    return _auroc_jit(*_oriented(scores_in, scores_out, higher_is_ood))


def average_precision(
    scores_in, scores_out, *, higher_is_ood: bool, positive: str = "in"
) -> jax.Array:
    """AUPR = average precision sum_i (R_i - R_{i-1}) P_i; ``positive`` is the positive class."""
    _check_positive(positive)
    return _average_precision_jit(
        *_oriented(scores_in, scores_out, higher_is_ood), positive=positive
    )


def fpr_at_tpr(
    scores_in, scores_out, *, higher_is_ood: bool, tpr: float = 0.95, positive: str = "in"
) -> jax.Array:
    """False-positive rate at the first threshold (from the top) whose TPR reaches ``tpr``."""
    _check_positive(positive)
    return _fpr_at_tpr_jit(
        *_oriented(scores_in, scores_out, higher_is_ood), positive=positive, tpr=_check_tpr(tpr)
    )


def detection_summary(
    scores_in,
    scores_out,
    *,
    higher_is_ood: bool,
    positive: str = "in",
    tprs: tuple[float, ...] = (0.8, 0.95),
) -> dict[str, jax.Array]:
    """AUROC, AUPR with each side positive, and FPR at each TPR in ``tprs``, from one sort.

    Returns ``{"auroc", "aupr_in", "aupr_out", "fpr80", "fpr95"}`` (FPR keys follow ``tprs``;
    FPR uses ``positive`` as the positive class). Fractions in [0, 1].
    """
    _check_positive(positive)
    tprs = tuple(_check_tpr(t) for t in tprs)
    return _summary_jit(
        *_oriented(scores_in, scores_out, higher_is_ood), positive=positive, tprs=tprs
    )


def roc_curve(
    scores_in, scores_out, *, higher_is_ood: bool, positive: str = "in"
) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` at every distinct threshold, starting at (0, 0); for plots (not jittable)."""
    _check_positive(positive)
    in_high, out_low = _oriented(scores_in, scores_out, higher_is_ood)
    ranking = dict(zip(POSITIVE_SIDES, _rankings(in_high, out_low), strict=True))[positive]
    last = np.asarray(ranking.last_of_threshold)
    tp = np.asarray(ranking.true_pos)[last]
    fp = np.asarray(ranking.false_pos)[last]
    fpr = np.concatenate([[0.0], fp / ranking.num_neg])
    tpr = np.concatenate([[0.0], tp / ranking.num_pos])
    return fpr, tpr


class DetectionAtThreshold(NamedTuple):
    """Rates of inputs flagged as OOD by one fixed threshold."""

    detection_rate: jax.Array  # fraction of OOD inputs flagged (the SDIM paper's detection rate)
    false_alarm_rate: jax.Array  # fraction of in-distribution inputs flagged


def detection_at_threshold(
    scores_in, scores_out, *, higher_is_ood: bool, threshold
) -> DetectionAtThreshold:
    """Flag an input as OOD when its score is on the OOD side of ``threshold`` (strictly).

    With ``higher_is_ood=False`` an input is flagged when ``score < threshold`` (the SDIM rule:
    reject when log p(x|c) < delta_c); with ``higher_is_ood=True`` when ``score > threshold``.
    """
    in_high, out_low = _oriented(scores_in, scores_out, higher_is_ood)
    threshold = jnp.asarray(threshold, in_high.dtype)
    if threshold.ndim:
        raise ValueError(f"threshold must be a scalar, got shape {threshold.shape}.")
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
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}.")
    scores_in = as_float_vector("scores_in", scores_in)
    q = 100.0 - percentile if higher_is_ood else percentile
    return jnp.percentile(scores_in, q)

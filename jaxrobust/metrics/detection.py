"""OOD detection metrics from ``(scores_in, scores_out)`` with a declared direction.

Every function takes the scores of in-distribution and out-of-distribution inputs and
``higher_is_ood`` (False: larger score = more in-distribution). ``positive`` says which side is
the positive class ("in" or "out"); AUROC does not depend on it. Ties count one half, as in
scikit-learn. All functions are jittable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

POSITIVE_SIDES = ("in", "out")


def _positive_first(scores_in, scores_out, higher_is_ood: bool, positive: str):
    """Scores where larger means "more positive", and the positives / negatives split."""
    if positive not in POSITIVE_SIDES:
        raise ValueError(f"positive must be 'in' or 'out', got {positive!r}.")
    scores_in = jnp.asarray(scores_in, jnp.float32).ravel()
    scores_out = jnp.asarray(scores_out, jnp.float32).ravel()
    if scores_in.size == 0 or scores_out.size == 0:
        raise ValueError(
            f"Detection metrics need scores on both sides; got {scores_in.size} in-distribution "
            f"and {scores_out.size} OOD scores."
        )
    in_is_high = not higher_is_ood
    sign_in = 1.0 if in_is_high == (positive == "in") else -1.0
    if positive == "in":
        return sign_in * scores_in, sign_in * scores_out
    return sign_in * scores_out, sign_in * scores_in


def auroc(scores_in, scores_out, *, higher_is_ood: bool) -> jax.Array:
    """Area under the ROC curve = P(s_pos > s_neg) + 1/2 P(s_pos = s_neg) (Mann-Whitney)."""
    pos, neg = _positive_first(scores_in, scores_out, higher_is_ood, "in")
    neg_sorted = jnp.sort(neg)
    below = jnp.searchsorted(neg_sorted, pos, side="left")
    not_above = jnp.searchsorted(neg_sorted, pos, side="right")
    wins = (below + not_above).astype(jnp.float32) * 0.5  # below + ties / 2
    return jnp.mean(wins / neg.size)


def _ranked_counts(pos, neg):
    """Sorted by decreasing score: cumulative TP, FP and a mask of each threshold's last item."""
    scores = jnp.concatenate([pos, neg])
    labels = jnp.concatenate([jnp.ones(pos.size, jnp.float32), jnp.zeros(neg.size, jnp.float32)])
    order = jnp.argsort(-scores, stable=True)
    scores, labels = scores[order], labels[order]
    tp = jnp.cumsum(labels)
    fp = jnp.cumsum(1.0 - labels)
    last_of_threshold = jnp.concatenate([scores[1:] != scores[:-1], jnp.array([True])])
    return tp, fp, last_of_threshold


def average_precision(
    scores_in, scores_out, *, higher_is_ood: bool, positive: str = "in"
) -> jax.Array:
    """AP = sum_n (R_n - R_{n-1}) P_n over distinct thresholds (scikit-learn's definition)."""
    pos, neg = _positive_first(scores_in, scores_out, higher_is_ood, positive)
    tp, fp, last = _ranked_counts(pos, neg)
    precision = tp / (tp + fp)
    tp_at_threshold = jnp.where(last, tp, 0.0)
    previous_tp = jnp.concatenate([jnp.zeros(1), jax.lax.cummax(tp_at_threshold)[:-1]])
    return jnp.sum(jnp.where(last, (tp - previous_tp) * precision, 0.0)) / pos.size


def fpr_at_tpr(
    scores_in, scores_out, *, higher_is_ood: bool, tpr: float = 0.95, positive: str = "in"
) -> jax.Array:
    """False-positive rate at the first threshold (from the top) whose TPR reaches ``tpr``."""
    pos, neg = _positive_first(scores_in, scores_out, higher_is_ood, positive)
    tp, fp, last = _ranked_counts(pos, neg)
    reached = last & (tp / pos.size >= tpr - 1e-7)
    first = jnp.argmax(reached)
    return fp[first] / neg.size


def roc_curve(scores_in, scores_out, *, higher_is_ood: bool, positive: str = "in"):
    """``(fpr, tpr)`` at every distinct threshold, starting at (0, 0); for plots."""
    pos, neg = _positive_first(scores_in, scores_out, higher_is_ood, positive)
    tp, fp, last = _ranked_counts(pos, neg)
    tp, fp = tp[last], fp[last]
    fpr = jnp.concatenate([jnp.zeros(1), fp / neg.size])
    tpr = jnp.concatenate([jnp.zeros(1), tp / pos.size])
    return fpr, tpr

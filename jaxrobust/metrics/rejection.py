"""Classification with rejection (the SDIM paper, seed 003, Table 2): accuracy on the inputs a
classifier accepts, and the fraction it rejects.

``accepted`` is a boolean mask [N]; :func:`accept_above_class_thresholds` builds the SDIM mask
(accept when max_c log p(x|c) >= delta_c for the predicted class c).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.arrays import is_traced
from jaxrobust.errors import InputError
from jaxrobust.metrics._arrays import as_labels, check_same_length, class_indices


def _real_array(name: str, values) -> jax.Array:
    if not hasattr(values, "dtype"):
        try:
            values = np.asarray(values)
        except (TypeError, ValueError) as err:
            raise InputError(f"{name} must be a numeric array: {err}") from None
    if values.dtype == object or not (
        jnp.issubdtype(values.dtype, jnp.floating) or jnp.issubdtype(values.dtype, jnp.integer)
    ):
        raise InputError(f"{name} must be real numbers, got dtype {values.dtype}.")
    return jnp.asarray(values)


def _refuse_nan(name: str, values: jax.Array) -> None:
    if not is_traced(values) and jnp.issubdtype(values.dtype, jnp.floating):
        bad = int(jnp.sum(jnp.isnan(values)))
        if bad:
            raise InputError(
                f"{name} has {bad} NaN of {values.size}; NaN compares false with every "
                "threshold, so those inputs would be rejected silently. Fix the model's scores."
            )


class RejectionResult(NamedTuple):
    """What :func:`classification_with_rejection` returns.

    Examples:
        >>> result = classification_with_rejection([1, 0], [1, 1], accepted=[True, False])
        >>> result._fields
        ('accuracy_on_accepted', 'rejection_rate', 'num_accepted')
        >>> [float(value) for value in result]
        [1.0, 0.5, 1.0]
    """

    accuracy_on_accepted: jax.Array  # correct and accepted / accepted (NaN when none accepted)
    rejection_rate: jax.Array  # rejected / all
    num_accepted: jax.Array  # int32


@jax.jit
def _rejection_jit(predictions, labels, accepted):
    accepted = accepted.astype(bool)
    num_accepted = jnp.sum(accepted, dtype=jnp.int32)
    correct = jnp.sum(accepted & (predictions == labels), dtype=jnp.int32)
    accuracy = jnp.where(num_accepted > 0, correct / jnp.maximum(num_accepted, 1), jnp.nan)
    rejected = accepted.shape[0] - num_accepted
    return RejectionResult(
        accuracy.astype(jnp.float32),
        (rejected / accepted.shape[0]).astype(jnp.float32),
        num_accepted,
    )


def classification_with_rejection(predictions, labels, accepted) -> RejectionResult:
    """Accuracy among accepted inputs and the rejection rate, from predicted classes [N],
    true labels [N] and the acceptance mask [N].

    Examples:
        Two of the three accepted predictions are right; one input of four is rejected:

        >>> result = classification_with_rejection(
        ...     [0, 1, 1, 0], [0, 1, 0, 0], [True, True, True, False]
        ... )
        >>> round(float(result.accuracy_on_accepted), 4), float(result.rejection_rate)
        (0.6667, 0.25)
        >>> int(result.num_accepted)
        3
    """
    check_same_length(predictions=predictions, labels=labels, accepted=accepted)
    accepted = jnp.asarray(accepted)
    if accepted.dtype != jnp.bool_:
        raise InputError(f"accepted must be a boolean mask, got dtype {accepted.dtype}.")
    predictions = class_indices("predictions", predictions)
    labels = class_indices("labels", labels)
    return _rejection_jit(predictions, labels, accepted)


def accept_above_class_thresholds(class_scores, thresholds) -> tuple[jax.Array, jax.Array]:
    """SDIM's decision rule: predict c = argmax_c s_c(x), accept when s_c(x) >= delta_c.

    ``class_scores`` [N, C] (e.g. log p(x|c)), ``thresholds`` [C]. Returns (predictions, accepted).

    Examples:
        The third input's best score, -4 for class 0, is below delta_0 = -2:

        >>> scores = [[-1.0, -5.0], [-9.0, -3.0], [-4.0, -8.0]]
        >>> predictions, accepted = accept_above_class_thresholds(scores, [-2.0, -4.0])
        >>> predictions.tolist(), accepted.tolist()
        ([0, 1, 0], [True, True, False])
    """
    _require_thresholds(thresholds)
    class_scores = _real_array("class_scores", class_scores)
    thresholds = _real_array("thresholds", thresholds)
    _check_scores_and_thresholds(class_scores, thresholds)
    predictions = jnp.argmax(class_scores, axis=1)
    best = jnp.max(class_scores, axis=1)
    return predictions, best >= thresholds[predictions]


def _require_thresholds(thresholds) -> None:
    if thresholds is None:
        raise InputError(
            "thresholds is None: rejection needs per-class thresholds fitted first, e.g. "
            "class_thresholds_from_percentile(train_scores, train_labels, 1.0) on the model's "
            "training scores (never the test split)."
        )


def _check_scores_and_thresholds(class_scores: jax.Array, thresholds: jax.Array) -> None:
    if class_scores.ndim != 2 or thresholds.ndim != 1:
        raise InputError(
            f"class_scores must be [N, C] and thresholds [C]; got {class_scores.shape} and "
            f"{thresholds.shape}."
        )
    if thresholds.shape[0] != class_scores.shape[1]:
        raise InputError(
            f"thresholds has {thresholds.shape[0]} classes but the scores have "
            f"{class_scores.shape[1]}: the thresholds were fitted for another model (or "
            "dataset). Fit them on this model's training scores with "
            "class_thresholds_from_percentile."
        )
    if class_scores.shape[0] == 0 or class_scores.shape[1] == 0:
        raise InputError(f"class_scores is empty, shape {class_scores.shape}.")
    _refuse_nan("class_scores", class_scores)
    _refuse_nan("thresholds", thresholds)


def classwise_detection_rate(class_scores, thresholds) -> jax.Array:
    """SDIM's OOD detection of Table 3, per class: for each class c the share of the inputs
    with ``s_c(x) < delta_c`` (``[N, C], [C] -> [C]``; the paper reports the mean over c). It
    differs from the deployed rule (:func:`accept_above_class_thresholds`, Eq. 9), which tests
    only the predicted class.

    Examples:
        Class 0 rejects both inputs, class 1 one of two:

        >>> rates = classwise_detection_rate([[-5.0, -1.0], [-3.0, -6.0]], [-2.0, -4.0])
        >>> rates.tolist(), float(rates.mean())
        ([1.0, 0.5], 0.75)
    """
    _require_thresholds(thresholds)
    class_scores = _real_array("class_scores", class_scores)
    thresholds = _real_array("thresholds", thresholds)
    _check_scores_and_thresholds(class_scores, thresholds)
    return jnp.mean(class_scores < thresholds[None, :], axis=0)


def class_thresholds_from_percentile(
    class_scores, labels, percentile: float, *, correct_only: bool = True
) -> jax.Array:
    """delta_c = the ``percentile``-th percentile of s_c(x) over training inputs of class c
    (SDIM: 1st or 2nd percentile of log p(x|c) over correctly classified training samples).

    Classes without a qualifying input get -inf (accept everything predicted as them).

    Examples:
        Class 0's own scores are -1, -2, -3 and class 1's -1, -2; class 2 has no input:

        >>> scores = [[-1, -5, -9], [-2, -6, -9], [-3, -7, -9], [-9, -1, -9], [-8, -2, -9]]
        >>> labels = [0, 0, 0, 1, 1]
        >>> class_thresholds_from_percentile(scores, labels, 50.0).tolist()  # the medians
        [-2.0, -1.5, -inf]
    """
    class_scores = _real_array("class_scores", class_scores)
    if class_scores.ndim != 2 or np.shape(labels) != class_scores.shape[:1]:
        raise InputError(
            f"class_scores must be [N, C] and labels [N]; got {class_scores.shape} and "
            f"{np.shape(labels)}."
        )
    if class_scores.shape[0] == 0 or class_scores.shape[1] == 0:
        raise InputError(f"class_scores is empty, shape {class_scores.shape}.")
    labels = as_labels("labels", labels, class_scores.shape[0], class_scores.shape[1])
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.number)):
        raise InputError(f"percentile must be a number in (0, 100), got {percentile!r}.")
    if not 0.0 < percentile < 100.0:
        raise InputError(
            f"percentile must lie in (0, 100), got {percentile}: 0 and 100 put the threshold at "
            "the smallest / largest training score (e.g. 1.0 for the 1st percentile)."
        )
    if not is_traced(class_scores) and bool(jnp.any(jnp.isnan(class_scores))):
        raise InputError("class_scores contains NaN; fix the model before choosing thresholds.")
    return _thresholds_jit(class_scores, labels, float(percentile), correct_only)


@functools.partial(jax.jit, static_argnames=("correct_only",))
def _thresholds_jit(class_scores, labels, percentile, correct_only: bool) -> jax.Array:
    """One sort of the N own-class scores by (class, score), then NumPy's "linear" percentile
    (virtual index q (n_c - 1)) read per class; excluded inputs sort after every class. A
    ``nanpercentile`` over a C x N masked array sorts C times as much."""
    num_classes = class_scores.shape[1]
    own = jnp.take_along_axis(class_scores, labels[:, None], axis=1)[:, 0]
    own = own.astype(jnp.promote_types(own.dtype, jnp.float32))  # integer scores interpolate
    keep = jnp.ones_like(labels, bool)
    if correct_only:
        keep = jnp.argmax(class_scores, axis=1) == labels
    group = jnp.where(keep, labels, num_classes)  # num_classes: excluded
    ordered = own[jnp.lexsort((own, group))]
    counts = jnp.bincount(group, length=num_classes + 1)[:num_classes]
    starts = jnp.cumsum(counts) - counts
    position = percentile / 100.0 * jnp.maximum(counts - 1, 0)
    low = jnp.floor(position).astype(jnp.int32)
    high = jnp.minimum(low + 1, jnp.maximum(counts - 1, 0))
    frac = (position - low).astype(own.dtype)
    last = ordered.shape[0] - 1
    value_low = ordered[jnp.minimum(starts + low, last)]
    value_high = ordered[jnp.minimum(starts + high, last)]
    thresholds = value_low + frac * (value_high - value_low)
    return jnp.where(counts > 0, thresholds, -jnp.inf)

"""Classification with rejection and adversarial metrics against NumPy transcriptions."""

from __future__ import annotations

import numpy as np
import pytest

from jaxrobust import metrics


def test_sdim_rejection_rule_and_metrics():
    rng = np.random.default_rng(0)
    n, classes = 2000, 4
    labels = rng.integers(0, classes, n)
    class_scores = rng.normal(-10, 3, (n, classes)).astype(np.float32)
    class_scores[np.arange(n), labels] += 6.0  # mostly correct
    thresholds = metrics.class_thresholds_from_percentile(class_scores, labels, 2.0)
    # Reference: per class, the 2nd percentile of log p(x|c) over correctly classified inputs.
    predicted = class_scores.argmax(1)
    for c in range(classes):
        own = class_scores[(labels == c) & (predicted == c), c]
        np.testing.assert_allclose(thresholds[c], np.percentile(own, 2.0), rtol=1e-5)
    predictions, accepted = metrics.accept_above_class_thresholds(class_scores, thresholds)
    np.testing.assert_array_equal(predictions, predicted)
    expected_accept = class_scores.max(1) >= np.asarray(thresholds)[predicted]
    np.testing.assert_array_equal(accepted, expected_accept)
    result = metrics.classification_with_rejection(predictions, labels, accepted)
    np.testing.assert_allclose(
        result.accuracy_on_accepted, np.mean(predicted[expected_accept] == labels[expected_accept])
    )
    np.testing.assert_allclose(result.rejection_rate, 1 - expected_accept.mean())
    assert int(result.num_accepted) == expected_accept.sum()


def test_classwise_detection_rate_matches_a_numpy_loop():
    rng = np.random.default_rng(1)
    out_scores = rng.normal(-10, 5, (500, 6))
    thresholds = rng.normal(-10, 2, 6)
    expected = [np.mean([out_scores[i, c] < thresholds[c] for i in range(500)]) for c in range(6)]
    got = metrics.classwise_detection_rate(out_scores, thresholds)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_nothing_accepted_gives_nan_accuracy():
    result = metrics.classification_with_rejection(
        np.zeros(3, int), np.zeros(3, int), np.zeros(3, bool)
    )
    assert np.isnan(result.accuracy_on_accepted) and float(result.rejection_rate) == 1.0


def test_adversarial_accuracy_and_success_rate():
    labels = np.array([0, 1, 2, 3, 4, 5])
    clean = np.array([0, 1, 2, 3, 0, 0])  # the last two were wrong before the attack
    adversarial = np.array([0, 2, 2, 1, 4, 1])
    np.testing.assert_allclose(metrics.adversarial_accuracy(adversarial, labels), 3 / 6)
    # Untargeted, among the 4 clean-correct inputs: indices 1 and 3 flipped.
    np.testing.assert_allclose(metrics.attack_success_rate(clean, adversarial, labels), 2 / 4)
    np.testing.assert_allclose(
        metrics.attack_success_rate(clean, adversarial, labels, among="all"), 3 / 6
    )
    targets = np.array([1, 2, 0, 1, 1, 1])
    np.testing.assert_allclose(
        metrics.attack_success_rate(clean, adversarial, labels, targets=targets), 2 / 4
    )


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="one length"):
        metrics.adversarial_accuracy(np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(ValueError, match="among must be"):
        metrics.attack_success_rate(np.zeros(2), np.zeros(2), np.zeros(2), among="some")
    with pytest.raises(ValueError, match="boolean mask"):
        metrics.classification_with_rejection(np.zeros(2), np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match="fitted for another model"):
        metrics.accept_above_class_thresholds(np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="fitted for another model"):
        metrics.classwise_detection_rate(np.zeros((3, 10)), np.zeros(4))
    for rule in (metrics.accept_above_class_thresholds, metrics.classwise_detection_rate):
        with pytest.raises(
            ValueError, match="thresholds is None.*class_thresholds_from_percentile"
        ):
            rule(np.zeros((3, 10)), None)
    for percentile in (0.0, 100.0, -1.0, 101.0):
        with pytest.raises(ValueError, match=r"\(0, 100\)"):
            metrics.class_thresholds_from_percentile(np.zeros((3, 2)), [0, 1, 0], percentile)
    with pytest.raises(ValueError, match="Empty inputs"):
        metrics.adversarial_accuracy(np.zeros(0), np.zeros(0))

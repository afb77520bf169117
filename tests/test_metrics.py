"""Detection and calibration metrics against scikit-learn and a NumPy transcription of ECE."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from jaxrobust import metrics


def sklearn_view(scores_in, scores_out, positive):
    y = np.r_[np.ones(len(scores_in)), np.zeros(len(scores_out))]
    s = np.r_[scores_in, scores_out]
    return (y, s) if positive == "in" else (1 - y, -s)


CASES = {
    "continuous": lambda r: (r.normal(1, 1, 400), r.normal(0, 1, 300)),
    "many ties": lambda r: (
        r.integers(0, 5, 400).astype(float),
        r.integers(0, 4, 300).astype(float),
    ),
    "all equal": lambda r: (np.zeros(50), np.zeros(70)),
    "one tiny class": lambda r: (r.normal(0, 1, 500), r.normal(-1, 1, 3)),
    "perfect": lambda r: (r.uniform(2, 3, 40), r.uniform(0, 1, 60)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_detection_metrics_match_sklearn(case, seed):
    scores_in, scores_out = CASES[case](np.random.default_rng(seed))
    y, s = sklearn_view(scores_in, scores_out, "in")
    np.testing.assert_allclose(
        metrics.auroc(scores_in, scores_out, higher_is_ood=False), roc_auc_score(y, s), atol=1e-6
    )
    # Declaring the opposite direction on negated scores changes nothing.
    np.testing.assert_allclose(
        metrics.auroc(-scores_in, -scores_out, higher_is_ood=True), roc_auc_score(y, s), atol=1e-6
    )
    for positive in ("in", "out"):
        y, s = sklearn_view(scores_in, scores_out, positive)
        ap = metrics.average_precision(
            scores_in, scores_out, higher_is_ood=False, positive=positive
        )
        np.testing.assert_allclose(ap, average_precision_score(y, s), atol=1e-6)
        fpr, tpr, _ = roc_curve(y, s)
        for target in (0.8, 0.95):
            expected = fpr[np.searchsorted(tpr, target - 1e-9)]
            got = metrics.fpr_at_tpr(
                scores_in, scores_out, higher_is_ood=False, tpr=target, positive=positive
            )
            np.testing.assert_allclose(got, expected, atol=1e-6)


def ece_eq_4_1(probs, labels, num_bins=15):
    """Hybrid-models thesis eq. 4.1: sum_m |B_m|/n |acc(B_m) - conf(B_m)|, B_m = ((m-1)/M, m/M]."""
    conf, pred = probs.max(1), probs.argmax(1)
    total = 0.0
    for m in range(1, num_bins + 1):
        in_bin = (conf > (m - 1) / num_bins) & (conf <= m / num_bins)
        if in_bin.any():
            acc = np.mean(pred[in_bin] == labels[in_bin])
            total += in_bin.sum() / len(labels) * abs(acc - conf[in_bin].mean())
    return total


@pytest.mark.parametrize("seed", range(4))
def test_ece_matches_equation_4_1(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1 + seed, (2000, 10))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.where(rng.uniform(size=2000) < 0.7, probs.argmax(1), rng.integers(0, 10, 2000))
    np.testing.assert_allclose(
        metrics.expected_calibration_error(probs.astype(np.float32), labels),
        ece_eq_4_1(probs.astype(np.float32).astype(np.float64), labels),
        atol=1e-5,
    )


def test_empty_inputs_and_bad_shapes_are_explained():
    with pytest.raises(ValueError, match="scores on both sides"):
        metrics.auroc(np.zeros(3), np.zeros(0), higher_is_ood=False)
    with pytest.raises(ValueError, match="positive must be"):
        metrics.average_precision(np.zeros(3), np.ones(3), higher_is_ood=False, positive="pos")
    with pytest.raises(ValueError, match=r"labels must be \[N\]"):
        metrics.expected_calibration_error(np.full((4, 2), 0.5), np.zeros(3, int))

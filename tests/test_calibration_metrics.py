"""Calibration metrics against eq. 4.1 of the hybrid-models thesis (a direct NumPy transcription),
scikit-learn (Brier, NLL) and the ``uncertainty-calibration`` package of Kumar et al. 2019
(import name ``calibration``: classwise and equal-mass ECE)."""

from __future__ import annotations

import functools

import calibration as kumar  # reference: uncertainty-calibration (Kumar, Liang, Ma 2019)
import chex
import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from jaxrobust import metrics


def ece_eq_4_1(probs, labels, num_bins=15):
    """Seed 000, eq. 4.1: sum_k |B_k|/n |acc(B_k) - conf(B_k)|, I_k = ((k-1)/K, k/K]."""
    conf, pred = probs.max(1), probs.argmax(1)
    total = 0.0
    for k in range(1, num_bins + 1):
        in_bin = (conf > (k - 1) / num_bins) & (conf <= k / num_bins)
        if in_bin.any():
            acc = np.mean(pred[in_bin] == labels[in_bin])
            total += in_bin.sum() / len(labels) * abs(acc - conf[in_bin].mean())
    return total


def mce_transcription(probs, labels, num_bins=15):
    conf, pred = probs.max(1), probs.argmax(1)
    gaps = []
    for k in range(1, num_bins + 1):
        in_bin = (conf > (k - 1) / num_bins) & (conf <= k / num_bins)
        if in_bin.any():
            gaps.append(abs(np.mean(pred[in_bin] == labels[in_bin]) - conf[in_bin].mean()))
    return max(gaps)


def predictions(seed, n=3000, classes=10, temperature=1.0, ties=False):
    """Softmax predictions with about 70% accuracy; ``ties``: integer logits, so many rows
    share the same probabilities (ties within and across bins)."""
    rng = np.random.default_rng(seed)
    if ties:
        logits = rng.integers(0, 4, (n, classes)).astype(np.float64)
    else:
        logits = rng.normal(0, 2, (n, classes)) / temperature
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    probs = probs.astype(np.float32)
    labels = np.where(rng.uniform(size=n) < 0.7, probs.argmax(1), rng.integers(0, classes, n))
    return probs, labels


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("num_bins", [10, 15])
def test_ece_and_mce_match_equation_4_1(seed, num_bins):
    probs, labels = predictions(seed, temperature=0.5 + seed)
    reference = probs.astype(np.float64)
    np.testing.assert_allclose(
        metrics.expected_calibration_error(probs, labels, num_bins),
        ece_eq_4_1(reference, labels, num_bins),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        metrics.maximum_calibration_error(probs, labels, num_bins),
        mce_transcription(reference, labels, num_bins),
        atol=1e-6,
    )


class CalibrationVariantsTest(chex.TestCase):
    """ECE and MCE equal eq. 4.1 both eagerly and inlined in a caller's ``jax.jit``."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_ece_and_mce_match_equation_4_1(self):
        probs, labels = predictions(0)
        reference = probs.astype(np.float64)
        ece = self.variant(functools.partial(metrics.expected_calibration_error, num_bins=15))
        mce = self.variant(functools.partial(metrics.maximum_calibration_error, num_bins=15))
        np.testing.assert_allclose(ece(probs, labels), ece_eq_4_1(reference, labels), atol=1e-6)
        np.testing.assert_allclose(
            mce(probs, labels), mce_transcription(reference, labels), atol=1e-6
        )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize(
    ("binning", "mode", "reference"),
    [
        ("equal_width", "top_label", lambda p, y, m: kumar.get_ece(p, y, num_bins=m)),
        ("equal_mass", "top_label", lambda p, y, m: kumar.get_ece_em(p, y, num_bins=m)),
        (
            "equal_width",
            "classwise",
            lambda p, y, m: kumar.get_ece(p, y, num_bins=m, mode="marginal"),
        ),
        (
            "equal_mass",
            "classwise",
            lambda p, y, m: kumar.get_ece_em(p, y, num_bins=m, mode="marginal"),
        ),
    ],
)
def test_ece_variants_match_uncertainty_calibration(seed, ties, binning, mode, reference):
    probs, labels = predictions(seed, n=2000, classes=5, ties=ties)
    for num_bins in (15, 7):
        ours = metrics.expected_calibration_error(
            probs, labels, num_bins, binning=binning, mode=mode
        )
        np.testing.assert_allclose(ours, reference(probs, labels, num_bins), atol=2e-6)


def test_equal_mass_with_fewer_inputs_than_bins_matches_reference():
    probs, labels = predictions(0, n=9, classes=3)
    np.testing.assert_allclose(
        metrics.expected_calibration_error(probs, labels, 15, binning="equal_mass"),
        kumar.get_ece_em(probs, labels, num_bins=15),
        atol=1e-6,
    )


def test_reliability_bins_are_the_diagram_of_equation_4_1():
    probs, labels = predictions(5)
    bins = metrics.reliability_bins(probs, labels, 15)
    conf, pred = probs.max(1).astype(np.float64), probs.argmax(1)
    for k in range(15):
        in_bin = (conf > k / 15) & (conf <= (k + 1) / 15)
        assert int(bins["count"][k]) == in_bin.sum()
        if in_bin.any():
            np.testing.assert_allclose(bins["confidence"][k], conf[in_bin].mean(), rtol=1e-5)
            np.testing.assert_allclose(
                bins["accuracy"][k], np.mean(pred[in_bin] == labels[in_bin]), rtol=1e-5
            )
    np.testing.assert_allclose(bins["edges"], np.linspace(0, 1, 16), atol=1e-7)
    mass = metrics.reliability_bins(probs, labels, 10, binning="equal_mass")
    assert set(np.asarray(mass["count"]).astype(int)) == {300}


def test_brier_nll_and_summary_match_sklearn():
    probs, labels = predictions(7, classes=6)
    reference = probs.astype(np.float64)
    reference /= reference.sum(1, keepdims=True)
    brier = brier_score_loss(labels, reference, labels=np.arange(6))
    np.testing.assert_allclose(metrics.brier_score(probs, labels), brier, rtol=1e-5)
    nll = log_loss(labels, reference, labels=np.arange(6))
    np.testing.assert_allclose(metrics.negative_log_likelihood(probs, labels), nll, rtol=1e-5)
    summary = metrics.calibration_summary(probs, labels)
    np.testing.assert_allclose(summary["ece"], ece_eq_4_1(reference, labels), atol=1e-6)
    np.testing.assert_allclose(
        summary["classwise_ece_equal_mass"],
        kumar.get_ece_em(probs, labels, num_bins=15, mode="marginal"),
        atol=2e-6,
    )
    np.testing.assert_allclose(summary["accuracy"], np.mean(probs.argmax(1) == labels))
    np.testing.assert_allclose(summary["brier"], brier, rtol=1e-5)


def test_million_predictions_accumulate_accurately():
    rng = np.random.default_rng(0)
    n = 1_000_000
    confidence = rng.uniform(0.5, 1.0, n)
    probs = np.stack([confidence, 1 - confidence], 1).astype(np.float32)
    labels = (rng.uniform(size=n) > confidence).astype(np.int32)  # calibrated up to noise
    np.testing.assert_allclose(
        metrics.expected_calibration_error(probs, labels),
        kumar.get_ece(probs, labels, num_bins=15),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        (np.full((4, 2), 0.5), np.zeros(3, int), r"labels must have shape \[N\] = \[4\]"),
        (np.zeros((0, 3)), np.zeros(0, int), "empty"),
        (np.ones((4, 1)), np.zeros(4, int), "C >= 2"),
        (np.full((2, 2), 0.7), np.zeros(2, int), "sum to one; row 0 sums to 1.4"),
        (np.array([[2.0, -1.0]]), np.zeros(1, int), "look like logits"),
        (np.array([[np.nan, 0.5]]), np.zeros(1, int), "NaN"),
        (np.full((2, 2), 0.5), np.array([0, 2]), r"labels must lie in \[0, 2\)"),
        (np.full((2, 2), 0.5), np.array([0.0, 1.0]), "integer class indices"),
        (np.full((2, 2), 0.5), np.zeros(2, int), None),
    ],
)
def test_bad_inputs_are_explained(probs, labels, message):
    if message is None:  # the control case is accepted
        assert float(metrics.expected_calibration_error(probs.astype(np.float32), labels)) >= 0
        return
    with pytest.raises(ValueError, match=message):
        metrics.expected_calibration_error(probs, labels)


def test_unknown_options_are_explained():
    probs, labels = predictions(0, n=10)
    with pytest.raises(ValueError, match="binning must be one of"):
        metrics.expected_calibration_error(probs, labels, binning="quantile")
    with pytest.raises(ValueError, match="mode must be one of"):
        metrics.expected_calibration_error(probs, labels, mode="marginal")
    with pytest.raises(ValueError, match="num_bins must be a positive integer"):
        metrics.expected_calibration_error(probs, labels, 0)

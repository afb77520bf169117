"""Metrics on arrays: OOD detection, calibration, classification with rejection, adversarial,
image similarity (SSIM, MS-SSIM).

Plots (ROC curves, score histograms, reliability diagrams) live in :mod:`jaxrobust.metrics.plots`
(imported on demand: it loads matplotlib).
"""

from jaxrobust.metrics.adversarial import adversarial_accuracy, attack_success_rate
from jaxrobust.metrics.calibration import (
    brier_score,
    calibration_summary,
    expected_calibration_error,
    maximum_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)
from jaxrobust.metrics.detection import (
    DetectionAtThreshold,
    auroc,
    average_precision,
    detection_at_threshold,
    detection_summary,
    fpr_at_tpr,
    roc_curve,
    threshold_from_percentile,
)
from jaxrobust.metrics.rejection import (
    RejectionResult,
    accept_above_class_thresholds,
    class_thresholds_from_percentile,
    classification_with_rejection,
    classwise_detection_rate,
)
from jaxrobust.metrics.similarity import (
    MNIST_MS_SSIM,
    MS_SSIM_WEIGHTS,
    ms_ssim,
    ms_ssim_weights,
    ssim,
)

__all__ = [
    "MNIST_MS_SSIM",
    "MS_SSIM_WEIGHTS",
    "DetectionAtThreshold",
    "RejectionResult",
    "accept_above_class_thresholds",
    "adversarial_accuracy",
    "attack_success_rate",
    "auroc",
    "average_precision",
    "brier_score",
    "calibration_summary",
    "class_thresholds_from_percentile",
    "classification_with_rejection",
    "classwise_detection_rate",
    "detection_at_threshold",
    "detection_summary",
    "expected_calibration_error",
    "fpr_at_tpr",
    "maximum_calibration_error",
    "ms_ssim",
    "ms_ssim_weights",
    "negative_log_likelihood",
    "reliability_bins",
    "roc_curve",
    "ssim",
    "threshold_from_percentile",
]

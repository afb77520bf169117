"""Metrics on arrays: detection (AUROC, AUPR, FPR@TPR) and calibration (ECE, reliability)."""

from jaxrobust.metrics.calibration import expected_calibration_error, reliability_bins
from jaxrobust.metrics.detection import (
    auroc,
    average_precision,
    fpr_at_tpr,
    roc_curve,
)

__all__ = [
    "auroc",
    "average_precision",
    "expected_calibration_error",
    "fpr_at_tpr",
    "reliability_bins",
    "roc_curve",
]

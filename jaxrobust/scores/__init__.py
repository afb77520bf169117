"""OOD and uncertainty scores, each ``[N]`` with a declared direction (``higher_is_ood``).

Scores of single models live with the model (``Model.scores``); this package holds the scores
computed from stacks of per-sample log-likelihoods (:mod:`jaxrobust.scores.stacked`).
"""

from jaxrobust.scores.stacked import (
    STACKED_SCORES,
    StackedScore,
    disagreement,
    expected_log_likelihood,
    log_predictive,
    stacked_scores,
    std_log_likelihood,
    typicality,
    typicality_entropy,
    waic,
    weight_entropy,
)

__all__ = [
    "STACKED_SCORES",
    "StackedScore",
    "disagreement",
    "expected_log_likelihood",
    "log_predictive",
    "stacked_scores",
    "std_log_likelihood",
    "typicality",
    "typicality_entropy",
    "waic",
    "weight_entropy",
]

"""OOD and uncertainty scores, each ``[N]`` with a declared direction (``higher_is_ood``).

Scores of single models live with the model (``Model.scores``); this package holds the scores
computed from stacks of per-sample log-likelihoods (:mod:`jaxrobust.scores.stacked`) and the
chunked importance-weighted likelihood estimator (:mod:`jaxrobust.scores.importance`).
"""

from jaxrobust.scores.importance import (
    IWAEResult,
    importance_weighted_log_likelihood,
    repeated_log_likelihood_std,
    repeated_log_likelihoods,
)
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
    "IWAEResult",
    "STACKED_SCORES",
    "StackedScore",
    "disagreement",
    "expected_log_likelihood",
    "importance_weighted_log_likelihood",
    "log_predictive",
    "repeated_log_likelihood_std",
    "repeated_log_likelihoods",
    "stacked_scores",
    "std_log_likelihood",
    "typicality",
    "typicality_entropy",
    "waic",
    "weight_entropy",
]

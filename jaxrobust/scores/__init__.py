"""OOD and uncertainty scores, each ``[N]`` with a declared direction (``higher_is_ood``).

- :mod:`~jaxrobust.scores.table`: :class:`Score`, a function of a model's outputs; a model's
  score table (``Model.scores``) is assembled from the functions of this package and
  :func:`compute_scores` evaluates any set of them from one call of the model.
- :mod:`~jaxrobust.scores.predictive`: classifier scores of logits (max softmax, entropy) and of
  posterior stacks of logits (BMA, expected entropy, mutual information, variation ratio).
- :mod:`~jaxrobust.scores.stacked`: scores of stacks of per-sample log-likelihoods.
- :mod:`~jaxrobust.scores.importance`: the chunked importance-weighted likelihood estimator and
  the hole indicator (std of log p(x|z) over z ~ q(z|x)), from one set of samples.
- :mod:`~jaxrobust.scores.complexity`: input complexity (likelihood minus a lossless JPEG2000
  code length).
"""

from jaxrobust.scores._checks import NonFiniteScoreError
from jaxrobust.scores.complexity import input_complexity, jpeg2000_bits_per_dim, jpeg2000_bytes
from jaxrobust.scores.importance import (
    IWAEResult,
    hole_indicator,
    importance_weighted_log_likelihood,
    iwae_and_hole_indicator,
    iwae_and_term_stds,
    repeated_log_likelihood_std,
    repeated_log_likelihoods,
)
from jaxrobust.scores.predictive import (
    STACKED_CLASSIFIER_SCORES,
    StackedClassifierScore,
    bma_log_probabilities,
    classifier_stack_scores,
    expected_entropy,
    max_softmax,
    mutual_information,
    predictive_entropy,
    variation_ratio,
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
    typicality_per_input,
    waic,
    weight_entropy,
)
from jaxrobust.scores.table import (
    Score,
    compute_scores,
    finish_scores,
    needed_outputs,
    score_statistics,
)

__all__ = [
    "NonFiniteScoreError",
    "IWAEResult",
    "STACKED_CLASSIFIER_SCORES",
    "STACKED_SCORES",
    "Score",
    "StackedClassifierScore",
    "StackedScore",
    "bma_log_probabilities",
    "classifier_stack_scores",
    "compute_scores",
    "expected_entropy",
    "finish_scores",
    "hole_indicator",
    "input_complexity",
    "iwae_and_hole_indicator",
    "iwae_and_term_stds",
    "jpeg2000_bits_per_dim",
    "jpeg2000_bytes",
    "max_softmax",
    "mutual_information",
    "needed_outputs",
    "predictive_entropy",
    "score_statistics",
    "variation_ratio",
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
    "typicality_per_input",
    "waic",
    "weight_entropy",
]

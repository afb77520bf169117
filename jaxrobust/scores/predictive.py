"""Predictive scores of classifiers, from logits ``[N, C]`` or a posterior stack ``[S, N, C]``.

For one model with p = softmax(logits):
- max softmax           max_c p_c                 (Hendrycks & Gimpel 2017; larger = in-dist.)
- predictive entropy    H[p] = -sum_c p_c log p_c (larger = OOD)

For S posterior samples / ensemble members theta_s with p_s = p(y | x, theta_s) and the Bayesian
model average p_bar = mean_s p_s (the BDL slides' predictive distribution):
- predictive entropy    H[p_bar]                          total uncertainty    (larger = OOD)
- expected entropy      mean_s H[p_s]                      aleatoric part       (larger = OOD)
- mutual information    H[p_bar] - mean_s H[p_s]           epistemic part, >= 0 (larger = OOD)
  (Depeweg et al. 2018; the decomposition of predictive entropy into expected entropy and MI)
- max probability       max_c p_bar_c                                           (larger = in-dist.)
- variation ratio       1 - (count of the modal argmax over s) / S              (larger = OOD)

All work in log space (``log_softmax``, ``logsumexp`` over s), in float32. Inputs are checked
(:class:`~jaxrobust.errors.InputError`): logits ``[N, C]`` or stacks ``[S, N, C]`` (exactly
that rank, none of the axes empty), real dtype, and eagerly no NaN or +inf and at least one
finite logit per row (a -inf logit, a masked class, is fine: its ``p log p`` counts as 0).

Example:
    >>> import jax.numpy as jnp
    >>> stack = jnp.log(jnp.array([[[0.9, 0.1]], [[0.1, 0.9]]]))  # 2 members disagree, 1 input
    >>> s = classifier_stack_scores(stack)
    >>> [round(float(s[k][0]), 4) for k in ("predictive_entropy", "expected_entropy",
    ...                                     "mutual_information", "max_probability")]
    [0.6931, 0.3251, 0.3681, 0.5]
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrobust.scores._checks import check_logits


def _log_probs(logits) -> jax.Array:
    return jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)


def _entropy(log_p: jax.Array) -> jax.Array:
    """-sum p log p with 0 log 0 = 0 (a -inf log-probability adds nothing, not NaN)."""
    return -jnp.sum(jnp.where(jnp.isneginf(log_p), 0.0, jnp.exp(log_p) * log_p), axis=-1)


def max_softmax(logits) -> jax.Array:
    """``max_c softmax(logits)_c`` over the last axis.

    Example:
        >>> import jax.numpy as jnp
        >>> max_softmax(jnp.log(jnp.array([[0.2, 0.8]])))
        Array([0.8], dtype=float32)
    """
    return jnp.max(jax.nn.softmax(check_logits(logits, stacked=False), axis=-1), axis=-1)


def predictive_entropy(logits) -> jax.Array:
    """Entropy (nats) of ``softmax(logits)`` over the last axis.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(predictive_entropy(jnp.zeros((1, 4)))[0]), 4)  # uniform: log 4
        1.3863
    """
    return _entropy(_log_probs(check_logits(logits, stacked=False)))


def bma_log_probabilities(logits_stack) -> jax.Array:
    """``log mean_s softmax(logits_s)``: the Bayesian model average ``[N, C]`` of ``[S, N, C]``.

    Example:
        >>> import jax.numpy as jnp
        >>> stack = jnp.log(jnp.array([[[0.9, 0.1]], [[0.5, 0.5]]]))
        >>> [round(float(p), 4) for p in jnp.exp(bma_log_probabilities(stack))[0]]
        [0.7, 0.3]
    """
    log_p = _log_probs(check_logits(logits_stack, stacked=True))
    return jax.nn.logsumexp(log_p, axis=0) - jnp.log(log_p.shape[0])


def expected_entropy(logits_stack) -> jax.Array:
    """``mean_s H[softmax(logits_s)]`` (aleatoric uncertainty), ``[N]``.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(expected_entropy(jnp.zeros((3, 1, 2)))[0]), 4)  # log 2
        0.6931
    """
    return jnp.mean(_entropy(_log_probs(check_logits(logits_stack, stacked=True))), axis=0)


def mutual_information(logits_stack) -> jax.Array:
    """``H[p_bar] - mean_s H[p_s]`` (epistemic uncertainty, >= 0), ``[N]``.

    Example:
        >>> import jax.numpy as jnp
        >>> float(mutual_information(jnp.zeros((3, 1, 2)))[0])  # members agree: no MI
        0.0
    """
    logits_stack = check_logits(logits_stack, stacked=True)
    total = _entropy(bma_log_probabilities(logits_stack))
    return jnp.maximum(total - expected_entropy(logits_stack), 0.0)


def variation_ratio(logits_stack) -> jax.Array:
    """``1 - f_mode / S``, ``f_mode`` the number of samples voting for the modal class, ``[N]``.

    Example:
        >>> import jax.numpy as jnp
        >>> stack = jnp.array([[[1.0, 0.0]], [[0.0, 1.0]], [[2.0, 0.0]]])  # votes 0, 1, 0
        >>> round(float(variation_ratio(stack)[0]), 4)
        0.3333
    """
    logits_stack = check_logits(logits_stack, stacked=True)
    votes = jax.nn.one_hot(jnp.argmax(logits_stack, -1), logits_stack.shape[-1]).sum(0)
    return 1.0 - jnp.max(votes, axis=-1) / logits_stack.shape[0]


class StackedClassifierScore(NamedTuple):
    """A score of a logits stack ``[S, N, C]`` with its direction.

    Example:
        >>> import jax.numpy as jnp
        >>> score = STACKED_CLASSIFIER_SCORES["mutual_information"]
        >>> score.higher_is_ood, float(score.fn(jnp.zeros((2, 1, 3)))[0])
        (True, 0.0)
    """

    fn: object
    higher_is_ood: bool
    description: str


STACKED_CLASSIFIER_SCORES: dict[str, StackedClassifierScore] = {
    "max_probability": StackedClassifierScore(
        lambda s: jnp.exp(jnp.max(bma_log_probabilities(s), -1)),
        False,
        "max_c of the Bayesian model average p(y|x)",
    ),
    "predictive_entropy": StackedClassifierScore(
        lambda s: _entropy(bma_log_probabilities(s)),
        True,
        "entropy of the Bayesian model average (total uncertainty, nats)",
    ),
    "expected_entropy": StackedClassifierScore(
        expected_entropy, True, "mean over samples of the entropy (aleatoric, nats)"
    ),
    "mutual_information": StackedClassifierScore(
        mutual_information, True, "predictive entropy - expected entropy (epistemic, nats)"
    ),
    "variation_ratio": StackedClassifierScore(
        variation_ratio, True, "1 - share of samples voting for the modal class"
    ),
}


def classifier_stack_scores(logits_stack) -> dict[str, jax.Array]:
    """Every score of :data:`STACKED_CLASSIFIER_SCORES` of a ``[S, N, C]`` stack, ``{name: [N]}``.

    Example:
        >>> import jax.numpy as jnp
        >>> sorted(classifier_stack_scores(jnp.zeros((2, 3, 4))))[:2]
        ['expected_entropy', 'max_probability']
    """
    logits_stack = check_logits(logits_stack, stacked=True)
    return {name: score.fn(logits_stack) for name, score in STACKED_CLASSIFIER_SCORES.items()}

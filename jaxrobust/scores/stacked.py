"""OOD scores from stacked log-likelihoods ``log_lik[S, N]``: S posterior samples or ensemble
members theta_s, N inputs x (dissertation Ch.3, seed 001, eqs. 3.14-3.19).

With l_s = log p(x | theta_s) and w_s = exp(l_s) / sum_t exp(l_t) = softmax_s(l):
- expected log-likelihood  mean_s l_s                        (larger = in-distribution)
- log predictive           log mean_s exp(l_s)  (eq. 3.14)   (larger = in-distribution)
- WAIC, log form           mean_s l_s - var_s l_s (ddof 1)   (larger = in-distribution)
- disagreement             1 / sum_s w_s^2      (eq. 3.16)   (larger = in-distribution)
- weight entropy           -sum_s w_s log w_s   (eq. 3.18)   (larger = in-distribution)
- std of LLs               std_s l_s (ddof 1)   (eq. 3.19)   (larger = OOD)
- typicality               |-mean_s l_s - H|    (eq. 3.17)   (larger = OOD), H the mean NLL of
  the in-distribution test set (:func:`typicality_entropy`).
One model's typicality per input (eq. 4.18, S = 1) is :func:`typicality_per_input`, with H from
held-out in-distribution data (a VAE's ``typicality`` score: the validation carve).
These are the definitions of the author's published score files (the Chapter-3 fixture): there
the expected LL is the mean of log-likelihoods and WAIC = expected LL - std**2.

Every function is jittable, reduces over axis 0 in float32 with two-pass moments, and works in
log space (weights via log-softmax), so log-likelihoods of -10^4 nats do not underflow.

Inputs (eagerly, :class:`~jaxrobust.errors.InputError`): ``log_lik`` must be a real ``[S, N]``
array without NaN or +inf; -inf (zero likelihood) is accepted only by the scores that stay
defined there (``expected_ll``, ``log_predictive``, ``typicality``: -inf / +inf results), the
others (moments and weights) refuse it instead of returning NaN.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.arrays import is_traced
from jaxrobust.errors import InputError
from jaxrobust.scores._checks import real_array


def _check_log_lik(log_lik, min_samples: int = 1, *, allow_neg_inf: bool = True) -> jax.Array:
    """``log_lik [S, N]``: real dtype, at least ``min_samples`` samples and one input; eagerly
    no NaN or +inf, and no -inf unless the score is defined there (``allow_neg_inf``)."""
    log_lik = real_array("log_lik", log_lik, what="[S, N]")
    if log_lik.ndim != 2:
        raise InputError(
            f"log_lik must be [S, N] (samples or members x inputs), got shape {log_lik.shape}."
        )
    if log_lik.shape[0] < min_samples or log_lik.shape[1] == 0:
        raise InputError(
            f"log_lik has shape {log_lik.shape}; this score needs at least {min_samples} "
            "samples (axis 0) and one input (axis 1)."
        )
    if not is_traced(log_lik):
        values = np.asarray(log_lik)
        nan = np.isnan(values)
        if nan.any():
            bad = np.argwhere(nan)[0]
            raise InputError(
                f"log_lik has NaN (first at sample {int(bad[0])}, input {int(bad[1])}); a "
                "sample's likelihood estimate failed, fix it or drop that sample."
            )
        bad_inf = values == np.inf if allow_neg_inf else np.isinf(values)
        if bad_inf.any():
            bad = np.argwhere(bad_inf)[0]
            what = "+inf" if allow_neg_inf else "inf"
            raise InputError(
                f"log_lik has {int(bad_inf.sum())} {what} values (first at sample "
                f"{int(bad[0])}, input {int(bad[1])}). +inf is never a log-likelihood; -inf "
                "(zero likelihood) leaves the moments and weights of that input undefined (NaN), "
                "so only expected_ll, log_predictive and typicality accept it: clip it (e.g. "
                "jnp.maximum(log_lik, -1e30)) or drop that input."
            )
    return log_lik


def _mean(log_lik):
    return jnp.mean(log_lik, axis=0)


def _variance(log_lik):
    deviations = log_lik - _mean(log_lik)
    return jnp.sum(deviations**2, axis=0) / (log_lik.shape[0] - 1)


def _log_weights(log_lik):
    return jax.nn.log_softmax(log_lik, axis=0)


def expected_log_likelihood(log_lik) -> jax.Array:
    """mean_s log p(x | theta_s) [N].

    Examples:
        Two samples (rows) of the log-likelihoods of two inputs (columns):

        >>> log_lik = jnp.array([[-1.0, -10.0], [-3.0, -10.0]])
        >>> expected_log_likelihood(log_lik).tolist()
        [-2.0, -10.0]
    """
    return _mean(_check_log_lik(log_lik))


def log_predictive(log_lik) -> jax.Array:
    """log (1/S) sum_s p(x | theta_s) [N], the log of eq. 3.14's Monte Carlo estimate.

    Examples:
        >>> import math
        >>> log_lik = jnp.array([[-1.0, -10.0], [-3.0, -10.0]])
        >>> [round(v, 4) for v in log_predictive(log_lik).tolist()]
        [-1.5662, -10.0]
        >>> round(math.log((math.exp(-1) + math.exp(-3)) / 2), 4)
        -1.5662

        Log-likelihoods of -10^4 nats do not underflow (-1000 - log 2 for input 0):

        >>> [round(v, 2) for v in log_predictive(log_lik * 1000.0).tolist()]
        [-1000.69, -10000.0]
    """
    log_lik = _check_log_lik(log_lik)
    return jax.nn.logsumexp(log_lik, axis=0) - jnp.log(log_lik.shape[0])


def waic(log_lik) -> jax.Array:
    """WAIC in log form, mean_s l_s - var_s l_s (sample variance, ddof 1) [N].

    Examples:
        Input 0: mean -2, variance ((-1 + 2)^2 + (-3 + 2)^2) / (2 - 1) = 2.

        >>> waic(jnp.array([[-1.0, -10.0], [-3.0, -10.0]])).tolist()
        [-4.0, -10.0]
    """
    log_lik = _check_log_lik(log_lik, min_samples=2, allow_neg_inf=False)
    return _mean(log_lik) - _variance(log_lik)


def disagreement(log_lik) -> jax.Array:
    """1 / sum_s w_s^2 (effective number of samples; S when all agree, 1 when one dominates).

    Examples:
        Input 0: w = softmax(-1, -3) = (0.8808, 0.1192); the samples agree on input 1.

        >>> log_lik = jnp.array([[-1.0, -10.0], [-3.0, -10.0]])
        >>> [round(v, 4) for v in disagreement(log_lik).tolist()]
        [1.2658, 2.0]
        >>> round(1 / (0.880797**2 + 0.119203**2), 4)
        1.2658
    """
    log_w = _log_weights(_check_log_lik(log_lik, allow_neg_inf=False))
    return jnp.exp(-jax.nn.logsumexp(2.0 * log_w, axis=0))


def weight_entropy(log_lik) -> jax.Array:
    """-sum_s w_s log w_s (log S when all agree, 0 when one dominates).

    Examples:
        >>> import math
        >>> log_lik = jnp.array([[-1.0, -10.0], [-3.0, -10.0]])
        >>> [round(v, 4) for v in weight_entropy(log_lik).tolist()]
        [0.3653, 0.6931]
        >>> w = 1 / (1 + math.exp(-2))  # softmax(-1, -3)[0]
        >>> round(-w * math.log(w) - (1 - w) * math.log(1 - w), 4), round(math.log(2), 4)
        (0.3653, 0.6931)
    """
    log_w = _log_weights(_check_log_lik(log_lik, allow_neg_inf=False))
    return -jnp.sum(jnp.exp(log_w) * log_w, axis=0)


def std_log_likelihood(log_lik) -> jax.Array:
    """Sample standard deviation (ddof 1) of log p(x | theta_s) over samples [N].

    Examples:
        >>> log_lik = jnp.array([[-1.0, -10.0], [-3.0, -10.0]])
        >>> [round(v, 4) for v in std_log_likelihood(log_lik).tolist()]  # sqrt(2), 0
        [1.4142, 0.0]
    """
    return jnp.sqrt(_variance(_check_log_lik(log_lik, min_samples=2, allow_neg_inf=False)))


def typicality_entropy(log_lik_in) -> jax.Array:
    """H = mean over in-distribution test inputs of -mean_s log p(x | theta_s) (a scalar).

    Examples:
        >>> float(typicality_entropy(jnp.array([[-1.0, -10.0], [-3.0, -10.0]])))  # (2 + 10) / 2
        6.0
    """
    return -jnp.mean(_mean(_check_log_lik(log_lik_in, allow_neg_inf=False)))


def typicality(log_lik, entropy) -> jax.Array:
    """|-mean_s log p(x | theta_s) - H| [N] (the typicality test on one-element sequences).

    Examples:
        Mean negative log-likelihoods 2 and 10 are both 4 nats from H = 6:

        >>> log_lik = jnp.array([[-1.0, -10.0], [-3.0, -10.0]])
        >>> typicality(log_lik, typicality_entropy(log_lik)).tolist()
        [4.0, 4.0]
    """
    entropy = _check_entropy(entropy)
    return jnp.abs(-_mean(_check_log_lik(log_lik)) - entropy)


def typicality_per_input(log_likelihood, held_out_log_likelihood) -> jax.Array:
    """|-log p(x) - H| ``[N]``, H = mean over held-out inputs of -log p (eq. 4.18; larger = OOD).

    The typicality test on one-element sequences for a single model (``log_likelihood [N]``, the
    inputs scored; ``held_out_log_likelihood [M]``, held-out in-distribution inputs, e.g. a
    validation carve: never the test inputs). It is :func:`typicality` with S = 1 and H from
    :func:`typicality_entropy` of the held-out likelihoods.

    Examples:
        H = 3 nats from the held-out set; NLLs 1 and 6 are 2 and 3 nats away:

        >>> typicality_per_input(jnp.array([-1.0, -6.0]), jnp.array([-2.0, -4.0])).tolist()
        [2.0, 3.0]
    """
    for name, values in (
        ("log_likelihood", log_likelihood),
        ("held_out_log_likelihood", held_out_log_likelihood),
    ):
        if np.ndim(values) != 1:
            raise InputError(
                f"{name} must be [N] (one log p(x) per input), got {np.shape(values)}."
            )
    entropy = typicality_entropy(jnp.asarray(held_out_log_likelihood)[None])
    return typicality(jnp.asarray(log_likelihood)[None], entropy)


def _check_entropy(entropy) -> jax.Array:
    entropy = real_array("entropy", entropy, what="(a scalar H)")
    if entropy.ndim:
        raise InputError(f"entropy H must be a scalar, got shape {entropy.shape}.")
    if not is_traced(entropy) and not bool(jnp.isfinite(entropy)):
        raise InputError(
            f"entropy H must be finite, got {float(entropy)}; compute it with "
            "typicality_entropy(log_lik_in) on the in-distribution stack."
        )
    return entropy


class StackedScore(NamedTuple):
    """A score of ``log_lik[S, N]`` with its declared direction.

    Examples:
        >>> score = STACKED_SCORES["std_ll"]
        >>> score.higher_is_ood, score.needs_entropy, score.description
        (True, False, 'std_s log p(x|theta_s) (ddof 1)')
        >>> [round(v, 4) for v in score.fn(jnp.array([[-1.0, -10.0], [-3.0, -10.0]])).tolist()]
        [1.4142, 0.0]
    """

    fn: Callable[..., jax.Array]
    higher_is_ood: bool
    description: str
    needs_entropy: bool = False


STACKED_SCORES: dict[str, StackedScore] = {
    "expected_ll": StackedScore(expected_log_likelihood, False, "mean_s log p(x|theta_s)"),
    "log_predictive": StackedScore(log_predictive, False, "log mean_s p(x|theta_s)"),
    "waic": StackedScore(waic, False, "mean_s log p - var_s log p (ddof 1)"),
    "disagreement": StackedScore(disagreement, False, "1 / sum_s w_s^2, w = softmax_s log p"),
    "entropy": StackedScore(weight_entropy, False, "-sum_s w_s log w_s, w = softmax_s log p"),
    "std_ll": StackedScore(std_log_likelihood, True, "std_s log p(x|theta_s) (ddof 1)"),
    "typicality": StackedScore(typicality, True, "|-mean_s log p(x|theta_s) - H|", True),
}


def stacked_scores(
    log_lik, *, entropy=None, names: Sequence[str] | None = None
) -> dict[str, jax.Array]:
    """Several scores of one ``log_lik[S, N]`` in one jitted call.

    ``names`` defaults to every score (typicality only when ``entropy`` H is given; compute it
    with :func:`typicality_entropy` on the in-distribution stack).

    Examples:
        >>> log_lik = jnp.array([[-1.0, -10.0], [-3.0, -10.0]])
        >>> sorted(stacked_scores(log_lik))
        ['disagreement', 'entropy', 'expected_ll', 'log_predictive', 'std_ll', 'waic']
        >>> scores = stacked_scores(log_lik, entropy=6.0, names=("expected_ll", "typicality"))
        >>> {name: score.tolist() for name, score in scores.items()}
        {'expected_ll': [-2.0, -10.0], 'typicality': [4.0, 4.0]}
    """
    if names is None:
        names = tuple(
            n for n, s in STACKED_SCORES.items() if entropy is not None or not s.needs_entropy
        )
    if isinstance(names, str):
        raise InputError(f"names must be a sequence of score names, got the string {names!r}.")
    names = tuple(names)
    unknown = [n for n in names if n not in STACKED_SCORES]
    if unknown:
        raise InputError(f"Unknown scores {unknown}; known: {sorted(STACKED_SCORES)}.")
    if entropy is None and any(STACKED_SCORES[n].needs_entropy for n in names):
        raise InputError(
            "typicality needs entropy=H; compute it with typicality_entropy(log_lik_in) on the "
            "in-distribution stack."
        )
    if entropy is not None:
        entropy = _check_entropy(entropy)
    allow_neg_inf = all(n in _NEG_INF_OK for n in names)
    log_lik = _check_log_lik(log_lik, min_samples=2, allow_neg_inf=allow_neg_inf)
    return _stacked_jit(log_lik, entropy, names)


# Scores defined (not NaN) where a log-likelihood is -inf.
_NEG_INF_OK = frozenset({"expected_ll", "log_predictive", "typicality"})


@functools.partial(jax.jit, static_argnames="names")
def _stacked_jit(log_lik, entropy, names):
    out = {}
    for name in names:
        score = STACKED_SCORES[name]
        out[name] = score.fn(log_lik, entropy) if score.needs_entropy else score.fn(log_lik)
    return out

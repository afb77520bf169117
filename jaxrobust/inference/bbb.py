"""Bayes by backprop (Blundell et al. 2015, "Weight Uncertainty in Neural Networks"; the
dissertation's Ch.3 eqs. 3.4-3.8).

A mean-field Gaussian q(w | mu, rho) = prod_j N(w_j; mu_j, sigma_j^2), sigma = softplus(rho),
held as a plain dict ``{"mu": tree, "rho": tree}`` (saves with Orbax). Weights are sampled by
reparameterisation, w = mu + sigma * eps with eps ~ N(0, I), and the weight term of the loss
(eq. 3.8) is the one-sample Monte Carlo estimate

    KL(q || p) ~ log q(w | mu, rho) - log p(w),   w ~ q,

added to the minibatch's negative log likelihood (the digest: once per minibatch). The prior is
a zero-mean Gaussian or Blundell's scale mixture

    p(w) = prod_j [pi N(w_j; 0, sigma1^2) + (1 - pi) N(w_j; 0, sigma2^2)],

evaluated in log space with logaddexp, so a tiny sigma2 does not underflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
MU_INITS = ("normal", "params")


class ScaleMixturePrior(NamedTuple):
    """pi N(0, sigma1^2) + (1 - pi) N(0, sigma2^2) per weight. Blundell et al. search
    -log sigma1 in {0, 1, 2} and -log sigma2 in {6, 7, 8}; the dissertation fixes pi = 0.5 and
    leaves the sigmas open, so the defaults are the grid's sigma1 = 1, sigma2 = exp(-6).

    Examples:
        With equal scales the mixture is that Gaussian: log N(0; 0, 1) = -log(2 pi) / 2.

        >>> round(float(prior_log_prob(jnp.zeros(1), ScaleMixturePrior(0.5, 1.0, 1.0))), 4)
        -0.9189
        >>> prior = ScaleMixturePrior()  # pi = 1/2 of N(0, 1) and of N(0, e^-12)
        >>> round(float(prior_log_prob(jnp.zeros(1), prior)), 4)
        4.3904
        >>> round(math.log(0.5 * (1 + math.exp(6))) - 0.5 * math.log(2 * math.pi), 4)
        4.3904
    """

    pi: float = 0.5
    sigma1: float = 1.0
    sigma2: float = math.exp(-6.0)


class GaussianPrior(NamedTuple):
    """N(0, sigma^2) per weight.

    Examples:
        >>> round(float(prior_log_prob({"w": jnp.array([0.0, 2.0])}, GaussianPrior(2.0))), 4)
        -3.7242
        >>> round(2 * (-0.5 * math.log(2 * math.pi) - math.log(2.0)) - 0.5, 4)
        -3.7242
    """

    sigma: float = 1.0


Prior = ScaleMixturePrior | GaussianPrior


def _check_variational(variational: Any) -> tuple[PyTree, PyTree]:
    if not isinstance(variational, Mapping) or set(variational) != {"mu", "rho"}:
        keys = sorted(variational) if isinstance(variational, Mapping) else type(variational)
        raise ValueError(
            f'variational parameters must be a dict {{"mu": tree, "rho": tree}}, got {keys}.'
        )
    mu, rho = variational["mu"], variational["rho"]
    if jax.tree.structure(mu) != jax.tree.structure(rho):
        raise ValueError('variational "mu" and "rho" must have the same tree structure.')
    return mu, rho


def _positive(name: str, value: Any) -> None:
    if isinstance(value, (int, float)) and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}.")


def _split_like(key: jax.Array, tree: PyTree) -> PyTree:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten(list(jax.random.split(key, len(leaves))))


def _normal_log_prob(x: jax.Array, loc: Any, sigma: Any) -> jax.Array:
    return -0.5 * jnp.square((x - loc) / sigma) - jnp.log(sigma) - _HALF_LOG_2PI


def mean_field_init(
    key: jax.Array,
    params: PyTree,
    *,
    mu_init: str = "normal",
    mu_std: float = 0.1,
    rho_init: float = -3.0,
) -> dict:
    """Variational parameters shaped like ``params``.

    ``mu_init="normal"``: mu ~ N(0, mu_std^2), the dissertation's "mu ~ N(0, 0.1)" read with
    0.1 as the standard deviation; ``"params"``: mu = params (e.g. a pretrained network).
    rho = ``rho_init`` everywhere (-3, so sigma = softplus(-3) ~ 0.049).

    Examples:
        >>> params = {"w": jnp.ones((2, 3))}
        >>> variational = mean_field_init(jax.random.key(0), params, mu_init="params")
        >>> variational["mu"]["w"].tolist() == params["w"].tolist()
        True
        >>> variational["rho"]["w"].tolist()
        [[-3.0, -3.0, -3.0], [-3.0, -3.0, -3.0]]
        >>> round(float(jax.nn.softplus(-3.0)), 4)  # sigma
        0.0486
    """
    if mu_init not in MU_INITS:
        raise ValueError(f"Unknown mu_init {mu_init!r}; known: {list(MU_INITS)}.")
    _positive("mu_std", mu_std)
    if mu_init == "params":
        mu = jax.tree.map(jnp.asarray, params)
    else:
        mu = jax.tree.map(
            lambda p, k: mu_std * jax.random.normal(k, jnp.shape(p), jnp.result_type(p)),
            params,
            _split_like(key, params),
        )
    rho = jax.tree.map(lambda p: jnp.full(jnp.shape(p), rho_init, jnp.result_type(p)), params)
    return {"mu": mu, "rho": rho}


def prior_log_prob(theta: PyTree, prior: Prior) -> jax.Array:
    """log p(theta), summed over every weight of every leaf.

    Examples:
        Two leaves with three weights at 0, under N(0, 1): 3 * -log(2 pi) / 2.

        >>> theta = {"b": jnp.zeros(1), "w": jnp.zeros(2)}
        >>> round(float(prior_log_prob(theta, GaussianPrior(1.0))), 4)
        -2.7568
    """
    if isinstance(prior, ScaleMixturePrior):
        if isinstance(prior.pi, (int, float)) and not 0.0 <= prior.pi <= 1.0:
            raise ValueError(f"ScaleMixturePrior.pi must be in [0, 1], got {prior.pi}.")
        _positive("ScaleMixturePrior.sigma1", prior.sigma1)
        _positive("ScaleMixturePrior.sigma2", prior.sigma2)
        log_pi = jnp.log(jnp.asarray(prior.pi, jnp.float32))
        log_1m_pi = jnp.log1p(-jnp.asarray(prior.pi, jnp.float32))

        def leaf(w):
            return jnp.sum(
                jnp.logaddexp(
                    log_pi + _normal_log_prob(w, 0.0, prior.sigma1),
                    log_1m_pi + _normal_log_prob(w, 0.0, prior.sigma2),
                )
            )

    elif isinstance(prior, GaussianPrior):
        _positive("GaussianPrior.sigma", prior.sigma)

        def leaf(w):
            return jnp.sum(_normal_log_prob(w, 0.0, prior.sigma))

    else:
        raise ValueError(
            f"prior must be a GaussianPrior or a ScaleMixturePrior, got {type(prior).__name__}."
        )
    return sum((leaf(w) for w in jax.tree.leaves(theta)), jnp.zeros((), jnp.float32))


def sample_params(key: jax.Array, variational: dict) -> PyTree:
    """One reparameterised draw w = mu + softplus(rho) * eps (one key per leaf).

    Examples:
        A very negative rho makes sigma = softplus(rho) vanish, so the draw is mu:

        >>> variational = {"mu": {"w": jnp.array([1.0, -2.0])}, "rho": {"w": jnp.full(2, -50.0)}}
        >>> sample_params(jax.random.key(0), variational)["w"].tolist()
        [1.0, -2.0]
    """
    mu, rho = _check_variational(variational)
    return jax.tree.map(
        lambda m, r, k: m + jax.nn.softplus(r) * jax.random.normal(k, jnp.shape(m), m.dtype),
        mu,
        rho,
        _split_like(key, mu),
    )


def mean_field_log_prob(theta: PyTree, variational: dict) -> jax.Array:
    """log q(theta | mu, rho), summed over all weights.

    Examples:
        rho = log(e - 1) is sigma = softplus(rho) = 1; at the mean, -log(2 pi) / 2 per weight:

        >>> rho = jnp.full(2, math.log(math.e - 1.0))
        >>> variational = {"mu": {"w": jnp.array([1.0, -2.0])}, "rho": {"w": rho}}
        >>> round(float(mean_field_log_prob({"w": jnp.array([1.0, -2.0])}, variational)), 4)
        -1.8379
    """
    mu, rho = _check_variational(variational)
    terms = jax.tree.map(
        lambda w, m, r: jnp.sum(_normal_log_prob(w, m, jax.nn.softplus(r))), theta, mu, rho
    )
    return sum(jax.tree.leaves(terms), jnp.zeros((), jnp.float32))


def kl_estimate(key: jax.Array, variational: dict, prior: Prior) -> tuple[PyTree, jax.Array]:
    """(theta, log q(theta) - log p(theta)) with theta ~ q: the one-sample Monte Carlo estimate
    of KL(q || p), eq. 3.8's weight term. Differentiable in mu and rho (reparameterisation);
    use theta for the likelihood term of the same step.

    Examples:
        When q is the prior N(0, 1), log q(theta) - log p(theta) is 0 for every draw:

        >>> rho = jnp.full(2, math.log(math.e - 1.0))  # sigma = 1
        >>> variational = {"mu": {"w": jnp.zeros(2)}, "rho": {"w": rho}}
        >>> theta, kl = kl_estimate(jax.random.key(0), variational, GaussianPrior(1.0))
        >>> theta["w"].shape, abs(float(kl)) < 1e-5
        ((2,), True)
    """
    theta = sample_params(key, variational)
    return theta, mean_field_log_prob(theta, variational) - prior_log_prob(theta, prior)


def gaussian_kl(variational: dict, sigma: float | GaussianPrior) -> jax.Array:
    """Closed-form KL(q || N(0, sigma^2 I)) =
    sum_j [log(sigma / sigma_j) + (sigma_j^2 + mu_j^2) / (2 sigma^2) - 1/2].

    Examples:
        q = N(1, 1) against N(0, 1): 1/2 per weight.

        >>> rho = jnp.full(2, math.log(math.e - 1.0))  # sigma = 1
        >>> round(float(gaussian_kl({"mu": {"w": jnp.ones(2)}, "rho": {"w": rho}}, 1.0)), 4)
        1.0
    """
    if isinstance(sigma, GaussianPrior):
        sigma = sigma.sigma
    _positive("sigma", sigma)
    mu, rho = _check_variational(variational)

    def leaf(m, r):
        s = jax.nn.softplus(r)
        return jnp.sum(
            jnp.log(sigma) - jnp.log(s) + (jnp.square(s) + jnp.square(m)) / (2 * sigma**2) - 0.5
        )

    return sum(jax.tree.leaves(jax.tree.map(leaf, mu, rho)), jnp.zeros((), jnp.float32))


def posterior_samples(key: jax.Array, variational: dict, num_samples: int) -> PyTree:
    """``num_samples`` independent draws from q, stacked on a leading [num_samples] axis.

    Examples:
        >>> rho = jnp.full(2, math.log(math.e - 1.0))  # sigma = 1
        >>> variational = {"mu": {"w": jnp.array([3.0, -3.0])}, "rho": {"w": rho}}
        >>> samples = posterior_samples(jax.random.key(0), variational, 10_000)
        >>> samples["w"].shape, jnp.round(samples["w"].mean(0), 1).tolist()
        ((10000, 2), [3.0, -3.0])
        >>> jnp.round(samples["w"].std(0), 1).tolist()
        [1.0, 1.0]
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}.")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    _check_variational(variational)
    keys = jax.random.split(key, num_samples)
    return jax.vmap(sample_params, in_axes=(0, None))(keys, variational)

"""Latent (encoder) attack: move the approximate posterior as far as possible within a ball.

The dissertation's attack on a VAE encoder (Ch. 5, eq. 5.1): for an encoder
``q(z|x) = N(mu(x), diag(exp(log_var(x))))``::

    e* = argmax_{||e|| <= delta, x + e in domain}  D_sym(q(z|x + e), q(z|x)),
    D_sym(p, q) = KL(p || q) + KL(q || p)

and for diagonal Gaussians ``p = N(m1, s1^2)``, ``q = N(m2, s2^2)`` (per latent coordinate)::

    KL(p || q) = 1/2 [log s2^2 - log s1^2 + (s1^2 + (m1 - m2)^2) / s2^2 - 1]
    D_sym      = 1/2 sum [s1^2 / s2^2 + s2^2 / s1^2 + (m1 - m2)^2 (1 / s1^2 + 1 / s2^2) - 2]

(the log terms cancel). ``D_sym`` is solved by projected gradient ascent as in PGD (Madry et al.
2018), with the same step as :func:`~jaxrobust.attacks.pgd`:
``x_{t+1} = clip_domain(x + P_delta(clip_domain(x_t + step_size * d_t) - x))`` with ``d_t`` the
sign of the gradient (L-inf) or the gradient over its L2 norm (L2), starting from a uniform draw
in the ball. ``D_sym`` is zero with zero gradient at ``e = 0``, so without ``random_start`` the
iterates stay at ``x`` (unless ``encode_fn`` is not differentiable there): use the random start.
The attack returns the iterate with the largest divergence per example (never below the start).

Other latent families: ``encode_fn(x)`` may return any pytree of the distribution's parameters
(a Bernoulli's logits, a von Mises-Fisher's ``(mean, concentration)``, a dict, ...) with a
leading batch axis on every leaf, and ``divergence(params_a, params_b) -> [B]`` is then the
quantity maximised (e.g. a symmetric KL of that family); the default is ``D_sym`` above on
Gaussian ``(mu, log_var)`` pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrobust.attacks._checks import (
    DEFAULT_DOMAIN,
    Domain,
    check_epsilon,
    check_finite_result,
    check_inputs,
    check_positive_int,
    clip_to_domain,
    eval_shape_or_refuse,
    positional_key,
)
from jaxrobust.attacks.gradient import (
    _check_key,
    _check_norm,
    _per_example,
    _projected_step,
    _random_in_ball,
)
from jaxrobust.distributions import latent as gaussian_latent
from jaxrobust.errors import InputError

EncodeFn = Callable[[jax.Array], Any]  # x [B, ...] -> latent parameters, e.g. (mu, log_var)
Divergence = Callable[[Any, Any], jax.Array]  # (params_a, params_b) -> [B]

__all__ = ["latent_attack", "symmetric_gaussian_kl"]


def symmetric_gaussian_kl(
    mu1: jax.Array, log_var1: jax.Array, mu2: jax.Array, log_var2: jax.Array
) -> jax.Array:
    """``KL(p || q) + KL(q || p)`` for diagonal Gaussians ``p = N(mu1, e^log_var1)``, ``q =
    N(mu2, e^log_var2)``, summed over all but the leading (batch) axis: ``[B]``.

    Examples:
      Per coordinate, a unit mean shift at unit variance gives ``1``, and variances 1 and 4 at
      the same mean give ``(4 + 1/4 - 2) / 2 = 1.125`` (3.375 over three coordinates):

      >>> import jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> mu1, mu2 = jnp.zeros((2, 3)), jnp.zeros((2, 3)).at[0, 0].set(1.0)
      >>> log_var1, log_var2 = jnp.zeros((2, 3)), jnp.zeros((2, 3)).at[1, :].set(jnp.log(4.0))
      >>> d = attacks.symmetric_gaussian_kl(mu1, log_var1, mu2, log_var2)
      >>> print(np.asarray(d, float).round(4))
      [1.    3.375]
      >>> print(bool(jnp.allclose(d, attacks.symmetric_gaussian_kl(mu2, log_var2, mu1, log_var1))))
      True
    """

    def flat(a):  # [B, ...] -> [B, D]: the latent family sums over its last axis
        return a.reshape(a.shape[0], -1)

    return gaussian_latent.symmetric_gaussian_kl(
        (flat(mu1), flat(log_var1)), (flat(mu2), flat(log_var2))
    )


def _check_encode_fn(encode_fn: EncodeFn, x: jax.Array, divergence: Divergence | None) -> None:
    """The default needs a Gaussian pair ``(mu, log_var)``; a given ``divergence`` takes any
    pytree of parameters with a leading batch axis on every leaf, and must return ``[B]``."""
    out = eval_shape_or_refuse("encode_fn", encode_fn, x)
    if divergence is None:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise InputError(
                "encode_fn(x) must return a pair (mu, log_var) for the default Gaussian "
                "divergence; for another latent family pass divergence=fn(params_a, params_b)."
            )
        mu, log_var = out
        if mu.shape != log_var.shape or len(mu.shape) < 2 or mu.shape[0] != x.shape[0]:
            raise InputError(
                f"encode_fn(x) must return mu and log_var of the same shape [{x.shape[0]}, ...], "
                f"got {mu.shape} and {log_var.shape}."
            )
        return
    leaves = jax.tree_util.tree_leaves(out)
    if not leaves:
        raise InputError("encode_fn(x) returned no arrays; it must return the latent parameters.")
    bad = [leaf.shape for leaf in leaves if len(leaf.shape) < 1 or leaf.shape[0] != x.shape[0]]
    if bad:
        raise InputError(
            f"Every array encode_fn(x) returns must have the leading batch dimension "
            f"{x.shape[0]} of the inputs; got shapes {bad}."
        )
    shape = eval_shape_or_refuse("divergence", divergence, out, out)
    shape = getattr(shape, "shape", shape)
    if shape != (x.shape[0],):
        raise InputError(
            f"divergence(params_a, params_b) must return one value per input, shape "
            f"({x.shape[0]},), got {shape}; sum over the latent dimensions, not the batch."
        )


def _gaussian_divergence(params_a, params_b) -> jax.Array:
    """``symmetric_gaussian_kl`` on two ``(mu, log_var)`` pairs."""
    return symmetric_gaussian_kl(*params_a, *params_b)


@positional_key(2)
def latent_attack(
    encode_fn: EncodeFn,
    x: jax.Array,
    *,
    key: jax.Array | None = None,
    delta: float | jax.Array,
    step_size: float | jax.Array,
    num_steps: int,
    norm: str = "linf",
    random_start: bool = True,
    domain: Domain = DEFAULT_DOMAIN,
    divergence: Divergence | None = None,
) -> jax.Array:
    """Maximise ``D(q(z|x + e), q(z|x))`` over ``||e||_norm <= delta`` (eq. 5.1).

    Args:
      encode_fn: ``x [B, ...] -> params``, the parameters of the approximate posterior, examples
        independent of each other: ``(mu [B, ...], log_var [B, ...])`` of a diagonal Gaussian
        for the default divergence, any pytree with a leading batch axis on every leaf with a
        given ``divergence``.
      x: inputs ``[B, ...]`` inside ``domain``.
      key: PRNG key for the random start (keyword-only; required when ``random_start``). A key
        passed positionally after ``x`` still works, with a ``DeprecationWarning``.
      delta: radius of the ball, a scalar or one per input ``[B]``; >= 0.
      step_size: step length in ``norm``, a scalar or ``[B]``; >= 0 (e.g. ``2.5 * delta /
        num_steps``).
      num_steps: gradient steps (static; 0 returns the random start).
      norm: ``"linf"`` or ``"l2"``.
      random_start: start uniformly in the ball (recommended: the gradient is zero at ``x``).
      domain: ``(low, high)`` for clipping every iterate, or None (unbounded).
      divergence: ``(params_a, params_b) -> [B]``, the divergence maximised, called as
        ``divergence(encode_fn(x + e), encode_fn(x))``, e.g. the ``divergence`` of a latent
        family of :mod:`jaxrobust.distributions.latent`; None: :func:`symmetric_gaussian_kl` on
        ``(mu, log_var)`` pairs.

    Returns:
      Adversarial inputs, the shape and dtype of ``x``: the iterate of largest divergence.

    Jittable with ``encode_fn``, ``num_steps``, ``norm``, ``random_start``, ``domain`` and
    ``divergence`` static.

    Examples:
      A linear encoder ``mu = x a`` with unit variance: ``D_sym = (e . a)^2``, largest over the
      L-inf ball at the corner ``e = +-delta sign(a)``, with value ``(delta ||a||_1)^2 = 0.09``.

      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> a = jnp.array([[1.0], [-2.0]])
      >>> encode_fn = lambda x: (x @ a, jnp.zeros((x.shape[0], 1)))
      >>> x = jnp.array([[0.5, 0.5], [0.3, 0.6]])
      >>> x_adv = attacks.latent_attack(
      ...     encode_fn, x, key=jax.random.key(0), delta=0.1, step_size=0.05, num_steps=10
      ... )
      >>> d = attacks.symmetric_gaussian_kl(*encode_fn(x_adv), *encode_fn(x))
      >>> print(np.asarray(d, float).round(4), np.asarray(jnp.abs(x_adv - x), float).round(4))
      [0.09 0.09] [[0.1 0.1]
       [0.1 0.1]]

      Another family: any pytree of parameters and its own divergence, here a dict with the
      squared distance of the means (equal to ``D_sym`` above at unit variance).

      >>> encode_mean = lambda x: {"mean": x @ a}
      >>> squared = lambda p, q: jnp.sum((p["mean"] - q["mean"]) ** 2, axis=1)
      >>> x_adv2 = attacks.latent_attack(
      ...     encode_mean, x, key=jax.random.key(0), delta=0.1, step_size=0.05, num_steps=10,
      ...     divergence=squared,
      ... )
      >>> print(np.asarray(squared(encode_mean(x_adv2), encode_mean(x)), float).round(4))
      [0.09 0.09]
    """
    _check_norm(norm)
    num_steps = check_positive_int("num_steps", num_steps, minimum=0)
    x = check_inputs(x, domain)
    _check_encode_fn(encode_fn, x, divergence)
    check_epsilon("delta", delta)
    check_epsilon("step_size", step_size)
    if random_start:
        _check_key(key, "latent_attack with random_start=True", "random_start=False")

    eps = _per_example(delta, x, "delta")
    step = _per_example(step_size, x, "step_size")
    divergence_fn = _gaussian_divergence if divergence is None else divergence
    params0 = jax.tree_util.tree_map(jax.lax.stop_gradient, encode_fn(x))
    keep = (x.shape[0],) + (1,) * (x.ndim - 1)

    def divergence_at(x_t):
        return divergence_fn(encode_fn(x_t), params0)

    def total(x_t):
        values = divergence_at(x_t)
        return jnp.sum(values), values

    grad_and_values = jax.grad(total, has_aux=True)  # (grad, per-example values)

    x_adv = x
    if random_start:
        x_adv = clip_to_domain(x + _random_in_ball(key, x, eps, norm), domain)

    def body(_, state):
        x_t, best_x, best_value = state
        grad, value = grad_and_values(x_t)
        better = value > best_value
        best_x = jnp.where(better.reshape(keep), x_t, best_x)
        best_value = jnp.where(better, value, best_value)
        return _projected_step(x, x_t, grad, step, eps, norm, domain), best_x, best_value

    init = (x_adv, x_adv, jnp.full((x.shape[0],), -jnp.inf, x.dtype))
    x_last, best_x, best_value = jax.lax.fori_loop(0, num_steps, body, init)
    better = divergence_at(x_last) > best_value
    result = jnp.where(better.reshape(keep), x_last, best_x)
    return check_finite_result(x, result, "latent_attack")

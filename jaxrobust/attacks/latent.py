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
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxrobust.attacks._checks import (
    DEFAULT_DOMAIN,
    Domain,
    check_epsilon,
    check_inputs,
    check_positive_int,
    clip_to_domain,
)
from jaxrobust.attacks.gradient import (
    _check_key,
    _check_norm,
    _per_example,
    _projected_step,
    _random_in_ball,
)

EncodeFn = Callable[[jax.Array], tuple[jax.Array, jax.Array]]  # x [B, ...] -> (mu, log_var)

__all__ = ["latent_attack", "symmetric_gaussian_kl"]


def symmetric_gaussian_kl(
    mu1: jax.Array, log_var1: jax.Array, mu2: jax.Array, log_var2: jax.Array
) -> jax.Array:
    """``KL(p || q) + KL(q || p)`` for diagonal Gaussians ``p = N(mu1, e^log_var1)``, ``q =
    N(mu2, e^log_var2)``, summed over all but the leading (batch) axis: ``[B]``."""
    diff_log_var = log_var1 - log_var2
    per_coordinate = 0.5 * (
        jnp.exp(diff_log_var)
        + jnp.exp(-diff_log_var)
        + jnp.square(mu1 - mu2) * (jnp.exp(-log_var1) + jnp.exp(-log_var2))
        - 2.0
    )
    return jnp.sum(per_coordinate, axis=tuple(range(1, per_coordinate.ndim)))


def _check_encode_fn(encode_fn: EncodeFn, x: jax.Array) -> None:
    out = jax.eval_shape(encode_fn, x)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError("encode_fn(x) must return a pair (mu, log_var).")
    mu, log_var = out
    if mu.shape != log_var.shape or len(mu.shape) < 2 or mu.shape[0] != x.shape[0]:
        raise ValueError(
            f"encode_fn(x) must return mu and log_var of the same shape [{x.shape[0]}, ...], got "
            f"{mu.shape} and {log_var.shape}."
        )


def latent_attack(
    encode_fn: EncodeFn,
    x: jax.Array,
    key: jax.Array | None = None,
    *,
    delta: float | jax.Array,
    step_size: float | jax.Array,
    num_steps: int,
    norm: str = "linf",
    random_start: bool = True,
    domain: Domain = DEFAULT_DOMAIN,
) -> jax.Array:
    """Maximise ``D_sym(q(z|x + e), q(z|x))`` over ``||e||_norm <= delta`` (eq. 5.1).

    Args:
      encode_fn: ``x [B, ...] -> (mu [B, ...], log_var [B, ...])``, a diagonal Gaussian
        encoder, examples independent of each other.
      x: inputs ``[B, ...]`` inside ``domain``.
      key: PRNG key for the random start (required when ``random_start``).
      delta: radius of the ball, a scalar or one per input ``[B]``; >= 0.
      step_size: step length in ``norm``, a scalar or ``[B]``; >= 0 (e.g. ``2.5 * delta /
        num_steps``).
      num_steps: gradient steps (static; 0 returns the random start).
      norm: ``"linf"`` or ``"l2"``.
      random_start: start uniformly in the ball (recommended: the gradient is zero at ``x``).
      domain: ``(low, high)`` for clipping every iterate, or None (unbounded).

    Returns:
      Adversarial inputs, the shape and dtype of ``x``: the iterate of largest divergence.

    Jittable with ``encode_fn``, ``num_steps``, ``norm``, ``random_start`` and ``domain``
    static.
    """
    _check_norm(norm)
    num_steps = check_positive_int("num_steps", num_steps, minimum=0)
    x = check_inputs(x, domain)
    _check_encode_fn(encode_fn, x)
    check_epsilon("delta", delta)
    check_epsilon("step_size", step_size)
    if random_start:
        _check_key(key, "latent_attack with random_start=True", "random_start=False")

    eps = _per_example(delta, x, "delta")
    step = _per_example(step_size, x, "step_size")
    mu0, log_var0 = jax.tree_util.tree_map(jax.lax.stop_gradient, encode_fn(x))
    keep = (x.shape[0],) + (1,) * (x.ndim - 1)

    def divergence(x_t):
        mu, log_var = encode_fn(x_t)
        return symmetric_gaussian_kl(mu, log_var, mu0, log_var0)

    def total(x_t):
        values = divergence(x_t)
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
    better = divergence(x_last) > best_value
    return jnp.where(better.reshape(keep), x_last, best_x)

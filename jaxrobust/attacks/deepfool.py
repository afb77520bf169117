"""DeepFool, multi-class (L2).

S.-M. Moosavi-Dezfooli, A. Fawzi and P. Frossard, "DeepFool: a simple and accurate method to
fool deep neural networks", CVPR 2016 (Algorithm 2).

The candidates are the ``num_candidates`` top classes at ``x`` (the first is the prediction
``o``). At the current point ``x_i = x + (1 + overshoot) r_total`` (clipped to the domain), for
every candidate ``k != o``::

    w_k = grad Z_k(x_i) - grad Z_o(x_i),    f_k = Z_k(x_i) - Z_o(x_i)
    l   = argmin_k |f_k| / ||w_k||_2
    r_i = (|f_l| / ||w_l||_2 + 1e-4) * w_l / ||w_l||_2,    r_total += r_i

(the step of the authors' code: the linearised distance plus 1e-4 along ``w_l``). An example
stops once its predicted class is no longer ``o``; the result is
``clip(x + (1 + overshoot) r_total)``. For an affine classifier one step lands 1e-4 past the
nearest decision boundary, at distance ``min_k |f_k| / ||w_k||``.

Gradients of all candidates come from one ``jax.jacrev`` of the batch-summed candidate logits
(per example, as examples are independent); iterations run under ``lax.while_loop`` with a
per-example mask.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrobust.attacks._checks import (
    DEFAULT_DOMAIN,
    Domain,
    LogitsFn,
    check_epsilon,
    check_inputs,
    check_positive_int,
    clip_to_domain,
    finish_search,
    num_classes,
)
from jaxrobust.errors import InputError


class DeepFoolResult(NamedTuple):
    """What :func:`deepfool` returns: ``adversarial``, ``success`` and ``l2`` per input.

    Examples:
      >>> from jaxrobust import attacks
      >>> attacks.DeepFoolResult._fields
      ('adversarial', 'success', 'l2')
    """

    adversarial: jax.Array  # [B, ...]
    success: jax.Array  # [B] bool: the prediction at `adversarial` differs from that at x
    l2: jax.Array  # [B] ||adversarial - x||_2


def deepfool(
    logits_fn: LogitsFn,
    x: jax.Array,
    *,
    num_candidates: int = 10,
    overshoot: float = 0.02,
    max_iterations: int = 50,
    domain: Domain = DEFAULT_DOMAIN,
) -> DeepFoolResult:
    """Untargeted DeepFool on ``x [B, ...]`` away from the model's own predictions.

    Args:
      logits_fn: ``x [B, ...] -> logits [B, classes]``, examples independent of each other.
      x: inputs ``[B, ...]`` inside ``domain``.
      num_candidates: how many top classes (the prediction included) are considered; capped at
        the class count.
      overshoot: the final perturbation is ``(1 + overshoot) r_total``.
      max_iterations: the most DeepFool steps per example.
      domain: ``(low, high)`` every iterate is clipped to, or None (unbounded).

    Returns:
      ``DeepFoolResult(adversarial [B, ...], success [B] bool, l2 [B])``.

    Examples:
      For a linear model one step lands 1e-4 past the nearest decision boundary, at the
      distance ``|f| / ||w|| = |x_0 - x_1| / sqrt(2)``:

      >>> import jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> logits_fn = lambda x: x @ jnp.array([[1.0, -1.0], [-1.0, 1.0]])
      >>> x = jnp.array([[0.6, 0.4], [0.4, 0.6]])
      >>> result = attacks.deepfool(logits_fn, x, overshoot=0.0)
      >>> print(result.success, jnp.argmax(logits_fn(result.adversarial), axis=1))
      [ True  True] [1 0]
      >>> nearest = jnp.abs(x[:, 0] - x[:, 1]) / jnp.sqrt(2.0)
      >>> print(np.asarray(nearest + 1e-4, float).round(4), np.asarray(result.l2, float).round(4))
      [0.1415 0.1415] [0.1415 0.1415]
    """
    x = check_inputs(x, domain)
    num_candidates = check_positive_int("num_candidates", num_candidates, minimum=2)
    max_iterations = check_positive_int("max_iterations", max_iterations)
    check_epsilon("overshoot", overshoot)
    n_classes = num_classes(logits_fn, x)
    if n_classes < 2:
        raise InputError("DeepFool needs a classifier with at least 2 classes.")

    batch = x.shape[0]
    axes = tuple(range(1, x.ndim))
    trailing = tuple(range(2, x.ndim + 1))  # the input axes of a [B, K, ...] array
    scale = 1.0 + overshoot
    _, candidates = jax.lax.top_k(logits_fn(x), min(num_candidates, n_classes))  # [B, K]
    original = candidates[:, 0]

    def candidate_logits(x_cur):
        logits = logits_fn(x_cur)
        chosen = jnp.take_along_axis(logits, candidates, axis=1)  # [B, K]
        return jnp.sum(chosen, axis=0), (chosen, logits)

    jacobian = jax.jacrev(candidate_logits, has_aux=True)  # grads [K, B, ...]

    def cond(state):
        i, _, active = state
        return (i < max_iterations) & jnp.any(active)

    def body(state):
        i, r_total, active = state
        grads, (chosen, logits) = jacobian(clip_to_domain(x + scale * r_total, domain))
        active = active & (jnp.argmax(logits, axis=1) == original)
        grads = jnp.moveaxis(grads, 0, 1)  # [B, K, ...]
        w = grads[:, 1:] - grads[:, :1]
        f = chosen[:, 1:] - chosen[:, :1]  # [B, K-1]
        w_norm = jnp.sqrt(jnp.sum(w**2, axis=trailing))
        safe_norm = jnp.where(w_norm > 0, w_norm, 1.0)
        dist = jnp.where(w_norm > 0, jnp.abs(f) / safe_norm, jnp.inf)
        best = jnp.argmin(dist, axis=1)
        pick = best.reshape((batch, 1) + (1,) * (x.ndim - 1))
        w_l = jnp.take_along_axis(w, pick, axis=1)[:, 0]
        dist_l = jnp.take_along_axis(dist, best[:, None], axis=1)[:, 0]
        norm_l = jnp.take_along_axis(safe_norm, best[:, None], axis=1)[:, 0]
        step = jnp.where(jnp.isfinite(dist_l), (dist_l + 1e-4) / norm_l, 0.0)
        step = jnp.where(active, step, 0.0).reshape((batch,) + (1,) * (x.ndim - 1))
        return i + 1, r_total + step * w_l, active

    state = (jnp.int32(0), jnp.zeros_like(x), jnp.ones(batch, bool))
    _, r_total, _ = jax.lax.while_loop(cond, body, state)
    adversarial = clip_to_domain(x + scale * r_total, domain)
    success = jnp.argmax(logits_fn(adversarial), axis=1) != original
    l2 = jnp.sqrt(jnp.sum((adversarial - x) ** 2, axis=axes))
    return finish_search(x, DeepFoolResult(adversarial, success, l2), "deepfool", n_classes)

"""Jacobian-based Saliency Map Attack (JSMA), targeted, pairwise saliency map.

N. Papernot, P. McDaniel, S. Jha, M. Fredrikson, Z. B. Celik and A. Swami, "The limitations of
deep learning in adversarial settings", EuroS&P 2016 (Algorithm 3, the "increasing" and
"decreasing" saliency maps over feature pairs).

At the current point ``x_i`` with Jacobian ``J = dZ/dx`` (``Z`` logits, or probabilities when
``use_logits=False``) and target ``t``, for every pair of distinct features ``p != q`` still in
the search domain::

    alpha_pq = J_tp + J_tq,    beta_pq = sum_{j != t} (J_jp + J_jq)
    (p*, q*) = argmax_{p != q} -alpha_pq * beta_pq   over  alpha_pq > 0, beta_pq < 0

(``theta > 0``; for ``theta < 0`` the signs flip: ``alpha < 0, beta > 0``). Both features move
by ``theta`` and are clipped to the domain; a feature that reaches the bound it is moving
towards (``high`` for ``theta > 0``, ``low`` for ``theta < 0``) leaves the search domain, which
starts as the features not already at that bound. An example stops once it is classified as
``t``, when no pair satisfies the sign conditions, or after ``floor(gamma * F / 2)`` iterations
(at most ``gamma * F`` features changed; ``F`` = features per example). The dissertation's
setting (Ch. 5) is ``theta = 1``, ``gamma = 0.1`` on inputs in ``[0, 1]``.

As in the cleverhans ``jsma_symbolic`` reference the pair search is a dense ``[B, F, F]`` array:
fine for MNIST-size inputs (``784^2`` ~ 0.6M entries per example), quadratic memory for larger
ones (CIFAR-10's 3072 features need ~9.4M entries per example; attack small batches). Unlike
cleverhans, an example with no admissible pair stops instead of changing feature 0.

``saliency="target"`` is the simpler rule of the Adversarial Robustness Toolbox's
``SaliencyMapMethod``: the two search-domain features with the largest ``J_tp`` (the smallest for
``theta < 0``), ignoring the other classes; it needs one gradient instead of the Jacobian and no
pair array. It is the reference for the parity check against ART (``tools/attack_parity.py``).

The Jacobian of all classes comes from one ``jax.jacrev`` of the batch-summed logits (per
example, as examples are independent); iterations run under ``lax.while_loop`` with a
per-example mask. Jittable with ``logits_fn``, ``theta``, ``gamma``, ``domain`` and
``use_logits`` static.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.attacks._checks import (
    DEFAULT_DOMAIN,
    Domain,
    LogitsFn,
    check_inputs,
    check_labels,
    clip_to_domain,
    finish_search,
    num_classes,
)
from jaxrobust.errors import InputError

__all__ = ["JSMAResult", "jsma"]


class JSMAResult(NamedTuple):
    """What :func:`jsma` returns: ``adversarial``, ``success`` and ``num_changed`` per input.

    Examples:
      >>> from jaxrobust import attacks
      >>> attacks.JSMAResult._fields
      ('adversarial', 'success', 'num_changed')
    """

    adversarial: jax.Array  # [B, ...]
    success: jax.Array  # [B] bool: classified as the target at `adversarial`
    num_changed: jax.Array  # [B] int: features of `adversarial` that differ from x


def _check_theta_gamma(theta, gamma) -> tuple[float, float]:
    if not isinstance(theta, (int, float, np.number)) or not math.isfinite(theta) or theta == 0:
        raise InputError(
            f"theta must be a nonzero finite Python number (static: its sign picks the saliency "
            f"map), got {theta!r}."
        )
    if not isinstance(gamma, (int, float, np.number)) or not 0.0 <= gamma <= 1.0:
        raise InputError(f"gamma must be a Python number in [0, 1], got {gamma!r}.")
    return float(theta), float(gamma)


def jsma(
    logits_fn: LogitsFn,
    x: jax.Array,
    targets: jax.Array,
    *,
    theta: float = 1.0,
    gamma: float = 0.1,
    domain: Domain = DEFAULT_DOMAIN,
    use_logits: bool = True,
    saliency: str = "pairwise",
) -> JSMAResult:
    """Targeted JSMA on ``x [B, ...]`` towards ``targets [B]``.

    Args:
      logits_fn: ``x [B, ...] -> logits [B, classes]``, examples independent of each other.
      x: inputs ``[B, ...]`` inside ``domain``.
      targets: target classes ``[B]`` (integer).
      theta: change applied to each selected feature (static); ``> 0`` increases features,
        ``< 0`` decreases them (the sign conditions of the saliency map flip).
      gamma: maximum fraction of features changed, in ``[0, 1]``; the attack runs at most
        ``floor(gamma * F / 2)`` pair iterations.
      domain: ``(low, high)`` the features are clipped to, or None (unbounded: features never
        saturate and stay in the search domain).
      use_logits: saliency from the Jacobian of the logits (True) or of the softmax
        probabilities (False, the original paper).
      saliency: ``"pairwise"`` (Papernot et al.'s pair map above, as cleverhans, which the
        dissertation used) or ``"target"``: the two search-domain features with the largest
        target gradient ``J_tp`` (smallest for ``theta < 0``), no condition on the other classes
        (the Adversarial Robustness Toolbox's ``SaliencyMapMethod``; no ``[B, F, F]`` array).

    Returns:
      ``JSMAResult(adversarial [B, ...], success [B], num_changed [B])``.

    Examples:
      Four features; class 0 reads ``x_0 + x_1 - x_2 - x_3``, class 1 its negative. Towards
      class 1 the pair (2, 3) is the only one with ``alpha > 0`` (2) and ``beta < 0`` (-2): one
      iteration (``gamma * F / 2 = 1``) raises both by ``theta`` (clipped to 1), which flips it.

      >>> import jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> w = jnp.array([[1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0]])
      >>> x = jnp.array([[0.6, 0.6, 0.2, 0.2]])
      >>> result = attacks.jsma(lambda z: z @ w, x, jnp.array([1]), theta=1.0, gamma=0.5)
      >>> print(np.asarray(result.adversarial, float).round(3))
      [[0.6 0.6 1.  1. ]]
      >>> print(result.success, result.num_changed)
      [ True] [2]
    """
    x = check_inputs(x, domain)
    n_classes = num_classes(logits_fn, x)
    targets = check_labels(x, targets, "targets", n_classes)
    theta, gamma = _check_theta_gamma(theta, gamma)
    if saliency not in ("pairwise", "target"):
        raise InputError(f"saliency must be 'pairwise' or 'target', got {saliency!r}.")
    if n_classes < 2:
        raise InputError("JSMA needs a classifier with at least 2 classes.")

    batch = x.shape[0]
    num_features = math.prod(x.shape[1:])
    max_iterations = int(math.floor(gamma * num_features / 2 + 1e-9))
    increase = theta > 0
    x_flat = x.reshape(batch, num_features)
    rows = jnp.arange(batch)

    def outputs(flat):  # (saliency outputs z [B, K]: logits or probabilities, logits [B, K])
        logits = logits_fn(flat.reshape(x.shape))
        return (logits if use_logits else jax.nn.softmax(logits, axis=-1)), logits

    def target_total(flat):  # (sum_b z_{b, t_b}, logits): its gradient is J_t per example
        z, logits = outputs(flat)
        return jnp.sum(z[rows, targets]), logits

    def class_totals(flat):  # (sum_b z_{b, k} [K], logits): its Jacobian is J per example
        z, logits = outputs(flat)
        return jnp.sum(z, axis=0), logits

    def saturated(flat):
        if domain is None:
            return jnp.zeros(flat.shape, bool)
        return flat >= domain[1] if increase else flat <= domain[0]

    def cond(state):
        i, _, _, active = state
        return (i < max_iterations) & jnp.any(active)

    def pick_target(flat, search):
        grad_target, logits = jax.grad(target_total, has_aux=True)(flat)
        g = jnp.where(search, grad_target if increase else -grad_target, -jnp.inf)
        _, top2 = jax.lax.top_k(g, 2)
        return logits, top2[:, 0], top2[:, 1], jnp.any(search, axis=1)

    def pick_pairwise(flat, search):
        grads, logits = jax.jacrev(class_totals, has_aux=True)(flat)  # grads [K, B, F]
        is_target = jax.nn.one_hot(targets, n_classes, dtype=x.dtype)  # [B, K]
        grads = jnp.moveaxis(grads, 0, 1)  # [B, K, F]
        grad_target = jnp.einsum("bk,bkf->bf", is_target, grads)
        grad_other = jnp.sum(grads, axis=1) - grad_target
        alpha = grad_target[:, :, None] + grad_target[:, None, :]  # [B, F, F]
        beta = grad_other[:, :, None] + grad_other[:, None, :]
        signs = (alpha > 0) & (beta < 0) if increase else (alpha < 0) & (beta > 0)
        off_diagonal = ~jnp.eye(num_features, dtype=bool)
        valid = signs & search[:, :, None] & search[:, None, :] & off_diagonal
        score = jnp.where(valid, -alpha * beta, -jnp.inf).reshape(batch, -1)
        best = jnp.argmax(score, axis=1)
        found = jnp.any(valid, axis=(1, 2))
        return logits, best // num_features, best % num_features, found

    pick = pick_pairwise if saliency == "pairwise" else pick_target

    def body(state):
        i, flat, search, active = state
        logits, p, q, found = pick(flat, search)
        active = active & (jnp.argmax(logits, axis=1) != targets) & found
        step = jnp.where(active, theta, 0.0).astype(flat.dtype)
        flat = flat.at[rows, p].add(step).at[rows, q].add(step)
        flat = clip_to_domain(flat, domain)
        search = search & ~saturated(flat)
        return i + 1, flat, search, active

    state = (jnp.int32(0), x_flat, ~saturated(x_flat), jnp.ones(batch, bool))
    _, flat, _, _ = jax.lax.while_loop(cond, body, state)
    adversarial = flat.reshape(x.shape)
    success = jnp.argmax(logits_fn(adversarial), axis=1) == targets
    num_changed = jnp.sum(flat != x_flat, axis=1)
    result = JSMAResult(adversarial, success, num_changed)
    return finish_search(x, result, "jsma", n_classes, targets)

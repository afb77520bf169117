"""Carlini & Wagner L2 attack.

N. Carlini and D. Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017.

A change of variables keeps the candidate inside the domain ``(low, high)``::

    x'(w) = low + (high - low) * (tanh(w) + 1) / 2        (x'(w) = w when domain=None)

and Adam minimises, per example and for a constant ``c``::

    ||x'(w) - x||_2^2 + c * f(x'(w))
    f = max(max_{j != t} Z_j - Z_t, -kappa)     targeted (target t)
    f = max(Z_y - max_{j != y} Z_j, -kappa)     untargeted (label y)

(implemented as ``f + kappa >= 0``, which has the same minimiser). ``c`` is binary-searched per
example as in the original code: after a search step with a success the upper bound becomes
``c``, otherwise the lower bound does; the next ``c`` is the midpoint once an upper bound exists,
else ``10 c``. The successful ``x'`` with the smallest L2 over all steps and iterations is
returned. Success means the margin ``Z_t - max_{j != t} Z_j`` (targeted) or
``max_{j != y} Z_j - Z_y`` (untargeted) exceeds ``kappa``.

The whole batch is one program: the loss is summed over the batch (examples are independent,
so gradients and Adam's element-wise updates are per example), the Adam iterations run under
``lax.while_loop`` and the binary search under ``lax.scan``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrobust.attacks._checks import (
    DEFAULT_DOMAIN,
    Domain,
    LogitsFn,
    check_epsilon,
    check_inputs,
    check_labels,
    check_positive_int,
    check_targets,
    finish_search,
    is_concrete,
    num_classes,
)
from jaxrobust.errors import InputError

_NO_UPPER_BOUND = 1e10  # the original's "no successful constant yet"


class CWResult(NamedTuple):
    """What :func:`carlini_wagner_l2` returns: ``adversarial``, ``success`` and ``l2`` per input.

    Examples:
      >>> from jaxrobust import attacks
      >>> attacks.CWResult._fields
      ('adversarial', 'success', 'l2')
    """

    adversarial: jax.Array  # [B, ...]; the input itself where the attack failed
    success: jax.Array  # [B] bool
    l2: jax.Array  # [B] ||adversarial - x||_2 (0 where the attack failed)


def _margin(logits: jax.Array, cls: jax.Array, targeted: bool) -> jax.Array:
    """``Z_t - max_{j != t} Z_j`` (targeted) or ``max_{j != y} Z_j - Z_y`` (untargeted)."""
    own = jnp.take_along_axis(logits, cls[:, None], axis=1)[:, 0]
    is_own = jax.nn.one_hot(cls, logits.shape[-1], dtype=bool)
    other = jnp.max(jnp.where(is_own, -jnp.inf, logits), axis=1)
    return own - other if targeted else other - own


def _check_positive(name: str, value) -> None:
    if is_concrete(value):
        arr = np.asarray(value)
        if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise InputError(f"{name} must be finite and > 0, got {value!r}.")


def carlini_wagner_l2(
    logits_fn: LogitsFn,
    x: jax.Array,
    labels: jax.Array,
    *,
    targeted: bool = False,
    targets: jax.Array | None = None,
    confidence: float = 0.0,
    initial_const: float | jax.Array = 1e-3,
    binary_search_steps: int = 5,
    max_iterations: int = 100,
    learning_rate: float = 1e-2,
    domain: Domain = DEFAULT_DOMAIN,
    abort_early: bool = False,
) -> CWResult:
    """CW-L2 on a batch ``x [B, ...]`` with true ``labels [B]``.

    Args:
      logits_fn: ``x [B, ...] -> logits [B, classes]``, examples independent of each other.
      x: inputs ``[B, ...]`` inside ``domain``.
      labels: true classes ``[B]`` (integer).
      targeted, targets: reach ``targets [B]`` instead of leaving ``labels``.
      confidence: kappa >= 0, the margin the adversarial must exceed (no upper limit; the SDIM
        paper uses 0, 500 and 1000).
      initial_const: the first ``c``, a scalar or one per example ``[B]``.
      binary_search_steps: search steps over ``c`` (each restarts Adam from ``x``).
      max_iterations: Adam steps per search step.
      learning_rate: Adam's step size (> 0).
      domain: ``(low, high)`` of the tanh change of variables, or None (unbounded: ``w = x'``).
      abort_early: stop an example's search step when its loss, checked every
        ``max_iterations // 10`` steps, has not fallen by 0.01 % (per example, where the original
        checks the batch loss).

    Returns:
      ``CWResult(adversarial [B, ...], success [B] bool, l2 [B])``.

    Examples:
      A linear two-class model: the smallest L2 change that flips the decision has length
      ``|x_0 - x_1| / sqrt(2)``, and CW ends just past it.

      >>> import jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> logits_fn = lambda x: x @ jnp.array([[1.0, -1.0], [-1.0, 1.0]])
      >>> x, y = jnp.array([[0.6, 0.4], [0.4, 0.6]]), jnp.array([0, 1])
      >>> result = attacks.carlini_wagner_l2(
      ...     logits_fn, x, y, initial_const=1.0, binary_search_steps=3, max_iterations=50,
      ...     learning_rate=0.05,
      ... )
      >>> print(result.success, jnp.argmax(logits_fn(result.adversarial), axis=1))
      [ True  True] [1 0]
      >>> nearest = jnp.abs(x[:, 0] - x[:, 1]) / jnp.sqrt(2.0)
      >>> print(np.asarray(nearest, float).round(4), np.asarray(result.l2, float).round(2))
      [0.1414 0.1414] [0.14 0.14]
      >>> print(bool(jnp.all(result.l2 >= nearest)))
      True
    """
    x = check_inputs(x, domain)
    n_classes = num_classes(logits_fn, x)
    labels = check_labels(x, labels, num_classes=n_classes)
    targets = check_targets(x, targeted, targets, n_classes)
    check_epsilon("confidence", confidence)
    _check_positive("initial_const", initial_const)
    _check_positive("learning_rate", learning_rate)
    binary_search_steps = check_positive_int("binary_search_steps", binary_search_steps)
    max_iterations = check_positive_int("max_iterations", max_iterations)
    if n_classes < 2:
        raise InputError("The CW attack needs a classifier with at least 2 classes.")

    cls = targets if targeted else labels
    batch, dtype = x.shape[0], x.dtype
    axes = tuple(range(1, x.ndim))
    kappa = jnp.asarray(confidence, dtype)

    def per_example(v: jax.Array) -> jax.Array:
        return v.reshape((batch,) + (1,) * (x.ndim - 1))

    if domain is None:
        w0 = x

        def to_x(w):
            return w
    else:
        mid, half = (domain[1] + domain[0]) / 2, (domain[1] - domain[0]) / 2
        w0 = jnp.arctanh(jnp.clip((x - mid) / half, -1.0, 1.0) * 0.999999)

        def to_x(w):
            return mid + half * jnp.tanh(w)

    def total_loss(w, const):
        x_adv = to_x(w)
        l2sq = jnp.sum((x_adv - x) ** 2, axis=axes)
        margin = _margin(logits_fn(x_adv), cls, targeted)
        loss = l2sq + const * jnp.maximum(kappa - margin, 0.0)
        return jnp.sum(loss), (loss, x_adv, l2sq, margin)

    grad_fn = jax.grad(total_loss, has_aux=True)
    optimizer = optax.adam(learning_rate)
    check_every = max(max_iterations // 10, 1)

    def search_step(carry, _):
        const, lower, upper, best_l2sq, best_adv = carry

        def cond(state):
            i, _, _, active, *_ = state
            return (i < max_iterations) & jnp.any(active)

        def body(state):
            i, w, opt_state, active, prev_loss, step_ok, best_l2sq, best_adv = state
            grads, (loss, x_adv, l2sq, margin) = grad_fn(w, const)
            ok = active & (margin > kappa)
            better = ok & (l2sq < best_l2sq)
            best_l2sq = jnp.where(better, l2sq, best_l2sq)
            best_adv = jnp.where(per_example(better), x_adv, best_adv)
            step_ok = step_ok | ok
            updates, opt_state = optimizer.update(grads, opt_state, w)
            w = jnp.where(per_example(active), optax.apply_updates(w, updates), w)
            if abort_early:
                check = i % check_every == 0
                active = active & ~(check & (loss > prev_loss * 0.9999))
                prev_loss = jnp.where(check, loss, prev_loss)
            return i + 1, w, opt_state, active, prev_loss, step_ok, best_l2sq, best_adv

        no = jnp.zeros(batch, bool)
        state = (jnp.int32(0), w0, optimizer.init(w0), ~no, jnp.full(batch, jnp.inf, dtype), no)
        *_, step_ok, best_l2sq, best_adv = jax.lax.while_loop(
            cond, body, state + (best_l2sq, best_adv)
        )
        upper = jnp.where(step_ok, jnp.minimum(upper, const), upper)
        lower = jnp.where(step_ok, lower, jnp.maximum(lower, const))
        const = jnp.where(upper < 1e9, (lower + upper) / 2, const * 10)
        return (const, lower, upper, best_l2sq, best_adv), None

    carry = (
        jnp.broadcast_to(jnp.asarray(initial_const, dtype), (batch,)),
        jnp.zeros(batch, dtype),
        jnp.full(batch, _NO_UPPER_BOUND, dtype),
        jnp.full(batch, jnp.inf, dtype),
        x,
    )
    (*_, best_l2sq, best_adv), _ = jax.lax.scan(
        search_step, carry, None, length=binary_search_steps
    )
    success = jnp.isfinite(best_l2sq)
    l2 = jnp.sqrt(jnp.sum((best_adv - x) ** 2, axis=axes))
    result = CWResult(best_adv, success, l2)
    return finish_search(x, result, "carlini_wagner_l2", n_classes, labels, targets)

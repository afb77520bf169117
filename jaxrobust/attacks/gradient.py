"""Gradient attacks: FGSM, R+FGSM, PGD/BIM (L-inf and L2), and expectation over transformation.

All attacks take a per-example loss ``loss_fn(x [B, ...], y [B]) -> [B]`` (cross-entropy,
``margin_loss``, or any differentiable score such as a detector's) and ascend it (untargeted, at
the true labels) or descend it (targeted, at the target classes). Gradients are taken of
``sum_b loss(x, y)_b``, which is the per-example gradient as long as the model does not mix
examples (no batch norm in training mode).

- FGSM (Goodfellow et al. 2015): ``x_adv = clip(x + s * eps * sign(grad_x L(x, y)))`` with
  ``s = +1`` untargeted, ``s = -1`` targeted (``y`` = target).
- R+FGSM (Tramer et al. 2018): ``x' = clip(x + alpha * sign(N(0, I)))``, then an FGSM step of
  ``eps - alpha`` from ``x'``.
- PGD (Madry et al. 2018), BIM when ``random_start=False`` (Kurakin et al. 2017):
  ``x_{t+1} = clip_domain(x + P_eps(clip_domain(x_t + s * step * d_t) - x))``, ``d_t = sign(g_t)``
  (L-inf) or ``g_t / ||g_t||_2`` (L2), ``P_eps`` the projection onto the eps-ball of the norm.
  The random start is uniform in the ball: L-inf ``U(-eps, eps)^d``; L2 direction ``N(0, I)``
  normalised, radius ``eps * U^(1/d)``.
- EOT (Athalye et al. 2018): the loss averaged over ``num_samples`` draws of the randomness of a
  stochastic model, so that the attack follows the gradient of the expected loss.

Attacks are pure and jittable: mark ``loss_fn``, ``norm``, ``num_steps``, ``random_start``
(``fgsm``: only whether it is None), ``targeted`` and ``domain`` static, e.g.
``jax.jit(pgd, static_argnames=("loss_fn", "num_steps", "norm", "random_start", "targeted",
"domain"))`` or ``jax.jit(functools.partial(pgd, loss_fn, num_steps=10, ...))``. Value checks
(epsilon >= 0, inputs inside the domain) run only on concrete arrays. The key is keyword-only
(``key=``); :func:`pgd` and :func:`pgd_sweep` still accept it in its old positional place, with
a ``DeprecationWarning``. All of them return the adversarial inputs as an array (sweeps
``[E, B, ...]``); :func:`expectation_over_transformation` returns a loss for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.attacks._checks import (
    DEFAULT_DOMAIN,
    Domain,
    LossFn,
    check_epsilon,
    check_finite_result,
    check_inputs,
    check_labels,
    check_positive_int,
    check_targets,
    clip_to_domain,
    eval_shape_or_refuse,
    is_concrete,
    loss_num_classes,
    out_of_range,
    poison_out_of_range,
    positional_key,
)
from jaxrobust.errors import InputError

LossFnWithKey = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # (x, y, key) -> [B]
NORMS = ("linf", "l2")

__all__ = [
    "NORMS",
    "expectation_over_transformation",
    "fgsm",
    "fgsm_sweep",
    "pgd",
    "pgd_sweep",
]


# ----------------------------------------------------------------------------------------------
# Shared pieces


def _per_example(value, x: jax.Array, name: str) -> jax.Array:
    """A scalar, or one value per input ``[B]`` reshaped to broadcast against ``x``."""
    value = jnp.asarray(value, dtype=x.dtype)
    if value.ndim == 0:
        return value
    if value.shape == (x.shape[0],):
        return value.reshape(value.shape + (1,) * (x.ndim - 1))
    raise InputError(
        f"{name} must be a scalar or one value per input, shape ({x.shape[0]},), got shape "
        f"{value.shape}."
    )


def _attack_labels(x: jax.Array, labels, targeted: bool, targets, classes: int | None):
    """(The classes the loss is evaluated at: the labels, or the targets when targeted; bool
    ``[B]`` of the examples whose label or target is out of range, None if unknown)."""
    labels = check_labels(x, labels, num_classes=classes)
    targets = check_targets(x, targeted, targets, classes)
    bad = None
    if classes is not None:
        bad = out_of_range(labels, classes)
        if targets is not None:
            bad = bad | out_of_range(targets, classes)
    return (targets if targeted else labels), bad


def _finish(x: jax.Array, x_adv: jax.Array, bad: jax.Array | None, attack: str, sweep: bool):
    """Poison the examples with out-of-range labels (traced) and refuse NaN results (eager)."""
    if bad is not None:
        x_adv = poison_out_of_range(x_adv, bad[None] if sweep else bad)
    return check_finite_result(x, x_adv, attack)


def _check_loss_fn(loss_fn: LossFn, x: jax.Array, y: jax.Array) -> None:
    shape = eval_shape_or_refuse("loss_fn", loss_fn, x, y)
    if not hasattr(shape, "shape"):
        raise InputError(f"loss_fn(x, y) must return an array [B], got {shape}.")
    shape = shape.shape
    if shape != (x.shape[0],):
        raise InputError(
            f"loss_fn(x, y) must return one loss per input, shape ({x.shape[0]},), got {shape}; "
            "do not reduce over the batch (e.g. use cross_entropy_loss(logits_fn))."
        )


def _check_key(key, what: str, alternative: str) -> None:
    if key is None:
        raise InputError(
            f"{what} needs a PRNG key: pass key=jax.random.PRNGKey(seed), or {alternative}."
        )


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise InputError(f"norm must be one of {NORMS}, got {norm!r}.")


def _check_same_shape_or_scalar(name: str, value, epsilons: jax.Array) -> None:
    shape = np.shape(value)
    if shape not in ((), epsilons.shape[:1], epsilons.shape):
        raise InputError(
            f"{name} must be a scalar, one value per epsilon {epsilons.shape[:1]}, or shaped "
            f"like epsilons {epsilons.shape}; got shape {shape}."
        )


def _check_sweep_epsilons(x: jax.Array, epsilons) -> jax.Array:
    epsilons = jnp.asarray(epsilons, dtype=x.dtype)
    if epsilons.ndim not in (1, 2) or (epsilons.ndim == 2 and epsilons.shape[1] != x.shape[0]):
        raise InputError(
            f"epsilons must have shape [E] or [E, {x.shape[0]}] (one row per sweep point), got "
            f"{epsilons.shape}."
        )
    check_epsilon("epsilons", epsilons)
    return epsilons


def _loss_grad(loss_fn: LossFn, x: jax.Array, y: jax.Array) -> jax.Array:
    return jax.grad(lambda z: jnp.sum(loss_fn(z, y)))(x)


def _l2_norm(v: jax.Array) -> jax.Array:
    """Per-example L2 norm, shaped ``[B, 1, ..., 1]``."""
    return jnp.sqrt(jnp.sum(jnp.square(v), axis=tuple(range(1, v.ndim)), keepdims=True))


def _safe_l2_norm(v: jax.Array) -> jax.Array:
    """``sqrt(max(||v||^2, 1e-12))`` per example: a divisor that is never 0 (cleverhans' rule)."""
    sum_sq = jnp.sum(jnp.square(v), axis=tuple(range(1, v.ndim)), keepdims=True)
    return jnp.sqrt(jnp.maximum(sum_sq, 1e-12))


def _project(delta: jax.Array, eps: jax.Array, norm: str) -> jax.Array:
    """Projection of perturbations onto the eps-ball of ``norm`` (per example)."""
    if norm == "linf":
        return jnp.clip(delta, -eps, eps)
    return delta * jnp.minimum(1.0, eps / _safe_l2_norm(delta))


def _projected_step(x, x_t, ascent, step, eps, norm: str, domain: Domain) -> jax.Array:
    """One projected step up ``ascent``: ``clip(x + P_eps(clip(x_t + step * d) - x))``.

    ``d = sign(ascent)`` (L-inf) or ``ascent / sqrt(max(||ascent||^2, 1e-12))`` (L2); the order
    (domain clip, projection, domain clip) is that of Madry et al.'s and cleverhans' code.
    """
    direction = jnp.sign(ascent) if norm == "linf" else ascent / _safe_l2_norm(ascent)
    x_next = clip_to_domain(x_t + step * direction, domain)
    return clip_to_domain(x + _project(x_next - x, eps, norm), domain)


def _random_in_ball(key: jax.Array, x: jax.Array, eps: jax.Array, norm: str) -> jax.Array:
    """A perturbation uniform in the eps-ball of ``norm`` (per example)."""
    if norm == "linf":
        return eps * jax.random.uniform(key, x.shape, x.dtype, minval=-1.0, maxval=1.0)
    direction_key, radius_key = jax.random.split(key)
    direction = jax.random.normal(direction_key, x.shape, x.dtype)
    direction = direction / jnp.maximum(_l2_norm(direction), 1e-12)
    dim = math.prod(x.shape[1:])
    u = jax.random.uniform(radius_key, (x.shape[0],) + (1,) * (x.ndim - 1), x.dtype)
    return eps * u ** (1.0 / dim) * direction


# ----------------------------------------------------------------------------------------------
# FGSM


def _fgsm(loss_fn, x, y, epsilon, sign, domain, random_start, key) -> jax.Array:
    eps = _per_example(epsilon, x, "epsilon")
    start, step = x, eps
    if random_start is not None:
        alpha = _per_example(random_start, x, "random_start")
        noise = jnp.sign(jax.random.normal(key, x.shape, x.dtype))
        start = clip_to_domain(x + alpha * noise, domain)
        step = eps - alpha
    return clip_to_domain(start + sign * step * jnp.sign(_loss_grad(loss_fn, start, y)), domain)


def _check_fgsm(loss_fn, x, labels, targeted, targets, domain, random_start, key, classes):
    x = check_inputs(x, domain)
    y, bad = _attack_labels(x, labels, targeted, targets, loss_num_classes(loss_fn, x, classes))
    _check_loss_fn(loss_fn, x, y)
    if random_start is not None:
        check_epsilon("random_start", random_start)
        _check_key(key, "FGSM with random_start (R+FGSM)", "random_start=None")
    return x, y, bad


def _check_alpha_within(random_start, epsilon) -> None:
    if random_start is not None and is_concrete(random_start) and is_concrete(epsilon):
        if np.any(np.asarray(random_start) > np.asarray(epsilon)):
            raise InputError(
                f"random_start (alpha={random_start!r}) must not exceed epsilon ({epsilon!r}): "
                "R+FGSM steps eps - alpha after the random step; use a smaller alpha (e.g. "
                "eps / 2)."
            )


def fgsm(
    loss_fn: LossFn,
    x: jax.Array,
    labels: jax.Array,
    *,
    key: jax.Array | None = None,
    epsilon: float | jax.Array,
    targeted: bool = False,
    targets: jax.Array | None = None,
    domain: Domain = DEFAULT_DOMAIN,
    random_start: float | jax.Array | None = None,
    num_classes: int | None = None,
) -> jax.Array:
    """Fast gradient sign method (Goodfellow et al. 2015), optionally randomised (R+FGSM).

    ``x_adv = clip(x + eps * sign(grad_x L(x, y)))``; targeted: ``clip(x - eps * sign(grad_x
    L(x, t)))``, stepping down the loss at the target class ``t``. With ``random_start=alpha``
    (R+FGSM, Tramer et al. 2018): ``x' = clip(x + alpha * sign(N(0, I)))``, then a step of
    ``eps - alpha`` from ``x'``; the result stays within ``eps`` of ``x`` in L-inf.

    Args:
      loss_fn: per-example loss ``(x [B, ...], y [B]) -> [B]``, e.g.
        ``cross_entropy_loss(logits_fn)`` or ``margin_loss(logits_fn)``.
      x: inputs ``[B, ...]`` inside ``domain``.
      labels: true classes ``[B]`` (integer).
      key: PRNG key (keyword-only), required with ``random_start``.
      epsilon: L-inf budget, a scalar or one per input ``[B]``; >= 0.
      targeted: descend the loss at ``targets`` instead of ascending it at ``labels``.
      targets: target classes ``[B]``, required exactly when ``targeted``.
      domain: ``(low, high)`` the result is clipped to, or None (unbounded, no clipping).
      random_start: R+FGSM's ``alpha`` (scalar or ``[B]``, ``0 <= alpha <= epsilon``) or None.
      num_classes: the class count ``labels`` and ``targets`` are checked against; None: the
        one ``loss_fn`` declares (``cross_entropy_loss``, ``margin_loss`` and EOT with
        ``num_classes=`` do), else unchecked. Out of range: ``InputError`` eagerly, NaN
        adversarial inputs for those examples under a trace (see :mod:`jaxrobust.attacks`).

    Returns:
      Adversarial inputs, the shape and dtype of ``x``.

    Examples:
      A linear two-class model: the cross-entropy gradient of class ``y`` points along
      ``w[:, 1 - y] - w[:, y]``, so FGSM moves every input by ``eps`` along its sign.

      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> w = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
      >>> logits_fn = lambda x: x @ w
      >>> x, y = jnp.array([[0.6, 0.4], [0.4, 0.6]]), jnp.array([0, 1])
      >>> loss_fn = attacks.cross_entropy_loss(logits_fn)
      >>> x_adv = attacks.fgsm(loss_fn, x, y, epsilon=0.15)
      >>> print(np.asarray(x_adv, float).round(3))
      [[0.45 0.55]
       [0.55 0.45]]
      >>> expected = x + 0.15 * jnp.sign(w[:, 1 - y] - w[:, y]).T
      >>> print(bool(jnp.allclose(x_adv, expected)), jnp.argmax(logits_fn(x_adv), axis=1))
      True [1 0]

      R+FGSM (a random sign step of ``alpha``, then ``eps - alpha``) stays in the L-inf ball:

      >>> x_r = attacks.fgsm(loss_fn, x, y, key=jax.random.key(0), epsilon=0.15, random_start=0.05)
      >>> print(bool(jnp.max(jnp.abs(x_r - x)) <= 0.15 + 1e-6))
      True
    """
    x, y, bad = _check_fgsm(
        loss_fn, x, labels, targeted, targets, domain, random_start, key, num_classes
    )
    check_epsilon("epsilon", epsilon)
    _check_alpha_within(random_start, epsilon)
    sign = -1.0 if targeted else 1.0
    x_adv = _fgsm(loss_fn, x, y, epsilon, sign, domain, random_start, key)
    return _finish(x, x_adv, bad, "fgsm", sweep=False)


def fgsm_sweep(
    loss_fn: LossFn,
    x: jax.Array,
    labels: jax.Array,
    epsilons: jax.Array,
    *,
    key: jax.Array | None = None,
    targeted: bool = False,
    targets: jax.Array | None = None,
    domain: Domain = DEFAULT_DOMAIN,
    random_start: float | jax.Array | None = None,
    num_classes: int | None = None,
) -> jax.Array:
    """FGSM at every epsilon of ``epsilons`` (``[E]``, or ``[E, B]`` per input), vmapped.

    Equals ``stack([fgsm(..., epsilon=e) for e in epsilons])`` (the same ``key``, hence the same
    R+FGSM noise, at every epsilon). Parameters as :func:`fgsm`; ``random_start`` must not exceed
    the smallest epsilon. Returns ``[E, B, ...]``.

    Examples:
      >>> import jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> w = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
      >>> logits_fn = lambda x: x @ w
      >>> x, y = jnp.array([[0.6, 0.4], [0.4, 0.6]]), jnp.array([0, 1])
      >>> loss_fn = attacks.cross_entropy_loss(logits_fn)
      >>> swept = attacks.fgsm_sweep(loss_fn, x, y, jnp.array([0.0, 0.05, 0.15]))
      >>> swept.shape
      (3, 2, 2)
      >>> sizes = jnp.max(jnp.abs(swept - x), axis=(1, 2))  # the L-inf size at each epsilon
      >>> print(np.asarray(sizes, float).round(3))
      [0.   0.05 0.15]
      >>> print(jnp.argmax(logits_fn(swept), axis=-1))  # [E, B]: flipped once 4 eps > 0.4
      [[0 1]
       [0 1]
       [1 0]]
    """
    x, y, bad = _check_fgsm(
        loss_fn, x, labels, targeted, targets, domain, random_start, key, num_classes
    )
    epsilons = _check_sweep_epsilons(x, epsilons)
    if random_start is not None and is_concrete(epsilons):
        _check_alpha_within(random_start, np.min(np.asarray(epsilons), axis=0))
    sign = -1.0 if targeted else 1.0
    swept = jax.vmap(lambda e: _fgsm(loss_fn, x, y, e, sign, domain, random_start, key))(epsilons)
    return _finish(x, swept, bad, "fgsm_sweep", sweep=True)


# ----------------------------------------------------------------------------------------------
# PGD


def _pgd(loss_fn, x, y, key, epsilon, step_size, num_steps, norm, random_start, sign, domain):
    eps = _per_example(epsilon, x, "epsilon")
    step = _per_example(step_size, x, "step_size")
    x_adv = x
    if random_start:
        x_adv = clip_to_domain(x + _random_in_ball(key, x, eps, norm), domain)

    def body(_, x_t):
        return _projected_step(x, x_t, sign * _loss_grad(loss_fn, x_t, y), step, eps, norm, domain)

    return jax.lax.fori_loop(0, num_steps, body, x_adv)


def _check_pgd(
    loss_fn, x, labels, key, num_steps, norm, random_start, targeted, targets, domain, classes
):
    _check_norm(norm)
    num_steps = check_positive_int("num_steps", num_steps, minimum=0)
    x = check_inputs(x, domain)
    y, bad = _attack_labels(x, labels, targeted, targets, loss_num_classes(loss_fn, x, classes))
    _check_loss_fn(loss_fn, x, y)
    if random_start:
        _check_key(key, "PGD with random_start=True", "random_start=False (BIM)")
    return x, y, num_steps, bad


@positional_key(3)
def pgd(
    loss_fn: LossFn,
    x: jax.Array,
    labels: jax.Array,
    *,
    key: jax.Array | None = None,
    epsilon: float | jax.Array,
    step_size: float | jax.Array,
    num_steps: int,
    norm: str = "linf",
    random_start: bool = True,
    targeted: bool = False,
    targets: jax.Array | None = None,
    domain: Domain = DEFAULT_DOMAIN,
    num_classes: int | None = None,
) -> jax.Array:
    """Projected gradient descent (Madry et al. 2018); BIM when ``random_start=False``.

    ``x_{t+1} = clip_domain(x + P_eps(clip_domain(x_t + s * step_size * d_t) - x))`` for
    ``num_steps`` steps (``lax.fori_loop``), with ``s = +1`` untargeted (ascend
    ``L(., labels)``), ``s = -1`` targeted (descend ``L(., targets)``), ``d_t = sign(grad)``
    for ``norm="linf"`` and ``grad / sqrt(max(||grad||_2^2, 1e-12))`` (per example) for
    ``norm="l2"``; ``P_eps`` projects onto the eps-ball. The order (domain clip, projection,
    domain clip) is that of Madry et al.'s and cleverhans' code; for L-inf it is the projection
    onto the intersection of ball and box, for L2 an approximation of it.
    ``x_0`` is ``x`` (BIM, Kurakin et al. 2017) or, with ``random_start``, a uniform draw from
    the ball clipped to the domain (L2: direction ~ N(0, I), radius ~ eps * U^(1/d)). Returns the
    last iterate.

    Args:
      loss_fn: per-example loss ``(x, y) -> [B]``: cross-entropy, ``margin_loss``, or any
        differentiable score (e.g. a detector's, to evade it: ascend or descend via ``targeted``).
      x: inputs ``[B, ...]`` inside ``domain``.
      labels: true classes ``[B]``.
      key: PRNG key for the random start (keyword-only; required when ``random_start``). A
        key passed positionally after ``labels`` still works, with a ``DeprecationWarning``.
      epsilon: radius of the ball, a scalar or one per input ``[B]``; >= 0.
      step_size: step length in ``norm``, a scalar or ``[B]``; >= 0 (e.g. ``2.5 * eps /
        num_steps``).
      num_steps: number of gradient steps (static; 0 returns the random start).
      norm: ``"linf"`` or ``"l2"``.
      random_start: start uniformly in the ball (PGD) or at ``x`` (BIM).
      targeted, targets: as in :func:`fgsm`.
      domain: ``(low, high)`` for clipping every iterate, or None (unbounded).
      num_classes: as in :func:`fgsm`.

    Returns:
      Adversarial inputs, the shape and dtype of ``x``.

    Examples:
      On a linear model the loss gradient has a constant sign, so L-inf PGD ends at the corner
      ``x + eps * sign(w[:, 1 - y] - w[:, y])`` from any random start; L2 PGD moves ``eps``
      along ``w[:, 1 - y] - w[:, y]``.

      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> w = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
      >>> logits_fn = lambda x: x @ w
      >>> x, y = jnp.array([[0.6, 0.4], [0.4, 0.6]]), jnp.array([0, 1])
      >>> loss_fn = attacks.cross_entropy_loss(logits_fn)
      >>> x_adv = attacks.pgd(
      ...     loss_fn, x, y, key=jax.random.key(0), epsilon=0.15, step_size=0.05, num_steps=10
      ... )
      >>> print(np.asarray(x_adv, float).round(3))
      [[0.45 0.55]
       [0.55 0.45]]
      >>> print(jnp.argmax(logits_fn(x_adv), axis=1))
      [1 0]
      >>> x_l2 = attacks.pgd(
      ...     loss_fn, x, y, epsilon=0.2, step_size=0.1, num_steps=5, norm="l2", random_start=False
      ... )
      >>> direction = (w[:, 1 - y] - w[:, y]).T / jnp.sqrt(8.0)
      >>> print(bool(jnp.allclose(x_l2, x + 0.2 * direction, atol=1e-6)))
      True
    """
    x, y, num_steps, bad = _check_pgd(
        loss_fn,
        x,
        labels,
        key,
        num_steps,
        norm,
        random_start,
        targeted,
        targets,
        domain,
        num_classes,
    )
    check_epsilon("epsilon", epsilon)
    check_epsilon("step_size", step_size)
    sign = -1.0 if targeted else 1.0
    x_adv = _pgd(
        loss_fn, x, y, key, epsilon, step_size, num_steps, norm, random_start, sign, domain
    )
    return _finish(x, x_adv, bad, "pgd", sweep=False)


@positional_key(4)
def pgd_sweep(
    loss_fn: LossFn,
    x: jax.Array,
    labels: jax.Array,
    epsilons: jax.Array,
    *,
    key: jax.Array | None = None,
    step_size: float | jax.Array,
    num_steps: int,
    norm: str = "linf",
    random_start: bool = True,
    targeted: bool = False,
    targets: jax.Array | None = None,
    domain: Domain = DEFAULT_DOMAIN,
    num_classes: int | None = None,
) -> jax.Array:
    """PGD at every epsilon of ``epsilons`` (``[E]`` or ``[E, B]``), vmapped; ``[E, B, ...]``.

    ``step_size`` is a scalar (shared), one per epsilon ``[E]``, or shaped like ``epsilons``.
    Equals ``stack([pgd(..., key=key, epsilon=e, step_size=s) for e, s in ...])``: the same
    ``key`` at every epsilon, so the random starts differ only by their scale. Other parameters
    as :func:`pgd` (``key`` keyword-only; positionally after ``epsilons`` it still works, with a
    ``DeprecationWarning``).

    Examples:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> w = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
      >>> logits_fn = lambda x: x @ w
      >>> x, y = jnp.array([[0.6, 0.4], [0.4, 0.6]]), jnp.array([0, 1])
      >>> loss_fn = attacks.cross_entropy_loss(logits_fn)
      >>> epsilons = jnp.array([0.05, 0.15])
      >>> swept = attacks.pgd_sweep(
      ...     loss_fn, x, y, epsilons, key=jax.random.key(0), step_size=epsilons / 2, num_steps=10
      ... )
      >>> swept.shape
      (2, 2, 2)
      >>> sizes = jnp.max(jnp.abs(swept - x), axis=(1, 2))
      >>> print(np.asarray(sizes, float).round(3))
      [0.05 0.15]
      >>> print(jnp.argmax(logits_fn(swept), axis=-1))
      [[0 1]
       [1 0]]
    """
    x, y, num_steps, bad = _check_pgd(
        loss_fn,
        x,
        labels,
        key,
        num_steps,
        norm,
        random_start,
        targeted,
        targets,
        domain,
        num_classes,
    )
    epsilons = _check_sweep_epsilons(x, epsilons)
    _check_same_shape_or_scalar("step_size", step_size, epsilons)
    check_epsilon("step_size", step_size)
    steps = jnp.asarray(step_size, dtype=x.dtype)
    if steps.ndim == 0:
        steps = jnp.broadcast_to(steps, epsilons.shape[:1])
    sign = -1.0 if targeted else 1.0

    def one(eps, step):
        return _pgd(loss_fn, x, y, key, eps, step, num_steps, norm, random_start, sign, domain)

    return _finish(x, jax.vmap(one)(epsilons, steps), bad, "pgd_sweep", sweep=True)


# ----------------------------------------------------------------------------------------------
# Expectation over transformation


def expectation_over_transformation(
    loss_fn_with_key: LossFnWithKey,
    num_samples: int,
    *,
    key: jax.Array,
    chunk_size: int | None = None,
    num_classes: int | None = None,
) -> LossFn:
    """Expected loss over a stochastic model's randomness (EOT, Athalye et al. 2018).

    Returns ``loss_fn(x, y) = (1/S) sum_s loss_fn_with_key(x, y, k_s)`` with
    ``k_1..k_S = jax.random.split(key, num_samples)``: an ordinary deterministic per-example
    loss, so it plugs into :func:`fgsm` and :func:`pgd`, and its input gradient is the average
    of the per-sample gradients. The samples (Bayesian posterior draws, VAE latents, random
    transformations) are fixed by ``key`` for every call, i.e. every PGD step sees the same
    ``S`` draws (common random numbers); draw fresh ones per attack by building the loss with a
    new key (``key`` may be a traced value inside the caller's ``jit``).

    Args:
      loss_fn_with_key: ``(x [B, ...], y [B], key) -> [B]``, the loss of one random draw.
      num_samples: ``S >= 1`` draws averaged.
      key: PRNG key from which the ``S`` draw keys are split (keyword-only).
      chunk_size: None evaluates all draws at once (``vmap``, memory ``S x B``); an integer
        evaluates them ``chunk_size`` at a time (``lax.map``), bounding memory.
      num_classes: the model's class count, if the loss has one: the returned loss declares
        it, so :func:`fgsm` / :func:`pgd` check labels against it, and it is NaN (with a NaN
        gradient) for out-of-range labels. None: taken from ``loss_fn_with_key.num_classes``
        if that declares one, else labels are not checked.

    Returns:
      ``loss_fn(x, y) -> [B]``.

    Examples:
      A model with Gaussian input noise; without noise the expectation is the plain loss.

      >>> import jax, jax.numpy as jnp
      >>> from jaxrobust import attacks
      >>> w = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
      >>> x, y = jnp.array([[0.6, 0.4], [0.4, 0.6]]), jnp.array([0, 1])
      >>> loss_fn = attacks.cross_entropy_loss(lambda x: x @ w)
      >>> def noisy_loss(scale):
      ...     return lambda x, y, k: loss_fn(x + scale * jax.random.normal(k, x.shape), y)
      >>> eot = attacks.expectation_over_transformation(noisy_loss(0.1), 8, key=jax.random.key(0))
      >>> eot(x, y).shape
      (2,)
      >>> x_adv = attacks.fgsm(eot, x, y, epsilon=0.15)  # an ordinary loss for the attacks
      >>> print(jnp.argmax(x_adv @ w, axis=1))
      [1 0]
      >>> plain = attacks.expectation_over_transformation(noisy_loss(0.0), 4, key=jax.random.key(1))
      >>> print(bool(jnp.allclose(plain(x, y), loss_fn(x, y))))
      True
    """
    num_samples = check_positive_int("num_samples", num_samples)
    if chunk_size is not None:
        chunk_size = check_positive_int("chunk_size", chunk_size)
    if key is None:
        raise InputError(
            "expectation_over_transformation needs key=jax.random.PRNGKey(seed): the "
            f"{num_samples} draws are split from it."
        )
    if num_classes is not None:
        num_classes = check_positive_int("num_classes", num_classes)
    declared = (
        num_classes if num_classes is not None else getattr(loss_fn_with_key, "num_classes", None)
    )
    keys = jax.random.split(key, num_samples)

    def loss_fn(x: jax.Array, y: jax.Array) -> jax.Array:
        def one(k):
            return loss_fn_with_key(x, y, k)

        if chunk_size is None:
            losses = jax.vmap(one)(keys)
        else:
            losses = jax.lax.map(one, keys, batch_size=chunk_size)
        loss = jnp.mean(losses, axis=0)
        if num_classes is not None:  # NaN loss and gradient for out-of-range labels
            loss = loss * jnp.where(out_of_range(y, num_classes), jnp.nan, 1.0).astype(loss.dtype)
        return loss

    if declared is not None:
        loss_fn.num_classes = declared
    return loss_fn

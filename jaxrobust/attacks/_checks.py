"""Shared pieces of the attacks: input checks, the input domain, and the standard losses.

Every attack works on a batch ``x [B, ...]`` in a declared domain ``(low, high)`` (default
``(0, 1)``; ``None`` for an unbounded, e.g. normalised, input space where no clipping applies).
Checks run only on concrete arrays, so attacks stay usable inside the caller's ``jit``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Domain = tuple[float, float] | None
LogitsFn = Callable[[jax.Array], jax.Array]  # x [B, ...] -> logits [B, classes]
LossFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, ...], y [B]) -> loss [B]
DEFAULT_DOMAIN: Domain = (0.0, 1.0)


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_epsilon(name: str, value) -> None:
    """``value`` (a scalar or an array of epsilons) must be finite and >= 0."""
    if is_concrete(value):
        arr = np.asarray(value)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}.")


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_inputs(x, domain: Domain) -> jax.Array:
    """Float inputs with a batch axis, inside ``domain`` (with 1e-6 slack)."""
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"Inputs must have a batch axis, got shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"Inputs must be floating point in the domain {domain}, got {x.dtype}; scale uint8 "
            "images to [0, 1] first."
        )
    if domain is not None and is_concrete(x):
        low, high = domain
        values = np.asarray(x)  # NumPy: also safe for a concrete array closed over by a jit
        lo, hi = float(values.min()), float(values.max())
        if lo < low - 1e-6 or hi > high + 1e-6:
            raise ValueError(
                f"Inputs span [{lo:.4g}, {hi:.4g}], outside the attack domain [{low}, {high}]; "
                "scale them into it, or pass domain=None for an unbounded (normalised) space."
            )
    return x


def check_labels(x: jax.Array, labels, name: str = "labels") -> jax.Array:
    """Integer labels ``[B]`` matching the batch of ``x``."""
    if labels is None:
        raise ValueError(f"{name} are required.")
    labels = jnp.asarray(labels)
    if labels.shape != (x.shape[0],):
        raise ValueError(
            f"{name} must have shape ({x.shape[0]},) to match the inputs {x.shape}, got "
            f"{labels.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"{name} must be integer class indices, got {labels.dtype}.")
    return labels


def check_targets(x: jax.Array, targeted: bool, targets) -> jax.Array | None:
    """Targets are required exactly when the attack is targeted."""
    if targeted and targets is None:
        raise ValueError("A targeted attack needs targets (one class index per input).")
    if not targeted and targets is not None:
        raise ValueError("targets given but targeted=False; pass targeted=True to use them.")
    return None if targets is None else check_labels(x, targets, "targets")


def clip_to_domain(x: jax.Array, domain: Domain) -> jax.Array:
    return x if domain is None else jnp.clip(x, domain[0], domain[1])


def num_classes(logits_fn: LogitsFn, x: jax.Array) -> int:
    """Class count inferred from the model's output shape (no evaluation)."""
    shape = jax.eval_shape(logits_fn, x[:1]).shape
    if len(shape) != 2:
        raise ValueError(f"logits_fn must return [B, classes], got shape {shape}.")
    return int(shape[-1])


def cross_entropy_loss(logits_fn: LogitsFn) -> LossFn:
    """Per-example cross-entropy -log softmax(logits)[y]."""

    def loss(x, y):
        log_probs = jax.nn.log_softmax(logits_fn(x))
        return -jnp.take_along_axis(log_probs, y[:, None], axis=1)[:, 0]

    return loss


def margin_loss(logits_fn: LogitsFn, kappa: float = float("inf")) -> LossFn:
    """CW margin ``max_{j != y} z_j - z_y`` capped at ``kappa`` (larger = more misclassified)."""

    def loss(x, y):
        logits = logits_fn(x)
        true = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
        is_true = jax.nn.one_hot(y, logits.shape[-1], dtype=bool)
        other = jnp.max(jnp.where(is_true, -jnp.inf, logits), axis=1)
        return jnp.minimum(other - true, kappa)

    return loss

"""Shared pieces of the attacks: input checks, the input domain, and the standard losses.

Every attack works on a batch ``x [B, ...]`` in a declared domain ``(low, high)`` (default
``(0, 1)``; ``None`` for an unbounded, e.g. normalised, input space where no clipping applies).
Checks run only on concrete arrays, so attacks stay usable inside the caller's ``jit``.

:func:`positional_key` is the one deprecation shim of the package: the attacks whose ``key``
used to be positional accept it there for now, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Domain = tuple[float, float] | None
LogitsFn = Callable[[jax.Array], jax.Array]  # x [B, ...] -> logits [B, classes]
LossFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, ...], y [B]) -> loss [B]
DEFAULT_DOMAIN: Domain = (0.0, 1.0)


def positional_key(position: int) -> Callable[[Callable], Callable]:
    """Decorator: accept ``key`` at its old positional index ``position`` (deprecated).

    The random key of every attack is keyword-only (``key=``). An attack that used to take it
    positionally, as argument ``position`` (0-based), is wrapped so that old calls keep working:
    a positional argument at that index is moved to ``key=`` and a ``DeprecationWarning`` says to
    pass ``key=`` instead. The wrapper keeps the attack's name, docstring and (keyword-only)
    signature; under ``jit`` the warning is emitted once, at trace time.

    Examples:
      >>> import warnings
      >>> @positional_key(1)
      ... def attack(x, *, key=None, steps=1):
      ...     return x, key, steps
      >>> attack("x", key="k")
      ('x', 'k', 1)
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     attack("x", "k", steps=2)
      ('x', 'k', 2)
      >>> print(caught[0].category.__name__, caught[0].message)
      DeprecationWarning attack: passing the PRNG key positionally is deprecated; ...
    """

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if len(args) > position:
                if len(args) > position + 1:
                    raise TypeError(
                        f"{fn.__name__}() takes {position} positional arguments (and the "
                        f"deprecated positional key) but {len(args)} were given; pass the "
                        "others by keyword."
                    )
                if "key" in kwargs:
                    raise TypeError(f"{fn.__name__}() got multiple values for argument 'key'.")
                warnings.warn(
                    f"{fn.__name__}: passing the PRNG key positionally is deprecated; pass "
                    "key=... instead.",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs["key"] = args[position]
                args = args[:position]
            return fn(*args, **kwargs)

        return wrapper

    return decorate


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
    """Per-example cross-entropy -log softmax(logits)[y].

    Examples:
      Two classes with logit margin ``m = z_y - z_other``: the loss is ``log(1 + e^-m)``.

      >>> import jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> logits_fn = lambda x: x @ jnp.array([[1.0, -1.0], [-1.0, 1.0]])
      >>> x, y = jnp.array([[0.6, 0.4], [0.4, 0.6]]), jnp.array([0, 0])
      >>> loss = attacks.cross_entropy_loss(logits_fn)(x, y)
      >>> print(np.asarray(loss, float).round(4), np.log1p(np.exp([-0.4, 0.4])).round(4))
      [0.513 0.913] [0.513 0.913]
    """

    def loss(x, y):
        log_probs = jax.nn.log_softmax(logits_fn(x))
        return -jnp.take_along_axis(log_probs, y[:, None], axis=1)[:, 0]

    return loss


def margin_loss(logits_fn: LogitsFn, kappa: float = float("inf")) -> LossFn:
    """CW margin ``max_{j != y} z_j - z_y`` capped at ``kappa`` (larger = more misclassified).

    Examples:
      >>> import jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> logits_fn = lambda x: x
      >>> x, y = jnp.array([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0]]), jnp.array([0, 0])
      >>> print(np.asarray(attacks.margin_loss(logits_fn)(x, y), float))
      [-2.  5.]
      >>> print(np.asarray(attacks.margin_loss(logits_fn, kappa=1.0)(x, y), float))
      [-2.  1.]
    """

    def loss(x, y):
        logits = logits_fn(x)
        true = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
        is_true = jax.nn.one_hot(y, logits.shape[-1], dtype=bool)
        other = jnp.max(jnp.where(is_true, -jnp.inf, logits), axis=1)
        return jnp.minimum(other - true, kappa)

    return loss

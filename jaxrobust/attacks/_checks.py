"""Shared pieces of the attacks: input checks, the input domain, and the standard losses.

Every attack works on a batch ``x [B, ...]`` in a declared domain ``(low, high)`` (default
``(0, 1)``; ``None`` for an unbounded, e.g. normalised, input space where no clipping applies).
Checks of shapes and dtypes always run; checks of values run only on concrete arrays, so attacks
stay usable inside the caller's ``jit``. Bad input raises :class:`~jaxrobust.errors.InputError`
(a ``ValueError``) naming the problem and the fix.

Values, eagerly (concrete arrays):

- inputs with NaN or inf are refused (how many, and the first positions); the domain check
  uses the finite values only, so one NaN pixel cannot hide a [0, 255] batch;
- labels and targets must lie in ``[0, num_classes)``, the class count read from the model's
  output shape (``jax.eval_shape``, no evaluation): a label >= num_classes would give a NaN
  loss with a zero gradient (the attack returns the clean input, robust accuracy looks
  perfect) and -1 would silently attack the last class;
- an attack whose result has NaN where the input had none (the model's loss or gradient
  overflowed, e.g. with ``domain=None`` and huge inputs) raises :class:`NonFiniteAttackError`.

Inside the caller's ``jit`` label values are unknown. There the attacks *poison* instead of
raising: every example whose label (or target) is out of range gets NaN adversarial inputs
(and ``success = False``, NaN distances), so accuracy computed from them is NaN, never a
plausible number. The losses built by :func:`cross_entropy_loss` and :func:`margin_loss` do the
same on their own: NaN loss *and* NaN gradient for an out-of-range label, so any attack or
training loop that uses them cannot silently ascend a zero gradient. The gradient attacks
(``fgsm``, ``pgd``, the sweeps) take a ``loss_fn`` and learn the class count from it when it was
built by these functions (or by :func:`~jaxrobust.attacks.expectation_over_transformation`
with ``num_classes=``), or from their own ``num_classes=`` argument; a custom loss (e.g. a
detector's score) has no class count and its labels are not range-checked.

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

from jaxrobust.errors import InputError, JaxrobustError

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


class NonFiniteAttackError(JaxrobustError, FloatingPointError):
    """An attack produced NaN or inf adversarial inputs from finite inputs: the model's loss or
    gradient is not finite there (overflow, e.g. huge inputs with ``domain=None``).

    Examples:
        >>> issubclass(NonFiniteAttackError, FloatingPointError)
        True
    """


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_epsilon(name: str, value) -> None:
    """``value`` (a scalar or an array of epsilons) must be finite and >= 0."""
    if is_concrete(value):
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a number >= 0, got {value!r}.") from None
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise InputError(f"{name} must be finite and >= 0, got {value!r}.")


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _positions(mask: np.ndarray, limit: int = 5) -> str:
    """The first ``limit`` positions (index tuples) where ``mask`` is True, as text."""
    where = np.argwhere(mask)[:limit]
    text = ", ".join(str(tuple(int(i) for i in w)) for w in where)
    return text + (", ..." if int(mask.sum()) > limit else "")


def check_inputs(x, domain: Domain) -> jax.Array:
    """Float inputs with a batch axis, finite, inside ``domain`` (with 1e-6 slack).

    Examples:
        >>> import numpy as np
        >>> x = np.full((2, 3), 255.0, np.float32)
        >>> x[0, 1] = np.nan  # one NaN pixel no longer hides the [0, 255] range
        >>> check_inputs(x, (0.0, 1.0))
        Traceback (most recent call last):
        ...
        jaxrobust.errors.InputError: Inputs have 1 NaN/inf values of 6, first at (0, 1); ...
    """
    if not hasattr(x, "dtype"):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as err:
            got = type(x).__name__
            raise InputError(f"Inputs must be a float array [B, ...], got {got}.") from err
    if x.dtype == object or not jnp.issubdtype(x.dtype, jnp.number):
        raise InputError(f"Inputs must be a float array [B, ...], got dtype {x.dtype}.")
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise InputError(
            f"Inputs must have a batch axis, shape [B, ...], got shape {x.shape}; for one input "
            "use x[None]."
        )
    if x.shape[0] == 0:
        raise InputError(f"Inputs are an empty batch, shape {x.shape}; pass at least one input.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise InputError(
            f"Inputs must be floating point in the domain {domain}, got {x.dtype}; scale uint8 "
            "images to [0, 1] first."
        )
    if is_concrete(x):
        values = np.asarray(x)  # NumPy: also safe for a concrete array closed over by a jit
        finite = np.isfinite(values)
        if not finite.all():
            bad = ~finite
            where = "" if domain is None else _range_note(values, domain)
            raise InputError(
                f"Inputs have {int(bad.sum())} NaN/inf values of {values.size}, first at "
                f"{_positions(bad)}; an attack on them returns NaN, not adversarial examples. "
                f"Fix or drop those inputs (np.isfinite(x).all(axis=...)).{where}"
            )
        if domain is not None:
            low, high = domain
            lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
            if lo < low - 1e-6 or hi > high + 1e-6:
                raise InputError(
                    f"Inputs span [{lo:.4g}, {hi:.4g}], outside the attack domain [{low}, "
                    f"{high}]; scale them into it, or pass domain=None for an unbounded "
                    "(normalised) space."
                )
    return x


def _range_note(values: np.ndarray, domain: tuple[float, float]) -> str:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return ""
    lo, hi = float(finite.min()), float(finite.max())
    if lo < domain[0] - 1e-6 or hi > domain[1] + 1e-6:
        return (
            f" The finite values also span [{lo:.4g}, {hi:.4g}], outside the attack domain "
            f"[{domain[0]}, {domain[1]}]: scale them into it."
        )
    return ""


def check_labels(
    x: jax.Array, labels, name: str = "labels", num_classes: int | None = None
) -> jax.Array:
    """Integer labels ``[B]`` matching the batch of ``x``, in ``[0, num_classes)`` when given.

    The range is checked on concrete labels; under a trace see :func:`poison_out_of_range`.

    Examples:
        >>> import numpy as np
        >>> check_labels(np.zeros((2, 3)), np.array([0, 10]), num_classes=10)
        Traceback (most recent call last):
        ...
        jaxrobust.errors.InputError: labels must be class indices in [0, 10) for a model with 10 ...
    """
    if labels is None:
        raise InputError(f"{name} are required.")
    if not hasattr(labels, "dtype"):
        try:
            labels = np.asarray(labels)
        except (TypeError, ValueError) as err:
            raise InputError(f"{name} must be an integer array [B], got {labels!r}.") from err
    if labels.shape != (x.shape[0],):
        raise InputError(
            f"{name} must have shape ({x.shape[0]},) to match the inputs {x.shape}, got "
            f"{labels.shape}."
        )
    if labels.dtype == object or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise InputError(
            f"{name} must be integer class indices, got {labels.dtype}; pass {name}.astype(int)."
        )
    labels = jnp.asarray(labels)
    if num_classes is not None and is_concrete(labels):
        values = np.asarray(labels)
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            first = np.flatnonzero(bad)[:5]
            raise InputError(
                f"{name} must be class indices in [0, {num_classes}) for a model with "
                f"{num_classes} classes; {int(bad.sum())} of {values.size} are not (values "
                f"{values[first].tolist()} at positions {first.tolist()}). An out-of-range "
                "label gives a NaN loss and a zero gradient (the attack would return the clean "
                "input), and -1 would attack the last class: map the labels to 0..C-1."
            )
    return labels


def check_targets(
    x: jax.Array, targeted: bool, targets, num_classes: int | None = None
) -> jax.Array | None:
    """Targets are required exactly when the attack is targeted."""
    if targeted and targets is None:
        raise InputError("A targeted attack needs targets (one class index per input).")
    if not targeted and targets is not None:
        raise InputError("targets given but targeted=False; pass targeted=True to use them.")
    return None if targets is None else check_labels(x, targets, "targets", num_classes)


def clip_to_domain(x: jax.Array, domain: Domain) -> jax.Array:
    return x if domain is None else jnp.clip(x, domain[0], domain[1])


def out_of_range(labels: jax.Array, num_classes: int) -> jax.Array:
    """Bool ``[B]``: labels outside ``[0, num_classes)`` (traced or not)."""
    return (labels < 0) | (labels >= num_classes)


def poison_out_of_range(values: jax.Array, bad: jax.Array) -> jax.Array:
    """``values [B, ...]`` with NaN in every example where ``bad [B]`` (floats only).

    What the attacks do under a trace with out-of-range labels: a NaN adversarial input makes
    any accuracy computed from it NaN instead of a plausible number.

    Examples:
        >>> import jax.numpy as jnp
        >>> x = jnp.ones((3, 2))
        >>> poison_out_of_range(x, out_of_range(jnp.array([0, 5, -1]), 2)).tolist()
        [[1.0, 1.0], [nan, nan], [nan, nan]]
    """
    if not jnp.issubdtype(values.dtype, jnp.inexact):
        return values
    mask = bad.reshape(bad.shape + (1,) * (values.ndim - bad.ndim))
    return jnp.where(mask, jnp.asarray(jnp.nan, values.dtype), values)


def poison_result(result, labels: jax.Array, num_classes: int, *more: jax.Array | None):
    """A search attack's NamedTuple with ``adversarial`` and float fields NaN and ``success``
    False wherever ``labels`` (or any of ``more``, e.g. targets) is out of range."""
    bad = out_of_range(labels, num_classes)
    for extra in more:
        if extra is not None:
            bad = bad | out_of_range(extra, num_classes)
    fields = {}
    for field, value in result._asdict().items():
        if field == "success":
            fields[field] = value & ~bad
        else:
            fields[field] = poison_out_of_range(value, bad)
    return type(result)(**fields)


def finish_search(x: jax.Array, result, attack: str, num_classes: int, *labels):
    """A search attack's result, poisoned where any of ``labels`` (labels, targets; None
    skipped) is out of range, and refused eagerly when NaN from finite inputs."""
    labels = [y for y in labels if y is not None]
    if labels:
        result = poison_result(result, labels[0], num_classes, *labels[1:])
    check_finite_result(x, result.adversarial, attack)
    for field, value in result._asdict().items():  # distances (l2) that overflowed
        if field != "adversarial" and jnp.issubdtype(value.dtype, jnp.inexact):
            if is_concrete(value) and is_concrete(x) and not np.isfinite(np.asarray(value)).all():
                raise NonFiniteAttackError(
                    f"{attack}: {field} is not finite for some inputs (overflow: the inputs or "
                    "the perturbations are too large for float32); scale the inputs down or "
                    "bound the domain."
                )
    return result


def check_finite_result(x: jax.Array, x_adv: jax.Array, attack: str) -> jax.Array:
    """Eagerly: refuse NaN/inf adversarial inputs where ``x`` was finite (see module)."""
    if is_concrete(x_adv) and is_concrete(x):
        adv = np.asarray(x_adv)
        bad = ~np.isfinite(adv)
        if adv.shape != np.shape(x):
            bad = bad & np.isfinite(np.asarray(x))[None]  # a sweep [E, B, ...]
        else:
            bad = bad & np.isfinite(np.asarray(x))
        if bad.any():
            raise NonFiniteAttackError(
                f"{attack} produced {int(bad.sum())} NaN/inf values (first at "
                f"{_positions(bad)}) from finite inputs: the model's loss or its gradient is not "
                "finite there. Check the model at these inputs (overflowing logits, e.g. huge "
                "inputs with domain=None), or bound the domain."
            )
    return x_adv


def num_classes(logits_fn: LogitsFn, x: jax.Array) -> int:
    """Class count inferred from the model's output shape (no evaluation)."""
    shape = eval_shape_or_refuse("logits_fn", logits_fn, x[:1]).shape
    if len(shape) != 2:
        raise InputError(f"logits_fn must return [B, classes], got shape {shape}.")
    return int(shape[-1])


def eval_shape_or_refuse(name: str, fn, *args):
    """``jax.eval_shape(fn, *args)``; a model that cannot take the inputs' shape or dtype
    raises :class:`InputError` naming the shapes (the model's own error is chained)."""
    try:
        return jax.eval_shape(fn, *args)
    except (TypeError, ValueError, IndexError) as err:
        if isinstance(err, InputError):
            raise
        shapes = ", ".join(f"{getattr(a, 'shape', ())} {getattr(a, 'dtype', '')}" for a in args)
        raise InputError(
            f"{name} cannot be evaluated on arguments of shape/dtype {shapes}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. Pass inputs "
            "of the shape the model was built for."
        ) from err


def loss_num_classes(loss_fn, x: jax.Array, given: int | None = None) -> int | None:
    """The class count a loss declares (``loss_fn.num_classes``: an int or ``x -> int``), or
    ``given``; None when unknown (a custom loss: its labels are not range-checked)."""
    if given is not None:
        return check_positive_int("num_classes", given)
    declared = getattr(loss_fn, "num_classes", None)
    if declared is None:
        return None
    return int(declared(x) if callable(declared) else declared)


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
        classes = log_probs.shape[-1]
        safe = jnp.clip(y, 0, classes - 1)
        value = -jnp.take_along_axis(log_probs, safe[:, None], axis=1)[:, 0]
        return _poison_loss(value, y, classes)

    loss.num_classes = lambda x: num_classes(logits_fn, x)
    loss.logits_fn = logits_fn
    return loss


def _poison_loss(value: jax.Array, y: jax.Array, classes: int) -> jax.Array:
    """NaN loss *and* NaN gradient where ``y`` is out of range: ``value * NaN`` (d/dx = NaN)."""
    factor = jnp.where(out_of_range(y, classes), jnp.nan, 1.0).astype(value.dtype)
    return value * factor


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
        classes = logits.shape[-1]
        safe = jnp.clip(y, 0, classes - 1)
        true = jnp.take_along_axis(logits, safe[:, None], axis=1)[:, 0]
        is_true = jax.nn.one_hot(safe, classes, dtype=bool)
        other = jnp.max(jnp.where(is_true, -jnp.inf, logits), axis=1)
        return _poison_loss(jnp.minimum(other - true, kappa), y, classes)

    loss.num_classes = lambda x: num_classes(logits_fn, x)
    loss.logits_fn = logits_fn
    return loss

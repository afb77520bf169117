"""A model's score table: named scores as functions of the model's outputs, computed in one pass.

A :class:`Score` reads the outputs it ``needs`` (names a model's ``outputs`` function computes,
such as ``"logits"`` or ``"iwae"``) and returns one value per input, with its declared direction.
:func:`compute_scores` asks the model once for the union of what the requested scores need, so
outputs shared by several scores (the K importance samples behind both ``iwae`` and
``iwae_std``) are computed once.

A score relative to held-out in-distribution data (the typicality |-log p(x) - H|, with H the
mean of -log p over held-out inputs) has a ``reference``: its ``fn`` gives a per-input statistic
t(x) (log p(x)), computed in the same one pass as every other score, and the score is
``reference(t(x), t(held-out inputs))``. :func:`score_statistics` gives the per-input values of
one pass (the statistic t for such a score), :func:`finish_scores` applies the references, and
:func:`compute_scores` does both; the evaluation context finishes these scores against the
validation carve of the training data, never the test split.

Example:
    >>> import jax.numpy as jnp
    >>> table = {
    ...     "max_logit": Score(lambda o: o["logits"].max(-1), False, "largest logit", ("logits",)),
    ...     "min_logit": Score(lambda o: o["logits"].min(-1), True, "smallest logit", ("logits",)),
    ... }
    >>> calls = []
    >>> def outputs(variables, x, *, key, names):
    ...     calls.append(sorted(names))
    ...     return {"logits": x @ variables}
    >>> out = compute_scores(table, outputs, jnp.eye(2), jnp.array([[1.0, 3.0]]),
    ...                      ["max_logit", "min_logit"], key=None)
    >>> out["max_logit"], out["min_logit"], calls
    (Array([3.], dtype=float32), Array([1.], dtype=float32), [['logits']])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxrobust.errors import InputError
from jaxrobust.registry import UnknownNameError, unknown_name_message
from jaxrobust.scores._checks import real_array, refuse_non_finite_result

OutputsFn = Callable[..., Mapping[str, Any]]  # outputs(variables, x, *, key, names) -> {name: ..}


class Score(NamedTuple):
    """``fn(outputs) -> [N]`` with its direction (``higher_is_ood``) and the outputs it needs.

    Example:
        >>> import jax.numpy as jnp
        >>> neg_norm = Score(lambda o: -jnp.linalg.norm(o["logits"], axis=-1), False,
        ...                  "-||f(x)||", ("logits",))
        >>> neg_norm.fn({"logits": jnp.array([[3.0, 4.0]])}), neg_norm.needs
        (Array([-5.], dtype=float32), ('logits',))
    """

    fn: Callable[[Mapping[str, Any]], jax.Array]
    higher_is_ood: bool
    description: str
    needs: tuple[str, ...] = ()
    #: ``reference(t [N], t_held_out [M]) -> [N]`` for a score relative to held-out
    #: in-distribution data, ``fn`` then giving the statistic t (see the module); None: ``fn``
    #: is the score.
    reference: Callable[[jax.Array, jax.Array], jax.Array] | None = None


def needed_outputs(table: Mapping[str, Score], names: Iterable[str]) -> frozenset[str]:
    """The union of the outputs the scores ``names`` of ``table`` need.

    Example:
        >>> t = {"a": Score(None, False, "", ("x",)), "b": Score(None, True, "", ("x", "y"))}
        >>> sorted(needed_outputs(t, ["a", "b"]))
        ['x', 'y']
    """
    needs: set[str] = set()
    for name in names:
        if name not in table:
            raise UnknownNameError(unknown_name_message("score", name, table))
        needs.update(table[name].needs)
    return frozenset(needs)


def score_statistics(
    table: Mapping[str, Score],
    outputs_fn: OutputsFn,
    variables: Any,
    x: jax.Array,
    names: Iterable[str],
    *,
    key: jax.Array | None,
) -> dict[str, jax.Array]:
    """``{name: fn(outputs)}`` (``[N]``) from one call of ``outputs_fn``: each score's value, and
    for a score with a ``reference`` its statistic t(x), which :func:`finish_scores` turns into
    the score.

    Example:
        >>> import jax.numpy as jnp
        >>> table = {"sum": Score(lambda o: o["x"].sum(-1), False, "sum", ("x",))}
        >>> score_statistics(table, lambda v, x, *, key, names: {"x": v * x}, 2.0,
        ...                  jnp.ones((2, 3)), ["sum"], key=None)
        {'sum': Array([6., 6.], dtype=float32)}

    Raises ``InputError`` when a score does not return ``[N]`` and (eagerly)
    ``NonFiniteScoreError`` when it returns NaN or +inf.
    """
    if isinstance(names, str):
        raise InputError(f"names must be a sequence of score names, got the string {names!r}.")
    names = list(names)
    outputs = outputs_fn(variables, x, key=key, names=needed_outputs(table, names))
    scores = {name: table[name].fn(outputs) for name in names}
    batch = np.shape(x)[:1]
    for name, value in scores.items():
        if np.shape(value) != batch:
            raise InputError(
                f"score {name!r} returned shape {np.shape(value)}; every score must return one "
                f"value per input, shape {batch} for inputs of shape {np.shape(x)}."
            )
        refuse_non_finite_result(f"score {name!r}", value, "the model's outputs")
    return scores


def finish_scores(
    table: Mapping[str, Score],
    statistics: Mapping[str, jax.Array],
    held_out: Mapping[str, jax.Array] | None = None,
) -> dict[str, jax.Array]:
    """The scores of :func:`score_statistics` values: a score with a ``reference`` becomes
    ``reference(statistics[name], held_out[name])``, the others are returned as they are.

    ``held_out[name]`` is the statistic of that score on held-out in-distribution inputs (from
    :func:`score_statistics` on them), never on the test inputs being scored.

    Example:
        >>> import jax.numpy as jnp
        >>> table = {"gap": Score(lambda o: o["x"], True, "|x - mean held-out x|", ("x",),
        ...                       reference=lambda t, ref: jnp.abs(t - ref.mean()))}
        >>> finish_scores(table, {"gap": jnp.array([1.0, 5.0])}, {"gap": jnp.array([2.0, 4.0])})
        {'gap': Array([2., 2.], dtype=float32)}
        >>> finish_scores(table, {"gap": jnp.array([1.0])})
        Traceback (most recent call last):
        ...
        jaxrobust.errors.InputError: score 'gap' is relative to held-out in-distribution data: ...
    """
    held_out = dict(held_out or {})
    out = {}
    for name, value in statistics.items():
        if name not in table:
            raise UnknownNameError(unknown_name_message("score", name, table))
        reference = table[name].reference
        if reference is None:
            out[name] = value
            continue
        if name not in held_out:
            raise InputError(
                f"score {name!r} is relative to held-out in-distribution data: pass "
                f"held_out={{{name!r}: score_statistics(table, outputs_fn, variables, "
                f"x_held_out, [{name!r}], key=key)[{name!r}]}}, with x_held_out in-distribution "
                "inputs that are not the test inputs (e.g. a validation carve of the training "
                "data)."
            )
        reference_values = real_array(f"held_out[{name!r}]", held_out[name], what="[M]")
        if reference_values.ndim != 1 or reference_values.shape[0] == 0:
            raise InputError(
                f"held_out[{name!r}] must be the statistic of {name!r} on held-out inputs, "
                f"shape [M] with M >= 1; got shape {reference_values.shape}."
            )
        refuse_non_finite_result(f"held_out[{name!r}]", reference_values, "the held-out pass")
        out[name] = reference(value, reference_values)
    return out


def compute_scores(
    table: Mapping[str, Score],
    outputs_fn: OutputsFn,
    variables: Any,
    x: jax.Array,
    names: Iterable[str],
    *,
    key: jax.Array | None,
    held_out: Mapping[str, jax.Array] | None = None,
) -> dict[str, jax.Array]:
    """``{name: [N]}`` for the scores ``names``, from one call of ``outputs_fn`` (see module):
    :func:`finish_scores` of :func:`score_statistics`; ``held_out`` holds the held-out
    statistics of the scores with a ``reference``.

    Example:
        >>> import jax.numpy as jnp
        >>> table = {"sum": Score(lambda o: o["x"].sum(-1), False, "sum", ("x",))}
        >>> compute_scores(table, lambda v, x, *, key, names: {"x": v * x}, 2.0,
        ...                jnp.ones((2, 3)), ["sum"], key=None)
        {'sum': Array([6., 6.], dtype=float32)}

    Raises ``InputError`` when a score does not return ``[N]``, when a score with a reference
    has no ``held_out`` statistic, and (eagerly) ``NonFiniteScoreError`` when a score returns
    NaN or +inf.
    """
    statistics = score_statistics(table, outputs_fn, variables, x, names, key=key)
    return finish_scores(table, statistics, held_out)

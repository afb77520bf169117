"""A model's score table: named scores as functions of the model's outputs, computed in one pass.

A :class:`Score` reads the outputs it ``needs`` (names a model's ``outputs`` function computes,
such as ``"logits"`` or ``"iwae"``) and returns one value per input, with its declared direction.
:func:`compute_scores` asks the model once for the union of what the requested scores need, so
outputs shared by several scores (the K importance samples behind both ``iwae`` and
``iwae_std``) are computed once.

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
from jaxrobust.scores._checks import refuse_non_finite_result

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


def compute_scores(
    table: Mapping[str, Score],
    outputs_fn: OutputsFn,
    variables: Any,
    x: jax.Array,
    names: Iterable[str],
    *,
    key: jax.Array | None,
) -> dict[str, jax.Array]:
    """``{name: [N]}`` for the scores ``names``, from one call of ``outputs_fn`` (see module).

    Example:
        >>> import jax.numpy as jnp
        >>> table = {"sum": Score(lambda o: o["x"].sum(-1), False, "sum", ("x",))}
        >>> compute_scores(table, lambda v, x, *, key, names: {"x": v * x}, 2.0,
        ...                jnp.ones((2, 3)), ["sum"], key=None)
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

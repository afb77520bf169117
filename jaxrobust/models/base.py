"""The functional model interface every trainable model of jaxrobust implements.

Variables are Flax variable dicts: ``{"params": ..., **state}`` where ``state`` holds mutable
collections such as ``batch_stats``. Only ``params`` receive gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

PyTree = Any
Batch = Mapping[str, jax.Array]  # {"image": float [B, H, W, C], "label": int [B]}

# loss(params, state, batch, key, train) -> (per-example loss [B], (per-example metrics, new_state))
LossFn = Callable[[PyTree, PyTree, Batch, jax.Array, bool], tuple[jax.Array, tuple[dict, PyTree]]]


class Score(NamedTuple):
    """A per-input score ``fn(variables, images, key) -> [N]`` with its declared direction."""

    fn: Callable[[PyTree, jax.Array, jax.Array], jax.Array]
    higher_is_ood: bool
    description: str


class Model(NamedTuple):
    """A trainable model as pure functions (see module docstring for the variable layout).

    Attributes:
      kind: registry name, e.g. ``"vae"`` or ``"classifier"``.
      init: ``init(key, images) -> variables``.
      loss: see :data:`LossFn`: per-example losses ``[B]`` (training minimises their mean,
        evaluation takes a masked mean) and per-example metrics ``{name: [B]}``; ``train``
        switches dropout / batch-norm statistics.
      scores: named per-input scores, e.g. ``{"elbo": Score(...), "kl": Score(...)}``.
      logits: ``logits(variables, images) -> [N, classes]`` for classifiers, else None.
    """

    kind: str
    init: Callable[[jax.Array, jax.Array], PyTree]
    loss: LossFn
    scores: Mapping[str, Score]
    logits: Callable[[PyTree, jax.Array], jax.Array] | None = None


def split_variables(variables: PyTree) -> tuple[PyTree, PyTree]:
    """``{"params": p, **state}`` -> ``(p, state)``."""
    state = {k: v for k, v in variables.items() if k != "params"}
    return variables["params"], state


def merge_variables(params: PyTree, state: PyTree) -> dict:
    """Inverse of :func:`split_variables`."""
    return {"params": params, **state}

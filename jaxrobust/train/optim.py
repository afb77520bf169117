"""Optimizers from config: ``{"name": "adam", "learning_rate": 1e-3, ...}``.

``"alternate": ["encoder", "decoder"]`` updates those top-level parameter groups in turn, one
per step, each with its own optimizer state (the negative-sampling paper's "we update the
parameters of the encoder and decoder network iteratively/separately", seed 004 appendix A.2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

_OPTIMIZERS = {
    "adam": lambda lr, c: optax.adam(lr, b1=c.get("b1", 0.9), b2=c.get("b2", 0.999)),
    "adamw": lambda lr, c: optax.adamw(lr, weight_decay=c.get("weight_decay", 1e-4)),
    "sgd": lambda lr, c: optax.sgd(lr, momentum=c.get("momentum", None) or None),
    "rmsprop": lambda lr, c: optax.rmsprop(lr, decay=c.get("decay", 0.9)),
}


def build_optimizer(cfg: Mapping[str, Any], steps_per_epoch: int) -> optax.GradientTransformation:
    """Optimizer with an optional step schedule ``lr * gamma^(epoch // decay_every_epochs)``."""
    name = cfg.get("name", "adam")
    if name not in _OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; known: {sorted(_OPTIMIZERS)}.")
    learning_rate = cfg.get("learning_rate", 1e-3)
    decay_every = cfg.get("decay_every_epochs", None)
    if decay_every:
        learning_rate = optax.exponential_decay(
            learning_rate,
            transition_steps=decay_every * steps_per_epoch,
            decay_rate=cfg.get("decay_factor", 0.1),
            staircase=True,
        )
    optimizer = _OPTIMIZERS[name](learning_rate, cfg)
    groups = cfg.get("alternate")
    return alternating(optimizer, tuple(groups)) if groups else optimizer


class AlternatingState(NamedTuple):
    count: jax.Array
    inner: dict  # group name -> that group's optimizer state


def alternating(
    optimizer: optax.GradientTransformation, groups: Sequence[str]
) -> optax.GradientTransformation:
    """Step k updates only ``params[groups[k % len(groups)]]`` with its own ``optimizer`` state.

    Every top-level parameter must be in a group. The other groups' states stay unchanged
    (as with separate optimizers stepped in turn), not decayed by zero gradients.
    """
    groups = tuple(groups)

    def init(params):
        missing = [g for g in groups if g not in params]
        if missing:
            raise ValueError(
                f"alternate: parameter groups {missing} not found; the model has {sorted(params)}."
            )
        uncovered = sorted(set(params) - set(groups))
        if uncovered:
            raise ValueError(
                f"alternate: parameters {uncovered} are in no group and would never be updated; "
                f"list them in alternate (groups now {list(groups)})."
            )
        inner = {g: optimizer.init(params[g]) for g in groups}
        return AlternatingState(jnp.zeros((), jnp.int32), inner)

    def update(grads, state, params=None):
        active = state.count % len(groups)
        updates = jax.tree.map(jnp.zeros_like, grads)
        inner = {}
        for i, g in enumerate(groups):
            group_params = None if params is None else params[g]
            group_updates, group_state = optimizer.update(grads[g], state.inner[g], group_params)
            on = active == i
            updates[g] = jax.tree.map(lambda u, o=on: jnp.where(o, u, 0), group_updates)
            inner[g] = jax.tree.map(
                lambda new, old, o=on: jnp.where(o, new, old), group_state, state.inner[g]
            )
        return updates, AlternatingState(state.count + 1, inner)

    return optax.GradientTransformation(init, update)

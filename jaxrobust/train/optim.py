"""Optimizers from config: ``{"name": "adam", "learning_rate": 1e-3, ...}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    return _OPTIMIZERS[name](learning_rate, cfg)

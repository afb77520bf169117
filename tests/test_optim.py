"""Alternating updates of parameter groups equal separate optimizers stepped in turn."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrobust.train.optim import build_optimizer


def test_alternating_equals_separate_optimizers_in_turn():
    rng = np.random.default_rng(0)
    params = {
        "encoder": {"w": jnp.asarray(rng.normal(size=(3,)), jnp.float32)},
        "decoder": {"w": jnp.asarray(rng.normal(size=(2,)), jnp.float32)},
    }
    grads = [jax.tree.map(lambda p, s=s: p * 0 + s + 1.0, params) for s in range(5)]
    opt = build_optimizer(
        {"name": "rmsprop", "learning_rate": 0.1, "alternate": ["encoder", "decoder"]}, 1
    )
    state = opt.init(params)
    p = params
    for g in grads:
        updates, state = opt.update(g, state, p)
        p = optax.apply_updates(p, updates)
    # Reference: one RMSProp per group, the encoder stepped at steps 0, 2, 4, the decoder at 1, 3.
    reference = {}
    for name, steps in (("encoder", (0, 2, 4)), ("decoder", (1, 3))):
        inner = optax.rmsprop(0.1, decay=0.9)
        q, s = params[name], inner.init(params[name])
        for k in steps:
            u, s = inner.update(grads[k][name], s, q)
            q = optax.apply_updates(q, u)
        reference[name] = q
    for name in ("encoder", "decoder"):
        np.testing.assert_allclose(p[name]["w"], reference[name]["w"], rtol=1e-6)


def test_unknown_group_is_explained():
    opt = build_optimizer({"name": "adam", "alternate": ["encoder", "generator"]}, 1)
    with pytest.raises(ValueError, match=r"groups \['generator'\] not found"):
        opt.init({"encoder": jnp.zeros(2), "decoder": jnp.zeros(2)})


def test_parameters_outside_every_group_are_refused():
    opt = build_optimizer({"name": "adam", "alternate": ["encoder", "decoder"]}, 1)
    params = {"encoder": jnp.zeros(2), "decoder": jnp.zeros(2), "log_scale": jnp.zeros(())}
    with pytest.raises(ValueError, match=r"parameters \['log_scale'\] are in no group"):
        opt.init(params)

"""The shared attack checks: messages, and use inside a jit with inputs closed over."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.attacks._checks import check_inputs, check_labels, check_targets


def test_inputs_closed_over_by_a_jit_are_checked_concretely():
    x = jnp.full((2, 3), 0.5)

    @jax.jit
    def f():
        return check_inputs(x, (0.0, 1.0)) * 2.0

    np.testing.assert_allclose(f(), 1.0)
    bad = jnp.full((2, 3), 1.5)
    with pytest.raises(ValueError, match=r"outside the attack domain \[0.0, 1.0\]"):
        jax.jit(lambda: check_inputs(bad, (0.0, 1.0)))()


def test_messages_say_what_to_do():
    x = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match="scale uint8 images"):
        check_inputs(jnp.zeros((3, 2), jnp.uint8), (0.0, 1.0))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        check_labels(x, jnp.zeros((2,), jnp.int32))
    with pytest.raises(ValueError, match="needs targets"):
        check_targets(x, True, None)
    with pytest.raises(ValueError, match="pass targeted=True"):
        check_targets(x, False, jnp.zeros((3,), jnp.int32))

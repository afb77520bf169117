"""The shared attack checks: messages, use inside a jit, and the positional-key shim."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust import attacks
from jaxrobust.attacks._checks import check_inputs, check_labels, check_targets, positional_key


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


def test_positional_key_shim_moves_the_key_and_warns():
    @positional_key(2)
    def attack(a, b, *, key=None, scale=1.0):
        return a, b, key, scale

    assert attack(1, 2, key=3) == (1, 2, 3, 1.0)
    with pytest.warns(DeprecationWarning, match="pass key="):
        assert attack(1, 2, 3, scale=2.0) == (1, 2, 3, 2.0)
    with pytest.raises(TypeError, match="multiple values for argument 'key'"):
        attack(1, 2, 3, key=4)
    with pytest.raises(TypeError, match="pass the others by keyword"):
        attack(1, 2, 3, 4)
    assert attack.__name__ == "attack"


KEYED = {  # attack -> the position its key used to have (None: always keyword-only)
    "fgsm": None,
    "fgsm_sweep": None,
    "expectation_over_transformation": None,
    "pgd": 3,
    "pgd_sweep": 4,
    "latent_attack": 2,
    "boundary_attack": 3,
    "local_search_attack": 3,
}


@pytest.mark.parametrize("name", sorted(KEYED))
def test_key_is_keyword_only_everywhere(name):
    fn = getattr(attacks, name)
    parameter = inspect.signature(fn).parameters["key"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    assert hasattr(fn, "__wrapped__") == (KEYED[name] is not None)  # the shim, exactly there


def test_positional_key_still_works_for_pgd_and_boundary_and_under_jit():
    w = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
    logits_fn = lambda z: z @ w  # noqa: E731
    loss = attacks.cross_entropy_loss(logits_fn)
    x, y, key = jnp.array([[0.6, 0.4], [0.4, 0.6]]), jnp.array([0, 1]), jax.random.PRNGKey(0)
    kw = dict(epsilon=0.1, step_size=0.05, num_steps=3)
    with pytest.warns(DeprecationWarning, match="pgd: passing the PRNG key positionally"):
        old = attacks.pgd(loss, x, y, key, **kw)
    np.testing.assert_array_equal(old, attacks.pgd(loss, x, y, key=key, **kw))
    starts = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    with pytest.warns(DeprecationWarning, match="boundary_attack"):
        old = jax.jit(
            lambda x, y, k: attacks.boundary_attack(
                logits_fn, x, y, k, starting_points=starts, num_steps=5
            )
        )(x, y, key)
    new = attacks.boundary_attack(logits_fn, x, y, key=key, starting_points=starts, num_steps=5)
    np.testing.assert_allclose(old.adversarial, new.adversarial, atol=1e-6)

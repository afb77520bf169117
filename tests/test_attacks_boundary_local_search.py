"""Boundary attack and LocalSearch on small affine models with closed-form decisions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.attacks.boundary import boundary_attack
from jaxrobust.attacks.local_search import local_search_attack

# ---------------------------------------------------------------- Boundary: 2-class affine model

D = 10
_rng = np.random.default_rng(0)
W_VEC = _rng.normal(size=D).astype(np.float32)
B_SCALAR = np.float32(0.3)
X_AFF = _rng.normal(size=(6, D)).astype(np.float32)
F_AFF = X_AFF @ W_VEC + B_SCALAR  # class 1 iff f(x) > 0
LABELS_AFF = (F_AFF > 0).astype(np.int32)
D_MIN = np.abs(F_AFF) / np.linalg.norm(W_VEC)  # closed-form minimal L2 distance
# far adversarial starts: reflect 3x across the hyperplane, plus noise
START_AFF = (
    X_AFF
    - (3 * F_AFF / (W_VEC @ W_VEC))[:, None] * W_VEC[None]
    + _rng.normal(size=(6, D)).astype(np.float32)
)


def affine_logits(x):
    z = x @ jnp.asarray(W_VEC) + B_SCALAR
    return jnp.stack([jnp.zeros_like(z), z], axis=1)


def test_boundary_affine_converges_to_minimal_distance():
    assert np.all((START_AFF @ W_VEC + B_SCALAR > 0) != LABELS_AFF)
    key = jax.random.PRNGKey(1)
    l2s = []
    for steps in (0, 50, 2000):
        res = boundary_attack(
            affine_logits,
            X_AFF,
            LABELS_AFF,
            key=key,
            starting_points=START_AFF,
            num_steps=steps,
            domain=None,
        )
        adv = np.asarray(res.adversarial)
        decision = (adv @ W_VEC + B_SCALAR > 0).astype(np.int32)
        assert np.all(decision != LABELS_AFF)  # adversarial, checked on the closed form
        assert np.all(np.asarray(res.success))
        np.testing.assert_allclose(res.l2, np.linalg.norm(adv - X_AFF, axis=1), rtol=1e-5)
        assert np.all(np.asarray(res.l2) >= D_MIN * (1 - 1e-4))  # never below the minimum
        l2s.append(np.asarray(res.l2))
    np.testing.assert_allclose(l2s[0], np.linalg.norm(START_AFF - X_AFF, axis=1), rtol=1e-6)
    assert np.all(l2s[1] <= l2s[0])  # steps are only accepted when closer
    assert l2s[0].mean() > 2.5 * D_MIN.mean()
    assert l2s[0].mean() > l2s[1].mean() > l2s[2].mean()
    assert np.all(l2s[2] <= 1.3 * D_MIN)  # within 30 % of |f(x)| / ||w|| after 2000 steps


# ------------------------------------------------ Boundary: 3-class images in (0, 1)

W3 = _rng.normal(size=(16, 3)).astype(np.float32) * 2.0
X_IMG = _rng.uniform(0.0, 1.0, size=(5, 4, 4)).astype(np.float32)


def logits3(x):
    return (x.reshape(x.shape[0], -1) - 0.5) @ jnp.asarray(W3)


LABELS3 = np.asarray(jnp.argmax(logits3(jnp.asarray(X_IMG)), axis=1))


def test_boundary_untargeted_and_targeted_in_domain():
    key = jax.random.PRNGKey(2)
    res = boundary_attack(logits3, X_IMG, LABELS3, key=key, num_steps=100)
    adv = np.asarray(res.adversarial)
    assert adv.shape == X_IMG.shape
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    assert np.all(np.asarray(res.success))
    assert np.all(np.argmax(np.asarray(logits3(adv)), axis=1) != LABELS3)

    targets = (LABELS3 + 1) % 3
    res_t = boundary_attack(
        logits3, X_IMG, LABELS3, key=key, targeted=True, targets=targets, num_steps=100
    )
    adv_t = np.asarray(res_t.adversarial)
    assert adv_t.min() >= 0.0 and adv_t.max() <= 1.0
    assert np.all(np.asarray(res_t.success))
    np.testing.assert_array_equal(np.argmax(np.asarray(logits3(adv_t)), axis=1), targets)


def test_boundary_starting_points_used_as_given_and_jit():
    key = jax.random.PRNGKey(3)
    res0 = boundary_attack(
        affine_logits,
        X_AFF,
        LABELS_AFF,
        key=key,
        starting_points=START_AFF,
        num_steps=0,
        domain=None,
    )
    np.testing.assert_array_equal(np.asarray(res0.adversarial), START_AFF)

    def run(x, labels, start, k):
        return boundary_attack(
            affine_logits, x, labels, key=k, starting_points=start, num_steps=20, domain=None
        )

    eager = run(X_AFF, LABELS_AFF, START_AFF, key)
    jitted = jax.jit(run)(X_AFF, LABELS_AFF, START_AFF, key)
    np.testing.assert_allclose(jitted.adversarial, eager.adversarial, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(jitted.success, eager.success)


def test_boundary_errors():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="labels must have shape"):
        boundary_attack(logits3, X_IMG, LABELS3[:3], key=key)
    with pytest.raises(ValueError, match="outside the attack domain"):
        boundary_attack(logits3, X_IMG + 2.0, LABELS3, key=key)
    with pytest.raises(ValueError, match="targeted attack needs targets"):
        boundary_attack(logits3, X_IMG, LABELS3, key=key, targeted=True)
    with pytest.raises(ValueError, match="starting_points must be adversarial"):
        boundary_attack(
            affine_logits, X_AFF, LABELS_AFF, key=key, starting_points=X_AFF, domain=None
        )
    with pytest.raises(ValueError, match="pass starting_points"):
        boundary_attack(affine_logits, X_AFF, LABELS_AFF, key=key, domain=None)


# ---------------------------------------------------------------- LocalSearch: 8x8 affine images

W_PIX = (_rng.normal(size=(8, 8)) * 0.3).astype(np.float32)
W_PIX[2, 3], W_PIX[5, 5], W_PIX[1, 6], W_PIX[6, 1] = 3.0, -2.0, 2.5, -3.0  # a few pixels matter


def pixel_logits(x):
    z = (x.reshape(x.shape[0], -1) - 0.5) @ jnp.asarray(W_PIX.reshape(-1))
    return jnp.stack([-z, z], axis=1)


def _near_boundary_images(n: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    x = rng.uniform(0.25, 0.75, size=(400, 8, 8)).astype(np.float32)
    z = (x.reshape(400, -1) - 0.5) @ W_PIX.reshape(-1)
    return x[np.abs(z) < 0.3][:n]


X_LS = _near_boundary_images(8)
LABELS_LS = np.asarray(jnp.argmax(pixel_logits(jnp.asarray(X_LS)), axis=1))


def test_local_search_flips_near_boundary_and_stays_local():
    key = jax.random.PRNGKey(0)
    res = local_search_attack(pixel_logits, X_LS, LABELS_LS, key=key, num_pixels=2, rounds=10)
    adv = np.asarray(res.adversarial)
    decision = np.argmax(np.asarray(pixel_logits(adv)), axis=1)
    np.testing.assert_array_equal(np.asarray(res.success), decision != LABELS_LS)
    assert np.mean(np.asarray(res.success)) >= 0.75
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    changed = np.sum(adv != X_LS, axis=(1, 2))
    np.testing.assert_array_equal(changed, np.asarray(res.pixels_changed))
    assert np.all(changed <= 2 * np.asarray(res.rounds))  # at most t pixels per round
    assert np.all(changed >= 1)

    one = local_search_attack(pixel_logits, X_LS, LABELS_LS, key=key, num_pixels=2, rounds=1)
    assert np.all(np.sum(np.asarray(one.adversarial) != X_LS, axis=(1, 2)) <= 2)

    again = local_search_attack(pixel_logits, X_LS, LABELS_LS, key=key, num_pixels=2, rounds=10)
    np.testing.assert_array_equal(np.asarray(again.adversarial), adv)  # deterministic given key

    jitted = jax.jit(
        lambda x, y, k: local_search_attack(pixel_logits, x, y, key=k, num_pixels=2, rounds=10)
    )(X_LS, LABELS_LS, key)
    np.testing.assert_allclose(jitted.adversarial, adv, atol=1e-6)
    np.testing.assert_array_equal(jitted.success, res.success)


def test_local_search_errors():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="labels must have shape"):
        local_search_attack(pixel_logits, X_LS, LABELS_LS[:2], key=key)
    with pytest.raises(ValueError, match="outside the attack domain"):
        local_search_attack(pixel_logits, X_LS - 1.0, LABELS_LS, key=key)
    with pytest.raises(ValueError, match="images"):
        local_search_attack(pixel_logits, X_LS.reshape(len(X_LS), -1), LABELS_LS, key=key)
    with pytest.raises(ValueError, match="cyclic_bound"):
        local_search_attack(pixel_logits, X_LS, LABELS_LS, key=key, domain=None)

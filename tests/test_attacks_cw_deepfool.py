"""CW-L2 and DeepFool against closed forms on affine classifiers, computed here in NumPy.

For logits ``Z = x W + b`` the region where class ``k`` beats class ``o`` is the half-space
``(w_k - w_o) . x + (b_k - b_o) > 0``, so the minimal L2 perturbation that changes the prediction
is ``min_k |f_k| / ||w_k - w_o||`` and the minimal one reaching a target is a projection onto a
polyhedron.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.attacks.cw import carlini_wagner_l2
from jaxrobust.attacks.deepfool import deepfool


def affine(num_inputs: int, num_classes: int, seed: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    w = (scale * rng.normal(size=(num_inputs, num_classes))).astype(np.float32)
    b = rng.normal(size=num_classes).astype(np.float32)
    return w, b, (lambda x: x @ w + b)


def mlp(num_inputs: int, num_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(num_inputs, 16)).astype(np.float32) * 2
    b1 = rng.normal(size=16).astype(np.float32)
    w2 = rng.normal(size=(16, num_classes)).astype(np.float32)
    return lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w1 + b1) @ w2


def min_distance_to_other_class(w, b, x):
    """NumPy: min over k != o of |Z_k - Z_o| / ||w_k - w_o|| (o = prediction)."""
    z = x @ w + b
    o = z.argmax(1)
    dists = np.full(len(x), np.inf)
    for i, k in itertools.product(range(len(x)), range(w.shape[1])):
        if k != o[i]:
            wk = w[:, k] - w[:, o[i]]
            dists[i] = min(dists[i], abs(z[i, k] - z[i, o[i]]) / np.linalg.norm(wk))
    return dists


def distance_to_target_region(w, b, x, t):
    """NumPy: exact min ||d|| with (x + d) W + b largest at t, for 3 classes.

    The region is the intersection of two half-spaces a_j . d >= c_j; the minimiser is the
    projection onto one hyperplane or onto both, whichever feasible candidate is nearest.
    """
    out = []
    for xi, ti in zip(x.astype(np.float64), t, strict=True):
        others = [j for j in range(w.shape[1]) if j != ti]
        a = np.stack([w[:, ti] - w[:, j] for j in others]).astype(np.float64)
        c = np.array([-(xi @ w[:, ti] + b[ti] - xi @ w[:, j] - b[j]) for j in others])
        candidates = [np.zeros_like(xi)]
        for j in range(2):
            candidates.append(max(c[j], 0) * a[j] / (a[j] @ a[j]))
        candidates.append(a.T @ np.linalg.solve(a @ a.T, c))
        feasible = [d for d in candidates if np.all(a @ d >= c - 1e-9)]
        out.append(min(np.linalg.norm(d) for d in feasible))
    return np.array(out)


def margins(logits, cls):
    own = logits[np.arange(len(cls)), cls]
    other = np.where(np.eye(logits.shape[1], dtype=bool)[cls], -np.inf, logits).max(1)
    return own - other


# --- DeepFool ---------------------------------------------------------------------------------


def test_deepfool_binary_affine_one_step_lands_on_the_boundary():
    w, b, logits_fn = affine(6, 2, seed=0)
    x = np.random.default_rng(1).normal(size=(8, 6)).astype(np.float32)
    z = x @ w + b
    normal = w[:, 1] - w[:, 0]
    dist = np.abs(z[:, 1] - z[:, 0]) / np.linalg.norm(normal)

    result = deepfool(logits_fn, x, overshoot=0.0, domain=None)
    np.testing.assert_allclose(result.l2, dist + 1e-4, rtol=1e-4, atol=1e-5)
    delta = np.asarray(result.adversarial) - x
    np.testing.assert_allclose(  # along the normal of the boundary
        np.abs(delta @ normal) / np.linalg.norm(normal), np.asarray(result.l2), rtol=1e-4
    )
    z_adv = np.asarray(logits_fn(result.adversarial))
    np.testing.assert_allclose(z_adv[:, 1] - z_adv[:, 0], 0.0, atol=1e-3)

    result = deepfool(logits_fn, x, overshoot=0.02, domain=None)
    assert np.all(result.success)
    assert np.all(np.asarray(logits_fn(result.adversarial)).argmax(1) != z.argmax(1))
    np.testing.assert_allclose(result.l2, 1.02 * (dist + 1e-4), rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("num_candidates", [5, 10])
def test_deepfool_multiclass_affine_reaches_the_nearest_boundary(num_candidates):
    w, b, logits_fn = affine(8, 5, seed=2)
    x = np.random.default_rng(3).normal(size=(16, 8)).astype(np.float32)
    d_min = min_distance_to_other_class(w, b, x)
    overshoot = 0.05

    result = deepfool(logits_fn, x, num_candidates=num_candidates, overshoot=overshoot, domain=None)
    assert np.all(result.success)
    l2 = np.asarray(result.l2)
    assert np.all(l2 >= d_min * (1 - 1e-5))
    assert np.all(l2 <= (1 + overshoot) * (d_min + 1e-4) * (1 + 1e-4))
    np.testing.assert_allclose(
        l2, np.linalg.norm(np.asarray(result.adversarial) - x, axis=1), rtol=1e-5
    )


def test_deepfool_mlp_in_domain_and_success_matches_the_predictions():
    logits_fn = mlp(12, 4, seed=4)
    x = np.random.default_rng(5).uniform(size=(16, 3, 4)).astype(np.float32)
    result = deepfool(logits_fn, x, num_candidates=3, max_iterations=30)
    adv = np.asarray(result.adversarial)
    assert adv.shape == x.shape
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    flipped = np.asarray(logits_fn(adv)).argmax(1) != np.asarray(logits_fn(x)).argmax(1)
    np.testing.assert_array_equal(result.success, flipped)
    assert flipped.mean() >= 0.75
    np.testing.assert_allclose(
        result.l2, np.linalg.norm((adv - x).reshape(16, -1), axis=1), rtol=1e-5
    )


def test_deepfool_jits_and_rejects_bad_arguments():
    w, b, logits_fn = affine(6, 3, seed=6)
    x = np.random.default_rng(7).uniform(size=(4, 6)).astype(np.float32)
    eager = deepfool(logits_fn, x)
    jitted = jax.jit(lambda x: deepfool(logits_fn, x))(x)
    np.testing.assert_allclose(jitted.adversarial, eager.adversarial, atol=1e-5)
    np.testing.assert_array_equal(jitted.success, eager.success)

    with pytest.raises(ValueError, match="num_candidates"):
        deepfool(logits_fn, x, num_candidates=1)
    with pytest.raises(ValueError, match="overshoot"):
        deepfool(logits_fn, x, overshoot=-0.1)
    with pytest.raises(ValueError, match="outside the attack domain"):
        deepfool(logits_fn, x + 2.0)
    with pytest.raises(ValueError, match="batch axis"):
        deepfool(logits_fn, x[0])


# --- Carlini & Wagner L2 ----------------------------------------------------------------------


def binary_problem(seed: int = 0, scale: float = 1.0):
    w, b, logits_fn = affine(6, 2, seed=seed, scale=scale)
    x = np.random.default_rng(seed + 1).normal(size=(8, 6)).astype(np.float32)
    z = x @ w + b
    norm = np.linalg.norm(w[:, 1] - w[:, 0])
    return logits_fn, x, z.argmax(1), np.abs(z[:, 1] - z[:, 0]), norm


@pytest.mark.gpu
@pytest.mark.parametrize("abort_early", [False, True])
def test_cw_binary_affine_approaches_the_minimal_distance(abort_early):
    logits_fn, x, y, gap, norm = binary_problem()
    result = carlini_wagner_l2(
        logits_fn, x, y, domain=None, initial_const=1.0, learning_rate=0.05, max_iterations=200,
        abort_early=abort_early,
    )  # fmt: skip
    assert np.all(result.success)
    l2 = np.asarray(result.l2)
    np.testing.assert_allclose(l2, gap / norm, rtol=0.05)
    assert np.all(l2 >= gap / norm * (1 - 1e-5))
    assert np.all(np.asarray(logits_fn(result.adversarial)).argmax(1) != y)
    np.testing.assert_allclose(
        l2, np.linalg.norm(np.asarray(result.adversarial) - x, axis=1), rtol=1e-5
    )


def test_cw_confidence_gives_the_margin_and_a_larger_distance():
    logits_fn, x, y, gap, norm = binary_problem(seed=3, scale=100.0)
    previous = np.zeros(len(x))
    for kappa in (0.0, 500.0, 1000.0):
        result = carlini_wagner_l2(
            logits_fn, x, y, domain=None, confidence=kappa, initial_const=1.0,
            learning_rate=0.01, max_iterations=300,
        )  # fmt: skip
        assert np.all(result.success)
        margin = -margins(np.asarray(logits_fn(result.adversarial)), y)  # max_{j!=y} Z_j - Z_y
        assert np.all(margin >= kappa)
        l2 = np.asarray(result.l2)
        np.testing.assert_allclose(l2, (gap + kappa) / norm, rtol=0.05)  # closed form
        assert np.all(l2 > previous)
        previous = l2


def test_cw_targeted_reaches_the_target_at_the_projection_distance():
    w, b, logits_fn = affine(5, 3, seed=8)
    x = np.random.default_rng(9).normal(size=(6, 5)).astype(np.float32)
    y = (x @ w + b).argmax(1)
    t = (y + 1 + np.arange(6) % 2) % 3
    result = carlini_wagner_l2(
        logits_fn, x, y, targeted=True, targets=t, domain=None, initial_const=1.0,
        learning_rate=0.05, max_iterations=200,
    )  # fmt: skip
    assert np.all(result.success)
    np.testing.assert_array_equal(np.asarray(logits_fn(result.adversarial)).argmax(1), t)
    reference = distance_to_target_region(w, b, x, t)
    l2 = np.asarray(result.l2)
    assert np.all(l2 >= reference * (1 - 1e-4))
    np.testing.assert_allclose(l2, reference, rtol=0.05)


def test_cw_stays_in_the_domain():
    logits_fn = mlp(12, 4, seed=10)
    x = np.random.default_rng(11).uniform(size=(8, 3, 4)).astype(np.float32)
    y = np.asarray(logits_fn(x)).argmax(1)
    result = carlini_wagner_l2(logits_fn, x, y, initial_const=1.0, learning_rate=0.05)
    adv = np.asarray(result.adversarial)
    assert adv.shape == x.shape
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    flipped = np.asarray(logits_fn(adv)).argmax(1) != y
    np.testing.assert_array_equal(result.success, flipped)
    assert flipped.mean() >= 0.75


def test_cw_binary_search_raises_a_too_small_constant():
    logits_fn, x, y, gap, norm = binary_problem(seed=12)
    keep = gap / norm > 0.2  # a constant of 1e-3 moves x by ~1e-3 * norm / 2, far too little
    x, y = x[keep], y[keep]
    kwargs = dict(domain=None, initial_const=1e-3, learning_rate=0.05, max_iterations=100)
    failed = carlini_wagner_l2(logits_fn, x, y, binary_search_steps=1, **kwargs)
    assert not np.any(failed.success)
    np.testing.assert_array_equal(failed.adversarial, x)
    np.testing.assert_array_equal(failed.l2, 0.0)
    searched = carlini_wagner_l2(logits_fn, x, y, binary_search_steps=6, **kwargs)
    assert np.all(searched.success)


def test_cw_already_misclassified_inputs_need_no_perturbation():
    logits_fn, x, y, _, _ = binary_problem(seed=14)
    result = carlini_wagner_l2(logits_fn, x, 1 - y, domain=None, max_iterations=5)
    assert np.all(result.success)
    np.testing.assert_array_equal(result.l2, 0.0)


def test_cw_jits_vmaps_over_constants_and_rejects_bad_arguments():
    logits_fn, x, y, gap, norm = binary_problem(seed=16)
    x = 1 / (1 + np.exp(-x))  # into (0, 1)
    kwargs = dict(binary_search_steps=2, max_iterations=20, learning_rate=0.05)
    eager = carlini_wagner_l2(logits_fn, x, y, **kwargs)
    jitted = jax.jit(lambda x, y: carlini_wagner_l2(logits_fn, x, y, **kwargs))(x, y)
    np.testing.assert_allclose(jitted.adversarial, eager.adversarial, atol=1e-5)
    np.testing.assert_array_equal(jitted.success, eager.success)

    def attack(c):
        return carlini_wagner_l2(
            logits_fn, x, y, initial_const=c, binary_search_steps=1, max_iterations=20,
            learning_rate=0.05,
        ).l2  # fmt: skip

    swept = jax.vmap(attack)(jnp.array([1e-3, 1.0]))
    np.testing.assert_allclose(swept[0], attack(1e-3), atol=1e-5)
    np.testing.assert_allclose(swept[1], attack(1.0), atol=1e-5)

    with pytest.raises(ValueError, match="labels must have shape"):
        carlini_wagner_l2(logits_fn, x, y[:-1])
    with pytest.raises(ValueError, match="targeted attack needs targets"):
        carlini_wagner_l2(logits_fn, x, y, targeted=True)
    with pytest.raises(ValueError, match="targets given"):
        carlini_wagner_l2(logits_fn, x, y, targets=y)
    with pytest.raises(ValueError, match="outside the attack domain"):
        carlini_wagner_l2(logits_fn, x * 3 - 1, y)
    with pytest.raises(ValueError, match="confidence"):
        carlini_wagner_l2(logits_fn, x, y, confidence=-1.0)
    with pytest.raises(ValueError, match="initial_const"):
        carlini_wagner_l2(logits_fn, x, y, initial_const=0.0)
    with pytest.raises(ValueError, match="max_iterations"):
        carlini_wagner_l2(logits_fn, x, y, max_iterations=0)

"""Lipschitz networks: the row-wise L1-ball projection, GroupSort, the inf-norm bound."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.nn.lipschitz import LipschitzMLP, group_sort, project_rows_l1, rescale_rows_l1
from jaxrobust.nn.vae_networks import LipschitzDecoder


def reference_projection(v: np.ndarray, radius: float) -> np.ndarray:
    """Projection of one vector onto the L1 ball by bisection on the threshold (not sorting)."""
    if np.abs(v).sum() <= radius:
        return v.copy()
    lo, hi = 0.0, float(np.abs(v).max())
    for _ in range(200):
        theta = (lo + hi) / 2
        if np.maximum(np.abs(v) - theta, 0).sum() > radius:
            lo = theta
        else:
            hi = theta
    return np.sign(v) * np.maximum(np.abs(v) - (lo + hi) / 2, 0)


@pytest.mark.parametrize("radius", [0.5, 1.0, 3.0])
def test_projection_matches_a_bisection_reference_and_the_kkt_conditions(radius):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(64, 17)) * rng.choice([0.01, 1.0, 5.0], size=(64, 1))
    weights = weights.astype(np.float32)
    got = np.asarray(project_rows_l1(jnp.asarray(weights), radius), np.float64)
    weights = weights.astype(np.float64)
    tol = 1e-5 * max(radius, 1.0)  # float32
    for row, v in zip(got, weights, strict=True):
        np.testing.assert_allclose(row, reference_projection(v, radius), atol=tol)
        if np.abs(v).sum() <= radius:
            np.testing.assert_array_equal(row, v)  # inside the ball: the identity
            continue
        # KKT of min ||p - v||^2 s.t. ||p||_1 <= r, active: ||p||_1 = r, and one theta >= 0 with
        # |v_i| - |p_i| = theta where p_i != 0, |v_i| <= theta where p_i = 0, signs kept.
        assert np.abs(row).sum() == pytest.approx(radius, rel=1e-5)
        nonzero = row != 0
        theta = np.abs(v[nonzero]) - np.abs(row[nonzero])
        np.testing.assert_allclose(theta, theta[0], atol=tol * np.abs(v).max())
        assert theta[0] >= 0 and np.all(np.abs(v[~nonzero]) <= theta[0] + tol)
        assert np.all(np.sign(row[nonzero]) == np.sign(v[nonzero]))


def test_projection_refuses_a_non_positive_radius():
    with pytest.raises(ValueError, match="radius must be > 0"):
        project_rows_l1(jnp.ones((2, 2)), radius=0.0)


@pytest.mark.parametrize("group_size", [1, 2, 4])
def test_group_sort_is_a_permutation_within_groups(group_size):
    x = jax.random.normal(jax.random.key(1), (5, 8))
    y = np.asarray(group_sort(x, group_size))
    groups_in = np.asarray(x).reshape(5, -1, group_size)
    groups_out = y.reshape(5, -1, group_size)
    np.testing.assert_array_equal(np.sort(groups_in, axis=-1), groups_out)
    assert np.all(np.diff(groups_out, axis=-1) >= 0)
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_sort(jnp.ones((2, 3)), 2)


def test_rescaling_divides_rows_outside_the_ball_by_their_l1_norm():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(6, 9)) * np.array([0.01, 0.05, 0.1, 0.5, 1.0, 3.0])[:, None]
    got = np.asarray(rescale_rows_l1(jnp.asarray(w, jnp.float32), radius=0.7))
    norms = np.abs(w).sum(axis=1, keepdims=True)
    expected = np.where(norms > 0.7, w * 0.7 / norms, w)  # NumPy reference, row by row
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert np.all(np.abs(got).sum(axis=1) <= 0.7 * (1 + 1e-6))
    # unlike the projection, every entry keeps a gradient
    grads = jax.grad(lambda v: jnp.sum(rescale_rows_l1(v) * jnp.arange(9.0)))(jnp.asarray(w))
    assert np.all(np.abs(np.asarray(grads))[3:] > 0)
    with pytest.raises(ValueError, match="radius must be > 0"):
        rescale_rows_l1(jnp.ones((2, 2)), radius=0.0)
    with pytest.raises(ValueError, match="unknown projection 'clip'"):
        LipschitzMLP(features=(4,), projection="clip").init(jax.random.key(0), jnp.ones((1, 3)))


def test_decoder_output_bias_shifts_logits_without_changing_differences():
    decoder = LipschitzDecoder(image_shape=(4, 4, 1), hidden=(8, 8), lipschitz=2.0)
    biased = LipschitzDecoder(image_shape=(4, 4, 1), hidden=(8, 8), lipschitz=2.0, output_bias=True)
    z = jax.random.normal(jax.random.key(1), (64, 3))
    variables = decoder.init(jax.random.key(0), z)
    # bias-free GroupSort nets are positively homogeneous: f(0) = 0, f(c z) = c f(z)
    np.testing.assert_allclose(decoder.apply(variables, jnp.zeros((1, 3))), 0.0, atol=1e-7)
    np.testing.assert_allclose(
        decoder.apply(variables, 3.0 * z), 3.0 * decoder.apply(variables, z), rtol=1e-5, atol=1e-5
    )
    bias = jnp.linspace(-2.0, 2.0, 16)
    biased_vars = {"params": {**variables["params"], "bias": bias}}
    shifted = biased.apply(biased_vars, z)
    np.testing.assert_allclose(
        shifted, decoder.apply(variables, z) + bias.reshape(4, 4, 1), rtol=1e-5, atol=1e-5
    )
    # so the bias leaves the inf-norm bound of differences: ||f(z) - f(z')|| <= 2 ||z - z'||
    diff = jnp.abs(shifted[1:] - shifted[:-1]).reshape(63, -1).max(axis=1)
    assert float((diff / jnp.abs(z[1:] - z[:-1]).max(axis=1)).max()) <= 2.0 * (1 + 1e-5)


@pytest.mark.parametrize("projection", ["l1_ball", "rescale"])
@pytest.mark.parametrize("lipschitz", [1.0, 5.0])
def test_mlp_never_exceeds_its_bound_on_random_and_adversarial_pairs(lipschitz, projection):
    mlp = LipschitzMLP(features=(32, 32, 6), lipschitz=lipschitz, projection=projection)
    params = mlp.init(jax.random.key(0), jnp.zeros((1, 10)))
    # Scale the kernels up so the projection is active in every layer.
    params = jax.tree.map(lambda w: 10.0 * w, params)
    f = lambda x: mlp.apply(params, x)  # noqa: E731

    def ratio(x, y):
        return jnp.max(jnp.abs(f(x) - f(y)), axis=-1) / jnp.max(jnp.abs(x - y), axis=-1)

    x, y = jax.random.normal(jax.random.key(2), (2, 4096, 10))
    random_ratios = ratio(x, y)
    assert float(random_ratios.max()) <= lipschitz * (1 + 1e-5)
    # Gradient ascent on the ratio from 64 starting pairs.
    pairs = (x[:64], x[:64] + 0.1 * y[:64])
    step = jax.jit(jax.grad(lambda p: jnp.sum(ratio(*p))))
    for _ in range(200):
        grads = step(pairs)
        pairs = jax.tree.map(lambda p, g: p + 0.05 * g, pairs, grads)
    found = float(ratio(*pairs).max())
    assert found <= lipschitz * (1 + 1e-5)
    assert found > float(random_ratios.max())  # the ascent did search: it beat random pairs

"""Algorithm 2 (the active defense) against a NumPy re-implementation on fixed inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.errors import InputError
from jaxrobust.inference.active_defense import (
    DECISIONS,
    ActiveDefenseThresholds,
    active_defense,
    decide,
    fit_gain_threshold,
    fit_thresholds,
)
from jaxrobust.models import build_model

WEIGHTS = np.array([0.0448, 0.2856, 0.3001]) / (0.0448 + 0.2856 + 0.3001)


def _numpy_ms_ssim(x, y, size=7, sigma=1.5, c1=0.01**2, c2=0.03**2):
    """MS-SSIM of [N, H, W, 1] images, written from Wang et al. (2003) with NumPy only."""
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()

    def blur(a):  # valid 2-D Gaussian filter of [N, H, W]
        rows = np.lib.stride_tricks.sliding_window_view(a, size, axis=1) @ g
        return np.lib.stride_tricks.sliding_window_view(rows, size, axis=2) @ g

    x, y = x[..., 0].astype(np.float64), y[..., 0].astype(np.float64)
    value = np.ones(len(x))
    for scale, weight in enumerate(WEIGHTS):
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        cs = (2 * cxy + c2) / (vx + vy + c2)
        lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
        term = (lum * cs if scale == len(WEIGHTS) - 1 else cs).mean(axis=(1, 2))
        value *= np.maximum(term, 0.0) ** weight
        if scale == len(WEIGHTS) - 1:
            break
        n, h, w = x.shape
        x = x.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
        y = y.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    return value


@pytest.fixture(scope="module")
def vae():
    model = build_model("vae", {"latent_dim": 2, "network": "mlp"}, (28, 28, 1), 10)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    return model, variables


def test_decisions_match_a_numpy_reimplementation(vae):
    model, variables = vae
    rng = np.random.default_rng(0)
    validation = jnp.asarray(rng.uniform(size=(64, 28, 28, 1)), jnp.float32)
    x = np.concatenate([rng.uniform(size=(12, 28, 28, 1)), rng.uniform(size=(12, 1, 1, 1)) *
                        np.ones((12, 28, 28, 1))]).astype(np.float32)  # fmt: skip
    val_hole = model.score(variables, validation, ["hole_indicator"], key=jax.random.key(3))
    fitted = fit_thresholds(val_hole["hole_indicator"], split="validation")
    np.testing.assert_allclose(fitted.hole, np.percentile(val_hole["hole_indicator"], 95))
    hmc = {"num_steps": 20, "num_integration_steps": 5, "step_size": 0.05}
    out = active_defense(model, variables, x, key=jax.random.key(4), hmc=hmc)
    # thresholds in the middle of these inputs' values, so that all three decisions occur
    hole = np.asarray(out["hole_indicator"])
    tau = float(np.median(hole))
    theta = float(np.median(np.abs(np.asarray(out["gain"]))[hole > tau]))
    thresholds = ActiveDefenseThresholds(hole=tau, gain=theta)
    decided = active_defense(model, variables, x, key=jax.random.key(4), hmc=hmc,
                             thresholds=thresholds)  # fmt: skip

    reconstruction = np.clip(np.asarray(model.decode(variables, decided["z"])), 0, 1)
    after_hmc = np.clip(np.asarray(model.decode(variables, decided["z_hmc"])), 0, 1)
    g0, gh = _numpy_ms_ssim(x, reconstruction), _numpy_ms_ssim(x, after_hmc)
    np.testing.assert_allclose(
        decided["ms_ssim_reconstruction"], g0, rtol=1e-4, atol=5e-4
    )  # float32 moments of flat images
    np.testing.assert_allclose(
        decided["ms_ssim_hmc"], gh, rtol=1e-4, atol=5e-4
    )  # float32 moments of flat images
    gain = gh - g0
    expected = np.where(hole > tau, np.where(np.abs(gain) > theta, 2, 1), 0)
    near = np.isclose(np.abs(gain), theta, atol=1e-3)  # a tie could round either way
    np.testing.assert_array_equal(np.asarray(decided["decision"])[~near], expected[~near])
    assert set(expected.tolist()) == {0, 1, 2}
    mu = np.asarray(model.encode(variables, jnp.asarray(x))[0])
    np.testing.assert_allclose(decided["z"], mu, rtol=1e-6)  # the chains start at the mean
    assert not np.allclose(decided["z_hmc"], mu)


def test_decide_signed_and_fitted_gain_threshold():
    t = ActiveDefenseThresholds(hole=1.0, gain=0.2, signed=True)
    got = decide(jnp.array([2.0, 2.0, 0.0]), jnp.array([-0.5, 0.5, 0.5]), t)
    assert [DECISIONS[c] for c in got.tolist()] == ["outlier", "attack", "inlier"]
    rng = np.random.default_rng(1)
    attacks, outliers = rng.normal(0.4, 0.1, 200), rng.normal(0.05, 0.05, 300)
    theta = fit_gain_threshold(attacks, outliers)
    grid = np.linspace(-0.5, 1.0, 30001)  # brute force over a fine grid of thresholds
    balanced = [(np.mean(attacks > g) + np.mean(outliers <= g)) / 2 for g in grid]
    best = (np.mean(attacks > theta) + np.mean(outliers <= theta)) / 2
    assert best == pytest.approx(max(balanced), abs=1e-12)


def test_thresholds_from_the_test_split_and_spherical_latents_are_refused(vae):
    with pytest.raises(InputError, match="not on 'test'"):
        fit_thresholds(np.arange(10.0), split="test")
    with pytest.raises(InputError, match="fit_thresholds"):
        decide(jnp.ones(2), jnp.ones(2), None)  # thresholds missing
    model, variables = vae
    with pytest.raises(InputError, match="minimum size"):
        active_defense(model, variables, jnp.zeros((2, 28, 28, 1)), key=jax.random.key(0),
                       similarity={"filter_size": 11})  # fmt: skip
    sphere = build_model(
        "vae", {"latent_dim": 3, "network": "mlp", "latent": "von_mises_fisher"}, (28, 28, 1), 10
    )
    with pytest.raises(InputError, match="Gaussian latent"):
        active_defense(sphere, None, jnp.zeros((2, 28, 28, 1)), key=jax.random.key(0))
    classifier = build_model("classifier", {"network": "small_cnn"}, (28, 28, 1), 10)
    with pytest.raises(InputError, match="needs a VAE"):
        active_defense(classifier, None, jnp.zeros((2, 28, 28, 1)), key=jax.random.key(0))

"""SGHMC, sample collection and NumPyro HMC/NUTS against closed forms.

The target is Bayesian linear regression ``y = X w + e``, ``e ~ N(0, s^2)``, prior
``w ~ N(0, I / precision)``: the posterior is Gaussian with covariance
``S = (X^T X / s^2 + precision I)^-1`` and mean ``S X^T y / s^2``.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpyro.diagnostics import effective_sample_size
from scipy import stats

from jaxrobust.inference.collect import CollectState, collect_samples, collected_samples
from jaxrobust.inference.hmc import run_nuts
from jaxrobust.inference.sghmc import (
    gamma_prior_precision,
    gaussian_prior,
    reseed,
    sghmc,
)

N, D, NOISE_STD, PRECISION = 200, 3, 1.0, 1.0


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D))
    y = x @ np.array([1.0, -0.5, 0.3]) + NOISE_STD * rng.normal(size=N)
    cov = np.linalg.inv(x.T @ x / NOISE_STD**2 + PRECISION * np.eye(D))
    mean = cov @ x.T @ y / NOISE_STD**2
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), mean, cov


def _mean_nll(params, x, y):
    """Mean over the minibatch of -log p(y | x, w) (up to a constant)."""
    return jnp.mean(0.5 * (y - x @ params["w"]) ** 2 / NOISE_STD**2)


# ----------------------------------------------------------------------------------- SGHMC


def test_sghmc_recovers_the_linear_regression_posterior(regression):
    x, y, mean, cov = regression
    runs, batch, burn_in, every, steps = 4, 50, 2000, 20, 16000
    num_samples = (steps - burn_in) // every
    opt = collect_samples(
        optax.chain(
            gaussian_prior(PRECISION, N),
            sghmc(learning_rate=1e-2, momentum_decay=0.05, num_burn_in_steps=burn_in, scale_grad=N),
        ),
        start_step=burn_in,
        every_steps=every,
        num_samples=num_samples,
    )

    def run(key):
        params = {"w": jnp.zeros(D)}
        init_key, data_key = jax.random.split(key)
        state = reseed(opt.init(params), init_key)

        def step(carry, k):
            p, s = carry
            idx = jax.random.randint(k, (batch,), 0, N)
            grads = jax.grad(_mean_nll)(p, x[idx], y[idx])
            updates, s = opt.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), None

        (_, state), _ = jax.lax.scan(step, (params, state), jax.random.split(data_key, steps))
        return state

    state = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(0), runs))
    chains = np.asarray(collected_samples(state)["w"], np.float64)  # [runs, S, D]
    assert chains.shape == (runs, num_samples, D)

    # Monte Carlo error with a conservative effective sample size, checked to be conservative.
    ess_floor = 150
    ess = np.asarray(effective_sample_size(chains))
    assert np.all(ess > ess_floor), ess
    draws = chains.reshape(-1, D)
    std = np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 4 * std / np.sqrt(ess_floor))
    # Variances within 30% (the standard error of a variance at ESS 150 is 12%, at the ~300
    # these chains have 8%).
    np.testing.assert_allclose(draws.var(0), np.diag(cov), rtol=0.3)
    # The chains differ (reseed gave independent noise).
    assert not np.allclose(chains[0], chains[1])


def test_sghmc_step_matches_the_reference_update():
    lr, decay, n = 0.5, 0.3, 4.0
    opt = sghmc(learning_rate=lr, momentum_decay=decay, num_burn_in_steps=1, scale_grad=n)
    params = {"a": jnp.zeros(()), "b": jnp.zeros((2,))}
    g1 = {"a": jnp.asarray(3.0), "b": jnp.asarray([1.0, -2.0])}
    s0 = opt.init(params)
    update = jax.jit(opt.update)

    # Burn-in step from tau = g = v_hat = 1: r = 1/2, minv = 1 (the old v_hat).
    _, s1 = update(g1, s0)
    for k in ("a", "b"):
        np.testing.assert_allclose(s1.tau[k], 1.0)
        np.testing.assert_allclose(s1.g[k], 0.5 + 0.5 * g1[k], rtol=1e-6)
        np.testing.assert_allclose(s1.v_hat[k], 0.5 + 0.5 * g1[k] ** 2, rtol=1e-6)

    # Drift (exact: same key, so the same noise): dv/dgrad = -lr^2 / sqrt(v_hat_1).
    g2a = {"a": jnp.asarray(1.0), "b": jnp.asarray([0.5, 0.5])}
    g2b = {"a": jnp.asarray(-2.0), "b": jnp.asarray([1.5, -1.0])}
    va, s2 = update(g2a, s1)
    vb, _ = update(g2b, s1)
    for k in ("a", "b"):
        minv = 1 / np.sqrt(np.asarray(s1.v_hat[k]))
        expected = -(lr**2) * minv * (np.asarray(g2a[k]) - np.asarray(g2b[k]))
        np.testing.assert_allclose(va[k] - vb[k], expected, rtol=1e-5)
        # After burn-in the statistics are frozen.
        np.testing.assert_allclose(s2.v_hat[k], s1.v_hat[k])
        np.testing.assert_allclose(s2.tau[k], s1.tau[k])

    # Noise: v2 - (1 - C) v1 + lr^2 minv grad ~ N(0, 2 eps^2 C minv - eps^4), eps = lr/sqrt(N).
    keys = jax.random.split(jax.random.PRNGKey(1), 20000)
    v2 = jax.jit(jax.vmap(lambda k: update(g2a, s1._replace(key=k))[0]))(keys)
    eps2 = lr**2 / n
    for k in ("a", "b"):
        minv = 1 / np.sqrt(np.asarray(s1.v_hat[k]))
        drift = (1 - decay) * np.asarray(s1.momentum[k]) - lr**2 * minv * np.asarray(g2a[k])
        noise = np.asarray(v2[k]) - drift
        var = 2 * eps2 * decay * minv - eps2**2
        se = np.sqrt(var / len(keys))
        np.testing.assert_array_less(np.abs(noise.mean(0)), 4 * se)
        np.testing.assert_allclose(noise.var(0), var, rtol=0.05)  # SE of the variance ~1%


# ------------------------------------------------------------------------------- the priors


def test_gamma_prior_resamples_from_the_conditional():
    alpha, beta, n, every = 1.0, 1.0, 100, 1
    theta = {"w": jnp.linspace(-1.0, 1.0, 8), "b": jnp.asarray([0.3, -0.2])}
    d = 10
    sq = float(sum(jnp.sum(v**2) for v in theta.values()))
    prior = gamma_prior_precision(n, every, alpha=alpha, beta=beta, seed=3)
    zeros = jax.tree.map(jnp.zeros_like, theta)

    def step(state, _):
        updates, state = prior.update(zeros, state, theta)
        return state, (state.precision, updates)

    steps = 4001
    _, (lam, updates) = jax.jit(lambda s: jax.lax.scan(step, s, None, length=steps))(
        prior.init(theta)
    )
    lam = np.asarray(lam, np.float64)
    # Step 0 keeps the initial alpha / beta; every later step draws afresh.
    assert lam[0] == alpha / beta
    draws = lam[1:]
    ref = stats.gamma(a=alpha + d / 2, scale=1 / (beta + sq / 2))
    assert stats.kstest(draws, ref.cdf).pvalue > 0.01
    assert abs(draws.mean() - ref.mean()) < 4 * ref.std() / np.sqrt(len(draws))
    np.testing.assert_allclose(draws.var(), ref.var(), rtol=0.1)
    # The gradient added is lambda * theta / N.
    np.testing.assert_allclose(
        np.asarray(updates["w"]), lam[:, None] * np.asarray(theta["w"]) / n, rtol=1e-5
    )


def test_gamma_prior_keeps_lambda_within_an_epoch():
    prior = gamma_prior_precision(10, 5, init_precision=2.0)
    theta = {"w": jnp.ones(4)}
    state = prior.init(theta)
    update = jax.jit(prior.update)
    seen = []
    for _ in range(12):
        _, state = update(theta, state, theta)
        seen.append(float(state.precision))
    assert seen[:5] == [2.0] * 5
    assert len(set(seen[5:10])) == 1 and seen[5] != 2.0
    assert seen[10] != seen[9]


def test_gaussian_prior_adds_its_gradient():
    prior = gaussian_prior(2.0, 50)
    p = {"w": jnp.asarray([1.0, -3.0])}
    g, _ = prior.update({"w": jnp.asarray([0.5, 0.5])}, prior.init(p), p)
    np.testing.assert_allclose(g["w"], [0.5 + 2.0 / 50, 0.5 - 6.0 / 50], rtol=1e-6)


def test_priors_and_collect_need_params():
    p = {"w": jnp.ones(2)}
    for t in (
        gaussian_prior(1.0, 10),
        gamma_prior_precision(10, 5),
        collect_samples(optax.sgd(0.1), 0, 1, 1),
    ):
        with pytest.raises(ValueError, match="needs the current params"):
            t.update(p, t.init(p))
    with pytest.raises(ValueError, match="needs the current params"):
        opt = optax.chain(gaussian_prior(1.0, 10), sghmc(scale_grad=10))
        opt.update(p, opt.init(p))


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="learning_rate"):
        sghmc(learning_rate=0.0)
    with pytest.raises(ValueError, match="scale_grad"):
        sghmc(scale_grad=0)
    with pytest.raises(ValueError, match="resample_every"):
        gamma_prior_precision(10, 0)


# ------------------------------------------------------------------------- collect_samples


def _params(scale: float = 1.0) -> dict:
    return {
        "enc": {"kernel": scale * jnp.arange(6.0).reshape(2, 3), "bias": jnp.ones(3)},
        "dec": {"kernel": -scale * jnp.ones((3, 2))},
    }


def _grads(params, t):
    # Step-dependent gradients so that every step's params differ.
    return jax.tree.map(lambda p: jnp.sin(p + t) + 0.1 * t, params)


START, EVERY, NUM, STEPS = 3, 4, 5, 30


def _reference(params):
    opt = optax.sgd(0.1, momentum=0.9)
    state = opt.init(params)
    stored = []
    for t in range(STEPS):
        updates, state = opt.update(_grads(params, t), state, params)
        params = optax.apply_updates(params, updates)
        if t >= START and (t - START) % EVERY == 0 and len(stored) < NUM:
            stored.append(params)
    return params, jax.tree.map(lambda *xs: jnp.stack(xs), *stored)


def _run_collect(params, mask):
    opt = collect_samples(optax.sgd(0.1, momentum=0.9), START, EVERY, NUM, mask=mask)

    def step(carry, t):
        p, s = carry
        updates, s = opt.update(_grads(p, t), s, p)
        return (optax.apply_updates(p, updates), s), None

    (p, state), _ = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(STEPS))
    return p, state


def test_collect_samples_stores_the_scheduled_params_under_jit():
    params = _params()
    ref_final, ref = _reference(params)
    mask = {"enc": {"kernel": True, "bias": False}, "dec": {"kernel": True}}
    final, state = jax.jit(lambda p: _run_collect(p, mask))(params)
    assert isinstance(state, CollectState)
    assert int(state.count) == NUM and int(state.step) == STEPS
    samples = collected_samples(state)
    # Pruned: only the selected leaves.
    assert set(samples) == {"enc", "dec"} and set(samples["enc"]) == {"kernel"}
    np.testing.assert_allclose(samples["enc"]["kernel"], ref["enc"]["kernel"], rtol=1e-5)
    np.testing.assert_allclose(samples["dec"]["kernel"], ref["dec"]["kernel"], rtol=1e-5)
    np.testing.assert_allclose(final["enc"]["bias"], ref_final["enc"]["bias"], rtol=1e-5)

    # A path regex selects like jaxrobust.inference.subset.
    _, state = jax.jit(lambda p: _run_collect(p, "^dec/"))(params)
    assert set(collected_samples(state)) == {"dec"}


def test_collect_samples_under_vmap_and_inside_a_chain():
    scales = jnp.asarray([1.0, 0.5, -2.0])
    batched = jax.vmap(_params)(scales)
    _, state = jax.jit(jax.vmap(lambda p: _run_collect(p, None)))(batched)
    samples = collected_samples(state)
    for i, s in enumerate(np.asarray(scales)):
        _, ref = _reference(_params(float(s)))
        got = jax.tree.map(lambda x, i=i: x[i], samples)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), got, ref)

    # Found inside a chain and a multi_transform.
    inner = collect_samples(optax.sgd(0.1), 0, 1, 2)
    opt = optax.chain(
        optax.identity(),
        optax.multi_transform({"s": inner, "z": optax.set_to_zero()}, {"enc": "s", "dec": "z"}),
    )
    p = _params()
    state = opt.init(p)
    for t in range(2):
        u, state = opt.update(_grads(p, t), state, p)
        p = optax.apply_updates(p, u)
    found = collected_samples(state)
    assert set(found) == {"enc"}
    np.testing.assert_allclose(found["enc"]["bias"][1], p["enc"]["bias"], rtol=1e-6)


def test_collected_samples_raises_when_too_few():
    opt = collect_samples(optax.sgd(0.1), start_step=5, every_steps=2, num_samples=4)
    p = {"w": jnp.ones(2)}
    state = opt.init(p)
    for _ in range(8):  # stores after updates 5 and 7 only
        u, state = opt.update(p, state, p)
        p = optax.apply_updates(p, u)
    assert int(state.count) == 2
    with pytest.raises(ValueError, match="train longer or lower num_samples"):
        collected_samples(state)
    with pytest.raises(ValueError, match="no CollectState"):
        collected_samples(optax.sgd(0.1).init(p))
    with pytest.raises(ValueError, match="selects no parameter"):
        collect_samples(optax.sgd(0.1), 0, 1, 1, mask={"w": False}).init(p)


# ------------------------------------------------------------------------------ HMC / NUTS


def _potential(x, y):
    def potential(params):
        w = params["w"]
        return jnp.sum(0.5 * (y - x @ w) ** 2) / NOISE_STD**2 + 0.5 * PRECISION * jnp.sum(w**2)

    return potential


def test_nuts_recovers_the_linear_regression_posterior(regression):
    x, y, mean, cov = regression
    samples, diag = run_nuts(
        _potential(x, y),
        {"w": jnp.zeros(D)},
        jax.random.PRNGKey(0),
        num_warmup=500,
        num_samples=1000,
    )
    draws = np.asarray(samples["w"], np.float64)
    assert draws.shape == (1000, D) and diag["num_chains"] == 1
    json.dumps(diag)  # plain Python
    assert diag["num_divergences"] == 0
    assert diag["max_r_hat"] < 1.02
    assert 0.6 < diag["accept_prob"] <= 1.0
    ess = diag["min_ess"]
    assert ess > 400
    std = np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 4 * std / np.sqrt(ess))
    np.testing.assert_allclose(draws.var(0), np.diag(cov), rtol=0.2)  # SE ~ sqrt(2/ESS) < 7%
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.2 * np.max(np.diag(cov)))


def test_hmc_runs_vectorized_chains_and_reports(regression):
    x, y, mean, cov = regression
    samples, diag = run_nuts(
        _potential(x, y),
        {"w": jnp.asarray(mean, jnp.float32)},
        jax.random.PRNGKey(1),
        num_warmup=100,
        num_samples=200,
        thinning=2,
        num_chains=2,
        init_jitter=0.1,
        algorithm="hmc",
        num_steps=3,  # 5 steps at the adapted ~0.6 is half a period: antithetic draws
    )
    # Two vectorized chains, flattened: 2 * 200 / 2 draws.
    assert samples["w"].shape == (200, D) and diag["num_draws"] == 200
    assert len(diag["step_size"]) == 2 and diag["max_r_hat"] < 1.1
    assert diag["algorithm"] == "hmc" and diag["num_divergences"] == 0
    assert set(diag["ess"]) == {"w"} and diag["step_size"][0] > 0.05
    assert np.all(np.abs(np.asarray(samples["w"]).mean(0) - mean) < 5 * np.sqrt(np.diag(cov)))


def test_run_nuts_errors(regression):
    x, y, _, _ = regression
    with pytest.raises(ValueError, match="not finite"):
        run_nuts(
            lambda p: jnp.log(p["w"][0]),
            {"w": -jnp.ones(D)},
            jax.random.PRNGKey(0),
            num_warmup=1,
            num_samples=4,
        )
    with pytest.raises(ValueError, match="need at least 4"):
        run_nuts(_potential(x, y), {"w": jnp.zeros(D)}, jax.random.PRNGKey(0), num_warmup=1,
                 num_samples=6, thinning=2)  # fmt: skip
    with pytest.raises(ValueError, match="algorithm"):
        run_nuts(
            _potential(x, y),
            {"w": jnp.zeros(D)},
            jax.random.PRNGKey(0),
            num_warmup=1,
            num_samples=4,
            algorithm="mala",
        )

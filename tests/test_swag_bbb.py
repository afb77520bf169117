"""SWAG and Bayes by backprop against closed forms, NumPy loops and SciPy."""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import integrate, stats

from jaxrobust.inference import bbb, swag

# ---------------------------------------------------------------------------------------------
# SWAG


def _stacked_deviations(state, num_cols):
    """D^T as a [num_cols, d] float64 array (leaf order of jax.tree.leaves, rows = slots)."""
    rows = [
        np.asarray(x, np.float64).reshape(x.shape[0], -1) for x in jax.tree.leaves(state.deviations)
    ]
    return np.concatenate(rows, axis=1)[:num_cols]


def _flat(tree):
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)])


def test_swag_quadratic_stationary_moments():
    """SWAG moments of SGD on a noisy quadratic equal the iterates' stationary law.

    Loss L(theta) = 1/2 (theta - m)^T A (theta - m), A = diag(a), gradient a (theta - m) + s xi
    with xi ~ N(0, I). SGD with step eta gives, for x = theta - m,
        x_{t+1} = (1 - eta a) x_t - eta s xi_t,
    an AR(1) process with coefficient r1 = 1 - eta a (|r1| < 1 for eta a < 2). Its stationary
    variance v solves v = r1^2 v + eta^2 s^2, so
        v = eta^2 s^2 / (1 - (1 - eta a)^2) = eta s^2 / (a (2 - eta a)),
    i.e. theta_t -> N(m, diag(eta s^2 / (a_i (2 - eta a_i)))).

    Iterates collected every k steps form an AR(1) with coefficient r = r1^k. For N collected
    iterates, Var(mean_N) = v/N [1 + 2 sum_{j<N} (1 - j/N) r^j] and the SWAG variance
    sq_mean - mean^2 (the 1/N sample variance) has expectation v - Var(mean_N); its standard
    deviation is about sqrt(2 v^2 / N (1 + r^2) / (1 - r^2)) for Gaussian iterates.
    R independent chains (the optimizer state vmapped over a leading run axis) are averaged.
    """
    a = np.array([0.5, 1.0, 2.0, 4.0])
    m = np.array([1.0, -2.0, 0.5, 3.0])
    eta, s = 0.1, 1.0
    burn_in, every, n_collect, n_chains = 500, 20, 400, 256
    num_steps = burn_in + every * n_collect

    # Only "quad/theta" is collected: the mask keeps the pruned dict {"quad": {"theta": ...}}.
    params = {"quad": {"theta": jnp.zeros(4)}, "other": {"x": jnp.ones(3)}}
    mask = {"quad": {"theta": True}, "other": {"x": False}}
    opt = swag.swag_collector(optax.sgd(eta), burn_in, every, rank=5, mask=mask)
    a_j, m_j = jnp.asarray(a, jnp.float32), jnp.asarray(m, jnp.float32)

    def run_chain(key):
        def step(carry, t):
            p, state = carry
            noise = s * jax.random.normal(jax.random.fold_in(key, t), (4,))
            grads = {
                "quad": {"theta": a_j * (p["quad"]["theta"] - m_j) + noise},
                "other": {"x": jnp.zeros(3)},
            }
            updates, state = opt.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), None

        (_, state), _ = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(num_steps))
        return state

    opt_states = jax.jit(jax.vmap(run_chain))(jax.random.split(jax.random.key(0), n_chains))
    state = swag.swag_state(opt_states)
    assert set(state.mean) == {"quad"} and set(state.mean["quad"]) == {"theta"}
    np.testing.assert_array_equal(np.asarray(state.count), n_collect)

    v = eta * s**2 / (a * (2 - eta * a))
    r = (1 - eta * a) ** every
    j = np.arange(1, n_collect)[:, None]
    var_of_mean = v / n_collect * (1 + 2 * np.sum((1 - j / n_collect) * r**j, axis=0))
    expected_var = v - var_of_mean  # E[1/N sample variance] of N correlated draws
    sd_var = np.sqrt(2 * v**2 / n_collect * (1 + r**2) / (1 - r**2))

    swa_mean = np.asarray(state.mean["quad"]["theta"], np.float64)  # [chains, 4]
    diag_var = np.asarray(jax.vmap(swag.swag_diagonal_variance)(state)["quad"]["theta"])
    # 5 standard errors of the average over chains (chains are independent).
    np.testing.assert_array_less(np.abs(swa_mean.mean(0) - m), 5 * np.sqrt(var_of_mean / n_chains))
    np.testing.assert_array_less(
        np.abs(diag_var.mean(0) - expected_var), 5 * sd_var / np.sqrt(n_chains)
    )
    # The tolerance rejects v without the (2 - eta a) factor (5-25% smaller) for a >= 1.
    assert np.all((5 * sd_var / np.sqrt(n_chains) < np.abs(v - eta * s**2 / (2 * a)))[1:])


def test_swag_ring_buffer_matches_numpy_loop():
    rank, n = 3, 7
    rng = np.random.default_rng(1)
    iterates = [{"a": rng.normal(size=3), "b": {"c": rng.normal(size=(2, 2))}} for _ in range(n)]
    state = swag.swag_init(jax.tree.map(jnp.zeros_like, iterates[0]), rank=rank)
    collect = jax.jit(swag.swag_collect)
    for it in iterates:
        state = collect(state, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), it))

    flat = [np.concatenate([it["a"], it["b"]["c"].ravel()]) for it in iterates]
    mean, sq_mean, devs = np.zeros(7), np.zeros(7), []
    for i, x in enumerate(flat):
        mean = (i * mean + x) / (i + 1)
        sq_mean = (i * sq_mean + x**2) / (i + 1)
        devs.append(x - mean)  # deviation from the mean that includes x
        devs = devs[-rank:]
    assert int(state.count) == n
    np.testing.assert_allclose(_flat(state.mean), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_flat(state.sq_mean), sq_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        _flat(jax.jit(swag.swag_diagonal_variance)(state)), sq_mean - mean**2, rtol=1e-4, atol=1e-6
    )
    # Collection j (from 0) lives in slot j % rank; the buffer holds collections n-rank .. n-1.
    stored = _stacked_deviations(state, rank)
    for age, j in enumerate(range(n - rank, n)):
        np.testing.assert_allclose(stored[j % rank], devs[age], rtol=1e-5, atol=1e-5)


def test_swag_collector_schedule_and_errors():
    """Update call k (from 0) collects the params after it iff k >= start and
    (k - start) % every == 0."""
    start, every, steps = 3, 2, 10
    opt = swag.swag_collector(optax.sgd(1.0), start, every, rank=4)
    chained = optax.chain(optax.identity(), opt)  # swag_state searches inside the chain
    params = {"w": jnp.zeros(2)}
    state = chained.init(params)
    with pytest.raises(ValueError, match="no SWAG moments collected"):
        swag.swag_state(state)
    update = jax.jit(chained.update)
    after = []
    for k in range(steps):
        grads = {"w": -jnp.array([k + 1.0, (k + 1.0) ** 2])}  # sgd(1): params += (k+1, (k+1)^2)
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        after.append(np.asarray(params["w"], np.float64))
    collected = [after[k] for k in range(steps) if k >= start and (k - start) % every == 0]
    found = swag.swag_state(state)
    assert int(found.count) == len(collected) == 4
    np.testing.assert_allclose(found.mean["w"], np.mean(collected, 0), rtol=1e-6)
    np.testing.assert_allclose(found.sq_mean["w"], np.mean(np.square(collected), 0), rtol=1e-6)

    with pytest.raises(ValueError, match="no SWAG state"):
        swag.swag_state(optax.sgd(0.1).init(params))
    with pytest.raises(ValueError, match="2 SWAG states"):
        swag.swag_state((state, state))
    with pytest.raises(ValueError, match="rank"):
        swag.swag_init(params, rank=1)
    with pytest.raises(ValueError, match="every_steps"):
        swag.swag_collector(optax.sgd(0.1), 0, 0)
    with pytest.raises(ValueError, match="needs the parameters"):
        opt.update(params, opt.init(params))
    with pytest.raises(ValueError, match="num_samples"):
        swag.swag_sample(jax.random.key(0), found, 0)


@pytest.mark.parametrize("rank, count", [(4, 6), (10, 4)])
def test_swag_sample_covariance_matches_closed_form(rank, count):
    """Cov of swag_sample = scale (diag(var) + D D^T / (K - 1)), K = min(count, rank)."""
    scale, num_samples = 0.5, 20_000
    rng = np.random.default_rng(rank)
    directions = rng.normal(size=(2, 7))
    iterates = 0.3 + rng.normal(size=(count, 7)) * 0.2 + rng.normal(size=(count, 2)) @ directions
    num_cols = min(count, rank)

    @jax.jit
    def collect_and_sample(xs, key):  # one compiled program: collect, then sample both ways
        def collect(state, x):
            return swag.swag_collect(state, {"u": x[:3], "v": x[3:].reshape(2, 2)}), None

        empty = swag.swag_init({"u": jnp.zeros(3), "v": jnp.zeros((2, 2))}, rank=rank)
        state, _ = jax.lax.scan(collect, empty, xs)
        # Unfilled columns (none when count >= rank) must not contribute, whatever they hold.
        poisoned = state._replace(
            deviations=jax.tree.map(lambda d: d.at[num_cols:].set(100.0), state.deviations)
        )
        draws = [
            swag.swag_sample(key, poisoned, num_samples, scale=scale, low_rank=lr)
            for lr in (True, False)
        ]
        return state, swag.swag_diagonal_variance(state), draws

    state, var, draws = collect_and_sample(jnp.asarray(iterates, jnp.float32), jax.random.key(3))
    D = _stacked_deviations(state, num_cols)
    var = _flat(var)
    closed = scale * (np.diag(var) + D.T @ D / (num_cols - 1))

    for samples, target in zip(draws, (closed, scale * np.diag(var)), strict=True):
        assert samples["v"].shape == (num_samples, 2, 2)
        flat = np.concatenate(
            [np.asarray(x, np.float64).reshape(num_samples, -1) for x in jax.tree.leaves(samples)],
            1,
        )
        # Sample covariance of S Gaussian draws: Var(C_ij) = (C_ij^2 + C_ii C_jj) / (S - 1)
        # (Wishart); mean: Var = C_ii / S. 5 standard errors per entry.
        se_cov = np.sqrt(
            (target**2 + np.outer(np.diag(target), np.diag(target))) / (num_samples - 1)
        )
        np.testing.assert_array_less(np.abs(np.cov(flat.T) - target), 5 * se_cov)
        se_mean = np.sqrt(np.diag(target) / num_samples)
        np.testing.assert_array_less(np.abs(flat.mean(0) - _flat(state.mean)), 5 * se_mean + 1e-7)
    # The low-rank part is far outside that tolerance, so the test would see it missing.
    assert np.max(np.abs(closed - scale * np.diag(var)) / (5 * se_cov)) > 3


# ---------------------------------------------------------------------------------------------
# Bayes by backprop


def _variational():
    rng = np.random.default_rng(0)
    mu = {"w": rng.normal(size=(2, 3)) * 0.3, "b": np.array([0.0, 0.05, -0.2, 0.5])}
    rho = {"w": rng.uniform(-3.0, 0.0, size=(2, 3)), "b": np.array([-3.0, -4.0, -2.0, -1.0])}
    as32 = lambda t: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), t)  # noqa: E731
    return {"mu": as32(mu), "rho": as32(rho)}


def _softplus(x):
    return np.logaddexp(0.0, np.asarray(x, np.float64))


def _kl_draws(variational, prior, n=20_000):
    keys = jax.random.split(jax.random.key(1), n)
    kls = jax.jit(jax.vmap(lambda k: bbb.kl_estimate(k, variational, prior)[1]))(keys)
    kls = np.asarray(kls, np.float64)
    return kls.mean(), kls.std(ddof=1) / np.sqrt(n)


def test_kl_estimate_gaussian_prior_matches_closed_form():
    variational, sigma = _variational(), 0.7
    mu, s = _flat(variational["mu"]), _softplus(_flat(variational["rho"]))
    closed = np.sum(np.log(sigma / s) + (s**2 + mu**2) / (2 * sigma**2) - 0.5)
    both = jax.jit(
        lambda v: (bbb.gaussian_kl(v, sigma), bbb.gaussian_kl(v, bbb.GaussianPrior(sigma)))
    )
    np.testing.assert_allclose(both(variational), [closed, closed], rtol=1e-5)
    mean, se = _kl_draws(variational, bbb.GaussianPrior(sigma))
    assert abs(mean - closed) < 5 * se, (mean, closed, se)


def test_kl_estimate_scale_mixture_matches_quadrature():
    variational = {k: {"b": v["b"]} for k, v in _variational().items()}  # 4 dimensions
    prior = bbb.ScaleMixturePrior(pi=0.25, sigma1=math.exp(-1.0), sigma2=math.exp(-6.0))

    def log_p(w):
        return np.log(
            prior.pi * stats.norm.pdf(w, scale=prior.sigma1)
            + (1 - prior.pi) * stats.norm.pdf(w, scale=prior.sigma2)
        )

    closed = 0.0
    for m, s in zip(_flat(variational["mu"]), _softplus(_flat(variational["rho"])), strict=True):
        q = stats.norm(m, s)
        lo, hi = m - 12 * s, m + 12 * s
        value, err = integrate.quad(
            lambda w, q=q: q.pdf(w) * (q.logpdf(w) - log_p(w)),
            lo,
            hi,
            points=[0.0] if lo < 0 < hi else None,
            limit=200,
        )
        assert err < 1e-6
        closed += value
    mean, se = _kl_draws(variational, prior)
    assert abs(mean - closed) < 5 * se, (mean, closed, se)


@pytest.mark.parametrize("log_sigma2", [-6.0, -8.0])
def test_prior_log_prob_matches_scipy(log_sigma2):
    ws = np.array([-3.0, -0.5, -1e-3, 0.0, 1e-4, 2e-3, 0.7, 5.0])
    prior = bbb.ScaleMixturePrior(pi=0.3, sigma1=1.0, sigma2=math.exp(log_sigma2))
    expected = np.log(
        prior.pi * stats.norm.pdf(ws, scale=prior.sigma1)
        + (1 - prior.pi) * stats.norm.pdf(ws, scale=prior.sigma2)
    )
    log_prob = jax.jit(lambda t: bbb.prior_log_prob(t, prior))
    per_weight = jax.jit(jax.vmap(lambda w: log_prob({"w": w})))(jnp.asarray(ws, jnp.float32))
    np.testing.assert_allclose(per_weight, expected, rtol=2e-5, atol=1e-4)
    tree = {"a": jnp.asarray(ws[:3], jnp.float32), "b": {"c": jnp.asarray(ws[3:], jnp.float32)}}
    np.testing.assert_allclose(log_prob(tree), expected.sum(), rtol=2e-5)
    grad = jax.jit(jax.grad(log_prob))(tree)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grad))

    gauss = jax.jit(bbb.prior_log_prob)(tree, bbb.GaussianPrior(0.5))
    np.testing.assert_allclose(gauss, stats.norm.logpdf(ws, scale=0.5).sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="prior must be"):
        bbb.prior_log_prob(tree, 1.0)


def test_posterior_samples_moments():
    variational, n = _variational(), 20_000

    @jax.jit
    def draw(key, v):  # one compiled program: the samples, and log q of the first one
        samples = bbb.posterior_samples(key, v, n)
        return samples, bbb.mean_field_log_prob(jax.tree.map(lambda x: x[0], samples), v)

    draws, log_q = draw(jax.random.key(2), variational)
    assert draws["w"].shape == (n, 2, 3) and draws["b"].shape == (n, 4)
    flat = np.concatenate(
        [np.asarray(x, np.float64).reshape(n, -1) for x in jax.tree.leaves(draws)], 1
    )
    mu, sigma = _flat(variational["mu"]), _softplus(_flat(variational["rho"]))
    # Standard errors: sigma / sqrt(n) for the mean, sigma / sqrt(2 (n - 1)) for the std.
    np.testing.assert_array_less(np.abs(flat.mean(0) - mu), 5 * sigma / np.sqrt(n))
    np.testing.assert_array_less(
        np.abs(flat.std(0, ddof=1) - sigma), 5 * sigma / np.sqrt(2 * (n - 1))
    )

    expected = stats.norm.logpdf(flat[0], mu, sigma).sum()
    np.testing.assert_allclose(log_q, expected, rtol=1e-5)


def test_gradients_init_and_errors():
    variational = _variational()
    grads = jax.jit(
        jax.grad(lambda v: bbb.kl_estimate(jax.random.key(4), v, bbb.ScaleMixturePrior())[1])
    )(variational)
    for part in ("mu", "rho"):
        leaves = [np.asarray(g) for g in jax.tree.leaves(grads[part])]
        assert all(np.all(np.isfinite(g)) for g in leaves)
        assert any(np.any(g != 0) for g in leaves), part

    params = {"dense": {"kernel": jnp.ones((100, 100)), "bias": jnp.ones(100)}}
    init = jax.jit(bbb.mean_field_init)(jax.random.key(5), params)
    assert abs(float(jnp.std(init["mu"]["dense"]["kernel"])) - 0.1) < 0.005  # 0.1 is the std
    np.testing.assert_array_equal(init["rho"]["dense"]["bias"], -3.0)
    from_params = jax.jit(partial(bbb.mean_field_init, mu_init="params", rho_init=-4.0))(
        jax.random.key(5), params
    )
    np.testing.assert_array_equal(from_params["mu"]["dense"]["kernel"], 1.0)
    np.testing.assert_array_equal(from_params["rho"]["dense"]["kernel"], -4.0)

    with pytest.raises(ValueError, match="Unknown mu_init 'zeros'"):
        bbb.mean_field_init(jax.random.key(0), params, mu_init="zeros")
    with pytest.raises(ValueError, match="num_samples"):
        bbb.posterior_samples(jax.random.key(0), variational, 0)
    with pytest.raises(ValueError, match="mu"):
        bbb.sample_params(jax.random.key(0), {"mu": variational["mu"]})

"""FGSM, R+FGSM, PGD/BIM and EOT against NumPy references on a linear softmax model.

For ``logits = x W + b`` the input gradient of the cross-entropy is closed form,
``grad_x = (softmax(z) - onehot(y)) W^T``, so every attack step has an independent NumPy
transcription.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.attacks._checks import cross_entropy_loss, margin_loss
from jaxrobust.attacks.gradient import (
    expectation_over_transformation,
    fgsm,
    fgsm_sweep,
    pgd,
    pgd_sweep,
)

B, D, C = 16, 12, 5


# ----------------------------------------------------------------------------------------------
# Tiny models and NumPy references


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(D, C)).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    x = rng.uniform(0.05, 0.95, size=(B, D)).astype(np.float32)
    y = rng.integers(0, C, B)
    t = (y + 1 + rng.integers(0, C - 1, B)) % C  # targets != labels
    return w, b, x, y, t


def linear_logits(w, b):
    w, b = jnp.asarray(w), jnp.asarray(b)
    return lambda x: x @ w + b


def np_ce_grad(w, b, x, y):
    """Closed-form input gradient of the cross-entropy of a linear softmax model."""
    x, w, b = np.float64(x), np.float64(w), np.float64(b)
    z = x @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p @ w.T


def np_ce(w, b, x, y):
    z = np.float64(x) @ np.float64(w) + np.float64(b)
    m = z.max(1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
    return lse - z[np.arange(len(y)), y]


def np_bim(w, b, x, y, eps, step, steps, norm, sign=1.0, domain=(0.0, 1.0)):
    """A NumPy loop of projected gradient steps from x (BIM)."""
    x0 = np.float64(x)
    xa = x0.copy()
    for _ in range(steps):
        g = np_ce_grad(w, b, xa, y)
        if norm == "linf":
            xa = xa + sign * step * np.sign(g)
        else:
            g_norm = np.linalg.norm(g, axis=1, keepdims=True)
            xa = xa + sign * step * g / np.maximum(g_norm, 1e-6)
        if domain is not None:
            xa = np.clip(xa, *domain)
        if norm == "linf":
            delta = np.clip(xa - x0, -eps, eps)
        else:
            delta = xa - x0
            d_norm = np.linalg.norm(delta, axis=1, keepdims=True)
            delta = delta * np.minimum(1.0, eps / np.maximum(d_norm, 1e-12))
        xa = x0 + delta
        if domain is not None:
            xa = np.clip(xa, *domain)
    return xa


def mlp(rng, d_in=D, hidden=16, classes=C):
    w1 = jnp.asarray(rng.normal(size=(d_in, hidden)) * 3.0 / np.sqrt(d_in), jnp.float32)
    w2 = jnp.asarray(rng.normal(size=(hidden, classes)) * 3.0 / np.sqrt(hidden), jnp.float32)
    return lambda x: jnp.tanh(x @ w1) @ w2


# ----------------------------------------------------------------------------------------------
# FGSM


def test_fgsm_matches_closed_form_untargeted_and_targeted(linear):
    w, b, x, y, t = linear
    loss = cross_entropy_loss(linear_logits(w, b))
    eps = 0.1
    got = fgsm(loss, x, y, epsilon=eps)
    want = np.clip(x + eps * np.sign(np_ce_grad(w, b, x, y)), 0, 1)
    np.testing.assert_allclose(got, want, atol=1e-6)
    got_t = fgsm(loss, x, y, epsilon=eps, targeted=True, targets=t)
    want_t = np.clip(x - eps * np.sign(np_ce_grad(w, b, x, t)), 0, 1)
    np.testing.assert_allclose(got_t, want_t, atol=1e-6)
    # The targeted step lowers the loss at the target; the untargeted one raises it at the label.
    assert np_ce(w, b, got_t, t).mean() < np_ce(w, b, x, t).mean()
    assert np_ce(w, b, got, y).mean() > np_ce(w, b, x, y).mean()


def test_fgsm_per_example_epsilon_and_zero(linear):
    w, b, x, y, _ = linear
    loss = cross_entropy_loss(linear_logits(w, b))
    eps = np.linspace(0.0, 0.3, B).astype(np.float32)
    got = fgsm(loss, x, y, epsilon=eps)
    for i in (0, 5, B - 1):
        row = fgsm(loss, x, y, epsilon=float(eps[i]))[i]
        np.testing.assert_allclose(got[i], row, atol=1e-7)
    np.testing.assert_array_equal(got[0], x[0])  # eps = 0 changes nothing


def test_rfgsm_random_step_then_gradient_step(linear):
    w, b, x, y, _ = linear
    loss = cross_entropy_loss(linear_logits(w, b))
    eps, alpha = 0.5, 0.15
    got = np.float64(
        fgsm(loss, x, y, epsilon=eps, random_start=alpha, key=jax.random.PRNGKey(3), domain=None)
    )
    delta = got - x
    # Every coordinate is alpha * n + (eps - alpha) * s with n, s in {-1, 1}: |delta| is eps
    # where n = s and eps - 2 alpha (> 0 here) where n = -s; sign(delta) = s either way.
    mag = np.abs(delta)
    same = np.isclose(mag, eps, atol=1e-5)
    opposite = np.isclose(mag, eps - 2 * alpha, atol=1e-5)
    assert np.all(same | opposite)
    step = np.sign(delta)
    noise = np.where(same, step, -step)
    # n is a random sign; s is the gradient sign at x' = x + alpha * n.
    assert abs(noise.mean()) < 0.15 and 0.2 < same.mean() < 0.8
    np.testing.assert_array_equal(step, np.sign(np_ce_grad(w, b, x + alpha * noise, y)))
    # Inside the domain, the result is still within eps of x and clipped.
    clipped = fgsm(loss, x, y, epsilon=eps, random_start=alpha, key=jax.random.PRNGKey(3))
    assert float(jnp.max(jnp.abs(clipped - x))) <= eps + 1e-6
    assert float(clipped.min()) >= 0 and float(clipped.max()) <= 1


def test_fgsm_domain_none_leaves_values_unclipped(linear):
    w, b, _, y, _ = linear
    x = np.random.default_rng(1).normal(0.5, 1.5, size=(B, D)).astype(np.float32)
    loss = cross_entropy_loss(linear_logits(w, b))
    got = fgsm(loss, x, y, epsilon=0.2, domain=None)
    np.testing.assert_allclose(got, x + 0.2 * np.sign(np_ce_grad(w, b, x, y)), atol=1e-6)
    assert float(got.min()) < 0 and float(got.max()) > 1
    adv = pgd(
        loss, x, y, key=jax.random.PRNGKey(0), epsilon=0.2, step_size=0.05, num_steps=3, domain=None
    )
    assert float(adv.min()) < 0 and float(adv.max()) > 1
    assert float(jnp.max(jnp.abs(adv - x))) <= 0.2 + 1e-6


# ----------------------------------------------------------------------------------------------
# PGD / BIM


def test_one_step_bim_equals_fgsm(linear):
    w, b, x, y, t = linear
    loss = cross_entropy_loss(linear_logits(w, b))
    for kwargs in ({}, {"targeted": True, "targets": t}):
        one = pgd(loss, x, y, epsilon=0.1, step_size=0.1, num_steps=1, random_start=False, **kwargs)
        np.testing.assert_array_equal(one, fgsm(loss, x, y, epsilon=0.1, **kwargs))


@pytest.mark.gpu
@pytest.mark.parametrize("norm,eps,step", [("linf", 0.1, 0.02), ("l2", 0.5, 0.15)])
def test_bim_matches_numpy_loop(linear, norm, eps, step):
    w, b, x, y, t = linear
    loss = cross_entropy_loss(linear_logits(w, b))
    got = pgd(loss, x, y, epsilon=eps, step_size=step, num_steps=8, norm=norm, random_start=False)
    np.testing.assert_allclose(got, np_bim(w, b, x, y, eps, step, 8, norm), atol=2e-5)
    got_t = pgd(
        loss,
        x,
        y,
        epsilon=eps,
        step_size=step,
        num_steps=8,
        norm=norm,
        random_start=False,
        targeted=True,
        targets=t,
    )
    np.testing.assert_allclose(got_t, np_bim(w, b, x, t, eps, step, 8, norm, sign=-1.0), atol=2e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_and_domain_with_random_start(linear, norm):
    w, b, x, y, _ = linear
    loss = cross_entropy_loss(linear_logits(w, b))
    eps = 0.1 if norm == "linf" else 0.4
    for steps in (0, 5):
        adv = np.asarray(
            pgd(
                loss,
                x,
                y,
                key=jax.random.PRNGKey(1),
                epsilon=eps,
                step_size=eps / 2,
                num_steps=steps,
                norm=norm,
            )
        )
        assert not np.allclose(adv, x)
        if norm == "linf":
            assert np.abs(adv - x).max() <= eps + 1e-6
        else:
            assert np.linalg.norm(adv - x, axis=1).max() <= eps + 1e-5
        assert adv.min() >= 0.0 and adv.max() <= 1.0
    # Per-example radii are respected too.
    eps_b = np.linspace(0.01, eps, B).astype(np.float32)
    adv = np.asarray(
        pgd(
            loss,
            x,
            y,
            key=jax.random.PRNGKey(2),
            epsilon=eps_b,
            step_size=eps,
            num_steps=3,
            norm=norm,
        )
    )
    size = np.abs(adv - x).max(1) if norm == "linf" else np.linalg.norm(adv - x, axis=1)
    assert np.all(size <= eps_b + 1e-5)


def test_random_start_is_uniform_in_the_ball():
    n, eps = 20000, 1.0
    x = jnp.zeros((n, 2))
    y = jnp.zeros(n, jnp.int32)
    loss = cross_entropy_loss(lambda v: jnp.zeros((v.shape[0], 3)) + v[:, :1])
    key = jax.random.PRNGKey(4)
    l2 = np.asarray(
        pgd(loss, x, y, key=key, epsilon=eps, step_size=0.1, num_steps=0, norm="l2", domain=None)
    )
    radius = np.linalg.norm(l2, axis=1)
    # Uniform in the disc: P(r <= s) = s^2; angles uniform.
    for s in (0.3, 0.5, 0.8):
        assert abs(np.mean(radius <= s) - s**2) < 0.02
    assert radius.max() <= eps + 1e-6
    assert np.abs(l2.mean(0)).max() < 0.02
    linf = np.asarray(
        pgd(loss, x, y, key=key, epsilon=eps, step_size=0.1, num_steps=0, domain=None)
    )
    hist, _ = np.histogram(linf, bins=10, range=(-eps, eps))
    np.testing.assert_allclose(hist / linf.size, 0.1, atol=0.01)


@pytest.mark.gpu
def test_pgd_raises_the_loss_of_an_mlp():
    logits_fn = mlp(np.random.default_rng(2))
    x = np.random.default_rng(3).uniform(size=(64, D)).astype(np.float32)
    y = np.asarray(jnp.argmax(logits_fn(x), axis=1))  # clean-correct
    key = jax.random.PRNGKey(2)

    @jax.jit
    def before_after(x):
        out = {}
        for name, loss in (("ce", cross_entropy_loss(logits_fn)), ("cw", margin_loss(logits_fn))):
            for norm, eps in (("linf", 0.1), ("l2", 0.5)):
                adv = pgd(
                    loss, x, y, key=key, epsilon=eps, step_size=eps / 4, num_steps=10, norm=norm
                )
                flipped = jnp.mean(jnp.argmax(logits_fn(adv), 1) != y)
                out[name, norm] = (loss(x, y).mean(), loss(adv, y).mean(), flipped)
        return out

    for (name, norm), (before, after, flipped) in before_after(x).items():
        assert float(after) > float(before), (name, norm)
        assert float(flipped) > 0, (name, norm)


# ----------------------------------------------------------------------------------------------
# EOT


def test_eot_gradient_is_the_mean_of_per_sample_gradients(linear):
    w, b, x, y, _ = linear
    sigma, samples = 0.5, 7
    key = jax.random.PRNGKey(5)

    def noisy_loss(xb, yb, k):  # a Bayesian-style linear model: W + sigma * eps
        w_k = jnp.asarray(w) + sigma * jax.random.normal(k, w.shape)
        return cross_entropy_loss(linear_logits(w_k, b))(xb, yb)

    eot = expectation_over_transformation(noisy_loss, samples, key=key)
    chunked = expectation_over_transformation(noisy_loss, samples, key=key, chunk_size=3)

    @jax.jit
    def evaluate(v):
        grad = jax.grad(lambda u: eot(u, y).sum())(v)
        return eot(v, y), grad, chunked(v, y), fgsm(eot, v, y, epsilon=0.1)

    loss, grad, loss_chunked, adv = evaluate(jnp.asarray(x))
    noise = jax.vmap(lambda k: jax.random.normal(k, w.shape))(jax.random.split(key, samples))
    draws = np.asarray(w) + sigma * np.asarray(noise)
    want = np.mean([np_ce_grad(w_k, b, x, y) for w_k in draws], axis=0)
    np.testing.assert_allclose(grad, want, atol=1e-5)
    np.testing.assert_allclose(loss, np.mean([np_ce(w_k, b, x, y) for w_k in draws], 0), rtol=1e-5)
    np.testing.assert_allclose(loss_chunked, loss, rtol=1e-6)
    # It drives the attacks like any loss.
    np.testing.assert_allclose(adv, np.clip(x + 0.1 * np.sign(want), 0, 1), atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Sweeps and jit


def test_sweeps_equal_separate_calls(linear):
    w, b, x, y, _ = linear
    loss = cross_entropy_loss(linear_logits(w, b))
    epsilons = np.array([0.0, 0.05, 0.2], np.float32)
    # The sweeps under jit (compiled once instead of op by op); the eager path runs below.
    swept = jax.jit(lambda es: fgsm_sweep(loss, x, y, es))(epsilons)
    assert swept.shape == (3, B, D)
    for i, e in enumerate(epsilons):
        np.testing.assert_allclose(swept[i], fgsm(loss, x, y, epsilon=e), atol=1e-7)
    key = jax.random.PRNGKey(6)
    r_swept = jax.jit(lambda es: fgsm_sweep(loss, x, y, es, random_start=0.05, key=key))(
        epsilons[1:]
    )
    for i, e in enumerate(epsilons[1:]):
        single = fgsm(loss, x, y, epsilon=e, random_start=0.05, key=key)
        np.testing.assert_allclose(r_swept[i], single, atol=1e-6)
    epsilons, steps = np.array([0.05, 0.3], np.float32), np.array([0.02, 0.1], np.float32)

    @functools.partial(jax.jit, static_argnames="norm")
    def swept_and_single(norm):
        kwargs = dict(num_steps=4, norm=norm)
        swept = pgd_sweep(loss, x, y, epsilons, key=key, step_size=steps, **kwargs)
        singles = [
            pgd(loss, x, y, key=key, epsilon=e, step_size=s, **kwargs)
            for e, s in zip(epsilons, steps, strict=True)
        ]
        return swept, jnp.stack(singles)

    for norm in ("linf", "l2"):
        p_swept, singles = swept_and_single(norm)
        np.testing.assert_allclose(p_swept, singles, atol=1e-6)
    shared = pgd_sweep(loss, x, y, epsilons, step_size=0.01, num_steps=2, random_start=False)
    np.testing.assert_allclose(
        shared[1],
        pgd(loss, x, y, epsilon=0.3, step_size=0.01, num_steps=2, random_start=False),
        atol=1e-6,
    )


def test_attacks_are_jittable(linear):
    w, b, x, y, t = linear
    loss = cross_entropy_loss(linear_logits(w, b))
    key = jax.random.PRNGKey(7)
    jit_pgd = jax.jit(
        pgd, static_argnames=("loss_fn", "num_steps", "norm", "random_start", "targeted", "domain")
    )
    kwargs = dict(epsilon=0.3, step_size=0.1, num_steps=3, norm="l2")
    np.testing.assert_allclose(
        jit_pgd(loss, x, y, key=key, **kwargs), pgd(loss, x, y, key=key, **kwargs), atol=1e-6
    )
    jit_targeted = jax.jit(
        functools.partial(
            pgd, loss, epsilon=0.1, step_size=0.05, num_steps=2, targeted=True, random_start=False
        )
    )
    np.testing.assert_allclose(
        jit_targeted(x, y, targets=t),
        pgd(
            loss,
            x,
            y,
            epsilon=0.1,
            step_size=0.05,
            num_steps=2,
            targeted=True,
            targets=t,
            random_start=False,
        ),
        atol=1e-6,
    )
    # Traced epsilon and R+FGSM alpha inside a caller's jit.
    jit_fgsm = jax.jit(
        lambda xb, yb, e, k: fgsm(loss, xb, yb, epsilon=e, random_start=e / 2, key=k)
    )
    np.testing.assert_allclose(
        jit_fgsm(x, y, 0.2, key),
        fgsm(loss, x, y, epsilon=0.2, random_start=0.1, key=key),
        atol=1e-6,
    )


# ----------------------------------------------------------------------------------------------
# Errors


def test_errors_say_what_to_do(linear):
    w, b, x, y, t = linear
    loss = cross_entropy_loss(linear_logits(w, b))
    key = jax.random.PRNGKey(0)
    pgd_kw = dict(epsilon=0.1, step_size=0.01, num_steps=2)
    with pytest.raises(ValueError, match="epsilon must be finite and >= 0"):
        fgsm(loss, x, y, epsilon=-0.1)
    with pytest.raises(ValueError, match="epsilon must be finite and >= 0"):
        pgd(loss, x, y, key=key, epsilon=-0.1, step_size=0.01, num_steps=2)
    with pytest.raises(ValueError, match="epsilons must be finite and >= 0"):
        fgsm_sweep(loss, x, y, jnp.array([0.1, -0.1]))
    with pytest.raises(ValueError, match="step_size must be finite and >= 0"):
        pgd(loss, x, y, key=key, epsilon=0.1, step_size=-0.01, num_steps=2)
    with pytest.raises(ValueError, match="outside the attack domain.*domain=None"):
        fgsm(loss, x + 2.0, y, epsilon=0.1)
    with pytest.raises(ValueError, match="outside the attack domain"):
        pgd(loss, x - 1.0, y, key=key, **pgd_kw)
    with pytest.raises(ValueError, match=r"labels must have shape \(16,\)"):
        fgsm(loss, x, y[:-1], epsilon=0.1)
    with pytest.raises(ValueError, match=r"labels must have shape"):
        pgd(loss, x, y[:, None], key=key, **pgd_kw)
    with pytest.raises(ValueError, match="targeted attack needs targets"):
        fgsm(loss, x, y, epsilon=0.1, targeted=True)
    with pytest.raises(ValueError, match="targeted attack needs targets"):
        pgd(loss, x, y, key=key, targeted=True, **pgd_kw)
    with pytest.raises(ValueError, match="pass targeted=True"):
        fgsm(loss, x, y, epsilon=0.1, targets=t)
    with pytest.raises(ValueError, match="needs a PRNG key.*random_start=None"):
        fgsm(loss, x, y, epsilon=0.1, random_start=0.05)
    with pytest.raises(ValueError, match=r"needs a PRNG key.*random_start=False \(BIM\)"):
        pgd(loss, x, y, **pgd_kw)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        pgd_sweep(loss, x, y, jnp.array([0.1]), step_size=0.01, num_steps=2)
    with pytest.raises(ValueError, match="must not exceed epsilon"):
        fgsm(loss, x, y, epsilon=0.1, random_start=0.2, key=key)
    with pytest.raises(ValueError, match="must not exceed epsilon"):
        fgsm_sweep(loss, x, y, jnp.array([0.05, 0.3]), random_start=0.1, key=key)
    with pytest.raises(ValueError, match="norm must be one of"):
        pgd(loss, x, y, key=key, norm="l1", **pgd_kw)
    with pytest.raises(ValueError, match="num_steps must be an integer >= 0"):
        pgd(loss, x, y, key=key, epsilon=0.1, step_size=0.01, num_steps=-1)
    with pytest.raises(ValueError, match="one value per input"):
        fgsm(loss, x, y, epsilon=jnp.full(B + 1, 0.1))
    with pytest.raises(ValueError, match="one loss per input"):
        fgsm(lambda xb, yb: loss(xb, yb).mean(), x, y, epsilon=0.1)
    with pytest.raises(ValueError, match=r"epsilons must have shape \[E\]"):
        pgd_sweep(loss, x, y, jnp.zeros((2, 3)), key=key, step_size=0.01, num_steps=1)
    with pytest.raises(ValueError, match="step_size must be a scalar, one value per epsilon"):
        pgd_sweep(loss, x, y, jnp.array([0.1, 0.2]), key=key, step_size=jnp.ones(3), num_steps=1)
    with pytest.raises(ValueError, match="Inputs must have a batch axis"):
        fgsm(loss, x[0], y, epsilon=0.1)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        expectation_over_transformation(lambda xb, yb, k: loss(xb, yb), 0, key=key)
    with pytest.raises(ValueError, match="needs key="):
        expectation_over_transformation(lambda xb, yb, k: loss(xb, yb), 4, key=None)

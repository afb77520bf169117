"""JSMA and the latent (encoder) attack against references computed here in NumPy.

JSMA on an affine classifier ``Z = x W + b`` has a constant Jacobian ``dZ_j/dx_p = W[p, j]``, so
the saliency search of every iteration is a brute-force loop over feature pairs. For a linear
encoder with constant log-variance the symmetric KL is the quadratic ``||e A||^2`` (unit
variances), whose maximum over the L2 ball is ``(delta * sigma_max(A))^2`` and, for a single
latent coordinate ``a``, over the L-inf ball ``(delta * ||a||_1)^2`` at ``e = delta sign(a)``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.attacks.jsma import jsma
from jaxrobust.attacks.latent import latent_attack, symmetric_gaussian_kl

D, K = 16, 3


def affine(seed: int, d: int = D, k: int = K):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(d, k)).astype(np.float32)
    b = rng.normal(size=k).astype(np.float32)
    return w, b, (lambda x: x @ w + b)


def numpy_jsma(w, b, x, target, theta, gamma, low=0.0, high=1.0):
    """NumPy JSMA for one example on Z = x W + b: brute-force pair search every iteration."""
    x = x.astype(np.float64).copy()
    d = x.size
    grad_t = w[:, target].astype(np.float64)
    grad_o = w.sum(1).astype(np.float64) - grad_t
    increase = theta > 0
    search = x < high if increase else x > low
    pairs = []
    for _ in range(int(np.floor(gamma * d / 2 + 1e-9))):
        if np.argmax(x @ w + b) == target:
            break
        best, best_pair = -np.inf, None
        for p in range(d):
            for q in range(d):
                if p == q or not (search[p] and search[q]):
                    continue
                alpha, beta = grad_t[p] + grad_t[q], grad_o[p] + grad_o[q]
                ok = (alpha > 0 and beta < 0) if increase else (alpha < 0 and beta > 0)
                if ok and -alpha * beta > best:
                    best, best_pair = -alpha * beta, (p, q)
        if best_pair is None:
            break
        pairs.append(best_pair)
        for f in best_pair:
            x[f] = np.clip(x[f] + theta, low, high)
            if (increase and x[f] >= high) or (not increase and x[f] <= low):
                search[f] = False
    return x, pairs


def non_predicted_targets(logits: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pred = logits.argmax(1)
    return ((pred + rng.integers(1, K, size=pred.shape)) % K).astype(np.int32)


# ----------------------------------------------------------------------------------------------
# JSMA


@pytest.mark.parametrize("theta", [1.0, 0.3])
def test_jsma_first_pair_is_brute_force_argmax(theta):
    w, b, logits_fn = affine(0)
    x = np.random.default_rng(1).uniform(0, 0.5, size=(8, D)).astype(np.float32)
    targets = non_predicted_targets(x @ w + b, 2)
    res = jsma(logits_fn, jnp.asarray(x), jnp.asarray(targets), theta=theta, gamma=2.0 / D)
    adv = np.asarray(res.adversarial)
    for i in range(len(x)):
        expected, pairs = numpy_jsma(w, b, x[i], targets[i], theta, 2.0 / D)
        assert len(pairs) <= 1
        changed = set(np.flatnonzero(adv[i] != x[i]))
        assert changed == (set(pairs[0]) if pairs else set())
        np.testing.assert_allclose(adv[i], expected, atol=1e-6)


@pytest.mark.parametrize("theta,gamma", [(1.0, 0.5), (0.3, 0.5), (-1.0, 0.5), (-0.4, 1.0)])
def test_jsma_matches_numpy_reference(theta, gamma):
    w, b, logits_fn = affine(3)
    x = np.random.default_rng(4).uniform(0, 1, size=(10, D)).astype(np.float32)
    targets = non_predicted_targets(x @ w + b, 5)
    res = jsma(logits_fn, jnp.asarray(x), jnp.asarray(targets), theta=theta, gamma=gamma)
    adv = np.asarray(res.adversarial)
    for i in range(len(x)):
        expected, _ = numpy_jsma(w, b, x[i], targets[i], theta, gamma)
        np.testing.assert_allclose(adv[i], expected, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(res.success), (adv @ w + b).argmax(1) == targets)
    np.testing.assert_array_equal(np.asarray(res.num_changed), (adv != x).sum(1))


def test_jsma_reaches_easy_targets_and_stops_early():
    rng = np.random.default_rng(6)
    w = np.empty((D, K), np.float32)
    w[:, 0] = 1.0 + rng.uniform(0, 0.1, D)  # every increase helps the target class 0
    w[:, 1:] = -rng.uniform(0.1, 0.2, (D, K - 1))
    b = np.array([0.0, 3.0, 3.0], np.float32)
    x = np.zeros((4, D), np.float32)
    res = jsma(lambda z: z @ w + b, x, jnp.zeros(4, jnp.int32), theta=1.0, gamma=0.5)
    assert np.all(np.asarray(res.success))
    # two pairs (4 features at +1) are needed and enough: the attack stops there.
    np.testing.assert_array_equal(np.asarray(res.num_changed), 4)
    np.testing.assert_array_equal(np.unique(np.asarray(res.adversarial)), [0.0, 1.0])


@pytest.mark.parametrize("gamma", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("theta", [1.0, 0.3])
def test_jsma_budget_domain_and_step(gamma, theta):
    w, b, logits_fn = affine(7, d=40)
    x = np.random.default_rng(8).uniform(0, 1, size=(12, 40)).astype(np.float32)
    targets = non_predicted_targets(x @ w + b, 9)
    res = jsma(logits_fn, x, targets, theta=theta, gamma=gamma)
    adv, n = np.asarray(res.adversarial), np.asarray(res.num_changed)
    assert np.all(n <= gamma * 40 + 1)
    assert np.all((adv >= 0) & (adv <= 1))
    change = adv - x
    assert np.all(change >= -1e-7)  # theta > 0 only increases
    steps = change / theta
    is_multiple = np.abs(steps - np.round(steps)) < 1e-4
    assert np.all(is_multiple | (adv == 1.0))


def test_jsma_jit_and_use_probabilities():
    w, b, logits_fn = affine(10)
    x = jnp.asarray(np.random.default_rng(11).uniform(0, 1, size=(6, D)), jnp.float32)
    targets = jnp.asarray(non_predicted_targets(np.asarray(x) @ w + b, 12))
    attack = functools.partial(jsma, logits_fn, theta=1.0, gamma=0.5)
    eager, jitted = attack(x, targets), jax.jit(attack)(x, targets)
    for a, c in zip(eager, jitted, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), atol=1e-6)
    probs = jsma(logits_fn, x, targets, gamma=0.5, use_logits=False)
    assert probs.adversarial.shape == x.shape and probs.success.shape == (6,)


def test_jsma_errors():
    _, _, logits_fn = affine(0)
    x = jnp.full((2, D), 0.5)
    with pytest.raises(ValueError, match="targets must have shape"):
        jsma(logits_fn, x, jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="outside the attack domain"):
        jsma(logits_fn, x + 1.0, jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match="theta"):
        jsma(logits_fn, x, jnp.zeros(2, jnp.int32), theta=0.0)
    with pytest.raises(ValueError, match="gamma"):
        jsma(logits_fn, x, jnp.zeros(2, jnp.int32), gamma=1.5)


# ----------------------------------------------------------------------------------------------
# Symmetric KL


def numpy_kl(m1, lv1, m2, lv2):
    """KL(N(m1, e^lv1) || N(m2, e^lv2)) summed over all but the first axis, log terms kept."""
    v1, v2 = np.exp(lv1), np.exp(lv2)
    kl = 0.5 * (np.log(v2) - np.log(v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)
    return kl.reshape(kl.shape[0], -1).sum(1)


@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 3)])
def test_symmetric_gaussian_kl_closed_form(shape):
    rng = np.random.default_rng(13)
    m1, m2 = rng.normal(size=shape), rng.normal(size=shape)
    lv1, lv2 = rng.normal(size=shape), rng.normal(size=shape)
    expected = numpy_kl(m1, lv1, m2, lv2) + numpy_kl(m2, lv2, m1, lv1)
    args = [jnp.asarray(a, jnp.float32) for a in (m1, lv1, m2, lv2)]
    got = symmetric_gaussian_kl(*args)
    assert got.shape == (shape[0],)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)
    swapped = symmetric_gaussian_kl(args[2], args[3], args[0], args[1])
    np.testing.assert_allclose(np.asarray(swapped), np.asarray(got), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(symmetric_gaussian_kl(*args[:2], *args[:2])), 0.0)


# ----------------------------------------------------------------------------------------------
# Latent attack


def linear_encoder(a, b_matrix):
    return lambda x: (x @ a, x @ b_matrix)


def numpy_sym_kl_and_grad(e, x, a, bm):
    """D_sym(q(.|x + e), q(.|x)) for mu = x A, log_var = x B, and its gradient in e."""
    u, s = e @ a, e @ bm
    lv1, lv2 = (x + e) @ bm, x @ bm
    prec = np.exp(-lv1) + np.exp(-lv2)
    value = 0.5 * np.sum(np.exp(s) + np.exp(-s) + u**2 * prec - 2.0)
    d_u = u * prec
    d_lv1 = 0.5 * (np.exp(s) - np.exp(-s) - u**2 * np.exp(-lv1))
    return value, a @ d_u + bm @ d_lv1


def numpy_pgd_max(x, a, bm, delta, norm, rng, restarts=20, steps=200):
    """Best D_sym found by projected gradient ascent with random restarts (domain not binding)."""
    best = 0.0
    for _ in range(restarts):
        e = rng.uniform(-delta, delta, size=x.shape)
        if norm == "l2":
            e = delta * e / np.linalg.norm(e)
        for t in range(steps):
            _, g = numpy_sym_kl_and_grad(e, x, a, bm)
            lr = delta * 0.5 / (1 + t) ** 0.5
            if norm == "linf":
                e = np.clip(e + lr * np.sign(g), -delta, delta)
            else:
                e = e + lr * g / max(np.linalg.norm(g), 1e-12)
                e = e * min(1.0, delta / np.linalg.norm(e))
        best = max(best, numpy_sym_kl_and_grad(e, x, a, bm)[0])
    return best


def sym_kl(encode, x_adv, x):
    return np.asarray(symmetric_gaussian_kl(*encode(x_adv), *encode(x)))


def test_latent_l2_constant_variance_reaches_top_singular_value():
    rng = np.random.default_rng(14)
    d, k, delta = 10, 3, 0.2
    a = rng.normal(size=(d, k)).astype(np.float32)
    encode = linear_encoder(a, np.zeros((d, k), np.float32))
    x = jnp.full((4, d), 0.5)  # the ball stays inside [0, 1]: the domain is not binding
    adv = latent_attack(
        encode, x, key=jax.random.PRNGKey(0), delta=delta, step_size=delta, num_steps=100, norm="l2"
    )  # steps as long as the radius: close to power iteration (sigma_2 / sigma_1 ~ 0.91 here)
    optimum = (delta * np.linalg.svd(a, compute_uv=False)[0]) ** 2  # max ||e A||^2
    got = sym_kl(encode, adv, x)
    assert np.all(got >= 0.99 * optimum) and np.all(got <= optimum * (1 + 1e-4))
    assert np.all(np.linalg.norm(np.asarray(adv - x), axis=1) <= delta * (1 + 1e-5))


def test_latent_linf_rank_one_is_the_signed_corner():
    rng = np.random.default_rng(15)
    d, delta = 12, 0.1
    a = rng.normal(size=(d, 1)).astype(np.float32)
    encode = linear_encoder(a, np.zeros((d, 1), np.float32))
    x = jnp.full((3, d), 0.5)
    adv = latent_attack(
        encode, x, key=jax.random.PRNGKey(1), delta=delta, step_size=0.03, num_steps=20
    )
    e = np.asarray(adv - x)
    # (e . a)^2 is maximised at e = +-delta sign(a): value (delta ||a||_1)^2.
    sign = np.sign(e @ a)
    np.testing.assert_allclose(e, sign * delta * np.sign(a[:, 0]), atol=1e-6)
    np.testing.assert_allclose(sym_kl(encode, adv, x), (delta * np.abs(a).sum()) ** 2, rtol=1e-4)


def general_linear_encoder(seed: int, d: int = 8, k: int = 3):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, k)).astype(np.float32)
    bm = (0.7 * rng.normal(size=(d, k))).astype(np.float32)
    x = rng.uniform(0.45, 0.55, size=(3, d)).astype(np.float32)
    return a, bm, x, rng


def test_latent_l2_general_linear_encoder_vs_numpy_pgd():
    # Small radius: D_sym is close to a quadratic form in e, whose maximum on the L2 ball is
    # (up to sign) unique, so one random start should come close to the best of 20 restarts.
    delta = 0.1
    a, bm, x, rng = general_linear_encoder(16)
    encode = linear_encoder(a, bm)
    adv = latent_attack(
        encode, x, key=jax.random.PRNGKey(2), delta=delta, step_size=delta, num_steps=60, norm="l2"
    )
    e = np.asarray(adv) - x
    assert np.all(np.linalg.norm(e, axis=1) <= delta * (1 + 1e-5))
    got = sym_kl(encode, adv, x)
    for i in range(len(x)):
        xi = x[i].astype(np.float64)
        np.testing.assert_allclose(got[i], numpy_sym_kl_and_grad(e[i], xi, a, bm)[0], rtol=1e-4)
        assert got[i] >= 0.9 * numpy_pgd_max(xi, a, bm, delta, "l2", rng)
        for _ in range(20):  # random feasible perturbations do no better
            r = rng.normal(size=x.shape[1])
            r = delta * rng.uniform() ** (1 / r.size) * r / np.linalg.norm(r)
            assert got[i] >= numpy_sym_kl_and_grad(r, xi, a, bm)[0]


def test_latent_linf_general_linear_encoder_is_a_kkt_vertex():
    # Over the L-inf box D_sym is not concave: sign-gradient PGD finds a local maximum, here a
    # vertex e = delta * sign(grad D_sym(e)) (the box KKT condition), not necessarily the best
    # of the 2^d vertices (see the rank-one test for a case where it is the global maximum).
    delta = 0.1
    a, bm, x, rng = general_linear_encoder(16)
    encode = linear_encoder(a, bm)
    adv = latent_attack(
        encode, x, key=jax.random.PRNGKey(2), delta=delta, step_size=0.025, num_steps=60
    )
    e = np.asarray(adv, np.float64) - x
    got = sym_kl(encode, adv, x)
    for i in range(len(x)):
        xi = x[i].astype(np.float64)
        value, grad = numpy_sym_kl_and_grad(e[i], xi, a, bm)
        np.testing.assert_allclose(got[i], value, rtol=1e-4)
        np.testing.assert_allclose(e[i], delta * np.sign(grad), atol=1e-6)
        for _ in range(20):
            r = rng.uniform(-delta, delta, size=x.shape[1])
            assert got[i] >= numpy_sym_kl_and_grad(r, xi, a, bm)[0]


def test_latent_respects_domain_and_jits():
    rng = np.random.default_rng(17)
    d, k = 8, 2
    encode = linear_encoder(
        rng.normal(size=(d, k)).astype(np.float32),
        (0.3 * rng.normal(size=(d, k))).astype(np.float32),
    )
    x = jnp.asarray(rng.uniform(0, 1, size=(5, d)), jnp.float32).at[:, :2].set(0.0)
    delta = jnp.asarray([0.05, 0.1, 0.2, 0.3, 0.0])  # one radius per input
    attack = functools.partial(
        latent_attack, encode, delta=delta, step_size=0.05, num_steps=15, norm="linf"
    )
    eager = attack(x, key=jax.random.PRNGKey(3))
    jitted = jax.jit(attack)(x, key=jax.random.PRNGKey(3))
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), atol=1e-6)
    adv = np.asarray(eager)
    assert np.all((adv >= 0) & (adv <= 1))
    assert np.all(np.abs(adv - np.asarray(x)).max(1) <= np.asarray(delta) + 1e-6)
    np.testing.assert_array_equal(adv[4], np.asarray(x[4]))


def test_latent_errors():
    encode = linear_encoder(np.ones((4, 2), np.float32), np.zeros((4, 2), np.float32))
    x = jnp.full((2, 4), 0.5)
    key = jax.random.PRNGKey(0)
    kwargs = dict(step_size=0.1, num_steps=3)
    with pytest.raises(ValueError, match="delta must be finite and >= 0"):
        latent_attack(encode, x, key=key, delta=-0.1, **kwargs)
    with pytest.raises(ValueError, match="outside the attack domain"):
        latent_attack(encode, x + 1.0, key=key, delta=0.1, **kwargs)
    with pytest.raises(ValueError, match="PRNG key"):
        latent_attack(encode, x, delta=0.1, **kwargs)
    with pytest.raises(ValueError, match="norm must be one of"):
        latent_attack(encode, x, key=key, delta=0.1, norm="l1", **kwargs)
    with pytest.raises(ValueError, match="pair"):
        latent_attack(lambda z: z, x, key=key, delta=0.1, **kwargs)


def test_latent_divergence_for_other_families():
    rng = np.random.default_rng(18)
    d, k = 6, 2
    a = rng.normal(size=(d, k)).astype(np.float32)
    bm = (0.5 * rng.normal(size=(d, k))).astype(np.float32)
    encode = linear_encoder(a, bm)
    x = jnp.asarray(rng.uniform(0.3, 0.7, size=(3, d)), jnp.float32)
    kwargs = dict(key=jax.random.PRNGKey(4), delta=0.1, step_size=0.03, num_steps=10)
    default = latent_attack(encode, x, **kwargs)

    def encode_dict(z):  # the same Gaussian, as a dict of parameters
        mu, log_var = encode(z)
        return {"mean": mu, "scale": jnp.exp(0.5 * log_var)}

    def sym_kl_dict(p, q):
        return symmetric_gaussian_kl(
            p["mean"], 2 * jnp.log(p["scale"]), q["mean"], 2 * jnp.log(q["scale"])
        )

    as_dict = latent_attack(encode_dict, x, divergence=sym_kl_dict, **kwargs)
    np.testing.assert_allclose(np.asarray(as_dict), np.asarray(default), atol=1e-5)

    # A Bernoulli latent (one array of logits), symmetric KL of the Bernoullis, under jit.
    def encode_bernoulli(z):
        return z @ a

    def sym_kl_bernoulli(la, lb):
        pa, pb = jax.nn.sigmoid(la), jax.nn.sigmoid(lb)
        return jnp.sum((pa - pb) * (la - lb), axis=1)  # KL(a||b) + KL(b||a)

    attack = functools.partial(
        latent_attack, encode_bernoulli, divergence=sym_kl_bernoulli, **kwargs
    )
    adv = jax.jit(attack)(x)
    assert np.all(np.abs(np.asarray(adv - x)).max(1) <= 0.1 + 1e-6)
    start = sym_kl_bernoulli(encode_bernoulli(x), encode_bernoulli(x))
    got = sym_kl_bernoulli(encode_bernoulli(adv), encode_bernoulli(x))
    np.testing.assert_allclose(start, 0.0, atol=1e-7)
    assert np.all(np.asarray(got) > 1e-3)


def test_latent_divergence_errors():
    x = jnp.full((2, 4), 0.5)
    kwargs = dict(key=jax.random.PRNGKey(0), delta=0.1, step_size=0.1, num_steps=3)

    def squared(p, q):
        return jnp.sum((p - q) ** 2, axis=1)

    with pytest.raises(ValueError, match="leading batch dimension 2"):
        latent_attack(lambda z: (z, z[:1]), x, divergence=lambda p, q: p[0][:, 0], **kwargs)
    with pytest.raises(ValueError, match=r"one value per input, shape \(2,\)"):
        latent_attack(lambda z: z, x, divergence=lambda p, q: jnp.sum((p - q) ** 2), **kwargs)
    with pytest.raises(ValueError, match="pass divergence="):
        latent_attack(lambda z: z, x, **kwargs)
    adv = latent_attack(lambda z: z, x, divergence=squared, **kwargs)  # any pytree is accepted
    assert adv.shape == x.shape

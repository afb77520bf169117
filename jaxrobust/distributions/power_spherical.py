r"""The Power Spherical distribution PS(mu, kappa) on the unit sphere S^{m-1} in R^m (De Cao &
Aziz 2020, "The Power Spherical distribution", ICML INNF+ workshop).

Density (w.r.t. the surface measure) ``q(x) = C_m(kappa) (1 + mu.x)^kappa`` with
``alpha = (m-1)/2 + kappa``, ``beta = (m-1)/2`` and ``C_m(kappa)^{-1} = 2^{alpha+beta} pi^beta
Gamma(alpha) / Gamma(alpha+beta)`` (paper, eq. 2); ``dim`` = m is the ambient dimension,
``mean_direction`` mu a unit vector, ``concentration`` kappa > 0. The cosine t = mu.x has the
marginal ``t = 2B - 1``, ``B ~ Beta(alpha, beta)`` (paper, section 3), so every moment of t is
a Beta moment:

- mean resultant length ``E[mu.x] = (alpha - beta) / (alpha + beta) = kappa / (kappa + m - 1)``;
- ``E[log(1 + mu.x)] = log 2 + psi(alpha) - psi(alpha + beta)``; entropy
  ``H = -log C_m(kappa) - kappa (log 2 + psi(alpha) - psi(alpha + beta))`` (paper, eq. 6);
- ``KL(q || U(S^{m-1})) = log |S^{m-1}| - H`` (paper, eq. 7).

Numerics: ``log C_m + kappa log 2 = -(m-1) log 2 - beta log pi + [lgamma(alpha + beta) -
lgamma(alpha)]`` and the two differences ``lgamma(alpha + beta) - lgamma(alpha)``,
``psi(alpha + beta) - psi(alpha)`` are taken from their asymptotic (Stirling) series for alpha
>= 10, so float32 keeps their relative accuracy at kappa = 1e4..1e5 instead of subtracting
two numbers of size ~kappa log kappa. Densities use ``(1 + mu.x) / 2 = 1 - ||x - mu||^2 / 4 =
||x + mu||^2 / 4`` (exact on the sphere, accurate near the mode and near the antipode).

**Sampling** (paper, algorithm 1): ``B ~ Beta(alpha, beta)`` as ``Ga / (Ga + Gb)`` from two
``jax.random.loggamma`` draws, so that ``1 - t = 2 Gb / (Ga + Gb)`` keeps its relative
accuracy at large kappa (``jax.random.beta`` returns B only, and 1 - B rounds to 0 in float32
for kappa >~ 1e7 / m); ``v ~ U(S^{m-2})``, ``z' = (t, sqrt(1 - t^2) v)`` and the Householder
reflection e_1 -> mu. No rejection: the sample is fully reparameterised (JAX's gamma sampler
has implicit reparameterisation gradients in its shape parameter), so gradients in kappa and
mu are unbiased, unlike the vMF's g_rep (:mod:`jaxrobust.distributions.von_mises_fisher`).

**KL between two Power Sphericals** has no closed form (the paper gives KL to the uniform and
to a vMF only). :func:`kl_divergence` writes it as ``KL(q1 || q2) = D_lg(k1) - D_lg(k2) - (k1 -
k2) D_psi(k1) - k2 E_{q1}[log((1 + mu2.z) / (1 + mu1.z))]`` (closed form except the last
expectation, which vanishes at mu1 = mu2) and takes that expectation by a deterministic
quadrature, so the divergence is a smooth function of the parameters alone (no key), as the
latent attack's objective and :class:`~jaxrobust.distributions.latent.LatentFamily` need. With
``u = (1 - t)/2 ~ Beta(beta, alpha)``, ``g = sqrt(u / (1 - u))``, ``s`` the cosine between the
tangent parts of z and mu2, ``a = ||mu1 + mu2|| / 2`` and ``b = ||mu1 - mu2|| / 2``, the ratio is
``a^2 + 2 a b s g + b^2 g^2``. u is integrated by Gauss-Jacobi for the weight of Beta(beta,
alpha) (Golub-Welsch: nodes and weights from ``eigh`` of the Jacobi matrix, so they follow
kappa_1 and are differentiable), s by the Gauss rule of its density ``(1 - s^2)^{(m-4)/2}``
(Gegenbauer; Chebyshev for m = 3; s = +-1 for m = 2), ``num_nodes = (32, 16)`` by default.
Exact at mu1 = mu2; otherwise tested against Monte Carlo. The integrand has a log singularity at
the antipode of mu2, which limits the convergence for m = 2 and 3 at small kappa_1 with
near-antipodal means (up to ~2 % there at the default nodes; ~0.1 % or better for kappa >= 10 or
m >= 4); raise ``num_nodes`` if that matters.

Bad input, eagerly: concentration <= 0 or NaN, mean directions (or ``x``) off the unit sphere,
m < 2, batch shapes that do not broadcast raise :class:`~jaxrobust.errors.InputError`; under
``jit`` values are not checked and NaN propagates. Written here because no dependency (NumPyro,
TFP-on-JAX is not one) ships the Power Spherical.

Example:
    >>> import jax, jax.numpy as jnp
    >>> mu = jnp.array([0.0, 0.0, 1.0])
    >>> z = sample(jax.random.key(0), mu, 10.0, shape=(5,))
    >>> z.shape, bool(jnp.allclose(jnp.linalg.norm(z, axis=-1), 1.0, atol=1e-5))
    ((5, 3), True)
    >>> float(mean_resultant_length(10.0, 3))  # 10 / (10 + 2)
    0.8333333134651184
    >>> round(float(log_prob(mu, mu, 10.0)), 4)  # m = 3: C 2^k = (k + 1) / (4 pi)
    -0.1331
"""

from __future__ import annotations

import functools
import math
import operator

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln

from jaxrobust.distributions._sphere import (
    batch_shape,
    check_concentration,
    check_dim,
    check_key,
    check_sample_shape,
    check_unit,
    householder_from_e1,
    log_sphere_area,
    squared_distance,
    tangent_point,
    uniform_tangent,
)
from jaxrobust.errors import InputError

__all__ = [
    "entropy",
    "kl_divergence",
    "kl_to_uniform",
    "log_normalizer",
    "log_prob",
    "mean_resultant_length",
    "sample",
    "symmetric_kl",
]

_ASYMPTOTIC_FROM = 10.0  # alpha >= 10: Stirling series for the lgamma / digamma differences
#: Default quadrature sizes of :func:`kl_divergence`: (nodes in u, nodes in s).
NUM_NODES = (32, 16)


def _lgamma_difference(a, b):
    """lgamma(a + b) - lgamma(a) for a > 0, b >= 0: Stirling for a >= 10 (error < 1e-9)."""
    large = a >= _ASYMPTOTIC_FROM
    al = jnp.where(large, a, _ASYMPTOTIC_FROM)
    c = al + b

    def tail(x):  # the Stirling correction 1/(12x) - 1/(360x^3) + 1/(1260x^5)
        y = 1.0 / x
        return y * (1.0 / 12.0 - jnp.square(y) * (1.0 / 360.0 - jnp.square(y) / 1260.0))

    stirling = (al - 0.5) * jnp.log1p(b / al) + b * jnp.log(c) - b + tail(c) - tail(al)
    a_small = jnp.where(large, 1.0, a)
    direct = gammaln(a_small + b) - gammaln(a_small)
    return jnp.where(large, stirling, direct)


def _digamma_difference(a, b):
    """psi(a + b) - psi(a) (> 0) for a > 0, b >= 0: asymptotic series for a >= 10."""
    large = a >= _ASYMPTOTIC_FROM
    al = jnp.where(large, a, _ASYMPTOTIC_FROM)
    c = al + b
    # psi(x) = log x - 1/(2x) - 1/(12x^2) + 1/(120x^4) - ..., differences written out.
    series = (
        jnp.log1p(b / al)
        + 0.5 * b / (al * c)
        + b * (2.0 * al + b) / (12.0 * jnp.square(al * c))
        + (1.0 / jnp.square(jnp.square(c)) - 1.0 / jnp.square(jnp.square(al))) / 120.0
    )
    a_small = jnp.where(large, 1.0, a)
    direct = digamma(a_small + b) - digamma(a_small)
    return jnp.where(large, series, direct)


def _shapes(kappa, m):
    beta = 0.5 * (m - 1)
    return kappa + beta, beta


def _log_c_plus(kappa, m):
    """log C_m(kappa) + kappa log 2 (the normaliser of the density in (1 + mu.x) / 2)."""
    alpha, beta = _shapes(kappa, m)
    return -(m - 1) * math.log(2.0) - beta * math.log(math.pi) + _lgamma_difference(alpha, beta)


@functools.partial(jax.jit, static_argnums=(1,))
def _kl_to_uniform(kappa, m):
    alpha, beta = _shapes(kappa, m)
    return log_sphere_area(m) + _log_c_plus(kappa, m) - kappa * _digamma_difference(alpha, beta)


def log_normalizer(concentration, dim: int) -> jax.Array:
    """log C_m(kappa) = -[(alpha + beta) log 2 + beta log pi + lgamma(alpha) - lgamma(alpha +
    beta)], ``[...]`` (paper, eq. 2).

    Example:
        >>> import math
        >>> k = 2.0  # m = 3: C = (k + 1) / (2^(k + 2) pi)
        >>> abs(float(log_normalizer(k, 3)) - math.log((k + 1) / (2 ** (k + 2) * math.pi))) < 1e-6
        True
    """
    m = check_dim(dim, where="power_spherical.log_normalizer")
    kappa = check_concentration(concentration, where="power_spherical.log_normalizer")
    return _log_c_plus(kappa, m) - kappa * math.log(2.0)


def mean_resultant_length(concentration, dim: int) -> jax.Array:
    """E[mu.x] = (alpha - beta) / (alpha + beta) = kappa / (kappa + m - 1), ``[...]``.

    Example:
        >>> float(mean_resultant_length(1.0, 2))
        0.5
    """
    m = check_dim(dim, where="power_spherical.mean_resultant_length")
    kappa = check_concentration(concentration, where="power_spherical.mean_resultant_length")
    return kappa / (kappa + (m - 1))


def kl_to_uniform(concentration, dim: int) -> jax.Array:
    """KL(PS(mu, kappa) || U(S^{m-1})) = log |S^{m-1}| - H (nats, >= 0), independent of mu,
    ``[...]`` (paper, eq. 7).

    Example:
        >>> import math
        >>> k = 1.0  # m = 2: C = 1 / (2 pi), E[log(1 + t)] = log 2 + psi(3/2) - psi(2) = 1 - log 2
        >>> ref = 1 - math.log(2)
        >>> abs(float(kl_to_uniform(k, 2)) - ref) < 1e-6
        True
    """
    m = check_dim(dim, where="power_spherical.kl_to_uniform")
    kappa = check_concentration(concentration, where="power_spherical.kl_to_uniform")
    return _kl_to_uniform(kappa, m)


def entropy(concentration, dim: int) -> jax.Array:
    """H = -log C_m(kappa) - kappa (log 2 + psi(alpha) - psi(alpha + beta)) (nats, w.r.t. the
    surface measure), ``[...]`` (paper, eq. 6).

    Example:
        >>> import math
        >>> abs(float(entropy(1e-4, 3)) - math.log(4 * math.pi)) < 1e-3  # nearly uniform
        True
    """
    m = check_dim(dim, where="power_spherical.entropy")
    kappa = check_concentration(concentration, where="power_spherical.entropy")
    return log_sphere_area(m) - _kl_to_uniform(kappa, m)


def _log_half_one_plus(x, mu):
    """log((1 + mu.x) / 2) for unit x, mu: log1p(-||x - mu||^2 / 4) near the mode,
    log(||x + mu||^2 / 4) near the antipode."""
    near = squared_distance(x, mu)
    far = squared_distance(x, -mu)
    return jnp.where(near < far, jnp.log1p(-0.25 * near), jnp.log(0.25 * far))


@functools.partial(jax.jit, static_argnums=(3,))
def _log_prob(x, mu, kappa, m):
    return _log_c_plus(kappa, m) + kappa * _log_half_one_plus(x, mu)


def log_prob(x, mean_direction, concentration) -> jax.Array:
    """log q(x) = log C_m(kappa) + kappa log(1 + mu.x) for unit ``x`` ``[..., m]``, ``[...]``
    (batch axes broadcast).

    Example:
        >>> import jax.numpy as jnp, math
        >>> x = jnp.array([1.0, 0.0]); mu = jnp.array([0.0, 1.0])  # m = 2, k = 1: 1 / (2 pi)
        >>> round(float(log_prob(x, mu, 1.0)), 5) == round(-math.log(2 * math.pi), 5)
        True
    """
    where = "power_spherical.log_prob"
    mu = check_unit("mean_direction", mean_direction, where=where)
    x = check_unit("x", x, where=where)
    kappa = check_concentration(concentration, where=where)
    m = mu.shape[-1]
    if x.shape[-1] != m:
        raise InputError(
            f"{where}: x has dimension {x.shape[-1]} but mean_direction {m}; both must be "
            "[..., m] points of the same sphere."
        )
    batch_shape(where, x=x.shape[:-1], mean_direction=mu.shape[:-1], concentration=kappa.shape)
    dtype = jnp.result_type(x, mu, kappa)
    return _log_prob(x.astype(dtype), mu.astype(dtype), kappa.astype(dtype), m)


def _prepare(key, mean_direction, concentration, shape, where):
    check_key(key)
    mu = check_unit("mean_direction", mean_direction, where=where)
    kappa = check_concentration(concentration, where=where)
    shape = check_sample_shape(shape)
    batch = batch_shape(where, mean_direction=mu.shape[:-1], concentration=kappa.shape)
    dtype = jnp.result_type(mu, kappa)
    full = shape + batch
    m = mu.shape[-1]
    mu = jnp.broadcast_to(mu.astype(dtype), full + (m,))
    kappa = jnp.broadcast_to(kappa.astype(dtype), full)
    return mu, kappa, full, m


@functools.partial(jax.jit, static_argnums=(3, 4))
def _sample(key, mu, kappa, full, m):
    a_key, b_key, v_key = jax.random.split(key, 3)
    alpha, beta = _shapes(kappa, m)
    log_ga = jax.random.loggamma(a_key, alpha, full, kappa.dtype)
    log_gb = jax.random.loggamma(b_key, jnp.full(full, beta, kappa.dtype), full, kappa.dtype)
    log_total = jnp.logaddexp(log_ga, log_gb)
    b = jnp.exp(log_ga - log_total)  # B ~ Beta(alpha, beta)
    one_minus_b = jnp.exp(log_gb - log_total)
    t = b - one_minus_b  # 2B - 1
    sin = 2.0 * jnp.sqrt(b * one_minus_b)  # sqrt(1 - t^2)
    v = uniform_tangent(v_key, full, m, kappa.dtype)
    return householder_from_e1(tangent_point(t, sin, v), mu)


def sample(key: jax.Array, mean_direction, concentration, shape: tuple[int, ...] = ()) -> jax.Array:
    """z ~ PS(mu, kappa), ``shape + batch + (m,)`` (batch = the broadcast of mu's leading axes
    and kappa's shape), reparameterised in mu and kappa (paper, algorithm 1).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> mu = jnp.eye(4)[:2]  # two mean directions on S^3
        >>> sample(jax.random.key(0), mu, jnp.array([1.0, 100.0]), shape=(7,)).shape
        (7, 2, 4)
    """
    mu, kappa, full, m = _prepare(key, mean_direction, concentration, shape, "ps.sample")
    return _sample(key, mu, kappa, full, m)


def _check_pair(mu1, k1, mu2, k2, where):
    mu1 = check_unit("mu1", mu1, where=where)
    mu2 = check_unit("mu2", mu2, where=where)
    k1 = check_concentration(k1, where=where)
    k2 = check_concentration(k2, where=where)
    if mu1.shape[-1] != mu2.shape[-1]:
        raise InputError(
            f"{where}: mu1 has dimension {mu1.shape[-1]} and mu2 {mu2.shape[-1]}; both "
            "distributions must live on the same sphere."
        )
    batch = batch_shape(where, mu1=mu1.shape[:-1], k1=k1.shape, mu2=mu2.shape[:-1], k2=k2.shape)
    dtype = jnp.result_type(mu1, mu2, k1, k2)
    m = mu1.shape[-1]
    mu1, mu2 = (jnp.broadcast_to(u.astype(dtype), batch + (m,)) for u in (mu1, mu2))
    k1, k2 = (jnp.broadcast_to(k.astype(dtype), batch) for k in (k1, k2))
    return mu1, k1, mu2, k2, batch, m


@functools.cache
def _tangent_rule(m: int, num: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and probability weights for s with density ~ (1 - s^2)^{(m-4)/2} on [-1, 1]."""
    if m == 2:
        return np.array([-1.0, 1.0]), np.array([0.5, 0.5])
    if m == 3:  # Gauss-Chebyshev (first kind)
        nodes = np.cos((2 * np.arange(1, num + 1) - 1) * np.pi / (2 * num))
        return nodes, np.full(num, 1.0 / num)
    lam = 0.5 * (m - 3)  # Gegenbauer weight (1 - s^2)^{lam - 1/2}, monic recurrence
    n = np.arange(1, num, dtype=np.float64)
    off = np.sqrt(n * (n + 2 * lam - 1) / (4 * (n + lam) * (n + lam - 1)))
    nodes, vectors = np.linalg.eigh(np.diag(off, 1) + np.diag(off, -1))
    return nodes, vectors[0] ** 2


def _beta_rule(p, q, num: int):
    """Gauss-Jacobi nodes and probability weights ``[..., num]`` for Beta(p, q) on [0, 1]
    (Golub-Welsch: eigenvalues and squared first eigenvector components of the Jacobi matrix).
    The entries are written without cancellation (diagonal 0 is the mean p / (p + q),
    off-diagonal 1 the standard deviation), so the O(1/q) entries keep their relative accuracy
    for q ~ 1e5."""
    p, q = p[..., None], q[..., None]
    a, b = q - 1.0, p - 1.0  # Jacobi exponents on (1 - x) and (1 + x), x = 2u - 1
    c = a + b
    n = jnp.arange(1, num, dtype=p.dtype)
    diag = jnp.concatenate(
        [
            p / (p + q),
            (4 * n**2 + 4 * n * (c + 1) + c * (2 * b + 2)) / (2 * (2 * n + c) * (2 * n + c + 2)),
        ],
        axis=-1,
    )
    n2 = n[1:]
    off_sq = jnp.concatenate(
        [
            4 * p * q / (jnp.square(p + q) * (p + q + 1)),
            (4 * n2 * (n2 + a) * (n2 + b) * (n2 + c))
            / (jnp.square(2 * n2 + c) * (2 * n2 + c + 1) * (2 * n2 + c - 1)),
            jnp.zeros_like(p),
        ],
        axis=-1,
    )
    off = 0.5 * jnp.sqrt(off_sq)  # [..., num]; the last entry pads
    eye = functools.partial(jnp.eye, num, dtype=p.dtype)
    matrix = (
        diag[..., :, None] * eye() + off[..., :, None] * eye(k=1) + off[..., None, :] * eye(k=-1)
    )
    nodes, vectors = jnp.linalg.eigh(matrix)
    weights = jnp.square(vectors[..., 0, :])
    return nodes, weights / jnp.sum(weights, axis=-1, keepdims=True)


def _cross_term(mu1, k1, mu2, m, num_nodes):
    """E_1[log((1 + mu2.z) / (1 + mu1.z))] by the quadrature of the module docstring."""
    num_u, num_s = num_nodes
    s_nodes, s_weights = _tangent_rule(m, num_s)
    alpha, beta = _shapes(k1, m)
    u, weights = _beta_rule(jnp.full_like(k1, beta), alpha, num_u)
    tiny = jnp.finfo(k1.dtype).tiny
    u = jnp.clip(u, tiny, 1.0 - jnp.finfo(k1.dtype).epsneg)
    g = jnp.sqrt(u / (1.0 - u))[..., :, None]  # [..., U, 1]
    plus = squared_distance(mu1, -mu2)
    minus = squared_distance(mu1, mu2)
    # a^2 + b^2 = 1 for unit means; normalised so, so that mu1 = mu2 gives exactly log 1 = 0.
    total = plus + minus
    a = jnp.sqrt(plus / total)
    # b with a zero (not NaN) gradient at mu1 = mu2
    b = jnp.where(minus > 0, jnp.sqrt(jnp.where(minus > 0, minus, 1.0) / total), 0.0)
    a, b = a[..., None, None], b[..., None, None]
    s = jnp.asarray(s_nodes, k1.dtype)
    ratio = jnp.square(a) + 2.0 * a * b * s * g + jnp.square(b * g)
    inner = jnp.log(jnp.maximum(ratio, tiny)) @ jnp.asarray(s_weights, k1.dtype)  # [..., U]
    return jnp.sum(weights * inner, axis=-1)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _kl(mu1, k1, mu2, k2, m, num_nodes):
    a1, beta = _shapes(k1, m)
    a2, _ = _shapes(k2, m)
    return (
        _lgamma_difference(a1, beta)
        - _lgamma_difference(a2, beta)
        - (k1 - k2) * _digamma_difference(a1, beta)
        - k2 * _cross_term(mu1, k1, mu2, m, num_nodes)
    )


def _check_nodes(num_nodes, where) -> tuple[int, int]:
    try:
        nodes = tuple(operator.index(n) for n in num_nodes)
    except TypeError:
        nodes = ()
    if len(nodes) != 2 or min(nodes) < 2:
        raise InputError(
            f"{where}: num_nodes must be two ints >= 2 (nodes in u, nodes in s), got "
            f"{num_nodes!r}; the default is {NUM_NODES}."
        )
    return nodes


def kl_divergence(mu1, k1, mu2, k2, *, num_nodes: tuple[int, int] = NUM_NODES) -> jax.Array:
    """KL(PS(mu1, k1) || PS(mu2, k2)) (nats), ``[...]``: closed form except the cross term
    ``E_{q1}[log((1 + mu2.z) / (1 + mu1.z))]``, a deterministic quadrature (module docstring);
    exact when mu1 = mu2.

    Example:
        >>> import jax.numpy as jnp
        >>> mu = jnp.array([1.0, 0.0, 0.0])
        >>> float(kl_divergence(mu, 3.0, mu, 3.0))
        0.0
    """
    where = "power_spherical.kl_divergence"
    nodes = _check_nodes(num_nodes, where)
    mu1, k1, mu2, k2, _, m = _check_pair(mu1, k1, mu2, k2, where)
    return _kl(mu1, k1, mu2, k2, m, nodes)


def symmetric_kl(mu1, k1, mu2, k2, *, num_nodes: tuple[int, int] = NUM_NODES) -> jax.Array:
    """KL(q1 || q2) + KL(q2 || q1) of two Power Sphericals, each as :func:`kl_divergence`
    (the latent attack's divergence), ``[...]``.

    Example:
        >>> import jax.numpy as jnp
        >>> a, b = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0])
        >>> float(symmetric_kl(a, 5.0, a, 5.0)), bool(symmetric_kl(a, 5.0, b, 5.0) > 0)
        (0.0, True)
    """
    where = "power_spherical.symmetric_kl"
    nodes = _check_nodes(num_nodes, where)
    mu1, k1, mu2, k2, _, m = _check_pair(mu1, k1, mu2, k2, where)
    return _kl(mu1, k1, mu2, k2, m, nodes) + _kl(mu2, k2, mu1, k1, m, nodes)

r"""The von Mises-Fisher distribution vMF(mu, kappa) on the unit sphere S^{m-1} in R^m.

Density (w.r.t. the surface measure) ``q(x) = C_m(kappa) exp(kappa mu.x)`` with
``C_m(kappa) = kappa^{m/2-1} / ((2 pi)^{m/2} I_{m/2-1}(kappa))``; ``dim`` = m is the ambient
dimension (S^2 <-> m = 3), ``mean_direction`` mu a unit vector, ``concentration`` kappa > 0.
Closed forms (Mardia & Jupp, *Directional Statistics*, 9.3; Davidson et al. 2018,
"Hyperspherical variational auto-encoders", appendix B):

- mean resultant length ``E[mu.x] = A_m(kappa) = I_{m/2}(kappa) / I_{m/2-1}(kappa)``;
- ``KL(q || U(S^{m-1})) = kappa A_m(kappa) + log C_m(kappa) + log |S^{m-1}|``, with
  ``|S^{m-1}| = 2 pi^{m/2} / Gamma(m/2)``; entropy ``H = log |S^{m-1}| - KL``;
- ``KL(q_1 || q_2) = log C_m(k1) - log C_m(k2) + A_m(k1) (k1 - k2 mu2.mu1)``.

**Bessel functions.** Everything goes through :func:`log_bessel_iv`, written here because
neither JAX nor any dependency has ``log I_v`` for a general order (``jax.scipy.special`` has
only ``i0e``/``i1e``; TFP's ``log_bessel_ive`` would add TensorFlow Probability for one
function). Orders 0 and 1 use ``i0e``/``i1e``, order 1/2 the closed form
``I_{1/2}(x) = sqrt(2 / (pi x)) sinh x``; any other order the power series
``I_v(x) = (x/2)^v / Gamma(v+1) sum_k (x^2/4)^k / (k! (v+1)_k)`` (positive terms, Horner) for
``x < 15`` and the uniform asymptotic (Debye) expansion (DLMF 10.41.3, terms u_1..u_6 from the
recurrence DLMF 10.41.9) for ``x >= 15``. Written in ``v`` and ``r = sqrt(v^2 + x^2)``, the k-th
Debye term is ``r^{-k} P_k(v^2 / r^2)`` with a bounded polynomial P_k, so the truncation error is
``O(r^{-7}) <= O(15^{-7})`` relative (about 1e-9), for every order including v = 0. The ratio
``A_m`` is computed from the same two expansions as a difference in closed form (no subtraction
of two large logs), so ``1 - A_m`` keeps its relative accuracy at large kappa and nothing overflows
up to kappa = 1e5 and beyond: densities are evaluated as ``-log|S| - n_v(kappa) + kappa (mu.x - 1)``
with the scaled ``n_v = log(Gamma(v+1) (2/x)^v I_v(x)) - x``. Checked against
``scipy.special.ive`` in the tests. For unit vectors ``mu.x - 1 = -||x - mu||^2 / 2`` is used
(exact on the sphere, accurate near the mode where samples of a large kappa lie).

**Sampling** (Wood 1994, "Simulation of the von Mises Fisher distribution", as in Davidson et
al. 2018, algorithm 1): the cosine w = mu.z by rejection, ``eps ~ Beta((m-1)/2, (m-1)/2)``,
``w = (1 - (1+b) eps) / (1 - (1-b) eps)``, ``t = 2ab / (1 - (1-b) eps)``, accept when
``(m-1) log t - t + d >= log u``, with ``b = (m-1) / (2 kappa + sqrt(4 kappa^2 + (m-1)^2))``
(the stable form of ``(-2 kappa + sqrt(...)) / (m-1)``), ``a = ((m-1) + 2 kappa + sqrt(...)) /
4``, ``d = 4ab / (1+b) - (m-1) log(m-1)``; then ``v ~ U(S^{m-2})``, ``z' = (w, sqrt(1-w^2) v)``
and the Householder reflection e_1 -> mu. The rejection loop is one ``lax.while_loop``: round
0 proposes for every element, later rounds only for (up to n / 16 of) the elements still
rejected, gathered with a static-size ``jnp.nonzero``, until every element has accepted (at
most ``max_iterations`` rounds; Wood's acceptance rate is above 1/2 for every m and kappa, so
the cap is not reached in practice; a NaN concentration ends its element's loop and gives
NaN). On S^2 (m = 3) ``sample(..., method="inverse_cdf")`` draws w from its closed-form inverse
CDF instead (the authors' code does so for m = 3), with an exact pathwise gradient; "wood"
stays the default, so every m uses the same estimator.

**Gradients** (Davidson et al. 2018, section 3.2 and appendix D, after Naesseth et al. 2017).
``grad E_q[f(z)] = g_rep + g_cor``: ``g_rep`` differentiates ``f(h(eps, kappa))`` with the
accepted eps held fixed (``stop_gradient``), through b(kappa), and through mu by the
Householder map (exact for mu); ``g_cor = E[f(z) d/dkappa log pi(eps; kappa)]``, the score of
the accepted eps's density ``pi(eps; kappa) = q_w(h(eps, kappa); kappa) |dh/deps|``.
:func:`sample` keeps **g_rep only** (like the authors' code, nicola-decao/s-vae-pytorch, and the
VAE latent family); :func:`sample_and_log_correction` also returns ``c = log pi(eps; kappa)``,
differentiable in kappa, so a caller gets the unbiased g_rep + g_cor from the surrogate
``f(z) + stop_gradient(f(z)) * (c - stop_gradient(c))``. On the test case
``f(z) = mu.z`` (E = A_m(kappa)) g_rep alone is biased (``tests/test_von_mises_fisher.py``).

Bad input, eagerly: concentration <= 0 or NaN, mean directions (or ``x``) off the unit sphere,
m < 2, batch shapes that do not broadcast raise :class:`~jaxrobust.errors.InputError`; under
``jit`` values are not checked and NaN propagates.

Example:
    >>> import jax, jax.numpy as jnp
    >>> mu = jnp.array([0.0, 0.0, 1.0])
    >>> z = sample(jax.random.key(0), mu, 10.0, shape=(5,))
    >>> z.shape, bool(jnp.allclose(jnp.linalg.norm(z, axis=-1), 1.0, atol=1e-5))
    ((5, 3), True)
    >>> round(float(mean_resultant_length(10.0, 3)), 5)  # coth(10) - 1/10
    0.9
    >>> round(float(log_prob(mu, mu, 10.0)), 4)  # log(10 / (2 pi (1 - exp(-20))))
    0.4647
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import i0e, i1e, log_ndtr

from jaxrobust.arrays import is_traced
from jaxrobust.distributions._sphere import (
    as_float,
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
    "log_bessel_iv",
    "log_normalizer",
    "log_prob",
    "mean_resultant_length",
    "sample",
    "SAMPLING_METHODS",
    "sample_and_log_correction",
    "symmetric_kl",
]

_SERIES_BELOW = 15.0  # x < 15: power series; x >= 15: Debye expansion
_SERIES_TERMS = 40  # enough for x < 15 at every order (the terms peak at k <= x / 2)
_DEBYE_TERMS = 6
_MAX_ITERATIONS = 1000  # rounds of the rejection loop (see _accepted_eps)


def _debye_polynomials(num_terms: int) -> list[tuple[float, ...]]:
    """P_k(y) for k = 1..num_terms: u_k(t) / v^k = r^{-k} P_k(t^2), t = v / r, where u_k are the
    Debye polynomials (DLMF 10.41.10), built exactly from the recurrence DLMF 10.41.9
    ``u_{k+1} = t^2 (1 - t^2) u_k' / 2 + (1/8) int_0^t (1 - 5 s^2) u_k(s) ds``. u_k has the
    powers t^k, t^{k+2}, ..., t^{3k}; P_k's j-th coefficient is that of t^{k+2j}."""
    u = {0: Fraction(1)}
    out = []
    for k in range(1, num_terms + 1):
        new: dict[int, Fraction] = {}
        for p, c in u.items():
            if p:
                new[p + 1] = new.get(p + 1, Fraction(0)) + Fraction(1, 2) * p * c
                new[p + 3] = new.get(p + 3, Fraction(0)) - Fraction(1, 2) * p * c
            new[p + 1] = new.get(p + 1, Fraction(0)) + Fraction(1, 8) * c / (p + 1)
            new[p + 3] = new.get(p + 3, Fraction(0)) - Fraction(5, 8) * c / (p + 3)
        u = {p: c for p, c in new.items() if c}
        out.append(tuple(float(u.get(k + 2 * j, 0)) for j in range(k + 1)))
    return out


_DEBYE = _debye_polynomials(_DEBYE_TERMS)


def _poly(coefficients, y):
    acc = jnp.zeros_like(y) + coefficients[-1]
    for c in coefficients[-2::-1]:
        acc = acc * y + c
    return acc


def _debye_sum(v, r):
    """sum_k u_k(t) / v^k for k = 1..K (the correction factor of the Debye expansion) - 1."""
    p = 1.0 / r
    y = jnp.square(v * p)
    acc = jnp.zeros_like(r)
    for coefficients in reversed(_DEBYE):
        acc = p * (_poly(coefficients, y) + acc)
    return acc


def _series_tail(v, x):
    """sum_{k>=1} (x^2/4)^k / (k! (v+1)_k) (the series minus its leading 1, so that log1p keeps
    small x accurate), by Horner over _SERIES_TERMS terms (all positive)."""
    y = 0.25 * jnp.square(x)

    def step(i, acc):
        k = _SERIES_TERMS - i
        return 1.0 + acc * y / (k * (v + k))

    inner = jax.lax.fori_loop(0, _SERIES_TERMS - 1, step, jnp.ones_like(y))
    return inner * y / (v + 1.0)


def _normalized_log_bessel(v, x):
    """(n, n_e): n = log(Gamma(v+1) (2/x)^v I_v(x)) (-> 0 as x -> 0) and n_e = n - x, for a
    general order, x >= 0 (series below _SERIES_BELOW, Debye above)."""
    v, x = jnp.broadcast_arrays(v, x)
    series = x < _SERIES_BELOW
    xs = jnp.where(series, x, 1.0)  # safe values in the branch not taken (NaN-free gradients)
    xd = jnp.where(series, _SERIES_BELOW, x)
    n_series = jnp.log1p(_series_tail(v, xs))
    r = jnp.hypot(v, xd)
    n_e_debye = (
        jnp.square(v) / (r + xd)  # r - x
        - v * jnp.log(0.5 * (v + r))
        + jax.lax.lgamma(v + 1.0)
        - 0.5 * jnp.log(2.0 * math.pi * r)
        + jnp.log1p(_debye_sum(v, r))
    )
    n = jnp.where(series, n_series, n_e_debye + xd)
    n_e = jnp.where(series, n_series - xs, n_e_debye)
    return n, n_e


def _normalized_log_bessel_static(order: float, x):
    """As :func:`_normalized_log_bessel`; for orders 0, 1/2 and 1 the closed forms (``i0e``,
    ``i1e``, ``sinh``) replace the Debye expansion (x >= _SERIES_BELOW). Below, the series is
    kept: it gives n (which -> 0 as x -> 0) to full relative accuracy, ``log(i0e(x)) + x``
    would not."""
    n, n_e = _normalized_log_bessel(jnp.asarray(order, x.dtype), x)
    if order not in (0.0, 0.5, 1.0):
        return n, n_e
    large = x >= _SERIES_BELOW
    xl = jnp.where(large, x, _SERIES_BELOW)
    if order == 0.0:
        closed = jnp.log(i0e(xl))
    elif order == 0.5:  # Gamma(3/2) (2/x)^{1/2} I_{1/2}(x) e^{-x} = (1 - e^{-2x}) / (2x)
        closed = jnp.log(-jnp.expm1(-2.0 * xl) / (2.0 * xl))
    else:  # Gamma(2) (2/x) I_1(x) e^{-x} = 2 i1e(x) / x
        closed = jnp.log(2.0 * i1e(xl) / xl)
    return jnp.where(large, closed + xl, n), jnp.where(large, closed, n_e)


def _log_ratio(v, x):
    """log A = log(I_{v+1}(x) / I_v(x)), accurate also as -log A -> 0 (x large)."""
    v, x = jnp.broadcast_arrays(v, x)
    series = x < _SERIES_BELOW
    xs = jnp.where(series, x, 1.0)
    xd = jnp.where(series, _SERIES_BELOW, x)
    log_series = (
        jnp.log(0.5 * xs)
        - jnp.log(v + 1.0)
        + jnp.log1p(_series_tail(v + 1.0, xs))
        - jnp.log1p(_series_tail(v, xs))
    )
    r0, r1 = jnp.hypot(v, xd), jnp.hypot(v + 1.0, xd)
    dr = (2.0 * v + 1.0) / (r1 + r0)  # r1 - r0
    log_debye = (
        dr
        - jnp.log1p((v + 1.0 + jnp.square(v + 1.0) / (r1 + xd)) / xd)  # log(x / (v + 1 + r1))
        + v * jnp.log1p(-(1.0 + dr) / (v + 1.0 + r1))  # v log((v + r0) / (v + 1 + r1))
        - 0.25 * jnp.log1p((2.0 * v + 1.0) / jnp.square(r0))  # -log(r1 / r0) / 2
        + jnp.log1p(_debye_sum(v + 1.0, r1))
        - jnp.log1p(_debye_sum(v, r0))
    )
    return jnp.where(series, log_series, log_debye)


def log_bessel_iv(order, x) -> jax.Array:
    """log I_v(x), the modified Bessel function of the first kind, for real order v >= 0 and
    x >= 0, without overflow (x up to 1e5 and beyond) or underflow at small x (see the module
    docstring for the method; -inf where I_v(x) = 0, i.e. x = 0 < v).

    Example:
        >>> import jax.numpy as jnp
        >>> [round(v, 4) for v in log_bessel_iv(0.5, jnp.array([1.0, 1e5])).tolist()]
        [-0.0644, 99993.3203]
        >>> round(float(log_bessel_iv(2.3, 7.0)), 4)  # scipy: log(iv(2.3, 7)) = 4.72263
        4.7226
    """
    where = "log_bessel_iv"
    x = as_float("x", x, where=where)
    static = isinstance(order, (int, float, np.integer, np.floating))
    v = float(order) if static else as_float("order", order, where=where)
    if not is_traced(x, v):
        if np.any(np.asarray(v) < 0) or np.any(np.isnan(np.asarray(v))):
            raise InputError(f"{where}: order must be >= 0, got {np.asarray(v).min()!r}.")
        if np.any(np.asarray(x) < 0) or np.any(np.isnan(np.asarray(x))):
            raise InputError(
                f"{where}: x must be >= 0 (I_v is real and positive there), got "
                f"{np.asarray(x).min()!r}."
            )
    if static:
        return _log_bessel_static(v, x)
    return _log_bessel_general(v.astype(x.dtype), x)


@functools.partial(jax.jit, static_argnums=(0,))
def _log_bessel_static(order: float, x):
    n, _ = _normalized_log_bessel_static(order, x)
    v = jnp.asarray(order, x.dtype)
    return n + jax.scipy.special.xlogy(v, 0.5 * x) - jax.lax.lgamma(v + 1.0)


@jax.jit
def _log_bessel_general(v, x):
    v, x = jnp.broadcast_arrays(v, x)
    n, _ = _normalized_log_bessel(v, x)
    return n + jax.scipy.special.xlogy(v, 0.5 * x) - jax.lax.lgamma(v + 1.0)


def _checked_dim_kappa(concentration, dim, where):
    m = check_dim(dim, where=where)
    return m, check_concentration(concentration, where=where)


def log_normalizer(concentration, dim: int) -> jax.Array:
    """log C_m(kappa) = (m/2 - 1) log kappa - (m/2) log(2 pi) - log I_{m/2-1}(kappa), ``[...]``.

    Example:
        >>> import math
        >>> k = 2.0  # m = 3: C_3 = kappa / (4 pi sinh kappa)
        >>> reference = math.log(k / (4 * math.pi * math.sinh(k)))
        >>> round(float(log_normalizer(k, 3)), 5) == round(reference, 5)
        True
    """
    m, kappa = _checked_dim_kappa(concentration, dim, "log_normalizer")
    return _log_normalizer(kappa, m)


@functools.partial(jax.jit, static_argnums=(1,))
def _log_normalizer(kappa, m):
    n, _ = _normalized_log_bessel_static(0.5 * m - 1.0, kappa)
    return -log_sphere_area(m) - n


def mean_resultant_length(concentration, dim: int) -> jax.Array:
    """A_m(kappa) = I_{m/2}(kappa) / I_{m/2-1}(kappa) = E[mu.x], ``[...]``.

    Example:
        >>> import math
        >>> abs(float(mean_resultant_length(3.0, 3)) - (1 / math.tanh(3) - 1 / 3)) < 1e-6
        True
    """
    m, kappa = _checked_dim_kappa(concentration, dim, "mean_resultant_length")
    return _mean_resultant_length(kappa, m)


@functools.partial(jax.jit, static_argnums=(1,))
def _mean_resultant_length(kappa, m):
    return jnp.exp(_log_ratio(jnp.asarray(0.5 * m - 1.0, kappa.dtype), kappa))


@functools.partial(jax.jit, static_argnums=(1,))
def _kl_to_uniform(kappa, m):
    v = jnp.asarray(0.5 * m - 1.0, kappa.dtype)
    log_a = _log_ratio(v, kappa)
    n, n_e = _normalized_log_bessel_static(0.5 * m - 1.0, kappa)
    # kappa A - n; for large kappa the same as -kappa (1 - A) - n_e without the cancellation.
    small = kappa * jnp.exp(log_a) - n
    large = kappa * jnp.expm1(log_a) - n_e
    return jnp.where(kappa < _SERIES_BELOW, small, large)


def kl_to_uniform(concentration, dim: int) -> jax.Array:
    """KL(vMF(mu, kappa) || U(S^{m-1})) = kappa A_m + log C_m + log |S^{m-1}| (nats, >= 0),
    independent of mu, ``[...]``.

    Example:
        >>> import math
        >>> k = 5.0  # m = 3: k coth k - 1 + log(k / sinh k)
        >>> ref = k / math.tanh(k) - 1 + math.log(k / math.sinh(k))
        >>> abs(float(kl_to_uniform(k, 3)) - ref) < 1e-5
        True
    """
    m, kappa = _checked_dim_kappa(concentration, dim, "kl_to_uniform")
    return _kl_to_uniform(kappa, m)


def entropy(concentration, dim: int) -> jax.Array:
    """Differential entropy (nats, w.r.t. the surface measure): log |S^{m-1}| - KL to uniform.

    Example:
        >>> import math
        >>> abs(float(entropy(1e-3, 3)) - math.log(4 * math.pi)) < 1e-5  # nearly uniform
        True
    """
    m, kappa = _checked_dim_kappa(concentration, dim, "entropy")
    return log_sphere_area(m) - _kl_to_uniform(kappa, m)


@functools.partial(jax.jit, static_argnums=(3,))
def _log_prob(x, mu, kappa, m):
    n, n_e = _normalized_log_bessel_static(0.5 * m - 1.0, kappa)
    return -log_sphere_area(m) - n_e - 0.5 * kappa * squared_distance(x, mu)


def log_prob(x, mean_direction, concentration) -> jax.Array:
    """log q(x) = log C_m(kappa) + kappa mu.x for unit ``x`` ``[..., m]``, ``[...]`` (batch
    axes broadcast).

    Example:
        >>> import jax.numpy as jnp, math
        >>> x = jnp.array([1.0, 0.0]); mu = jnp.array([0.0, 1.0])  # m = 2: 1 / (2 pi I_0(k))
        >>> round(float(log_prob(x, mu, 1.0)), 5) == round(-math.log(2 * math.pi * 1.2660659), 5)
        True
    """
    where = "von_mises_fisher.log_prob"
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


def _wood_constants(kappa, m):
    n = m - 1.0
    root = jnp.sqrt(4.0 * jnp.square(kappa) + n * n)
    b = n / (2.0 * kappa + root)
    a = (n + 2.0 * kappa + root) / 4.0
    d = 4.0 * a * b / (1.0 + b) - n * math.log(n)
    return a, b, d


def _accepted_eps(key, kappa, m, max_iterations):
    """Wood's rejection loop on the flat ``[n]`` (non-differentiable) kappa: accepted eps.

    A proposal draws g ~ N(0, I_{m+1}): eps = (1 + g_1 / ||g_{1:m}||) / 2 ~ Beta((m-1)/2,
    (m-1)/2) (the first coordinate of a uniform point on S^{m-1} has density ~ (1 - t^2)^{(m-3)/2})
    and u = Phi(g_{m+1}) ~ U(0, 1), with log u = ``log_ndtr(g_{m+1})``: Gaussian draws only, no
    gamma sampler inside the loop. Round 0 proposes for every element; each later round
    gathers up to ``_retry_capacity(n)`` of the elements still rejected (``jnp.nonzero`` with a
    static size) and proposes for those only, so the loop costs about 2n proposals instead of n
    times the largest number of rounds any element needs (about 12 for n = 10^6)."""
    n = kappa.shape[0]
    a, b, d = _wood_constants(kappa, m)
    capacity = _retry_capacity(n)

    def propose(round_key, index):
        g = jax.random.normal(round_key, (index.shape[0], m + 1), kappa.dtype)
        eps = 0.5 * (1.0 + g[:, 0] / jnp.linalg.norm(g[:, :m], axis=-1))
        t = 2.0 * a[index] * b[index] / (1.0 - (1.0 - b[index]) * eps)
        test = (m - 1) * jnp.log(t) - t + d[index]
        return eps, (test >= log_ndtr(g[:, m])) | jnp.isnan(test)

    def cond(state):
        i, _, done = state
        return (i < max_iterations) & ~jnp.all(done)

    def body(state):
        i, eps, done = state
        (index,) = jnp.nonzero(~done, size=capacity, fill_value=n)  # n: an unused slot
        valid = index < n
        new, accept = propose(jax.random.fold_in(key, i), jnp.where(valid, index, 0))
        target = jnp.where(valid & accept, index, n)  # only accepted proposals are written
        return i + 1, eps.at[target].set(new, mode="drop"), done.at[target].set(True, mode="drop")

    eps0, done0 = propose(jax.random.fold_in(key, 0), jnp.arange(n))
    _, eps, _ = jax.lax.while_loop(cond, body, (1, eps0, done0))
    return eps


def _retry_capacity(n: int) -> int:
    """Elements re-proposed per round after the first: n / 16, at least min(n, 1024)."""
    return min(n, max(-(-n // 16), 1024))


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


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _sample(key, mu, kappa, full, m, max_iterations):
    """z and the pieces of the correction term: (z, w, eps, b)."""
    w_key, v_key = jax.random.split(key)
    size = math.prod(full)
    flat = jax.lax.stop_gradient(kappa).reshape(size)
    eps = _accepted_eps(w_key, flat, m, max_iterations).reshape(full) if size else flat
    eps = jax.lax.stop_gradient(eps.reshape(full))
    _, b, _ = _wood_constants(kappa, m)  # differentiable in kappa: g_rep
    denominator = 1.0 - (1.0 - b) * eps
    one_minus_w = 2.0 * b * eps / denominator
    w = 1.0 - one_minus_w
    sin = jnp.sqrt(jnp.maximum(one_minus_w * (2.0 - one_minus_w), 0.0))
    v = uniform_tangent(v_key, full, m, kappa.dtype)
    z = householder_from_e1(tangent_point(w, sin, v), mu)
    return z, one_minus_w, eps, b, denominator


@functools.partial(jax.jit, static_argnums=(3,))
def _sample_inverse_cdf(key, mu, kappa, full):
    """m = 3: w by its inverse CDF, ``1 - w = -log(u + (1 - u) exp(-2 kappa)) / kappa``."""
    w_key, v_key = jax.random.split(key)
    u = jax.random.uniform(w_key, full, kappa.dtype, minval=jnp.finfo(kappa.dtype).tiny)
    one_minus_w = -jnp.logaddexp(jnp.log(u), jnp.log1p(-u) - 2.0 * kappa) / kappa
    one_minus_w = jnp.clip(one_minus_w, 0.0, 2.0)
    sin = jnp.sqrt(one_minus_w * (2.0 - one_minus_w))
    v = uniform_tangent(v_key, full, 3, kappa.dtype)
    return householder_from_e1(tangent_point(1.0 - one_minus_w, sin, v), mu)


#: sample(method=...): Wood's rejection sampler (every m) or the inverse CDF (m = 3)
SAMPLING_METHODS = ("wood", "inverse_cdf")


def sample(
    key: jax.Array,
    mean_direction,
    concentration,
    shape: tuple[int, ...] = (),
    *,
    max_iterations: int = _MAX_ITERATIONS,
    method: str = "wood",
) -> jax.Array:
    """z ~ vMF(mu, kappa), ``shape + batch + (m,)`` (batch = the broadcast of mu's leading axes
    and kappa's shape). ``method="wood"``: Wood's rejection sampler, reparameterised with the
    **g_rep** gradient only (see the module docstring; :func:`sample_and_log_correction` adds
    what g_cor needs). ``method="inverse_cdf"`` (m = 3 only, the authors' code's choice for
    S^2): w = 1 + log(u + (1 - u) e^{-2 kappa}) / kappa from u ~ U(0, 1), no rejection, so
    its pathwise gradient in kappa is exact (unbiased) without a correction term.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> mu = jnp.eye(4)[:2]  # two mean directions on S^3
        >>> sample(jax.random.key(0), mu, jnp.array([1.0, 100.0]), shape=(7,)).shape
        (7, 2, 4)
        >>> z = sample(jax.random.key(0), jnp.eye(3)[0], 10.0, (4,), method="inverse_cdf")
        >>> z.shape
        (4, 3)
    """
    if method not in SAMPLING_METHODS:
        raise InputError(
            f"vmf.sample: unknown method {method!r}; choose one of {', '.join(SAMPLING_METHODS)}."
        )
    mu, kappa, full, m = _prepare(key, mean_direction, concentration, shape, "vmf.sample")
    if method == "inverse_cdf":
        if m != 3:
            raise InputError(
                f"vmf.sample: method='inverse_cdf' needs m = 3 (S^2), got m = {m}; the "
                "cosine's CDF has no closed-form inverse for other m: use method='wood'."
            )
        return _sample_inverse_cdf(key, mu, kappa, full)
    return _sample(key, mu, kappa, full, m, max_iterations)[0]


def sample_and_log_correction(
    key: jax.Array,
    mean_direction,
    concentration,
    shape: tuple[int, ...] = (),
    *,
    max_iterations: int = _MAX_ITERATIONS,
) -> tuple[jax.Array, jax.Array]:
    """``(z, c)``: :func:`sample`'s z (same key, same draw) and ``c = log pi(eps; kappa)``,
    ``shape + batch``, the log density of the accepted eps, differentiable in kappa with eps
    fixed: ``c = log C_m(kappa) + kappa w + ((m-3)/2) log(1 - w^2) + log|dw/deps|`` with
    ``dw/deps = -2b / (1 - (1-b) eps)^2``. The unbiased gradient g_rep + g_cor of E[f(z)] is
    the gradient of the surrogate ``f(z) + stop_gradient(f(z)) * (c - stop_gradient(c))``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> mu = jnp.array([1.0, 0.0, 0.0])
        >>> def surrogate(k):
        ...     z, c = sample_and_log_correction(jax.random.key(0), mu, k, shape=(2000,))
        ...     f = z @ mu
        ...     return jnp.mean(f + jax.lax.stop_gradient(f) * (c - jax.lax.stop_gradient(c)))
        >>> g = jax.grad(surrogate)(2.0)  # d A_3 / d kappa = 1 - A^2 - 2 A / kappa = 0.17398
        >>> bool(abs(g - 0.17398) < 0.03)
        True
    """
    mu, kappa, full, m = _prepare(key, mean_direction, concentration, shape, "vmf.sample")
    z, one_minus_w, eps, b, denominator = _sample(key, mu, kappa, full, m, max_iterations)
    return z, _log_correction(kappa, one_minus_w, b, denominator, m)


@functools.partial(jax.jit, static_argnums=(4,))
def _log_correction(kappa, one_minus_w, b, denominator, m):
    _, n_e = _normalized_log_bessel_static(0.5 * m - 1.0, kappa)
    log_one_minus_w2 = jnp.log(one_minus_w) + jnp.log(2.0 - one_minus_w)
    return (  # log C_m(kappa) + kappa w = -log|S| - n_e - kappa (1 - w): no large cancellation
        -log_sphere_area(m)
        - n_e
        - kappa * one_minus_w
        + 0.5 * (m - 3) * log_one_minus_w2
        + jnp.log(2.0 * b)
        - 2.0 * jnp.log(denominator)
    )


@functools.partial(jax.jit, static_argnums=(4,))
def _kl(mu1, k1, mu2, k2, m):
    v = jnp.asarray(0.5 * m - 1.0, k1.dtype)
    log_a1 = _log_ratio(v, k1)
    n1, n1_e = _normalized_log_bessel_static(0.5 * m - 1.0, k1)
    n2, n2_e = _normalized_log_bessel_static(0.5 * m - 1.0, k2)
    half_sq = 0.5 * squared_distance(mu1, mu2)  # 1 - mu1.mu2
    # log C(k1) - log C(k2) + A1 (k1 - k2 rho) = n2 - n1 + A1 k1 - A1 k2 rho; with A1 - 1 and
    # rho - 1 written out, the large terms k1, k2 cancel analytically.
    a1_minus_1 = jnp.expm1(log_a1)
    return (n2_e - n1_e) + k1 * a1_minus_1 - k2 * (a1_minus_1 * (1.0 - half_sq) - half_sq)


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
    batch_shape(where, mu1=mu1.shape[:-1], k1=k1.shape, mu2=mu2.shape[:-1], k2=k2.shape)
    dtype = jnp.result_type(mu1, mu2, k1, k2)
    return mu1.astype(dtype), k1.astype(dtype), mu2.astype(dtype), k2.astype(dtype)


def kl_divergence(mu1, k1, mu2, k2) -> jax.Array:
    """KL(vMF(mu1, k1) || vMF(mu2, k2)) = log C(k1) - log C(k2) + A(k1) (k1 - k2 mu2.mu1),
    closed form, ``[...]``.

    Example:
        >>> import jax.numpy as jnp
        >>> mu = jnp.array([1.0, 0.0, 0.0])
        >>> abs(float(kl_divergence(mu, 3.0, mu, 3.0))) < 1e-6
        True
    """
    mu1, k1, mu2, k2 = _check_pair(mu1, k1, mu2, k2, "vmf.kl_divergence")
    return _kl(mu1, k1, mu2, k2, mu1.shape[-1])


def symmetric_kl(mu1, k1, mu2, k2) -> jax.Array:
    """KL(q1 || q2) + KL(q2 || q1) of two vMFs (the latent attack's divergence), ``[...]``.

    Example:
        >>> import jax.numpy as jnp
        >>> a, b = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
        >>> round(float(symmetric_kl(a, 2.0, b, 2.0)), 4)  # 2 k A_2(k) (1 - a.b)
        2.7911
    """
    mu1, k1, mu2, k2 = _check_pair(mu1, k1, mu2, k2, "vmf.symmetric_kl")
    m = mu1.shape[-1]
    return _kl(mu1, k1, mu2, k2, m) + _kl(mu2, k2, mu1, k1, m)

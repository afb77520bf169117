"""Observation models p(x | z) for images x in [0, 1] of shape [..., H, W, C], and bits per dim.

Every log-likelihood is in nats, summed over the image (axes -3, -2, -1). An observation model is
an :class:`ObservationModel` of pure functions (the optax style) built by
:func:`make_observation_model`; the decoder produces ``decoder_out`` with
``decoder_channels(C)`` channels, and the model may own parameters of its own (``init_params()``,
e.g. a shared log-scale) that are trained with the rest:

- ``"bernoulli"``: decoder_out = logits; log p = sum x log p + (1 - x) log(1 - p), p = sigmoid(l),
  on grey levels x in [0, 1] (not binarised, so it is not a normalised density of grey images).
- ``"gaussian"``: fixed standard deviation ``scale``; decoder_out = mean.
- ``"gaussian_learned"``: learned standard deviation, ``per_pixel=True`` (decoder_out has 2C
  channels: mean, then log-scale) or ``per_pixel=False`` (one scalar ``log_scale`` owned by the
  observation model).
- ``"quantized_gaussian"``: a Gaussian discretised to the 256 levels k / 255 (as the discretised
  logistic of PixelCNN++, Salimans et al. 2017, but Gaussian):
  P(x) = Phi((x + 1/510 - mu) / sigma) - Phi((x - 1/510 - mu) / sigma), the first bin extended to
  -inf and the last to +inf, so the 256 probabilities sum to one. Scale per pixel by default.

Continuous densities (the two Gaussians) are densities of [0, 1]-scaled pixels; Bernoulli and the
quantized Gaussian are probabilities. :func:`bits_per_dim` converts either; see its docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr

IMAGE_EVENT_AXES = (-3, -2, -1)
NUM_LEVELS = 256
HALF_BIN = 0.5 / (NUM_LEVELS - 1)  # 1/510: half the distance between neighbouring levels
_HALF_LOG_2PI = float(0.5 * np.log(2.0 * np.pi))

__all__ = [
    "OBSERVATION_MODELS",
    "ObservationModel",
    "bernoulli_log_prob",
    "bits_per_dim",
    "gaussian_log_prob",
    "make_observation_model",
    "quantized_gaussian_log_prob",
]


# --- log-likelihoods as plain functions ---------------------------------------------------------


def bernoulli_log_prob(logits: jax.Array, x: jax.Array) -> jax.Array:
    """Bernoulli log-likelihood of pixels in [0, 1], summed over the image (nats).

    log p(x | logits) = sum_i x_i * l_i - softplus(l_i); x is not binarised (the usual, unnormalised
    "Bernoulli on grey levels" of the VAE literature).

    Examples:
        Logit 0 is p = 1/2 whatever the pixel: 4 pixels give 4 log(1/2). A confident logit on
        the right pixel value costs almost nothing.

        >>> import math
        >>> x = jnp.array([[[0.0], [1.0]], [[1.0], [0.5]]])  # one 2x2 grey image [H, W, C]
        >>> round(float(bernoulli_log_prob(jnp.zeros_like(x), x)), 4), round(4 * math.log(0.5), 4)
        (-2.7726, -2.7726)
        >>> x = jnp.ones((1, 1, 1))
        >>> -1e-6 < float(bernoulli_log_prob(jnp.full_like(x, 20.0), x)) <= 0.0
        True
    """
    per_pixel = x * logits - jax.nn.softplus(logits)
    return jnp.sum(per_pixel, axis=IMAGE_EVENT_AXES)


def gaussian_log_prob(mean: jax.Array, log_scale: jax.Array, x: jax.Array) -> jax.Array:
    """log N(x; mean, exp(log_scale)^2) per pixel, summed over the image (nats).

    -1/2 log 2 pi - log sigma - (x - mean)^2 / (2 sigma^2); ``log_scale`` broadcasts (a scalar for
    a fixed or shared scale, an image for a per-pixel scale).

    Examples:
        At the mean, each of the 4 pixels has density 1 / sqrt(2 pi) (sigma = 1); with
        sigma = e^-1 each gains one nat.

        >>> x = jnp.full((2, 2, 1), 0.5)
        >>> round(float(gaussian_log_prob(x, jnp.zeros(()), x)), 4)  # -4 * log(2 pi) / 2
        -3.6758
        >>> round(float(gaussian_log_prob(x, jnp.full((), -1.0), x)), 4)
        0.3242
    """
    standardized = (x - mean) * jnp.exp(-log_scale)
    per_pixel = -_HALF_LOG_2PI - log_scale - 0.5 * standardized**2
    return jnp.sum(
        jnp.broadcast_to(per_pixel, jnp.broadcast_shapes(per_pixel.shape, x.shape)),
        axis=IMAGE_EVENT_AXES,
    )


def _log1mexp(a: jax.Array) -> jax.Array:
    """log(1 - exp(a)) for a <= 0 (Maechler 2012: expm1 near 0, log1p in the tail)."""
    return jnp.where(a > -np.log(2.0), jnp.log(-jnp.expm1(a)), jnp.log1p(-jnp.exp(a)))


def _log_sinhc(lam):
    """log(sinh(lam) / lam), even in lam, stable for every finite lam (finite gradients)."""
    a = jnp.abs(lam)
    small = a < 0.1
    a_small = jnp.where(small, a, 0.0)
    a_large = jnp.where(small, 1.0, a)
    series = a_small**2 / 6.0 - a_small**4 / 180.0
    direct = a_large + jnp.log1p(-jnp.exp(-2.0 * a_large)) - jnp.log(2.0 * a_large)
    return jnp.where(small, series, direct)


def _tilted_second_moment(lam):
    """E[s^2] / h^2 for s on [-h, h] with density proportional to exp(lam s / h), lam = m h.

    1 - 2 coth(lam) / lam + 2 / lam^2, between 1/3 (lam = 0) and 1 (|lam| -> inf).
    """
    a = jnp.abs(lam)
    small = a < 0.5
    a_small = jnp.where(small, a, 0.0)
    a_large = jnp.where(small, 1.0, a)
    series = 1.0 / 3.0 + 2.0 * a_small**2 / 45.0 - 4.0 * a_small**4 / 945.0
    direct = 1.0 - 2.0 / (jnp.tanh(a_large) * a_large) + 2.0 / a_large**2
    return jnp.where(small, series, direct)


def _log_bin_probability(z_lo, z_hi, z_mid, log_width):
    """log(Phi(z_hi) - Phi(z_lo)) for finite z_lo < z_hi, z_mid their midpoint.

    Exact route (bins wider than 0.1 standard deviations): reflect so that both ends lie in the
    lower half (Phi(b) - Phi(a) = Phi(-a) - Phi(-b)), then log Phi(hi) + log(1 - exp(log Phi(lo) -
    log Phi(hi))) with log Phi = log_ndtr. Its float32 error is ~ eps |log Phi| / |log Phi(lo) -
    log Phi(hi)|, which grows as the bin narrows (sigma >> 1/255). Narrow bins, and bins where
    the log-difference underflows, use the expansion of the integral around the midpoint m with
    half-width h (w = 2h, lam = m h, E_lam the mean under the density ~ exp(-m s) on [-h, h]):

        log int_{m-h}^{m+h} phi = log phi(m) + log w + log(sinh(lam) / lam) - E_lam[s^2] / 2

    exact in the exp(-m s) factor of phi(m + s) = phi(m) exp(-m s - s^2 / 2); its error is below
    Var(s^2) / 8 <= h^4 / 8 (1e-6 nats at w = 0.1).
    """
    reflect = z_lo > 0.0
    lo = jnp.where(reflect, -z_hi, z_lo)
    hi = jnp.where(reflect, -z_lo, z_hi)
    log_hi = log_ndtr(hi)
    delta = log_ndtr(lo) - log_hi  # <= 0; -inf if Phi(lo) underflows; nan if both do
    width = hi - lo
    use_exact = (width >= 0.1) & (delta < 0.0)
    exact = log_hi + _log1mexp(jnp.where(use_exact, delta, -1.0))  # double where: finite grads
    half = 0.5 * jnp.where(use_exact, 0.0, width)
    lam = z_mid * half
    midpoint = (
        -_HALF_LOG_2PI
        - 0.5 * z_mid**2
        + log_width
        + _log_sinhc(lam)
        - 0.5 * half**2 * _tilted_second_moment(lam)
    )
    return jnp.where(use_exact, exact, midpoint)


def quantized_gaussian_log_prob(mean: jax.Array, log_scale: jax.Array, x: jax.Array) -> jax.Array:
    """Discretised Gaussian log-probability of 256-level pixels x = k / 255, summed over the image.

    P(x) = Phi((x + 1/510 - mean) / sigma) - Phi((x - 1/510 - mean) / sigma), sigma =
    exp(log_scale), except P(0) = Phi((1/510 - mean) / sigma) and P(1) = 1 - Phi((1 - 1/510 -
    mean) / sigma) (first and last bins extended to -inf / +inf). x is used as given, not snapped
    to the grid (so the result stays differentiable in x); values below 1/510 count as the first
    bin and above 1 - 1/510 as the last. Numerically stable in log space for any finite mean and
    scale (see :func:`_log_bin_probability`).

    Examples:
        The 256 levels' probabilities sum to one (each level as its own 1x1 image):

        >>> log_prob = jax.jit(quantized_gaussian_log_prob)
        >>> x = (jnp.arange(256.0) / 255).reshape(256, 1, 1, 1)
        >>> p = jnp.exp(log_prob(jnp.full_like(x, 0.3), jnp.log(0.1), x))
        >>> p.shape, round(float(p.sum()), 4)
        ((256,), 1.0)

        With the mean on a level and sigma = (1/510) / 1.96, that level's bin holds
        Phi(1.96) - Phi(-1.96) = 0.95; the end bins, extended to -inf and +inf, Phi(1.96):

        >>> p = jnp.exp(log_prob(x, jnp.log(1 / 510 / 1.96), x))
        >>> round(float(p[1:-1].min()), 3), round(float(p[1:-1].max()), 3), round(float(p[0]), 3)
        (0.95, 0.95, 0.975)
    """
    inv_scale = jnp.exp(-log_scale)
    centered = x - mean
    z_lo = (centered - HALF_BIN) * inv_scale
    z_hi = (centered + HALF_BIN) * inv_scale
    first = log_ndtr(z_hi)  # log Phi(z_hi)
    last = log_ndtr(-z_lo)  # log (1 - Phi(z_lo))
    interior = _log_bin_probability(
        z_lo, z_hi, centered * inv_scale, np.log(2.0 * HALF_BIN) - log_scale
    )
    per_pixel = jnp.where(x < HALF_BIN, first, jnp.where(x > 1.0 - HALF_BIN, last, interior))
    return jnp.sum(per_pixel, axis=IMAGE_EVENT_AXES)


def _quantized_gaussian_mean(mean: jax.Array, log_scale: jax.Array) -> jax.Array:
    """E[x] of the discretised Gaussian: (1/255) sum_{k=1}^{255} P(K >= k), memory O(image)."""
    scale = jnp.exp(log_scale)
    mean, scale = jnp.broadcast_arrays(mean, scale)

    def add_level(k, total):
        threshold = (k - 0.5) / (NUM_LEVELS - 1)
        return total + ndtr((mean - threshold) / scale)  # P(K >= k) = 1 - Phi((t - mu) / sigma)

    total = jax.lax.fori_loop(1, NUM_LEVELS, add_level, jnp.zeros_like(mean))
    return total / (NUM_LEVELS - 1)


# --- bits per dimension -------------------------------------------------------------------------


def bits_per_dim(nll_nats: jax.Array, num_dims: int, *, dequantize_256: bool = False) -> jax.Array:
    """Negative log-likelihood in nats -> bits per dimension: nll / (D * ln 2).

    The one place bits per dimension are derived. Units: the Bernoulli and quantized-Gaussian
    models give probabilities, so their bits/dim are discrete bits directly. The continuous
    Gaussians give densities of pixels scaled to [0, 1], in nats per [0, 1]-scaled pixel with no
    256-level offset; the density of the same image on the 0..255 scale (the "discrete bits" of
    the generative-model literature, for a uniformly dequantised density) is lower by a factor
    256^D, so ``dequantize_256=True`` adds D * ln 256 nats to the NLL (+8 bits/dim). Do not use it
    with the discrete models.

    Examples:
        >>> import math
        >>> round(float(bits_per_dim(784 * math.log(2.0), 784)), 4)  # one bit per pixel
        1.0
        >>> round(float(bits_per_dim(784 * math.log(2.0), 784, dequantize_256=True)), 4)
        9.0
    """
    nll = jnp.asarray(nll_nats)
    if dequantize_256:
        nll = nll + num_dims * np.log(float(NUM_LEVELS))
    return nll / (num_dims * np.log(2.0))


# --- the observation-model interface ------------------------------------------------------------


class ObservationModel(NamedTuple):
    """p(x | z) as pure functions; images x are [..., H, W, C] in [0, 1].

    - ``decoder_channels(C) -> int``: channels the decoder must output for C image channels.
    - ``init_params() -> dict``: the model's own parameters ({} for most, {"log_scale": 0.0} for
      a shared learned scale); pass them (trained) as ``params`` to the other functions.
    - ``log_prob(decoder_out, x, params=None) -> [...]``: log p(x | z) in nats, summed over the
      image (axes -3, -2, -1).
    - ``mean(decoder_out, params=None) -> image``: E[x | z] (the reconstruction).
    - ``sample(key, decoder_out, params=None) -> image``: x ~ p(x | z).
    - ``options``: the options it was built with, as sorted (name, value) pairs.

    Examples:
        >>> model = make_observation_model("bernoulli")
        >>> model.name, model.decoder_channels(1), model.init_params()
        ('bernoulli', 1, {})
        >>> logits, x = jnp.zeros((2, 2, 1)), jnp.ones((2, 2, 1))
        >>> round(float(model.log_prob(logits, x)), 4)  # 4 log(1/2)
        -2.7726
        >>> model.mean(logits).ravel().tolist()  # sample(key, logits) draws from the same p
        [0.5, 0.5, 0.5, 0.5]
    """

    name: str
    decoder_channels: Callable[[int], int]
    init_params: Callable[[], dict]
    log_prob: Callable[..., jax.Array]
    mean: Callable[..., jax.Array]
    sample: Callable[..., jax.Array]
    options: tuple[tuple[str, Any], ...] = ()


OBSERVATION_MODELS = ("bernoulli", "gaussian", "gaussian_learned", "quantized_gaussian")


def _check_shapes(name: str, decoder_out, x, channels_of: Callable[[int], int]) -> None:
    if decoder_out.ndim < 3 or x.ndim < 3:
        raise ValueError(
            f"{name}: decoder_out and x must be images [..., H, W, C], got shapes "
            f"{decoder_out.shape} and {x.shape}."
        )
    expected = channels_of(x.shape[-1])
    if decoder_out.shape[-3:-1] != x.shape[-3:-1] or decoder_out.shape[-1] != expected:
        raise ValueError(
            f"{name}: decoder_out has shape {decoder_out.shape} but x {x.shape} needs "
            f"[..., {x.shape[-3]}, {x.shape[-2]}, {expected}] (decoder_channels({x.shape[-1]}) = "
            f"{expected}); build the decoder with model.decoder_channels(image_channels) outputs."
        )


class _Location(NamedTuple):
    """How the location and log-scale of a Gaussian-type model are read."""

    name: str
    scale_mode: str  # "fixed" | "per_pixel" | "shared"
    fixed_log_scale: float
    init_log_scale: float
    min_log_scale: float | None

    def channels(self, image_channels: int) -> int:
        return 2 * image_channels if self.scale_mode == "per_pixel" else image_channels

    def init_params(self) -> dict:
        if self.scale_mode == "shared":
            return {"log_scale": jnp.asarray(self.init_log_scale, jnp.float32)}
        return {}

    def split(self, decoder_out, params) -> tuple[jax.Array, jax.Array]:
        if self.scale_mode == "fixed":
            return decoder_out, jnp.asarray(self.fixed_log_scale, decoder_out.dtype)
        if self.scale_mode == "per_pixel":
            if decoder_out.shape[-1] % 2:
                raise ValueError(
                    f"{self.name} (per_pixel): decoder_out needs 2C channels (mean, log-scale), "
                    f"got {decoder_out.shape[-1]}."
                )
            mean, log_scale = jnp.split(decoder_out, 2, axis=-1)
        else:
            if not isinstance(params, Mapping) or "log_scale" not in params:
                raise ValueError(
                    f"{self.name} (shared scale) owns a parameter: pass params with 'log_scale' "
                    f"(model.init_params() or the trained value), got {params!r}."
                )
            mean, log_scale = decoder_out, jnp.asarray(params["log_scale"])
        if self.min_log_scale is not None:
            log_scale = jnp.maximum(log_scale, self.min_log_scale)
        return mean, log_scale


def _bernoulli() -> ObservationModel:
    def log_prob(decoder_out, x, params=None):
        del params
        _check_shapes("bernoulli", decoder_out, x, lambda c: c)
        return bernoulli_log_prob(decoder_out, x)

    def mean(decoder_out, params=None):
        del params
        return jax.nn.sigmoid(decoder_out)

    def sample(key, decoder_out, params=None):
        del params
        return jax.random.bernoulli(key, jax.nn.sigmoid(decoder_out)).astype(decoder_out.dtype)

    return ObservationModel("bernoulli", lambda c: c, dict, log_prob, mean, sample)


def _gaussian_type(name: str, loc: _Location, quantized: bool, options) -> ObservationModel:
    def log_prob(decoder_out, x, params=None):
        _check_shapes(name, decoder_out, x, loc.channels)
        mu, log_scale = loc.split(decoder_out, params)
        if quantized:
            return quantized_gaussian_log_prob(mu, log_scale, x)
        return gaussian_log_prob(mu, log_scale, x)

    def mean(decoder_out, params=None):
        mu, log_scale = loc.split(decoder_out, params)
        return _quantized_gaussian_mean(mu, log_scale) if quantized else mu

    def sample(key, decoder_out, params=None):
        mu, log_scale = loc.split(decoder_out, params)
        y = mu + jnp.exp(log_scale) * jax.random.normal(key, mu.shape, mu.dtype)
        if quantized:  # rounding a Gaussian draw to the grid is exactly the discretised Gaussian
            return jnp.clip(jnp.round(y * (NUM_LEVELS - 1)), 0, NUM_LEVELS - 1) / (NUM_LEVELS - 1)
        return y

    return ObservationModel(
        name, loc.channels, loc.init_params, log_prob, mean, sample, tuple(sorted(options.items()))
    )


_ACCEPTED = {
    "bernoulli": (),
    "gaussian": ("scale",),
    "gaussian_learned": ("per_pixel", "init_log_scale", "min_log_scale"),
    "quantized_gaussian": ("per_pixel", "scale", "init_log_scale", "min_log_scale"),
}


def make_observation_model(name: str, **options) -> ObservationModel:
    """Build an observation model by name.

    - ``"bernoulli"``: no options; decoder_channels(C) = C (logits).
    - ``"gaussian"``: ``scale`` (fixed standard deviation, default 1.0); C channels (mean).
    - ``"gaussian_learned"``: ``per_pixel`` (default True: 2C channels, mean then log-scale;
      False: C channels and one scalar ``log_scale`` parameter, initialised to
      ``init_log_scale``, default 0.0), ``min_log_scale`` (default None: no floor; a float clamps
      log sigma from below, which keeps the density bounded on constant pixels such as MNIST
      borders).
    - ``"quantized_gaussian"``: ``per_pixel`` (default True), ``scale`` (a float fixes sigma
      instead of learning it), ``init_log_scale``, ``min_log_scale`` as above.

    Examples:
        A per-pixel learned scale needs a mean and a log-scale channel per image channel:

        >>> model = make_observation_model("gaussian_learned")
        >>> model.decoder_channels(3), model.options
        (6, ())
        >>> x = jnp.full((2, 2, 1), 0.5)
        >>> decoder_out = jnp.concatenate([x, jnp.zeros_like(x)], axis=-1)  # mean x, sigma 1
        >>> round(float(model.log_prob(decoder_out, x)), 4)  # 4 * -log(2 pi) / 2
        -3.6758

        A shared scale is a parameter of the observation model:

        >>> model = make_observation_model("gaussian_learned", per_pixel=False, init_log_scale=-1.0)
        >>> model.decoder_channels(3), {k: float(v) for k, v in model.init_params().items()}
        (3, {'log_scale': -1.0})
        >>> round(float(model.log_prob(x, x, model.init_params())), 4)  # one nat more per pixel
        0.3242
        >>> make_observation_model("laplace")
        Traceback (most recent call last):
        ...
        ValueError: Unknown observation model 'laplace'; known: bernoulli, gaussian, ...
    """
    if name not in _ACCEPTED:
        raise ValueError(
            f"Unknown observation model {name!r}; known: {', '.join(OBSERVATION_MODELS)}."
        )
    unknown = sorted(set(options) - set(_ACCEPTED[name]))
    if unknown:
        accepted = ", ".join(_ACCEPTED[name]) or "none"
        raise ValueError(
            f"Observation model {name!r} got unknown options {unknown}; it accepts: {accepted}."
        )
    if name == "bernoulli":
        return _bernoulli()

    scale = options.get("scale", 1.0 if name == "gaussian" else None)
    if scale is not None and not float(scale) > 0.0:
        raise ValueError(f"{name}: scale must be a positive standard deviation, got {scale}.")
    if scale is not None:
        mode = "fixed"
    else:
        mode = "per_pixel" if options.get("per_pixel", True) else "shared"
    min_log_scale = options.get("min_log_scale")
    loc = _Location(
        name=name,
        scale_mode=mode,
        fixed_log_scale=float(np.log(scale)) if scale is not None else 0.0,
        init_log_scale=float(options.get("init_log_scale", 0.0)),
        min_log_scale=None if min_log_scale is None else float(min_log_scale),
    )
    return _gaussian_type(name, loc, name == "quantized_gaussian", options)

"""Structural similarity: SSIM (Wang et al. 2004) and multi-scale SSIM (Wang et al. 2003).

For images x, y and a Gaussian window w (``filter_size`` taps, ``filter_sigma``), local means
mu = w * x, variances sigma^2 = w * x^2 - mu^2 and covariance sigma_xy = w * (x y) - mu_x mu_y
("valid" filtering, no padding, as TensorFlow, dm-pix and scikit-image's cropped mean)::

    l  = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)              (luminance)
    cs = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2)          (contrast-structure)
    SSIM = mean over pixels and channels of l * cs,   C1 = (k1 L)^2, C2 = (k2 L)^2

MS-SSIM over S = ``len(weights)`` scales (each after the first a 2x2 average-pooled copy)::

    MS-SSIM = prod_{s < S} relu(CS_s)^{w_s} * relu(SSIM_S)^{w_S}

with CS_s, SSIM_S the per-channel means, averaged over channels at the end (the order of
``pytorch_msssim``, whose ReLU keeps a negative mean from giving a complex power). The default
weights are Wang et al.'s five, (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), which need images of
at least ``filter_size * 2**4`` pixels a side. The dissertation's 28x28 setting (Ch. 5, digest
open point: MS-SSIM settings are not in the document) is :data:`MNIST_MS_SSIM`: 3 scales (28, 14,
7), a 7x7 window, the first three Wang weights renormalised (0.0711, 0.4530, 0.4760).

Why not dm-pix: ``dm_pix.ssim`` computes SSIM (and the tests check this module against it and
against scikit-image), but it returns only the product l * cs, and MS-SSIM needs the
contrast-structure term alone at every scale but the last. So the three local moments are
computed here once (a separable Gaussian filter as two 1-D ``lax.conv`` passes) and both
functions share them; no JAX package offers MS-SSIM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.arrays import is_traced
from jaxrobust.errors import InputError

__all__ = ["MNIST_MS_SSIM", "MS_SSIM_WEIGHTS", "ms_ssim", "ms_ssim_weights", "ssim"]

#: Wang, Simoncelli and Bovik (2003), Table 1's fitted exponents for five scales.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_weights(num_scales: int) -> tuple[float, ...]:
    """The first ``num_scales`` of :data:`MS_SSIM_WEIGHTS`, renormalised to sum to one.

    Example:
        >>> [round(w, 4) for w in ms_ssim_weights(3)]
        [0.0711, 0.453, 0.476]
    """
    if not isinstance(num_scales, int) or not 1 <= num_scales <= len(MS_SSIM_WEIGHTS):
        raise InputError(
            f"ms_ssim_weights: num_scales must be an integer in 1..{len(MS_SSIM_WEIGHTS)}, got "
            f"{num_scales!r}; pass your own weights to ms_ssim for more scales."
        )
    head = MS_SSIM_WEIGHTS[:num_scales]
    return tuple(w / sum(head) for w in head)


#: The 28x28 setting of the dissertation's Chapter-5 experiments (3 scales, 7x7 window).
MNIST_MS_SSIM = {"filter_size": 7, "filter_sigma": 1.5, "weights": ms_ssim_weights(3)}


def _window(filter_size: int, filter_sigma: float) -> np.ndarray:
    t = np.arange(filter_size, dtype=np.float64) - (filter_size - 1) / 2.0
    w = np.exp(-0.5 * np.square(t / filter_sigma))
    return w / w.sum()


def _filter(images: jax.Array, window: np.ndarray) -> jax.Array:
    """Valid separable filtering of ``[N, H, W, C]`` over H and W, each channel alone."""
    n, h, w, c = images.shape
    planes = jnp.moveaxis(images, -1, 1).reshape(n * c, 1, h, w)
    taps = jnp.asarray(window, images.dtype)
    dims = ("NCHW", "OIHW", "NCHW")
    hp = jax.lax.Precision.HIGHEST
    planes = jax.lax.conv_general_dilated(
        planes, taps.reshape(1, 1, -1, 1), (1, 1), "VALID", dimension_numbers=dims, precision=hp
    )
    planes = jax.lax.conv_general_dilated(
        planes, taps.reshape(1, 1, 1, -1), (1, 1), "VALID", dimension_numbers=dims, precision=hp
    )
    out_h, out_w = planes.shape[-2:]
    return jnp.moveaxis(planes.reshape(n, c, out_h, out_w), 1, -1)


def _luminance_and_contrast_structure(x, y, window, c1, c2):
    """Per-channel means over the valid pixels of l * cs and of cs: ``([N, C], [N, C])``."""
    mu_x, mu_y = _filter(x, window), _filter(y, window)
    var_x = _filter(x * x, window) - mu_x * mu_x
    var_y = _filter(y * y, window) - mu_y * mu_y
    cov = _filter(x * y, window) - mu_x * mu_y
    luminance = (2.0 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    contrast_structure = (2.0 * cov + c2) / (var_x + var_y + c2)
    ssim_map = luminance * contrast_structure
    return jnp.mean(ssim_map, axis=(1, 2)), jnp.mean(contrast_structure, axis=(1, 2))


def _average_pool(images: jax.Array) -> jax.Array:
    """2x2 average pooling, stride 2; an odd edge keeps its last row / column (padding that the
    average does not count, as TensorFlow's 'SAME')."""
    window, strides = (1, 2, 2, 1), (1, 2, 2, 1)
    pad = [(0, 0), (0, images.shape[1] % 2), (0, images.shape[2] % 2), (0, 0)]
    total = jax.lax.reduce_window(images, 0.0, jax.lax.add, window, strides, pad)
    count = jax.lax.reduce_window(jnp.ones_like(images), 0.0, jax.lax.add, window, strides, pad)
    return total / count


def _scale_size(size: int, scale: int) -> int:
    for _ in range(scale):
        size = -(-size // 2)
    return size


def _prepare(where, x, y, filter_size, filter_sigma, num_scales, max_val):
    if not isinstance(filter_size, int) or filter_size < 1:
        raise InputError(f"{where}: filter_size must be a positive integer, got {filter_size!r}.")
    if not filter_sigma > 0:
        raise InputError(f"{where}: filter_sigma must be positive, got {filter_sigma!r}.")
    if not max_val > 0:
        raise InputError(f"{where}: max_val (the dynamic range) must be positive, got {max_val!r}.")
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.shape != y.shape:
        raise InputError(f"{where}: x has shape {x.shape} and y {y.shape}; they must be equal.")
    if x.ndim < 3:
        raise InputError(
            f"{where}: images must be [..., H, W, C] (channels last), got shape {x.shape}; add a "
            "channel axis with x[..., None] for grey images."
        )
    for name, value in (("x", x), ("y", y)):
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise InputError(
                f"{where}: {name} has dtype {value.dtype}; pass floating images (e.g. x / 255)."
            )
    h, w = x.shape[-3:-1]
    smallest = min(_scale_size(h, num_scales - 1), _scale_size(w, num_scales - 1))
    if smallest < filter_size:
        needed = filter_size * 2 ** (num_scales - 1)
        raise InputError(
            f"{where}: images of {h}x{w} are too small for {num_scales} scale(s) with a "
            f"{filter_size}x{filter_size} window: the coarsest scale is {smallest} pixels a side. "
            f"The minimum size is {needed}x{needed}; use fewer scales (weights) or a smaller "
            "filter_size (28x28 images: jaxrobust.metrics.MNIST_MS_SSIM)."
        )
    for name, value in (("x", x), ("y", y)):
        if not is_traced(value) and not bool(jnp.all(jnp.isfinite(value))):
            raise InputError(f"{where}: {name} has NaN or infinite pixels.")
    batch = x.shape[:-3]
    dtype = jnp.result_type(x.dtype, y.dtype)
    flat = (math.prod(batch),) + x.shape[-3:]
    return x.astype(dtype).reshape(flat), y.astype(dtype).reshape(flat), batch


def ssim(
    x,
    y,
    *,
    max_val: float = 1.0,
    filter_size: int = 11,
    filter_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> jax.Array:
    """SSIM of ``[..., H, W, C]`` image pairs, ``[...]`` (module docstring); jittable.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.linspace(0.0, 1.0, 28 * 28).reshape(1, 28, 28, 1)
        >>> float(ssim(x, x)[0]), bool(ssim(x, 1.0 - x)[0] < 0)
        (1.0, True)
    """
    x, y, batch = _prepare("ssim", x, y, filter_size, filter_sigma, 1, max_val)
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    per_channel, _ = _luminance_and_contrast_structure(
        x, y, _window(filter_size, filter_sigma), c1, c2
    )
    return jnp.mean(per_channel, axis=-1).reshape(batch)


def ms_ssim(
    x,
    y,
    *,
    max_val: float = 1.0,
    filter_size: int = 11,
    filter_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    weights: Sequence[float] | None = None,
) -> jax.Array:
    """MS-SSIM of ``[..., H, W, C]`` image pairs, ``[...]``, one scale per weight (default:
    Wang et al.'s five; for 28x28 images pass ``**MNIST_MS_SSIM``); jittable and batched.

    Example:
        >>> import jax
        >>> x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
        >>> same = ms_ssim(x, x, **MNIST_MS_SSIM)
        >>> [round(float(v), 5) for v in same]
        [1.0, 1.0]
    """
    weights = MS_SSIM_WEIGHTS if weights is None else tuple(float(w) for w in weights)
    if not weights or any(not (w >= 0) for w in weights):
        raise InputError(f"ms_ssim: weights must be non-negative numbers, one per scale: {weights}")
    x, y, batch = _prepare("ms_ssim", x, y, filter_size, filter_sigma, len(weights), max_val)
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    window = _window(filter_size, filter_sigma)
    value = jnp.ones(x.shape[:1] + x.shape[-1:], x.dtype)  # [N, C]
    for scale, weight in enumerate(weights):
        per_channel_ssim, per_channel_cs = _luminance_and_contrast_structure(x, y, window, c1, c2)
        last = scale == len(weights) - 1
        term = per_channel_ssim if last else per_channel_cs
        value = value * jnp.power(jax.nn.relu(term), weight)
        if not last:
            x, y = _average_pool(x), _average_pool(y)
    return jnp.mean(value, axis=-1).reshape(batch)

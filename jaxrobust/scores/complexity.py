"""Input complexity (Serra et al. 2020; the dissertation's eq. 4.19): likelihood minus code length.

Likelihood-based generative models give simple inputs (constant or smooth images) a high
likelihood whatever they were trained on. Serra et al. ("Input complexity and
out-of-distribution detection with likelihood-based generative models", ICLR 2020) correct the
model's code length with that of a general-purpose lossless compressor, a "universal" model:

    S(x) = -log2 p(x) / d  -  L(x),       L(x) = 8 |C(x)| / d      (bits per dimension)

with d = H * W * C, -log p(x) the model's negative log-likelihood (here in nats, converted by
1 / (d ln 2)) and |C(x)| the length in bytes of the compressor's encoding of x. S is a log
likelihood ratio of the compressor to the model: larger S = more out-of-distribution.

The compressor is JPEG2000, lossless, from Pillow's JPEG2000 plugin (a binding of OpenJPEG, the
JPEG committee's reference codec, bundled with Pillow's wheels): Pillow is a well-kept package
jaxrobust already gets through matplotlib, and needs nothing else installed. Serra et al. used
OpenCV's ``imencode('.jp2')``, which also calls OpenJPEG; OpenCV is a much larger dependency for
one function. Settings: reversible 5/3 wavelet (``irreversible=False``) in one lossless layer (no
``quality_layers``), so decoding gives back the uint8 image exactly; for RGB images the
reversible colour transform (``mct=1``, as OpenJPEG's own encoder does for three components).
What is written is the JP2 file (container boxes + codestream), as ``'.jp2'`` is in Serra et al.,
and L(x) counts every byte, header included (the digest's default, "as Serra et al."): on 28x28
images the header is a constant offset of about 2 bits/dim, the same for every input, so it
shifts S without changing any ranking. Pixels are round(255 x) of images in [0, 1].

The codec runs on the host, one image at a time (JPEG2000 has no vectorised form). Inside
``jit`` (an evaluation pass) :func:`jpeg2000_bits_per_dim` calls it through
``jax.pure_callback`` (``vmap_method="expand_dims"``: under ``vmap`` the callback gets the
stacked images and codes each), and images outside [0, 1] give NaN there instead of an error;
a batch coded just before is not coded again (a small memo), so the runs of a ``lax.map`` over
runs share one coding.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.arrays import is_traced
from jaxrobust.errors import InputError
from jaxrobust.scores._checks import first_position, real_array

__all__ = ["input_complexity", "jpeg2000_bits_per_dim", "jpeg2000_bytes"]

#: Tolerance on the [0, 1] range of float images (float rounding of a resize).
RANGE_TOLERANCE = 1e-6
_MEMO_SIZE = 4
_memo: OrderedDict[bytes, np.ndarray] = OrderedDict()
_memo_lock = threading.Lock()


def _pillow():
    from PIL import Image, features

    if not features.check("jpg_2000"):
        raise ImportError(
            "Pillow was built without JPEG2000 (OpenJPEG) support, which input complexity "
            "needs; install a Pillow wheel (pip install --force-reinstall pillow), which "
            "bundles OpenJPEG."
        )
    return Image


def _check_shape(images) -> None:
    shape = tuple(np.shape(images))
    if len(shape) != 4 or shape[-1] not in (1, 3) or 0 in shape:
        raise InputError(
            f"images must be a batch [N, H, W, C] with C = 1 (grey) or 3 (RGB), N, H, W >= 1; "
            f"got shape {shape} (add the missing axes, e.g. images[..., None] for grey images)."
        )
    dtype = np.dtype(images.dtype if hasattr(images, "dtype") else np.asarray(images).dtype)
    if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
        raise InputError(
            f"images must be uint8 pixels or floats in [0, 1], got dtype {dtype}; scale integer "
            "pixels to [0, 1] (data.preprocess.scale = True) or pass them as uint8."
        )


def _to_uint8(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 [..., H, W, C], valid [...])``: round(255 x) and whether the image was finite and
    in [0, 1] (uint8 images: unchanged, all valid)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images, np.ones(images.shape[:-3], bool)
    x = images.astype(np.float64)
    ok = np.isfinite(x) & (x >= -RANGE_TOLERANCE) & (x <= 1.0 + RANGE_TOLERANCE)
    valid = ok.all(axis=(-3, -2, -1))
    pixels = np.round(255.0 * np.clip(np.nan_to_num(x), 0.0, 1.0)).astype(np.uint8)
    return pixels, valid


def _refuse_outside_unit_interval(images) -> None:
    x = np.asarray(images)
    if x.dtype == np.uint8:
        return
    bad = ~(np.isfinite(x) & (x >= -RANGE_TOLERANCE) & (x <= 1.0 + RANGE_TOLERANCE))
    if bad.any():
        finite = x[np.isfinite(x)]
        span = f"[{finite.min():.4g}, {finite.max():.4g}]" if finite.size else "no finite values"
        raise InputError(
            f"input complexity needs images with pixels in [0, 1] (uint8 / 255); got "
            f"{int(bad.sum())} pixels that are NaN or outside [0, 1] (first at "
            f"{first_position(bad)}; finite values in {span}). Preprocess with "
            "data.preprocess.scale = True and no mean/std normalisation, or pass the uint8 images."
        )


def _encode(image: np.ndarray) -> bytes:
    """The lossless JP2 file of one uint8 image ``[H, W, C]``."""
    image_cls = _pillow()
    rgb = image.shape[-1] == 3
    picture = image_cls.fromarray(np.ascontiguousarray(image if rgb else image[..., 0]))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG2000", irreversible=False, mct=1 if rgb else 0)
    return buffer.getvalue()


def jpeg2000_bytes(images) -> list[bytes]:
    """The lossless JPEG2000 files (JP2: container and codestream) of ``images`` ``[N, H, W, C]``
    (uint8, or floats in [0, 1] coded as round(255 x)), one ``bytes`` per image, on the host.

    Raises:
      InputError: a bad shape or dtype, or float pixels that are NaN or outside [0, 1].

    Examples:
        >>> import io
        >>> from PIL import Image
        >>> image = np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1)
        >>> (code,) = jpeg2000_bytes(image)
        >>> code[4:8], bool((np.asarray(Image.open(io.BytesIO(code))) == image[0, ..., 0]).all())
        (b'jP  ', True)
    """
    if is_traced(images):
        raise InputError("jpeg2000_bytes runs on the host; use jpeg2000_bits_per_dim under jit.")
    _check_shape(images)
    _refuse_outside_unit_interval(images)
    pixels, _ = _to_uint8(images)
    return [_encode(image) for image in pixels]


def _host_bits_per_dim(images: np.ndarray) -> np.ndarray:
    """8 |JP2(image)| / d for every image ``[..., H, W, C]`` (NaN where not in [0, 1])."""
    images = np.asarray(images)
    digest = hashlib.blake2b(images.tobytes(), digest_size=16)
    digest.update(repr((images.shape, images.dtype.str)).encode())
    memo_key = digest.digest()
    with _memo_lock:
        if memo_key in _memo:
            _memo.move_to_end(memo_key)
            return _memo[memo_key].copy()
    pixels, valid = _to_uint8(images)
    height, width, channels = pixels.shape[-3:]
    flat = pixels.reshape((-1, height, width, channels))
    num_bytes = np.array([len(_encode(image)) for image in flat], np.float64)
    bits = (8.0 * num_bytes / (height * width * channels)).reshape(valid.shape)
    result = np.where(valid, bits, np.nan).astype(np.float32)
    with _memo_lock:
        _memo[memo_key] = result
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)
    return result.copy()


def jpeg2000_bits_per_dim(images) -> np.ndarray | jax.Array:
    """L(x) = 8 * bytes(lossless JPEG2000 file of x) / (H W C), ``[N]`` bits per dimension.

    Args:
      images: ``[N, H, W, C]``, C in {1, 3}: uint8 pixels, or floats in [0, 1] coded as the
        uint8 image round(255 x) (the scaled images a VAE sees).

    Returns:
      float32 ``[N]``: a NumPy array for concrete images; inside ``jit``/``vmap`` a traced array
      computed on the host by ``jax.pure_callback``, NaN for an image with a pixel outside
      [0, 1] or NaN.

    Raises:
      InputError: a bad shape or dtype (always), or (concrete images) pixels outside [0, 1]
        or NaN.

    Examples:
        A constant image codes to far fewer bytes than uniform noise:

        >>> rng = np.random.default_rng(0)
        >>> images = np.stack([np.full((28, 28, 1), 0.5), rng.uniform(size=(28, 28, 1))])
        >>> flat, noisy = jpeg2000_bits_per_dim(images)
        >>> bool(flat < 3.0 < 8.0 < noisy)
        True
        >>> bool(jax.jit(jpeg2000_bits_per_dim)(images)[1] == noisy)  # the same under jit
        True
        >>> jpeg2000_bits_per_dim(images - 0.5)
        Traceback (most recent call last):
        ...
        jaxrobust.errors.InputError: input complexity needs images with pixels in [0, 1] ...
    """
    _check_shape(images)
    if is_traced(images):
        images = jnp.asarray(images)
        if images.dtype != jnp.uint8:
            images = images.astype(jnp.float32)
        result = jax.ShapeDtypeStruct(images.shape[:-3], jnp.float32)
        return jax.pure_callback(_host_bits_per_dim, result, images, vmap_method="expand_dims")
    _refuse_outside_unit_interval(images)
    return _host_bits_per_dim(np.asarray(images))


def input_complexity(log_likelihood, complexity_bpd, num_dims: int) -> jax.Array:
    """S(x) = -log p(x) / (d ln 2) - L(x), bits per dimension, ``[N]`` (eq. 4.19; larger = OOD).

    Args:
      log_likelihood: log p(x) in nats ``[N]`` (e.g. the IWAE estimate).
      complexity_bpd: L(x) ``[N]``, e.g. :func:`jpeg2000_bits_per_dim` of the same images.
      num_dims: d = H * W * C of the images.

    Raises:
      InputError: mismatched shapes, a bad ``num_dims``, or (eagerly) NaN / +inf log-likelihoods
        or NaN / negative code lengths.

    Examples:
        log p(x) = -784 ln 2 nats on a 28x28 image is 1 bit/dim; a 0.25 bits/dim code leaves
        S = 0.75:

        >>> input_complexity(jnp.array([-784 * math.log(2.0)]), jnp.array([0.25]), 784)
        Array([0.75], dtype=float32)
    """
    if isinstance(num_dims, bool) or not isinstance(num_dims, (int, np.integer)) or num_dims < 1:
        raise InputError(f"num_dims must be an int >= 1 (H * W * C), got {num_dims!r}.")
    log_likelihood = real_array("log_likelihood", log_likelihood, what="[N] (nats)")
    complexity_bpd = real_array("complexity_bpd", complexity_bpd, what="[N] (bits/dim)")
    if log_likelihood.ndim != 1 or log_likelihood.shape != complexity_bpd.shape:
        raise InputError(
            f"log_likelihood and complexity_bpd must both be [N], got shapes "
            f"{log_likelihood.shape} and {complexity_bpd.shape}."
        )
    if not is_traced(log_likelihood, complexity_bpd):
        ll, bpd = np.asarray(log_likelihood), np.asarray(complexity_bpd)
        bad_ll = np.isnan(ll) | (ll == np.inf)
        if bad_ll.any():
            raise InputError(
                f"log_likelihood has {int(bad_ll.sum())} NaN/+inf values (first at "
                f"{first_position(bad_ll)}); fix the model's likelihood there."
            )
        bad_bpd = ~(bpd >= 0.0)
        if bad_bpd.any():
            raise InputError(
                f"complexity_bpd has {int(bad_bpd.sum())} NaN or negative values (first at "
                f"{first_position(bad_bpd)}); a code length is >= 0 (NaN: an image outside "
                "[0, 1]; preprocess with data.preprocess.scale = True, no mean/std)."
            )
    return -log_likelihood / (num_dims * math.log(2.0)) - complexity_bpd

"""On-device preprocessing and augmentation of uint8 NHWC image batches.

Order (as torchvision pipelines do it): uint8 -> float in [0, 1] -> optional 28->32 resize ->
(training only) pad-and-random-crop, horizontal flip -> optional normalisation (x - mean) / std.
Zero padding for the crop therefore pads with black pixels, before normalisation.

Checks: settings from a config raise :class:`~jaxrobust.errors.ConfigError`; images of the
wrong rank or dtype raise :class:`~jaxrobust.errors.InputError` (always: shapes and dtypes are
static, so also under ``jit``); with ``scale=True`` the images must be integer pixels in
[0, 255] (uint8): float images (already scaled?) would be divided by 255 a second time. Value
checks (pixels in range, NaN) run on concrete images only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.arrays import is_traced
from jaxrobust.errors import ConfigError, InputError

RESIZE_MODES = ("pad", "bilinear")


class Preprocess(NamedTuple):
    """Preprocessing settings (``config.data.preprocess``).

    Attributes:
      scale: map uint8 [0, 255] to float [0, 1].
      mean, std: per-channel normalisation applied last (None: no normalisation).
      resize_to: target height/width (e.g. 32 for 28x28 datasets), or None.
      resize_mode: ``"pad"`` (zero-pad symmetrically, 28 -> 32 adds 2 pixels each side) or
        ``"bilinear"`` (``jax.image.resize``, antialiased).
      crop_padding: pad-then-random-crop augmentation width in pixels (0: off).
      horizontal_flip: random left-right flips with probability 1/2.

    Examples:
        28x28 images zero-padded to 32x32, then normalised ((x - 0.5) / 0.5, so black is -1):

        >>> import numpy as np
        >>> pre = Preprocess.from_config({"resize_to": 32, "mean": [0.5], "std": [0.5]})
        >>> pre.output_shape((28, 28, 1))
        (32, 32, 1)
        >>> x = pre(np.full((2, 28, 28, 1), 255, np.uint8))
        >>> x.shape, float(x[0, 0, 0, 0]), float(x[0, 2, 2, 0])  # padding, then an image pixel
        ((2, 32, 32, 1), -1.0, 1.0)

        Augmentation (random crops and flips) runs only in training, with a key:

        >>> flip = Preprocess(horizontal_flip=True)
        >>> images = np.arange(4, dtype=np.uint8).reshape(1, 1, 4, 1) * 85  # one 1x4 image
        >>> (flip(images) * 255).round().ravel().tolist()  # evaluation: unchanged
        [0.0, 85.0, 170.0, 255.0]
        >>> flip(images, train=True)
        Traceback (most recent call last):
        ...
        jaxrobust.errors.InputError: Training-time augmentation needs a random key: pass key=...
        >>> Preprocess.from_config({"resize": 32})
        Traceback (most recent call last):
        ...
        jaxrobust.errors.ConfigError: Unknown preprocessing option(s) ['resize']; known: ...

        Float images where uint8 pixels are expected are refused, not scaled twice:

        >>> Preprocess()(np.full((1, 2, 2, 1), 0.5, np.float32))
        Traceback (most recent call last):
        ...
        jaxrobust.errors.InputError: Preprocess(scale=True) maps uint8 pixels [0, 255] to ...
    """

    scale: bool = True
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    resize_to: int | None = None
    resize_mode: str = "pad"
    crop_padding: int = 0
    horizontal_flip: bool = False

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> Preprocess:
        if cfg is not None and not isinstance(cfg, Mapping):
            raise ConfigError(f"preprocess must be a mapping of options, got {cfg!r}.")
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(cls._fields)
        if unknown:
            raise ConfigError(
                f"Unknown preprocessing option(s) {sorted(unknown)}; known: {list(cls._fields)}."
            )
        for name in ("mean", "std"):
            value = cfg.get(name)
            if value is None:
                continue
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise ConfigError(
                    f"{name} must be a list of per-channel numbers, e.g. [0.5], got {value!r}."
                )
            try:
                cfg[name] = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be a list of numbers, got {value!r}.") from None
            if not cfg[name] or not all(math.isfinite(v) for v in cfg[name]):
                raise ConfigError(
                    f"{name} must be a non-empty list of finite numbers, got {value!r}."
                )
        for name in ("scale", "horizontal_flip"):
            if name in cfg and not isinstance(cfg[name], (bool, np.bool_)):
                raise ConfigError(f"{name} must be True or False, got {cfg[name]!r}.")
        for name, minimum in (("resize_to", 1), ("crop_padding", 0)):
            value = cfg.get(name, cls._field_defaults[name])
            if value is None and name == "resize_to":
                continue
            integer = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            if not integer or value < minimum:
                raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.")
        out = cls(**cfg)
        if out.resize_mode not in RESIZE_MODES:
            raise ConfigError(
                f"resize_mode must be one of {RESIZE_MODES}, got {out.resize_mode!r}."
            )
        if (out.mean is None) != (out.std is None):
            raise ConfigError("Give both mean and std for normalisation, or neither.")
        if out.std is not None and min(out.std) <= 0:
            raise ConfigError(f"std must be positive, got {out.std}.")
        if (
            out.mean is not None
            and len(out.mean) != len(out.std)
            and 1
            not in (
                len(out.mean),
                len(out.std),
            )
        ):
            raise ConfigError(
                f"mean has {len(out.mean)} entries but std {len(out.std)}; give one per channel "
                "(or one for all)."
            )
        return out

    def output_shape(self, image_shape: Sequence[int]) -> tuple[int, int, int]:
        """Shape of one preprocessed image, e.g. (28, 28, 1) -> (32, 32, 1) with resize_to=32.

        Examples:
            >>> Preprocess(resize_to=32).output_shape((28, 28, 1))
            (32, 32, 1)
            >>> Preprocess(resize_to=24).output_shape((28, 28, 1))
            Traceback (most recent call last):
            ...
            jaxrobust.errors.InputError: Cannot zero-pad 28x28 images down to 24; use ...
        """
        if len(image_shape) != 3:
            raise InputError(
                f"image_shape must be (height, width, channels), got {tuple(image_shape)}."
            )
        height, width, channels = image_shape
        if self.resize_to is not None:
            if self.resize_mode == "pad" and (height > self.resize_to or width > self.resize_to):
                raise InputError(
                    f"Cannot zero-pad {height}x{width} images down to {self.resize_to}; "
                    "use resize_mode='bilinear'."
                )
            height = width = self.resize_to
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None and len(values) not in (1, channels):
                raise InputError(
                    f"{name} has {len(values)} entries for {channels}-channel images; give one "
                    f"per channel ({channels}) or one for all."
                )
        return height, width, channels

    def __call__(
        self, images: jax.Array, key: jax.Array | None = None, train: bool = False
    ) -> jax.Array:
        """Preprocess a uint8 batch ``[B, H, W, C]``; augmentation needs ``train`` and ``key``."""
        images = self._check_images(images)
        x = images.astype(jnp.float32)
        if self.scale:
            x = x / 255.0
        x = self._resize(x)
        augment = train and (self.crop_padding > 0 or self.horizontal_flip)
        if augment:
            if key is None:
                raise InputError(
                    "Training-time augmentation needs a random key: pass key=... (or "
                    "train=False for evaluation)."
                )
            keys = jax.random.split(key, x.shape[0])
            x = jax.vmap(self._augment_one)(keys, x)
        if self.mean is not None:
            x = (x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(self.std, jnp.float32)
        return x

    def _check_images(self, images) -> jax.Array:
        """Images ``[B, H, W, C]``: integer pixels in [0, 255] when ``scale``, finite floats
        otherwise (values checked eagerly only)."""
        if not hasattr(images, "dtype"):
            try:
                images = np.asarray(images)
            except (TypeError, ValueError) as err:
                raise InputError(f"images must be an array [B, H, W, C]: {err}") from None
        if images.ndim != 4:
            raise InputError(
                f"images must be a batch [B, H, W, C] (channels last), got shape "
                f"{tuple(images.shape)}; add the missing axes (e.g. images[..., None] for "
                "grey images, images[None] for one image)."
            )
        dtype = images.dtype
        integer = jnp.issubdtype(dtype, jnp.integer) and dtype != np.bool_
        if self.scale and not integer:
            raise InputError(
                f"Preprocess(scale=True) maps uint8 pixels [0, 255] to [0, 1], got {dtype} "
                "images (already scaled?); pass the uint8 images, or set preprocess.scale=False "
                "for float inputs."
            )
        if not integer and not jnp.issubdtype(dtype, jnp.floating):
            raise InputError(f"images must be uint8 or float, got dtype {dtype}.")
        self.output_shape(tuple(images.shape[1:]))  # mean/std fit the channels; pad fits
        if not is_traced(images):
            values = np.asarray(images)
            if integer and self.scale and values.size and (values.min() < 0 or values.max() > 255):
                raise InputError(
                    f"images must be pixels in [0, 255], got values in [{values.min()}, "
                    f"{values.max()}]; convert them to uint8 first."
                )
            if not integer and not np.isfinite(values).all():
                bad = int((~np.isfinite(values)).sum())
                raise InputError(f"images have {bad} NaN/inf values; fix or drop those images.")
        return jnp.asarray(images)

    def _resize(self, x: jax.Array) -> jax.Array:
        if self.resize_to is None:
            return x
        batch, height, width, channels = x.shape
        size = self.resize_to
        if (height, width) == (size, size):
            return x
        if self.resize_mode == "pad":
            top, left = (size - height) // 2, (size - width) // 2
            pads = ((0, 0), (top, size - height - top), (left, size - width - left), (0, 0))
            return jnp.pad(x, pads)
        return jax.image.resize(x, (batch, size, size, channels), method="bilinear")

    def _augment_one(self, key: jax.Array, image: jax.Array) -> jax.Array:
        crop_key, flip_key = jax.random.split(key)
        if self.crop_padding > 0:
            p = self.crop_padding
            height, width, channels = image.shape
            padded = jnp.pad(image, ((p, p), (p, p), (0, 0)))
            top, left = jax.random.randint(crop_key, (2,), 0, 2 * p + 1)
            image = jax.lax.dynamic_slice(padded, (top, left, 0), (height, width, channels))
        if self.horizontal_flip:
            image = jnp.where(jax.random.bernoulli(flip_key), image[:, ::-1, :], image)
        return image

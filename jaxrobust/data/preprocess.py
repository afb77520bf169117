"""On-device preprocessing and augmentation of uint8 NHWC image batches.

Order (as torchvision pipelines do it): uint8 -> float in [0, 1] -> optional 28->32 resize ->
(training only) pad-and-random-crop, horizontal flip -> optional normalisation (x - mean) / std.
Zero padding for the crop therefore pads with black pixels, before normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

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
        ValueError: Training-time augmentation needs a random key.
        >>> Preprocess.from_config({"resize": 32})
        Traceback (most recent call last):
        ...
        ValueError: Unknown preprocessing option(s) ['resize']; known: ['scale', 'mean', ...
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
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(cls._fields)
        if unknown:
            raise ValueError(
                f"Unknown preprocessing option(s) {sorted(unknown)}; known: {list(cls._fields)}."
            )
        for name in ("mean", "std"):
            if cfg.get(name) is not None:
                cfg[name] = tuple(float(v) for v in cfg[name])
        out = cls(**cfg)
        if out.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {out.resize_mode!r}.")
        if (out.mean is None) != (out.std is None):
            raise ValueError("Give both mean and std for normalisation, or neither.")
        if out.std is not None and min(out.std) <= 0:
            raise ValueError(f"std must be positive, got {out.std}.")
        return out

    def output_shape(self, image_shape: Sequence[int]) -> tuple[int, int, int]:
        """Shape of one preprocessed image, e.g. (28, 28, 1) -> (32, 32, 1) with resize_to=32.

        Examples:
            >>> Preprocess(resize_to=32).output_shape((28, 28, 1))
            (32, 32, 1)
            >>> Preprocess(resize_to=24).output_shape((28, 28, 1))
            Traceback (most recent call last):
            ...
            ValueError: Cannot zero-pad 28x28 images down to 24; use resize_mode='bilinear'.
        """
        height, width, channels = image_shape
        if self.resize_to is not None:
            if self.resize_mode == "pad" and (height > self.resize_to or width > self.resize_to):
                raise ValueError(
                    f"Cannot zero-pad {height}x{width} images down to {self.resize_to}; "
                    "use resize_mode='bilinear'."
                )
            height = width = self.resize_to
        if self.mean is not None and len(self.mean) not in (1, channels):
            raise ValueError(f"mean has {len(self.mean)} entries for {channels}-channel images.")
        return height, width, channels

    def __call__(
        self, images: jax.Array, key: jax.Array | None = None, train: bool = False
    ) -> jax.Array:
        """Preprocess a uint8 batch ``[B, H, W, C]``; augmentation needs ``train`` and ``key``."""
        x = images.astype(jnp.float32)
        if self.scale:
            x = x / 255.0
        x = self._resize(x)
        augment = train and (self.crop_padding > 0 or self.horizontal_flip)
        if augment:
            if key is None:
                raise ValueError("Training-time augmentation needs a random key.")
            keys = jax.random.split(key, x.shape[0])
            x = jax.vmap(self._augment_one)(keys, x)
        if self.mean is not None:
            x = (x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(self.std, jnp.float32)
        return x

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

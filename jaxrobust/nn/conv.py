"""Small convolutional networks for 28x28 / 32x32 images (NHWC)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxrobust.nn.layers import Conv, ConvTranspose, PatchConv, max_pool_2x2
from jaxrobust.nn.precision import as_float32


class ConvEncoder(nn.Module):
    """Strided 4x4 convolutions + ReLU, then a dense head of ``head_width`` raw features.

    ``head_width`` defaults to ``2 * latent_dim`` (the diagonal Gaussian's ``(mu, log_var)``);
    the latent family (:mod:`jaxrobust.distributions.latent`) maps the head to its parameters.

    Examples:
        Two stride-2 convolutions take 28x28 to 7x7x64 = 3136 features:

        >>> import jax
        >>> encoder = ConvEncoder(latent_dim=16)
        >>> x = jnp.zeros((2, 28, 28, 1))
        >>> variables = jax.eval_shape(encoder.init, jax.random.key(0), x)
        >>> variables["params"]["Dense_0"]["kernel"].shape
        (3136, 32)
        >>> jax.eval_shape(encoder.apply, variables, x).shape  # head: 2 * latent_dim
        (2, 32)
    """

    latent_dim: int
    features: Sequence[int] = (32, 64)
    head_width: int | None = None
    dtype: Any = None  # compute dtype (None: float32); the head is returned in float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        del train  # no batch statistics; accepted for the common encoder interface
        h = x
        for width in self.features:
            conv = Conv(width, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype)
            h = nn.relu(conv(h))
        h = h.reshape(h.shape[:-3] + (-1,))
        return as_float32(nn.Dense(self.head_width or 2 * self.latent_dim, dtype=self.dtype)(h))


class ConvDecoder(nn.Module):
    """Dense layer to a ``(H / 2^L, W / 2^L, features[0])`` map, then transposed 4x4 convs.

    Returns unconstrained per-pixel parameters of shape ``(H, W, out_channels)`` (e.g. Bernoulli
    logits); ``out_channels`` defaults to the image channels ``image_shape[-1]``.

    Examples:
        >>> import jax
        >>> decoder = ConvDecoder(image_shape=(28, 28, 1), out_channels=2)
        >>> z = jnp.zeros((5, 16))
        >>> variables = jax.eval_shape(decoder.init, jax.random.key(0), z)
        >>> variables["params"]["Dense_0"]["kernel"].shape  # to a 7x7x64 map
        (16, 3136)
        >>> jax.eval_shape(decoder.apply, variables, z).shape
        (5, 28, 28, 2)
    """

    image_shape: Sequence[int]
    features: Sequence[int] = (64, 32)
    out_channels: int | None = None
    dtype: Any = None  # compute dtype (None: float32); the output is returned in float32

    def check_image_shape(self) -> None:
        """Raise ``ValueError`` unless H and W are divisible by ``2 ** len(features)``.

        Examples:
            >>> ConvDecoder(image_shape=(32, 32, 3)).check_image_shape()
            >>> ConvDecoder(image_shape=(30, 30, 3)).check_image_shape()
            Traceback (most recent call last):
            ...
            ValueError: ConvDecoder: image size 30x30 is not divisible by 4 (2 ** number of ...
        """
        height, width, _ = self.image_shape
        scale = 2 ** len(self.features)
        if height % scale or width % scale:
            raise ValueError(
                f"ConvDecoder: image size {height}x{width} is not divisible by {scale} "
                f"(2 ** number of upsampling stages {len(self.features)}); it supports "
                f"(H, W, C) with H and W multiples of {scale}."
            )

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        del train  # no batch statistics; accepted for the common decoder interface
        self.check_image_shape()
        height, width, channels = self.image_shape
        out_channels = channels if self.out_channels is None else self.out_channels
        scale = 2 ** len(self.features)
        dense = nn.Dense(height // scale * width // scale * self.features[0], dtype=self.dtype)
        h = nn.relu(dense(z))
        h = h.reshape(z.shape[:-1] + (height // scale, width // scale, self.features[0]))
        for width_out in self.features[1:]:
            up = ConvTranspose(width_out, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype)
            h = nn.relu(up(h))
        out = ConvTranspose(out_channels, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype)
        return as_float32(out(h))


class SmallCNN(nn.Module):
    """Two 3x3 conv + max-pool stages and a two-layer MLP head; returns logits (or, with
    ``return_features``, the ``hidden`` penultimate features).

    Examples:
        Two 2x2 poolings take 28x28 to 7x7x64 = 3136 features:

        >>> import jax
        >>> model = SmallCNN(num_classes=10)
        >>> x = jnp.zeros((4, 28, 28, 1))
        >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
        >>> variables["params"]["Dense_0"]["kernel"].shape
        (3136, 128)
        >>> jax.eval_shape(model.apply, variables, x).shape
        (4, 10)
        >>> jax.eval_shape(lambda v, x: model.apply(v, x, return_features=True), variables, x).shape
        (4, 128)
    """

    num_classes: int
    features: Sequence[int] = (32, 64)
    hidden: int = 128
    dtype: Any = None  # compute dtype (None: float32); logits and features returned in float32

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, train: bool = False, return_features: bool = False
    ) -> jnp.ndarray:
        h = x
        for width in self.features:
            h = nn.relu(Conv(width, (3, 3), padding="SAME", dtype=self.dtype)(h))
            h = max_pool_2x2(h)  # = nn.max_pool(h, (2, 2), strides=(2, 2)), faster gradient
        h = h.reshape(h.shape[:-3] + (-1,))
        h = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(h))
        if return_features:
            return as_float32(h)
        return as_float32(nn.Dense(self.num_classes, dtype=self.dtype)(h))


class BasicCNN(nn.Module):
    """CleverHans 3.1's ``ModelBasicCNN``, the "default" victim classifier of the dissertation's
    Chapter 5 (seed 001): Conv 8x8 / 2 SAME 64, Conv 6x6 / 2 VALID 128, Conv 5x5 / 1 VALID 128,
    ReLU after each, flatten, Dense ``num_classes``. On 28x28 inputs the maps are 14, 5 and 1
    pixels a side, so the features are 128 wide. The convolutions are :class:`PatchConv`
    (the same function as ``flax.linen.Conv``, 5x faster to train on CPU for these kernels).

    Example:
        >>> import jax
        >>> model, x = BasicCNN(num_classes=10), jnp.zeros((2, 28, 28, 1))
        >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
        >>> sum(v.size for v in jax.tree.leaves(variables)), jax.eval_shape(model.apply, variables, x).shape
        (710218, (2, 10))
    """  # noqa: E501

    num_classes: int
    filters: int = 64
    dtype: Any = None

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, train: bool = False, return_features: bool = False
    ) -> jnp.ndarray:
        f = self.filters
        h = nn.relu(PatchConv(f, 8, 2, "SAME", dtype=self.dtype)(x))
        h = nn.relu(PatchConv(2 * f, 6, 2, "VALID", dtype=self.dtype)(h))
        h = nn.relu(PatchConv(2 * f, 5, 1, "VALID", dtype=self.dtype)(h))
        h = h.reshape(h.shape[:-3] + (-1,))
        if return_features:
            return as_float32(h)
        return as_float32(nn.Dense(self.num_classes, dtype=self.dtype)(h))

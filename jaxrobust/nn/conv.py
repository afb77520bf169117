"""Small convolutional networks for 28x28 / 32x32 images (NHWC)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxrobust.nn.layers import Conv, ConvTranspose, max_pool_2x2


class ConvEncoder(nn.Module):
    """Strided 4x4 convolutions + ReLU, then a dense layer to ``2 * latent_dim``.

    Returns ``(mu, log_var)`` of the diagonal Gaussian q(z|x), each ``[..., latent_dim]``.
    """

    latent_dim: int
    features: Sequence[int] = (32, 64)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> tuple[jnp.ndarray, jnp.ndarray]:
        del train  # no batch statistics; accepted for the common encoder interface
        h = x
        for width in self.features:
            h = nn.relu(Conv(width, (4, 4), strides=(2, 2), padding="SAME")(h))
        h = h.reshape(h.shape[:-3] + (-1,))
        stats = nn.Dense(2 * self.latent_dim)(h)
        mu, log_var = jnp.split(stats, 2, axis=-1)
        return mu, log_var


class ConvDecoder(nn.Module):
    """Dense layer to a ``(H / 2^L, W / 2^L, features[0])`` map, then transposed 4x4 convs.

    Returns unconstrained per-pixel parameters of shape ``(H, W, out_channels)`` (e.g. Bernoulli
    logits); ``out_channels`` defaults to the image channels ``image_shape[-1]``.
    """

    image_shape: Sequence[int]
    features: Sequence[int] = (64, 32)
    out_channels: int | None = None

    def check_image_shape(self) -> None:
        """Raise ``ValueError`` unless H and W are divisible by ``2 ** len(features)``."""
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
        h = nn.relu(nn.Dense(height // scale * width // scale * self.features[0])(z))
        h = h.reshape(z.shape[:-1] + (height // scale, width // scale, self.features[0]))
        for width_out in self.features[1:]:
            h = nn.relu(ConvTranspose(width_out, (4, 4), strides=(2, 2), padding="SAME")(h))
        return ConvTranspose(out_channels, (4, 4), strides=(2, 2), padding="SAME")(h)


class SmallCNN(nn.Module):
    """Two 3x3 conv + max-pool stages and a two-layer MLP head; returns logits."""

    num_classes: int
    features: Sequence[int] = (32, 64)
    hidden: int = 128

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        h = x
        for width in self.features:
            h = nn.relu(Conv(width, (3, 3), padding="SAME")(h))
            h = max_pool_2x2(h)  # = nn.max_pool(h, (2, 2), strides=(2, 2)), faster gradient
        h = h.reshape(h.shape[:-3] + (-1,))
        h = nn.relu(nn.Dense(self.hidden)(h))
        return nn.Dense(self.num_classes)(h)

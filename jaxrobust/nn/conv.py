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
    def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        h = x
        for width in self.features:
            h = nn.relu(Conv(width, (4, 4), strides=(2, 2), padding="SAME")(h))
        h = h.reshape(h.shape[:-3] + (-1,))
        stats = nn.Dense(2 * self.latent_dim)(h)
        mu, log_var = jnp.split(stats, 2, axis=-1)
        return mu, log_var


class ConvDecoder(nn.Module):
    """Dense layer to a ``(H / 2^L, W / 2^L, features[0])`` map, then transposed 4x4 convs.

    Returns unconstrained per-pixel parameters of shape ``image_shape`` (e.g. Bernoulli logits).
    """

    image_shape: Sequence[int]
    features: Sequence[int] = (64, 32)

    @nn.compact
    def __call__(self, z: jnp.ndarray) -> jnp.ndarray:
        height, width, channels = self.image_shape
        scale = 2 ** len(self.features)
        if height % scale or width % scale:
            raise ValueError(
                f"ConvDecoder: image size {height}x{width} is not divisible by {scale} "
                f"(2 ** number of upsampling stages {len(self.features)})."
            )
        h = nn.relu(nn.Dense(height // scale * width // scale * self.features[0])(z))
        h = h.reshape(z.shape[:-1] + (height // scale, width // scale, self.features[0]))
        for width_out in self.features[1:]:
            h = nn.relu(ConvTranspose(width_out, (4, 4), strides=(2, 2), padding="SAME")(h))
        return ConvTranspose(channels, (4, 4), strides=(2, 2), padding="SAME")(h)


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

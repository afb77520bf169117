"""VAE encoder/decoder pairs of the seed documents, behind one interface and a name registry.

Every encoder is ``__call__(x, train=False) -> head [..., head_width]`` for NHWC images ``x`` in
[0, 1] (any leading batch axes): raw features that a latent family
(:mod:`jaxrobust.distributions.latent`) maps to the parameters of q(z|x); ``head_width``
defaults to ``2 * latent_dim``, the diagonal Gaussian's ``(mu, log_var)``. Every
decoder is ``__call__(z, train=False) -> [..., H, W, out_channels]`` raw (unconstrained)
outputs; the observation model decides ``out_channels`` (C for Bernoulli logits or Gaussian
means, 2C for mean + log-scale) and interprets them. Architectures with batch normalisation
use batch statistics when ``train`` is true (apply with ``mutable=["batch_stats"]``) and the
running averages otherwise.

Registry (:data:`VAE_NETWORKS`, built by :func:`make_vae_networks`):

- ``"ch3_gray"``: Tables 3.5/3.6 of the dissertation (seed 001, Ch. 3, Bayesian VAEs), 28x28
  grayscale. :class:`Ch3GrayEncoder`, :class:`Ch3GrayDecoder`.
- ``"ch3_rgb"``: Tables 3.7/3.8 (same seed), 32x32 colour. :class:`Ch3RGBEncoder`,
  :class:`Ch3RGBDecoder`.
- ``"dcgan"``: the DCGAN-style colour pair of the negative-sampling paper (seed 004, appendix
  A.2.2). :class:`DCGANEncoder`, :class:`DCGANDecoder`.
- ``"mlp"``: fully connected pair. :class:`MLPEncoder`, :class:`MLPDecoder`.
- ``"conv"``: :class:`jaxrobust.nn.conv.ConvEncoder` / :class:`~jaxrobust.nn.conv.ConvDecoder`.
- ``"lipschitz_mlp"``: the Lipschitz VAE of the dissertation (seed 001, Ch. 4.4, Algorithm 1):
  :class:`LipschitzEncoder`, :class:`LipschitzDecoder`, inf-norm Lipschitz MLPs
  (:class:`jaxrobust.nn.lipschitz.LipschitzMLP`) with GroupSort and no biases; option
  ``projection`` ("l1_ball", Algorithm 1, or "rescale") for both nets.

Not provided: the grayscale encoder of Rosca, Lakshminarayanan & Mohamed (2018), "Distribution
matching in variational inference" (arXiv:1802.06847), appendix K table 4, which the
negative-sampling paper (seed 004, appendix A.2.1) uses for 28x28 grayscale images. Its table
could not be found in the sources available while writing this module (only citations of the
paper turned up), so there is no ``"rosca"`` entry; the grayscale experiments use
``"ch3_gray"`` instead. Add it here if the table becomes available.

Padding conventions. PyTorch's ``Conv2d(k=3, padding=1)`` is explicit padding ``(1, 1)``
(Flax's ``"SAME"`` pads a stride-2 convolution of an even input ``(0, 1)`` instead, a different
function), so the 3x3 layers below use explicit padding. A transposed convolution here is
``conv(dilate(x, s), W; pads)`` with an unflipped kernel (:class:`~jaxrobust.nn.layers.
ConvTranspose`); ``pads = (1, 1)`` for stride 1 and ``(1, 2)`` for stride 2 are PyTorch's
``ConvTranspose2d(k=3, padding=1[, output_padding=1])`` with the kernel flipped, i.e. the same
family of functions, with output size ``s * n``.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxrobust.nn.conv import ConvDecoder, ConvEncoder
from jaxrobust.nn.layers import Conv, ConvTranspose, max_pool_2x2
from jaxrobust.nn.lipschitz import LipschitzMLP
from jaxrobust.nn.precision import as_float32

#: PyTorch ``BatchNorm2d`` default (running <- 0.9 running + 0.1 batch); Flax's default is 0.99.
BN_MOMENTUM = 0.9

_PAD1 = ((1, 1), (1, 1))  # PyTorch padding=1 for a 3x3 conv / stride-1 transposed conv
_PAD_UP2 = ((1, 2), (1, 2))  # 3x3 stride-2 transposed conv, output 2n (PyTorch output_padding=1)


def _flatten(h: jnp.ndarray) -> jnp.ndarray:
    return h.reshape(h.shape[:-3] + (-1,))


def _split_shape(image_shape: Sequence[int], name: str) -> tuple[int, int, int]:
    try:
        shape = tuple(operator.index(d) for d in image_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError(
            f"{name}: image_shape must be (H, W, C) positive ints, got {image_shape!r}."
        )
    return shape


def _out_channels(decoder: Any) -> int:
    channels = decoder.image_shape[-1]
    return channels if decoder.out_channels is None else decoder.out_channels


def _batch_norm(
    train: bool, momentum: float, name: str | None = None, dtype: Any = None
) -> nn.BatchNorm:
    # statistics are reduced in float32 whatever ``dtype`` (Flax's force_float32_reductions)
    return nn.BatchNorm(use_running_average=not train, momentum=momentum, name=name, dtype=dtype)


def _mu_log_sigma_head(
    h: jnp.ndarray, latent_dim: int, head_width: int | None, dtype: Any = None
) -> jnp.ndarray:
    """Linear ``mu`` and linear ``log_sigma`` (the dissertation's parametrisation), called inside
    a compact method; returns ``concat(mu, 2 * log_sigma)`` (``head_width - latent_dim`` scale
    features, doubled: for the Gaussian family the second half is ``log_var = 2 log sigma``),
    in float32 whatever the compute ``dtype``."""
    width = head_width or 2 * latent_dim
    mu = as_float32(nn.Dense(latent_dim, name="mu", dtype=dtype)(h))
    log_sigma = as_float32(nn.Dense(width - latent_dim, name="log_sigma", dtype=dtype)(h))
    return jnp.concatenate([mu, 2.0 * log_sigma], axis=-1)


# --------------------------------------------------------------------------------------------
# Chapter 3, grayscale (Tables 3.5 / 3.6)
# --------------------------------------------------------------------------------------------


class Ch3GrayEncoder(nn.Module):
    """Table 3.5: Conv3x3/1 32 - ReLU - Conv3x3/1 16 - ReLU - MaxPool 2x2 - Linear mu, log sigma.

    VALID padding (the table's 28 -> 26 -> 24 -> 12 sizes): 28x28xC -> 26x26x32 -> 24x24x16 ->
    12x12x16 = 2304 features. The dissertation's encoder outputs log sigma; this one returns
    ``log_var = 2 log sigma``.

    Examples:
        >>> import jax
        >>> encoder, x = Ch3GrayEncoder(latent_dim=8), jnp.zeros((2, 28, 28, 1))
        >>> variables = jax.eval_shape(encoder.init, jax.random.key(0), x)
        >>> variables["params"]["mu"]["kernel"].shape  # 12 * 12 * 16 features
        (2304, 8)
        >>> jax.eval_shape(encoder.apply, variables, x).shape  # (mu, log_var)
        (2, 16)
    """

    latent_dim: int
    head_width: int | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        del train
        h = nn.relu(Conv(32, (3, 3), padding="VALID", dtype=self.dtype)(x))
        h = nn.relu(Conv(16, (3, 3), padding="VALID", dtype=self.dtype)(h))
        h = max_pool_2x2(h)
        return _mu_log_sigma_head(_flatten(h), self.latent_dim, self.head_width, self.dtype)


class Ch3GrayDecoder(nn.Module):
    """Table 3.6, read consistently: Linear 16*12*12 - ReLU - reshape 12x12x16 - nearest 2x
    upsample (24) - TConv3x3/1 32 (VALID, 26) - ReLU - TConv3x3/1 out (VALID, 28).

    The printed table has two inconsistencies, resolved here: the linear layer's width is
    printed 2306 (not a 16-channel map; 16 * 12 * 12 = 2304 mirrors the encoder), and a
    "Max pooling 2D" row sits between the upsampling and the first transposed convolution
    (pooling there would give 12 -> 24 -> 12 -> 16 -> 18, not 28; it is dropped).
    For an H x W image the map is 16 x (H-4)/2 x (W-4)/2, so H, W must be even and >= 6.

    Examples:
        >>> import jax
        >>> decoder, z = Ch3GrayDecoder(image_shape=(28, 28, 1), out_channels=2), jnp.zeros((3, 8))
        >>> variables = jax.eval_shape(decoder.init, jax.random.key(0), z)
        >>> variables["params"]["Dense_0"]["kernel"].shape  # to a 12x12x16 map
        (8, 2304)
        >>> jax.eval_shape(decoder.apply, variables, z).shape
        (3, 28, 28, 2)
        >>> Ch3GrayDecoder(image_shape=(27, 27, 1)).check_image_shape()
        Traceback (most recent call last):
        ...
        ValueError: ch3_gray supports image shapes (H, W, C) with H and W even and >= 6 ...
    """

    image_shape: Sequence[int]
    out_channels: int | None = None
    dtype: Any = None

    def check_image_shape(self) -> None:
        height, width, _ = _split_shape(self.image_shape, "Ch3GrayDecoder")
        if height % 2 or width % 2 or height < 6 or width < 6:
            raise ValueError(
                f"ch3_gray supports image shapes (H, W, C) with H and W even and >= 6 "
                f"(28x28 in the dissertation), got {tuple(self.image_shape)}."
            )

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        del train
        self.check_image_shape()
        height, width, _ = self.image_shape
        map_shape = ((height - 4) // 2, (width - 4) // 2, 16)
        h = nn.relu(nn.Dense(map_shape[0] * map_shape[1] * map_shape[2], dtype=self.dtype)(z))
        h = h.reshape(z.shape[:-1] + map_shape)
        h = jnp.repeat(jnp.repeat(h, 2, axis=-3), 2, axis=-2)  # nearest-neighbour upsampling
        h = nn.relu(ConvTranspose(32, (3, 3), padding="VALID", dtype=self.dtype)(h))
        out = ConvTranspose(_out_channels(self), (3, 3), padding="VALID", dtype=self.dtype)
        return as_float32(out(h))


# --------------------------------------------------------------------------------------------
# Chapter 3, colour (Tables 3.7 / 3.8)
# --------------------------------------------------------------------------------------------


class Ch3RGBEncoder(nn.Module):
    """Table 3.7 (3x3 kernels, padding 1, no conv bias, ReLU after each batch norm):

    Conv16/1-BN - Conv32/2-BN - Conv32/1-BN - Conv16/2-BN - flatten (32x32 -> 8x8x16 = 1024) -
    Linear 512-BN - Linear mu, Linear log sigma. Linear layers keep their bias (the table removes
    it from convolutions only). Returns ``log_var = 2 log sigma``.

    Examples:
        >>> import jax
        >>> encoder, x = Ch3RGBEncoder(latent_dim=8), jnp.zeros((2, 32, 32, 3))
        >>> variables = jax.eval_shape(encoder.init, jax.random.key(0), x)
        >>> sorted(variables), variables["params"]["Dense_0"]["kernel"].shape  # 8 * 8 * 16 = 1024
        (['batch_stats', 'params'], (1024, 512))
        >>> jax.eval_shape(encoder.apply, variables, x).shape
        (2, 16)
    """

    latent_dim: int
    bn_momentum: float = BN_MOMENTUM
    head_width: int | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        h = x
        for features, stride in ((16, 1), (32, 2), (32, 1), (16, 2)):
            conv = Conv(
                features,
                (3, 3),
                strides=(stride, stride),
                padding=_PAD1,
                use_bias=False,
                dtype=self.dtype,
            )
            h = nn.relu(_batch_norm(train, self.bn_momentum, dtype=self.dtype)(conv(h)))
        h = nn.Dense(512, dtype=self.dtype)(_flatten(h))
        h = nn.relu(_batch_norm(train, self.bn_momentum, dtype=self.dtype)(h))
        return _mu_log_sigma_head(h, self.latent_dim, self.head_width, self.dtype)


class Ch3RGBDecoder(nn.Module):
    """Table 3.8 (3x3 kernels, padding 1, no conv bias, ReLU after each batch norm):

    Linear 512-BN - Linear 1024-BN - reshape 8x8x16 - TConv32/2-BN - TConv32/1-BN - TConv16/2-BN -
    TConv out/1 (no bias). The table leaves the reshape implicit: 1024 = 16 x 8 x 8 mirrors the
    encoder's flatten and is the only split whose two stride-2 layers reach 32x32. For an H x W
    image the second linear layer has 16 * (H/4) * (W/4) units (1024 at 32x32).

    Examples:
        >>> import jax
        >>> decoder, z = Ch3RGBDecoder(image_shape=(32, 32, 3), out_channels=6), jnp.zeros((2, 8))
        >>> variables = jax.eval_shape(decoder.init, jax.random.key(0), z)
        >>> variables["params"]["Dense_1"]["kernel"].shape
        (512, 1024)
        >>> jax.eval_shape(decoder.apply, variables, z).shape
        (2, 32, 32, 6)
    """

    image_shape: Sequence[int]
    out_channels: int | None = None
    bn_momentum: float = BN_MOMENTUM
    dtype: Any = None

    def check_image_shape(self) -> None:
        height, width, _ = _split_shape(self.image_shape, "Ch3RGBDecoder")
        if height % 4 or width % 4:
            raise ValueError(
                f"ch3_rgb supports image shapes (H, W, C) with H and W multiples of 4 "
                f"(32x32x3 in the dissertation), got {tuple(self.image_shape)}."
            )

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        self.check_image_shape()
        height, width, _ = self.image_shape
        map_shape = (height // 4, width // 4, 16)
        dtype = self.dtype
        h = nn.Dense(512, dtype=dtype)(z)
        h = nn.relu(_batch_norm(train, self.bn_momentum, dtype=dtype)(h))
        h = nn.Dense(map_shape[0] * map_shape[1] * map_shape[2], dtype=dtype)(h)
        h = nn.relu(_batch_norm(train, self.bn_momentum, dtype=dtype)(h))
        h = h.reshape(z.shape[:-1] + map_shape)
        for features, stride in ((32, 2), (32, 1), (16, 2)):
            pads = _PAD_UP2 if stride == 2 else _PAD1
            h = ConvTranspose(
                features,
                (3, 3),
                strides=(stride, stride),
                padding=pads,
                use_bias=False,
                dtype=dtype,
            )(h)
            h = nn.relu(_batch_norm(train, self.bn_momentum, dtype=dtype)(h))
        out = ConvTranspose(_out_channels(self), (3, 3), padding=_PAD1, use_bias=False, dtype=dtype)
        return as_float32(out(h))


# --------------------------------------------------------------------------------------------
# DCGAN-style colour pair (seed 004, appendix A.2.2)
# --------------------------------------------------------------------------------------------


class DCGANEncoder(nn.Module):
    """Conv4x4/2-BN-ReLU x3 (32, 64, 128; 32x32 -> 16 -> 8 -> 4) - Dense 2 * latent_dim.

    Seed 004, A.2.2: "Conv-BatchNorm-ReLU modules ... kernels 4x4 ... filters 32, 64, 128 for the
    encoder". Stride 2 and SAME padding (= PyTorch padding 1 for even sizes) as in DCGAN;
    convolutions feeding a batch norm carry no bias (the DCGAN convention; BN's shift replaces
    it). The final dense layer is the raw head (``2 * latent_dim``: ``(mu, log_var)``).

    Examples:
        >>> import jax
        >>> encoder, x = DCGANEncoder(latent_dim=8), jnp.zeros((2, 32, 32, 3))
        >>> variables = jax.eval_shape(encoder.init, jax.random.key(0), x)
        >>> variables["params"]["Dense_0"]["kernel"].shape  # 4 * 4 * 128 features
        (2048, 16)
        >>> jax.eval_shape(encoder.apply, variables, x).shape
        (2, 16)
    """

    latent_dim: int
    features: Sequence[int] = (32, 64, 128)
    bn_momentum: float = BN_MOMENTUM
    head_width: int | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        h = x
        for width in self.features:
            conv = Conv(
                width, (4, 4), strides=(2, 2), padding="SAME", use_bias=False, dtype=self.dtype
            )
            h = nn.relu(_batch_norm(train, self.bn_momentum, dtype=self.dtype)(conv(h)))
        head = nn.Dense(self.head_width or 2 * self.latent_dim, dtype=self.dtype)
        return as_float32(head(_flatten(h)))


class DCGANDecoder(nn.Module):
    """Dense (no bias) - reshape (H/8)x(W/8)x128 - BN-ReLU - TConv4x4/2 128-BN-ReLU -
    TConv4x4/2 64-BN-ReLU - TConv4x4/2 out (with bias). 32x32: 4 -> 8 -> 16 -> 32.

    Seed 004, A.2.2 lists decoder filters "128, 64, 1"; the last is the output layer, whose
    width here is ``out_channels`` (3 or 6 for colour images, not 1).

    Examples:
        >>> import jax
        >>> decoder, z = DCGANDecoder(image_shape=(32, 32, 3), out_channels=6), jnp.zeros((2, 8))
        >>> variables = jax.eval_shape(decoder.init, jax.random.key(0), z)
        >>> variables["params"]["Dense_0"]["kernel"].shape  # to a 4x4x128 map
        (8, 2048)
        >>> jax.eval_shape(decoder.apply, variables, z).shape
        (2, 32, 32, 6)
    """

    image_shape: Sequence[int]
    out_channels: int | None = None
    features: Sequence[int] = (128, 64)
    base_features: int = 128
    bn_momentum: float = BN_MOMENTUM
    dtype: Any = None

    def check_image_shape(self) -> None:
        height, width, _ = _split_shape(self.image_shape, "DCGANDecoder")
        scale = 2 ** (len(self.features) + 1)
        if height % scale or width % scale:
            raise ValueError(
                f"dcgan supports image shapes (H, W, C) with H and W multiples of {scale} "
                f"(32x32x3 in seed 004), got {tuple(self.image_shape)}."
            )

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        self.check_image_shape()
        height, width, _ = self.image_shape
        scale = 2 ** (len(self.features) + 1)
        map_shape = (height // scale, width // scale, self.base_features)
        dtype = self.dtype
        h = nn.Dense(map_shape[0] * map_shape[1] * map_shape[2], use_bias=False, dtype=dtype)(z)
        h = h.reshape(z.shape[:-1] + map_shape)
        h = nn.relu(_batch_norm(train, self.bn_momentum, dtype=dtype)(h))
        for features in self.features:
            up = ConvTranspose(
                features, (4, 4), strides=(2, 2), padding="SAME", use_bias=False, dtype=dtype
            )
            h = nn.relu(_batch_norm(train, self.bn_momentum, dtype=dtype)(up(h)))
        out = ConvTranspose(
            _out_channels(self), (4, 4), strides=(2, 2), padding="SAME", dtype=dtype
        )
        return as_float32(out(h))


# --------------------------------------------------------------------------------------------
# MLP pair
# --------------------------------------------------------------------------------------------


class MLPEncoder(nn.Module):
    """Flatten - (Dense - ReLU) per ``hidden`` width - Dense 2 * latent_dim -> (mu, log_var).

    Examples:
        >>> import jax
        >>> encoder, x = MLPEncoder(latent_dim=8, hidden=(64,)), jnp.zeros((2, 28, 28, 1))
        >>> variables = jax.eval_shape(encoder.init, jax.random.key(0), x)
        >>> jax.tree.map(lambda p: p.shape, variables["params"])
        {'Dense_0': {'bias': (64,), 'kernel': (784, 64)},
         'Dense_1': {'bias': (16,), 'kernel': (64, 16)}}
        >>> jax.eval_shape(encoder.apply, variables, x).shape
        (2, 16)
    """

    latent_dim: int
    hidden: Sequence[int] = (512, 256)
    head_width: int | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        del train
        h = _flatten(x)
        for width in self.hidden:
            h = nn.relu(nn.Dense(width, dtype=self.dtype)(h))
        return as_float32(nn.Dense(self.head_width or 2 * self.latent_dim, dtype=self.dtype)(h))


class MLPDecoder(nn.Module):
    """Mirror of :class:`MLPEncoder`: (Dense - ReLU) per reversed ``hidden`` width - Dense
    H * W * out_channels - reshape to ``(H, W, out_channels)``. Any image shape.

    Examples:
        >>> import jax
        >>> decoder = MLPDecoder(image_shape=(5, 7, 3), hidden=(64, 32))
        >>> z = jnp.zeros((2, 8))
        >>> variables = jax.eval_shape(decoder.init, jax.random.key(0), z)
        >>> [variables["params"][f"Dense_{i}"]["kernel"].shape for i in range(3)]
        [(8, 32), (32, 64), (64, 105)]
        >>> jax.eval_shape(decoder.apply, variables, z).shape
        (2, 5, 7, 3)
    """

    image_shape: Sequence[int]
    out_channels: int | None = None
    hidden: Sequence[int] = (512, 256)
    dtype: Any = None

    def check_image_shape(self) -> None:
        _split_shape(self.image_shape, "MLPDecoder")

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        del train
        self.check_image_shape()
        height, width, _ = self.image_shape
        out_channels = _out_channels(self)
        h = z
        for units in reversed(tuple(self.hidden)):
            h = nn.relu(nn.Dense(units, dtype=self.dtype)(h))
        h = as_float32(nn.Dense(height * width * out_channels, dtype=self.dtype)(h))
        return h.reshape(z.shape[:-1] + (height, width, out_channels))


# --------------------------------------------------------------------------------------------
# Lipschitz pair (dissertation Ch. 4.4, Algorithm 1)
# --------------------------------------------------------------------------------------------


def decoder_lipschitz_bound(latent_dim: int, prior_std: float = 1.0) -> float:
    """Eq. 4.5: M = floor(sigma sqrt(m) + 2 sigma), sigma the prior's std, m the latent size
    (5 for m = 10, 10 for m = 70 with sigma = 1).

    Examples:
        >>> decoder_lipschitz_bound(10), decoder_lipschitz_bound(70)
        (5.0, 10.0)
    """
    return float(math.floor(prior_std * math.sqrt(latent_dim) + 2.0 * prior_std))


class LipschitzEncoder(nn.Module):
    """Flatten - L1-projected layers ``hidden`` (GroupSort) - L1-projected linear head, no
    biases; ``lipschitz``-Lipschitz in the inf-norm (M = 1, the dissertation's encoder, so
    ``||mu(x)||_inf <= ||x||_inf <= 1`` on [0, 1] images). The whole head (mu and log_var) is
    constrained. Widths 512-256 (the hyperspherical VAE's doubled, section 4.5.1).

    Examples:
        >>> import jax
        >>> encoder, x = LipschitzEncoder(latent_dim=4, hidden=(16, 8)), jnp.ones((2, 28, 28, 1))
        >>> variables = encoder.init(jax.random.key(0), x)
        >>> mu = encoder.apply(variables, x)[:, :4]
        >>> mu.shape, bool(jnp.abs(mu).max() <= 1.0)
        ((2, 4), True)
    """

    latent_dim: int
    hidden: Sequence[int] = (512, 256)
    lipschitz: float = 1.0
    group_size: int = 2
    head_width: int | None = None
    projection: str = "l1_ball"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        del train
        width = self.head_width or 2 * self.latent_dim
        mlp = LipschitzMLP(
            (*self.hidden, width),
            self.lipschitz,
            self.group_size,
            self.dtype,
            self.projection,
            name="mlp",
        )
        return mlp(_flatten(x))


class LipschitzDecoder(nn.Module):
    """L1-projected layers reversed ``hidden`` (GroupSort) - L1-projected linear output
    ``H * W * out_channels``, no biases, reshaped; ``lipschitz``-Lipschitz in the inf-norm.
    ``lipschitz=None``: eq. 4.5 for the latent size and ``prior_std``
    (:func:`decoder_lipschitz_bound`, 5 for m = 10). ``output_bias=True`` (not in Algorithm 1,
    an ablation): a learned bias on the output logits, which leaves the Lipschitz constant as it
    is; without it the bias-free GroupSort network is positively homogeneous, f(c z) = c f(z), so
    every logit is 0 (p = 1/2) at z = 0, the prior's mode.

    Examples:
        >>> import jax
        >>> decoder = LipschitzDecoder(image_shape=(28, 28, 1), hidden=(16, 8))
        >>> z = jnp.zeros((2, 10))
        >>> variables = decoder.init(jax.random.key(0), z)
        >>> decoder.apply(variables, z).shape, decoder.bound(10)
        ((2, 28, 28, 1), 5.0)
    """

    image_shape: Sequence[int]
    out_channels: int | None = None
    hidden: Sequence[int] = (512, 256)
    lipschitz: float | None = None
    prior_std: float = 1.0
    group_size: int = 2
    output_bias: bool = False
    projection: str = "l1_ball"
    dtype: Any = None

    def check_image_shape(self) -> None:
        _split_shape(self.image_shape, "LipschitzDecoder")

    def bound(self, latent_dim: int) -> float:
        """The decoder's Lipschitz constant M for a latent of size ``latent_dim``."""
        if self.lipschitz is not None:
            return float(self.lipschitz)
        return decoder_lipschitz_bound(latent_dim, self.prior_std)

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        del train
        self.check_image_shape()
        height, width, _ = self.image_shape
        out_channels = _out_channels(self)
        features = (*reversed(tuple(self.hidden)), height * width * out_channels)
        mlp = LipschitzMLP(
            features,
            self.bound(z.shape[-1]),
            self.group_size,
            self.dtype,
            self.projection,
            name="mlp",
        )
        logits = mlp(z)
        if self.output_bias:
            logits = logits + self.param("bias", nn.initializers.zeros, (features[-1],))
        return logits.reshape(z.shape[:-1] + (height, width, out_channels))


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

#: name -> (encoder class, decoder class). Encoders are built as ``Enc(latent_dim=..., **opts)``,
#: decoders as ``Dec(image_shape=..., out_channels=..., **opts)`` with a ``check_image_shape()``.
VAE_NETWORKS: dict[str, tuple[type, type]] = {
    "ch3_gray": (Ch3GrayEncoder, Ch3GrayDecoder),
    "ch3_rgb": (Ch3RGBEncoder, Ch3RGBDecoder),
    "dcgan": (DCGANEncoder, DCGANDecoder),
    "mlp": (MLPEncoder, MLPDecoder),
    "conv": (ConvEncoder, ConvDecoder),
    "lipschitz_mlp": (LipschitzEncoder, LipschitzDecoder),
}

_NOT_AVAILABLE = {
    "rosca": "the encoder table of Rosca et al. (2018, appendix K table 4) was not available "
    "when this module was written; use 'ch3_gray' (dissertation Table 3.5) for 28x28 grayscale",
}

_RESERVED = ("latent_dim", "head_width", "image_shape", "out_channels", "dtype", "parent", "name")


def _option_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.name not in _RESERVED}


def make_vae_networks(
    name: str,
    image_shape: Sequence[int],
    latent_dim: int,
    out_channels: int,
    *,
    head_width: int | None = None,
    dtype: Any = None,
    **options: Any,
) -> tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)`` modules of architecture ``name`` for ``image_shape`` (H, W, C).

    ``dtype`` is the compute dtype of both (None: float32; ``jnp.bfloat16``: mixed precision,
    float32 parameters, heads and outputs; see :mod:`jaxrobust.nn.precision`).

    ``options`` go to every module with an attribute of that name (e.g. ``hidden`` for "mlp",
    ``bn_momentum`` for the batch-norm architectures); prefix ``encoder_`` / ``decoder_`` to
    address one side only (e.g. ``encoder_features`` / ``decoder_features`` for "conv").

    Raises ``ValueError`` for an unknown name (listing the known ones), an image shape the
    architecture does not support (saying which it supports), or an unknown option.

    Examples:
        >>> encoder, decoder = make_vae_networks("mlp", (28, 28, 1), 8, 2, hidden=[64])
        >>> type(encoder).__name__, encoder.hidden, decoder.hidden, decoder.out_channels
        ('MLPEncoder', (64,), (64,), 2)
        >>> encoder, decoder = make_vae_networks(
        ...     "conv", (28, 28, 1), 16, 1, encoder_features=(16, 32), decoder_features=(32, 16)
        ... )
        >>> encoder.features, decoder.features
        ((16, 32), (32, 16))
        >>> encoder, decoder = make_vae_networks("mlp", (28, 28, 1), 8, 1, dtype=jnp.bfloat16)
        >>> encoder.dtype == decoder.dtype == jnp.bfloat16
        True
        >>> make_vae_networks("dcgan", (28, 28, 1), 16, 1)
        Traceback (most recent call last):
        ...
        ValueError: dcgan supports image shapes (H, W, C) with H and W multiples of 8 ...
        >>> make_vae_networks("rosca", (28, 28, 1), 16, 1)
        Traceback (most recent call last):
        ...
        ValueError: Unknown VAE network 'rosca'; known: ch3_gray, ch3_rgb, conv, ... ('rosca': ...
    """
    if name not in VAE_NETWORKS:
        known = ", ".join(sorted(VAE_NETWORKS))
        hint = f" ('{name}': {_NOT_AVAILABLE[name]})" if name in _NOT_AVAILABLE else ""
        raise ValueError(f"Unknown VAE network {name!r}; known: {known}.{hint}")
    image_shape = _split_shape(image_shape, f"make_vae_networks({name!r})")
    if not (isinstance(latent_dim, int) and latent_dim > 0):
        raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}.")
    if not (isinstance(out_channels, int) and out_channels > 0):
        raise ValueError(f"out_channels must be a positive int, got {out_channels!r}.")
    encoder_cls, decoder_cls = VAE_NETWORKS[name]
    fields = {"encoder": _option_fields(encoder_cls), "decoder": _option_fields(decoder_cls)}
    kwargs: dict[str, dict[str, Any]] = {"encoder": {}, "decoder": {}}
    for key, value in options.items():
        side, _, field = key.partition("_")
        targets = [side] if side in kwargs and field in fields[side] else []
        if not targets:
            targets = [s for s in kwargs if key in fields[s]]
            field = key
        if not targets:
            accepted = sorted(
                {f for s in fields for f in fields[s]}
                | {f"{s}_{f}" for s in fields for f in fields[s]}
            )
            raise ValueError(
                f"Unknown option {key!r} for VAE network {name!r}; accepted: {', '.join(accepted)}."
            )
        for side_name in targets:
            if isinstance(value, list):
                value = tuple(value)
            kwargs[side_name][field] = value
    if dtype is not None:
        for side, cls in (("encoder", encoder_cls), ("decoder", decoder_cls)):
            if "dtype" not in {f.name for f in dataclasses.fields(cls)}:
                raise ValueError(
                    f"VAE network {name!r}: its {side} {cls.__name__} has no dtype attribute, so "
                    f"it cannot compute in {jnp.dtype(dtype).name}; use compute dtype float32 "
                    "or give the module a Flax dtype field."
                )
            kwargs[side]["dtype"] = dtype
    encoder = encoder_cls(latent_dim=latent_dim, head_width=head_width, **kwargs["encoder"])
    decoder = decoder_cls(image_shape=image_shape, out_channels=out_channels, **kwargs["decoder"])
    decoder.check_image_shape()
    return encoder, decoder

"""CIFAR-style ResNets (He et al. 2016): 3x3 stride-1 stem, no max-pool, BasicBlocks.

ResNet-18 = BasicBlocks [2, 2, 2, 2] at widths 64/128/256/512 and global average pooling, as in
the hybrid-models thesis (seed 000, the author's code) and the usual CIFAR training scripts; the
SDIM paper's ResNets with 8n + 2 layers (seed 003) are :func:`resnet_8n2`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxrobust.nn.layers import Conv
from jaxrobust.nn.precision import as_float32

SHORTCUTS = ("projection", "zero_pad")


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut, or where the shape changes a 1x1
    conv-BN projection (``shortcut="projection"``, option B of He et al.) or a parameter-free
    one (``"zero_pad"``, option A: subsample by the stride, zero-pad the new channels; the SDIM
    encoder, seed 003).

    Examples:
        Halving the resolution and changing the width needs the 1x1 projection (``Conv_2``):

        >>> import jax
        >>> block, x = BasicBlock(features=8, strides=2), jnp.zeros((1, 8, 8, 4))
        >>> variables = jax.eval_shape(lambda x: block.init(jax.random.key(0), x, train=False), x)
        >>> sorted(variables["params"]), variables["params"]["Conv_2"]["kernel"].shape
        (['BatchNorm_0', 'BatchNorm_1', 'BatchNorm_2', 'Conv_0', 'Conv_1', 'Conv_2'], (1, 1, 4, 8))
        >>> jax.eval_shape(lambda v, x: block.apply(v, x, train=False), variables, x).shape
        (1, 4, 4, 8)

        Option A adds no parameters:

        >>> block = BasicBlock(features=8, strides=2, shortcut="zero_pad")
        >>> variables = jax.eval_shape(lambda x: block.init(jax.random.key(0), x, train=False), x)
        >>> sorted(variables["params"])
        ['BatchNorm_0', 'BatchNorm_1', 'Conv_0', 'Conv_1']
    """

    features: int
    strides: int = 1
    dtype: Any = None  # compute dtype (None: float32); parameters and BN statistics float32
    shortcut: str = "projection"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        norm = partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            dtype=self.dtype,
        )
        conv = partial(Conv, use_bias=False, dtype=self.dtype)
        h = conv(self.features, (3, 3), strides=self.strides, padding=1)(x)
        h = nn.relu(norm()(h))
        h = conv(self.features, (3, 3), padding=1)(h)
        h = norm()(h)
        if self.strides != 1 or x.shape[-1] != self.features:
            if self.shortcut == "zero_pad":
                x = zero_pad_shortcut(x, self.features, self.strides).astype(h.dtype)
            else:
                x = conv(self.features, (1, 1), strides=self.strides)(x)
                x = norm()(x)
        return nn.relu(h + x)


def zero_pad_shortcut(x: jnp.ndarray, features: int, strides: int) -> jnp.ndarray:
    """Option A of He et al. (2016): ``x[..., ::s, ::s, :]`` with ``features - C`` zero channels.

    Example:
        >>> y = zero_pad_shortcut(jnp.ones((1, 4, 4, 2)), 4, 2)
        >>> y.shape, float(y[..., :2].sum()), float(y[..., 2:].sum())
        ((1, 2, 2, 4), 8.0, 0.0)
    """
    if features < x.shape[-1]:
        raise ValueError(
            f"zero_pad_shortcut: {features} features < the input's {x.shape[-1]}; option A "
            "only widens. Use shortcut='projection'."
        )
    x = x[..., ::strides, ::strides, :]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, features - x.shape[-1])]
    return jnp.pad(x, pad)


class ResNet(nn.Module):
    """CIFAR ResNet; returns logits, or pooled features when ``num_classes`` is None.

    ``dtype`` is the compute dtype (None: float32; ``jnp.bfloat16``: mixed precision, see
    :mod:`jaxrobust.nn.precision`); parameters stay float32 and the output is float32.

    Examples:
        A small two-stage ResNet; without a classifier it returns the pooled 32 features:

        >>> import jax
        >>> model = ResNet(stage_sizes=(1, 1), num_classes=None, widths=(16, 32))
        >>> x = jnp.zeros((2, 32, 32, 3))
        >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
        >>> sorted(variables), jax.eval_shape(model.apply, variables, x).shape
        (['batch_stats', 'params'], (2, 32))
    """

    stage_sizes: Sequence[int]
    num_classes: int | None = 10
    widths: Sequence[int] = (64, 128, 256, 512)
    dtype: Any = None
    shortcut: str = "projection"
    head_hidden: int | None = None  # Linear(head_hidden)-BN-ReLU before the output Linear

    @nn.compact
    def __call__(
        self,
        x: jnp.ndarray,
        train: bool = False,
        return_features: bool = False,
        return_local: bool = False,
    ) -> jnp.ndarray | tuple[jnp.ndarray, jnp.ndarray]:
        """Logits ``[B, num_classes]`` (pooled features with ``return_features``); with
        ``return_local`` the pair ``(last stage's feature map [B, h, w, widths[-1]], that)``."""
        norm = partial(
            nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5,
            dtype=self.dtype,
        )  # fmt: skip
        h = Conv(self.widths[0], (3, 3), padding=1, use_bias=False, dtype=self.dtype)(x)
        h = nn.relu(norm()(h))
        for stage, (blocks, width) in enumerate(zip(self.stage_sizes, self.widths, strict=True)):
            for block in range(blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                h = BasicBlock(width, strides, dtype=self.dtype, shortcut=self.shortcut)(h, train)
        local = h
        h = jnp.mean(h, axis=(-3, -2))
        if not (self.num_classes is None or return_features):
            if self.head_hidden is not None:
                h = nn.relu(norm()(nn.Dense(self.head_hidden, dtype=self.dtype)(h)))
            h = nn.Dense(self.num_classes, dtype=self.dtype)(h)
        return (as_float32(local), as_float32(h)) if return_local else as_float32(h)


def resnet18(
    num_classes: int | None = 10,
    *,
    widths: Sequence[int] = (64, 128, 256, 512),
    dtype: Any = None,
) -> ResNet:
    """ResNet-18 for 32x32 inputs: BasicBlocks [2, 2, 2, 2] at ``widths`` (four stages).

    ``dtype`` is the compute dtype (None: float32, ``jnp.bfloat16``: mixed precision);
    ``widths`` other than the default make a narrower/wider network of the same depth.

    Examples:
        The 11.17M parameters of the CIFAR ResNet-18:

        >>> import math, jax
        >>> model, x = resnet18(num_classes=10), jnp.zeros((1, 32, 32, 3))
        >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
        >>> sum(math.prod(p.shape) for p in jax.tree.leaves(variables["params"]))
        11173962
        >>> jax.eval_shape(model.apply, variables, x).shape
        (1, 10)

        In bfloat16 the parameters stay float32, and so do the logits:

        >>> model = resnet18(num_classes=10, widths=(8, 8, 16, 16), dtype=jnp.bfloat16)
        >>> variables = jax.eval_shape(model.init, jax.random.key(0), x)
        >>> {p.dtype.name for p in jax.tree.leaves(variables)}
        {'float32'}
        >>> jax.eval_shape(model.apply, variables, x).dtype
        dtype('float32')
    """
    if len(widths) != 4:
        raise ValueError(f"resnet18 has four stages: widths needs 4 entries, got {widths!r}.")
    return ResNet(
        stage_sizes=(2, 2, 2, 2), num_classes=num_classes, widths=tuple(widths), dtype=dtype
    )


def resnet_8n2(
    n: int,
    num_outputs: int,
    *,
    widths: Sequence[int] = (32, 64, 128, 256),
    head_hidden: int | None = 256,
    dtype: Any = None,
) -> ResNet:
    """The SDIM paper's ResNet with 8n + 2 layers on 32 x 32 inputs (seed 003, digest section 1):
    a 3x3 stem of ``widths[0]`` filters, four stages of ``n`` BasicBlocks at ``widths`` (strides
    1, 2, 2, 2), option-A shortcuts, global average pooling and the head Linear(256, 256)-BN-
    ReLU-Linear(256, ``num_outputs``). ResNet10 is n = 1, ResNet26 n = 3.

    Examples:
        The discriminative ResNet10 and ResNet26 of Table 1 (1.25M and 4.39M):

        >>> import math, jax
        >>> def count(model, x):
        ...     v = jax.eval_shape(model.init, jax.random.key(0), x)
        ...     return sum(math.prod(p.shape) for p in jax.tree.leaves(v["params"]))
        >>> count(resnet_8n2(1, 10), jnp.zeros((1, 32, 32, 1)))
        1250794
        >>> count(resnet_8n2(3, 10), jnp.zeros((1, 32, 32, 3)))
        4388650
    """
    if n < 1:
        raise ValueError(f"resnet_8n2: n = {n}; the network needs n >= 1 blocks per stage.")
    return ResNet(
        stage_sizes=(n,) * len(widths), num_classes=num_outputs, widths=tuple(widths),
        dtype=dtype, shortcut="zero_pad", head_hidden=head_hidden,
    )  # fmt: skip


def upsample_nearest(x: jnp.ndarray, scale: int) -> jnp.ndarray:
    """Nearest-neighbour upsampling of NHWC images by an integer ``scale`` (PyTorch's
    ``F.interpolate(scale_factor=scale)``, mode "nearest").

    Example:
        >>> upsample_nearest(jnp.array([[1.0, 2.0]]).reshape(1, 1, 2, 1), 2)[0, :, :, 0]
        Array([[1., 1., 2., 2.],
               [1., 1., 2., 2.]], dtype=float32)
    """
    if scale == 1:
        return x
    return jnp.repeat(jnp.repeat(x, scale, axis=-3), scale, axis=-2)


class DecoderBlock(nn.Module):
    """The residual decoder block of the hybrid-models code (pl_bolts ``DecoderBlock``):
    3x3 conv-BN-ReLU at the input width, (nearest x ``scale``) 3x3 conv-BN to ``features``, a
    shortcut ((nearest x ``scale``) 1x1 conv-BN where the shape changes), ReLU of the sum.

    Example:
        >>> import jax
        >>> block, x = DecoderBlock(features=4, scale=2), jnp.zeros((1, 4, 4, 8))
        >>> variables = jax.eval_shape(lambda x: block.init(jax.random.key(0), x, False), x)
        >>> jax.eval_shape(lambda v, x: block.apply(v, x, False), variables, x).shape
        (1, 8, 8, 4)
    """

    features: int
    scale: int = 1
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        norm = partial(
            nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5,
            dtype=self.dtype,
        )  # fmt: skip
        conv = partial(Conv, use_bias=False, dtype=self.dtype)
        h = nn.relu(norm()(conv(x.shape[-1], (3, 3), padding=1)(x)))
        h = norm()(conv(self.features, (3, 3), padding=1)(upsample_nearest(h, self.scale)))
        if self.scale != 1 or x.shape[-1] != self.features:
            x = norm()(conv(self.features, (1, 1))(upsample_nearest(x, self.scale)))
        return nn.relu(h + x)


class ResNetDecoder(nn.Module):
    """The ResNet-18 decoder of the hybrid-models code (pl_bolts ``resnet18_decoder(latent,
    32, first_conv=False, maxpool1=False)``): Linear(latent, w0 * 4 * 4) to a 4x4 map of width
    ``widths[0]``, four stages of two :class:`DecoderBlock` (x2 upsampling in the first block of
    stages 1-3) at ``widths[1:]``, then a bias-free 3x3 conv to ``out_channels``, no output
    activation: 32x32 images. 8,625,600 parameters at the default widths and 3 channels.

    Example:
        >>> import math, jax
        >>> decoder, z = ResNetDecoder(out_channels=3), jnp.zeros((1, 256))
        >>> variables = jax.eval_shape(lambda z: decoder.init(jax.random.key(0), z), z)
        >>> sum(math.prod(p.shape) for p in jax.tree.leaves(variables["params"]))
        8625600
        >>> jax.eval_shape(lambda v, z: decoder.apply(v, z), variables, z).shape
        (1, 32, 32, 3)
    """

    out_channels: int
    widths: Sequence[int] = (512, 256, 128, 64, 64)
    blocks: Sequence[int] = (2, 2, 2, 2)
    dtype: Any = None

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if len(self.widths) != 5:
            raise ValueError(f"ResNetDecoder needs 5 widths (input + 4 stages), got {self.widths}.")
        h = nn.Dense(self.widths[0] * 16, dtype=self.dtype)(z)
        h = h.reshape(*z.shape[:-1], 4, 4, self.widths[0])
        for stage, (width, count) in enumerate(zip(self.widths[1:], self.blocks, strict=True)):
            for block in range(count):
                scale = 2 if stage < 3 and block == 0 else 1
                h = DecoderBlock(width, scale, dtype=self.dtype)(h, train)
        h = Conv(self.out_channels, (3, 3), padding=1, use_bias=False, dtype=self.dtype)(h)
        return as_float32(h)

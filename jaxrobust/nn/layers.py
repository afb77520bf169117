"""Flax conv layers routed through :func:`jaxrobust.nn.conv_ops.conv_general_dilated`.

Drop-in for ``flax.linen.Conv`` / ``flax.linen.ConvTranspose``: same attributes, parameter names
(``kernel`` HWIO, ``bias``), shapes, initialisation and values; only the gradient of the kernel
is computed differently on CPU so it stays fast inside ``lax.scan`` (see ``conv_ops``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.dtypes import promote_dtype

from jaxrobust.nn.conv_ops import conv_general_dilated

PaddingLike = str | int | Sequence[int | tuple[int, int]]


class Conv(nn.Conv):
    """``flax.linen.Conv`` whose convolution is :func:`conv_ops.conv_general_dilated`.

    Examples:
        The same parameters and outputs as ``flax.linen.Conv``:

        >>> x = jnp.linspace(-1.0, 1.0, 2 * 8 * 8 * 3).reshape(2, 8, 8, 3)
        >>> conv, reference = Conv(4, (3, 3), strides=2), nn.Conv(4, (3, 3), strides=2)
        >>> shapes = jax.eval_shape(conv.init, jax.random.key(0), x)
        >>> shapes == jax.eval_shape(reference.init, jax.random.key(0), x)
        True
        >>> jax.tree.map(jnp.shape, shapes)
        {'params': {'bias': (4,), 'kernel': (3, 3, 3, 4)}}
        >>> kernel = jnp.linspace(-1.0, 1.0, 3 * 3 * 3 * 4).reshape(3, 3, 3, 4)
        >>> variables = {"params": {"bias": jnp.ones(4), "kernel": kernel}}
        >>> bool(jnp.allclose(conv.apply(variables, x), reference.apply(variables, x), atol=1e-5))
        True
    """

    conv_general_dilated: Callable[..., jax.Array] | None = conv_general_dilated


def conv_transpose_padding(kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """Padding of the ``lhs_dilation=stride`` conv that ``lax.conv_transpose`` uses.

    SAME: total k + s - 2, low = k - 1 if s > k - 1 else ceil(total / 2) (output = s * input).
    VALID: total k + s - 2 + max(k - s, 0), low = k - 1 (output = s (n - 1) + max(k, s)).

    Examples:
        A 4x4 stride-2 SAME layer pads 4 in all (2 before): an input of n gives 2n outputs.

        >>> conv_transpose_padding(4, 2, "SAME"), conv_transpose_padding(3, 1, "VALID")
        ((2, 2), (2, 2))
        >>> conv_transpose_padding(3, 2, "SAME")  # k - 1 = 2 is not below s = 2
        (2, 1)
    """
    if padding == "SAME":
        total = kernel + stride - 2
        low = kernel - 1 if stride > kernel - 1 else -(-total // 2)
    elif padding == "VALID":
        total = kernel + stride - 2 + max(kernel - stride, 0)
        low = kernel - 1
    else:
        raise ValueError(
            f"ConvTranspose padding must be 'SAME', 'VALID' or explicit, got {padding!r}."
        )
    return low, total - low


class ConvTranspose(nn.Module):
    """Transposed convolution, ``y = conv(dilate(x, strides), W; padding)``, as Flax computes it.

    Mirrors ``flax.linen.ConvTranspose`` (i.e. ``lax.conv_transpose`` with ``transpose_kernel``
    False: the kernel is applied unflipped, HWIO with I = input features) for NHWC inputs with
    ``SAME``/``VALID``/explicit padding; ``CIRCULAR`` padding is not supported.

    Examples:
        The same parameters and outputs as ``flax.linen.ConvTranspose``; 4x4 stride 2 SAME
        doubles the spatial size:

        >>> x = jnp.linspace(-1.0, 1.0, 2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
        >>> layer = ConvTranspose(5, (4, 4), strides=(2, 2))
        >>> reference_shapes = jax.eval_shape(
        ...     nn.ConvTranspose(5, (4, 4), strides=(2, 2)).init, jax.random.key(0), x)
        >>> jax.eval_shape(layer.init, jax.random.key(0), x) == reference_shapes
        True
        >>> kernel = jnp.linspace(-1.0, 1.0, 4 * 4 * 3 * 5).reshape(4, 4, 3, 5)
        >>> variables = {"params": {"bias": jnp.zeros(5), "kernel": kernel}}
        >>> y = layer.apply(variables, x)
        >>> reference = nn.ConvTranspose(5, (4, 4), strides=(2, 2)).apply(variables, x)
        >>> y.shape, bool(jnp.allclose(y, reference, atol=1e-5))
        ((2, 8, 8, 5), True)
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: Sequence[int] | None = None
    padding: PaddingLike = "SAME"
    kernel_dilation: Sequence[int] | None = None
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Callable[..., jax.Array] = nn.initializers.lecun_normal()
    bias_init: Callable[..., jax.Array] = nn.initializers.zeros_init()
    transpose_kernel: bool = False

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        ks = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else self.kernel_size
        kernel_size = tuple(ks)
        if len(kernel_size) != 2:
            raise ValueError(f"ConvTranspose supports 2-D kernels only, got {kernel_size}.")
        strides = _pair(self.strides)
        dilation = _pair(self.kernel_dilation)
        batch_shape = inputs.shape[:-3]
        inputs = inputs.reshape((-1,) + inputs.shape[-3:])
        in_features = inputs.shape[-1]
        if self.transpose_kernel:
            kernel_shape = kernel_size + (self.features, in_features)
        else:
            kernel_shape = kernel_size + (in_features, self.features)
        kernel = self.param("kernel", self.kernel_init, kernel_shape, self.param_dtype)
        bias = (
            self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        inputs, kernel, bias = promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        if self.transpose_kernel:  # flip spatially, swap in/out: the adjoint of a forward conv
            kernel = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)
        pads = self._pads(kernel_size, strides, dilation)
        y = conv_general_dilated(
            inputs,
            kernel,
            (1, 1),
            pads,
            lhs_dilation=strides,
            rhs_dilation=dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=self.precision,
        )
        if bias is not None:
            y = y + bias
        return y.reshape(batch_shape + y.shape[1:])

    def _pads(
        self, kernel_size: tuple[int, ...], strides: tuple[int, int], dilation: tuple[int, int]
    ) -> list[tuple[int, int]]:
        if isinstance(self.padding, str):
            return [
                conv_transpose_padding((k - 1) * d + 1, s, self.padding)
                for k, s, d in zip(kernel_size, strides, dilation, strict=True)
            ]
        if isinstance(self.padding, int):
            return [(self.padding, self.padding)] * 2
        return [(p, p) if isinstance(p, int) else tuple(p) for p in self.padding]


def _pair(value: int | Sequence[int] | None) -> tuple[int, int]:
    if value is None:
        return (1, 1)
    if isinstance(value, int | np.integer):
        return (int(value), int(value))
    return tuple(int(v) for v in value)


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """``nn.max_pool(x, (2, 2), strides=(2, 2))`` (VALID) for ``[..., H, W, C]``, same gradient.

    y[i, j] = max(x[2i, 2j], x[2i, 2j + 1], x[2i + 1, 2j], x[2i + 1, 2j + 1]); the gradient goes
    to the first maximum in that (row-major) order, as XLA's select-and-scatter does, but is
    computed with elementwise masks: ~5x faster on XLA:CPU (with or without ``lax.scan``).
    Odd trailing rows/columns are dropped, as VALID pooling does.

    Examples:
        >>> x = jnp.array([[1.0, 2.0, 0.0], [4.0, 3.0, 0.0], [9.0, 9.0, 9.0]])[None, :, :, None]
        >>> max_pool_2x2(x)[0, :, :, 0].tolist()  # the odd last row and column are dropped
        [[4.0]]
        >>> grad = jax.grad(lambda x: max_pool_2x2(x).sum())(jnp.ones((1, 2, 2, 1)))
        >>> grad[0, :, :, 0].tolist()  # a tie: the first maximum (row-major) gets it
        [[1.0, 0.0], [0.0, 0.0]]
    """
    height, width = x.shape[-3] // 2 * 2, x.shape[-2] // 2 * 2
    return _max_pool_2x2(x[..., :height, :width, :])


@jax.custom_vjp
def _max_pool_2x2(x: jax.Array) -> jax.Array:
    *batch, height, width, channels = x.shape
    windows = x.reshape(*batch, height // 2, 2, width // 2, 2, channels)
    return windows.max(axis=(-4, -2))


def _max_pool_2x2_fwd(x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    y = _max_pool_2x2(x)
    return y, (x, y)


def _max_pool_2x2_bwd(residuals: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array]:
    x, y = residuals
    *batch, height, width, channels = x.shape
    windows = x.reshape(*batch, height // 2, 2, width // 2, 2, channels)
    taken = jnp.zeros(y.shape, bool)
    rows = []
    for dy in range(2):
        cols = []
        for dx in range(2):
            hit = (windows[..., dy, :, dx, :] == y) & ~taken
            taken = taken | hit
            cols.append(jnp.where(hit, g, jnp.zeros((), g.dtype)))
        rows.append(jnp.stack(cols, axis=-2))  # [..., H/2, W/2, 2, C]
    return (jnp.stack(rows, axis=-4).reshape(x.shape),)


_max_pool_2x2.defvjp(_max_pool_2x2_fwd, _max_pool_2x2_bwd)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow / Flax 'SAME' padding of one spatial axis: (low, high)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def extract_patches(x: jax.Array, kernel: int, stride: int, padding: str) -> jax.Array:
    """``[B, H, W, C]`` -> ``[B, H', W', kernel * kernel * C]``: every ``kernel x kernel`` window
    (ordered row, column, channel, as an HWIO kernel reshaped to ``[-1, O]``), from
    ``kernel**2`` strided slices of the (padded) input.

    Example:
        >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
        >>> extract_patches(x, 2, 2, "VALID")[0, :, :, 0].tolist()  # top-left corners
        [[0.0, 2.0], [8.0, 10.0]]
    """
    if padding == "SAME":
        (top, bottom), (left, right) = (_same_padding(n, kernel, stride) for n in x.shape[1:3])
        x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    elif padding != "VALID":
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}.")
    out_h = (x.shape[1] - kernel) // stride + 1
    out_w = (x.shape[2] - kernel) // stride + 1
    span_h, span_w = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    windows = [
        x[:, i : i + span_h : stride, j : j + span_w : stride, :]
        for i in range(kernel)
        for j in range(kernel)
    ]
    return jnp.concatenate(windows, axis=-1)


class PatchConv(nn.Module):
    """A square, strided 2-D convolution as one matrix product over extracted patches.

    The same function and parameters (``kernel`` HWIO, ``bias``, Flax's default initialisers)
    as ``flax.linen.Conv(features, (k, k), strides=s, padding=...)``. Why: XLA:CPU runs large
    strided kernels on few input channels (CleverHans' 8x8 / 2 on one channel, 6x6 / 2) about 5x
    slower, forward and backward, than this im2col form, whose gradient is a matmul and the
    transposes of slices.

    Example:
        >>> import jax
        >>> x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
        >>> conv, flax_conv = PatchConv(8, 8, 2, "SAME"), nn.Conv(8, (8, 8), 2, "SAME")
        >>> v = conv.init(jax.random.key(1), x)
        >>> bool(jnp.allclose(conv.apply(v, x), flax_conv.apply(v, x), atol=1e-5))
        True
    """

    features: int
    kernel_size: int
    strides: int = 1
    padding: str = "SAME"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features)
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        cols = extract_patches(x, k, self.strides, self.padding)
        return cols @ kernel.reshape(-1, self.features) + bias

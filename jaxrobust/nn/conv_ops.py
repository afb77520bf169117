"""A drop-in ``lax.conv_general_dilated`` whose gradients stay fast inside ``lax.scan`` on CPU.

Why: XLA:CPU runs a convolution through its library kernels (Eigen / YNNPACK) only when it is
canonical: input NHWC, kernel HWIO, no window reversal. Its ``ConvCanonicalization`` pass
rewrites other layouts into transposes + a canonical convolution, but it only visits the *entry*
computation (``module->entry_computation()``), not the bodies of while loops. JAX's transpose
rules emit non-canonical convolutions: the kernel gradient swaps batch and feature axes
(``dim_labels=f01b_i01o->01bf``), the input gradient uses the kernel as HWOI (``01oi``), and
XLA's algebraic simplifier may swap a gradient's operands (``rhs_reversal``). Inside
``lax.scan`` (our jitted training epoch is one) these fall back to XLA's naive loop nest,
10-100x slower than outside a loop.

Fix: a ``jax.custom_vjp`` that writes every gradient convolution in canonical layout with
explicit transposes, so no convolution depends on that pass (per spatial axis: forward stride s,
padding low p, lhs dilation l, kernel dilation d, kernel size k, g = dL/dy):

- input gradient: dx = conv(g, W'; lhs_dilation = s, strides = l, rhs_dilation = d) with W' the
  kernel flipped in space, in/out swapped (JAX's own rule, kernel transposed explicitly);
- kernel gradient: dW[i] = sum_{b, u, q} x[b, u] g[b, q] [l u + p = s q + d i], one convolution
  with the batch as the contracted feature axis (see :func:`_kernel_grad`);
- a convolution with lhs dilation l > 1 (the input gradient of a strided convolution, a
  transposed convolution) is split into its l_h * l_w output phases (polyphase): phase c is a
  stride-1 convolution of the undilated input with the sub-kernel W[r::l], so no multiply-adds
  are spent on the inserted zeros (see :func:`_conv_polyphase`).

The implementation is chosen when a function is traced: the ``impl`` argument, else the
:func:`conv_impl` context, else the ``JAXROBUST_CONV_IMPL`` environment variable
(``auto`` | ``lax`` | ``canonical``), default ``auto``: ``canonical`` on CPU, plain ``lax`` on
GPU/TPU (cuDNN and the TPU compiler handle these layouts natively).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

IMPLS = ("auto", "lax", "canonical")
ENV_VAR = "JAXROBUST_CONV_IMPL"
_NHWC = lax.ConvDimensionNumbers(
    lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2)
)
_override: str | None = None
# Below this many output channels, interleaving the phases costs more than the zeros it skips.
_POLYPHASE_MIN_FEATURES = 32

Padding = str | Sequence[tuple[int, int]]
Pairs = Sequence[tuple[int, int]]


def _check_impl(name: str) -> str:
    if name not in IMPLS:
        raise ValueError(f"Unknown convolution implementation {name!r}; choose from {IMPLS}.")
    return name


@contextlib.contextmanager
def conv_impl(name: str) -> Iterator[None]:
    """Within the block, functions *traced* use convolution implementation ``name``.

    Examples:
        >>> with conv_impl("lax"):
        ...     resolve_impl()
        'lax'
        >>> with conv_impl("fft"):
        ...     pass
        Traceback (most recent call last):
        ...
        ValueError: Unknown convolution implementation 'fft'; choose from ('auto', 'lax', ...
    """
    global _override
    previous, _override = _override, _check_impl(name)
    try:
        yield
    finally:
        _override = previous


def resolve_impl(impl: str | None = None) -> str:
    """``lax`` or ``canonical``: ``impl`` > :func:`conv_impl` > ``$JAXROBUST_CONV_IMPL`` > auto.

    Examples:
        >>> from unittest import mock
        >>> resolve_impl("canonical")
        'canonical'
        >>> with mock.patch.dict(os.environ, {ENV_VAR: "lax"}):
        ...     resolve_impl(), resolve_impl("canonical")
        ('lax', 'canonical')
        >>> with mock.patch.dict(os.environ, {ENV_VAR: "auto"}):
        ...     resolve_impl() == ("canonical" if jax.default_backend() == "cpu" else "lax")
        True
    """
    name = impl or _override or os.environ.get(ENV_VAR, "") or "auto"
    if _check_impl(name) == "auto":
        return "canonical" if jax.default_backend() == "cpu" else "lax"
    return name


def cpu_compiler_options(backend: str | None = None) -> dict[str, str]:
    """XLA compiler options for ``jit(..., compiler_options=...)``: on CPU, YNNPACK for dots only.

    XLA:CPU (jaxlib 0.10) sends dots and convolutions to YNNPACK by default; for the convolutions
    of our models its Eigen path is faster (ResNet-18 3x3 64->64 at 32x32, batch 128, in a scan:
    forward 82 -> 45 ms, kernel gradient 200 -> 65 ms). Empty on other backends.

    Examples:
        >>> cpu_compiler_options("cpu")
        {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'}
        >>> cpu_compiler_options("gpu")
        {}
    """
    if (backend or jax.default_backend()) != "cpu":
        return {}
    return {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def _dilate(size: int, dilation: int) -> int:
    """Length of a dilated axis: 1 + d (n - 1), 0 for an empty axis."""
    return 0 if size == 0 else 1 + dilation * (size - 1)


def _conv(
    x: jax.Array,
    w: jax.Array,
    strides: Sequence[int],
    padding: Pairs,
    lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int],
    precision: Any,
) -> jax.Array:
    """Canonical NHWC x HWIO convolution; polyphase when it only has an lhs dilation (and at
    least ``_POLYPHASE_MIN_FEATURES`` output channels).

    A negative low padding is applied as a slice of the input first: XLA:CPU (jaxlib 0.10)
    returns garbage for convolutions whose padding on an axis has low < 0 < high (C > 1).
    """
    if (
        tuple(strides) == (1, 1)
        and tuple(rhs_dilation) == (1, 1)
        and max(lhs_dilation) > 1
        and w.shape[3] >= _POLYPHASE_MIN_FEATURES
    ):
        return _conv_polyphase(x, w, padding, lhs_dilation, precision)
    if min(lo for lo, _ in padding) < 0:
        if max(lhs_dilation) > 1:  # dilate explicitly: the slice is in dilated coordinates
            config = [(0, 0, 0), *((0, 0, d - 1) for d in lhs_dilation), (0, 0, 0)]
            x = lax.pad(x, jnp.zeros((), x.dtype), config)
            lhs_dilation = (1, 1)
        start = [0, *(max(-lo, 0) for lo, _ in padding), 0]
        if any(b > n for b, n in zip(start, x.shape, strict=True)):  # window sees no input
            out = [
                (_dilate(x.shape[1 + a], lhs_dilation[a]) + sum(padding[a]))
                - _dilate(w.shape[a], rhs_dilation[a])
                for a in range(2)
            ]
            hw = [max(0, n // s + 1) for n, s in zip(out, strides, strict=True)]
            return jnp.zeros((x.shape[0], *hw, w.shape[3]), x.dtype)
        x = lax.slice(x, start, x.shape)
        padding = [(max(lo, 0), hi) for lo, hi in padding]
    return lax.conv_general_dilated(
        x,
        w,
        tuple(strides),
        [tuple(p) for p in padding],
        tuple(lhs_dilation),
        tuple(rhs_dilation),
        _NHWC,
        precision=precision,
    )


def _conv_polyphase(
    x: jax.Array, w: jax.Array, padding: Pairs, lhs_dilation: Sequence[int], precision: Any
) -> jax.Array:
    """conv(x, W; stride 1, lhs_dilation l, padding) as l_h * l_w undilated convolutions.

    Per axis: y[o] = sum_i x_pad[o + i] W[i] with x_pad[t] = x[(t - p) / l] where l divides
    t - p (zero elsewhere). For the output phase o = l v + c, only taps i = r + l m with
    r = (p - c) mod l meet an input sample, u = v + m + e with e = (c + r - p) / l, so
    y[l v + c] = sum_m x[v + e + m] W[r + l m]: a stride-1 convolution with padding low -e and
    the sub-kernel W[r::l]. The phases are interleaved by stacking them (zero-padded to
    ceil(out / l) rows and columns) and reshaping.
    """
    kernel = w.shape[:2]
    out_hw = [
        _dilate(x.shape[1 + a], lhs_dilation[a]) + padding[a][0] + padding[a][1] - kernel[a] + 1
        for a in range(2)
    ]
    n_max = [-(-out_hw[a] // lhs_dilation[a]) for a in range(2)]

    def plan(axis: int, phase: int) -> tuple[int, int, tuple[int, int]]:
        dil, p, n_in = lhs_dilation[axis], padding[axis][0], x.shape[1 + axis]
        r = (p - phase) % dil
        taps = max(0, -(-(kernel[axis] - r) // dil))
        low = -((phase + r - p) // dil)
        # n_max outputs per phase; rows past out_hw are cropped after interleaving
        return r, taps, (low, n_max[axis] + taps - 1 - n_in - low)

    zeros = jnp.zeros((x.shape[0], *n_max, w.shape[3]), x.dtype)
    rows = []
    for ph in range(lhs_dilation[0]):
        rh, taps_h, pad_h = plan(0, ph)
        cols = []
        for pw in range(lhs_dilation[1]):
            rw, taps_w, pad_w = plan(1, pw)
            if taps_h == 0 or taps_w == 0:  # this phase only sees inserted zeros
                cols.append(zeros)
                continue
            sub = w[rh :: lhs_dilation[0], rw :: lhs_dilation[1]]
            cols.append(_conv(x, sub, (1, 1), (pad_h, pad_w), (1, 1), (1, 1), precision))
        rows.append(jnp.stack(cols, axis=3))  # [B, n_h, n_w, l_w, C]
    y = jnp.stack(rows, axis=2)  # [B, n_h, l_h, n_w, l_w, C]
    y = y.reshape(x.shape[0], n_max[0] * lhs_dilation[0], n_max[1] * lhs_dilation[1], -1)
    return y[:, : out_hw[0], : out_hw[1]]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _conv_nhwc(
    x: jax.Array,
    w: jax.Array,
    strides: tuple[int, int],
    padding: tuple[tuple[int, int], ...],
    lhs_dilation: tuple[int, int],
    rhs_dilation: tuple[int, int],
    precision: Any,
) -> jax.Array:
    """NHWC x HWIO -> NHWC convolution with explicit padding and canonical gradients."""
    return _conv(x, w, strides, padding, lhs_dilation, rhs_dilation, precision)


def _conv_nhwc_fwd(x, w, strides, padding, lhs_dilation, rhs_dilation, precision):
    y = _conv_nhwc(x, w, strides, padding, lhs_dilation, rhs_dilation, precision)
    return y, (x, w)


def _conv_nhwc_bwd(strides, padding, lhs_dilation, rhs_dilation, precision, residuals, g):
    x, w = residuals
    dx = _input_grad(g, w, x.shape[1:3], strides, padding, lhs_dilation, rhs_dilation, precision)
    dw = _kernel_grad(x, g, w.shape[:2], strides, padding, lhs_dilation, rhs_dilation, precision)
    return dx.astype(x.dtype), dw.astype(w.dtype)


_conv_nhwc.defvjp(_conv_nhwc_fwd, _conv_nhwc_bwd)


def _input_grad(
    g: jax.Array,
    w: jax.Array,
    in_hw: Sequence[int],
    strides: Sequence[int],
    padding: Pairs,
    lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int],
    precision: Any,
) -> jax.Array:
    """dL/dx ``[B, H, W, Cin]``: JAX's transpose rule, with the kernel transposed explicitly.

    dx = conv(g, W'; strides l, lhs_dilation s, rhs_dilation d), W' = W flipped in space with
    in/out swapped (HWIO ``[kh, kw, Cout, Cin]``); padding low = dilate(k, d) - 1 - p,
    high = dilate(H, l) + dilate(k, d) - 1 - dilate(Ho, s) - low.
    """
    pads = []
    for axis in range(2):
        k = _dilate(w.shape[axis], rhs_dilation[axis])
        low = k - 1 - padding[axis][0]
        out = _dilate(g.shape[1 + axis], strides[axis])
        pads.append((low, _dilate(in_hw[axis], lhs_dilation[axis]) + k - 1 - out - low))
    w_t = jnp.swapaxes(w[::-1, ::-1], 2, 3)
    return _conv(g, w_t, lhs_dilation, pads, strides, rhs_dilation, precision)


def _kernel_grad(
    x: jax.Array,
    g: jax.Array,
    kernel_hw: Sequence[int],
    strides: Sequence[int],
    padding: Pairs,
    lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int],
    precision: Any,
) -> jax.Array:
    """dL/dW ``[kh, kw, Cin, Cout]`` as one canonical (NHWC/HWIO) convolution.

    Per spatial axis dW[i] = sum_{b, u, q} x[b, u] g[b, q] [l u + p = s q + d i]; the batch is
    the contracted feature axis, so one operand needs a batch-innermost transpose, which XLA:CPU
    does slowly. x plays the kernel when it is the smaller (else XLA's algebraic simplifier would
    swap the operands into a non-canonical layout) and for strided convolutions, whose dilated g
    then splits into undilated phases (so only the smaller g gets the slow transpose):

    - g is the kernel: conv(x^T ``[Cin, H, W, B]``, g^T ``[Ho, Wo, B, Cout]``; strides d,
      lhs_dilation l, rhs_dilation s, padding (p, dilate(Ho, s) - dilate(H, l) + dilate(k, d)
      - p - 1)) = dW^T ``[Cin, kh, kw, Cout]``;
    - x is the kernel: conv(g^T ``[Cout, Ho, Wo, B]``, x^T ``[H, W, B, Cin]``; strides d,
      lhs_dilation s, rhs_dilation l, padding (d (k - 1) - p, dilate(H, l) - dilate(Ho, s) + p))
      = dW flipped in space ``[Cout, kh, kw, Cin]``.
    """
    x_is_kernel = x.shape[1] * x.shape[2] < g.shape[1] * g.shape[2] or (
        max(strides) > 1
        and tuple(lhs_dilation) == tuple(rhs_dilation) == (1, 1)
        and x.shape[3] >= _POLYPHASE_MIN_FEATURES
    )
    pads = []
    for axis in range(2):
        low, k = padding[axis][0], kernel_hw[axis]
        x_len = _dilate(x.shape[1 + axis], lhs_dilation[axis])
        g_len = _dilate(g.shape[1 + axis], strides[axis])
        if x_is_kernel:
            pads.append((rhs_dilation[axis] * (k - 1) - low, x_len - g_len + low))
        else:
            pads.append((low, g_len - x_len + _dilate(k, rhs_dilation[axis]) - low - 1))
    if x_is_kernel:
        lhs, rhs = jnp.transpose(g, (3, 1, 2, 0)), jnp.transpose(x, (1, 2, 0, 3))
        dw_t = _conv(lhs, rhs, rhs_dilation, pads, strides, lhs_dilation, precision)
        return jnp.transpose(dw_t[:, ::-1, ::-1], (1, 2, 3, 0))
    lhs, rhs = jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(g, (1, 2, 0, 3))
    dw_t = _conv(lhs, rhs, rhs_dilation, pads, lhs_dilation, strides, precision)
    return jnp.transpose(dw_t, (1, 2, 0, 3))


def _is_nhwc(dn: lax.ConvDimensionNumbers) -> bool:
    return (
        tuple(dn.lhs_spec) == _NHWC.lhs_spec
        and tuple(dn.rhs_spec) == _NHWC.rhs_spec
        and tuple(dn.out_spec) == _NHWC.out_spec
    )


def conv_general_dilated(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: Padding,
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    out_sharding: Any = None,
    *,
    impl: str | None = None,
) -> jax.Array:
    """``lax.conv_general_dilated`` with scan-friendly gradients on CPU.

    Same signature and values as ``lax.conv_general_dilated`` (so it plugs into Flax's
    ``nn.Conv(conv_general_dilated=...)`` hook). The custom path covers 2-D NHWC/HWIO
    convolutions without feature/batch grouping; everything else, and ``impl="lax"``, calls
    ``lax.conv_general_dilated`` unchanged.

    Examples:
        A stride-2 NHWC convolution: the canonical path gives ``lax``'s values and gradients.

        >>> x = jnp.linspace(-1.0, 1.0, 2 * 6 * 6 * 3).reshape(2, 6, 6, 3)
        >>> w = jnp.linspace(-1.0, 1.0, 3 * 3 * 3 * 4).reshape(3, 3, 3, 4)
        >>> def loss(x, w, impl):
        ...     y = conv_general_dilated(
        ...         x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), impl=impl)
        ...     return jnp.sum(y**2)
        >>> grads = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
        >>> canonical, reference = grads(x, w, "canonical"), grads(x, w, "lax")
        >>> [bool(jnp.allclose(a, b, rtol=1e-4, atol=1e-4)) for a, b in zip(canonical, reference)]
        [True, True]
    """
    plain = functools.partial(
        lax.conv_general_dilated,
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation,
        rhs_dilation,
        dimension_numbers,
        feature_group_count,
        batch_group_count,
        precision,
        preferred_element_type,
        out_sharding,
    )
    if resolve_impl(impl) == "lax" or lhs.ndim != 4 or rhs.ndim != 4:
        return plain()
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    if (
        not _is_nhwc(dn)
        or feature_group_count != 1
        or batch_group_count != 1
        or preferred_element_type is not None
        or out_sharding is not None
    ):
        return plain()
    strides = tuple(int(s) for s in window_strides)
    lhs_dil = tuple(int(d) for d in lhs_dilation) if lhs_dilation else (1, 1)
    rhs_dil = tuple(int(d) for d in rhs_dilation) if rhs_dilation else (1, 1)
    if isinstance(padding, str):
        kernel_hw = [_dilate(k, d) for k, d in zip(rhs.shape[:2], rhs_dil, strict=True)]
        padding = lax.padtype_to_pads(lhs.shape[1:3], kernel_hw, strides, padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _conv_nhwc(lhs, rhs, strides, pads, lhs_dil, rhs_dil, precision)

"""``jaxrobust.nn.conv_ops`` and the conv layers built on it.

References: ``lax.conv_general_dilated`` with JAX's own gradients, and (for negative padding,
which XLA:CPU gets wrong in some cases) a convolution written with pad / slice / einsum only.
Gradients are checked outside and inside ``lax.scan``, the setting the custom gradients exist
for; a structural test checks that every convolution XLA compiles in a scanned gradient is
canonical (NHWC/HWIO), which is what keeps it off XLA:CPU's naive loop.
"""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxrobust.nn import ConvDecoder, ConvEncoder, conv_ops, layers

DN = ("NHWC", "HWIO", "NHWC")
HIGHEST = lax.Precision.HIGHEST

# (input H, W, kernel kh, kw, strides, padding, lhs_dilation, rhs_dilation)
CASES = [
    ((14, 14), (4, 4), (2, 2), ((1, 1), (1, 1)), (1, 1), (1, 1)),  # VAE encoder
    ((7, 7), (4, 4), (1, 1), ((2, 2), (2, 2)), (2, 2), (1, 1)),  # VAE decoder (transposed)
    ((9, 8), (3, 3), (1, 1), "SAME", (1, 1), (1, 1)),
    ((9, 9), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), (1, 1)),  # ResNet downsampling
    ((8, 8), (1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1), (1, 1)),  # 1x1 projection shortcut
    ((10, 9), (3, 2), (3, 2), ((2, 0), (1, 3)), (1, 1), (1, 1)),
    ((9, 9), (3, 3), (1, 2), "VALID", (1, 1), (2, 1)),  # kernel dilation
    ((5, 6), (3, 4), (2, 1), ((2, 1), (0, 3)), (3, 2), (1, 2)),  # everything at once
    ((7, 6), (5, 2), (1, 1), ((0, 2), (3, 1)), (2, 3), (1, 1)),  # phases without taps
    ((2, 6), (1, 1), (3, 1), ((2, -1), (3, 1)), (1, 1), (2, 1)),  # some windows see no input
]


def _arrays(case, batch=3, cin=5, cout=4, seed=0):
    (h, w), (kh, kw), strides, padding, lhs_dil, rhs_dil = case
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(batch, h, w, cin)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(kh, kw, cin, cout)), jnp.float32)
    return x, k


def _convs(case):
    _, _, strides, padding, lhs_dil, rhs_dil = case

    def ref(x, k):
        return lax.conv_general_dilated(
            x, k, strides, padding, lhs_dil, rhs_dil, DN, precision=HIGHEST
        )

    def ours(x, k):
        return conv_ops.conv_general_dilated(
            x, k, strides, padding, lhs_dil, rhs_dil, DN, precision=HIGHEST, impl="canonical"
        )

    return ref, ours


def _value_and_grads(f, x, k, g):
    y, vjp = jax.vjp(f, x, k)
    return (y, *vjp(g))


@jax.jit(static_argnums=(0, 1))
def _both(ours, ref, x, k, g):
    """(ours, reference) values and gradients, one compilation."""
    return _value_and_grads(ours, x, k, g), _value_and_grads(ref, x, k, g)


def _assert_close(got, want, what):
    for name, a, b in zip(("y", "dx", "dW"), got, want, strict=True):
        a, b = np.asarray(a), np.asarray(b)  # numpy: no per-shape compilation
        scale = float(np.max(np.abs(b), initial=0.0)) + 1e-6
        err = float(np.max(np.abs(a - b), initial=0.0))
        assert a.shape == b.shape, f"{what} {name}: shape {a.shape} != {b.shape}"
        assert err <= 1e-5 * scale, f"{what} {name}: max error {err} (scale {scale})"


# Polyphase splitting of lhs-dilated convolutions (and the strided kernel-gradient form that
# relies on it) only applies from 32 output channels on; run every case with it forced on and off.
POLYPHASE = {"polyphase": 1, "dilated": 10**9}


@pytest.fixture(params=list(POLYPHASE), scope="module")
def polyphase(request):
    """Sets ``conv_ops._POLYPHASE_MIN_FEATURES`` (read when functions are traced)."""
    saved = conv_ops._POLYPHASE_MIN_FEATURES
    conv_ops._POLYPHASE_MIN_FEATURES = POLYPHASE[request.param]
    yield request.param
    conv_ops._POLYPHASE_MIN_FEATURES = saved


@pytest.fixture(scope="module")
def results_for_all_cases(polyphase):
    """[(ours, reference)] values and gradients for every case, in one compilation."""
    inputs, fns = [], []
    for case in CASES:
        ref, ours = _convs(case)
        x, k = _arrays(case)
        g = jnp.asarray(np.random.default_rng(1).normal(size=ref(x, k).shape), jnp.float32)
        inputs.append((x, k, g))
        fns.append((ours, ref))

    @jax.jit
    def run(inputs):
        return [
            (_value_and_grads(ours, *args), _value_and_grads(ref, *args))
            for (ours, ref), args in zip(fns, inputs, strict=True)
        ]

    return run(inputs)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_values_and_grads_match_lax(index, results_for_all_cases):
    _assert_close(*results_for_all_cases[index], f"case {CASES[index]}")


@pytest.mark.parametrize("case", [CASES[i] for i in (0, 1, 3)], ids=["0", "1", "3"])
def test_grads_inside_scan_match_lax(case, polyphase):
    """Two scan steps, each on its own (x, g): the per-step values equal lax's outside scan."""
    ref, ours = _convs(case)
    x, k = _arrays(case)
    xs = jnp.stack([x, 2.0 * x[::-1] - 1.0])
    g_shape = (2, *ref(x, k).shape)
    gs = jnp.asarray(np.random.default_rng(2).normal(size=g_shape), jnp.float32)

    @jax.jit
    def scanned(k, xs, gs):
        def body(carry, inputs):
            return carry, _value_and_grads(ours, inputs[0], k, inputs[1])

        return lax.scan(body, 0, (xs, gs))[1]

    got = scanned(k, xs, gs)
    want = jax.jit(jax.vmap(lambda x, g: _value_and_grads(ref, x, k, g)))(xs, gs)
    for step in range(2):
        _assert_close([t[step] for t in got], [t[step] for t in want], f"scan step {step}")


def _pure_conv(x, k, strides, padding, lhs_dil):
    """Convolution from pad / slice / einsum only (no convolution op, any padding sign)."""
    zero = jnp.zeros((), x.dtype)
    config = [
        (0, 0, 0),
        *((lo, hi, d - 1) for (lo, hi), d in zip(padding, lhs_dil, strict=True)),
        (0, 0, 0),
    ]
    xp = lax.pad(x, zero, config)
    kh, kw = k.shape[:2]
    ho = (xp.shape[1] - kh) // strides[0] + 1
    wo = (xp.shape[2] - kw) // strides[1] + 1
    out = 0.0
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i : i + strides[0] * (ho - 1) + 1 : strides[0]]
            patch = patch[:, :, j : j + strides[1] * (wo - 1) + 1 : strides[1]]
            out = out + jnp.einsum("bhwc,co->bhwo", patch, k[i, j], precision=HIGHEST)
    return out


@pytest.mark.parametrize(
    "padding, lhs_dil",
    [(((-1, 1), (0, 0)), (1, 1)), (((-1, 2), (1, -1)), (1, 2))],
)
def test_negative_padding_matches_pure_reference(padding, lhs_dil):
    """Padding (-1, 1) with C > 1 is where XLA:CPU's own convolution returns garbage."""
    x, k = _arrays(((7, 6), (2, 3), None, None, None, None), cin=3, cout=2)

    def ours(x, k):
        return conv_ops.conv_general_dilated(
            x, k, (1, 1), padding, lhs_dil, None, DN, precision=HIGHEST, impl="canonical"
        )

    def ref(x, k):
        return _pure_conv(x, k, (1, 1), padding, lhs_dil)

    g = jnp.asarray(np.random.default_rng(3).normal(size=ref(x, k).shape), jnp.float32)
    _assert_close(*_both(ours, ref, x, k, g), "neg pad")


def _compiled_conv_labels(conv, case) -> list[str]:
    x, k = _arrays(case, batch=4, cin=8, cout=8)
    _, strides, padding, lhs_dil, rhs_dil = case[1:]

    def step_grads(k, x):
        def loss(k, x):
            return jnp.sum(conv(x, k, strides, padding, lhs_dil, rhs_dil, DN) ** 2)

        return jax.grad(loss, argnums=(0, 1))(k, x)

    def scanned(k, xs):
        return lax.scan(lambda c, x: (c, step_grads(k, x)), 0, xs)[1]

    text = jax.jit(scanned).lower(k, jnp.stack([x, x])).compile().as_text()
    return [
        line.split("dim_labels=")[1].split(",")[0]
        + (" rhs_reversal" if "rhs_reversal" in line else "")
        for line in text.splitlines()
        if re.search(r"= \S+ convolution\(", line)
    ]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU layout rules")
@pytest.mark.parametrize("case", [CASES[0], CASES[1]], ids=["strided", "transposed"])
def test_scanned_gradient_convolutions_are_canonical(case, polyphase):
    ours = lambda *a: conv_ops.conv_general_dilated(*a, impl="canonical")  # noqa: E731
    labels = _compiled_conv_labels(ours, case)
    assert labels, "no convolution found in the compiled HLO"
    assert set(labels) == {"b01f_01io->b01f"}, labels
    # The plain lax gradient is what the custom VJP replaces: non-canonical inside the loop.
    assert set(_compiled_conv_labels(lax.conv_general_dilated, case)) != {"b01f_01io->b01f"}


def test_impl_selection(monkeypatch):
    x, k = _arrays(CASES[0])

    def uses_custom_vjp(**kw) -> bool:
        jaxpr = jax.make_jaxpr(
            lambda x, k: conv_ops.conv_general_dilated(x, k, (2, 2), "SAME", None, None, DN, **kw)
        )(x, k)
        return "custom_vjp" in str(jaxpr)

    monkeypatch.delenv(conv_ops.ENV_VAR, raising=False)
    assert conv_ops.resolve_impl() == ("canonical" if jax.default_backend() == "cpu" else "lax")
    assert uses_custom_vjp(impl="canonical") and not uses_custom_vjp(impl="lax")
    monkeypatch.setenv(conv_ops.ENV_VAR, "lax")
    assert conv_ops.resolve_impl() == "lax" and not uses_custom_vjp()
    with conv_ops.conv_impl("canonical"):  # the context beats the environment
        assert uses_custom_vjp()
    assert not uses_custom_vjp()
    monkeypatch.setenv(conv_ops.ENV_VAR, "im2col")
    with pytest.raises(ValueError, match="Unknown convolution implementation"):
        conv_ops.resolve_impl()


@pytest.mark.parametrize(
    "kwargs, dn",
    [({"feature_group_count": 5}, DN), ({}, ("NCHW", "OIHW", "NCHW"))],
    ids=["grouped", "nchw"],
)
def test_unsupported_configurations_fall_back_to_lax(kwargs, dn):
    x, k = _arrays(CASES[2], cin=5, cout=5)
    if dn[0] == "NCHW":
        x, k = jnp.transpose(x, (0, 3, 1, 2)), jnp.transpose(k, (3, 2, 0, 1))
    if "feature_group_count" in kwargs:
        k = k[:, :, :1]

    def ours(x, k):
        return conv_ops.conv_general_dilated(x, k, (1, 1), "SAME", None, None, dn, **kwargs)

    def ref(x, k):
        return lax.conv_general_dilated(x, k, (1, 1), "SAME", None, None, dn, **kwargs)

    assert "custom_vjp" not in str(jax.make_jaxpr(ours)(x, k))
    g = jnp.ones(ref(x, k).shape)
    _assert_close(*_both(ours, ref, x, k, g), "fallback")


def test_cpu_compiler_options():
    assert conv_ops.cpu_compiler_options("gpu") == {}
    options = conv_ops.cpu_compiler_options("cpu")
    assert options == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
    if jax.default_backend() == "cpu":  # XLA accepts it
        compiled = jax.jit(lambda a: a @ a).lower(jnp.eye(4)).compile(compiler_options=options)
        np.testing.assert_allclose(compiled(jnp.eye(4)), np.eye(4))


TRANSPOSE_CASES = [
    {"kernel_size": (4, 4), "strides": (2, 2), "padding": "SAME"},  # ConvDecoder
    {"kernel_size": (3, 3), "strides": (2, 2), "padding": "VALID"},
    {"kernel_size": (3, 2), "strides": (1, 3), "padding": "SAME", "use_bias": False},
    {"kernel_size": (4, 4), "strides": (2, 2), "padding": 1},
    {"kernel_size": (3, 3), "strides": (2, 2), "padding": ((2, 0), (1, 1))},
    {"kernel_size": (3, 3), "strides": (2, 2), "kernel_dilation": (2, 1), "transpose_kernel": True},
]


@pytest.mark.parametrize("kwargs", TRANSPOSE_CASES, ids=[str(i) for i in range(6)])
def test_conv_transpose_matches_flax(kwargs):
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 7, 6, 3)), jnp.float32)
    theirs, ours = nn.ConvTranspose(5, **kwargs), layers.ConvTranspose(5, **kwargs)
    shapes = jax.eval_shape(theirs.init, jax.random.key(0), x)
    assert jax.eval_shape(ours.init, jax.random.key(0), x) == shapes
    rng = np.random.default_rng(5)
    variables = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype), shapes)

    @jax.jit
    def run_both(variables, x):
        outs = []
        for module in (theirs, ours):
            y, vjp = jax.vjp(lambda v, x: module.apply(v, x), variables, x)  # noqa: B023
            g = jnp.cos(jnp.arange(y.size, dtype=y.dtype)).reshape(y.shape)
            outs.append((y, *vjp(g)))
        return outs

    want, got = run_both(variables, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_conv_transpose_initialises_like_flax():
    x = jnp.zeros((1, 7, 7, 8))
    theirs, ours = nn.ConvTranspose(4, (4, 4), (2, 2)), layers.ConvTranspose(4, (4, 4), (2, 2))
    init = jax.jit(lambda key: (theirs.init(key, x), ours.init(key, x)))
    want, got = init(jax.random.key(3))
    assert jax.tree.all(jax.tree.map(np.array_equal, got, want))
    assert float(jnp.std(got["params"]["kernel"])) > 0.01


def test_conv_matches_flax_and_models_keep_parameter_paths():
    x = jnp.asarray(np.random.default_rng(6).normal(size=(2, 8, 8, 3)), jnp.float32)
    rng = np.random.default_rng(7)
    shapes = jax.eval_shape(nn.Conv(4, (3, 3), strides=2).init, jax.random.key(0), x)
    variables = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype), shapes)
    np.testing.assert_allclose(
        jax.jit(layers.Conv(4, (3, 3), strides=2).apply)(variables, x),
        jax.jit(nn.Conv(4, (3, 3), strides=2).apply)(variables, x),
        rtol=1e-6,
        atol=1e-6,
    )
    key = jax.random.key(0)
    enc = jax.eval_shape(ConvEncoder(4).init, key, jnp.zeros((1, 28, 28, 1)))["params"]
    dec = jax.eval_shape(ConvDecoder((28, 28, 1)).init, key, jnp.zeros((1, 4)))["params"]
    shapes = jax.tree.map(lambda a: a.shape, {"enc": enc, "dec": dec})
    assert shapes == {
        "enc": {
            "Conv_0": {"kernel": (4, 4, 1, 32), "bias": (32,)},
            "Conv_1": {"kernel": (4, 4, 32, 64), "bias": (64,)},
            "Dense_0": {"kernel": (7 * 7 * 64, 8), "bias": (8,)},
        },
        "dec": {
            "Dense_0": {"kernel": (4, 7 * 7 * 64), "bias": (7 * 7 * 64,)},
            "ConvTranspose_0": {"kernel": (4, 4, 64, 32), "bias": (32,)},
            "ConvTranspose_1": {"kernel": (4, 4, 32, 1), "bias": (1,)},
        },
    }


@pytest.mark.parametrize("shape", [(3, 8, 6, 4), (2, 3, 7, 5, 2)])
def test_max_pool_2x2_matches_flax_with_ties(shape):
    """Values and gradients equal ``nn.max_pool``'s, ties included (first maximum wins)."""
    rng = np.random.default_rng(8)
    x = jnp.asarray(np.round(rng.normal(size=shape)), jnp.float32)  # many ties
    x = x.at[..., :2, :2, :].set(0.0)  # a whole window of equal values

    @jax.jit
    def both(x):
        outs = []
        for pool in (lambda x: nn.max_pool(x, (2, 2), strides=(2, 2)), layers.max_pool_2x2):
            y, vjp = jax.vjp(pool, x)
            g = jnp.cos(jnp.arange(y.size, dtype=y.dtype)).reshape(y.shape) + 2.0
            outs.append((y, *vjp(g)))
        return outs

    want, got = both(x)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

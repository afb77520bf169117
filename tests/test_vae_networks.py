"""VAE encoder/decoder registry: shapes, hand-counted parameters, batch norm, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.distributions.latent import GAUSSIAN
from jaxrobust.nn import VAE_NETWORKS, ConvDecoder, make_vae_networks
from jaxrobust.nn.layers import Conv, ConvTranspose
from jaxrobust.nn.vae_networks import _PAD1, _PAD_UP2

KEY = jax.random.PRNGKey(0)

SUPPORTED = {
    "ch3_gray": [(28, 28, 1), (32, 32, 3)],
    "ch3_rgb": [(32, 32, 3), (28, 28, 1)],
    "dcgan": [(32, 32, 3), (32, 32, 1)],
    "mlp": [(28, 28, 1), (32, 32, 3)],
    "conv": [(28, 28, 1), (32, 32, 3)],
    "lipschitz_mlp": [(28, 28, 1), (32, 32, 3)],
}
UNSUPPORTED = {
    "ch3_gray": (27, 27, 1),
    "ch3_rgb": (30, 30, 3),
    "dcgan": (28, 28, 3),
    "conv": (30, 30, 1),
}
BATCH_NORM = ("ch3_rgb", "dcgan")


def _count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


def expected_counts(name, shape, L, O):  # noqa: E741 - L = latent dim, O = out channels
    """(encoder params, decoder params, encoder batch stats, decoder batch stats) by hand."""
    H, W, C = shape
    if name == "ch3_gray":  # Tables 3.5 / 3.6; VALID 3x3 convs, 2x2 pool: 28 -> 26 -> 24 -> 12
        flat = 16 * (H - 4) // 2 * (W - 4) // 2  # 16 * 12 * 12 = 2304 at 28x28
        enc = (3 * 3 * C * 32 + 32) + (3 * 3 * 32 * 16 + 16) + 2 * (flat * L + L)
        dec = (L * flat + flat) + (3 * 3 * 16 * 32 + 32) + (3 * 3 * 32 * O + O)
        return enc, dec, 0, 0
    if name == "ch3_rgb":  # Tables 3.7 / 3.8; convs without bias, BN = scale + bias
        flat = 16 * (H // 4) * (W // 4)  # 16 * 8 * 8 = 1024 at 32x32
        enc = (
            3 * 3 * C * 16 + 2 * 16
            + 3 * 3 * 16 * 32 + 2 * 32
            + 3 * 3 * 32 * 32 + 2 * 32
            + 3 * 3 * 32 * 16 + 2 * 16
            + (flat * 512 + 512) + 2 * 512
            + 2 * (512 * L + L)
        )  # fmt: skip
        dec = (
            (L * 512 + 512) + 2 * 512
            + (512 * flat + flat) + 2 * flat
            + 3 * 3 * 16 * 32 + 2 * 32
            + 3 * 3 * 32 * 32 + 2 * 32
            + 3 * 3 * 32 * 16 + 2 * 16
            + 3 * 3 * 16 * O
        )  # fmt: skip
        return enc, dec, 2 * (16 + 32 + 32 + 16 + 512), 2 * (512 + flat + 32 + 32 + 16)
    if name == "dcgan":  # seed 004 A.2.2; 4x4 stride-2 convs, no bias before BN
        flat = 128 * (H // 8) * (W // 8)  # 4 * 4 * 128 = 2048 at 32x32
        enc = (
            4 * 4 * C * 32 + 2 * 32
            + 4 * 4 * 32 * 64 + 2 * 64
            + 4 * 4 * 64 * 128 + 2 * 128
            + (flat * 2 * L + 2 * L)
        )  # fmt: skip
        dec = (
            L * flat + 2 * 128
            + 4 * 4 * 128 * 128 + 2 * 128
            + 4 * 4 * 128 * 64 + 2 * 64
            + 4 * 4 * 64 * O + O
        )  # fmt: skip
        return enc, dec, 2 * (32 + 64 + 128), 2 * (128 + 128 + 64)
    if name == "mlp":  # hidden (512, 256), mirrored
        D = H * W
        enc = (D * C * 512 + 512) + (512 * 256 + 256) + (256 * 2 * L + 2 * L)
        dec = (L * 256 + 256) + (256 * 512 + 512) + (512 * D * O + D * O)
        return enc, dec, 0, 0
    if name == "conv":  # ConvEncoder (32, 64), ConvDecoder (64, 32); 4x4 stride 2, SAME
        flat = 64 * (H // 4) * (W // 4)
        enc = (4 * 4 * C * 32 + 32) + (4 * 4 * 32 * 64 + 64) + (flat * 2 * L + 2 * L)
        dec = (L * flat + flat) + (4 * 4 * 64 * 32 + 32) + (4 * 4 * 32 * O + O)
        return enc, dec, 0, 0
    if name == "lipschitz_mlp":  # hidden (512, 256), mirrored, no biases (Algorithm 1)
        D = H * W
        enc = D * C * 512 + 512 * 256 + 256 * 2 * L
        dec = L * 256 + 256 * 512 + 512 * D * O
        return enc, dec, 0, 0
    raise AssertionError(name)


def test_registry_names():
    assert set(VAE_NETWORKS) == set(SUPPORTED)
    assert "rosca" not in VAE_NETWORKS  # Rosca et al. (2018) table 4 not found: not provided


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_shapes_and_parameter_counts(name):
    for shape in SUPPORTED[name]:
        channels = shape[-1]
        for latent_dim in (2, 10):
            for out_channels in (channels, 2 * channels):
                enc, dec = make_vae_networks(name, shape, latent_dim, out_channels)
                x = jnp.zeros((3,) + shape)
                z = jnp.zeros((3, latent_dim))
                enc_vars = jax.eval_shape(enc.init, KEY, x)
                dec_vars = jax.eval_shape(dec.init, KEY, z)
                mu, log_var = jax.eval_shape(
                    lambda v, x, enc=enc: GAUSSIAN.params(enc.apply(v, x)), enc_vars, x
                )
                out = jax.eval_shape(dec.apply, dec_vars, z)
                assert mu.shape == log_var.shape == (3, latent_dim)
                assert out.shape == (3,) + shape[:2] + (out_channels,)
                counts = (
                    _count(enc_vars["params"]),
                    _count(dec_vars["params"]),
                    _count(enc_vars.get("batch_stats", {})),
                    _count(dec_vars.get("batch_stats", {})),
                )
                assert counts == expected_counts(name, shape, latent_dim, out_channels), (
                    name,
                    shape,
                    latent_dim,
                    out_channels,
                )


def test_paper_sizes():
    """The configurations of the seeds, spelled out."""
    enc, dec = make_vae_networks("ch3_gray", (28, 28, 1), 10, 1)
    assert expected_counts("ch3_gray", (28, 28, 1), 10, 1) == (
        320 + 4624 + 2 * 23050,  # 3*3*1*32+32, 3*3*32*16+16, 2 * (2304*10+10)
        25344 + 4640 + 289,  # 10*2304+2304, 3*3*16*32+32, 3*3*32*1+1
        0,
        0,
    )
    x = jnp.zeros((1, 28, 28, 1))
    assert _count(jax.eval_shape(enc.init, KEY, x)["params"]) == 51044
    enc, _ = make_vae_networks("ch3_rgb", (32, 32, 3), 70, 3)
    params = jax.eval_shape(enc.init, KEY, jnp.zeros((1, 32, 32, 3)))["params"]
    assert params["Dense_0"]["kernel"].shape == (1024, 512)  # 8x8x16 after two stride-2 convs
    enc, _ = make_vae_networks("dcgan", (32, 32, 3), 20, 3)
    params = jax.eval_shape(enc.init, KEY, jnp.zeros((1, 32, 32, 3)))["params"]
    assert params["Dense_0"]["kernel"].shape == (2048, 40)  # 4x4x128 after three


def _cheap_variables(module, inp):
    """Random params and unit batch stats without running ``init`` eagerly (saves compiles)."""
    shapes = jax.eval_shape(module.init, KEY, inp)
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map(
        lambda s: jnp.asarray(0.1 * rng.normal(size=s.shape), s.dtype), shapes["params"]
    )
    stats = jax.tree_util.tree_map(lambda s: jnp.ones(s.shape, s.dtype), shapes["batch_stats"])
    return {"params": params, "batch_stats": stats}


@pytest.mark.parametrize("name", BATCH_NORM)
def test_batch_norm_train_updates_stats_eval_does_not(name):
    shape, latent_dim = (16, 16, 3), 4  # small and supported by both: only BN is tested
    enc, dec = make_vae_networks(name, shape, latent_dim, 3)
    x = jax.random.uniform(KEY, (4,) + shape)
    z = jax.random.normal(KEY, (4, latent_dim))
    for module, inp in ((enc, x), (dec, z)):
        variables = _cheap_variables(module, inp)
        stats0 = variables["batch_stats"]
        out_train, updated = module.apply(variables, inp, train=True, mutable=["batch_stats"])
        changed = jax.tree_util.tree_map(
            lambda a, b: bool(jnp.any(a != b)), stats0, updated["batch_stats"]
        )
        assert all(jax.tree_util.tree_leaves(changed))
        out_eval, same = module.apply(variables, inp, train=False, mutable=["batch_stats"])
        jax.tree_util.tree_map(np.testing.assert_array_equal, stats0, same["batch_stats"])
        assert not np.allclose(
            np.asarray(jax.tree_util.tree_leaves(out_train)[0]),
            np.asarray(jax.tree_util.tree_leaves(out_eval)[0]),
        )


def test_ch3_log_var_is_twice_log_sigma():
    enc, _ = make_vae_networks("ch3_gray", (28, 28, 1), 3, 1)
    variables = enc.init(KEY, jnp.zeros((1, 28, 28, 1)))
    params = jax.tree_util.tree_map(lambda a: a, variables["params"])
    params["log_sigma"]["kernel"] = jnp.zeros_like(params["log_sigma"]["kernel"])
    params["log_sigma"]["bias"] = jnp.array([0.5, -1.0, 2.0])
    _, log_var = GAUSSIAN.params(
        enc.apply({"params": params}, jax.random.uniform(KEY, (2, 28, 28, 1)))
    )
    np.testing.assert_allclose(log_var, jnp.tile(jnp.array([1.0, -2.0, 4.0]), (2, 1)))


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_image_shape_raises(name):
    with pytest.raises(ValueError, match=rf"{name} supports image shapes|ConvDecoder: image size"):
        make_vae_networks(name, UNSUPPORTED[name], 4, UNSUPPORTED[name][-1])


def test_bad_arguments_raise():
    with pytest.raises(
        ValueError, match="known: ch3_gray, ch3_rgb, conv, dcgan, lipschitz_mlp, mlp"
    ):
        make_vae_networks("nope", (28, 28, 1), 4, 1)
    with pytest.raises(ValueError, match="Rosca"):
        make_vae_networks("rosca", (28, 28, 1), 4, 1)
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        make_vae_networks("mlp", (28, 28), 4, 1)
    with pytest.raises(ValueError, match="Unknown option 'bogus'"):
        make_vae_networks("mlp", (28, 28, 1), 4, 1, bogus=1)


def test_options():
    enc, dec = make_vae_networks("mlp", (8, 8, 1), 2, 2, hidden=[16])
    assert enc.hidden == dec.hidden == (16,)
    enc, dec = make_vae_networks(
        "conv", (32, 32, 3), 2, 3, encoder_features=(8, 8, 8), decoder_features=(8, 8, 8)
    )
    assert enc.features == dec.features == (8, 8, 8)
    out = jax.eval_shape(dec.init_with_output, KEY, jnp.zeros((1, 2)))[0]
    assert out.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="multiples of 8"):
        make_vae_networks("conv", (28, 28, 1), 2, 1, decoder_features=(8, 8, 8))
    enc, dec = make_vae_networks("dcgan", (32, 32, 3), 2, 3, bn_momentum=0.5)
    assert enc.bn_momentum == dec.bn_momentum == 0.5


def test_conv_decoder_out_channels_default_unchanged():
    z = jnp.zeros((2, 4))
    out = jax.eval_shape(ConvDecoder((28, 28, 1)).init_with_output, KEY, z)[0]
    assert out.shape == (2, 28, 28, 1)
    out = jax.eval_shape(ConvDecoder((28, 28, 1), out_channels=2).init_with_output, KEY, z)[0]
    assert out.shape == (2, 28, 28, 2)


@pytest.mark.gpu
def test_padding_matches_pytorch():
    """Explicit pads of ch3_rgb = PyTorch Conv2d(3, padding=1) / ConvTranspose2d(3, padding=1,
    output_padding=stride - 1) with the transposed-conv kernel flipped."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2))
    w = rng.normal(size=(3, 3, 3, 5)).astype(np.float32)  # HWIO
    for stride in (1, 2):
        y = Conv(5, (3, 3), strides=(stride, stride), padding=_PAD1, use_bias=False).apply(
            {"params": {"kernel": w}}, x
        )
        ref = torch.nn.functional.conv2d(
            x_t, torch.from_numpy(w.transpose(3, 2, 0, 1)), stride=stride, padding=1
        )
        np.testing.assert_allclose(y, ref.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
        pads = _PAD_UP2 if stride == 2 else _PAD1
        y = ConvTranspose(5, (3, 3), strides=(stride, stride), padding=pads, use_bias=False).apply(
            {"params": {"kernel": w}}, x
        )
        w_t = torch.from_numpy(w[::-1, ::-1].transpose(2, 3, 0, 1).copy())  # [in, out, kh, kw]
        ref = torch.nn.functional.conv_transpose2d(
            x_t, w_t, stride=stride, padding=1, output_padding=stride - 1
        )
        assert y.shape == (2, 8 * stride, 8 * stride, 5)
        np.testing.assert_allclose(y, ref.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)

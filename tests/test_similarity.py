"""SSIM against scikit-image and dm-pix, MS-SSIM against pytorch_msssim (independent codes)."""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim as torch_ms_ssim
from scipy import ndimage
from skimage.metrics import structural_similarity

from jaxrobust.errors import InputError
from jaxrobust.metrics import MNIST_MS_SSIM, ms_ssim, ms_ssim_weights, ssim


def _pair(shape, noise, seed=0, smooth=0.0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=shape)
    if smooth:
        x = ndimage.gaussian_filter(x, (0, smooth, smooth, 0))
    y = np.clip(x + noise * rng.normal(size=shape), 0.0, 1.0)
    return x.astype(np.float32), y.astype(np.float32)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image_and_dm_pix(channels):
    x, y = _pair((4, 40, 36, channels), 0.2)
    ours = np.asarray(ssim(x, y))
    reference = [
        structural_similarity(
            x[i],
            y[i],
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )  # fmt: skip
        for i in range(len(x))
    ]
    np.testing.assert_allclose(ours, reference, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(ours, np.asarray(dm_pix.ssim(x, y)), rtol=2e-5, atol=1e-6)
    assert np.all(ours < 0.99)  # noisy pairs: the comparison is not between ones


def _torch(a):
    return torch.tensor(a).permute(0, 3, 1, 2)


@pytest.mark.parametrize(
    ("size", "options"),
    [(192, {}), (112, MNIST_MS_SSIM)],  # 5 scales, 11x11 window; the 3-scale 7x7 setting
    ids=["five_scales", "mnist_setting"],
)
def test_ms_ssim_matches_pytorch_msssim(size, options):
    x, y = _pair((3, size, size, 3), 0.15, smooth=2.0)
    ours = np.asarray(ms_ssim(x, y, **options))
    reference = torch_ms_ssim(
        _torch(x), _torch(y), data_range=1.0, size_average=False,
        win_size=options.get("filter_size", 11), weights=options.get("weights"),
    ).numpy()  # fmt: skip
    np.testing.assert_allclose(ours, reference, rtol=1e-4)
    assert np.all((ours > 0.05) & (ours < 0.95))


def test_ms_ssim_is_batched_jittable_and_one_for_identical_images():
    x, y = _pair((2, 3, 28, 28, 1), 0.3)
    batched = jax.jit(lambda a, b: ms_ssim(a, b, **MNIST_MS_SSIM))(x, y)
    assert batched.shape == (2, 3)
    one = ms_ssim(x[1, 2], y[1, 2], **MNIST_MS_SSIM)
    np.testing.assert_allclose(batched[1, 2], one, rtol=1e-5)  # float32, jit vs eager order
    np.testing.assert_allclose(ms_ssim(x, x, **MNIST_MS_SSIM), 1.0, rtol=1e-6)
    assert float(ms_ssim(x[0, :1], 1.0 - x[0, :1], **MNIST_MS_SSIM)[0]) < 0.2


def test_mnist_weights_are_wangs_first_three_renormalised():
    np.testing.assert_allclose(ms_ssim_weights(3), [0.0711, 0.4530, 0.4760], atol=1e-4)
    np.testing.assert_allclose(sum(ms_ssim_weights(3)), 1.0)


def test_bad_input_is_refused_with_the_minimum_size():
    x = jnp.zeros((2, 28, 28, 1))
    with pytest.raises(InputError, match=r"minimum size is 176x176"):
        ms_ssim(x, x)  # 5 scales x 11x11 cannot run at 28x28
    with pytest.raises(InputError, match="shape"):
        ms_ssim(x, x[:1], **MNIST_MS_SSIM)
    with pytest.raises(InputError, match="channels last"):
        ssim(jnp.zeros((28, 28)), jnp.zeros((28, 28)))
    with pytest.raises(InputError, match="floating"):
        ssim(jnp.zeros((1, 28, 28, 1), jnp.uint8), jnp.zeros((1, 28, 28, 1), jnp.uint8))
    with pytest.raises(InputError, match="NaN"):
        ssim(x.at[0, 0, 0, 0].set(jnp.nan), x)
    with pytest.raises(InputError, match="num_scales"):
        ms_ssim_weights(6)

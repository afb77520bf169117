"""On-device preprocessing and augmentation, against direct NumPy / PIL computations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxrobust.data.batching import padded_batches, shuffled_batches
from jaxrobust.data.preprocess import Preprocess

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (4, 28, 28, 1)).astype(np.uint8)
RGB = RNG.integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)


def test_scale_and_normalise_match_numpy():
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    pre = Preprocess.from_config({"scale": True, "mean": mean, "std": std})
    expected = (RGB / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(pre(jnp.asarray(RGB)), expected, rtol=1e-5, atol=1e-5)


def test_zero_pad_28_to_32_centres_the_image():
    pre = Preprocess.from_config({"resize_to": 32, "resize_mode": "pad"})
    out = np.asarray(pre(jnp.asarray(GRAY)))
    assert out.shape == (4, 32, 32, 1) and pre.output_shape((28, 28, 1)) == (32, 32, 1)
    np.testing.assert_allclose(out[:, 2:30, 2:30], GRAY / 255.0, rtol=1e-6)
    assert out[:, :2].sum() == out[:, 30:].sum() == out[:, :, :2].sum() == out[:, :, 30:].sum() == 0


def test_bilinear_resize_is_close_to_pil():
    pre = Preprocess.from_config({"resize_to": 32, "resize_mode": "bilinear", "scale": False})
    out = np.asarray(pre(jnp.asarray(GRAY)))[..., 0]
    for image, resized in zip(GRAY[..., 0].astype(np.float32), out, strict=True):
        pil = np.asarray(Image.fromarray(image, mode="F").resize((32, 32), Image.BILINEAR))
        # Upsampling: both use half-pixel centres and a triangle filter; borders may differ.
        np.testing.assert_allclose(resized[1:-1, 1:-1], pil[1:-1, 1:-1], atol=1e-3)


def test_random_crop_is_a_window_of_the_zero_padded_image_and_covers_all_offsets():
    pre = Preprocess.from_config({"crop_padding": 4})
    image = jnp.asarray(RGB[:1])
    padded = np.pad(RGB[0] / 255.0, ((4, 4), (4, 4), (0, 0)))
    offsets = set()
    for seed in range(300):
        out = np.asarray(pre(image, key=jax.random.key(seed), train=True))[0]
        matches = [
            (r, c)
            for r in range(9)
            for c in range(9)
            if np.allclose(out, padded[r : r + 32, c : c + 32], atol=1e-6)
        ]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 60  # 81 possible offsets, drawn uniformly
    # No augmentation at evaluation time.
    np.testing.assert_allclose(pre(image), RGB[:1] / 255.0, rtol=1e-6)


def test_horizontal_flip_flips_about_half_the_images():
    pre = Preprocess.from_config({"horizontal_flip": True})
    images = jnp.asarray(np.repeat(RGB[:1], 400, axis=0))
    out = np.asarray(pre(images, key=jax.random.key(0), train=True))
    flipped = np.all(np.isclose(out, RGB[0, :, ::-1] / 255.0), axis=(1, 2, 3))
    kept = np.all(np.isclose(out, RGB[0] / 255.0), axis=(1, 2, 3))
    assert np.all(flipped ^ kept)
    assert 150 < flipped.sum() < 250


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"resize_mode": "nearest"}, "resize_mode"),
        ({"mean": (0.5,)}, "both mean and std"),
        ({"mean": (0.5,), "std": (0.0,)}, "std must be positive"),
        ({"colour": True}, "Unknown preprocessing option"),
    ],
)
def test_bad_preprocessing_config_is_explained(cfg, message):
    with pytest.raises(ValueError, match=message):
        Preprocess.from_config(cfg)


def test_augmentation_without_key_is_an_error():
    with pytest.raises(ValueError, match="random key"):
        Preprocess.from_config({"horizontal_flip": True})(jnp.asarray(RGB), train=True)


def test_epoch_batches_are_a_permutation_and_eval_batches_cover_everything_once():
    idx = np.asarray(shuffled_batches(jax.random.key(0), 103, 10))
    assert idx.shape == (10, 10) and len(set(idx.ravel())) == 100 and idx.max() < 103
    idx, mask = padded_batches(103, 10)
    assert idx.shape == mask.shape == (11, 10)
    assert sorted(idx[mask].tolist()) == list(range(103))

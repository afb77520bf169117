"""Tiny learnable stand-in datasets written into a jaxrobust data cache.

"fashion_mnist" stand-in: class k is a bright 6x6 square at one of ten fixed positions on a dark
noisy background, so a small CNN separates the classes within an epoch. "mnist" stand-in:
uniform noise, clearly out of distribution. Both 28x28x1 uint8, like the real datasets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxrobust.data import cache

POSITIONS = [(r, c) for r in (2, 11, 20) for c in (2, 11, 20)] + [(11, 6)]


def squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.int32)
    images = rng.integers(0, 40, (n, 28, 28, 1)).astype(np.uint8)
    for i, label in enumerate(labels):
        r, c = POSITIONS[label]
        images[i, r : r + 6, c : c + 6, 0] = 230
    return images, labels


def noise(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28, 1)).astype(np.uint8)
    return images, rng.integers(0, 10, n).astype(np.int32)


def write_synthetic_cache(root: Path, n_train: int = 512, n_test: int = 256) -> Path:
    """Populate ``root`` (a JAXROBUST_DATA directory) with the two stand-ins."""
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        cache.write(root, "fashion_mnist", split, *squares(n, seed), source="synthetic")
        cache.write(root, "mnist", split, *noise(n, seed + 10), source="synthetic")
    return root


def write_colour_stand_ins(
    root: Path, n_train: int, n_test: int, names=("cifar10", "svhn_cropped")
) -> Path:
    """Random uint8 32x32x3 images as ``cifar10``, ``svhn_cropped`` (and ``cifar100`` when
    named; not obtainable offline), for configs that need them to train and evaluate end to
    end."""
    seeds = {"cifar10": 0, "svhn_cropped": 5, "cifar100": 9}
    for name, seed in ((n, seeds[n]) for n in names):
        for split, n in (("train", n_train), ("test", n_test)):
            rng = np.random.default_rng(seed + len(split))
            images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            cache.write(root, name, split, images, rng.integers(0, 10, n), source="synthetic")
    return root

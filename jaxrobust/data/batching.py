"""Index plans for device-resident datasets: the whole epoch's batches as one index array.

The dataset stays on the accelerator; an epoch is a permutation reshaped to ``[steps, batch]``
and ``lax.scan`` gathers one row per step, so no batch crosses the host boundary.
"""

from __future__ import annotations

import jax
import numpy as np


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Number of full batches (the remainder of the shuffled epoch is dropped).

    Examples:
        >>> steps_per_epoch(10, 4)
        2
        >>> steps_per_epoch(3, 4)
        Traceback (most recent call last):
        ...
        ValueError: batch_size 4 is larger than the dataset (3 examples).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    steps = num_examples // batch_size
    if steps == 0:
        raise ValueError(
            f"batch_size {batch_size} is larger than the dataset ({num_examples} examples)."
        )
    return steps


def shuffled_batches(key: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """``[steps, batch_size]`` indices of one shuffled epoch, remainder dropped (jittable).

    Examples:
        Two batches of 4 distinct indices out of 10:

        >>> batches = shuffled_batches(jax.random.key(0), 10, 4)
        >>> batches.shape, len(set(batches.ravel().tolist())), int(batches.max()) < 10
        ((2, 4), 8, True)
    """
    steps = steps_per_epoch(num_examples, batch_size)
    perm = jax.random.permutation(key, num_examples)
    return perm[: steps * batch_size].reshape(steps, batch_size)


def padded_batches(num_examples: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequential ``[steps, batch]`` indices covering every example once, and a validity mask.

    The last batch is padded with index 0 and mask False, so every batch has the same shape and
    one compiled function serves the whole evaluation.

    Examples:
        >>> idx, mask = padded_batches(5, 2)
        >>> idx.tolist(), mask.tolist()
        ([[0, 1], [2, 3], [4, 0]], [[True, True], [True, True], [True, False]])
    """
    steps = -(-num_examples // batch_size)
    idx = np.arange(steps * batch_size)
    mask = idx < num_examples
    idx = np.where(mask, idx, 0)
    return idx.reshape(steps, batch_size), mask.reshape(steps, batch_size)

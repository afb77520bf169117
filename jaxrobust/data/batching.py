"""Index plans for device-resident datasets: the whole epoch's batches as one index array.

The dataset stays on the accelerator; an epoch is a permutation reshaped to ``[steps, batch]``
and ``lax.scan`` gathers one row per step, so no batch crosses the host boundary.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxrobust.errors import InputError


def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Number of full batches (the remainder of the shuffled epoch is dropped).

    Examples:
        >>> steps_per_epoch(10, 4)
        2
        >>> steps_per_epoch(3, 4)
        Traceback (most recent call last):
        ...
        jaxrobust.errors.InputError: batch_size 4 is larger than the dataset (3 examples); use ...
    """
    num_examples = _count("num_examples", num_examples, 0)
    batch_size = _count("batch_size", batch_size, 1)
    steps = num_examples // batch_size
    if steps == 0:
        raise InputError(
            f"batch_size {batch_size} is larger than the dataset ({num_examples} examples); use "
            f"a batch_size of at most {num_examples} (or more training data)."
            if num_examples
            else "The dataset is empty (0 examples): nothing to train on; check the data split "
            "and train_limit."
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
    if key is None:
        raise InputError("shuffled_batches needs a PRNG key: pass jax.random.key(seed).")
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
        >>> padded_batches(5, 0)
        Traceback (most recent call last):
        ...
        jaxrobust.errors.InputError: batch_size must be >= 1, got 0.
    """
    num_examples = _count("num_examples", num_examples, 1)
    batch_size = _count("batch_size", batch_size, 1)
    steps = -(-num_examples // batch_size)
    idx = np.arange(steps * batch_size)
    mask = idx < num_examples
    idx = np.where(mask, idx, 0)
    return idx.reshape(steps, batch_size), mask.reshape(steps, batch_size)

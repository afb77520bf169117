"""Training / validation split: the validation set is carved from the training split.

Model selection (the "best" checkpoint, early stopping, temperature fitting) must never see the
test split. :func:`carve_validation` holds out ``size`` training examples chosen by a seeded
permutation (NumPy's PCG64, so the split is the same on every machine and JAX version) and
returns the rest for training. The test split is used for validation only when a config says
so explicitly (``data.validation_split = "test"``).

Example:
    >>> import numpy as np
    >>> images, labels = np.arange(10)[:, None], np.arange(10)
    >>> (tr_x, tr_y), (va_x, va_y) = carve_validation(images, labels, size=3, seed=0)
    >>> len(tr_y), len(va_y), sorted(set(tr_y) | set(va_y)) == list(range(10))
    (7, 3, True)
"""

from __future__ import annotations

import numpy as np

from jaxrobust.errors import InputError


def carve_validation(
    images: np.ndarray, labels: np.ndarray, *, size: int | float, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((train_images, train_labels), (val_images, val_labels))``: ``size`` examples held out.

    ``size`` is a count (int >= 1) or a fraction in (0, 1) of the training split. The held-out
    indices are the first ``size`` of ``np.random.default_rng(seed).permutation(N)``; both parts
    keep their original order.

    Examples:
        A fraction of the split; the held-out indices are the seeded permutation's first:

        >>> images, labels = np.arange(20)[:, None], np.arange(20) % 10
        >>> (_, train_labels), (val_images, _) = carve_validation(images, labels, size=0.25, seed=1)
        >>> len(train_labels), len(val_images)
        (15, 5)
        >>> val_images[:, 0].tolist() == sorted(np.random.default_rng(1).permutation(20)[:5])
        True
        >>> carve_validation(images, labels, size=20, seed=0)
        Traceback (most recent call last):
        ...
        jaxrobust.errors.InputError: validation size 20 gives 20 of 20 training examples; it ...
    """
    for name, array in (("images", images), ("labels", labels)):
        if not hasattr(array, "shape") or len(np.shape(array)) < 1:
            raise InputError(f"{name} must be an array with a leading example axis, got {array!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}.")
    num = len(images)
    if len(labels) != num:
        raise InputError(f"{num} images but {len(labels)} labels; pass the labels of these images.")
    if isinstance(size, (float, np.floating)) and 0.0 < size < 1.0:
        count = int(round(size * num))
    elif isinstance(size, (int, np.integer)) and not isinstance(size, (bool, np.bool_)):
        count = int(size)
    else:
        raise InputError(
            f"validation size must be an integer count or a fraction in (0, 1), got {size!r}."
        )
    if not 1 <= count < num:
        raise InputError(
            f"validation size {size!r} gives {count} of {num} training examples; it must leave "
            f"at least one example on each side: use a count in [1, {num - 1}] or a fraction "
            "that rounds into that range."
            if num >= 2
            else f"validation size {size!r}: the training split has {num} examples, fewer than "
            "the 2 needed to carve a validation set from it; load more data."
        )
    held_out = np.zeros(num, bool)
    held_out[np.random.default_rng(seed).permutation(num)[:count]] = True
    return (images[~held_out], labels[~held_out]), (images[held_out], labels[held_out])

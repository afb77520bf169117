"""Bring a source's arrays to the loaded form: uint8 NHWC images, int32 labels in range."""

from __future__ import annotations

import numpy as np

from jaxrobust.data.errors import DataFormatError
from jaxrobust.data.registry import DatasetInfo

Arrays = tuple[np.ndarray, np.ndarray]


def standardize(info: DatasetInfo, images: np.ndarray, labels: np.ndarray) -> Arrays:
    """``(uint8 [N, H, W, C] images, int32 [N] labels)`` of ``info``, validated.

    Accepts ``[N, H, W]`` images for one-channel datasets, any integer (or integer-valued float)
    pixel dtype with values in [0, 255], and ``[N]`` or ``[N, 1]`` integer labels in
    ``[0, num_classes)``. Anything else raises :class:`DataFormatError`.

    Examples:
        >>> from jaxrobust.data.registry import dataset_info
        >>> info = dataset_info("mnist")
        >>> images, labels = standardize(info, np.full((2, 28, 28), 255.0), np.array([[3], [7]]))
        >>> images.dtype, images.shape, int(images.max()), labels.dtype, labels.tolist()
        (dtype('uint8'), (2, 28, 28, 1), 255, dtype('int32'), [3, 7])
        >>> standardize(info, np.full((2, 28, 28), 0.5), np.array([3, 7]))
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.DataFormatError: mnist: float pixel values are not whole numbers ...
        >>> standardize(info, np.zeros((2, 28, 28), np.uint8), np.array([3, 10]))
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.DataFormatError: mnist: labels span [3, 10], expected [0, 9].
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 3 and info.image_shape[-1] == 1:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != info.image_shape:
        raise DataFormatError(
            f"{info.name}: images have shape {images.shape}, expected [N, {info.image_shape}]."
        )
    if len(images) == 0:
        raise DataFormatError(f"{info.name}: no examples.")
    images = _to_uint8(info.name, images)

    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataFormatError(
            f"{info.name}: labels have shape {labels.shape}, expected [{len(images)}]."
        )
    if labels.dtype.kind not in "iu":
        raise DataFormatError(f"{info.name}: labels have dtype {labels.dtype}, expected integers.")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= info.num_classes:
        raise DataFormatError(
            f"{info.name}: labels span [{low}, {high}], expected [0, {info.num_classes - 1}]."
        )
    return np.ascontiguousarray(images), labels.astype(np.int32)


def _to_uint8(name: str, images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind not in "iuf":
        raise DataFormatError(f"{name}: images have dtype {images.dtype}, expected uint8.")
    low, high = images.min(), images.max()
    if low < 0 or high > 255:
        raise DataFormatError(f"{name}: pixel values span [{low}, {high}], expected [0, 255].")
    if images.dtype.kind == "f" and not np.all(np.floor(images) == images):
        raise DataFormatError(
            f"{name}: float pixel values are not whole numbers in [0, 255] (scaled to [0, 1]?)."
        )
    return images.astype(np.uint8)

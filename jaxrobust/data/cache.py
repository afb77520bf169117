"""The local dataset cache: one compressed ``.npz`` per split plus a JSON sidecar.

Layout: ``<data_dir>/<dataset>/<split>.npz`` holding ``images`` (uint8 NHWC) and ``labels``
(int32), and ``<split>.json`` recording the source it came from and the counts. Files are written
to a temporary file in the same directory and renamed into place, so a reader never sees a
half-written file.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from jaxrobust.data.errors import DataFormatError, SourceUnavailable
from jaxrobust.data.registry import DatasetInfo

ENV_VAR = "JAXROBUST_DATA"
FORMAT_VERSION = 1

Arrays = tuple[np.ndarray, np.ndarray]


def data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``data_dir`` if given, else ``$JAXROBUST_DATA``, else a per-user cache.

    The per-user cache is ``$XDG_CACHE_HOME/jaxrobust/data`` (default ``~/.cache/jaxrobust/data``).

    Examples:
        >>> from unittest import mock
        >>> data_dir("~/datasets") == Path.home() / "datasets"
        True
        >>> with mock.patch.dict(os.environ, {"JAXROBUST_DATA": "/srv/data"}):
        ...     str(data_dir())
        '/srv/data'
        >>> with mock.patch.dict(os.environ, {"XDG_CACHE_HOME": "/tmp/cache"}, clear=True):
        ...     str(data_dir())
        '/tmp/cache/jaxrobust/data'
    """
    return resolve_root(data_dir)


def resolve_root(path: str | os.PathLike | None) -> Path:
    """Same as :func:`data_dir` (a name that parameters called ``data_dir`` do not shadow).

    Examples:
        >>> resolve_root("/srv/data") == data_dir("/srv/data") == Path("/srv/data")
        True
    """
    if path is not None:
        return Path(path).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser() / "jaxrobust" / "data"


def cache_file(root: Path, dataset: str, split: str) -> Path:
    """Path of the cached arrays of one split.

    Examples:
        >>> cache_file(Path("/srv/data"), "mnist", "test").as_posix()
        '/srv/data/mnist/test.npz'
    """
    return Path(root) / dataset / f"{split}.npz"


def sidecar_file(root: Path, dataset: str, split: str) -> Path:
    """Path of the JSON record next to :func:`cache_file`.

    Examples:
        >>> sidecar_file(Path("/srv/data"), "mnist", "test").as_posix()
        '/srv/data/mnist/test.json'
    """
    return Path(root) / dataset / f"{split}.json"


def read(root: Path, dataset: str, split: str) -> Arrays:
    """``(images, labels)`` of a cached split.

    Raises:
      FileNotFoundError: nothing cached.
      DataFormatError: the file is not a readable cache file (e.g. truncated).

    Examples:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = Path(tmp.name)
        >>> _ = write(root, "mnist", "test", np.zeros((2, 28, 28, 1), np.uint8), np.array([3, 7]),
        ...           source="example")
        >>> images, labels = read(root, "mnist", "test")
        >>> images.shape, labels.tolist()
        ((2, 28, 28, 1), [3, 7])
        >>> _ = cache_file(root, "mnist", "train").write_bytes(b"not a zip file")
        >>> read(root, "mnist", "train")
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.DataFormatError: Cache file ... is unreadable (...); delete it.
        >>> tmp.cleanup()
    """
    path = cache_file(root, dataset, split)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return npz["images"], npz["labels"]
    except FileNotFoundError:
        raise
    except Exception as err:
        raise DataFormatError(
            f"Cache file {path} is unreadable ({type(err).__name__}: {err}); delete it."
        ) from err


def write(
    root: Path, dataset: str, split: str, images: np.ndarray, labels: np.ndarray, *, source: str
) -> dict[str, Any]:
    """Atomically cache one split; returns its :func:`cached_entries` record.

    Examples:
        >>> import json, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = Path(tmp.name)
        >>> images, labels = np.zeros((3, 28, 28, 1), np.uint8), np.array([0, 1, 2], np.int32)
        >>> record = write(root, "mnist", "train", images, labels, source="example")
        >>> record["n_examples"], record["source"], Path(record["path"]).name
        (3, 'example', 'train.npz')
        >>> sidecar = json.loads(sidecar_file(root, "mnist", "train").read_text())
        >>> sidecar["image_shape"], sidecar["format_version"]
        ([28, 28, 1], 1)
        >>> sorted(p.name for p in (root / "mnist").iterdir())  # no temporary file left behind
        ['train.json', 'train.npz']
        >>> tmp.cleanup()
    """
    path = cache_file(root, dataset, split)
    _atomic_write(path, lambda f: np.savez_compressed(f, images=images, labels=labels))
    record = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "split": split,
        "source": source,
        "n_examples": len(labels),
        "image_shape": list(images.shape[1:]),
        "size_bytes": path.stat().st_size,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    text = json.dumps(record, indent=2) + "\n"
    _atomic_write(sidecar_file(root, dataset, split), lambda f: f.write(text.encode()))
    return entry(root, dataset, split)


def entry(root: Path, dataset: str, split: str) -> dict[str, Any]:
    """Record of one cached split: dataset, split, path, size_bytes, n_examples, source.

    Examples:
        Without its JSON sidecar, the examples are counted and the source is unknown:

        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = Path(tmp.name)
        >>> _ = write(root, "mnist", "test", np.zeros((2, 28, 28, 1), np.uint8), np.array([3, 7]),
        ...           source="example")
        >>> sidecar_file(root, "mnist", "test").unlink()
        >>> record = entry(root, "mnist", "test")
        >>> record["n_examples"], record["source"], record["size_bytes"] > 0
        (2, 'unknown', True)
        >>> tmp.cleanup()
    """
    path = cache_file(root, dataset, split)
    record = _read_sidecar(sidecar_file(root, dataset, split))
    n_examples = record.get("n_examples")
    if not isinstance(n_examples, int):
        n_examples = _count_examples(path)
    return {
        "dataset": dataset,
        "split": split,
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "n_examples": n_examples,
        "source": str(record.get("source", "unknown")),
    }


def cached_entries(data_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every cached split under the cache directory, sorted by dataset and split.

    Each record has: dataset, split, path, size_bytes, n_examples (None if the file is
    unreadable) and source (where the data came from; ``"unknown"`` without a sidecar).

    Examples:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> cached_entries(tmp.name)
        []
        >>> for dataset, split in (("mnist", "test"), ("cifar10", "train")):
        ...     _ = write(Path(tmp.name), dataset, split, np.zeros((1, 2, 2, 1), np.uint8),
        ...               np.zeros(1, np.int32), source="example")
        >>> [(e["dataset"], e["split"], e["n_examples"]) for e in cached_entries(tmp.name)]
        [('cifar10', 'train', 1), ('mnist', 'test', 1)]
        >>> tmp.cleanup()
    """
    root = resolve_root(data_dir)
    if not root.is_dir():
        return []
    paths = sorted(p for p in root.glob("*/*.npz") if not p.name.startswith("."))
    return [entry(root, p.parent.name, p.stem) for p in paths]


def load_split(info: DatasetInfo, split: str, *, root: Path, progress: bool) -> dict[str, Arrays]:
    """Source ``cache``: the cached split, if there is one.

    Examples:
        >>> import tempfile
        >>> from jaxrobust.data.registry import dataset_info
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root, info = Path(tmp.name), dataset_info("mnist")
        >>> load_split(info, "test", root=root, progress=False)
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.SourceUnavailable: no cache file at .../mnist/test.npz
        >>> _ = write(root, "mnist", "test", np.zeros((2, 28, 28, 1), np.uint8), np.array([3, 7]),
        ...           source="example")
        >>> {split: labels.tolist() for split, (_, labels) in load_split(
        ...     info, "test", root=root, progress=False).items()}
        {'test': [3, 7]}
        >>> tmp.cleanup()
    """
    del progress
    path = cache_file(root, info.name, split)
    if not path.is_file():
        raise SourceUnavailable(f"no cache file at {path}")
    return {split: read(root, info.name, split)}


def _atomic_write(path: Path, write_fn: Callable[[IO[bytes]], object]) -> None:
    """Write to a temporary file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open (unlike mkstemp, which makes 0600 files) honours the umask: 0644 usually.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _count_examples(path: Path) -> int | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return int(npz["labels"].shape[0])
    except Exception:
        return None

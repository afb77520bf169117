"""Errors of dataset loading: each names the problem and what to do about it."""

from __future__ import annotations

from collections.abc import Sequence

from jaxrobust.errors import JaxrobustError


class DataError(JaxrobustError):
    """Base class of the data package's errors."""


class UnknownDatasetError(DataError, ValueError):
    """A dataset name that is not in the registry."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"Unknown dataset {name!r}. Known datasets: {', '.join(self.known)}.")


class UnknownSplitError(DataError, ValueError):
    """A split name that the dataset does not have."""

    def __init__(self, dataset: str, split: str, known: Sequence[str]) -> None:
        self.dataset = dataset
        self.split = split
        self.known = tuple(known)
        super().__init__(
            f"Unknown split {split!r} of dataset {dataset!r}. Known splits: {', '.join(known)}."
        )


class DataFormatError(DataError, ValueError):
    """Data that does not have the expected format (bad magic number, counts, pixel range...)."""


class SourceUnavailable(DataError):
    """One source cannot provide the data; the message says why (one line)."""


class DataUnavailableError(DataError, RuntimeError):
    """No source could provide a dataset split.

    Attributes:
      dataset, split: what was asked for.
      attempts: ``(source, reason)`` for every source tried, in order.
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

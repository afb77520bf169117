"""Shared by the benchmarks in tools/: interleaved timing, the run stamp (date and package
versions) and the generated BENCHMARKS.md sections.

The benchmarks run as scripts (``python tools/bench_x.py``), so their own directory is on
``sys.path`` and they import this module by name.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

#: Always stamped (a missing one reads "not installed"); ``OPTIONAL`` ones only when installed.
REQUIRED = ("jax", "jaxlib", "numpy")
OPTIONAL = ("torch", "flax", "optax", "foolbox")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def run_stamp(extra: Iterable[str] = ()) -> dict[str, str]:
    """What a benchmark run was measured with: ``date`` (today, ISO), the installed versions of
    jax, jaxlib and numpy, ``python`` (``platform.python_version()``), and those of torch, flax,
    optax, foolbox and the ``extra`` distributions that are installed (others are left out).
    Computed when called, so every run stamps its own date and versions."""
    stamp = {"date": datetime.date.today().isoformat()}
    for package in REQUIRED:
        stamp[package] = _version(package) or "not installed"
    stamp["python"] = platform.python_version()
    for package in (*OPTIONAL, *extra):
        version = _version(package)
        if version is not None and package not in stamp:
            stamp[package] = version
    return stamp


def stamp_text(stamp: dict[str, str], on: str | None = None) -> str:
    """One line for a report, e.g. ``Measured 2026-12-01 on <on>; jax 0.10.2, jaxlib 0.10.2,
    numpy 2.4.6, Python 3.12.3, flax 0.12.8`` (``on``, the device, is optional)."""
    where = f" on {on}" if on else ""
    versions = ", ".join(
        f"{'Python' if name == 'python' else name} {version}"
        for name, version in stamp.items()
        if name != "date"
    )
    return f"Measured {stamp['date']}{where}; {versions}."


def measure(runners: dict[str, Callable[[int], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each runner: one warm-up call each (argument -1), then ``repeats``
    rounds that call every runner once in turn (interleaved, so drifting machine load hits all
    alike)."""
    for run in runners.values():
        run(-1)
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run(i)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def write_section(path: Path, begin: str, end: str, section: str, title: str = "") -> None:
    """Replace the text between ``begin`` and ``end`` markers in ``path`` with ``section`` (which
    includes the markers), or append ``title`` and the section; the file is replaced atomically.
    """
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = section.rstrip("\n")
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + (title + "\n\n" if title else "") + section + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

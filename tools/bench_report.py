"""Shared by the benchmarks in tools/: interleaved timing and the generated BENCHMARKS.md sections.

The benchmarks run as scripts (``python tools/bench_x.py``), so their own directory is on
``sys.path`` and they import this module by name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


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

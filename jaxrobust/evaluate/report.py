"""Results as JSON and as markdown tables (each task renders its own section)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from jaxrobust.registry import EVALUATIONS
from jaxrobust.workdir import atomic_write_text


def results_markdown(results: dict) -> str:
    """Markdown: a header with device and checkpoints, then each task's tables."""
    lines = [f"# Results: {results.get('experiment', '')}".rstrip(), ""]
    meta = results.get("meta", {})
    if meta:
        lines.append(
            f"Device: {meta.get('device', '?')}. Checkpoints: "
            + ", ".join(f"{k} epoch {v}" for k, v in meta.get("checkpoints", {}).items())
            + "."
            + (f" Folder: evaluations/{meta['generation']}." if "generation" in meta else "")
        )
        lines.append("")
    task_names = meta.get("tasks", {})
    for key, result in results.items():
        name = task_names.get(key, key)
        if key in ("experiment", "meta") or name not in EVALUATIONS:
            continue
        task = EVALUATIONS.get(name)
        if task.markdown is not None and result:
            lines.append(task.markdown(result))
    return "\n".join(lines)


def write_results(results: dict, directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``directory``, each atomically (a
    temporary file renamed; :class:`~jaxrobust.errors.WorkdirError` on a write error, nothing
    half-written left); returns their paths. :func:`jaxrobust.evaluate.evaluate` gives it the
    folder of the evaluation being written and commits the two with the plots as one
    generation (:func:`jaxrobust.workdir.begin_generation`).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     json_path, md_path = write_results({"experiment": "demo"}, tmp)
        ...     json_path.name, md_path.read_text().splitlines()[0]
        ('results.json', '# Results: demo')
    """
    directory = Path(directory)
    paths = []
    for name, text in (
        ("results.json", json.dumps(results, indent=2, sort_keys=False)),
        ("results.md", results_markdown(results)),
    ):
        paths.append(atomic_write_text(directory / name, text + "\n"))
    return paths[0], paths[1]

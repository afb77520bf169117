"""Results as JSON and as markdown tables (each task renders its own section)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from jaxrobust.registry import EVALUATIONS


def results_markdown(results: dict) -> str:
    """Markdown: a header with device and checkpoints, then each task's tables."""
    lines = [f"# Results: {results.get('experiment', '')}".rstrip(), ""]
    meta = results.get("meta", {})
    if meta:
        lines.append(
            f"Device: {meta.get('device', '?')}. Checkpoints: "
            + ", ".join(f"{k} epoch {v}" for k, v in meta.get("checkpoints", {}).items())
            + "."
        )
        lines.append("")
    for name, result in results.items():
        if name in ("experiment", "meta") or name not in EVALUATIONS:
            continue
        task = EVALUATIONS.get(name)
        if task.markdown is not None and result:
            lines.append(task.markdown(result))
    return "\n".join(lines)


def write_results(results: dict, workdir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` atomically; returns their paths."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in (
        ("results.json", json.dumps(results, indent=2, sort_keys=False)),
        ("results.md", results_markdown(results)),
    ):
        path = workdir / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, path)
        paths.append(path)
    return paths[0], paths[1]

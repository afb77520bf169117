"""Experiment cells shared by the ``run_all.py`` drivers: run here, or print as shell commands.

A cell is one config trained and evaluated in its own workdir with the driver's budget
overrides: ``jaxrobust train --config C --workdir W --config.k=v ... && jaxrobust evaluate
--workdir W``. A driver runs its cells one after another (a finished cell, one whose workdir has
``results.json``, is skipped), or with ``--print-commands`` prints one such line per cell still
to run and exits, training nothing and creating no directory, so a cluster scheduler runs them:

    python experiments/negative_sampling/run_all.py --epochs 100 --print-commands > cells.txt
    # a SLURM array job, task i running line i:
    #   sbatch --array=1-$(wc -l < cells.txt) job.sh
    #   job.sh: bash -c "$(sed -n "${SLURM_ARRAY_TASK_ID}p" cells.txt)"
    parallel -j 4 < cells.txt  # or GNU parallel, 4 cells at a time
    python experiments/negative_sampling/run_all.py --epochs 100  # then collect RESULTS.md

The last call finds every cell finished and only writes RESULTS.md. ``--cells`` selects cells by
name (the workdir's last component), so ``--cells NAME --print-commands`` prints that cell alone.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

#: The program in printed commands (the console script of ``pip install``).
PROGRAM = "jaxrobust"


class Cell(NamedTuple):
    """One config, trained and evaluated in ``workdir`` with ``overrides`` (dotted key -> value).

    Examples:
        >>> cell = Cell("t1", Path("/e/t1.py"), Path("/runs/my t1"), {"progress": False})
        >>> train, evaluate = cell.command().split(" && ")
        >>> train
        "jaxrobust train --config /e/t1.py --workdir '/runs/my t1' --config.progress=False"
        >>> evaluate
        "jaxrobust evaluate --workdir '/runs/my t1'"
    """

    name: str
    config: Path
    workdir: Path
    overrides: Mapping[str, Any]

    def train_args(self) -> list[str]:
        flags = [f"--config.{key}={value}" for key, value in self.overrides.items()]
        return ["train", "--config", str(self.config), "--workdir", str(self.workdir), *flags]

    def evaluate_args(self) -> list[str]:
        return ["evaluate", "--workdir", str(self.workdir)]

    @property
    def results(self) -> Path:
        return self.workdir / "results.json"

    def finished(self) -> bool:
        return self.results.is_file()

    def command(self, program: str = PROGRAM) -> str:
        """The cell as one shell line: train, then (if training succeeded) evaluate."""
        train = shlex.join([*shlex.split(program), *self.train_args()])
        return f"{train} && {shlex.join([*shlex.split(program), *self.evaluate_args()])}"

    def run(self) -> dict:
        """Train and evaluate here (skipped when ``results.json`` exists); the results."""
        if not self.finished():
            for args in (self.train_args(), self.evaluate_args()):
                subprocess.run([sys.executable, "-m", "jaxrobust.cli", *args], check=True)
        return json.loads(self.results.read_text())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cells`` (names, comma-separated; default all) and ``--print-commands``."""
    parser.add_argument(
        "--cells",
        default=None,
        help="comma-separated cell names (workdir names) to run; default: every cell",
    )
    parser.add_argument(
        "--print-commands",
        action="store_true",
        help="print one shell command per cell still to run (for a cluster scheduler: a SLURM "
        "array, GNU parallel) and exit without training; run again without it to collect",
    )


def select(cells: Sequence[Cell], names: str | None) -> list[Cell]:
    """The ``cells`` named in ``names`` (comma-separated; None: all), in the drivers' order.

    Examples:
        >>> cells = [Cell(n, Path(f"{n}.py"), Path(n), {}) for n in ("a", "b", "c")]
        >>> [c.name for c in select(cells, "c,a")], len(select(cells, None))
        (['a', 'c'], 3)
        >>> select(cells, "a,d")
        Traceback (most recent call last):
        ...
        SystemExit: Unknown cell 'd'; known (with the other selection flags): a, b, c.
    """
    if names is None:
        return list(cells)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {c.name for c in cells}
    for name in wanted:
        if name not in known:
            raise SystemExit(
                f"Unknown cell {name!r}; known (with the other selection flags): "
                f"{', '.join(c.name for c in cells)}."
            )
    return [c for c in cells if c.name in wanted]


def print_commands(cells: Iterable[Cell], file=None, program: str = PROGRAM) -> int:
    """Print the command of every cell not finished yet (one per line); the number printed.
    Finished cells are counted on stderr, never printed: the lines are the work left."""
    out = sys.stdout if file is None else file
    cells = list(cells)
    left = [c for c in cells if not c.finished()]
    skipped = [c for c in cells if c.finished()]
    for cell in left:
        print(cell.command(program), file=out)
    if skipped:
        print(
            f"# {len(skipped)} finished cell(s) left out (results.json present): "
            + ", ".join(c.name for c in skipped),
            file=sys.stderr,
        )
    return len(left)


def write_digest(directory: Path, digest: dict) -> Path:
    """Write ``digest`` (a finished cell's figures, committed so that RESULTS.md can be rebuilt
    without the workdirs) to ``directory/<digest['cell']>.json`` atomically; its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{digest['cell']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(digest, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_digests(directory: Path, names: Iterable[str]) -> dict[str, dict]:
    """The digest of every cell in ``names`` that has one, in that order."""
    paths = ((name, directory / f"{name}.json") for name in names)
    return {name: json.loads(path.read_text()) for name, path in paths if path.is_file()}


def training_summary(workdir: Path) -> dict[str, dict]:
    """Per model of a workdir (from ``metrics.jsonl`` and ``config.json``): epochs trained,
    runs (members), the median seconds per epoch and their sum, images per second."""
    config = json.loads((workdir / "config.json").read_text())
    rows: dict[str, list[dict]] = {}
    for line in (workdir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows.setdefault(row["model"], []).append(row)
    out = {}
    for name, entries in rows.items():
        seconds = sorted(e["epoch_seconds"] for e in entries if "epoch_seconds" in e)
        training = config["models"][name]["training"]
        sweep = training.get("sweep") or {}
        settings = len(next(iter(sweep.values()))) if sweep else 1
        out[name] = {
            "epochs": max(e["epoch"] for e in entries),
            "runs": training.get("num_runs") or 1,
            "members": settings * (training.get("num_runs") or 1),
            "median_epoch_seconds": seconds[len(seconds) // 2] if seconds else None,
            "train_seconds": sum(seconds),
            "images_per_second": entries[-1].get("images_per_second"),
        }
    return out


def finish_results(text: list[str], here: Path, output: Path, figures_command: str | None,
                   budget: list[str]) -> None:  # fmt: skip
    """Append the figures of ``here/figures`` (when any, with ``figures_command``), the
    ``budget`` lines and ``here/notes.md`` (when present) to ``text``, and write it to
    ``output`` atomically (no half-written RESULTS.md after a crash)."""
    text = list(text)
    figures = sorted((here / "figures").glob("*.png")) if figures_command else []
    if figures:
        text += ["## Figures", "", f"`{figures_command}`", ""]
        text += [f"![{f.stem}](figures/{f.name})" for f in figures]
        text += [""]
    if budget:
        text += [*budget, ""]
    notes = here / "notes.md"
    if notes.is_file():
        text += [notes.read_text().rstrip(), ""]
    tmp = output.with_suffix(".md.tmp")
    tmp.write_text("\n".join(text))
    tmp.replace(output)

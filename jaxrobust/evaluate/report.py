"""Results as JSON and as markdown tables."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _cell(result: dict, key: str, percent: bool = True, digits: int = 4) -> str:
    """``value``, or ``mean (std)`` over runs when the result holds several runs."""

    def fmt(v: float) -> str:
        return _pct(v) if percent else f"{v:.{digits}f}"

    if f"{key}_std" in result:
        return f"{fmt(result[key])} ({fmt(result[key + '_std'])})"
    return fmt(result[key])


def _runs_note(results: dict) -> str:
    runs = {r["num_runs"] for r in results.values() if "num_runs" in r}
    if not runs:
        return ""
    return f" Cells with runs: mean (sample std) over {', '.join(map(str, sorted(runs)))} runs."


def results_markdown(results: dict) -> str:
    """Markdown tables: classification (accuracy, NLL, ECE) and OOD detection per pair."""
    lines = [f"# Results: {results.get('experiment', '')}".rstrip(), ""]
    meta = results.get("meta", {})
    if meta:
        lines.append(
            f"Device: {meta.get('device', '?')}. Checkpoints: "
            + ", ".join(f"{k} epoch {v}" for k, v in meta.get("checkpoints", {}).items())
            + "."
        )
        lines.append("")
    classification = results.get("classification", {})
    if classification:
        bins = next(iter(classification.values())).get("ece_bins", 15)
        lines += [
            "## Classification (test split)",
            "",
            f"ECE with {bins} bins: top-label equal-width (eq. 4.1 of the hybrid-models thesis), "
            "top-label equal-mass, classwise equal-width; MCE equal-width.",
            "",
            "| model | accuracy (%) | NLL | Brier | ECE (%) | ECE equal-mass (%) | "
            "classwise ECE (%) | MCE (%) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, r in classification.items():
            cells = [
                _cell(r, "accuracy"),
                _cell(r, "nll", percent=False),
                _cell(r, "brier", percent=False),
                *(_cell(r, k) for k in ("ece", "ece_equal_mass", "classwise_ece", "mce")),
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for pair, scores in results.get("ood", {}).items():
        in_name, out_name = pair.split("->")
        positive = next(iter(scores.values()), {}).get("positive", "in")
        lines += [
            f"## OOD detection: {in_name} (in) vs {out_name} (out)",
            "",
            f"FPR@TPR with the {positive!r} side positive; AUPR with each side positive."
            + _runs_note(scores),
            "",
        ]
        lines.append(
            "| score | larger means | AUROC (%) | AUPR-in (%) | AUPR-out (%) | FPR@80 (%) | "
            "FPR@95 (%) |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for score, r in scores.items():
            direction = "OOD" if r["higher_is_ood"] else "in-dist."
            cells = [_cell(r, k) for k in ("auroc", "aupr_in", "aupr_out", "fpr80", "fpr95")]
            lines.append(f"| {score} | {direction} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_results(results: dict, workdir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` atomically; returns their paths."""
    workdir = Path(workdir)
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

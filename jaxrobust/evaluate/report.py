"""Results as JSON and as markdown tables."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


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
            lines.append(
                f"| {name} | {_pct(r['accuracy'])} | {r['nll']:.4f} | {r['brier']:.4f} | "
                f"{_pct(r['ece'])} | {_pct(r['ece_equal_mass'])} | {_pct(r['classwise_ece'])} | "
                f"{_pct(r['mce'])} |"
            )
        lines.append("")
    for pair, scores in results.get("ood", {}).items():
        in_name, out_name = pair.split("->")
        positive = next(iter(scores.values()), {}).get("positive", "in")
        lines += [
            f"## OOD detection: {in_name} (in) vs {out_name} (out)",
            "",
            f"FPR@TPR with the {positive!r} side positive; AUPR with each side positive.",
            "",
        ]
        lines.append(
            "| score | larger means | AUROC (%) | AUPR-in (%) | AUPR-out (%) | FPR@80 (%) | "
            "FPR@95 (%) |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for score, r in scores.items():
            direction = "OOD" if r["higher_is_ood"] else "in-dist."
            lines.append(
                f"| {score} | {direction} | {_pct(r['auroc'])} | {_pct(r['aupr_in'])} | "
                f"{_pct(r['aupr_out'])} | {_pct(r['fpr80'])} | {_pct(r['fpr95'])} |"
            )
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

"""Per-run metrics to results: the mean and sample std over runs, and markdown cells.

Example:
    >>> import numpy as np
    >>> aggregate({"auroc": np.array([0.8, 0.9])}, 2)["auroc_std"] > 0
    True
    >>> cell({"auroc": 0.85, "auroc_std": 0.07}, "auroc")
    '85.00 (7.00)'
"""

from __future__ import annotations

import numpy as np


def aggregate(per_run: dict, num_runs: int | None) -> dict:
    """One run: ``{metric: value}``. R runs: the mean, ``<metric>_std`` (ddof 1) and
    ``runs: {metric: [R values]}``."""
    values = {k: np.asarray(v, np.float64) for k, v in per_run.items()}
    if num_runs is None:
        return {k: float(v[0]) for k, v in values.items()}
    out = {k: float(np.mean(v)) for k, v in values.items()}
    out.update(
        {f"{k}_std": float(np.std(v, ddof=1)) if v.size > 1 else 0.0 for k, v in values.items()}
    )
    out["num_runs"] = num_runs
    out["runs"] = {k: v.tolist() for k, v in values.items()}
    return out


def cell(result: dict, key: str, percent: bool = True, digits: int = 4) -> str:
    """``value``, or ``mean (std)`` over runs when the result holds several runs."""

    def fmt(v: float) -> str:
        return f"{100 * v:.2f}" if percent else f"{v:.{digits}f}"

    if f"{key}_std" in result:
        return f"{fmt(result[key])} ({fmt(result[key + '_std'])})"
    return fmt(result[key])


def runs_note(results: dict) -> str:
    """`` Cells with runs: mean (sample std) over R runs.`` when some result has runs."""
    runs = {r["num_runs"] for r in results.values() if "num_runs" in r}
    if not runs:
        return ""
    return f" Cells with runs: mean (sample std) over {', '.join(map(str, sorted(runs)))} runs."

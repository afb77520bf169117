"""Evaluation in its own process: restore checkpoints, score, compute metrics, report, plot."""

from jaxrobust.evaluate.report import results_markdown, write_results
from jaxrobust.evaluate.restore import restore_model
from jaxrobust.evaluate.run import evaluate

__all__ = ["evaluate", "restore_model", "results_markdown", "write_results"]

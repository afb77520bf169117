"""Evaluation in its own process: restore checkpoints, run registered tasks, report, plot.

Tasks (keys of ``config.evaluate``): ``classification``, ``ood``, ``attacks``, ``rejection``,
``intensity_scaling``, ``adversarial_detection``, ``adversarial_rejection``; add one with
:func:`register_evaluation`.
"""

from jaxrobust.evaluate import (  # noqa: F401 (register the tasks)
    adversarial_detection,
    adversarial_rejection,
    classification,
    intensity,
    ood,
    rejection,
    robustness,
)
from jaxrobust.evaluate.context import EvaluationContext
from jaxrobust.evaluate.report import results_markdown, write_results
from jaxrobust.evaluate.restore import RestoredModel, restore_model
from jaxrobust.evaluate.run import evaluate
from jaxrobust.evaluate.task import EvaluationTask, register_evaluation

__all__ = [
    "EvaluationContext",
    "EvaluationTask",
    "RestoredModel",
    "evaluate",
    "register_evaluation",
    "restore_model",
    "results_markdown",
    "write_results",
]

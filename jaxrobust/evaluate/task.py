"""Evaluation tasks by name: each key of ``config.evaluate`` (besides ``checkpoint``,
``batch_size`` and ``test_limit``) names a registered :class:`EvaluationTask`.

A task has two phases over a shared :class:`~jaxrobust.evaluate.context.EvaluationContext`:
``plan(section, ctx)`` requests the model outputs it will read (so that every model makes one
pass per dataset for all tasks), ``run(section, ctx) -> dict`` computes its results (JSON-able)
and writes its plots; ``markdown(result) -> str`` renders its part of ``results.md``. The
section arrives validated against ``schema`` with every default filled.

Registering a task from outside the package::

    import jaxrobust as jr

    def plan(section, ctx):
        for name in section["models"]:
            ctx.request(name, ctx.config.data.name, ["logits"])

    def run(section, ctx):
        return {name: float(ctx.outputs(name, ctx.config.data.name)["logits"].mean())
                for name in section["models"]}

    jr.register_evaluation("mean_logit", plan, run,
                           schema={"models": jr.config.Field(list, items=jr.config.Field(str))})

Example:
    >>> from jaxrobust.registry import EVALUATIONS
    >>> import jaxrobust.evaluate
    >>> {"attacks", "classification", "ood", "rejection"} <= set(EVALUATIONS.names())
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from jaxrobust.registry import EVALUATIONS


class EvaluationTask(NamedTuple):
    """A registered evaluation: ``plan``, ``run``, ``markdown`` and the section's schema."""

    plan: Callable[[Mapping[str, Any], Any], None]
    run: Callable[[Mapping[str, Any], Any], dict]
    markdown: Callable[[dict], str] | None = None
    schema: Mapping[str, Any] | None = None
    description: str = ""


def register_evaluation(
    name: str,
    plan: Callable[[Mapping[str, Any], Any], None],
    run: Callable[[Mapping[str, Any], Any], dict],
    *,
    markdown: Callable[[dict], str] | None = None,
    schema: Mapping[str, Any] | None = None,
    description: str = "",
    overwrite: bool = False,
) -> None:
    """Make ``config.evaluate.<name>`` run this task (see the module docstring).

    Example:
        >>> register_evaluation("noop", lambda s, c: None, lambda s, c: {}, overwrite=True)
        >>> "noop" in EVALUATIONS
        True
    """
    EVALUATIONS.register(
        name, EvaluationTask(plan, run, markdown, schema, description), overwrite=overwrite
    )

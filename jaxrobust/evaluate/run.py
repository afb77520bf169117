"""``evaluate(workdir)``: restore checkpoints, run the configured evaluation tasks, write results.

Config section ``evaluate``: ``checkpoint`` ("best", "last" or an epoch), ``batch_size``
(inputs per jitted batch), ``test_limit`` (first N test images, 0 = all), and one sub-section
per task, each a registered :class:`~jaxrobust.evaluate.task.EvaluationTask` (a section under
another name runs the task its ``task`` entry names, e.g. ``evaluate.fgsm_pixels = {"task":
"attacks", "space": "pixels", ...}`` beside ``evaluate.attacks``):
``classification`` (:mod:`~jaxrobust.evaluate.classification`), ``ood``
(:mod:`~jaxrobust.evaluate.ood`), ``attacks`` (:mod:`~jaxrobust.evaluate.robustness`) and
``rejection`` (:mod:`~jaxrobust.evaluate.rejection`). All tasks plan first, so every model makes
one jitted pass per dataset for all of them (:mod:`~jaxrobust.evaluate.context`).
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import ml_collections

from jaxrobust.config import load_workdir_config, resolve_config
from jaxrobust.config.resolve import evaluation_task_name
from jaxrobust.devices import describe_devices
from jaxrobust.errors import CheckpointNotFoundError
from jaxrobust.evaluate.context import EvaluationContext
from jaxrobust.evaluate.report import write_results
from jaxrobust.registry import EVALUATIONS
from jaxrobust.workdir import WorkdirLock, begin_generation, prepare_workdir

COMMON_KEYS = ("checkpoint", "batch_size", "test_limit")


def task_sections(config: ml_collections.ConfigDict) -> dict[str, dict]:
    """``{task name: its section}`` of ``config.evaluate``, in config order."""
    out = {}
    for name, section in config.evaluate.items():
        if name in COMMON_KEYS or section is None:
            continue
        out[name] = section.to_dict() if hasattr(section, "to_dict") else dict(section)
    return out


def evaluate(workdir: str | os.PathLike, config: ml_collections.ConfigDict | None = None) -> dict:
    """Run the evaluation tasks of ``config.evaluate`` (default: the workdir's stored config)
    and write ``results.json``, ``results.md`` and ``plots/``; returns the results.

    The three are written into ``workdir/evaluations/<n>.tmp/`` and committed together as
    generation ``n`` (``results["meta"]["generation"]``): ``workdir/results.json``,
    ``results.md`` and ``plots`` are symlinks into ``evaluations/current``, repointed in one
    atomic step, so a kill or a full disk leaves the previous evaluation whole. Holds the
    workdir lock while it runs (:class:`jaxrobust.workdir.WorkdirLock`)."""
    workdir = Path(workdir)
    config = resolve_config(config if config is not None else load_workdir_config(workdir))
    if not workdir.exists():
        raise CheckpointNotFoundError(
            f"The workdir {workdir} does not exist: nothing was trained there. Train first with "
            f"`jaxrobust train --config CONFIG.py --workdir {workdir}`."
        )
    prepare_workdir(workdir, create=False)  # a writable directory (WorkdirError otherwise)
    with WorkdirLock(workdir, purpose="evaluate"):
        generation = begin_generation(workdir)
        try:
            results = _evaluate(workdir, config, generation)
            write_results(results, generation.path)
            generation.commit()
        finally:
            generation.abort()  # a no-op once committed
    return results


def _evaluate(workdir: Path, config: ml_collections.ConfigDict, generation) -> dict:
    tic = time.perf_counter()
    ctx = EvaluationContext(workdir, config, plot_dir=generation.plots)
    names = {key: evaluation_task_name(key, s) for key, s in task_sections(config).items()}
    tasks = {
        key: (EVALUATIONS.get(names[key]), section)
        for key, section in task_sections(config).items()
    }
    for task, section in tasks.values():
        task.plan(section, ctx)
    results = {
        "experiment": config.get("name", ""),
        "meta": {
            "device": describe_devices(),
            "checkpoint": config.evaluate.get("checkpoint"),
            "generation": generation.id,
            "tasks": names,
        },
    }
    for key, (task, section) in tasks.items():
        results[key] = task.run(section, _task_context(ctx, key, names[key]))
    restored = ctx.restored_models()
    results["meta"]["checkpoints"] = {n: r.epoch for n, r in restored.items() if not r.is_posterior}
    results["meta"]["posteriors"] = {n: r.meta for n, r in restored.items() if r.is_posterior}
    results["meta"]["passes"] = [
        {"model": m, "dataset": d, "outputs": list(o)} for m, d, o in ctx.passes
    ]
    results["meta"]["seconds"] = time.perf_counter() - tic
    return results


def _task_context(ctx: EvaluationContext, key: str, task: str) -> EvaluationContext:
    """``ctx`` for the section ``key``: a section that runs another name's task writes its
    plots into ``plots/<key>/`` (the two would overwrite each other's); the outputs cached by
    every pass are shared."""
    if key == task:
        return ctx
    view = copy.copy(ctx)
    view.plot_dir = ctx.plot_dir / key
    view.plot_dir.mkdir(parents=True, exist_ok=True)
    return view

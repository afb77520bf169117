"""Restore trained models from a workdir, without their optimizer state."""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections

from jaxrobust.data.preprocess import Preprocess
from jaxrobust.errors import CheckpointNotFoundError
from jaxrobust.models import Model
from jaxrobust.train.checkpoint import ModelCheckpoints
from jaxrobust.train.loop import abstract_variables, build_from_config, checkpoint_dir

PyTree = Any


def restore_model(
    workdir: str | os.PathLike,
    config: ml_collections.ConfigDict,
    name: str,
    which: str | int = "best",
) -> tuple[Model, Preprocess, PyTree, int]:
    """``(model, preprocess, variables, epoch)`` of ``config.models[name]`` from ``workdir``.

    Raises CheckpointNotFoundError when nothing was saved, and CheckpointMismatchError when the
    saved arrays do not fit the model that ``config`` builds.
    """
    model, preprocess = build_from_config(config, name)
    directory = checkpoint_dir(workdir, name)
    if not directory.is_dir():
        raise CheckpointNotFoundError(
            f"No checkpoints for model {name!r} in {directory}. Train first: "
            f"`jaxrobust train --config CONFIG.py --workdir {workdir}`."
        )
    cfg = config.models[name]
    checkpoints = ModelCheckpoints(
        directory, cfg.get("best_metric", "val/loss"), cfg.get("best_mode", "min")
    )
    try:
        epoch = checkpoints.resolve(which)
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract = abstract_variables(model, preprocess, config, sharding, cfg.get("num_runs"))
        variables = checkpoints.restore_variables(epoch, abstract)
    finally:
        checkpoints.close()
    return model, preprocess, variables, epoch

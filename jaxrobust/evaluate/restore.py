"""Restore trained models from a workdir, without their optimizer state.

Example (after ``jaxrobust train --config experiments/quickstart.py --workdir runs/quickstart``)::

    import jaxrobust as jr

    model, preprocess, variables, epoch = jr.evaluate.restore_model("runs/quickstart", "vae")
    mu, log_var = model.encode(variables, preprocess(images))
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import ml_collections

from jaxrobust.config import load_workdir_config
from jaxrobust.data.preprocess import Preprocess
from jaxrobust.errors import CheckpointNotFoundError, ConfigError
from jaxrobust.models import Model
from jaxrobust.sweep import Sweep, split_member_name
from jaxrobust.train.checkpoint import ModelCheckpoints
from jaxrobust.train.loop import abstract_variables, build_from_config, checkpoint_dir

PyTree = Any


class RestoredModel(NamedTuple):
    """A model, its preprocessing, the restored variables and the checkpoint's epoch."""

    model: Model
    preprocess: Preprocess
    variables: PyTree
    epoch: int


def restore_model(
    workdir: str | os.PathLike,
    name: str,
    which: str | int = "best",
    *,
    config: ml_collections.ConfigDict | None = None,
) -> RestoredModel:
    """``(model, preprocess, variables, epoch)`` of model ``name`` trained into ``workdir``.

    ``config`` defaults to the workdir's stored ``config.json`` (the resolved config of the
    training run), so no config file is needed. ``which``: ``"best"``, ``"last"`` or an epoch.
    Models with ``training.num_runs`` come back with a leading run axis on every variable; a
    model with a ``training.sweep`` with its [M] members (settings x runs), and one setting of
    it, ``name = "<model>@alpha=10"`` (:mod:`jaxrobust.sweep`), with that setting's runs only
    (unstacked without ``num_runs``), its ``loss_weights`` collection kept.

    Raises CheckpointNotFoundError when nothing was saved, CheckpointMismatchError when the
    saved arrays do not fit the model that ``config`` builds, and CheckpointCorruptError when the
    chosen checkpoint fails its integrity check (content hash, unreadable or missing files,
    non-finite values): evaluation never falls back to another epoch silently; the message names
    the damaged step and the fix (delete it to use the previous kept epoch, or retrain).
    """
    config = load_workdir_config(workdir) if config is None else config
    name, label = split_member_name(name)
    model, preprocess = build_from_config(config, name)
    directory = checkpoint_dir(workdir, name)
    if not directory.is_dir():
        raise CheckpointNotFoundError(
            f"No checkpoints for model {name!r} in {directory}. Train first: "
            f"`jaxrobust train --config CONFIG.py --workdir {workdir}`."
        )
    training = config.models[name].training
    checkpoints = ModelCheckpoints(
        directory, training.get("best_metric", "val/loss"), training.get("best_mode", "min")
    )
    try:
        epoch = checkpoints.resolve(which)
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract = abstract_variables(
            model, preprocess, config, sharding, training.get("num_runs"),
            sweep=Sweep.from_training(training),
        )  # fmt: skip
        variables = checkpoints.restore_variables(epoch, abstract)
    finally:
        checkpoints.close()
    if label is not None:
        sweep = Sweep.from_training(training)
        if sweep is None:
            raise ConfigError(
                f"{name}@{label}: config.models.{name} has no training.sweep; restore {name!r}."
            )
        members = sweep.members(f"{name}@{label}")
        pick = members if sweep.num_runs is not None else members.start
        variables = jax.tree.map(lambda v: v[pick], variables)
    return RestoredModel(model, preprocess, variables, epoch)

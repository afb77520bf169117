"""Orbax checkpoints of one model: keep the last and the best epoch, restore params alone.

Layout: ``<directory>/<epoch>/{variables, opt_state, meta}``. ``variables`` is everything
evaluation needs (params and e.g. batch statistics); ``opt_state`` is only read to resume
training. Orbax writes each step to a temporary directory and renames it when complete, so a
killed process never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jaxrobust.errors import CheckpointMismatchError, CheckpointNotFoundError

PyTree = Any


class ModelCheckpoints:
    """Checkpoints of one model under ``directory``, ranked by ``best_metric``.

    Args:
      directory: where the epochs are stored.
      best_metric: key of the metrics dict given to :meth:`save` that ranks checkpoints.
      best_mode: ``"min"`` or ``"max"``.
    """

    def __init__(
        self, directory: str | os.PathLike, best_metric: str = "val/loss", best_mode: str = "min"
    ):
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}.")
        self.directory = Path(directory).absolute()
        self.best_metric = best_metric

        def metric(metrics):
            return metrics[best_metric]

        policy = checkpoint_managers.AnyPreservationPolicy(
            [
                checkpoint_managers.LatestN(n=1),
                checkpoint_managers.BestN(get_metric_fn=metric, reverse=best_mode == "min", n=1),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy, best_fn=metric, best_mode=best_mode, create=True
        )
        handlers = {
            "variables": ocp.StandardCheckpointHandler(),
            "opt_state": ocp.StandardCheckpointHandler(),
            "meta": ocp.JsonCheckpointHandler(),
        }
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=handlers
        )

    def save(
        self, epoch: int, variables: PyTree, opt_state: PyTree, meta: dict, metrics: dict
    ) -> None:
        """Save epoch ``epoch`` (asynchronously; see :meth:`wait`)."""
        if self.best_metric not in metrics:
            raise KeyError(
                f"best_metric {self.best_metric!r} is not among the metrics {sorted(metrics)}."
            )
        args = ocp.args.Composite(
            variables=ocp.args.StandardSave(variables),
            opt_state=ocp.args.StandardSave(opt_state),
            meta=ocp.args.JsonSave(meta),
        )
        numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        self._manager.save(epoch, args=args, metrics=numeric)

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def latest_epoch(self) -> int | None:
        return self._manager.latest_step()

    def best_epoch(self) -> int | None:
        return self._manager.best_step()

    def epochs(self) -> list[int]:
        return list(self._manager.all_steps())

    def resolve(self, which: str | int) -> int:
        """The epoch that `which` ("best", "last" or an epoch number) names; raises if none."""
        if isinstance(which, int):
            epoch = which if which in self.epochs() else None
        elif which == "best":
            epoch = self.best_epoch()
        elif which in ("last", "latest"):
            epoch = self.latest_epoch()
        else:
            raise ValueError(
                f"Checkpoint selector must be 'best', 'last' or an epoch, got {which!r}."
            )
        if epoch is None:
            raise CheckpointNotFoundError(
                f"No checkpoint {which!r} under {self.directory} (found epochs {self.epochs()}). "
                "Train first with `jaxrobust train --config ... --workdir ...`."
            )
        return epoch

    def check_matches(self, epoch: int, abstract_variables: PyTree) -> None:
        """Raise :class:`CheckpointMismatchError` if saved shapes differ from the model's."""
        saved = self._manager.item_metadata(epoch)["variables"]
        saved = getattr(saved, "tree", saved)
        saved_shapes = _shapes_by_path(saved)
        expected = _shapes_by_path(abstract_variables)
        problems = []
        for path in sorted(set(saved_shapes) | set(expected)):
            if path not in saved_shapes:
                problems.append(
                    f"  {path}: missing from the checkpoint (model has {expected[path]})"
                )
            elif path not in expected:
                problems.append(
                    f"  {path}: in the checkpoint {saved_shapes[path]}, not in the model"
                )
            elif saved_shapes[path] != expected[path]:
                problems.append(
                    f"  {path}: checkpoint {saved_shapes[path]} vs model {expected[path]}"
                )
        if problems:
            shown = "\n".join(problems[:10])
            more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise CheckpointMismatchError(
                f"The checkpoint {self.directory / str(epoch)} does not match the model the config "
                f"builds ({len(problems)} differing arrays):\n{shown}{more}\n"
                "Evaluate with the config the model was trained with (the workdir's config.json, "
                "the default), or retrain with the new config in a fresh workdir."
            )

    def restore_variables(self, which: str | int, abstract_variables: PyTree) -> PyTree:
        """Restore only the model variables (no optimizer state needed)."""
        epoch = self.resolve(which)
        self.check_matches(epoch, abstract_variables)
        args = ocp.args.Composite(variables=ocp.args.StandardRestore(abstract_variables))
        return self._manager.restore(epoch, args=args)["variables"]

    def restore_train_state(
        self, epoch: int, abstract_variables: PyTree, abstract_opt_state: PyTree
    ) -> tuple[PyTree, PyTree, dict]:
        """Restore variables, optimizer state and metadata to resume training."""
        self.check_matches(epoch, abstract_variables)
        args = ocp.args.Composite(
            variables=ocp.args.StandardRestore(abstract_variables),
            opt_state=ocp.args.StandardRestore(abstract_opt_state),
            meta=ocp.args.JsonRestore(),
        )
        restored = self._manager.restore(epoch, args=args)
        return restored["variables"], restored["opt_state"], restored["meta"]


def _shapes_by_path(tree: PyTree) -> dict[str, tuple]:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    out = {}
    for path, leaf in leaves:
        key = "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        out[key] = tuple(np.shape(leaf)) if not hasattr(leaf, "shape") else tuple(leaf.shape)
    return out

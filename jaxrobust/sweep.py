"""Hyperparameter sweeps as one program: a stacked axis of loss weights beside the run axis.

``training.sweep = {"alpha": [1, 10, 100]}`` trains every setting of the swept scalar loss
weights (the Cartesian product of the lists, the first name varying slowest) times
``num_runs`` seeds as ONE stacked program: member ``m = s * R + r`` is setting ``s`` with seed
``seed + r``, so it equals the separately trained model with that setting in its architecture
and ``num_runs = R`` (run r). The values travel in the variables' ``"loss_weights"``
collection (``{name: [M]}``, stacked like every other variable, never trained), which the
model's loss reads (:attr:`jaxrobust.models.Model.loss_weights` names the weights a model
can sweep). One checkpoint holds all members; evaluation addresses a setting as
``"<model>@<name>=<value>[,<name>=<value>]"`` (its R runs) and the bare model name as all M
members.

Example:
    >>> sweep = Sweep.from_training({"sweep": {"alpha": [1.0, 10.0], "beta": [0.1]},
    ...                             "num_runs": 3})
    >>> sweep.num_settings, sweep.num_members, sweep.setting_labels()
    (2, 6, ['alpha=1,beta=0.1', 'alpha=10,beta=0.1'])
    >>> sweep.member_values()["alpha"].tolist()
    [1.0, 1.0, 1.0, 10.0, 10.0, 10.0]
    >>> sweep.members("dhm@alpha=10,beta=0.1")
    slice(3, 6, None)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from jaxrobust.errors import ConfigError
from jaxrobust.registry import UnknownNameError

SEPARATOR = "@"
#: The variables' collection that holds each member's swept loss weights.
LOSS_WEIGHTS_COLLECTION = "loss_weights"


class Sweep(NamedTuple):
    """The settings of a model's ``training.sweep`` and its runs (module docstring)."""

    names: tuple[str, ...]
    settings: tuple[tuple[float, ...], ...]
    num_runs: int | None

    @classmethod
    def from_training(cls, training: Mapping[str, Any]) -> Sweep | None:
        """The sweep of a (validated) training section; None without one."""
        sweep = training.get("sweep")
        if not sweep:
            return None
        names = tuple(sweep)
        settings = tuple(itertools.product(*(tuple(float(v) for v in sweep[n]) for n in names)))
        return cls(names, settings, training.get("num_runs"))

    @property
    def num_settings(self) -> int:
        return len(self.settings)

    @property
    def runs_per_setting(self) -> int:
        return self.num_runs or 1

    @property
    def num_members(self) -> int:
        """Settings x runs: the length of the stacked member axis."""
        return self.num_settings * self.runs_per_setting

    def member_values(self) -> dict[str, np.ndarray]:
        """``{name: float32 [M]}``: each member's value of each swept weight."""
        table = np.asarray(self.settings, np.float32).reshape(self.num_settings, -1)
        return {n: np.repeat(table[:, i], self.runs_per_setting) for i, n in enumerate(self.names)}

    def member_runs(self) -> np.ndarray:
        """``int [M]``: the run index r of every member (its seed is ``seed + r``)."""
        return np.tile(np.arange(self.runs_per_setting), self.num_settings)

    def setting_labels(self) -> list[str]:
        """``"alpha=10,beta=0.1"`` per setting (values in ``%g``)."""
        return [
            ",".join(f"{n}={v:g}" for n, v in zip(self.names, values, strict=True))
            for values in self.settings
        ]

    def setting_names(self, model_name: str) -> list[str]:
        """``"<model>@<label>"`` per setting: how evaluation configs name each setting."""
        return [f"{model_name}{SEPARATOR}{label}" for label in self.setting_labels()]

    def setting_index(self, label: str, where: str = "the model name") -> int:
        """Index of the setting ``label`` (``"alpha=10"``; values compared as numbers)."""
        try:
            wanted = dict(item.split("=", 1) for item in label.split(","))
            key = tuple(float(wanted[n]) for n in self.names)
            if len(wanted) != len(self.names):
                raise KeyError(label)
            return self.settings.index(key)
        except (ValueError, KeyError):
            raise UnknownNameError(
                f"Unknown sweep setting {label!r} in {where}; known: {self.setting_labels()}."
            ) from None

    def members(self, name: str) -> slice:
        """The member slice of ``"<model>@<label>"`` (its ``num_runs`` runs)."""
        _, label = split_member_name(name)
        s = self.setting_index(label, repr(name))
        return slice(s * self.runs_per_setting, (s + 1) * self.runs_per_setting)


def split_member_name(name: str) -> tuple[str, str | None]:
    """``"dhm@alpha=10"`` -> ``("dhm", "alpha=10")``; a plain name -> ``(name, None)``.

    Example:
        >>> split_member_name("dhm@alpha=10"), split_member_name("cnn")
        (('dhm', 'alpha=10'), ('cnn', None))
    """
    base, sep, label = name.partition(SEPARATOR)
    return base, (label if sep else None)


def check_sweep_section(value: Any, path: str) -> dict | None:
    """``training.sweep``: ``{weight name: non-empty list of finite numbers}``, or None."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(
            f"{path} must be a non-empty mapping of loss-weight name to a list of values, e.g. "
            "{'alpha': [1, 10, 100]}; got " + repr(value)
        )
    out = {}
    for name, values in value.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"{path}.{name} must be a non-empty list of numbers, got {values!r}.")
        numbers = []
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ConfigError(f"{path}.{name}[{i}] must be a finite number, got {v!r}.")
            numbers.append(float(v))
        if len(set(numbers)) != len(numbers):
            raise ConfigError(f"{path}.{name} repeats a value: {numbers}.")
        out[str(name)] = numbers
    return out


def check_sweep_names(sweep: Sweep, loss_weights: Mapping[str, float], where: str) -> None:
    """Every swept name must be one of the model's loss weights (``Model.loss_weights``)."""
    for name in sweep.names:
        if name not in loss_weights:
            known = sorted(loss_weights)
            raise UnknownNameError(
                f"{where}.sweep.{name}: not a loss weight this model can sweep; its loss "
                f"weights are {known}" + ("" if known else " (none)") + "."
            )

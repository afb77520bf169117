"""Parallelism through ``jax.sharding``: one mesh axis ``"data"`` over all devices.

Data parallelism (one model, or runs that do not divide over the devices): parameters and the
device-resident dataset are replicated; each step's batch is constrained to be split along its
leading axis, and XLA (GSPMD) inserts the gradient all-reduce. Run parallelism (R stacked runs or
ensemble members, R a multiple of the device count): the training state is split along its
leading run axis, each device trains R / N runs on the replicated dataset, no communication. The
same program runs on 1 device and on N, and on the devices of several processes
(:mod:`jaxrobust.distributed`): the mesh then spans every process's devices.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process; in a single
    process, its local devices)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def runs_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (run / member) axis split over the mesh."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def shards_runs(num_runs: int | None, mesh: Mesh) -> bool:
    """Whether R stacked runs are split over the devices (R a multiple of N > 1)."""
    n = mesh.devices.size
    return num_runs is not None and n > 1 and num_runs % n == 0


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the mesh."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_divisible(batch_size: int, mesh: Mesh, what: str = "batch_size") -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(
            f"{what}={batch_size} is not divisible by the {n} devices of the data mesh; "
            f"choose a multiple of {n}."
        )

"""Host-fed batches: each process puts only its shard of every batch on its own devices.

Two ways a training epoch gets its batches (``config.data.feed``):

- ``"device"`` (one process, the default there): the uint8 dataset is put on the devices once and
  the jitted epoch gathers each step's batch itself (:mod:`jaxrobust.train.epoch`).
- ``"host"`` (several processes, the default there; or asked for): the dataset stays in host
  memory; before each epoch every process draws the same epoch permutation (a pure function of
  the epoch key, :func:`epoch_batch_indices`) and builds, with ``jax.make_array_from_callback``,
  the global ``[steps, batch, ...]`` array of which it materialises only the pieces that live on
  its own devices. The scanned epoch then reads batch ``t`` of that array: the same batches, in
  the same order, as ``"device"``, so both feeds train to the same parameters.

Examples:
    >>> import numpy as np
    >>> from jaxrobust.train.sharding import data_mesh
    >>> mesh = data_mesh()
    >>> images = np.arange(10 * 2, dtype=np.uint8).reshape(10, 2)
    >>> idx = np.array([[3, 1], [0, 7]])
    >>> fed = shard_batches(images, idx, batch_spec(mesh, idx.ndim))
    >>> fed.shape, fed[1, 0].tolist()
    ((2, 2, 2), [0, 1])
"""

from __future__ import annotations

from functools import partial

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxrobust.data.batching import shuffled_batches
from jaxrobust.train.sharding import DATA_AXIS

FEEDS = ("auto", "device", "host")


def resolve_feed(feed: str, num_processes: int) -> str:
    """``"device"`` or ``"host"``: ``"auto"`` is host-fed exactly when there are several
    processes (a dataset replicated on every device of every host is what multi-host training
    avoids).

    Examples:
        >>> resolve_feed("auto", 1), resolve_feed("auto", 2), resolve_feed("host", 1)
        ('device', 'host', 'host')
    """
    if feed not in FEEDS:
        raise ValueError(f"feed must be one of {FEEDS}, got {feed!r}.")
    if feed == "auto":
        return "host" if num_processes > 1 else "device"
    return feed


def epoch_batch_indices(epoch_key: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """``[steps, batch]`` example indices of one epoch: the permutation drawn from the first half
    of ``jax.random.split(epoch_key)`` (what the device-fed epoch draws in-graph)."""
    perm_key, _ = jax.random.split(epoch_key)
    return shuffled_batches(perm_key, num_examples, batch_size)


def batch_spec(mesh: Mesh, index_ndim: int, *, shard_runs: bool = False) -> NamedSharding:
    """Sharding of a host-fed ``[R?, steps, batch, ...]`` array: the batch axis (the last index
    axis) over the mesh, or with ``shard_runs`` the leading run axis."""
    if shard_runs:
        return NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    return NamedSharding(mesh, PartitionSpec(*([None] * (index_ndim - 1)), DATA_AXIS))


def shard_batches(array: np.ndarray, indices: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """The global array ``array[indices]`` (shape ``indices.shape + array.shape[1:]``) with
    ``sharding``, of which this process gathers and transfers only its devices' pieces."""
    array = np.asarray(array)
    indices = np.asarray(indices)
    shape = indices.shape + array.shape[1:]
    k = indices.ndim

    def piece(index: tuple[slice, ...]) -> np.ndarray:
        return array[indices[index[:k]]][(slice(None),) * k + tuple(index[k:])]

    return jax.make_array_from_callback(shape, sharding, piece)


def host_epoch_indices(
    epoch_keys: jax.Array, num_examples: int, batch_size: int, num_runs: int | None
) -> np.ndarray:
    """The ``[R?, steps, batch]`` indices of one epoch on the host (identical in every process:
    the keys are)."""
    from jaxrobust.distributed import host_value

    return host_value(_draw_indices(epoch_keys, num_examples, batch_size, num_runs is not None))


@partial(jax.jit, static_argnums=(1, 2, 3))
def _draw_indices(epoch_keys, num_examples: int, batch_size: int, stacked: bool) -> jax.Array:
    """Compiled once per (size, batch, stacked), not once per epoch."""
    draw = partial(epoch_batch_indices, num_examples=num_examples, batch_size=batch_size)
    return jax.vmap(draw)(epoch_keys) if stacked else draw(epoch_keys)

"""One training epoch, and one evaluation pass, as single jitted calls.

The dataset (uint8) lives on the device. ``train_epoch`` draws the epoch's permutation, then
``lax.scan`` runs every step: gather the batch, preprocess and augment it on device, take the
gradient, update. Per-step metrics come back as ``[steps]`` arrays, read once per epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxrobust.data.batching import padded_batches
from jaxrobust.data.preprocess import Preprocess
from jaxrobust.models.base import Model, merge_variables
from jaxrobust.runs import over_runs
from jaxrobust.train.feed import epoch_batch_indices
from jaxrobust.train.sharding import batch_sharded, replicated

PyTree = Any


class TrainState(NamedTuple):
    """Everything that changes during training; a pytree."""

    step: jax.Array
    params: PyTree
    model_state: PyTree
    opt_state: PyTree


def make_train_epoch(
    model: Model,
    optimizer: optax.GradientTransformation,
    preprocess: Preprocess,
    batch_size: int,
    mesh: Mesh,
    num_runs: int | None = None,
    shard_runs: bool = False,
    feed: str = "device",
) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array], tuple[TrainState, dict]]:
    """``train_epoch(state, images, labels, epoch_key, negatives=None) -> (state, {metric:
    [steps]})``, jitted. ``negatives`` (uint8 images of an auxiliary dataset, on the device)
    adds a uniformly drawn ``batch["negative_image"]`` to every step.

    With ``num_runs`` = R, every leaf of ``state`` and ``epoch_key`` has a leading run axis [R]
    and the R runs (own initialisation, shuffling and noise each) train as one program (vmapped,
    or mapped on CPU: :mod:`jaxrobust.runs`)
    over the shared device-resident dataset; metrics come back as ``[R, steps]``. With
    ``shard_runs`` the runs are vmapped and split over the mesh (the state sharded along its run
    axis, :func:`jaxrobust.train.sharding.runs_sharded`) instead of splitting each batch.
    The state is donated: its buffers are reused for the new state.

    With ``feed="host"`` (:mod:`jaxrobust.train.feed`) ``images`` and ``labels`` are the
    epoch's batches, ``[R?, steps, batch, ...]``, drawn on the host with
    :func:`jaxrobust.train.feed.epoch_batch_indices` and already sharded: the same batches as
    the device-fed epoch, which gathers them itself from the whole dataset.
    """
    batch_spec = batch_sharded(mesh)

    def train_step(state: TrainState, inputs, images, labels, negatives):
        source, key = inputs
        if feed == "host":  # the batch itself, already sharded over the mesh
            batch_images, batch_labels = source
        else:  # its indices into the device-resident dataset
            batch_images, batch_labels = images[source], labels[source]
        augment_key, loss_key = jax.random.split(key)
        batch = {
            "image": preprocess(batch_images, key=augment_key, train=True),
            "label": batch_labels,
        }
        if negatives is not None:  # an auxiliary dataset: a uniformly drawn batch of it
            neg_key = jax.random.fold_in(key, 1)
            neg_idx = jax.random.randint(neg_key, batch_labels.shape, 0, negatives.shape[0])
            batch["negative_image"] = preprocess(negatives[neg_idx])
        if not shard_runs:
            batch = jax.lax.with_sharding_constraint(batch, batch_spec)

        def objective(params):
            variables = merge_variables(params, state.model_state)
            losses, (metrics, model_state) = model.loss(variables, batch, key=loss_key, train=True)
            return jnp.mean(losses), (metrics, model_state)

        grads, (metrics, model_state) = jax.grad(objective, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {name: jnp.mean(value) for name, value in metrics.items()}
        return TrainState(state.step + 1, params, model_state, opt_state), metrics

    def train_epoch(state, images, labels, epoch_key, negatives=None):
        _, steps_key = jax.random.split(epoch_key)
        if feed == "host":  # images, labels: [steps, batch, ...], drawn by the host
            sources, steps = (images, labels), images.shape[0]
        else:
            sources = epoch_batch_indices(epoch_key, images.shape[0], batch_size)
            steps = sources.shape[0]
        step_keys = jax.random.split(steps_key, steps)

        def body(carry, inputs):
            return train_step(carry, inputs, images, labels, negatives)

        return jax.lax.scan(body, state, (sources, step_keys))

    if num_runs is not None:
        strategy = "vmap" if shard_runs else None
        data_axis = 0 if feed == "host" else None  # host-fed: every run has its own batches
        train_epoch = over_runs(
            train_epoch, in_axes=(0, data_axis, data_axis, 0, None), strategy=strategy
        )
    return jax.jit(train_epoch, donate_argnums=0)


def make_eval_pass(
    model: Model,
    preprocess: Preprocess,
    batch_size: int,
    mesh: Mesh,
    num_runs: int | None = None,
    shard_runs: bool = False,
    feed: str = "device",
) -> Callable[[PyTree, PyTree, jax.Array, jax.Array, jax.Array], dict]:
    """``eval_pass(params, model_state, images, labels, key) -> {metric: mean}``, jitted.

    With ``feed="host"``, ``images`` and ``labels`` are the padded batches ``[batches, batch,
    ...]`` of :func:`jaxrobust.data.batching.padded_batches` and a sixth argument ``mask``
    (``[batches, batch]``) says which entries are real.

    Every example counts once: the last batch is padded and masked out of the means. With
    ``num_runs``, params, model_state and key carry a leading run axis and so do the means.
    """
    batch_spec = batch_sharded(mesh)

    def eval_pass(params, model_state, images, labels, key, mask=None):
        if feed == "host":  # images, labels: [batches, batch, ...]; mask: [batches, batch]
            sources, count = (images, labels), jnp.sum(mask)
        else:
            idx, mask = padded_batches(images.shape[0], batch_size)
            sources, count = jnp.asarray(idx), float(mask.sum())
        keys = jax.random.split(key, mask.shape[0])

        def body(_, inputs):
            source, batch_mask, batch_key = inputs
            if feed == "host":
                batch_images, batch_labels = source
            else:
                batch_images, batch_labels = images[source], labels[source]
            batch = {"image": preprocess(batch_images), "label": batch_labels}
            if not shard_runs:
                batch = jax.lax.with_sharding_constraint(batch, batch_spec)
            variables = merge_variables(params, model_state)
            _, (metrics, _) = model.loss(variables, batch, key=batch_key, train=False)
            sums = {k: jnp.sum(v.astype(jnp.float32) * batch_mask) for k, v in metrics.items()}
            return None, sums

        _, sums = jax.lax.scan(body, None, (sources, jnp.asarray(mask), keys))
        return {name: jnp.sum(total) / count for name, total in sums.items()}

    if num_runs is not None:
        strategy = "vmap" if shard_runs else None
        eval_pass = over_runs(eval_pass, in_axes=(0, 0, None, None, 0, None), strategy=strategy)
    return jax.jit(eval_pass, static_argnums=(), out_shardings=replicated(mesh))

"""Collect posterior samples inside the optimizer state, so a jitted ``lax.scan`` training loop
yields the stacked sample pytree (leading axis = sample) that evaluation vmaps over.

``collect_samples(inner, start_step, every_steps, num_samples)`` runs ``inner`` and, after the
update with index ``t`` (0-based count of update calls), stores ``params + updates`` (the params
after that update) when ``t >= start_step``, ``(t - start_step) % every_steps == 0`` and fewer than
``num_samples`` are stored: samples are the params after updates ``start_step``,
``start_step + every_steps``, ... The buffer is preallocated; writes are a
``lax.dynamic_update_index_in_dim`` of one slice, so the state works under jit, scan and vmap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from jaxrobust.inference import subset

PyTree = Any
MaskSpec = Any  # None, a bool tree like params, a path regex (or several), or a callable


class CollectState(NamedTuple):
    """State of :func:`collect_samples`: counters, the sample buffer, the sampler's state.

    Examples:
        >>> opt = collect_samples(optax.sgd(1.0), start_step=0, every_steps=1, num_samples=3)
        >>> state = opt.init({"w": jnp.zeros(2)})
        >>> int(state.step), int(state.count), state.samples["w"].shape
        (0, 0, (3, 2))
    """

    step: jax.Array  # number of update calls so far, int32
    count: jax.Array  # number of samples stored, int32
    samples: PyTree  # selected leaves (pruned dict) with a leading [num_samples] axis
    inner_state: Any


def _selector(mask: MaskSpec, params: PyTree) -> Callable[[PyTree], PyTree]:
    """A function params -> the pruned tree of the leaves chosen by ``mask``."""
    if mask is None and not isinstance(params, Mapping):
        return lambda p: p
    if callable(mask):
        mask = mask(params)
    if isinstance(mask, str) or (
        isinstance(mask, Sequence) and mask and all(isinstance(m, str) for m in mask)
    ):
        mask = subset.mask(params, mask)
    if not isinstance(params, Mapping) or not (mask is None or isinstance(mask, Mapping)):
        raise TypeError(
            "collect_samples: a mask needs params and mask as nested dicts (flax params); "
            f"got {type(params).__name__} and {type(mask).__name__}. Use mask=None for all leaves."
        )
    # Leaves without arrays (optax.MaskedNode under multi_transform / masked) are never stored.
    flat_params = {
        k: v for k, v in traverse_util.flatten_dict(dict(params)).items() if jax.tree.leaves(v)
    }
    if mask is None:
        chosen = list(flat_params)
    else:
        flat_mask = traverse_util.flatten_dict(dict(mask))
        missing = sorted("/".join(k) for k in flat_params if k not in flat_mask)
        if missing:
            raise ValueError(f"collect_samples: the mask has no entry for {missing[:8]}.")
        chosen = [k for k in flat_params if bool(flat_mask[k])]
    if not chosen:
        raise ValueError(
            "collect_samples: the mask selects no parameter; paths are "
            f"{subset.paths(params)[:12]}."
        )

    def select(p: PyTree) -> dict:
        flat = traverse_util.flatten_dict(dict(p))
        return traverse_util.unflatten_dict({k: flat[k] for k in chosen})

    return select


def collect_samples(
    inner: optax.GradientTransformation,
    start_step: int,
    every_steps: int,
    num_samples: int,
    mask: MaskSpec = None,
) -> optax.GradientTransformation:
    """Wrap ``inner`` so its state also stores ``num_samples`` thinned parameter snapshots.

    Args:
      inner: the sampler (e.g. ``optax.chain(gamma_prior_precision(...), sghmc(...))``).
      start_step: index of the first update whose result is stored (e.g. the burn-in length).
      every_steps: thinning interval in updates.
      num_samples: buffer size; later scheduled steps are ignored once it is full.
      mask: which leaves to store: None (all), a bool tree like params, a path regex (or
        several, see ``jaxrobust.inference.subset``) or a callable params -> bool tree.
        Stored leaves form a pruned nested dict.

    ``update`` needs ``params``. Read the samples with ``collected_samples(opt_state)``.

    Examples:
        SGD with learning rate 1 on the gradient 1 moves w to -1, -2, -3, -4, -5; the params
        after updates 1 and 3 are stored (start 1, every 2), the last update is past the buffer:

        >>> opt = collect_samples(optax.sgd(1.0), start_step=1, every_steps=2, num_samples=2)
        >>> params = {"w": jnp.zeros(1)}
        >>> state = opt.init(params)
        >>> for _ in range(5):
        ...     updates, state = opt.update({"w": jnp.ones(1)}, state, params)
        ...     params = optax.apply_updates(params, updates)
        >>> collected_samples(state)["w"].tolist()
        [[-2.0], [-4.0]]

        Only the decoder, chosen by a path regex:

        >>> params = {"decoder": {"w": jnp.zeros(2)}, "encoder": {"w": jnp.zeros(3)}}
        >>> opt = collect_samples(optax.sgd(1.0), 0, 1, num_samples=4, mask="^decoder/")
        >>> jax.tree.map(jnp.shape, opt.init(params).samples)
        {'decoder': {'w': (4, 2)}}
    """
    if start_step < 0 or every_steps < 1 or num_samples < 1:
        raise ValueError(
            "collect_samples: need start_step >= 0, every_steps >= 1, num_samples >= 1; got "
            f"{start_step}, {every_steps}, {num_samples}."
        )

    def init(params: PyTree) -> CollectState:
        select = _selector(mask, params)
        buffer = jax.tree.map(
            lambda x: jnp.zeros((num_samples, *jnp.shape(x)), jnp.result_type(x)), select(params)
        )
        zero = jnp.zeros((), jnp.int32)
        return CollectState(zero, zero, buffer, inner.init(params))

    def update(updates: PyTree, state: CollectState, params: PyTree = None):
        if params is None:
            raise ValueError(
                "collect_samples needs the current params: call update(grads, state, params)."
            )
        select = _selector(mask, params)
        new_updates, inner_state = inner.update(updates, state.inner_state, params)
        new_params = optax.apply_updates(params, new_updates)
        offset = state.step - start_step
        take = (offset >= 0) & (offset % every_steps == 0) & (state.count < num_samples)
        index = jnp.minimum(state.count, num_samples - 1)

        def write(buffer, value):
            old = jax.lax.dynamic_index_in_dim(buffer, index, 0, keepdims=False)
            new = jnp.where(take, value.astype(buffer.dtype), old)
            return jax.lax.dynamic_update_index_in_dim(buffer, new, index, 0)

        samples = jax.tree.map(write, state.samples, select(new_params))
        count = state.count + take.astype(jnp.int32)
        return new_updates, CollectState(state.step + 1, count, samples, inner_state)

    return optax.GradientTransformation(init, update)


def _find(opt_state: Any) -> list[CollectState]:
    nodes = jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, CollectState))
    return [x for x in nodes if isinstance(x, CollectState)]


def collected_samples(opt_state: Any) -> PyTree:
    """The samples stored by ``collect_samples`` somewhere inside ``opt_state`` (chained,
    masked, multi_transform-wrapped, ...): a pytree with leading axis [num_samples], or
    [runs..., num_samples] when the state was vmapped over runs. Host-side (not under jit).

    Raises if no or several CollectStates are found, or if a run stored fewer than num_samples.

    Examples:
        >>> opt = optax.chain(optax.clip(1.0), collect_samples(optax.sgd(1.0), 0, 1, 2))
        >>> params = {"w": jnp.zeros(1)}
        >>> state = opt.init(params)
        >>> collected_samples(state)
        Traceback (most recent call last):
        ...
        ValueError: collected_samples: only 0 of 2 samples were collected (counts 0); ...
        >>> for _ in range(2):
        ...     updates, state = opt.update({"w": jnp.ones(1)}, state, params)
        ...     params = optax.apply_updates(params, updates)
        >>> collected_samples(state)["w"].tolist()
        [[-1.0], [-2.0]]
    """
    found = _find(opt_state)
    if not found:
        raise ValueError(
            "collected_samples: no CollectState in this optimizer state; wrap the sampler "
            "in collect_samples(...)."
        )
    if len(found) > 1:
        raise ValueError(
            f"collected_samples: {len(found)} CollectStates in this optimizer state; "
            "pass the part of the state that holds the one you want."
        )
    state = found[0]
    count = np.asarray(state.count)
    leaves = jax.tree.leaves(state.samples)
    num_samples = leaves[0].shape[count.ndim]
    if np.any(count < num_samples):
        raise ValueError(
            f"collected_samples: only {count.min()} of {num_samples} samples were collected "
            f"(counts {count.tolist()}); train longer or lower num_samples."
        )
    return state.samples

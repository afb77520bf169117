"""SWAG: stochastic weight averaging Gaussian (Maddox et al. 2019, "A Simple Baseline for
Bayesian Uncertainty in Deep Learning"; the dissertation's Ch.3 baseline with K = 40).

Every ``every_steps`` SGD steps past ``start_step`` the iterate theta_i (i = 1..n) is collected:

    mean_n    = ((n - 1) mean_{n-1} + theta_n) / n          (the SWA solution)
    sq_mean_n = ((n - 1) sq_mean_{n-1} + theta_n^2) / n
    D[:, n]   = theta_n - mean_n                             (mean AFTER including theta_n)

with D a ring buffer holding the last ``rank`` deviation columns, as in the reference code
(wjmaddox/swa_gaussian, ``SWAG.collect_model``). The approximate posterior is

    N(mean, scale * (Sigma_diag + Sigma_lowrank)),
    Sigma_diag = diag(max(sq_mean - mean^2, var_clamp)),   Sigma_lowrank = D D^T / (K - 1),

K = min(n, rank) the number of columns collected so far; scale = 1/2 is the paper's
1/2 (Sigma_diag + Sigma_lowrank). States are plain NamedTuples of pytrees, so they jit, vmap
over a leading run axis and save with Orbax.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

PyTree = Any


class SWAGState(NamedTuple):
    """SWAG moments. ``deviations`` leaves have a leading [rank] axis (a ring buffer: collection
    number j, counted from 0, sits in slot ``j % rank``).

    Examples:
        >>> state = swag_init({"w": jnp.zeros(3)}, rank=2)
        >>> int(state.count), state.mean["w"].shape, state.deviations["w"].shape
        (0, (3,), (2, 3))
    """

    count: jax.Array  # int32, number of collected iterates n
    mean: PyTree
    sq_mean: PyTree
    deviations: PyTree


class SWAGCollectorState(NamedTuple):
    """State of :func:`swag_collector`: its step counter, the wrapped optimizer's state, SWAG.

    Examples:
        >>> opt = swag_collector(optax.sgd(0.1), start_step=0, every_steps=1, rank=2)
        >>> state = opt.init({"w": jnp.zeros(3)})
        >>> type(state).__name__, int(state.step), int(state.swag.count)
        ('SWAGCollectorState', 0, 0)
    """

    step: jax.Array  # int32, number of update calls so far
    inner: optax.OptState
    swag: SWAGState


def _check_rank(rank: int) -> int:
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 2:
        raise ValueError(
            f"SWAG rank must be an integer >= 2 (the low-rank covariance divides by K - 1), "
            f"got {rank!r}."
        )
    return int(rank)


def _rank(state: SWAGState) -> int:
    ranks = {leaf.shape[0] for leaf in jax.tree.leaves(state.deviations)}
    if len(ranks) != 1:
        raise ValueError(
            f"SWAGState.deviations leaves must share one leading [rank] axis, got sizes "
            f"{sorted(ranks)}; for a state stacked over runs, vmap over the run axis."
        )
    return ranks.pop()


def _concrete(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array, or None while it is traced under jit/vmap."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _check_collected(count: jax.Array) -> None:
    value = _concrete(count)
    if value is not None and np.any(value == 0):
        raise ValueError(
            "no SWAG moments collected: train past start_step (SWAGState.count is 0"
            + (" for some runs)." if value.size > 1 else ").")
        )


def swag_init(params: PyTree, rank: int = 40) -> SWAGState:
    """Empty SWAG state for parameters shaped like ``params`` (zeros, count 0).

    Examples:
        >>> state = swag_init({"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}, rank=4)
        >>> jax.tree.map(jnp.shape, state.deviations)
        {'b': (4, 3), 'w': (4, 2, 3)}
        >>> swag_init({"w": jnp.zeros(3)}, rank=1)
        Traceback (most recent call last):
        ...
        ValueError: SWAG rank must be an integer >= 2 (the low-rank covariance divides by K - 1),
        got 1.
    """
    rank = _check_rank(rank)
    zeros = jax.tree.map(jnp.zeros_like, params)
    return SWAGState(
        count=jnp.zeros((), jnp.int32),
        mean=zeros,
        sq_mean=zeros,
        deviations=jax.tree.map(
            lambda p: jnp.zeros((rank, *jnp.shape(p)), jnp.result_type(p)), params
        ),
    )


def swag_collect(state: SWAGState, params: PyTree) -> SWAGState:
    """Add one iterate: update the running first and second moments, then write the deviation
    ``params - new mean`` into ring-buffer slot ``count % rank``.

    Examples:
        Iterates 1 and 3: mean 2, second moment 5, deviations 1 - 1 and 3 - 2:

        >>> state = swag_init(jnp.zeros(1), rank=2)
        >>> for theta in (1.0, 3.0):
        ...     state = swag_collect(state, jnp.array([theta]))
        >>> int(state.count), state.mean.tolist(), state.sq_mean.tolist()
        (2, [2.0], [5.0])
        >>> state.deviations.tolist()
        [[0.0], [1.0]]
    """
    rank = _rank(state)
    n = state.count
    slot = n % rank

    def moment(old, p):
        w = (n / (n + 1.0)).astype(old.dtype)
        return w * old + p.astype(old.dtype) / (n + 1.0).astype(old.dtype)

    mean = jax.tree.map(moment, state.mean, params)
    sq_mean = jax.tree.map(lambda old, p: moment(old, jnp.square(p)), state.sq_mean, params)
    deviations = jax.tree.map(
        lambda buf, p, m: jax.lax.dynamic_update_index_in_dim(
            buf, (p - m).astype(buf.dtype), slot, 0
        ),
        state.deviations,
        params,
        mean,
    )
    return SWAGState(optax.safe_int32_increment(n), mean, sq_mean, deviations)


def swag_diagonal_variance(state: SWAGState, var_clamp: float = 1e-30) -> PyTree:
    """``max(sq_mean - mean^2, var_clamp)`` per parameter.

    Examples:
        Iterates 1 and 3 have variance 5 - 2^2 = 1; a constant parameter gets ``var_clamp``:

        >>> state = swag_init(jnp.zeros(2), rank=2)
        >>> for theta in ([1.0, 7.0], [3.0, 7.0]):
        ...     state = swag_collect(state, jnp.array(theta))
        >>> swag_diagonal_variance(state, var_clamp=0.25).tolist()
        [1.0, 0.25]
    """
    return jax.tree.map(
        lambda sq, m: jnp.maximum(sq - jnp.square(m), var_clamp), state.sq_mean, state.mean
    )


def swag_sample(
    key: jax.Array,
    state: SWAGState,
    num_samples: int,
    *,
    scale: float = 0.5,
    low_rank: bool = True,
    var_clamp: float = 1e-30,
) -> PyTree:
    """``num_samples`` draws from the SWAG posterior, stacked on a leading [num_samples] axis.

    As in the reference ``SWAG.sample_fullrank``::

        theta = mean + sqrt(scale) * (sqrt(var_diag) * z1 + D z2 / sqrt(K - 1)),
        z1 ~ N(0, I_d),  z2 ~ N(0, I_K),

    so Cov(theta) = scale * (diag(var_diag) + D D^T / (K - 1)); ``scale=0.5`` is the paper's
    1/2 (Sigma_diag + Sigma_lowrank). K = min(count, rank) counts only the filled columns (the
    reference divides by ``max_num_models - 1`` even before the buffer is full); unfilled
    columns get no weight. z2 is shared by all leaves, so the low-rank part correlates them.
    With K = 1 the single column is zero and the low-rank term vanishes. ``low_rank=False``
    samples the diagonal part only (SWAG-Diagonal).

    Examples:
        Iterates 1 and 3: mean 2, Sigma_diag = 1 and D D^T / (K - 1) = 0^2 + 1^2, so with
        ``scale=0.5`` the samples have variance 1/2 (1 + 1) = 1; SWAG-Diagonal's is 1/2.

        >>> state = swag_init(jnp.zeros(1), rank=2)
        >>> for theta in (1.0, 3.0):
        ...     state = swag_collect(state, jnp.array([theta]))
        >>> samples = swag_sample(jax.random.key(0), state, 10_000)
        >>> samples.shape, round(float(samples.mean()), 1), round(float(samples.var()), 1)
        ((10000, 1), 2.0, 1.0)
        >>> diagonal = swag_sample(jax.random.key(0), state, 10_000, low_rank=False)
        >>> round(float(diagonal.var()), 1)
        0.5
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}.")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    if isinstance(scale, (int, float)) and scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}.")
    _check_collected(state.count)
    rank = _rank(state)
    var = swag_diagonal_variance(state, var_clamp)
    mean_leaves, treedef = jax.tree.flatten(state.mean)
    var_leaves = treedef.flatten_up_to(var)
    dev_leaves = treedef.flatten_up_to(state.deviations)
    dtype = jnp.result_type(*mean_leaves)
    filled = (jnp.arange(rank) < state.count).astype(dtype)
    num_cols = jnp.minimum(state.count, rank)
    inv_sqrt_k1 = jax.lax.rsqrt(jnp.maximum(num_cols - 1, 1).astype(dtype))
    sqrt_scale = jnp.sqrt(jnp.asarray(scale, dtype))

    def one(sample_key):
        diag_key, low_key = jax.random.split(sample_key)
        z2 = jax.random.normal(low_key, (rank,), dtype) * filled * inv_sqrt_k1
        keys = jax.random.split(diag_key, len(mean_leaves))
        out = []
        for m, v, dev, k in zip(mean_leaves, var_leaves, dev_leaves, keys, strict=True):
            noise = jnp.sqrt(v) * jax.random.normal(k, m.shape, m.dtype)
            if low_rank:
                noise = noise + jnp.tensordot(z2.astype(dev.dtype), dev, axes=1)
            out.append(m + sqrt_scale.astype(m.dtype) * noise)
        return treedef.unflatten(out)

    return jax.vmap(one)(jax.random.split(key, num_samples))


def _selector(mask: PyTree | Callable | None) -> Callable[[PyTree], PyTree]:
    """params -> the pruned nested dict of the leaves where ``mask`` is True."""

    def select(params):
        if mask is None:
            return params
        tree = mask(params) if callable(mask) else mask
        if not isinstance(params, Mapping) or not isinstance(tree, Mapping):
            raise ValueError("swag_collector: a mask needs params and mask as nested dicts.")
        flat_params = traverse_util.flatten_dict(dict(params))
        flat_mask = traverse_util.flatten_dict(dict(tree))
        if set(flat_mask) != set(flat_params):
            extra = sorted("/".join(k) for k in set(flat_mask) ^ set(flat_params))
            raise ValueError(
                f"swag_collector: the mask's paths differ from the parameters' at {extra[:8]}; "
                "build it with jaxrobust.inference.subset.mask(params, pattern)."
            )
        chosen = {}
        for path, leaf in flat_params.items():
            flag = _concrete(flat_mask[path])
            if flag is None or flag.shape != ():
                raise ValueError(
                    f"swag_collector: mask leaf {'/'.join(path)!r} must be a Python bool."
                )
            if bool(flag):
                chosen[path] = leaf
        if not chosen:
            raise ValueError("swag_collector: the mask selects no parameter.")
        return traverse_util.unflatten_dict(chosen)

    return select


def swag_collector(
    inner: optax.GradientTransformation,
    start_step: int,
    every_steps: int,
    rank: int = 40,
    mask: PyTree | Callable | None = None,
) -> optax.GradientTransformation:
    """Wrap ``inner`` so that it also collects SWAG moments of the iterates.

    Update call number ``step`` (counted from 0) computes ``inner``'s updates, forms
    ``new_params = params + updates`` and, when ``step >= start_step`` and
    ``(step - start_step) % every_steps == 0``, collects ``new_params`` (only the leaves where
    ``mask`` is True, kept as a pruned nested dict; ``mask`` may also be a function of params,
    None selects everything). Updates are ``inner``'s, unchanged. Branch-free of Python control
    flow on traced values, so it jits and vmaps over a leading run axis. ``update`` needs
    ``params``. Read the moments back with :func:`swag_state`.

    Examples:
        SGD with learning rate 1 on the gradient 1 moves w from 0 to -1, -2, -3, -4; iterates
        are collected from update 1 on, every second update: -2 and -4.

        >>> opt = swag_collector(optax.sgd(1.0), start_step=1, every_steps=2, rank=2)
        >>> params = {"w": jnp.zeros(1)}
        >>> state = opt.init(params)
        >>> for _ in range(4):
        ...     updates, state = opt.update({"w": jnp.ones(1)}, state, params)
        ...     params = optax.apply_updates(params, updates)
        >>> params["w"].tolist(), int(swag_state(state).count), swag_state(state).mean["w"].tolist()
        ([-4.0], 2, [-3.0])
    """
    rank = _check_rank(rank)
    for name, value, low in (("start_step", start_step, 0), ("every_steps", every_steps, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"swag_collector: {name} must be an integer >= {low}, got {value!r}.")
    select = _selector(mask)

    def init(params):
        return SWAGCollectorState(
            step=jnp.zeros((), jnp.int32),
            inner=inner.init(params),
            swag=swag_init(select(params), rank),
        )

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(
                "swag_collector needs the parameters: call update(grads, opt_state, params)."
            )
        updates, inner_state = inner.update(updates, state.inner, params)
        new_params = select(optax.apply_updates(params, updates))
        step = state.step
        collect = (step >= start_step) & ((step - start_step) % every_steps == 0)
        swag = jax.lax.cond(collect, swag_collect, lambda s, _: s, state.swag, new_params)
        return updates, SWAGCollectorState(optax.safe_int32_increment(step), inner_state, swag)

    return optax.GradientTransformation(init, update)


def _find_swag(tree: Any, found: list) -> None:
    if isinstance(tree, SWAGState):
        found.append(tree)
    elif isinstance(tree, SWAGCollectorState):
        found.append(tree.swag)
    elif isinstance(tree, (tuple, list)):
        for item in tree:
            _find_swag(item, found)
    elif isinstance(tree, Mapping):
        for item in tree.values():
            _find_swag(item, found)


def swag_state(opt_state: optax.OptState) -> SWAGState:
    """The :class:`SWAGState` inside a (chained, masked, run-stacked) optimizer state.

    Raises ValueError when there is none, more than one, or when no iterate was collected yet.

    Examples:
        >>> opt = optax.chain(optax.clip(1.0), swag_collector(optax.sgd(0.1), 0, 1, rank=2))
        >>> params = {"w": jnp.zeros(1)}
        >>> state = opt.init(params)
        >>> swag_state(state)
        Traceback (most recent call last):
        ...
        ValueError: no SWAG moments collected: train past start_step (SWAGState.count is 0).
        >>> _, state = opt.update({"w": jnp.ones(1)}, state, params)
        >>> swag_state(state).mean["w"].tolist()
        [-0.1...]
        >>> swag_state(optax.sgd(0.1).init(params))
        Traceback (most recent call last):
        ...
        ValueError: no SWAG state in this optimizer state: build the optimizer with ...
    """
    found: list[SWAGState] = []
    _find_swag(opt_state, found)
    if not found:
        raise ValueError(
            "no SWAG state in this optimizer state: build the optimizer with "
            "jaxrobust.inference.swag.swag_collector(inner, start_step, every_steps)."
        )
    if len(found) > 1:
        raise ValueError(
            f"{len(found)} SWAG states in this optimizer state; use one swag_collector."
        )
    _check_collected(found[0].count)
    return found[0]

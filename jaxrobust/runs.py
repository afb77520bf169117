"""Functions over a leading run axis: R independent runs (seeds, members) in one program.

On GPU/TPU the runs are vmapped. On CPU they are mapped one after another with ``lax.map``
inside the same jitted program: vmapping a convolution over its kernel turns it into a grouped
convolution (``feature_group_count`` = R), which XLA:CPU runs about 3x slower per image.
``tools/bench_runs.py`` (quickstart VAE, 2 CPU cores, BENCHMARKS.md): one unstacked run 8,591
images/s; 5 runs as one program 8,198 run-images/s with ``lax.map`` (0.95x of separate runs),
2,911 vmapped (0.34x). GPU not measured yet. ``JAXROBUST_RUNS=vmap|map`` overrides the choice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import jax

STRATEGIES = ("auto", "vmap", "map")


def runs_strategy(strategy: str | None = None) -> str:
    """``"vmap"`` or ``"map"``: the argument, else ``$JAXROBUST_RUNS``, else by backend.

    Examples:
        >>> from unittest import mock
        >>> runs_strategy("vmap")
        'vmap'
        >>> with mock.patch.dict(os.environ, {"JAXROBUST_RUNS": "map"}):
        ...     runs_strategy()
        'map'
        >>> with mock.patch.dict(os.environ, {"JAXROBUST_RUNS": "auto"}):
        ...     runs_strategy() == ("map" if jax.default_backend() == "cpu" else "vmap")
        True
        >>> runs_strategy("pmap")
        Traceback (most recent call last):
        ...
        ValueError: runs strategy must be one of ('auto', 'vmap', 'map'), got 'pmap'.
    """
    strategy = strategy or os.environ.get("JAXROBUST_RUNS", "auto")
    if strategy not in STRATEGIES:
        raise ValueError(f"runs strategy must be one of {STRATEGIES}, got {strategy!r}.")
    if strategy == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return strategy


def over_runs(fn: Callable, in_axes: Sequence[int | None], strategy: str | None = None):
    """``fn`` applied to every run: arguments with axis 0 are split along it, ``None`` shared.

    Same contract as ``jax.vmap(fn, in_axes)`` (outputs stacked on a leading run axis).

    Examples:
        Three runs with their own weights and a shared input, either way:

        >>> import jax.numpy as jnp
        >>> weights, x = jnp.array([1.0, 2.0, 3.0]), jnp.array([10.0, 20.0])
        >>> for strategy in ("map", "vmap"):
        ...     per_run = over_runs(lambda w, x: w * x, in_axes=(0, None), strategy=strategy)
        ...     print(strategy, per_run(weights, x).tolist())
        map [[10.0, 20.0], [20.0, 40.0], [30.0, 60.0]]
        vmap [[10.0, 20.0], [20.0, 40.0], [30.0, 60.0]]
    """
    in_axes = tuple(in_axes)
    if any(axis not in (0, None) for axis in in_axes):
        raise ValueError(f"in_axes must be 0 or None per argument, got {in_axes}.")
    if runs_strategy(strategy) == "vmap":
        return jax.vmap(fn, in_axes=in_axes)

    def mapped(*args):
        if len(args) != len(in_axes):
            raise TypeError(f"expected {len(in_axes)} arguments, got {len(args)}.")
        per_run = [a for a, axis in zip(args, in_axes, strict=True) if axis == 0]

        def one_run(run_args):
            run_args = iter(run_args)
            full = [
                next(run_args) if axis == 0 else a for a, axis in zip(args, in_axes, strict=True)
            ]
            return fn(*full)

        return jax.lax.map(one_run, per_run)

    return mapped

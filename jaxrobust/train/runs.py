"""Functions over a leading run axis: R independent runs (seeds, members) in one program.

On GPU/TPU the runs are vmapped. On CPU they are mapped one after another with ``lax.map``
inside the same jitted program: vmapping a convolution over its kernel turns it into a grouped
convolution (``feature_group_count`` = R), which XLA:CPU runs 5x slower per image than one
ordinary run. Measured on 2 CPU cores, quickstart VAE, one epoch of 50 steps x 128 images:
one unstacked run 9,500-9,900 images/s; 5 runs vmapped 1,900 run-images/s, ``lax.map`` 3,600,
unrolled at trace time 4,000, as a list of 5 unstacked states 4,700. Running the runs inside one
program is thus still 2-2.7x slower on CPU than separate programs (not yet understood: a single
run under ``lax.map`` alone is 2.6x slower); GPU not measured. ``JAXROBUST_RUNS=vmap|map``
overrides the choice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import jax

STRATEGIES = ("auto", "vmap", "map")


def runs_strategy(strategy: str | None = None) -> str:
    """``"vmap"`` or ``"map"``: the argument, else ``$JAXROBUST_RUNS``, else by backend."""
    strategy = strategy or os.environ.get("JAXROBUST_RUNS", "auto")
    if strategy not in STRATEGIES:
        raise ValueError(f"runs strategy must be one of {STRATEGIES}, got {strategy!r}.")
    if strategy == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return strategy


def over_runs(fn: Callable, in_axes: Sequence[int | None], strategy: str | None = None):
    """``fn`` applied to every run: arguments with axis 0 are split along it, ``None`` shared.

    Same contract as ``jax.vmap(fn, in_axes)`` (outputs stacked on a leading run axis).
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

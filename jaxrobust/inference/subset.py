"""Choose the parameters a posterior method works on, by path.

A parameter's path is its keys joined by "/", e.g. ``"decoder/Dense_0/kernel"``. A filter is a
regular expression (or several) searched in that path: ``"^decoder/"`` selects the decoder (the
Bayesian VAEs of the dissertation, Ch.3), ``"^decoder/ConvTranspose_1/"`` its last layer, ``".*"``
everything. Selected and remaining parameters are kept as *pruned* nested dicts (only the chosen
leaves, empty dicts dropped), so they save and restore with Orbax like any parameter tree, and
``combine(select(p, f), reject(p, f)) == p``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
from flax import traverse_util

PyTree = Any
ALL = ".*"


def _patterns(pattern: str | Sequence[str]) -> list[re.Pattern]:
    items = [pattern] if isinstance(pattern, str) else list(pattern)
    if not items:
        raise ValueError("A parameter filter needs at least one pattern, e.g. '^decoder/'.")
    try:
        return [re.compile(p) for p in items]
    except re.error as err:
        raise ValueError(
            f"Parameter filter {items!r} is not a valid regular expression: {err}"
        ) from None


def paths(params: Mapping) -> list[str]:
    """Every leaf path of a nested parameter dict, "/"-joined, in flatten order.

    Examples:
        >>> params = {"decoder": {"Dense_0": {"bias": 0.0, "kernel": 1.0}}, "encoder": {"w": 2.0}}
        >>> paths(params)
        ['decoder/Dense_0/bias', 'decoder/Dense_0/kernel', 'encoder/w']
    """
    return ["/".join(k) for k in traverse_util.flatten_dict(dict(params))]


def _split(params: Mapping, pattern: str | Sequence[str]) -> tuple[dict, dict]:
    regexes = _patterns(pattern)
    flat = traverse_util.flatten_dict(dict(params))
    chosen = {k: v for k, v in flat.items() if any(r.search("/".join(k)) for r in regexes)}
    if not chosen:
        raise ValueError(
            f"Parameter filter {pattern!r} matches no parameter; the paths are "
            f"{paths(params)[:12]}{' ...' if len(flat) > 12 else ''}."
        )
    rest = {k: v for k, v in flat.items() if k not in chosen}
    return traverse_util.unflatten_dict(chosen), traverse_util.unflatten_dict(rest)


def select(params: Mapping, pattern: str | Sequence[str]) -> dict:
    """The parameters whose path matches ``pattern`` (pruned nested dict). Raises if none does.

    Examples:
        >>> params = {"decoder": {"Dense_0": {"bias": 0.0, "kernel": 1.0}}, "encoder": {"w": 2.0}}
        >>> select(params, "^decoder/")
        {'decoder': {'Dense_0': {'bias': 0.0, 'kernel': 1.0}}}
        >>> select(params, ["kernel$", "^encoder/"])
        {'decoder': {'Dense_0': {'kernel': 1.0}}, 'encoder': {'w': 2.0}}
        >>> select(params, "^classifier/")
        Traceback (most recent call last):
        ...
        ValueError: Parameter filter '^classifier/' matches no parameter; the paths are [...].
    """
    return _split(params, pattern)[0]


def reject(params: Mapping, pattern: str | Sequence[str]) -> dict:
    """The parameters whose path does not match ``pattern`` (may be empty).

    Examples:
        >>> params = {"decoder": {"Dense_0": {"bias": 0.0, "kernel": 1.0}}, "encoder": {"w": 2.0}}
        >>> reject(params, "^decoder/")
        {'encoder': {'w': 2.0}}
        >>> reject(params, ".*")
        {}
    """
    return _split(params, pattern)[1]


def mask(params: Mapping, pattern: str | Sequence[str]) -> dict:
    """A tree of bools with the structure of ``params``: True where the path matches (for
    ``optax.masked`` and ``optax.multi_transform``).

    Examples:
        >>> params = {"decoder": {"Dense_0": {"bias": 0.0, "kernel": 1.0}}, "encoder": {"w": 2.0}}
        >>> mask(params, "^decoder/")
        {'decoder': {'Dense_0': {'bias': True, 'kernel': True}}, 'encoder': {'w': False}}
    """
    chosen = traverse_util.flatten_dict(select(params, pattern))
    flat = traverse_util.flatten_dict(dict(params))
    return traverse_util.unflatten_dict({k: k in chosen for k in flat})


def combine(*trees: Mapping) -> dict:
    """Deep merge of pruned trees with disjoint leaves (inverse of select/reject).

    Examples:
        >>> params = {"decoder": {"Dense_0": {"bias": 0.0, "kernel": 1.0}}, "encoder": {"w": 2.0}}
        >>> combine(select(params, "kernel$"), reject(params, "kernel$")) == params
        True
        >>> combine({"encoder": {"w": 2.0}}, {"encoder": {"w": 3.0}})
        Traceback (most recent call last):
        ...
        ValueError: combine: parameter 'encoder/w' is in more than one tree.
    """
    merged: dict = {}
    for tree in trees:
        for k, v in traverse_util.flatten_dict(dict(tree)).items():
            if k in merged:
                raise ValueError(f"combine: parameter {'/'.join(k)!r} is in more than one tree.")
            merged[k] = v
    return traverse_util.unflatten_dict(merged)


def num_parameters(tree: PyTree) -> int:
    """Number of scalars in a parameter tree.

    Examples:
        >>> import jax.numpy as jnp
        >>> num_parameters({"Dense_0": {"bias": jnp.zeros(3), "kernel": jnp.zeros((2, 3))}})
        9
    """
    return int(sum(x.size for x in jax.tree.leaves(tree)))

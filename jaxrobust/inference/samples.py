"""The one artifact every posterior method produces, and its Orbax save/restore.

A :class:`PosteriorSamples` holds

- ``samples``: the variables that differ between posterior samples (ensemble members), as a
  pruned variables dict (``{"params": {...chosen leaves...}}``, plus e.g. ``batch_stats`` for
  ensemble members) whose every leaf has a leading sample axis [S];
- ``fixed``: the variables shared by all samples (the rest of the parameters, kept fixed or
  point-estimated, and shared model state), without a sample axis.

Sample s is the model's variables ``combine(samples[s], fixed)`` (:func:`sample_variables`), so
evaluation vmaps (or maps) one model function over the sample axis and never loops in Python.
Only the chosen parameters are stored S times: 200 samples of a decoder do not copy the encoder.

On disk (``save_posterior``): ``<directory>/arrays`` (Orbax) and ``<directory>/posterior.json``
(method, filter, number of samples, shapes, diagnostics), written to a temporary directory and
renamed, so a killed process never leaves a half-written posterior behind. ``posterior.json``
also records the content digests of ``samples`` and ``fixed`` (``"integrity"``:
:func:`jaxrobust.integrity.tree_digest`); ``restore_posterior`` recomputes them and raises
``CheckpointCorruptError`` (path and fix) for a changed, truncated or unreadable stack, and
``save_posterior`` refuses samples holding NaN or infinity (``NonFiniteLossError``). A stack
written before digests existed is restored unverified (still refused if it is not finite).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from jaxrobust.errors import (
    CheckpointCorruptError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    JaxrobustError,
    NonFiniteLossError,
)
from jaxrobust.inference.subset import combine
from jaxrobust.integrity import check_digest, short_error, tree_digest

PyTree = Any
META_FILENAME = "posterior.json"
INTEGRITY_KEY = "integrity"


class PosteriorSamples(NamedTuple):
    """Stacked posterior samples (see module docstring).

    Examples:
        Three samples of a decoder weight; the encoder is shared:

        >>> posterior = PosteriorSamples(
        ...     samples={"params": {"decoder": {"w": jnp.arange(6.0).reshape(3, 2)}}},
        ...     fixed={"params": {"encoder": {"w": jnp.zeros(2)}}},
        ... )
        >>> posterior.num_samples
        3
        >>> one = jax.tree.map(lambda x: x[1], posterior.samples)
        >>> sample_variables(one, posterior.fixed)["params"]["decoder"]["w"].tolist()
        [2.0, 3.0]
    """

    samples: dict
    fixed: dict

    @property
    def num_samples(self) -> int:
        return int(jax.tree.leaves(self.samples)[0].shape[0])


def sample_variables(sample: dict, fixed: dict) -> dict:
    """The full variables of one sample: ``sample`` (no sample axis) merged with ``fixed``.

    Examples:
        >>> sample = {"params": {"decoder": {"w": jnp.ones(2)}}}
        >>> fixed = {"params": {"encoder": {"w": jnp.zeros(2)}}, "batch_stats": {"mean": 0.0}}
        >>> variables = sample_variables(sample, fixed)
        >>> sorted(variables), sorted(variables["params"])
        (['batch_stats', 'params'], ['decoder', 'encoder'])
    """
    return combine(sample, fixed)


def from_stack(stacked_variables: dict) -> PosteriorSamples:
    """Members stacked on a leading axis (an ensemble, repeated runs): everything varies.

    Examples:
        >>> members = {"params": {"w": jnp.zeros((5, 3))}, "batch_stats": {"m": jnp.ones((5, 3))}}
        >>> posterior = from_stack(members)
        >>> posterior.num_samples, posterior.fixed
        (5, {})
    """
    return PosteriorSamples(dict(stacked_variables), {})


def stack_samples(
    sample_params: dict, rest_params: dict, state: dict | None = None
) -> PosteriorSamples:
    """Samples of the chosen parameters ``[S, ...]`` + the remaining parameters and model state.

    Examples:
        >>> posterior = stack_samples(
        ...     {"decoder": {"w": jnp.zeros((4, 2))}},
        ...     {"encoder": {"w": jnp.zeros(2)}},
        ...     state={"batch_stats": {"m": jnp.zeros(2)}},
        ... )
        >>> posterior.num_samples, sorted(posterior.samples), sorted(posterior.fixed)
        (4, ['params'], ['batch_stats', 'params'])
        >>> stack_samples({"w": jnp.zeros((4, 2))}, {}).fixed  # every parameter sampled
        {}
    """
    fixed = {"params": rest_params, **(state or {})} if rest_params else dict(state or {})
    return PosteriorSamples({"params": sample_params}, fixed)


def _shapes(tree: PyTree) -> dict[str, list[int]]:
    flat = traverse_util.flatten_dict(dict(tree)) if tree else {}
    return {"/".join(k): list(np.shape(v)) for k, v in flat.items()}


def save_posterior(
    directory: str | os.PathLike, posterior: PosteriorSamples, meta: dict | None = None
) -> Path:
    """Write ``posterior`` and JSON ``meta`` (method, diagnostics, ...) to ``directory``.

    Examples:
        >>> import tempfile
        >>> posterior = stack_samples({"decoder": {"w": jnp.ones((3, 2))}}, {"b": jnp.zeros(2)})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = save_posterior(Path(tmp) / "posterior", posterior, {"method": "swag"})
        ...     meta = json.loads((path / META_FILENAME).read_text())
        ...     sorted(p.name for p in path.iterdir())
        ['arrays', 'posterior.json']
        >>> {k: v for k, v in meta.items() if k != "integrity"}
        {'method': 'swag', 'num_samples': 3, 'sample_shapes': {'params/decoder/w': [3, 2]},
         'fixed_shapes': {'params/b': [2]}}
        >>> sorted(meta["integrity"]), meta["integrity"]["samples"]["finite"]
        (['fixed', 'samples'], True)
        >>> save_posterior("unused", stack_samples({"w": jnp.full((2, 2), jnp.nan)}, {}))
        Traceback (most recent call last):
        ...
        jaxrobust.errors.NonFiniteLossError: The posterior samples to save in .../unused hold NaN
        or infinity (in samples/params/w); nothing was saved. ...
    """
    directory = Path(directory).absolute()
    arrays = {"samples": posterior.samples, "fixed": posterior.fixed}
    arrays = jax.tree.map(np.asarray, arrays)
    digests = {part: tree_digest(arrays[part]) for part in ("samples", "fixed")}
    nonfinite = [f"{part}/{p}" for part, d in digests.items() for p in d["nonfinite"]]
    if nonfinite:
        raise NonFiniteLossError(
            f"The posterior samples to save in {directory} hold NaN or infinity (in "
            f"{', '.join(nonfinite)}); nothing was saved. The posterior method diverged: lower "
            "its step size or learning rate, or check the inputs for NaN/inf."
        )
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp / "arrays", arrays)
    info = {
        **(meta or {}),
        "num_samples": posterior.num_samples,
        "sample_shapes": _shapes(posterior.samples),
        "fixed_shapes": _shapes(posterior.fixed),
        INTEGRITY_KEY: digests,
    }
    (tmp / META_FILENAME).write_text(json.dumps(info, indent=2, default=_json_default))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def restore_posterior(directory: str | os.PathLike) -> tuple[PosteriorSamples, dict]:
    """``(posterior, meta)`` from :func:`save_posterior`'s directory, on the default device.

    Examples:
        >>> import tempfile
        >>> posterior = stack_samples({"w": jnp.arange(6.0).reshape(3, 2)}, {})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = save_posterior(Path(tmp) / "posterior", posterior, {"method": "ensemble"})
        ...     restored, meta = restore_posterior(Path(tmp) / "posterior")
        >>> restored.samples["params"]["w"].tolist(), meta["method"]
        ([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], 'ensemble')
        >>> restore_posterior("no/such/run")
        Traceback (most recent call last):
        ...
        jaxrobust.errors.CheckpointNotFoundError: No posterior samples in .../no/such/run
        (posterior.json missing). ...
    """
    directory = Path(directory).absolute()
    meta_path = directory / META_FILENAME
    if not meta_path.is_file():
        raise CheckpointNotFoundError(
            f"No posterior samples in {directory} ({META_FILENAME} missing). Train the model "
            "with a `posterior` config section first (`jaxrobust train ...`)."
        )
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict) or "sample_shapes" not in meta:
            raise ValueError("not a posterior.json object with sample_shapes")
    except (OSError, ValueError) as err:
        raise _corrupt(directory, f"{META_FILENAME} is unreadable ({err})") from None
    if not (directory / "arrays").is_dir():
        raise _corrupt(directory, f"{directory / 'arrays'} is missing")
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            arrays = checkpointer.restore(directory / "arrays")
    except JaxrobustError:
        raise
    except Exception as err:
        raise _corrupt(
            directory, f"a file is truncated or unreadable ({short_error(err)})"
        ) from None
    samples = arrays.get("samples") or {}
    fixed = arrays.get("fixed") or {}
    digests = meta.pop(INTEGRITY_KEY, None)  # None: written before digests were recorded
    for part, tree in (("samples", samples), ("fixed", fixed)):
        recorded = digests.get(part) if isinstance(digests, dict) else None
        if digests is not None and not isinstance(recorded, dict):
            raise _corrupt(directory, f"the digest of {part!r} is missing from {META_FILENAME}")
        problem = check_digest(tree, recorded)
        if problem is not None:
            raise _corrupt(directory, f"{part}: {problem}")
    posterior = PosteriorSamples(
        jax.tree.map(jnp.asarray, samples), jax.tree.map(jnp.asarray, fixed)
    )
    if _shapes(posterior.samples) != meta["sample_shapes"]:
        raise CheckpointMismatchError(
            f"Posterior in {directory} is inconsistent: arrays {_shapes(posterior.samples)} vs "
            f"{META_FILENAME} {meta['sample_shapes']}; re-run training to rewrite it."
        )
    return posterior, meta


def check_compatible(posterior: PosteriorSamples, abstract_variables: PyTree, where: str) -> None:
    """Raise if ``combine(sample, fixed)`` would not have the model's variable shapes.

    Examples:
        >>> posterior = stack_samples({"w": jnp.zeros((3, 2))}, {"b": jnp.zeros(2)})
        >>> check_compatible(posterior, {"params": {"w": jnp.zeros(2), "b": jnp.zeros(2)}}, "here")
        >>> check_compatible(posterior, {"params": {"w": jnp.zeros(5), "b": jnp.zeros(2)}}, "here")
        Traceback (most recent call last):
        ...
        jaxrobust.errors.CheckpointMismatchError: The posterior samples in here do not fit the
        model the config builds (missing [], unexpected [], other shapes ['params/w']). ...
    """
    one = jax.tree.map(lambda x: x[0], posterior.samples)
    got = _shapes(sample_variables(one, posterior.fixed))
    want = _shapes(abstract_variables)
    if got != want:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        changed = sorted(k for k in set(got) & set(want) if got[k] != want[k])
        raise CheckpointMismatchError(
            f"The posterior samples in {where} do not fit the model the config builds "
            f"(missing {missing[:5]}, unexpected {extra[:5]}, other shapes {changed[:5]}). "
            "Evaluate with the config the samples were trained with, or retrain."
        )


def _corrupt(directory: Path, problem: str) -> CheckpointCorruptError:
    return CheckpointCorruptError(
        f"The posterior samples in {directory} are damaged: {problem}. Fix: rerun `jaxrobust "
        "train` on the same workdir (it restores the last kept epoch and writes the posterior "
        f"again), or delete {directory} and retrain."
    )


def _json_default(value):
    if isinstance(value, (np.generic, np.ndarray, jax.Array)):
        return np.asarray(value).tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")

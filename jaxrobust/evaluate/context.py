"""What evaluation tasks share: restored models, device-resident datasets, one pass per model.

Tasks first *plan* (``ctx.request(model, dataset, names)``: the outputs they will read), then
*run* (``ctx.outputs(model, dataset)``). The first read of a (model, dataset) pair computes
everything every task requested for it in ONE jitted pass over the dataset (one ``lax.map``
over fixed-size batches; the dataset put on the device once and shared by all models), so a
VAE asked for ``iwae`` and ``iwae_std`` draws its K importance samples once.

Output names, by kind of model:
- a point model (``R`` runs, R = 1 without ``num_runs``; one setting ``"<model>@alpha=10"`` of
  a swept model is its R runs, the bare name all members, :mod:`jaxrobust.sweep`): any of its
  score names and
  ``"logits"``; arrays ``[R, N, ...]``. A score with a ``reference`` (a VAE's ``typicality``)
  is finished against the held-out set ``"<data.name>:validation"``, the validation carve of
  the training split (never the test split): requesting it also requests it there, its pass
  gives the statistic t on both sets, and ``outputs`` returns ``reference(t, t_validation)``
  per run;
- a posterior stack (``S`` samples or ensemble members, ``workdir/posterior/<name>``):
  ``"log_likelihood"`` (log p(x | theta_s) from the model's density capability, ``[S, N]``) and
  ``"logits"`` (``[S, N, C]``).

Keys: batch b of every pass gets ``split(key, num_batches)[b]`` with ``key =
random.key(config.seed + 1)``, the same for every model and dataset (as before the redesign).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxrobust import data as datasets
from jaxrobust.errors import ConfigError
from jaxrobust.evaluate.batched import map_dataset
from jaxrobust.evaluate.restore import restore_model
from jaxrobust.inference.predict import map_posterior
from jaxrobust.inference.samples import check_compatible, restore_posterior
from jaxrobust.models import Model
from jaxrobust.runs import over_runs
from jaxrobust.scores.table import needed_outputs
from jaxrobust.sweep import Sweep, split_member_name
from jaxrobust.train.loop import (
    abstract_variables,
    build_from_config,
    posterior_dir,
    training_data,
)

PyTree = Any
STACK_OUTPUTS = ("log_likelihood", "logits")


class Restored(NamedTuple):
    """A model ready to evaluate: point variables (``[R, ...]`` with runs) or a sample stack."""

    name: str
    model: Model
    preprocess: Any
    variables: PyTree  # variables, or PosteriorSamples when ``is_posterior``
    epoch: int | None
    num_runs: int | None
    is_posterior: bool
    meta: dict


class Dataset(NamedTuple):
    name: str
    images: jax.Array  # uint8 on the device
    labels: np.ndarray


class EvaluationContext:
    """Shared state of one ``evaluate`` call (see the module docstring)."""

    def __init__(
        self,
        workdir: str | os.PathLike,
        config: ml_collections.ConfigDict,
        *,
        plot_dir: str | os.PathLike | None = None,
    ):
        self.workdir = Path(workdir)
        self.config = config
        self.section = config.evaluate
        self.progress = bool(config.get("progress", True))
        self.batch_size = int(self.section.get("batch_size", 1000))
        self.key = jax.random.key(config.seed + 1)
        # ``evaluate`` points this at the generation being written (``evaluations/<n>.tmp``).
        self.plot_dir = Path(plot_dir) if plot_dir is not None else self.workdir / "plots"
        self.passes: list[tuple[str, str, tuple[str, ...]]] = []  # what was computed, in order
        self._restored: dict[str, Restored] = {}
        self._datasets: dict[str, Dataset] = {}
        self._requests: dict[tuple[str, str], set[str]] = {}
        self._statistics: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # raw pass outputs
        self._outputs: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # references applied
        self._training_data = None
        self._pass_fns: dict[tuple, Any] = {}

    # ---------------------------------------------------------------- models and data
    def restored(self, name: str) -> Restored:
        """The model ``name`` of the config, restored once (its best/last checkpoint, or its
        posterior stack when it was trained with a posterior section)."""
        if name not in self._restored:
            self._restored[name] = self._restore(name)
        return self._restored[name]

    def restored_models(self) -> dict[str, Restored]:
        """Every model restored so far, by name."""
        return dict(self._restored)

    def _restore(self, name: str) -> Restored:
        base, label = split_member_name(name)
        if label is not None:  # a setting of a sweep: the members of the restored whole
            whole = self.restored(base)
            sweep = Sweep.from_training(self.config.models[base].training)
            members = sweep.members(name)
            pick = members if sweep.num_runs is not None else members.start
            variables = jax.tree.map(lambda v: v[pick], whole.variables)
            return whole._replace(name=name, variables=variables, num_runs=sweep.num_runs)
        training = self.config.models[name].training
        if training.get("posterior"):
            model, preprocess = build_from_config(self.config, name)
            directory = posterior_dir(self.workdir, name)
            posterior, meta = restore_posterior(directory)
            check_compatible(
                posterior, abstract_variables(model, preprocess, self.config), str(directory)
            )
            return Restored(name, model, preprocess, posterior, None, None, True, meta)
        which = self.section.get("checkpoint", "best")
        model, preprocess, variables, epoch = restore_model(
            self.workdir, name, which, config=self.config
        )
        sweep = Sweep.from_training(training)
        num_runs = training.get("num_runs") if sweep is None else sweep.num_members
        return Restored(name, model, preprocess, variables, epoch, num_runs, False, {})

    @property
    def held_out_name(self) -> str:
        """``"<data.name>:validation"``: the held-out in-distribution set of reference scores."""
        return f"{self.config.data.name}:validation"

    def dataset(self, name: str) -> Dataset:
        """The test split of dataset ``name`` (``evaluate.test_limit`` applied), on the device;
        ``"<data.name>:train"`` is the training split the models were trained on (after the
        validation carve and ``train_limit``), ``"<data.name>:validation"`` their validation
        set (the carve of ``data.validation_split = "train"``, ``validation_limit`` applied)."""
        if name not in self._datasets:
            in_name = self.config.data.name
            if name in (f"{in_name}:train", f"{in_name}:validation"):
                if self._training_data is None:
                    self._training_data = training_data(self.config, self.progress)
                train, validation = self._training_data
                images, labels = train if name.endswith(":train") else validation
            else:
                images, labels = datasets.load(name, "test", progress=self.progress)
                limit = self.section.get("test_limit")
                if limit:
                    images, labels = images[:limit], labels[:limit]
                self._check_shape(name, images)
            self._datasets[name] = Dataset(name, jax.device_put(images), np.asarray(labels))
        return self._datasets[name]

    def _check_shape(self, name: str, images: np.ndarray) -> None:
        in_name = self.config.data.name
        if name == in_name:
            return
        expected = self.dataset(in_name).images.shape[1:]
        if tuple(images.shape[1:]) != tuple(expected):
            raise ConfigError(
                f"OOD set {name} has images {tuple(images.shape[1:])}, but the models were "
                f"trained on {in_name} {tuple(expected)}; choose an OOD set of the same shape."
            )

    # ---------------------------------------------------------------- one pass per model
    def request(self, model_name: str, dataset_name: str, names: Iterable[str]) -> None:
        """Plan: ``names`` of ``model_name`` will be read on ``dataset_name``."""
        restored = self.restored(model_name)
        names = set(names)
        known = (
            set(STACK_OUTPUTS) if restored.is_posterior else set(restored.model.scores) | {"logits"}
        )
        unknown = names - known
        if unknown:
            what = "a posterior stack" if restored.is_posterior else f"a {restored.model.kind}"
            raise ConfigError(
                f"Model {model_name!r} ({what}) has no output {sorted(unknown)}; it has "
                f"{sorted(known)}."
            )
        if "logits" in names and restored.model.logits is None:
            raise ConfigError(f"Model {model_name!r} ({restored.model.kind}) is not a classifier.")
        if "log_likelihood" in names and restored.model.log_likelihood is None:
            raise ConfigError(
                f"Model {model_name!r} ({restored.model.kind}) has no density capability "
                "(log_likelihood); its posterior stack cannot be scored by likelihood."
            )
        self._add_request((model_name, dataset_name), names)
        references = _reference_scores(restored, names)
        if references:
            self._check_held_out(model_name, references)
            self._add_request((model_name, self.held_out_name), references)

    def _add_request(self, key: tuple[str, str], names: set[str]) -> None:
        if key in self._statistics and not names <= set(self._statistics[key]):
            raise RuntimeError(f"{key} was already computed; request every output before reading.")
        self._requests.setdefault(key, set()).update(names)

    def _check_held_out(self, model_name: str, references: set[str]) -> None:
        """Reference scores need held-out in-distribution data that is not the test split."""
        if self.config.data.get("validation_split", "train") != "train":
            refs = ", ".join(f"{model_name}/{n}" for n in sorted(references))
            raise ConfigError(
                f"{refs} is scored relative to held-out in-distribution data (e.g. H, the mean "
                "-log p(x) of the typicality), which must not be the test split it is evaluated "
                "on; this config validates on the test split (data.validation_split = 'test'). "
                "Set data.validation_split = 'train' (the default; data.validation_size sets "
                "the carve) to hold out validation data from the training split."
            )

    def outputs(self, model_name: str, dataset_name: str) -> dict[str, np.ndarray]:
        """Everything requested for the pair, computed in one jitted pass on first use (scores
        with a ``reference`` finished against the held-out pass, see the module)."""
        key = (model_name, dataset_name)
        if key not in self._outputs:
            out = dict(self._pass(model_name, dataset_name))
            restored = self.restored(model_name)
            references = _reference_scores(restored, out)
            if references:
                held_out = self._pass(model_name, self.held_out_name)
                for name in sorted(references):
                    reference = restored.model.scores[name].reference
                    finished = jax.vmap(reference)(jnp.asarray(out[name]), held_out[name])
                    out[name] = np.asarray(finished)  # [R, N]: each run against its own H
                    _check_finite(f"{model_name}/{name}", dataset_name, out[name])
            self._outputs[key] = out
        return self._outputs[key]

    def _pass(self, model_name: str, dataset_name: str) -> dict[str, np.ndarray]:
        """The raw outputs of the pair's one jitted pass (a reference score's statistic)."""
        key = (model_name, dataset_name)
        if key not in self._statistics:
            names = tuple(sorted(self._requests.get(key, ())))
            restored = self.restored(model_name)
            data = self.dataset(dataset_name)
            # One function per (model object, runs, outputs): the settings of a sweep share the
            # model of their whole, so their passes compile once.
            fn_key = (id(restored.model), restored.num_runs, names)
            if fn_key not in self._pass_fns:
                self._pass_fns[fn_key] = _pass_fn(
                    restored.model, names, restored.is_posterior, restored.num_runs
                )
            fn = self._pass_fns[fn_key]
            out = map_dataset(
                fn, restored.variables, data.images, restored.preprocess, self.key, self.batch_size
            )
            if restored.is_posterior or restored.num_runs is not None:
                out = {k: np.moveaxis(v, 1, 0) for k, v in out.items()}  # [S|R, N, ...]
            else:
                out = {k: v[None] for k, v in out.items()}  # [1, N, ...]
            for name, value in out.items():
                _check_finite(f"{model_name}/{name}", dataset_name, value)
            self.passes.append((model_name, dataset_name, names))
            self._statistics[key] = out
        return self._statistics[key]


def _reference_scores(restored: Restored, names) -> set[str]:
    """The names among ``names`` of scores with a ``reference`` (point models only)."""
    if restored.is_posterior:
        return set()
    table = restored.model.scores
    return {n for n in names if n in table and table[n].reference is not None}


def _pass_fn(model: Model, names: tuple[str, ...], is_posterior: bool, num_runs: int | None):
    """``fn(variables, x, key) -> {name: [B, ...]}`` (batch first, for map_dataset). The context
    keeps one object per (model, names), so map_dataset's compile cache hits for every dataset
    of the same size. A score with a ``reference`` gives its statistic (``Score.fn``)."""
    if is_posterior:

        def one_sample(variables, x, key):
            out = {}
            if "log_likelihood" in names:
                out["log_likelihood"] = model.log_likelihood(variables, x, key=key)
            if "logits" in names:
                out["logits"] = model.logits(variables, x)
            return out

        def stacked(posterior, x, key):
            out = map_posterior(one_sample, posterior, x, key)
            return {k: jnp.moveaxis(v, 0, 1) for k, v in out.items()}  # [B, S, ...]

        return stacked

    score_names = [n for n in names if n in model.scores]
    needs = needed_outputs(model.scores, score_names)

    def point(variables, x, key):
        raw = model.outputs(variables, x, key=key, names=needs) if score_names else {}
        out = {n: model.scores[n].fn(raw) for n in score_names}
        if "logits" in names:
            out["logits"] = raw["logits"] if "logits" in raw else model.logits(variables, x)
        return out

    if num_runs is None:
        return point

    def over(variables, x, key):
        out = over_runs(point, in_axes=(0, None, None))(variables, x, key)
        return {k: jnp.moveaxis(v, 0, 1) for k, v in out.items()}  # [B, R, ...]

    return over


def _check_finite(ref: str, dataset: str, values: np.ndarray) -> None:
    bad = int(np.sum(~np.isfinite(values)))
    if bad:
        raise FloatingPointError(
            f"Score {ref} is NaN/inf on {bad} of {values.size} {dataset} inputs; the model or "
            "its checkpoint is broken (retrain, or evaluate an earlier checkpoint), or the "
            "inputs are outside the score's domain (input complexity codes pixels in [0, 1]: "
            "data.preprocess.scale = True, no mean/std)."
        )

"""``evaluate(workdir)``: restore checkpoints, compute the configured evaluations, write results.

Config section ``evaluate``:
  checkpoint: "best" or "last".
  batch_size: inputs per jitted batch.
  classification.models: classifier models to score for accuracy, NLL and ECE.
  classification.ece_bins: number of ECE bins (15 as in the hybrid-models thesis); results hold
    top-label and classwise ECE with equal-width and equal-mass bins, MCE, Brier and NLL.
  ood.out_datasets: OOD test sets compared against the test split of ``config.data.name``.
  ood.scores: ``"model/score"`` names, e.g. ``"vae/elbo"``, ``"classifier/max_softmax"``.
  ood.positive: the positive class of AUPR's headline and of FPR@TPR, "in" (default), "out",
    or "higher": per score, the side it ranks higher (the dissertation's Tables 3.1-3.4).
  Models trained with a ``posterior`` section are evaluated from their sample stack
  (``workdir/posterior/<model>``): their scores are the stacked scores of
  :data:`jaxrobust.scores.STACKED_SCORES` over log p(x | theta_s), importance-sampled with the
  model's ``iwae_samples``.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxrobust import data as datasets
from jaxrobust import metrics
from jaxrobust.config import load_workdir_config
from jaxrobust.devices import describe_devices
from jaxrobust.errors import ConfigError
from jaxrobust.evaluate.batched import map_dataset
from jaxrobust.evaluate.report import write_results
from jaxrobust.evaluate.restore import restore_model
from jaxrobust.inference.samples import check_compatible, restore_posterior
from jaxrobust.metrics import plots
from jaxrobust.runs import over_runs
from jaxrobust.scores import STACKED_SCORES, stacked_scores, typicality_entropy
from jaxrobust.scores.posterior import posterior_log_likelihoods
from jaxrobust.train.loop import abstract_variables, build_from_config, posterior_dir


def evaluate(workdir: str | os.PathLike, config: ml_collections.ConfigDict | None = None) -> dict:
    """Run the evaluations of ``config.evaluate`` (default: the workdir's stored config)."""
    workdir = Path(workdir)
    config = config if config is not None else load_workdir_config(workdir)
    ev = config.evaluate
    progress = config.get("progress", True)
    which = ev.get("checkpoint", "best")
    batch_size = ev.get("batch_size", 1000)
    key = jax.random.key(config.seed + 1)
    plot_dir = workdir / "plots"
    tic = time.perf_counter()

    classifier_names = list(ev.get("classification", {}).get("models", []))
    ood = ev.get("ood", {})
    score_refs = list(ood.get("scores", []))
    needed = dict.fromkeys(classifier_names + [ref.split("/")[0] for ref in score_refs])
    posteriors = {
        n: _restore_posterior(workdir, config, n) for n in needed if _has_posterior(config, n)
    }
    restored = {n: restore_model(workdir, config, n, which) for n in needed if n not in posteriors}

    test_limit = ev.get("test_limit")
    in_name = config.data.name
    in_images, in_labels = _load(in_name, test_limit, progress)
    results = {
        "experiment": config.get("name", ""),
        "meta": {
            "device": describe_devices(),
            "checkpoint": which,
            "checkpoints": {name: r[3] for name, r in restored.items()},
            "posteriors": {name: p[3] for name, p in posteriors.items()},
        },
        "classification": {},
        "ood": {},
    }

    num_bins = ev.get("classification", {}).get("ece_bins", 15)
    for name in classifier_names:
        if name in posteriors:
            raise ConfigError(
                f"evaluate.classification: {name!r} is a posterior stack; classification of "
                "posterior models is not supported yet."
            )
        model, preprocess, variables, _ = restored[name]
        if model.logits is None:
            raise ConfigError(f"evaluate.classification: model {name!r} is not a classifier.")
        num_runs = config.models[name].get("num_runs")
        logits = _map_runs(
            lambda v, x, k, m=model: m.logits(v, x),
            num_runs,
            variables,
            in_images,
            preprocess,
            key,
            batch_size,
        )  # [R, N, classes]
        probs = jax.nn.softmax(jnp.asarray(logits, jnp.float32))
        labels = jnp.asarray(in_labels)
        metrics.calibration_summary(probs[0], labels, num_bins)  # validates the inputs once
        per_run = jax.vmap(metrics.calibration_summary, in_axes=(0, None, None))(
            probs, labels, num_bins
        )
        bins = {
            k: np.asarray(v)
            for k, v in metrics.reliability_bins(probs[0], labels, num_bins).items()
        }
        results["classification"][name] = {
            **_aggregate(per_run, num_runs),
            "ece_bins": num_bins,
            "num_examples": int(len(in_labels)),
            "reliability": {k: v.tolist() for k, v in bins.items()},
        }
        title = f"{name} on {in_name}" + (f" (run 1 of {num_runs})" if num_runs else "")
        plots.plot_reliability_diagram(
            bins, float(per_run["ece"][0]), title, plot_dir / f"reliability_{name}.png"
        )

    positive_choice = ood.get("positive", "in")
    if positive_choice not in (*metrics.detection.POSITIVE_SIDES, "higher"):
        raise ConfigError(
            f"evaluate.ood.positive must be 'in', 'out' or 'higher', got {positive_choice!r}."
        )
    in_scores = {}
    jobs = [(out, ref) for out in ood.get("out_datasets", []) for ref in score_refs]
    bar = tqdm(total=len(jobs), desc="scores", unit="score", disable=not progress)
    for out_name in ood.get("out_datasets", []):
        out_images, _ = _load(out_name, test_limit, progress)
        pair = f"{in_name}->{out_name}"
        results["ood"][pair] = {}
        curves = {}
        posterior_scores = {}  # model name -> every stacked score [N_out] of this OOD set
        for ref in score_refs:
            _check_same_shape(in_name, in_images, out_name, out_images)
            model_name, score_name = _split_ref(ref, restored, posteriors)
            if model_name in posteriors:
                model, preprocess, posterior, _ = posteriors[model_name]
                key_in = ("stacked", model_name)
                if key_in not in in_scores:  # log_lik [S, N_in] once, all scores in one call
                    log_lik_in = _posterior_log_lik(
                        model, preprocess, posterior, in_images, key, batch_size
                    )
                    entropy = typicality_entropy(log_lik_in)
                    in_scores[key_in] = (entropy, stacked_scores(log_lik_in, entropy=entropy))
                entropy, scores_in = in_scores[key_in]
                if model_name not in posterior_scores:
                    log_lik_out = _posterior_log_lik(
                        model, preprocess, posterior, out_images, key, batch_size
                    )
                    posterior_scores[model_name] = stacked_scores(log_lik_out, entropy=entropy)
                score = STACKED_SCORES[score_name]
                s_in = np.asarray(scores_in[score_name])[None]  # [1, N]: one "run"
                s_out = np.asarray(posterior_scores[model_name][score_name])[None]
                num_runs = None
            else:
                model, preprocess, variables, _ = restored[model_name]
                score = model.scores[score_name]
                num_runs = config.models[model_name].get("num_runs")
                if ref not in in_scores:
                    in_scores[ref] = _map_runs(
                        score.fn, num_runs, variables, in_images, preprocess, key, batch_size
                    )
                s_in = in_scores[ref]  # [R, N_in]
                s_out = _map_runs(
                    score.fn, num_runs, variables, out_images, preprocess, key, batch_size
                )
            _check_finite(ref, in_name, s_in)
            _check_finite(ref, out_name, s_out)
            positive = positive_choice
            if positive == "higher":  # the side the score ranks higher (the dissertation's)
                positive = "out" if score.higher_is_ood else "in"
            direction = {"higher_is_ood": score.higher_is_ood, "positive": positive}
            per_run = jax.vmap(lambda a, b, d=direction: metrics.detection_summary(a, b, **d))(
                jnp.asarray(s_in), jnp.asarray(s_out)
            )
            per_run["mean_in"] = np.mean(s_in, axis=1)
            per_run["mean_out"] = np.mean(s_out, axis=1)
            results["ood"][pair][ref] = {
                "higher_is_ood": score.higher_is_ood,
                "description": score.description,
                "positive": positive,
                **_aggregate(per_run, num_runs),
            }
            fpr, tpr = metrics.roc_curve(s_in[0], s_out[0], **direction)
            curves[ref] = (fpr, tpr, float(per_run["auroc"][0]))
            plots.plot_score_histograms(
                s_in[0],
                s_out[0],
                (in_name, out_name),
                f"{ref}: {score.description}",
                plot_dir / f"hist_{in_name}_vs_{out_name}_{ref.replace('/', '_')}.png",
            )
            bar.update()
        if curves:
            plots.plot_roc_curves(
                curves,
                f"{in_name} (in) vs {out_name} (out), positive: {positive_choice}",
                plot_dir / f"roc_{in_name}_vs_{out_name}.png",
            )
    bar.close()
    results["meta"]["seconds"] = time.perf_counter() - tic
    write_results(results, workdir)
    return results


def _map_runs(fn, num_runs, variables, images, preprocess, key, batch_size) -> np.ndarray:
    """``fn(variables, batch, key) -> [B, ...]`` over a dataset, as ``[R, N, ...]``.

    With ``num_runs`` = R the variables are stacked on a leading run axis and ``fn`` runs over it
    (:func:`jaxrobust.runs.over_runs`; every run sees the same batches and keys); a single
    run gets R = 1.
    """
    if num_runs is None:
        return map_dataset(fn, variables, images, preprocess, key, batch_size)[None]
    out = map_dataset(_over_runs_batch_first(fn), variables, images, preprocess, key, batch_size)
    return np.moveaxis(out, 1, 0)


@functools.lru_cache(maxsize=64)
def _over_runs_batch_first(fn):
    """``fn`` over the run axis with the batch axis first; one function object per ``fn``, so
    :func:`map_dataset`'s compile cache hits for every dataset of the same size."""

    def stacked(v, x, k):
        return jnp.moveaxis(over_runs(fn, in_axes=(0, None, None))(v, x, k), 0, 1)

    return stacked


def _aggregate(per_run: dict, num_runs: int | None) -> dict:
    """One run: ``{metric: value}``. R runs: the mean, ``<metric>_std`` (ddof 1) and
    ``runs: {metric: [R values]}``."""
    values = {k: np.asarray(v, np.float64) for k, v in per_run.items()}
    if num_runs is None:
        return {k: float(v[0]) for k, v in values.items()}
    out = {k: float(np.mean(v)) for k, v in values.items()}
    out.update(
        {f"{k}_std": float(np.std(v, ddof=1)) if v.size > 1 else 0.0 for k, v in values.items()}
    )
    out["num_runs"] = num_runs
    out["runs"] = {k: v.tolist() for k, v in values.items()}
    return out


def _load(name: str, limit: int | None, progress: bool):
    images, labels = datasets.load(name, "test", progress=progress)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return images, np.asarray(labels)


def _has_posterior(config, name: str) -> bool:
    return name in config.models and bool(config.models[name].get("posterior"))


def _restore_posterior(workdir: Path, config, name: str):
    """``(model, preprocess, posterior samples, meta)`` of a model trained with a posterior."""
    model, preprocess = build_from_config(config, name)
    directory = posterior_dir(workdir, name)
    posterior, meta = restore_posterior(directory)
    abstract = abstract_variables(model, preprocess, config)
    check_compatible(posterior, abstract, str(directory))
    if "iwae" not in model.scores:
        raise ConfigError(
            f"Model {name!r} ({model.kind}) has no 'iwae' likelihood score; posterior scores "
            "need log p(x | theta_s)."
        )
    return model, preprocess, posterior, meta


@functools.lru_cache(maxsize=16)
def _posterior_iwae_batch_first(iwae_fn):
    """``(posterior, x, key) -> log p(x | theta_s)`` as ``[B, S]`` (batch first for map_dataset)."""

    def fn(posterior, images, key):
        return posterior_log_likelihoods(iwae_fn, posterior, images, key).T

    return fn


def _posterior_log_lik(model, preprocess, posterior, images, key, batch_size) -> np.ndarray:
    """``log_lik[S, N]``: the model's importance-weighted log p(x | theta_s) for every sample."""
    fn = _posterior_iwae_batch_first(model.scores["iwae"].fn)
    return map_dataset(fn, posterior, images, preprocess, key, batch_size).T


def _split_ref(ref: str, restored: dict, posteriors: dict) -> tuple[str, str]:
    if ref.count("/") != 1:
        raise ConfigError(f"Score {ref!r} must be written 'model/score', e.g. 'vae/elbo'.")
    model_name, score_name = ref.split("/")
    if model_name in posteriors:
        if score_name not in STACKED_SCORES:
            raise ConfigError(
                f"Model {model_name!r} is a posterior stack; its scores are "
                f"{sorted(STACKED_SCORES)}, not {score_name!r}."
            )
        return model_name, score_name
    model = restored[model_name][0]
    if score_name not in model.scores:
        raise ConfigError(
            f"Model {model_name!r} ({model.kind}) has no score {score_name!r}; "
            f"it has {sorted(model.scores)}."
        )
    return model_name, score_name


def _check_same_shape(in_name, in_images, out_name, out_images) -> None:
    if in_images.shape[1:] != out_images.shape[1:]:
        raise ConfigError(
            f"OOD set {out_name} has images {out_images.shape[1:]}, but the models were trained "
            f"on {in_name} {in_images.shape[1:]}; choose an OOD set of the same shape."
        )


def _check_finite(ref: str, dataset: str, scores: np.ndarray) -> None:
    bad = int(np.sum(~np.isfinite(scores)))
    if bad:
        raise FloatingPointError(
            f"Score {ref} is NaN/inf on {bad} of {scores.size} {dataset} inputs; the model or "
            "its checkpoint is broken (retrain, or evaluate an earlier checkpoint)."
        )

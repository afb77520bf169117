"""The ``classification`` task: accuracy, NLL, Brier, ECE (and friends) on the test split.

A point model is scored per run (mean and sample std over ``num_runs``); a posterior stack
(ensemble members, SWAG/SGHMC/BBB/HMC samples) by its Bayesian model average
p(y|x) = mean_s softmax(logits_s), with the mean predictive entropy and mutual information of
the test set beside it (the OOD task scores them per input).

Config::

    evaluate.classification = {"models": ["classifier"], "ece_bins": 15}
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust import metrics
from jaxrobust.evaluate.aggregate import aggregate, cell
from jaxrobust.evaluate.task import register_evaluation
from jaxrobust.scores import (
    STACKED_CLASSIFIER_SCORES,
    bma_log_probabilities,
    expected_entropy,
    mutual_information,
)


def plan(section, ctx) -> None:
    for name in section["models"]:
        ctx.request(name, ctx.config.data.name, ["logits"])


def run(section, ctx) -> dict:
    from jaxrobust.metrics import plots

    in_name = ctx.config.data.name
    labels = jnp.asarray(ctx.dataset(in_name).labels)
    num_bins = section.get("ece_bins", 15)
    results = {}
    for name in section["models"]:
        restored = ctx.restored(name)
        logits = jnp.asarray(ctx.outputs(name, in_name)["logits"], jnp.float32)  # [R|S, N, C]
        if restored.is_posterior:
            probs = jnp.exp(bma_log_probabilities(logits))[None]  # one BMA "run"
            extra = {
                "bma": True,
                "num_samples": int(logits.shape[0]),
                "mean_predictive_entropy": float(
                    jnp.mean(STACKED_CLASSIFIER_SCORES["predictive_entropy"].fn(logits))
                ),
                "mean_expected_entropy": float(jnp.mean(expected_entropy(logits))),
                "mean_mutual_information": float(jnp.mean(mutual_information(logits))),
            }
            num_runs = None
        else:
            probs = jax.nn.softmax(logits)
            extra, num_runs = {}, restored.num_runs
        metrics.calibration_summary(probs[0], labels, num_bins)  # validates the inputs once
        per_run = jax.vmap(metrics.calibration_summary, in_axes=(0, None, None))(
            probs, labels, num_bins
        )
        bins = {
            k: np.asarray(v)
            for k, v in metrics.reliability_bins(probs[0], labels, num_bins).items()
        }
        results[name] = {
            **aggregate(per_run, num_runs),
            **extra,
            "ece_bins": num_bins,
            "num_examples": int(labels.shape[0]),
            "reliability": {k: v.tolist() for k, v in bins.items()},
        }
        what = " (Bayesian model average)" if restored.is_posterior else ""
        title = f"{name} on {in_name}{what}" + (f" (run 1 of {num_runs})" if num_runs else "")
        plots.plot_reliability_diagram(
            bins, float(per_run["ece"][0]), title, ctx.plot_dir / f"reliability_{name}.png"
        )
    return results


def markdown(results: dict) -> str:
    if not results:
        return ""
    bins = next(iter(results.values())).get("ece_bins", 15)
    lines = [
        "## Classification (test split)",
        "",
        f"ECE with {bins} bins: top-label equal-width (eq. 4.1 of the hybrid-models thesis), "
        "top-label equal-mass, classwise equal-width; MCE equal-width. Posterior stacks: the "
        "Bayesian model average of the samples' probabilities.",
        "",
        "| model | accuracy (%) | NLL | Brier | ECE (%) | ECE equal-mass (%) | "
        "classwise ECE (%) | MCE (%) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cells = [
            cell(r, "accuracy"),
            cell(r, "nll", percent=False),
            cell(r, "brier", percent=False),
            *(cell(r, k) for k in ("ece", "ece_equal_mass", "classwise_ece", "mce")),
        ]
        label = f"{name} (BMA of {r['num_samples']})" if r.get("bma") else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def _schema():
    from jaxrobust.config.sections import CLASSIFICATION_TASK

    return CLASSIFICATION_TASK


register_evaluation(
    "classification",
    plan,
    run,
    markdown=markdown,
    schema=_schema(),
    description="accuracy, NLL, Brier, ECE of classifiers (BMA for posterior stacks)",
)

"""The ``ood`` task: OOD detection of each out-dataset against the test split of ``data.name``.

Scores are ``"model/score"`` references. A point model offers its score table (``vae/elbo``,
``classifier/max_softmax``, ...); a posterior stack offers the stacked scores of its density
(:data:`jaxrobust.scores.STACKED_SCORES` over log p(x | theta_s), e.g. ``vae/waic``) and, for
classifiers, those of its logits (:data:`jaxrobust.scores.STACKED_CLASSIFIER_SCORES`, e.g.
``ensemble/mutual_information``). Every score of a model comes from the one pass per dataset
of :class:`~jaxrobust.evaluate.context.EvaluationContext`; a point score relative to held-out
data (``vae/typicality``: H from the validation carve of the training split, never the test
split) comes finished from the context, which adds the validation pass.

Config::

    evaluate.ood = {"out_datasets": ["mnist"], "scores": ["vae/elbo", "classifier/max_softmax"],
                    "positive": "in"}   # or "out", or "higher": the side each score ranks higher
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust import metrics
from jaxrobust.errors import ConfigError
from jaxrobust.evaluate.aggregate import aggregate, cell, runs_note
from jaxrobust.evaluate.task import register_evaluation
from jaxrobust.registry import unknown_name_message
from jaxrobust.scores import (
    STACKED_CLASSIFIER_SCORES,
    STACKED_SCORES,
    classifier_stack_scores,
    stacked_scores,
    typicality_entropy,
)


def _resolve(ref: str, ctx):
    """``(model name, score name, score, output needed)`` of a ``"model/score"`` reference."""
    model_name, score_name = ref.split("/")
    restored = ctx.restored(model_name)
    if not restored.is_posterior:
        if score_name not in restored.model.scores:
            raise ConfigError(
                unknown_name_message(
                    f"score of model {model_name!r} ({restored.model.kind})",
                    score_name,
                    restored.model.scores,
                    where="evaluate.ood.scores",
                )
            )
        return model_name, score_name, restored.model.scores[score_name], score_name
    if score_name in STACKED_SCORES:
        return model_name, score_name, STACKED_SCORES[score_name], "log_likelihood"
    if score_name in STACKED_CLASSIFIER_SCORES:
        return model_name, score_name, STACKED_CLASSIFIER_SCORES[score_name], "logits"
    raise ConfigError(
        unknown_name_message(
            f"score of posterior stack {model_name!r}",
            score_name,
            {**STACKED_SCORES, **STACKED_CLASSIFIER_SCORES},
            where="evaluate.ood.scores",
        )
    )


def plan(section, ctx) -> None:
    in_name = ctx.config.data.name
    for dataset in (in_name, *section["out_datasets"]):  # shapes checked before any pass
        ctx.dataset(dataset)
    for ref in section["scores"]:
        model_name, _, _, output = _resolve(ref, ctx)
        for dataset in (in_name, *section["out_datasets"]):
            ctx.request(model_name, dataset, [output])


def _scores(ctx, model_name: str, score_name: str, output: str, dataset: str, cache: dict):
    """``[R, N]`` values of one score on one dataset (R = 1 for a posterior stack)."""
    out = ctx.outputs(model_name, dataset)
    if output == "log_likelihood":  # stacked density scores, H from the in-distribution set
        key = (model_name, "entropy")
        if key not in cache:
            in_lik = ctx.outputs(model_name, ctx.config.data.name)["log_likelihood"]
            cache[key] = typicality_entropy(in_lik)
        skey = (model_name, dataset, "stacked")
        if skey not in cache:
            cache[skey] = stacked_scores(out["log_likelihood"], entropy=cache[key])
        return np.asarray(cache[skey][score_name])[None]
    if output == "logits" and ctx.restored(model_name).is_posterior:
        skey = (model_name, dataset, "classifier_stack")
        if skey not in cache:
            cache[skey] = classifier_stack_scores(out["logits"])
        return np.asarray(cache[skey][score_name])[None]
    return out[score_name]


def run(section, ctx) -> dict:
    from jaxrobust.metrics import plots

    in_name = ctx.config.data.name
    positive_choice = section.get("positive", "in")
    results, cache = {}, {}
    for out_name in section["out_datasets"]:
        pair = f"{in_name}->{out_name}"
        results[pair], curves = {}, {}
        for ref in section["scores"]:
            model_name, score_name, score, output = _resolve(ref, ctx)
            restored = ctx.restored(model_name)
            num_runs = None if restored.is_posterior else restored.num_runs
            s_in = _scores(ctx, model_name, score_name, output, in_name, cache)
            s_out = _scores(ctx, model_name, score_name, output, out_name, cache)
            positive = positive_choice
            if positive == "higher":  # the side the score ranks higher (the dissertation's)
                positive = "out" if score.higher_is_ood else "in"
            direction = {"higher_is_ood": score.higher_is_ood, "positive": positive}
            per_run = jax.vmap(lambda a, b, d=direction: metrics.detection_summary(a, b, **d))(
                jnp.asarray(s_in), jnp.asarray(s_out)
            )
            per_run["mean_in"] = np.mean(s_in, axis=1)
            per_run["mean_out"] = np.mean(s_out, axis=1)
            results[pair][ref] = {
                "higher_is_ood": score.higher_is_ood,
                "description": score.description,
                "positive": positive,
                **aggregate(per_run, num_runs),
            }
            fpr, tpr = metrics.roc_curve(s_in[0], s_out[0], **direction)
            curves[ref] = (fpr, tpr, float(per_run["auroc"][0]))
            plots.plot_score_histograms(
                s_in[0],
                s_out[0],
                (in_name, out_name),
                f"{ref}: {score.description}",
                ctx.plot_dir / f"hist_{in_name}_vs_{out_name}_{ref.replace('/', '_')}.png",
            )
        if curves:
            plots.plot_roc_curves(
                curves,
                f"{in_name} (in) vs {out_name} (out), positive: {positive_choice}",
                ctx.plot_dir / f"roc_{in_name}_vs_{out_name}.png",
            )
    return results


def markdown(results: dict) -> str:
    lines = []
    for pair, scores in results.items():
        in_name, out_name = pair.split("->")
        positive = next(iter(scores.values()), {}).get("positive", "in")
        lines += [
            f"## OOD detection: {in_name} (in) vs {out_name} (out)",
            "",
            f"FPR@TPR with the {positive!r} side positive; AUPR with each side positive."
            + runs_note(scores),
            "",
            "| score | larger means | AUROC (%) | AUPR-in (%) | AUPR-out (%) | FPR@80 (%) | "
            "FPR@95 (%) |",
            "|---|---|---|---|---|---|---|",
        ]
        for score, r in scores.items():
            direction = "OOD" if r["higher_is_ood"] else "in-dist."
            cells = [cell(r, k) for k in ("auroc", "aupr_in", "aupr_out", "fpr80", "fpr95")]
            lines.append(f"| {score} | {direction} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _schema():
    from jaxrobust.config.sections import OOD_TASK

    return OOD_TASK


register_evaluation(
    "ood",
    plan,
    run,
    markdown=markdown,
    schema=_schema(),
    description="OOD detection (AUROC, AUPR, FPR@TPR) of model scores, in vs out datasets",
)

"""The ``intensity_scaling`` task: OOD detection as the outliers' pixel intensities are scaled.

Dissertation Table 4.8 (seed 001, section 4.5.3): the outlier images x are replaced by s * x for
s = 1, 3, ..., 15, unclipped (so pixels leave [0, 1]), and a score of each model ranks the
in-distribution test split against them. A likelihood-based hole indicator of an unconstrained
VAE collapses as s grows (far-away inputs map far out in latent space where the decoder is
confident), that of a Lipschitz VAE does not (its encoder and decoder are bounded).

All scales of one model come from one jitted pass over the outlier set: the score is vmapped
over the scales, with the same key (common random numbers) for every scale, and the in-dataset
scores are those of the shared evaluation pass.

Config::

    evaluate.intensity_scaling = {"models": ["lipschitz", "vanilla_mlp"],
                                  "score": "hole_indicator", "dataset": "fashion_mnist",
                                  "scales": [1, 3, 5, 7, 9, 11, 13, 15], "positive": "out"}
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust import metrics
from jaxrobust.errors import ConfigError
from jaxrobust.evaluate.aggregate import aggregate, cell, runs_note
from jaxrobust.evaluate.batched import map_dataset
from jaxrobust.evaluate.context import _pass_fn
from jaxrobust.evaluate.task import register_evaluation
from jaxrobust.registry import unknown_name_message


def _check(section, ctx) -> None:
    for name in section["models"]:
        restored = ctx.restored(name)
        if restored.is_posterior:
            raise ConfigError(
                f"evaluate.intensity_scaling: model {name!r} is a posterior stack; the task "
                "scores point models (or stacked runs) with a score of their table."
            )
        if section["score"] not in restored.model.scores:
            raise ConfigError(
                unknown_name_message(
                    f"score of model {name!r}",
                    section["score"],
                    restored.model.scores,
                    where="evaluate.intensity_scaling.score",
                )
            )


def plan(section, ctx) -> None:
    _check(section, ctx)
    for name in section["models"]:
        ctx.request(name, ctx.config.data.name, [section["score"]])


def scaled_scores(ctx, name: str, score: str, dataset: str, scales) -> np.ndarray:
    """``[len(scales), R, N]`` scores of model ``name`` on ``scale * x`` for the test images x
    of ``dataset`` (R = 1 for a single model), in one jitted pass."""
    restored = ctx.restored(name)
    base = _pass_fn(restored.model, (score,), False, restored.num_runs)
    factors = jnp.asarray(scales, jnp.float32)

    def fn(variables, x, key):
        out = jax.vmap(lambda s: base(variables, s * x, key)[score])(factors)  # [S, B, (R)]
        return jnp.moveaxis(out, 0, 1)  # [B, S, (R)]

    data = ctx.dataset(dataset)
    out = map_dataset(fn, restored.variables, data.images, restored.preprocess, ctx.key,
                      ctx.batch_size)  # fmt: skip
    out = np.moveaxis(out, 0, -1)  # [S, (R,) N]
    return out if restored.num_runs is not None else out[:, None]


def run(section, ctx) -> dict:
    score, dataset, scales = section["score"], section["dataset"], list(section["scales"])
    in_name = ctx.config.data.name
    results = {"score": score, "dataset": dataset, "in_dataset": in_name, "scales": scales,
               "positive": section["positive"], "models": {}}  # fmt: skip
    for name in section["models"]:
        restored = ctx.restored(name)
        entry = restored.model.scores[score]
        s_in = jnp.asarray(ctx.outputs(name, in_name)[score])  # [R, N]
        s_out = scaled_scores(ctx, name, score, dataset, scales)  # [S, R, N]
        bad = int(np.sum(~np.isfinite(s_out)))
        if bad:
            raise FloatingPointError(
                f"{name}/{score} is NaN/inf on {bad} scaled {dataset} inputs; the model or its "
                "checkpoint is broken (retrain, or evaluate an earlier checkpoint)."
            )
        direction = {"higher_is_ood": entry.higher_is_ood, "positive": section["positive"]}
        per_scale = {}
        for scale, values in zip(scales, s_out, strict=True):
            per_run = jax.vmap(lambda a, b, d=direction: metrics.detection_summary(a, b, **d))(
                s_in, jnp.asarray(values)
            )
            per_run["mean_out"] = np.mean(values, axis=1)
            per_scale[f"{scale:g}"] = aggregate(per_run, restored.num_runs)
        results["models"][name] = {"description": entry.description, "scales": per_scale}
    return results


def markdown(result: dict) -> str:
    scales = [f"{s:g}" for s in result["scales"]]
    lines = [
        f"## {result['score']} as the {result['dataset']} outliers' intensities are scaled",
        "",
        f"AUROC (%) of {result['in_dataset']} (in) vs s x {result['dataset']} (unclipped), "
        f"positive: {result['positive']}."
        + runs_note({m: next(iter(r["scales"].values())) for m, r in result["models"].items()}),
        "",
        "| model | " + " | ".join(f"x{s}" for s in scales) + " |",
        "|---|" + "---|" * len(scales),
    ]
    for name, r in result["models"].items():
        lines.append(f"| {name} | " + " | ".join(cell(r["scales"][s], "auroc") for s in scales)
                     + " |")  # fmt: skip
    lines.append("")
    return "\n".join(lines)


def _schema():
    from jaxrobust.config.sections import INTENSITY_TASK

    return INTENSITY_TASK


register_evaluation(
    "intensity_scaling",
    plan,
    run,
    markdown=markdown,
    schema=_schema(),
    description="OOD detection of scaled outliers s * x (dissertation Table 4.8)",
)

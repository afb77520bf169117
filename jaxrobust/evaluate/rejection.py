"""The ``rejection`` task: classification with rejection (the SDIM paper, seed 003, Table 2).

A classifier predicts c = argmax_c s_c(x) and rejects x when s_c(x) < delta_c. The class scores
s_c are the model's logits: for a generative classifier (SDIM) these are the class-conditional
log-likelihoods log p(x~|c); for a softmax classifier the rule is a max-logit rejector. The
thresholds delta_c are the ``percentiles`` of s_c over the correctly classified *training*
inputs of class c (the training split the model was trained on, after the validation carve),
fitted in one jitted pass. Reported per percentile: the thresholds, accuracy on the accepted
test inputs and the test rejection rate, and for each out-dataset the share of its inputs
rejected by that rule (Eq. 9), and the class-wise mean OOD detection rate of Table 3 (for each
class c the share of the OOD inputs with s_c(x) < delta_c, averaged over c). Fig. 2's per-class
histograms of s_c on the class-c test inputs and on each OOD set, with delta_c at the first
percentile, go to ``plots/rejection_histograms_<model>_<out>.png``.

Config::

    evaluate.rejection = {"models": ["sdim"], "percentiles": [1.0, 2.0], "out_datasets": []}
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxrobust import metrics
from jaxrobust.config.schema import Field
from jaxrobust.evaluate.task import register_evaluation

TRAIN = "train"  # ctx.dataset(...) split of the thresholds

SCHEMA = {
    "models": Field(list, items=Field(str)),
    "percentiles": Field(list, [1.0, 2.0], items=Field(float, above=0.0, below=100.0)),
    "out_datasets": Field(list, [], items=Field(str)),
}


def plan(section, ctx) -> None:
    in_name = ctx.config.data.name
    for name in section["models"]:
        plan_thresholds(ctx, name)
        for dataset in (in_name, *section["out_datasets"]):
            ctx.request(name, dataset, ["logits"])


def plan_thresholds(ctx, name: str) -> None:
    """Request what :func:`fit_thresholds` needs: the model's logits on its training split."""
    ctx.request(name, f"{ctx.config.data.name}:{TRAIN}", ["logits"])


def fit_thresholds(ctx, name: str, percentiles) -> dict[str, jnp.ndarray]:
    """``{"1": delta [C], ...}``: per-class thresholds of model ``name`` at each percentile of
    its class scores over the correctly classified training inputs of each class (one jitted
    percentile per setting; :func:`jaxrobust.metrics.class_thresholds_from_percentile`)."""
    in_name = ctx.config.data.name
    train = ctx.dataset(f"{in_name}:{TRAIN}")
    train_logits = jnp.asarray(ctx.outputs(name, f"{in_name}:{TRAIN}")["logits"][0])
    labels = jnp.asarray(train.labels)
    return {
        f"{p:g}": metrics.class_thresholds_from_percentile(
            train_logits, labels, p, correct_only=True
        )
        for p in percentiles
    }


def run(section, ctx) -> dict:
    from jaxrobust.metrics import plots

    in_name = ctx.config.data.name
    results = {}
    test = ctx.dataset(in_name)
    for name in section["models"]:
        test_logits = jnp.asarray(ctx.outputs(name, in_name)["logits"][0])
        entry = {}
        for percentile, thresholds in fit_thresholds(ctx, name, section["percentiles"]).items():
            predictions, accepted = metrics.accept_above_class_thresholds(test_logits, thresholds)
            result = metrics.classification_with_rejection(
                predictions, jnp.asarray(test.labels), accepted
            )
            row = {
                "thresholds": np.asarray(thresholds).tolist(),
                "accuracy_on_accepted": float(result.accuracy_on_accepted),
                "rejection_rate": float(result.rejection_rate),
                "num_accepted": int(result.num_accepted),
                "out_rejection_rate": {},
            }
            for out_name in section["out_datasets"]:
                out_logits = jnp.asarray(ctx.outputs(name, out_name)["logits"][0])
                _, out_accepted = metrics.accept_above_class_thresholds(out_logits, thresholds)
                row["out_rejection_rate"][out_name] = float(1.0 - jnp.mean(out_accepted))
                classwise = metrics.classwise_detection_rate(out_logits, thresholds)
                row.setdefault("out_classwise_detection", {})[out_name] = {
                    "mean": float(jnp.mean(classwise)),
                    "per_class": np.asarray(classwise).tolist(),
                }
                if not entry:  # Fig. 2: the first percentile's thresholds
                    plots.plot_classwise_histograms(
                        np.asarray(test_logits), test.labels, np.asarray(out_logits),
                        np.asarray(thresholds), (f"{in_name} test (class c)", out_name),
                        ctx.plot_dir / f"rejection_histograms_{name}_{out_name}.png",
                    )  # fmt: skip
            entry[percentile] = row
        results[name] = entry
    return results


def markdown(results: dict) -> str:
    lines = []
    for name, entry in results.items():
        outs = sorted({o for row in entry.values() for o in row["out_rejection_rate"]})
        lines += [
            f"## Classification with rejection: {name}",
            "",
            "Per-class thresholds at a percentile of the class score over correctly classified "
            "training inputs; accuracy on the accepted test inputs, the rejection rate, and the "
            "share of each OOD set rejected (Eq. 9) / detected class-wise (Table 3: the mean over "
            "classes c of the share with s_c < delta_c).",
            "",
            "| percentile | accuracy left (%) | rejection rate (%) | "
            + "".join(f"{o} rejected (%) | {o} class-wise detected (%) | " for o in outs),
            "|---|---|---|" + "---|---|" * len(outs),
        ]
        for percentile, row in entry.items():
            cells = [
                f"{100 * row['accuracy_on_accepted']:.2f}",
                f"{100 * row['rejection_rate']:.2f}",
            ]
            for o in outs:
                classwise = row.get("out_classwise_detection", {}).get(o)
                cells += [
                    f"{100 * row['out_rejection_rate'][o]:.2f}",
                    "-" if classwise is None else f"{100 * classwise['mean']:.2f}",
                ]
            lines.append(f"| {percentile} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


register_evaluation(
    "rejection",
    plan,
    run,
    markdown=markdown,
    schema=SCHEMA,
    description="classification with per-class rejection thresholds (SDIM, Table 2)",
)

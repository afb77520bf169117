"""The ``adversarial_rejection`` task: adversarial examples detected by rejection (the SDIM
paper, seed 003, Tables 4-7).

A generative classifier predicts c = argmax_c log p(x~|c) and rejects x when
log p(x~|c) < delta_c (Eq. 9). The thresholds are fitted as in the ``rejection`` task (per-class
``percentiles`` over the correctly classified training inputs, never the test split), then the
first ``num_images`` test images are attacked in one jitted ``lax.map`` over chunks of
``chunk_size`` per attack (no Python loop over inputs or targets):

- untargeted ``deepfool``, ``boundary`` and ``local_search`` (Table 5): one attempt per image;
  success = the adversarial input is classified as another class than its label; an attempt on
  an image the model already misclassifies counts as an attempt and its (non-)success as it is,
  so the denominators are the ``num_images`` of the paper's "first 1000" (digest open point 10);
- targeted ``cw_l2`` with ``confidence`` kappa in raw log-likelihood units (Table 7): every
  other class as a target of every source that the model classifies correctly (C - 1 attempts
  per source; the paper's exact filter is unknown, open point 10); success = classified as the
  target.

Detected = a successful adversarial input that Eq. 9 rejects (the threshold of its *new*
predicted class); the detection rate is detected / successes, reported with both counts per
percentile, beside the share of all attempts rejected. The logit table (Tables 4 and 6): the
class scores of the first test image of class ``table_class`` (within the attacked images),
clean and after each untargeted attack, and for each targeted attack the target class's score
per target (None where the attack failed), with the first percentile's thresholds.

Attack settings are the library's defaults unless set (the paper gives none, open point 11);
the results record every setting used.

Config::

    evaluate.adversarial_rejection = {
        "model": "sdim", "percentiles": [1.0, 2.0], "num_images": 1000, "chunk_size": 100,
        "seed": 0, "table_class": 0,
        "attacks": {"deepfool": {"attack": "deepfool"}, "boundary": {"attack": "boundary"},
                    "local_search": {"attack": "local_search"},
                    "cw_0": {"attack": "cw_l2", "confidence": 0.0},
                    "cw_500": {"attack": "cw_l2", "confidence": 500.0}},
    }
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust import attacks as attack_lib
from jaxrobust import metrics
from jaxrobust.config.schema import Field, validate_section
from jaxrobust.config.sections import seed_field
from jaxrobust.errors import ConfigError
from jaxrobust.evaluate.batched import map_chunks
from jaxrobust.evaluate.rejection import fit_thresholds, plan_thresholds
from jaxrobust.evaluate.task import register_evaluation

UNTARGETED = ("deepfool", "boundary", "local_search")
ATTACK_KINDS = (*UNTARGETED, "cw_l2")

ATTACK_SCHEMA = {
    "attack": Field(str, choices=ATTACK_KINDS),
    # deepfool
    "overshoot": Field(float, 0.02, minimum=0.0, help="deepfool"),
    "num_candidates": Field(int, 10, minimum=2, help="deepfool"),
    "max_iterations": Field(int, 0, minimum=0, help="deepfool / cw_l2 (0: the attack's default)"),
    # boundary
    "num_steps": Field(int, 1000, minimum=0, help="boundary: proposal steps"),
    # local search
    "rounds": Field(int, 150, minimum=1, help="local_search: R"),
    "num_pixels": Field(int, 10, minimum=1, help="local_search: t, pixels changed per round"),
    # cw_l2
    "confidence": Field(float, 0.0, minimum=0.0, help="cw_l2: kappa, raw class-score units"),
    "initial_const": Field(float, 1e-3, above=0.0, help="cw_l2: the first c"),
    "binary_search_steps": Field(int, 5, minimum=1, help="cw_l2"),
    "learning_rate": Field(float, 1e-2, above=0.0, help="cw_l2: Adam's step size"),
}


def _check_attacks(value, path: str) -> dict:
    if not value:
        raise ConfigError(
            f"{path} names no attack; add e.g. {{'deepfool': {{'attack': 'deepfool'}}}}."
        )
    return {n: validate_section(spec, ATTACK_SCHEMA, f"{path}.{n}") for n, spec in value.items()}


SCHEMA = {
    "model": Field(str, help="the classifier with rejection (a key of config.models)"),
    "percentiles": Field(list, [1.0, 2.0], items=Field(float, above=0.0, below=100.0)),
    "num_images": Field(int, 1000, minimum=1, help="the first N test images are attacked"),
    "chunk_size": Field(int, 100, minimum=1),
    "seed": seed_field(),
    "table_class": Field(int, 0, minimum=0, help="class of the logit table's image (Table 4)"),
    "attacks": Field(dict, check=_check_attacks),
}


def plan(section, ctx) -> None:
    where = "evaluate.adversarial_rejection"
    name = section["model"]
    if name not in ctx.config.models:
        raise ConfigError(
            f"{where}.model: {name!r} is not a key of config.models ({sorted(ctx.config.models)})."
        )
    restored = ctx.restored(name)
    if restored.model.logits is None or restored.num_runs is not None or restored.is_posterior:
        raise ConfigError(
            f"{where}.model: {name!r} must be one classifier (no runs, no posterior stack)."
        )
    plan_thresholds(ctx, name)
    data = ctx.dataset(ctx.config.data.name)
    if data.images.shape[0] < section["num_images"]:
        raise ConfigError(
            f"{where}.num_images: {section['num_images']} test images asked for, but the test "
            f"split has {data.images.shape[0]} (evaluate.test_limit included)."
        )


def _max_iterations(spec: dict) -> dict:
    return {"max_iterations": spec["max_iterations"]} if spec["max_iterations"] else {}


def _attack(spec: dict, logits, x, y, correct: np.ndarray, key, chunk: int):
    """``(adversarial class scores [M, C], success [M], source [M], target [M] or None)``."""
    kind = spec["attack"]
    if kind in UNTARGETED:

        def one(xs, ys, ks):
            k = ks[0]
            if kind == "deepfool":
                adv = attack_lib.deepfool(
                    logits, xs, overshoot=spec["overshoot"],
                    num_candidates=spec["num_candidates"], **_max_iterations(spec),
                ).adversarial  # fmt: skip
            elif kind == "boundary":
                adv = attack_lib.boundary_attack(
                    logits, xs, ys, key=k, num_steps=spec["num_steps"]
                ).adversarial
            else:
                adv = attack_lib.local_search_attack(
                    logits, xs, ys, key=k, rounds=spec["rounds"], num_pixels=spec["num_pixels"]
                ).adversarial
            scores = logits(adv)
            return scores, jnp.argmax(scores, -1) != ys

        keys = jax.random.split(key, x.shape[0])
        scores, success = map_chunks(one, (x, y, keys), chunk)
        return scores, success, np.arange(x.shape[0]), None
    # targeted CW-L2 at every other class of each correctly classified source
    num_classes = int(logits(x[:1]).shape[-1])
    sources = np.flatnonzero(correct)
    source = np.repeat(sources, num_classes - 1)
    offsets = np.tile(np.arange(1, num_classes), len(sources))
    targets = (np.asarray(y)[source] + offsets) % num_classes
    if not len(source):
        return np.zeros((0, num_classes)), np.zeros(0, bool), source, targets

    def one(xs, ys, ts):
        result = attack_lib.carlini_wagner_l2(
            logits, xs, ys, targeted=True, targets=ts, confidence=spec["confidence"],
            initial_const=spec["initial_const"], binary_search_steps=spec["binary_search_steps"],
            learning_rate=spec["learning_rate"], **_max_iterations(spec),
        )  # fmt: skip
        scores = logits(result.adversarial)
        return scores, jnp.argmax(scores, -1) == ts

    scores, success = map_chunks(
        one, (x[source], y[source], jnp.asarray(targets, jnp.int32)), chunk
    )
    return scores, success, source, targets


def detection_counts(scores: np.ndarray, success: np.ndarray, thresholds) -> dict:
    """Eq. 9 on adversarial class scores ``[M, C]``: how many successes are rejected."""
    success = np.asarray(success, bool)
    if scores.shape[0] == 0:
        return {"detected": 0, "detection_rate": None, "rejected_of_attempts": None}
    _, accepted = metrics.accept_above_class_thresholds(jnp.asarray(scores), thresholds)
    rejected = ~np.asarray(accepted)
    detected = int(np.sum(rejected & success))
    return {
        "detected": detected,
        "detection_rate": detected / int(success.sum()) if success.any() else None,
        "rejected_of_attempts": float(rejected.mean()),
    }


def run(section, ctx) -> dict:
    name = section["model"]
    restored = ctx.restored(name)
    data = ctx.dataset(ctx.config.data.name)
    n = section["num_images"]
    x = jnp.asarray(restored.preprocess(jnp.asarray(data.images[:n])))
    y = jnp.asarray(data.labels[:n].astype(np.int32))
    thresholds = fit_thresholds(ctx, name, section["percentiles"])
    first = next(iter(thresholds))
    logits = lambda xs: restored.model.logits(restored.variables, xs)  # noqa: E731
    clean = map_chunks(logits, (x,), section["chunk_size"])
    correct = np.argmax(clean, -1) == np.asarray(y)
    rows = np.flatnonzero(np.asarray(y) == section["table_class"])
    table_row = int(rows[0]) if len(rows) else None
    results = {
        "model": name,
        "num_images": n,
        "clean_accuracy": float(np.mean(correct)),
        "thresholds": {p: np.asarray(t).tolist() for p, t in thresholds.items()},
        "attacks": {},
        "logit_table": {
            "image_index": table_row,
            "label": section["table_class"],
            "thresholds": np.asarray(thresholds[first]).tolist(),
            "percentile": first,
            "original": None if table_row is None else clean[table_row].tolist(),
            "untargeted": {},
            "targeted": {},
        },
    }
    key = jax.random.key(section["seed"])
    for attack_name, spec in section["attacks"].items():
        tic = time.perf_counter()
        scores, success, source, targets = _attack(
            spec, logits, x, y, correct, jax.random.fold_in(key, len(results["attacks"])),
            section["chunk_size"],
        )  # fmt: skip
        success = np.asarray(success, bool)
        entry = {
            "spec": dict(spec),
            "seconds": time.perf_counter() - tic,
            "targeted": targets is not None,
            "attempts": int(success.size),
            "successes": int(success.sum()),
            "success_rate": float(success.mean()) if success.size else None,
            "sources": int(len(np.unique(source))),
            "detection": {p: detection_counts(scores, success, t) for p, t in thresholds.items()},
        }
        results["attacks"][attack_name] = entry
        if table_row is None:
            continue
        table = results["logit_table"]
        if targets is None:
            table["untargeted"][attack_name] = scores[table_row].tolist()
        else:
            per_target: list = [None] * len(table["thresholds"])
            for i in np.flatnonzero(source == table_row):
                if success[i]:
                    per_target[int(targets[i])] = float(scores[i, targets[i]])
            table["targeted"][attack_name] = per_target
    return results


def _rate(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def markdown(result: dict) -> str:
    percentiles = list(result["thresholds"])
    lines = [
        f"## Adversarial inputs detected by rejection: {result['model']} (first "
        f"{result['num_images']} test images, clean accuracy "
        f"{100 * result['clean_accuracy']:.2f} %)",
        "",
        "Detection = successful adversarial inputs rejected by Eq. 9 (the threshold of the new "
        "predicted class) / successes. Untargeted attacks: one attempt per image; CW-L2: every "
        "other class of each correctly classified image.",
        "",
        "| attack | attempts | successes | success (%) | "
        + " | ".join(f"detected, {p}th pct | detection (%), {p}th pct" for p in percentiles)
        + " |",
        "|---|---|---|---|" + "---|---|" * len(percentiles),
    ]
    for name, e in result["attacks"].items():
        cells = [str(e["attempts"]), str(e["successes"]), _rate(e["success_rate"])]
        for p in percentiles:
            d = e["detection"][p]
            cells += [str(d["detected"]), _rate(d["detection_rate"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = result["logit_table"]
    if table["original"] is not None:
        num_classes = len(table["thresholds"])
        lines += [
            "",
            f"Class scores log p(x~|c) of test image {table['image_index']} (class "
            f"{table['label']}), clean and after each attack (Tables 4 / 6; targeted rows: the "
            f"target's score per target, '-' = failed), thresholds at the "
            f"{table['percentile']}th percentile:",
            "",
            "| | " + " | ".join(str(c) for c in range(num_classes)) + " |",
            "|---" * (num_classes + 1) + "|",
            "| thresholds | " + " | ".join(f"{v:.1f}" for v in table["thresholds"]) + " |",
            "| original | " + " | ".join(f"{v:.1f}" for v in table["original"]) + " |",
        ]
        for name, values in table["untargeted"].items():
            lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
        for name, values in table["targeted"].items():
            cells = ["-" if v is None else f"{v:.1f}" for v in values]
            lines.append(f"| {name} (target's score) | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


register_evaluation(
    "adversarial_rejection",
    plan,
    run,
    markdown=markdown,
    schema=SCHEMA,
    description="adversarial examples detected by per-class rejection (SDIM, Tables 4-7)",
)

"""The ``adversarial_detection`` task: one detector for outliers and adversarial inputs (Ch. 5).

For each configured attack, the first ``num_sources`` test images (sources) are attacked and the
successful adversarial inputs are ranked against ``num_inliers`` other test images (the next
ones) by each detector score (AUROC / AUPR / FPR80 and FPR95, the adversarial inputs
positive), with the attack's success rate and counts (digest open point 21):

- ``fgsm``: untargeted FGSM on the victim classifier's cross-entropy, ``epsilon`` in pixels;
- ``cw_l2`` and ``jsma``: targeted at each of the C - 1 other classes of every source (C - 1
  attempts per source; open point 20), success = classified as the target;
- ``encoder``: the latent attack on a VAE (eq. 5.1: maximise the symmetric KL between q(z|x +
  e) and q(z|x), L-inf ball ``epsilon``, ``num_steps`` of size epsilon / 10, random start; open
  point 23), one attack per run of the attacked model; every attacked input counts, and only
  that model's detectors score it (run r's detector on run r's attacks);
- ``adaptive``: an attacker who knows the detector: L-inf PGD (``num_steps`` of epsilon / 10,
  random start) on CE(victim(x), y) - ``detector_weight`` * hole_indicator(x) of run 0 of the
  VAE ``model``, the hole indicator's sampling averaged over ``eot_samples`` draws (EOT,
  Athalye et al. 2018). Success = the victim is fooled; the task also reports how many of those
  evade the hole test (hole indicator at most the ``percentile`` of the validation carve's),
  i.e. pass Algorithm 2 as inliers.

``active_defense`` (Algorithm 2, :mod:`jaxrobust.inference.active_defense`): for each listed VAE,
the hole threshold is the ``percentile`` of its hole indicator on the validation carve of the
training split (never the test split), theta = ``gain_threshold``; the first
``num_defense_inputs`` of the inliers, of each outlier set's test split, of constant images
(``constant_outliers``: every pixel at the value; 1.0 is the "all white" row) and of each
attack's adversarial inputs go through the defense, and the task reports the three-way
confusion matrix (rows: what the inputs are, columns: inlier / outlier / attack) and the mean
MS-SSIM without and with HMC and their gain (Tables 5.7 / 5.8). Runs of a VAE are vmapped.

Config::

    evaluate.adversarial_detection = {
        "victim": "cnn", "detectors": ["lipschitz/hole_indicator"],
        "num_sources": 100, "num_inliers": 1000, "chunk_size": 100, "seed": 0,
        "attacks": {"fgsm_0.3": {"attack": "fgsm", "epsilon": 0.3},
                    "cw": {"attack": "cw_l2"}, "jsma": {"attack": "jsma"},
                    "encoder_0.1": {"attack": "encoder", "model": "lipschitz", "epsilon": 0.1}},
        "active_defense": {"models": ["lipschitz"], "outliers": ["fashion_mnist"],
                           "constant_outliers": [1.0]},
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
from jaxrobust.evaluate.aggregate import aggregate, cell, runs_note
from jaxrobust.evaluate.batched import map_chunks, map_dataset
from jaxrobust.evaluate.context import _pass_fn
from jaxrobust.evaluate.task import register_evaluation
from jaxrobust.inference.active_defense import (
    DECISIONS,
    decide,
    defense_quantities,
    fit_thresholds,
)
from jaxrobust.metrics.similarity import ms_ssim_weights
from jaxrobust.registry import unknown_name_message
from jaxrobust.runs import over_runs

ATTACK_KINDS = ("fgsm", "cw_l2", "jsma", "encoder", "adaptive")
ATTACK_SCHEMA = {
    "attack": Field(str, choices=ATTACK_KINDS),
    "epsilon": Field(float, 0.3, above=0.0, maximum=1.0, help="fgsm / encoder: L-inf radius"),
    "model": Field(str, "", help="encoder: the attacked VAE (a key of config.models)"),
    "num_steps": Field(int, 100, minimum=1, help="encoder: PGD steps of epsilon / 10"),
    "max_iterations": Field(int, 128, minimum=1, help="cw_l2 (the document: 128)"),
    "learning_rate": Field(float, 0.2, above=0.0, help="cw_l2 (the document: 0.2)"),
    "initial_const": Field(float, 10.0, above=0.0, help="cw_l2 c (CleverHans tutorial: 10)"),
    "binary_search_steps": Field(int, 1, minimum=1, help="cw_l2"),
    "confidence": Field(float, 0.0, minimum=0.0, help="cw_l2 kappa"),
    "theta": Field(float, 1.0, help="jsma: the change per feature"),
    "gamma": Field(float, 0.1, above=0.0, maximum=1.0, help="jsma: the largest share changed"),
    "num_sources": Field(int, 0, minimum=0, help="the first N of the task's sources (0: all)"),
    "detector_weight": Field(float, 0.1, minimum=0.0, help="adaptive: lambda on the hole score"),
    "eot_samples": Field(int, 4, minimum=1, help="adaptive: EOT draws of the hole indicator"),
    "percentile": Field(float, 95.0, above=0.0, below=100.0, help="adaptive: hole threshold"),
}
HMC_SCHEMA = {
    "num_steps": Field(int, 100, minimum=1),
    "num_integration_steps": Field(int, 20, minimum=1),
    "step_size": Field(float, 0.05, above=0.0),
    "target_acceptance": Field(float, 0.9, above=0.0, below=1.0),
    "adaptation": Field(str, "dual_averaging", choices=("dual_averaging", "kuzina", "none")),
}


def _check_attacks(value, path: str) -> dict:
    if not value:
        raise ConfigError(f"{path} names no attack; add e.g. {{'fgsm': {{'attack': 'fgsm'}}}}.")
    return {n: validate_section(spec, ATTACK_SCHEMA, f"{path}.{n}") for n, spec in value.items()}


def _check_hmc(value, path: str) -> dict:
    return validate_section(value or {}, HMC_SCHEMA, path)


#: MS-SSIM of Algorithm 2 (the document states no setting; digest open point 7: 28x28 images,
#: 3 scales, a 7x7 window, Wang et al.'s first three weights renormalised)
MS_SSIM_SCHEMA = {
    "filter_size": Field(int, 7, minimum=1),
    "filter_sigma": Field(float, 1.5, above=0.0),
    "num_scales": Field(int, 3, minimum=1, maximum=5),
}


def _check_ms_ssim(value, path: str) -> dict:
    return validate_section(value or {}, MS_SSIM_SCHEMA, path)


DEFENSE_SCHEMA = {
    "models": Field(list, [], items=Field(str), help="Gaussian-latent VAEs (Algorithm 2)"),
    "outliers": Field(list, [], items=Field(str), help="outlier test sets"),
    "constant_outliers": Field(
        list,
        [],
        items=Field(float, minimum=0.0, maximum=1.0),
        help="constant images, every pixel at this value in [0, 1] (1.0: 'all white' of Tables "
        "5.7 / 5.8)",
    ),
    "num_defense_inputs": Field(int, 200, minimum=1, help="per group (inliers, each set)"),
    "percentile": Field(float, 95.0, above=0.0, below=100.0, help="hole threshold (validation)"),
    "gain_threshold": Field(float, 0.15, minimum=0.0, help="theta of Algorithm 2"),
    "signed": Field(bool, False, help="test gain > theta instead of |gain| > theta"),
    "batch_size": Field(int, 100, minimum=1, help="inputs per HMC call"),
    "hmc": Field(dict, {}, check=_check_hmc),
    "ms_ssim": Field(dict, {}, check=_check_ms_ssim),
}


def _check_defense(value, path: str) -> dict:
    return validate_section(value or {}, DEFENSE_SCHEMA, path)


SCHEMA = {
    "victim": Field(str, help="the attacked classifier (a key of config.models)"),
    "detectors": Field(list, [], items=Field(str), help='"model/score" references'),
    "num_sources": Field(int, 100, minimum=1, help="first test images attacked"),
    "num_inliers": Field(int, 1000, minimum=1, help="the next test images: the inliers"),
    "chunk_size": Field(int, 100, minimum=1, help="inputs per attack call"),
    "seed": seed_field(),
    "attacks": Field(dict, check=_check_attacks),
    "active_defense": Field(dict, {}, check=_check_defense),
}


# ------------------------------------------------------------------------------------- plan


def _detector(ref: str, ctx, where: str = "evaluate.adversarial_detection.detectors"):
    if ref.count("/") != 1:
        raise ConfigError(f"{where}: {ref!r} is not a 'model/score' reference.")
    model_name, score_name = ref.split("/")
    restored = ctx.restored(model_name)
    if restored.is_posterior:
        raise ConfigError(f"{where}: {ref!r}: posterior stacks are not supported here.")
    if score_name not in restored.model.scores:
        raise ConfigError(
            unknown_name_message(
                f"score of model {model_name!r}", score_name, restored.model.scores, where=where
            )  # fmt: skip
        )
    score = restored.model.scores[score_name]
    if score.reference is not None:
        raise ConfigError(
            f"{where}: {ref!r} is relative to held-out data (typicality); use a score that is a "
            "function of the input alone."
        )
    return model_name, score_name, score


def _require_validation_carve(ctx, where: str) -> None:
    if ctx.config.data.get("validation_split", "train") != "train":
        raise ConfigError(
            f"{where}: its hole threshold is fitted on held-out in-distribution data, which "
            "must not be the test split it is evaluated on; this config validates on the test "
            "split (data.validation_split = 'test'). Set data.validation_split = 'train' "
            "(data.validation_size sets the carve)."
        )


def plan(section, ctx) -> None:
    where = "evaluate.adversarial_detection"
    victim = ctx.restored(section["victim"])
    if victim.model.logits is None or victim.num_runs is not None or victim.is_posterior:
        raise ConfigError(
            f"{where}.victim: {section['victim']!r} must be one classifier (no runs, no posterior)."
        )
    for ref in section["detectors"]:
        _detector(ref, ctx)
    for name, spec in section["attacks"].items():
        if spec["attack"] in ("encoder", "adaptive"):
            if spec["model"] not in ctx.config.models:
                raise ConfigError(
                    f"{where}.attacks.{name}.model: {spec['model']!r} is not a key of "
                    f"config.models ({sorted(ctx.config.models)})."
                )
            if ctx.restored(spec["model"]).model.encode is None:
                raise ConfigError(f"{where}.attacks.{name}.model: {spec['model']!r} has no "
                                  "encoder.")  # fmt: skip
            if spec["attack"] == "adaptive":
                if "hole_indicator" not in ctx.restored(spec["model"]).model.scores:
                    raise ConfigError(f"{where}.attacks.{name}.model: {spec['model']!r} has no "
                                      "hole indicator to evade.")  # fmt: skip
                _require_validation_carve(ctx, f"{where}.attacks.{name}")
                ctx.request(spec["model"], ctx.held_out_name, ["hole_indicator"])
    defense = section["active_defense"]
    if defense["models"]:
        _require_validation_carve(ctx, f"{where}.active_defense")
    for name in defense["models"]:
        model = ctx.restored(name).model
        if model.log_joint is None or "hole_indicator" not in model.scores:
            raise ConfigError(
                f"{where}.active_defense.models: {name!r} is not a VAE with a hole indicator."
            )
        if getattr(model.latent, "name", "") != "gaussian":
            raise ConfigError(
                f"{where}.active_defense.models: {name!r} has a {model.latent.name} latent; "
                "latent HMC needs a Gaussian one."
            )
        # the hole threshold: the validation carve of the training split, never the test split
        ctx.request(name, ctx.held_out_name, ["hole_indicator"])
    needed = section["num_sources"] + section["num_inliers"]
    data = ctx.dataset(ctx.config.data.name)
    if data.images.shape[0] < needed:
        raise ConfigError(
            f"{where}: num_sources + num_inliers = {needed} test images, but the test split has "
            f"{data.images.shape[0]} (evaluate.test_limit included)."
        )


# -------------------------------------------------------------------------------------- run


def _identity(x):
    return x


def _score_arrays(restored, score_name: str, x: np.ndarray, key, batch_size: int) -> np.ndarray:
    """``[R, N]`` (R = 1 without runs) score of float inputs ``x`` (already preprocessed)."""
    fn = _pass_fn(restored.model, (score_name,), False, restored.num_runs)
    out = map_dataset(fn, restored.variables, jnp.asarray(x), _identity, key,
                      min(batch_size, len(x)))[score_name]  # fmt: skip
    return np.moveaxis(out, 0, 1) if restored.num_runs is not None else out[None]


def _attack(spec, victim, x, y, num_classes: int, key, chunk: int, ctx):
    """``(adversarial [M, ...], success [M] or [R, M], source index [M], target [M] or None,
    run axis?)`` of one attack on the sources ``x``."""
    logits = lambda xs: victim.model.logits(victim.variables, xs)  # noqa: E731
    kind = spec["attack"]
    if kind == "fgsm":
        loss = attack_lib.cross_entropy_loss(logits)

        def one(xs, ys):
            adv = attack_lib.fgsm(loss, xs, ys, epsilon=spec["epsilon"])
            return adv, jnp.argmax(logits(adv), -1) != ys

        adv, success = map_chunks(one, (x, y), chunk)
        return adv, success, np.arange(len(x)), None
    if kind in ("cw_l2", "jsma"):
        offsets = np.arange(1, num_classes)
        source = np.repeat(np.arange(len(x)), num_classes - 1)
        targets = (np.asarray(y)[source] + np.tile(offsets, len(x))) % num_classes
        xs, ys, ts = x[source], y[source], jnp.asarray(targets, jnp.int32)
        if kind == "cw_l2":

            def one(a, b, t):
                r = attack_lib.carlini_wagner_l2(
                    logits, a, b, targeted=True, targets=t, confidence=spec["confidence"],
                    initial_const=spec["initial_const"],
                    binary_search_steps=spec["binary_search_steps"],
                    max_iterations=spec["max_iterations"], learning_rate=spec["learning_rate"],
                )  # fmt: skip
                return r.adversarial, r.success
        else:

            def one(a, b, t):
                del b
                r = attack_lib.jsma(logits, a, t, theta=spec["theta"], gamma=spec["gamma"])
                return r.adversarial, r.success

        adv, success = map_chunks(one, (xs, ys, ts), chunk)
        return adv, success, source, targets
    if kind == "adaptive":
        target = ctx.restored(spec["model"])
        variables = _run_zero(target)
        model = target.model
        ce = attack_lib.cross_entropy_loss(logits)

        def loss_with_key(xs, ys, k):
            hole = model.score(variables, xs, ["hole_indicator"], key=k)["hole_indicator"]
            return ce(xs, ys) - spec["detector_weight"] * hole

        def one(xs, ys, k):
            loss = attack_lib.expectation_over_transformation(
                loss_with_key, spec["eot_samples"], key=k
            )
            adv = attack_lib.pgd(
                loss, xs, ys, key=jax.random.fold_in(k, 1), epsilon=spec["epsilon"],
                step_size=spec["epsilon"] / 10.0, num_steps=spec["num_steps"],
            )  # fmt: skip
            return adv, jnp.argmax(logits(adv), -1) != ys

        keys = jax.random.split(key, len(x))
        adv, success = map_chunks(lambda a, b, k: one(a, b, k[0]), (x, y, keys), chunk)
        return adv, success, np.arange(len(x)), None
    # the encoder attack, one per run of the attacked VAE
    target = ctx.restored(spec["model"])
    model = target.model

    def attack_run(variables, xs, k):
        return attack_lib.latent_attack(
            lambda a: model.encode(variables, a), xs, key=k, delta=spec["epsilon"],
            step_size=spec["epsilon"] / 10.0, num_steps=spec["num_steps"],
            divergence=model.latent.divergence,
        )  # fmt: skip

    if target.num_runs is None:
        adv = map_chunks(lambda xs: attack_run(target.variables, xs, key), (x,), chunk)
        adv = adv[None]
    else:
        per_run = over_runs(attack_run, in_axes=(0, None, None))
        adv = map_chunks(
            lambda xs: jnp.moveaxis(per_run(target.variables, xs, key), 0, 1), (x,), chunk
        )  # [n, R, ...]
        adv = np.moveaxis(adv, 1, 0)
    return adv, np.ones(adv.shape[:2], bool), np.arange(len(x)), None


def _run_zero(restored):
    """Run 0's variables of a model with stacked runs (the variables of one without)."""
    if restored.num_runs is None:
        return restored.variables
    return jax.tree.map(lambda a: a[0], restored.variables)


def _detection(s_in: np.ndarray, s_adv: np.ndarray, higher_is_ood: bool, num_runs):
    """Per run detection metrics of ``s_adv [R, M]`` against ``s_in [R, N]``, aggregated."""
    if s_adv.shape[1] == 0:
        return None
    per_run = jax.vmap(
        lambda a, b: metrics.detection_summary(a, b, higher_is_ood=higher_is_ood, positive="out")
    )(jnp.asarray(s_in), jnp.asarray(s_adv))
    per_run["mean_in"], per_run["mean_out"] = s_in.mean(1), s_adv.mean(1)
    return aggregate(per_run, num_runs)


def run(section, ctx) -> dict:
    in_name = ctx.config.data.name
    data = ctx.dataset(in_name)
    victim = ctx.restored(section["victim"])
    ns, ni = section["num_sources"], section["num_inliers"]
    images = np.asarray(data.images[: ns + ni])
    labels = data.labels[: ns + ni].astype(np.int32)
    x_all = np.asarray(victim.preprocess(jnp.asarray(images)))
    x_src, y_src, x_in = x_all[:ns], jnp.asarray(labels[:ns]), x_all[ns:]
    num_classes = int(victim.model.logits(victim.variables, jnp.asarray(x_src[:1])).shape[-1])
    key = jax.random.key(section["seed"])
    batch = ctx.batch_size
    clean_correct = np.asarray(
        jnp.argmax(victim.model.logits(victim.variables, jnp.asarray(x_src)), -1) == y_src
    )
    detectors = [(ref, *_detector(ref, ctx)) for ref in section["detectors"]]
    inlier_scores = {
        ref: _score_arrays(ctx.restored(m), s, x_in, key, batch) for ref, m, s, _ in detectors
    }
    results = {"victim": section["victim"], "num_sources": ns, "num_inliers": ni,
               "clean_accuracy_sources": float(clean_correct.mean()), "attacks": {}}  # fmt: skip
    adversarial_sets = {}
    for name, spec in section["attacks"].items():
        tic = time.perf_counter()
        n_src = min(spec["num_sources"] or ns, ns)
        adv, success, source, targets = _attack(
            spec, victim, jnp.asarray(x_src[:n_src]), y_src[:n_src], num_classes,
            jax.random.fold_in(key, 1), section["chunk_size"], ctx,
        )  # fmt: skip
        seconds = time.perf_counter() - tic
        entry = {"spec": dict(spec), "seconds": seconds, "detectors": {}, "sources": n_src}
        if spec["attack"] == "encoder":
            flat = adv.reshape(-1, *adv.shape[2:])
            pred = np.asarray(jnp.argmax(victim.model.logits(victim.variables,
                                                             jnp.asarray(flat)), -1))  # fmt: skip
            entry.update(attempts=int(adv.shape[1]), successes=int(adv.shape[1]),
                         success_rate=1.0, runs=int(adv.shape[0]),
                         victim_misclassified=float(np.mean(pred != np.tile(labels[:n_src],
                                                    adv.shape[0]))))  # fmt: skip
            adversarial_sets[name] = adv[0]
            for ref, model_name, score_name, score in detectors:
                if model_name != spec["model"]:
                    continue
                restored = ctx.restored(model_name)
                s_adv = _encoder_attack_scores(restored, score_name, adv, key, batch)
                entry["detectors"][ref] = _detection(
                    inlier_scores[ref], s_adv, score.higher_is_ood, restored.num_runs
                )
        else:
            ok = np.asarray(success, bool)
            if spec["attack"] == "adaptive":
                entry.update(_evasion(ctx, spec, adv, ok, key, batch))
            entry.update(attempts=int(ok.size), successes=int(ok.sum()),
                         success_rate=float(ok.mean()),
                         sources_with_a_success=int(len(np.unique(source[ok]))))  # fmt: skip
            adv_ok = adv[ok]
            adversarial_sets[name] = adv_ok
            for ref, model_name, score_name, score in detectors:
                restored = ctx.restored(model_name)
                s_adv = (_score_arrays(restored, score_name, adv_ok, key, batch) if len(adv_ok)
                         else np.zeros((restored.num_runs or 1, 0)))  # fmt: skip
                entry["detectors"][ref] = _detection(
                    inlier_scores[ref], s_adv, score.higher_is_ood, restored.num_runs
                )
        results["attacks"][name] = entry
    if section["active_defense"]["models"]:
        results["active_defense"] = _run_defense(
            section["active_defense"], ctx, x_in, adversarial_sets, key
        )
    return results


def _evasion(ctx, spec, adv, fooled, key, batch) -> dict:
    """How many fooling adaptive inputs also pass the hole test of run 0 of the VAE."""
    restored = ctx.restored(spec["model"])
    held_out = ctx.outputs(spec["model"], ctx.held_out_name)["hole_indicator"][0]
    tau = float(np.percentile(held_out, spec["percentile"]))
    if not fooled.any():
        return {"hole_threshold": tau, "evaded": 0, "evasion_rate": 0.0}
    hole = _score_arrays(restored, "hole_indicator", adv[fooled], key, batch)[0]
    evaded = int(np.sum(hole <= tau))
    return {"hole_threshold": tau, "evaded": evaded, "evasion_rate": evaded / fooled.size}


def _encoder_attack_scores(restored, score_name, adv, key, batch) -> np.ndarray:
    """Run r's score on run r's encoder-attacked inputs: ``[R, M]``."""
    if restored.num_runs is None:
        return _score_arrays(restored, score_name, adv[0], key, batch)
    fn = _pass_fn(restored.model, (score_name,), False, None)
    rows = []
    per_run = jax.jit(
        jax.vmap(lambda v, xs, k: fn(v, xs, k)[score_name], in_axes=(0, 0, None))
    )  # vmapped over the runs (their variables and their own adversarial inputs)
    for start in range(0, adv.shape[1], batch):
        rows.append(np.asarray(per_run(restored.variables, jnp.asarray(adv[:, start:start + batch]),
                                       jax.random.fold_in(key, start))))  # fmt: skip
    return np.concatenate(rows, axis=1)


def _constant_group(value: float) -> str:
    """Name of the constant-image group: ``constant_1`` for all white, ``constant_0.5``."""
    return f"constant_{value:g}"


def _run_defense(defense, ctx, x_in, adversarial_sets, key) -> dict:
    n = defense["num_defense_inputs"]
    groups = {"inliers": x_in[:n]}
    for out_name in defense["outliers"]:
        out = ctx.dataset(out_name)
        restored_any = ctx.restored(defense["models"][0])
        groups[f"outlier:{out_name}"] = np.asarray(
            restored_any.preprocess(jnp.asarray(np.asarray(out.images[:n])))
        )
    raw_shape = np.shape(ctx.dataset(ctx.config.data.name).images)[1:]  # before preprocessing
    for value in defense["constant_outliers"]:
        pixels = np.full((n, *raw_shape), round(255 * value), np.uint8)
        groups[f"outlier:{_constant_group(value)}"] = np.asarray(
            ctx.restored(defense["models"][0]).preprocess(jnp.asarray(pixels))
        )
    for name, adv in adversarial_sets.items():
        if len(adv):
            groups[f"attack:{name}"] = np.asarray(adv[:n])
    hmc = dict(defense["hmc"])
    results = {}
    for model_name in defense["models"]:
        restored = ctx.restored(model_name)
        held_out = ctx.outputs(model_name, ctx.held_out_name)["hole_indicator"]  # [R, Nval]
        thresholds = [
            fit_thresholds(h, split="validation", percentile=defense["percentile"],
                           gain=defense["gain_threshold"], signed=defense["signed"])
            for h in held_out
        ]  # fmt: skip
        quantities = _defense_over_runs(
            restored, hmc, _similarity(defense["ms_ssim"]), defense["batch_size"], key
        )
        per_group = {}
        for group, xs in groups.items():
            q = quantities(xs)  # {name: [R, M]}
            decisions = np.stack([
                np.asarray(decide(q["hole_indicator"][r], q["gain"][r], t))
                for r, t in enumerate(thresholds)
            ])  # fmt: skip
            shares = {d: (decisions == i).mean(1) for i, d in enumerate(DECISIONS)}
            per_run = {
                "ms_ssim_reconstruction": q["ms_ssim_reconstruction"].mean(1),
                "ms_ssim_hmc": q["ms_ssim_hmc"].mean(1),
                "gain": q["gain"].mean(1),
                "acceptance_rate": q["acceptance_rate"].mean(1),
                **{f"decided_{d}": v for d, v in shares.items()},
            }
            per_group[group] = aggregate(per_run, restored.num_runs) | {"inputs": int(len(xs))}
        results[model_name] = {
            "thresholds": [t.to_json() for t in thresholds],
            "hmc": hmc,
            "groups": per_group,
        }
    return results


def _similarity(options: dict) -> dict:
    return {
        "filter_size": options["filter_size"],
        "filter_sigma": options["filter_sigma"],
        "weights": ms_ssim_weights(options["num_scales"]),
    }


def _defense_over_runs(restored, hmc: dict, similarity: dict, batch_size: int, key):
    """``xs [M, ...] -> {name: [R, M]}``: Algorithm 2's quantities, runs vmapped, inputs in
    batches of ``batch_size`` (one compiled program per batch shape)."""
    model = restored.model

    def one(variables, xs, k):
        return defense_quantities(model, variables, xs, key=k, hmc=hmc, similarity=similarity)

    if restored.num_runs is None:
        fn = jax.jit(lambda v, xs, k: jax.tree.map(lambda a: a[None], one(v, xs, k)))
    else:
        fn = jax.jit(over_runs(one, in_axes=(0, None, None)))

    def quantities(xs):
        parts = []
        for start in range(0, len(xs), batch_size):
            chunk = jnp.asarray(xs[start : start + batch_size])
            out = fn(restored.variables, chunk, jax.random.fold_in(key, start))
            parts.append({k: np.asarray(v) for k, v in out.items() if k not in ("z", "z_hmc")})
        return {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}

    return quantities


# -------------------------------------------------------------------------------- markdown


def markdown(result: dict) -> str:
    lines = [
        f"## Adversarial detection: victim {result['victim']}",
        "",
        f"{result['num_sources']} source test images (clean accuracy "
        f"{100 * result['clean_accuracy_sources']:.1f} %), {result['num_inliers']} other test "
        "images as inliers; AUROC AUPR FPR80 (%), the successful adversarial inputs positive.",
        "",
        "| attack | successes / attempts | detector | AUROC | AUPR | FPR80 |",
        "|---|---|---|---|---|---|",
    ]
    notes = {}
    for name, entry in result["attacks"].items():
        for ref, r in entry["detectors"].items():
            if r is None:
                lines.append(f"| {name} | 0 / {entry['attempts']} | {ref} | - | - | - |")
                continue
            notes[ref] = r
            lines.append(
                f"| {name} | {entry['successes']} / {entry['attempts']} | {ref} | "
                f"{cell(r, 'auroc')} | {cell(r, 'aupr_out')} | {cell(r, 'fpr80')} |"
            )
    lines.append(runs_note(notes))
    for name, entry in result["attacks"].items():
        if "evaded" in entry:
            lines.append(
                f"\nAdaptive attack {name}: fooled the victim on {entry['successes']} of "
                f"{entry['attempts']} sources; {entry['evaded']} of them "
                f"({100 * entry['evasion_rate']:.1f} % of the sources) also pass the hole test "
                f"(hole indicator <= {entry['hole_threshold']:.2f}, run 0)."
            )
    for model_name, d in result.get("active_defense", {}).items():
        t = d["thresholds"][0]
        per_run = ", ".join(f"{x['hole']:.2f}" for x in d["thresholds"])
        lines += [
            "",
            f"### Active defense (Algorithm 2): {model_name}",
            "",
            f"Hole threshold: the {t['hole_percentile']:g}th percentile of the validation hole "
            f"indicator ({per_run} per run); "
            f"gain threshold {t['gain']:g} ({'signed' if t['signed'] else '|gain|'}); HMC "
            f"{d['hmc']}. Shares of each group decided inlier / outlier / attack (%), and mean "
            "MS-SSIM(x, dec(z)) without and with HMC and the gain.",
            "",
            "| inputs | n | inlier | outlier | attack | MS-SSIM | MS-SSIM HMC | gain |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for group, g in d["groups"].items():
            lines.append(
                f"| {group} | {g['inputs']} | {cell(g, 'decided_inlier')} | "
                f"{cell(g, 'decided_outlier')} | {cell(g, 'decided_attack')} | "
                f"{cell(g, 'ms_ssim_reconstruction', percent=False, digits=3)} | "
                f"{cell(g, 'ms_ssim_hmc', percent=False, digits=3)} | "
                f"{cell(g, 'gain', percent=False, digits=3)} |"
            )
    lines.append("")
    return "\n".join(lines)


register_evaluation(
    "adversarial_detection",
    plan,
    run,
    markdown=markdown,
    schema=SCHEMA,
    description="detector scores vs successful attacks; the active defense (dissertation Ch. 5)",
)

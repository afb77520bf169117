"""The ``attacks`` task: accuracy vs epsilon of classifiers under configured attacks, with plots.

For every model and attack, the first ``num_images`` test images (0 = all) go through one
jitted ``lax.map`` over chunks of ``chunk_size``; inside a chunk the epsilons are vmapped
(:func:`jaxrobust.attacks.fgsm_sweep` / :func:`~jaxrobust.attacks.pgd_sweep`), so there is no
Python loop over epsilons or images. Chunk c of every attack gets
``split(random.key(seed), num_chunks)[c]`` (PGD's random start), the same keys as the
robustness-curve experiment (``experiments/attacks/robustness_curve.py``). Accuracy under an
attack is an upper bound on robust accuracy.

Config::

    evaluate.attacks = {
        "models": ["cnn"], "num_images": 1000, "chunk_size": 250, "seed": 0,
        "epsilons": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
        "attacks": {
            "fgsm": {"attack": "fgsm"},
            "pgd40": {"attack": "pgd", "num_steps": 40, "step_size": 0.01},
        },
    }

Attack options: ``attack`` ("fgsm" or "pgd"), ``norm`` ("linf" or "l2"), ``loss``
("cross_entropy" or "margin", on the eval-mode logits), and for PGD ``num_steps``,
``step_size``, ``random_start`` (default true).

``space`` says where epsilon is measured: ``"model_input"`` (default): the preprocessed images
the model takes, clipped to ``domain`` (default [0, 1]; None for a normalised space without
clipping: the hybrid-models thesis's FGSM, one gradient of the normalised input, seed 000);
``"pixels"``: the images in [0, 1] before ``data.preprocess``'s normalisation (mean / std),
which is applied inside the attacked function, clipped to ``domain``. A model with
``num_runs`` (or a sweep setting, ``"<model>@alpha=10"``) is attacked run by run in one
program; the results are the mean over runs with ``accuracy_std`` and ``accuracy_runs``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust import attacks as attack_lib
from jaxrobust.config.schema import Field, validate_section
from jaxrobust.config.sections import check_domain, seed_field
from jaxrobust.errors import ConfigError
from jaxrobust.evaluate.task import register_evaluation
from jaxrobust.runs import over_runs

SPACES = ("model_input", "pixels")

ATTACK_SCHEMA = {
    "attack": Field(str, choices=("fgsm", "pgd")),
    "norm": Field(str, "linf", choices=("linf", "l2")),
    "loss": Field(str, "cross_entropy", choices=("cross_entropy", "margin")),
    "num_steps": Field(int, 40, minimum=0),
    "step_size": Field(float, 0.01, above=0.0),
    "random_start": Field(bool, True),
}


def _check_attacks(value, path: str) -> dict:
    if not value:
        raise ConfigError(f"{path} names no attack; add e.g. {{'fgsm': {{'attack': 'fgsm'}}}}.")
    return {
        name: validate_section(spec, ATTACK_SCHEMA, f"{path}.{name}")
        for name, spec in value.items()
    }


SCHEMA = {
    "models": Field(list, items=Field(str), help="classifiers to attack"),
    "num_images": Field(int, 1000, minimum=0, help="first N test images (0 = all)"),
    "chunk_size": Field(int, 250, minimum=1),
    "seed": seed_field(),
    "epsilons": Field(
        list, [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3], items=Field(float, minimum=0.0)
    ),
    "domain": Field((list, type(None)), [0.0, 1.0], items=Field(float), check=check_domain),
    "space": Field(str, "model_input", choices=SPACES, help="where epsilon is measured"),
    "attacks": Field(dict, check=_check_attacks),
}


def plan(section, ctx) -> None:
    for name in section["models"]:
        restored = ctx.restored(name)
        if restored.model.logits is None:
            raise ConfigError(
                f"evaluate.attacks: model {name!r} ({restored.model.kind}) is not a classifier."
            )
        if restored.is_posterior:
            raise ConfigError(
                f"evaluate.attacks: model {name!r} is a posterior stack; attack a point model "
                "(its runs are attacked one by one)."
            )


def make_attack_evaluator(logits_fn, spec: dict, epsilons, chunk_size: int, domain):
    """Jitted ``(variables, x [N], y [N], key) -> correct [E, N]`` for one attack ``spec``."""
    epsilons = jnp.asarray(epsilons, jnp.float32)
    domain = None if domain is None else tuple(domain)

    def chunk(variables, x, y, key):
        logits = lambda z: logits_fn(variables, z)  # noqa: E731
        make_loss = (
            attack_lib.cross_entropy_loss
            if spec["loss"] == "cross_entropy"
            else attack_lib.margin_loss
        )
        loss_fn = make_loss(logits)
        if spec["attack"] == "fgsm":
            x_adv = attack_lib.fgsm_sweep(loss_fn, x, y, epsilons, domain=domain)
        else:
            x_adv = attack_lib.pgd_sweep(
                loss_fn,
                x,
                y,
                epsilons,
                key=key,
                step_size=spec["step_size"],
                num_steps=spec["num_steps"],
                norm=spec["norm"],
                random_start=spec["random_start"],
                domain=domain,
            )
        return jnp.argmax(jax.vmap(logits)(x_adv), -1) == y[None]  # [E, n]

    @jax.jit
    def evaluate(variables, x, y, key):
        n = x.shape[0]
        num_chunks = n // chunk_size
        xs = x.reshape(num_chunks, chunk_size, *x.shape[1:])
        ys = y.reshape(num_chunks, chunk_size)
        keys = jax.random.split(key, num_chunks)
        correct = jax.lax.map(lambda a: chunk(variables, *a), (xs, ys, keys))
        return jnp.moveaxis(correct, 0, 1).reshape(epsilons.shape[0], n)  # [E, N]

    return evaluate


def run(section, ctx) -> dict:
    from jaxrobust.metrics import plots

    data = ctx.dataset(ctx.config.data.name)
    num = section["num_images"] or int(data.images.shape[0])
    num = min(num, int(data.images.shape[0]))
    chunk_size = min(section["chunk_size"], num)
    if num % chunk_size:
        raise ConfigError(
            f"evaluate.attacks.num_images ({num}) must be a multiple of chunk_size ({chunk_size})."
        )
    y = jnp.asarray(data.labels[:num].astype(np.int32))
    key = jax.random.key(section["seed"])
    results, compiled_cache = {}, {}
    for name in section["models"]:
        restored = ctx.restored(name)
        preprocess, logits_fn = _attacked_space(restored, section["space"])
        x = jnp.asarray(preprocess(data.images[:num]))
        entry = {
            "epsilons": list(section["epsilons"]),
            "num_images": num,
            "accuracy": {},
            "attacks": {},
        }
        entry["epoch"], entry["seconds"], entry["compile_seconds"] = restored.epoch, {}, {}
        for attack_name, spec in section["attacks"].items():
            for eps in section["epsilons"]:
                if spec["norm"] == "linf" and eps > 1.0 and section["domain"] is not None:
                    raise ConfigError(
                        f"evaluate.attacks.epsilons: L-inf epsilon {eps} > 1 covers the whole "
                        "domain."
                    )
            # One compiled evaluator per (model, runs, attack): the settings of a sweep share
            # their whole's model, so they compile once.
            cache_key = (id(restored.model), restored.num_runs, attack_name)
            tic = time.perf_counter()
            if cache_key not in compiled_cache:
                evaluator = make_attack_evaluator(
                    logits_fn, spec, section["epsilons"], chunk_size, section["domain"]
                )
                if restored.num_runs is not None:  # [R, E, N]: every run, one program
                    evaluator = jax.jit(over_runs(evaluator, in_axes=(0, None, None, None)))
                compiled_cache[cache_key] = evaluator.lower(restored.variables, x, y, key).compile()
            compiled = compiled_cache[cache_key]
            entry["compile_seconds"][attack_name] = time.perf_counter() - tic
            tic = time.perf_counter()
            correct = np.asarray(jax.block_until_ready(compiled(restored.variables, x, y, key)))
            entry["seconds"][attack_name] = time.perf_counter() - tic
            accuracy = correct.astype(np.float64).mean(-1)  # [E] or [R, E]
            if restored.num_runs is None:
                entry["accuracy"][attack_name] = accuracy.tolist()
            else:
                entry["accuracy"][attack_name] = accuracy.mean(0).tolist()
                entry.setdefault("accuracy_std", {})[attack_name] = (
                    accuracy.std(0, ddof=1) if len(accuracy) > 1 else 0 * accuracy[0]
                ).tolist()
                entry.setdefault("accuracy_runs", {})[attack_name] = accuracy.tolist()
            entry["attacks"][attack_name] = dict(spec)
        entry["space"], entry["num_runs"] = section["space"], restored.num_runs
        results[name] = entry
        plots.plot_robustness_curves(
            {f"{name} {a}": (entry["epsilons"], acc) for a, acc in entry["accuracy"].items()},
            f"{name}: accuracy under attack, first {num} test images",
            ctx.plot_dir / f"robustness_{name}.png",
        )
    return results


def _attacked_space(restored, space: str):
    """``(preprocess, logits_fn)`` of the space the attack works in (module docstring)."""
    preprocess = restored.preprocess
    if space == "model_input" or preprocess.mean is None:
        return preprocess, restored.model.logits
    mean = jnp.asarray(preprocess.mean, jnp.float32)
    std = jnp.asarray(preprocess.std, jnp.float32)

    def logits_fn(variables, pixels):
        return restored.model.logits(variables, (pixels - mean) / std)

    return preprocess._replace(mean=None, std=None), logits_fn


def markdown(results: dict) -> str:
    lines = []
    for name, r in results.items():
        attack_names = list(r["accuracy"])
        lines += [
            f"## Attacks: {name} (first {r['num_images']} test images)",
            "",
            "Accuracy (%) under each attack (an upper bound on robust accuracy"
            + (f"; mean (std) over {r['num_runs']} runs" if r.get("num_runs") else "")
            + f"; epsilon in {r.get('space', 'model_input').replace('_', ' ')} space): "
            + "; ".join(f"{a}: {_describe(r['attacks'][a])}" for a in attack_names)
            + ".",
            "",
            "| epsilon | " + " | ".join(attack_names) + " |",
            "|---" * (len(attack_names) + 1) + "|",
        ]
        stds = r.get("accuracy_std", {})
        for i, eps in enumerate(r["epsilons"]):
            cells = [
                f"{100 * r['accuracy'][a][i]:.1f}"
                + (f" ({100 * stds[a][i]:.1f})" if a in stds else "")
                for a in attack_names
            ]
            lines.append(f"| {eps:g} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _describe(spec: dict) -> str:
    if spec["attack"] == "fgsm":
        return f"FGSM {spec['norm']} on {spec['loss']}"
    start = "random start" if spec["random_start"] else "no random start"
    return (
        f"PGD-{spec['num_steps']} {spec['norm']} step {spec['step_size']:g}, {start}, "
        f"on {spec['loss']}"
    )


register_evaluation(
    "attacks",
    plan,
    run,
    markdown=markdown,
    schema=SCHEMA,
    description="accuracy vs epsilon under FGSM / PGD (L-inf, L2) attacks",
)

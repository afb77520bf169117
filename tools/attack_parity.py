"""Parity of jaxrobust's attacks with independent implementations on one trained MNIST CNN.

The CNN is ``experiments/attacks/mnist_cnn.py`` (trained into ``--workdir`` when missing); the
inputs are the first ``--num-images`` MNIST test images in [0, 1]. Every attack runs on the same
JAX ``logits_fn`` in both libraries (adapters in :mod:`jaxrobust.attacks.references`):

- FGSM and PGD (L-inf and L2, no random start = BIM) vs cleverhans 4.0.0's JAX attacks with the
  true labels: the outputs must be identical (max |difference| and the fraction of exactly equal
  pixels are reported).
- DeepFool, CW-L2 and Boundary (untargeted) vs foolbox 3.3.4; JSMA (targeted, theta = 1,
  gamma = 0.1, the same random targets) vs the Adversarial Robustness Toolbox 1.20.1: success
  rate (points) and the median perturbation norm over each side's successes (relative
  difference), the issue's tolerances being 2 points and 10 %.
- Boundary runs from the same starting points on both sides (foolbox's default initialisation,
  ``LinearSearchBlendedUniformNoiseAttack``), so that the comparison is of the boundary walk.

    python tools/attack_parity.py --output experiments/attacks/parity.md
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from attack_models import ROOT, trained_cnn

from jaxrobust import attacks
from jaxrobust.attacks.references import art_classifier, cleverhans_attacks, foolbox_model
from jaxrobust.devices import describe_devices


def chunked(fn, *arrays, size: int):
    """``fn`` over chunks of ``size`` examples (a memory bound for the JSMA pair arrays)."""
    parts = [fn(*(a[i : i + size] for a in arrays)) for i in range(0, len(arrays[0]), size)]
    return jax.tree.map(lambda *p: np.concatenate([np.asarray(q) for q in p]), *parts)


def l2(a, b) -> np.ndarray:
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return np.linalg.norm(diff.reshape(len(diff), -1), axis=1)


def l0(a, b) -> np.ndarray:
    diff = np.asarray(a) != np.asarray(b)
    return diff.reshape(len(diff), -1).sum(axis=1)


def summary(success: np.ndarray, norms: np.ndarray) -> dict:
    success = np.asarray(success, bool)
    median = float(np.median(norms[success])) if success.any() else float("nan")
    return {"success_pct": 100.0 * float(success.mean()), "median_norm": median}


def compare(ours: dict, ref: dict) -> dict:
    return {
        "ours": ours,
        "reference": ref,
        "success_diff_points": ours["success_pct"] - ref["success_pct"],
        "median_norm_rel_diff": ours["median_norm"] / ref["median_norm"] - 1.0,
    }


def identical(ours, ref) -> dict:
    ours, ref = np.asarray(ours), np.asarray(ref)
    return {
        "max_abs_diff": float(np.max(np.abs(ours - ref))),
        "fraction_equal": float(np.mean(ours == ref)),
    }


def gradient_parity(logits_fn, x, y) -> dict:
    fgm, ch_pgd = cleverhans_attacks()
    loss = attacks.cross_entropy_loss(logits_fn)
    onehot = jax.nn.one_hot(y, 10)
    out = {}
    for eps in (0.1, 0.3):
        ours = jax.jit(lambda x, y, e=eps: attacks.fgsm(loss, x, y, epsilon=e))(x, y)
        ref = jax.jit(lambda x, o, e=eps: fgm(logits_fn, x, e, np.inf, 0.0, 1.0, o))(x, onehot)
        out[f"fgsm_linf_eps{eps}"] = identical(ours, ref)
    # cleverhans 4.0.0's JAX FGM does not scale its L2 step by eps (it steps grad / ||grad||,
    # length 1, whatever eps_iter is): the L2 comparison uses step 1.0 on our side.
    settings = {"linf": (0.3, 0.01, 40, np.inf), "l2": (3.0, 1.0, 10, 2)}
    for norm, (eps, step, steps, ch_norm) in settings.items():
        ours = jax.jit(
            lambda x, y, n=norm, e=eps, s=step, k=steps: attacks.pgd(
                loss, x, y, epsilon=e, step_size=s, num_steps=k, norm=n, random_start=False
            )
        )(x, y)
        ref = jax.jit(
            lambda x, o, e=eps, s=step, k=steps, n=ch_norm: ch_pgd(
                logits_fn, x, e, s, k, n, 0.0, 1.0, o, rand_init=False
            )
        )(x, onehot)
        out[f"pgd_{norm}_eps{eps}_step{step}_x{steps}"] = identical(ours, ref)
    return out


def foolbox_parity(logits_fn, x, y, args) -> dict:
    import foolbox as fb

    fmodel = foolbox_model(logits_fn)
    out = {}

    df = fb.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02, loss="logits")
    _, ref_adv, _ = df(fmodel, x, y, epsilons=None)
    ref_ok = np.asarray(jnp.argmax(logits_fn(ref_adv), -1) != y)
    ours = jax.jit(
        lambda x: attacks.deepfool(
            logits_fn, x, num_candidates=10, overshoot=0.02, max_iterations=50
        )
    )(x)
    ours_ok = np.asarray(jnp.argmax(logits_fn(ours.adversarial), -1) != y)
    out["deepfool_l2"] = compare(
        summary(ours_ok, l2(ours.adversarial, x)), summary(ref_ok, l2(ref_adv, x))
    )

    cw_kwargs = {"binary_search_steps": 5, "steps": 100, "stepsize": 1e-2, "confidence": 0.0}
    cw = fb.attacks.L2CarliniWagnerAttack(initial_const=1e-3, abort_early=True, **cw_kwargs)
    _, ref_adv, _ = cw(fmodel, x, y, epsilons=None)
    # foolbox returns an all-zero image where no adversarial was found (and counts it as a
    # success when the blank image happens to be misclassified): those are failures.
    found = np.asarray(jnp.any(ref_adv.reshape(len(x), -1) != 0, axis=1))
    ref_ok = found & np.asarray(jnp.argmax(logits_fn(ref_adv), -1) != y)
    ours = jax.jit(
        lambda x, y: attacks.carlini_wagner_l2(
            logits_fn,
            x,
            y,
            confidence=0.0,
            initial_const=1e-3,
            binary_search_steps=5,
            max_iterations=100,
            learning_rate=1e-2,
            abort_early=True,
        )
    )(x, y)
    out["cw_l2"] = compare(
        summary(ours.success, l2(ours.adversarial, x)), summary(ref_ok, l2(ref_adv, x))
    )

    n = args.boundary_images
    xb, yb = x[:n], y[:n]
    init = fb.attacks.LinearSearchBlendedUniformNoiseAttack(steps=50)
    starts = init.run(fmodel, xb, fb.criteria.Misclassification(yb))
    boundary = fb.attacks.BoundaryAttack(steps=args.boundary_steps)
    _, ref_adv, _ = boundary(fmodel, xb, yb, starting_points=starts, epsilons=None)
    ref_ok = np.asarray(jnp.argmax(logits_fn(ref_adv), -1) != yb)
    ours = jax.jit(
        functools.partial(attacks.boundary_attack, logits_fn, num_steps=args.boundary_steps)
    )(xb, yb, key=jax.random.PRNGKey(1), starting_points=starts)
    out["boundary_l2"] = compare(
        summary(ours.success, l2(ours.adversarial, xb)), summary(ref_ok, l2(ref_adv, xb))
    )
    out["boundary_l2"]["start_median_norm"] = float(np.median(l2(starts, xb)))
    return out


def jsma_parity(logits_fn, x, y, args) -> dict:
    from art.attacks.evasion import SaliencyMapMethod

    n = args.jsma_images
    x, y = x[:n], y[:n]
    rng = np.random.default_rng(0)
    targets = (np.asarray(y) + rng.integers(1, 10, size=n)) % 10  # a random class != y
    classifier = art_classifier(logits_fn, tuple(x.shape[1:]), 10)
    art_jsma = SaliencyMapMethod(classifier, theta=1.0, gamma=0.1, batch_size=100, verbose=False)
    ref_adv = art_jsma.generate(np.asarray(x), y=targets)
    ref_ok = np.asarray(jnp.argmax(logits_fn(jnp.asarray(ref_adv)), -1)) == targets
    out = {}
    for saliency in ("target", "pairwise"):
        run = jax.jit(
            lambda x, t, s=saliency: attacks.jsma(logits_fn, x, t, theta=1.0, gamma=0.1, saliency=s)
        )
        ours = chunked(run, x, jnp.asarray(targets), size=50)
        for norm, fn in (("l0", l0), ("l2", l2)):
            out[f"jsma_{saliency}_{norm}"] = compare(
                summary(ours.success, fn(ours.adversarial, x)), summary(ref_ok, fn(ref_adv, x))
            )
    return out


def markdown(results: dict) -> str:
    lines = [
        f"Device: {results['device']}. CNN: `experiments/attacks/mnist_cnn.py` (test accuracy "
        f"{results['clean_accuracy_pct']:.2f} % on the {results['num_images']} images).",
        "",
        "FGSM / PGD vs cleverhans 4.0.0 (JAX), true labels, no random start:",
        "",
        "| attack | max abs difference | pixels exactly equal |",
        "|---|---:|---:|",
    ]
    for name, row in results["cleverhans"].items():
        lines.append(
            f"| {name} | {row['max_abs_diff']:.2e} | {100 * row['fraction_equal']:.4f} % |"
        )
    lines += [
        "",
        "Minimum-norm and saliency attacks (success rate; median norm over successes):",
        "",
        "| attack | reference | images | ours success | ref success | diff (points) | "
        "ours median | ref median | diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results["minimum_norm"].items():
        ref = "ART 1.20.1" if name.startswith("jsma") else "foolbox 3.3.4"
        lines.append(
            f"| {name} | {ref} | {row['images']} | {row['ours']['success_pct']:.1f} % | "
            f"{row['reference']['success_pct']:.1f} % | {row['success_diff_points']:+.1f} | "
            f"{row['ours']['median_norm']:.4g} | {row['reference']['median_norm']:.4g} | "
            f"{100 * row['median_norm_rel_diff']:+.1f} % |"
        )
    settings = json.dumps(results["settings"])
    lines += ["", f"Settings: {settings}. Wall time {results['wall_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "attacks" / "mnist_cnn"))
    parser.add_argument("--num-images", type=int, default=500)
    parser.add_argument("--jsma-images", type=int, default=200)
    parser.add_argument("--boundary-images", type=int, default=100)
    parser.add_argument("--boundary-steps", type=int, default=5000)
    parser.add_argument("--output", default=str(ROOT / "experiments" / "attacks" / "parity.md"))
    args = parser.parse_args()

    start = time.time()
    logits_fn, _, x, y = trained_cnn(args.workdir, args.num_images)
    accuracy = float(jnp.mean(jnp.argmax(logits_fn(x), -1) == y))
    results = {
        "device": describe_devices(),
        "num_images": args.num_images,
        "clean_accuracy_pct": 100 * accuracy,
        "settings": {
            "jsma_images": args.jsma_images,
            "boundary_images": args.boundary_images,
            "boundary_steps": args.boundary_steps,
        },
    }
    print("cleverhans ...", flush=True)
    results["cleverhans"] = gradient_parity(logits_fn, x, y)
    print("foolbox ...", flush=True)
    minimum_norm = foolbox_parity(logits_fn, x, y, args)
    print("ART ...", flush=True)
    minimum_norm.update(jsma_parity(logits_fn, x, y, args))
    for name, row in minimum_norm.items():
        row["images"] = {"boundary": args.boundary_images, "jsma": args.jsma_images}.get(
            name.split("_")[0], args.num_images
        )
    results["minimum_norm"] = minimum_norm
    results["wall_s"] = time.time() - start

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    output.write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()

"""Robustness curve on MNIST: accuracy vs L-inf epsilon under FGSM and PGD-40.

Two models of the same SmallCNN: the standard one (``mnist_cnn.py``) and the one adversarially
trained with PGD (``mnist_cnn_pgd.py``, Madry et al. 2018). The attacks are the ``attacks``
evaluation task of their configs (``evaluate.attacks``), run by ``jaxrobust evaluate``: each
model is attacked on the first 1000 MNIST test images at epsilon in {0, 0.05, ..., 0.3}
(pixels in [0, 1]):

- FGSM (Goodfellow et al. 2015): one signed-gradient step of size eps, no random start;
- PGD-40 (Madry et al. 2018): 40 steps of 0.01 (L-inf, signed gradient), random start uniform
  in the ball, one restart (no restarts beyond the first run), last iterate;

both on the cross-entropy of the eval-mode logits, clipped to [0, 1] (see
:mod:`jaxrobust.evaluate.robustness`). This script trains a missing model, runs
``jaxrobust.evaluate.evaluate`` on both workdirs and combines their ``results.json`` into
``robustness_curve.json``, ``robustness_curve.md`` and ``figures/robustness_curve.png`` under
``--output-dir``. The same numbers come from ``jaxrobust evaluate --workdir W`` per model.

    python experiments/attacks/robustness_curve.py --train \\
        --standard-workdir runs/attacks/mnist_cnn --adversarial-workdir runs/attacks/mnist_cnn_pgd
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jaxrobust.config import load_config
from jaxrobust.evaluate import evaluate
from jaxrobust.train import checkpoint_dir, train_and_evaluate
from jaxrobust.train.checkpoint import ModelCheckpoints
from jaxrobust.workdir import atomic_path, read_metrics

HERE = Path(__file__).parent
PGD_STEPS = 40
PGD_STEP_SIZE = 0.01
MODEL = "cnn"
MODELS = {
    "standard": HERE / "mnist_cnn.py",
    "adversarial": HERE / "mnist_cnn_pgd.py",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--standard-workdir", default="runs/attacks/mnist_cnn")
    p.add_argument("--adversarial-workdir", default="runs/attacks/mnist_cnn_pgd")
    p.add_argument("--train", action="store_true", help="train a model whose workdir is missing")
    p.add_argument("--output-dir", default=str(HERE))
    return p.parse_args(argv)


def trained_epochs(workdir: Path) -> int:
    directory = checkpoint_dir(workdir, MODEL)
    if not directory.is_dir():
        return 0
    checkpoints = ModelCheckpoints(directory)
    try:
        return checkpoints.latest_epoch() or 0
    finally:
        checkpoints.close()


def ensure_trained(config, workdir: Path, train: bool) -> None:
    epochs = trained_epochs(workdir)
    if epochs >= config.models[MODEL].training.num_epochs:
        return
    if not train:
        raise SystemExit(
            f"{workdir} has {epochs} of {config.models[MODEL].training.num_epochs} epochs of model "
            f"{MODEL!r}; pass --train to train (or resume) it."
        )
    train_and_evaluate(config, workdir)


def training_summary(config, workdir: Path) -> dict:
    rows = read_metrics(workdir)  # tolerates the partial last line a kill leaves
    rows = [r for r in rows if r.get("model") == MODEL]
    cfg = config.models[MODEL].training
    adv = cfg.get("adversarial_training")
    return {
        "epochs": cfg.num_epochs,
        "batch_size": cfg.batch_size,
        "optimizer": cfg.optimizer.to_dict(),
        "adversarial_training": None if adv is None else adv.to_dict(),
        "train_seconds": sum(r["epoch_seconds"] for r in rows),
        "compile_seconds": sum(r.get("compile_seconds", 0.0) for r in rows),
        "final_clean_val_accuracy": rows[-1]["val/accuracy"] if rows else None,
    }


def budget_text(summary: dict) -> str:
    adv = summary["adversarial_training"]
    text = f"{summary['epochs']} epochs, batch {summary['batch_size']}, Adam 1e-3"
    if adv:
        text += (
            f", PGD-{adv['num_steps']} (eps {adv['epsilon']}, step {adv['step_size']:.3g}, random "
            f"start) training, eps ramped over the first {adv.get('epsilon_ramp_steps', 0)} steps"
        )
    return text + f"; {summary['train_seconds'] / 60:.1f} min of training epochs"


def write_outputs(result: dict, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "robustness_curve.json").write_text(json.dumps(result, indent=2) + "\n")
    acc = result["accuracy"]
    lines = [
        "# Robustness curve: MNIST SmallCNN, standard vs PGD adversarial training",
        "",
        f"Accuracy (%) on the first {result['num_images']} MNIST test images under L-inf "
        "attacks on the cross-entropy (pixels in [0, 1]): FGSM (one step of eps) and PGD-40 "
        f"(40 steps of {PGD_STEP_SIZE}, random start uniform in the ball, 1 restart). "
        f"Device: {result['device']}. Written by `experiments/attacks/robustness_curve.py` "
        "from the `attacks` evaluation task of the models' configs (`jaxrobust evaluate`). "
        "Accuracy under an attack is an upper bound on robust accuracy: stronger attacks (more "
        "steps, restarts, other losses) can only lower it.",
        "",
        "| epsilon | standard FGSM | standard PGD-40 | adversarial FGSM | adversarial PGD-40 |",
        "|---|---|---|---|---|",
    ]
    for i, eps in enumerate(result["epsilons"]):
        cells = [
            f"{100 * acc[m][a][i]:.1f}"
            for m in ("standard", "adversarial")
            for a in ("fgsm", "pgd")
        ]
        lines.append(f"| {eps:g} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| model | checkpoint | training budget | clean val acc "
        "| FGSM + PGD-40 wall time, all eps |",
    ]
    lines.append("|---|---|---|---|---|")
    for m in ("standard", "adversarial"):
        info = result["models"][m]
        t = info["attack_seconds"]
        lines.append(
            f"| {m} (`{info['config']}`) | epoch {info['epoch']} ({info['checkpoint']}) | "
            f"{budget_text(info['training'])} | "
            f"{100 * info['training']['final_clean_val_accuracy']:.2f}% "
            f"(5k validation) | {t:.0f} s (+ {info['attack_compile_seconds']:.0f} s compile) |"
        )
    lines += ["", f"Total wall time of the evaluation: {result['total_seconds']:.0f} s.", ""]
    (output_dir / "robustness_curve.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    colors = {"standard": "tab:blue", "adversarial": "tab:orange"}
    styles = {"fgsm": ("--", "o", "FGSM"), "pgd": ("-", "s", f"PGD-{PGD_STEPS}")}
    for m in ("standard", "adversarial"):
        for a, (ls, marker, label) in styles.items():
            ax.plot(
                result["epsilons"],
                100 * np.asarray(acc[m][a]),
                ls,
                marker=marker,
                color=colors[m],
                label=f"{m} CNN, {label}",
            )
    ax.set_xlabel("L-inf epsilon")
    ax.set_ylabel(f"accuracy (%), first {result['num_images']} MNIST test images")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("MNIST SmallCNN: standard vs PGD adversarial training", fontsize=9)
    fig.tight_layout()
    (output_dir / "figures").mkdir(exist_ok=True)
    with atomic_path(output_dir / "figures" / "robustness_curve.png") as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    workdirs = {
        "standard": Path(args.standard_workdir),
        "adversarial": Path(args.adversarial_workdir),
    }
    configs = {m: load_config(path) for m, path in MODELS.items()}
    for m in MODELS:
        ensure_trained(configs[m], workdirs[m], args.train)
    result = {"accuracy": {}, "models": {}}
    for m in tqdm(MODELS, desc="attack models", unit="model"):
        config = configs[m]
        section = config.evaluate.attacks
        evaluated = evaluate(workdirs[m], config)
        attacked = evaluated["attacks"][MODEL]
        result.update(
            {
                "epsilons": attacked["epsilons"],
                "num_images": attacked["num_images"],
                "attacks": {
                    "fgsm": "one step of size eps along sign(grad CE), no random start, clipped "
                    "to [0, 1]",
                    "pgd": f"{section.attacks.pgd.num_steps} steps of "
                    f"{section.attacks.pgd.step_size} along sign(grad CE), random start "
                    "U(-eps, eps), projection onto the L-inf ball and [0, 1], last iterate, "
                    "1 restart",
                },
                "device": evaluated["meta"]["device"],
                "seed": section.seed,
            }
        )
        result["accuracy"][m] = {a: attacked["accuracy"][a] for a in ("fgsm", "pgd")}
        result["models"][m] = {
            "config": str(MODELS[m].relative_to(HERE.parent.parent)),
            "workdir": str(workdirs[m]),
            "checkpoint": config.evaluate.checkpoint,
            "epoch": attacked["epoch"],
            "attack_seconds": sum(attacked["seconds"].values()),
            "attack_compile_seconds": sum(attacked["compile_seconds"].values()),
            "training": training_summary(config, workdirs[m]),
        }
    result["total_seconds"] = time.perf_counter() - start
    write_outputs(result, Path(args.output_dir))
    return result


if __name__ == "__main__":
    out = main()
    print(Path(parse_args().output_dir) / "robustness_curve.md")
    print(json.dumps(out["accuracy"], indent=1))

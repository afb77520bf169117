"""Figures 5.1 and 5.3 of the dissertation (Ch. 5) from the trained unified-detection cells.

- Figure 5.1: box plots of the three per-term stds (of log p(x|z), log q(z|x), log p(z) over the
  K = 100 samples z ~ q(z|x)) of the classical VAE trained on Fashion-MNIST, on its test images
  (in) and on MNIST test images (out).
- Figure 5.3: histograms of the IWAE log p(x) of the classical VAE trained on MNIST: MNIST test
  images against Gaussian-corrupted ones (x + N(0, 0.3^2), clipped; the document does not say
  which corruption, digest open point) and against FGSM (epsilon 0.3) adversarial inputs of the
  victim CNN.

Run 0 of each model, the first ``--images`` test images (1,000)::

    python experiments/unified_detection/figures.py --workdir runs/unified_detection
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxrobust as jr

HERE = Path(__file__).resolve().parent
NOISE_STD, FGSM_EPSILON = 0.3, 0.3


def _run_zero(variables, workdir: Path, name: str):
    config = json.loads((workdir / "config.json").read_text())
    runs = config["models"][name]["training"].get("num_runs")
    return jax.tree.map(lambda a: a[0], variables) if runs else variables


def _scores(model, variables, x, names, batch: int = 250) -> dict[str, np.ndarray]:
    fn = jax.jit(lambda v, xs, k: model.score(v, xs, names, key=k))
    parts = [fn(variables, x[i : i + batch], jax.random.key(i)) for i in range(0, len(x), batch)]
    return {n: np.concatenate([np.asarray(p[n]) for p in parts]) for n in names}


def _load(workdir: Path, name: str, dataset: str, num: int):
    model, preprocess, variables, _ = jr.evaluate.restore_model(workdir, name, "last")
    images, labels = jr.data.load(dataset, "test")
    x = preprocess(jnp.asarray(images[:num]))
    return model, _run_zero(variables, workdir, name), x, labels[:num], preprocess


def figure_5_1(workdir: Path, num: int, out: Path) -> None:
    import matplotlib.pyplot as plt

    names = ["hole_indicator", "std_log_q", "std_log_prior"]
    model, variables, x_in, _, preprocess = _load(workdir / "fashion_mnist", "vae",
                                                  "fashion_mnist", num)  # fmt: skip
    x_out = preprocess(jnp.asarray(jr.data.load("mnist", "test")[0][:num]))
    s_in, s_out = _scores(model, variables, x_in, names), _scores(model, variables, x_out, names)
    titles = ["std log p(x|z)", "std log q(z|x)", "std log p(z)"]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    for ax, name, title in zip(axes, names, titles, strict=True):
        box = ax.boxplot([s_in[name], s_out[name]], patch_artist=True, showfliers=False)
        for patch, colour in zip(box["boxes"], ("tab:blue", "tab:orange"), strict=True):
            patch.set_facecolor(colour)
        ax.set_xticks([1, 2], ["FMNIST (in)", "MNIST (out)"])
        ax.set_title(title)
    fig.suptitle(f"Classical VAE trained on FMNIST, K = 100 samples, {num} test images per set")
    fig.tight_layout()
    fig.savefig(out / "figure5_1_per_term_stds.png", dpi=120)
    plt.close(fig)
    print(f"wrote {out / 'figure5_1_per_term_stds.png'}")


def figure_5_3(workdir: Path, num: int, out: Path) -> None:
    import matplotlib.pyplot as plt

    model, variables, x, labels, _ = _load(workdir / "mnist", "vae", "mnist", num)
    victim, _, victim_variables, _ = jr.evaluate.restore_model(workdir / "mnist", "cnn", "last")
    noise = jax.random.normal(jax.random.key(5), x.shape) * NOISE_STD
    corrupted = jnp.clip(x + noise, 0.0, 1.0)
    loss = jr.attacks.cross_entropy_loss(lambda z: victim.logits(victim_variables, z))
    adversarial = jr.attacks.fgsm(loss, x, jnp.asarray(labels.astype(np.int32)),
                                  epsilon=FGSM_EPSILON)  # fmt: skip
    ll = {label: _scores(model, variables, xs, ["iwae"])["iwae"]
          for label, xs in (("MNIST", x), (f"MNIST + N(0, {NOISE_STD}^2)", corrupted),
                            (f"FGSM {FGSM_EPSILON}", adversarial))}  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    clean = ll["MNIST"]
    for ax, other in zip(axes, list(ll)[1:], strict=True):
        bins = np.linspace(min(clean.min(), ll[other].min()), max(clean.max(), ll[other].max()), 60)
        ax.hist(clean, bins=bins, alpha=0.6, label="MNIST test")
        ax.hist(ll[other], bins=bins, alpha=0.6, label=other)
        ax.set_xlabel("IWAE log p(x) (nats)")
        ax.legend()
    fig.suptitle(f"Classical VAE trained on MNIST, {num} test images")
    fig.tight_layout()
    fig.savefig(out / "figure5_3_ll_histograms.png", dpi=120)
    plt.close(fig)
    print(f"wrote {out / 'figure5_3_ll_histograms.png'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/unified_detection")
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args(argv)
    out = HERE / "figures"
    out.mkdir(exist_ok=True)
    workdir = Path(args.workdir)
    if (workdir / "fashion_mnist" / "checkpoints").is_dir():
        figure_5_1(workdir, args.images, out)
    if (workdir / "mnist" / "checkpoints").is_dir():
        figure_5_3(workdir, args.images, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

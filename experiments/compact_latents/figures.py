"""Figures 4.1-4.4 of the dissertation (seed 001, Ch. 4) from the compact-latent workdirs.

    python experiments/compact_latents/figures.py --workdir runs/compact_latents

- Figure 4.1: latent means mu(x) on S^2 of the MNIST-0/1 S-VAE (run 0): 0s, 1s and held-out 9s
  (the 9s fall into the hole between the two clusters).
- Figure 4.2: densities of ||mu(x)||_inf for in-distribution test images and outliers (the
  other dataset, "white" U[0.9, 1] and "black" U[0, 0.1] noise images; open point 24), for the
  vanilla MLP VAE and the Lipschitz VAE (encoder M = 1, so ||mu(x)||_inf <= 1), trained on MNIST
  and on Fashion-MNIST (run 0). KMNIST is not offline.
- Figure 4.3: hole-indicator AUROC against the decoder's Lipschitz bound M (FMNIST in, MNIST
  out), from the figure4_3 cell's results.json.
- Figure 4.4: the surface area 2 pi^{n/2} / Gamma(n/2) of the unit sphere in R^n (peak at n = 7).

A figure whose cells are not evaluated yet (no results.json) is skipped with a note. PNGs go
to ``figures/`` here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxrobust.data import load  # noqa: E402
from jaxrobust.evaluate import restore_model  # noqa: E402
from jaxrobust.evaluate.batched import map_dataset  # noqa: E402
from jaxrobust.workdir import atomic_path  # noqa: E402

HERE = Path(__file__).resolve().parent
NUM_IMAGES = 2000


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


def latent_means(workdir: Path, model: str, images: np.ndarray, run: int = 0) -> np.ndarray:
    """mean(q(z|x)) of run ``run`` of ``model`` for uint8 ``images``."""
    restored = restore_model(workdir, model, "last")
    variables = restored.variables
    if _has_runs(workdir, model):  # stacked runs: a leading [R] axis
        variables = jax.tree.map(lambda a: a[run], variables)
    model = restored.model

    def means(v, x, key):  # x: a preprocessed batch
        return model.latent.mean(model.encode(v, x))

    return map_dataset(means, variables, images, restored.preprocess, jax.random.key(0), 500)


def _has_runs(workdir: Path, model: str) -> bool:
    config = json.loads((workdir / "config.json").read_text())
    return config["models"][model]["training"].get("num_runs") is not None


def figure_4_1(root: Path, out: Path) -> None:
    workdir = root / "table4_1_svae_mnist01"
    images, labels = load("mnist", "test", progress=False)
    groups = {"0": (labels == 0, "purple"), "1": (labels == 1, "gold"),
              "9 (held out)": (labels == 9, "red")}  # fmt: skip
    fig = plt.figure(figsize=(11, 5))
    ax3d = fig.add_subplot(1, 2, 1, projection="3d")
    ax2d = fig.add_subplot(1, 2, 2)
    for name, (mask, colour) in groups.items():
        mu = latent_means(workdir, "svae", images[mask][: NUM_IMAGES // 2])
        ax3d.scatter(mu[:, 0], mu[:, 1], mu[:, 2], s=3, c=colour, label=name, alpha=0.5)
        lon, lat = np.arctan2(mu[:, 1], mu[:, 0]), np.arcsin(np.clip(mu[:, 2], -1, 1))
        ax2d.scatter(lon, lat, s=3, c=colour, label=name, alpha=0.5)
    ax3d.set_title("S-VAE (S^2) latent means, MNIST 0/1 model")
    ax2d.set(xlabel="longitude", ylabel="latitude", title="the same means, unrolled")
    ax2d.legend(markerscale=4)
    _save(fig, out / "figure4_1_sphere_means.png")


def _noise(key: int, low: float, high: float, n: int) -> np.ndarray:
    rng = np.random.default_rng(key)
    return np.round(255 * rng.uniform(low, high, (n, 28, 28, 1))).astype(np.uint8)


def figure_4_2(root: Path, out: Path) -> None:
    from scipy.stats import gaussian_kde

    cells = (("MNIST", "table4_2_mnist_fmnist", "mnist", "fashion_mnist"),
             ("FMNIST", "table4_2_fmnist_mnist", "fashion_mnist", "mnist"))  # fmt: skip
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, (title, cell, in_name, out_name) in enumerate(cells):
        sets = {
            f"{in_name} (in)": load(in_name, "test", progress=False)[0][:NUM_IMAGES],
            out_name: load(out_name, "test", progress=False)[0][:NUM_IMAGES],
            "white U[.9, 1]": _noise(1, 0.9, 1.0, NUM_IMAGES // 4),
            "black U[0, .1]": _noise(2, 0.0, 0.1, NUM_IMAGES // 4),
        }
        for row, model in enumerate(("vanilla_mlp", "lipschitz")):
            ax = axes[row, col]
            for name, images in sets.items():
                norms = np.abs(latent_means(root / cell, model, images)).max(axis=1)
                grid = np.linspace(0, max(norms.max() * 1.1, 1e-3), 300)
                density = gaussian_kde(norms)(grid) if np.ptp(norms) > 0 else np.zeros_like(grid)
                ax.plot(grid, density, label=name)
            ax.set(title=f"{model}, trained on {title}", xlabel="||mu(x)||_inf", ylabel="density")
            ax.legend(fontsize=8)
    _save(fig, out / "figure4_2_latent_inf_norms.png")


def figure_4_3(root: Path, out: Path) -> None:
    result = json.loads((root / "figure4_3_decoder_lipschitz" / "results.json").read_text())
    (pair,) = result["ood"].values()
    bounds, auroc = [], []
    for ref, entry in pair.items():
        if ref.endswith("/hole_indicator"):
            bounds.append(int(ref.split("/")[0].removeprefix("lipschitz_m")))
            auroc.append(100 * entry["auroc"])
    order = np.argsort(bounds)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.asarray(bounds)[order], np.asarray(auroc)[order], "o-")
    ax.set(xlabel="decoder Lipschitz bound M (encoder M = 1)", ylabel="hole indicator AUROC (%)",
           title="FMNIST in, MNIST out")  # fmt: skip
    _save(fig, out / "figure4_3_auroc_vs_decoder_bound.png")


def figure_4_4(out: Path) -> None:
    n = np.arange(1, 26)
    area = [2 * math.pi ** (k / 2) / math.gamma(k / 2) for k in n]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(n, area, "o-")
    ax.set(xlabel="n", ylabel="2 pi^(n/2) / Gamma(n/2)", title="surface area of S^(n-1)")
    _save(fig, out / "figure4_4_sphere_area.png")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/compact_latents")
    parser.add_argument("--output", default=str(HERE / "figures"))
    args = parser.parse_args(argv)
    root, out = Path(args.workdir).absolute(), Path(args.output)
    figure_4_4(out)
    for draw, cells in ((figure_4_1, ("table4_1_svae_mnist01",)),
                        (figure_4_2, ("table4_2_mnist_fmnist", "table4_2_fmnist_mnist")),
                        (figure_4_3, ("figure4_3_decoder_lipschitz",))):  # fmt: skip
        missing = [
            root / c / "results.json" for c in cells if not (root / c / "results.json").exists()
        ]
        if missing:
            print(f"skipped {draw.__name__}: {', '.join(map(str, missing))} not evaluated yet")
            continue
        draw(root, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The thesis's figures (digest section 8) from the committed digests and the cells' workdirs.

    python experiments/hybrid/figures.py --workdir runs/hybrid

From ``results/<cell>.json`` (mean and sample std over the runs; bands are +-2 std, L668):

- ``accuracy_vs_alpha.png`` (Figs 5.2 / 5.3): DHM-0..5 test accuracy vs log10 alpha, with the
  ResNet-18 and Disc. DHM means as lines and their +-2 std as dashed bands;
- ``auroc_vs_alpha.png`` (Figs 5.4 / 5.5): OOD AUROC vs log10 alpha with p(y|x) and the three
  log p(x) scores, the ResNet-18 (p(y|x)) and beta-VAE (log p(x)) baselines as lines;
- ``ece_vs_alpha.png`` (Figs 5.6 / 5.8);
- ``fgsm_vs_epsilon.png`` (Fig 5.9): accuracy vs epsilon of the seven classifiers (the eight
  models less the beta-VAE) per cell, normalised space (top) and pixel space (bottom).

From the workdirs' evaluation plots (run 0 of each model), montages:
``logpx_histograms.png`` (Tables 5.5 / 5.6: in vs out, beta-VAE, DHM-0, DHM-5) and
``reliability.png`` (Fig 5.7: 15-bin reliability diagrams).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import cells  # noqa: E402
import run_all  # noqa: E402

FIGURES = HERE / "figures"
LOG_ALPHA = np.log10(run_all.base.ALPHAS)
SETTINGS = run_all.base.dhm_settings()


def _mean_std(entry: dict | None, key: str) -> tuple[float, float]:
    if not entry:
        return float("nan"), float("nan")
    return entry[key], entry.get(f"{key}_std", 0.0)


def _series(entries, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Means and stds of ``key`` over the DHM settings' result entries."""
    pairs = np.asarray([_mean_std(e, key) for e in entries], np.float64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def _curve(ax, means, stds, label, **style):
    (line,) = ax.plot(LOG_ALPHA, means, marker="o", label=label, **style)
    ax.fill_between(LOG_ALPHA, means - 2 * stds, means + 2 * stds, alpha=0.2,
                    color=line.get_color())  # fmt: skip


def _baseline(ax, mean, std, label, color):
    ax.axhline(mean, color=color, label=label)
    ax.axhspan(mean - 2 * std, mean + 2 * std, color=color, alpha=0.08, ls="--", fill=False)


def _panels(digests, title):
    fig, axes = plt.subplots(1, len(digests), figsize=(5.2 * len(digests), 3.8), squeeze=False)
    fig.suptitle(title)
    return fig, axes[0]


def _cell_title(name: str) -> str:
    return run_all.CELLS[name][1]


def accuracy_vs_alpha(digests, path: Path) -> None:
    fig, axes = _panels(digests, "Test accuracy vs alpha (mean +- 2 std over runs)")
    for ax, (name, d) in zip(axes, digests.items(), strict=True):
        cls = d["classification"]
        _curve(ax, *_series([cls.get(s) for s in SETTINGS], "accuracy"), "DHM")
        for m, color in (("resnet", "k"), ("disc_dhm", "tab:red")):
            _baseline(ax, *_mean_std(cls.get(m), "accuracy"), run_all.LABELS[m], color)
        ax.set(title=_cell_title(name), xlabel="log10 alpha", ylabel="accuracy")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def auroc_vs_alpha(digests, path: Path) -> None:
    fig, axes = _panels(digests, "OOD AUROC vs alpha (in positive; mean +- 2 std)")
    for ax, (name, d) in zip(axes, digests.items(), strict=True):
        for score, label in {"max_softmax": "p(y|x)", **run_all.LOG_PX}.items():
            entries = [run_all._ood(d, f"{s}/{score}") for s in SETTINGS]
            _curve(
                ax,
                *_series(entries, "auroc"),
                f"DHM {label}" if score == "max_softmax" else f"DHM log p(x) {label}",
            )
        _baseline(ax, *_mean_std(run_all._ood(d, "resnet/max_softmax"), "auroc"),
                  "ResNet-18 p(y|x)", "k")  # fmt: skip
        _baseline(ax, *_mean_std(run_all._ood(d, "beta_vae/elbo"), "auroc"),
                  "beta-VAE log p(x) (summed ELBO)", "tab:gray")  # fmt: skip
        ax.axhline(0.5, color="k", lw=0.5, ls=":")
        ax.set(title=f"{_cell_title(name)} vs {run_all.CELLS[name][0]}", xlabel="log10 alpha",
               ylabel="AUROC", ylim=(0, 1.02))  # fmt: skip
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ece_vs_alpha(digests, path: Path) -> None:
    fig, axes = _panels(digests, "ECE (15 bins) vs alpha (mean +- 2 std)")
    for ax, (name, d) in zip(axes, digests.items(), strict=True):
        cls = d["classification"]
        _curve(ax, *_series([cls.get(s) for s in SETTINGS], "ece"), "DHM")
        for m, color in (("resnet", "k"), ("disc_dhm", "tab:red")):
            _baseline(ax, *_mean_std(cls.get(m), "ece"), run_all.LABELS[m], color)
        ax.set(title=_cell_title(name), xlabel="log10 alpha", ylabel="ECE")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fgsm_vs_epsilon(digests, path: Path) -> None:
    rows = [("attacks", "normalised space"), ("fgsm_pixels", "pixel space, clipped")]
    fig, axes = plt.subplots(2, len(digests), figsize=(5.2 * len(digests), 7.4), squeeze=False)
    fig.suptitle("FGSM accuracy vs epsilon (mean over runs)")
    for col, (name, d) in enumerate(digests.items()):
        for row, (key, space) in enumerate(rows):
            ax = axes[row, col]
            for m, r in (d.get(key) or {}).items():
                style = {"ls": "--"} if not m.startswith("dhm") else {}
                ax.plot(r["epsilons"], r["accuracy"]["fgsm"], marker=".",
                        label=run_all.LABELS[m], **style)  # fmt: skip
            ax.set(title=f"{_cell_title(name)}: {space}", xlabel="epsilon", ylabel="accuracy")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def montage(images: list[list[Path | None]], titles: list[str], path: Path) -> bool:
    """A grid of the evaluation's PNGs (rows: cells); False when none exists."""
    if not any(p is not None and p.is_file() for row in images for p in row):
        return False
    rows, cols = len(images), max(len(r) for r in images)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for i, row in enumerate(images):
        for j in range(cols):
            ax = axes[i, j]
            ax.axis("off")
            p = row[j] if j < len(row) else None
            if p is not None and p.is_file():
                ax.imshow(plt.imread(p))
        axes[i, 0].set_title(titles[i], loc="left", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/hybrid")
    args = parser.parse_args(argv)
    digests = cells.read_digests(run_all.RESULTS, run_all.CELLS)
    if not digests:
        raise SystemExit(f"No digests in {run_all.RESULTS}: run run_all.py first.")
    FIGURES.mkdir(exist_ok=True)
    accuracy_vs_alpha(digests, FIGURES / "accuracy_vs_alpha.png")
    auroc_vs_alpha(digests, FIGURES / "auroc_vs_alpha.png")
    ece_vs_alpha(digests, FIGURES / "ece_vs_alpha.png")
    fgsm_vs_epsilon(digests, FIGURES / "fgsm_vs_epsilon.png")
    plots = {name: Path(args.workdir) / name / "plots" for name in digests}
    in_out = {n: (d["data"]["name"], run_all.CELLS[n][0]) for n, d in digests.items()}
    histograms = [
        [plots[n] / f"hist_{i}_vs_{o}_{m.replace('/', '_')}_elbo.png"
         for m in ("beta_vae", SETTINGS[0], SETTINGS[-1])]
        for n, (i, o) in in_out.items()
    ]  # fmt: skip
    montage(histograms, [f"{_cell_title(n)}: summed ELBO, beta-VAE | DHM-0 | DHM-5"
                         for n in digests], FIGURES / "logpx_histograms.png")  # fmt: skip
    reliability = [
        [plots[n] / f"reliability_{m}.png" for m in ("resnet", "disc_dhm", SETTINGS[0],
                                                      SETTINGS[-1])]
        for n in digests
    ]  # fmt: skip
    montage(reliability, [f"{_cell_title(n)}: ResNet-18 | Disc. DHM | DHM-0 | DHM-5 (run 1)"
                          for n in digests], FIGURES / "reliability.png")  # fmt: skip
    print(f"figures in {FIGURES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

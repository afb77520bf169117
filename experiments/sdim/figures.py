"""The SDIM paper's figures (digest section 5) from the committed digests and the workdirs.

    python experiments/sdim/figures.py --workdir runs/sdim

From ``results/<cell>.json``:

- ``accuracy_vs_epsilon.png`` (Figs 4 / 5, App. D.1): accuracy vs L-inf epsilon in [0, 0.5]
  under FGSM, PGD-40 without and with a random start, on the cross-entropy of
  softmax(log p(x~|c)); the SDIM solid, its discriminative counterpart dashed;
- ``logit_heatmap_<cell>.png`` (Tables 4 / 6 as heat maps, the digest's extension): the class
  scores of the logit table's image minus the class thresholds, clean and after each attack
  (positive = accepted as that class).

Copied from the workdirs' evaluation plots: ``histograms_<cell>_<ood>.png`` (Figs 2 / 3:
per-class histograms of log p(x~|c), class-c test inputs vs the OOD set, delta_c dashed).
"""

from __future__ import annotations

import argparse
import shutil
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


def accuracy_vs_epsilon(digests: dict, path: Path) -> bool:
    cells_ = [n for n, d in digests.items() if d.get("attacks")]
    if not cells_:
        return False
    fig, axes = plt.subplots(1, len(cells_), figsize=(5 * len(cells_), 3.8), squeeze=False)
    for ax, name in zip(axes[0], cells_, strict=True):
        attacks = digests[name]["attacks"]
        for i, attack in enumerate(attacks["sdim"]["accuracy"]):
            for model, style in (("sdim", "-"), ("disc", "--")):
                entry = attacks[model]
                accuracy = 100 * np.asarray(entry["accuracy"][attack])
                label = f"{'SDIM' if model == 'sdim' else 'disc'} {attack}"
                ax.plot(entry["epsilons"], accuracy, style, color=f"C{i}", marker="o",
                        markersize=3, label=label)  # fmt: skip
        title = f"{run_all.CELLS[name][1]}: first {attacks['sdim']['num_images']} images"
        ax.set(xlabel="L-inf epsilon (pixels in [0, 1])", ylabel="accuracy (%)", ylim=(0, 101),
               title=title)  # fmt: skip
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def logit_heatmap(name: str, d: dict, path: Path) -> bool:
    adv = d.get("adversarial_rejection")
    if not adv or adv["logit_table"]["original"] is None:
        return False
    t = adv["logit_table"]
    thresholds = np.asarray(t["thresholds"])
    rows = {"original": t["original"], **t["untargeted"]}
    values = np.asarray(list(rows.values())) - thresholds[None]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.5))
    finite = np.abs(values[np.isfinite(values)])  # a class with no qualifying input: -inf delta
    bound = float(np.percentile(finite, 95)) if finite.size else 1.0
    image = ax.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7)
    ax.set(xticks=range(len(thresholds)), yticks=range(len(rows)), yticklabels=list(rows),
           xlabel="class c", title=f"{run_all.CELLS[name][1]}: log p(x~|c) - delta_c, test image "
           f"{t['image_index']} (class {t['label']})")  # fmt: skip
    fig.colorbar(image, ax=ax, label="nats above the threshold")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/sdim")
    args = parser.parse_args(argv)
    digests = cells.read_digests(run_all.RESULTS, run_all.CELLS)
    if not digests:
        raise SystemExit(f"No digests in {run_all.RESULTS}: run run_all.py first.")
    FIGURES.mkdir(exist_ok=True)
    accuracy_vs_epsilon(digests, FIGURES / "accuracy_vs_epsilon.png")
    for name, d in digests.items():
        logit_heatmap(name, d, FIGURES / f"logit_heatmap_{name}.png")
        for png in sorted((Path(args.workdir) / name / "plots").glob("rejection_histograms_*")):
            out = png.stem.removeprefix("rejection_histograms_sdim_")
            shutil.copyfile(png, FIGURES / f"histograms_{name}_{out}.png")
    print(f"figures in {FIGURES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

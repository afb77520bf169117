"""Train and evaluate the deep-hybrid-models cells, write RESULTS.md (master thesis, seed 000).

    python experiments/hybrid/run_all.py --workdir runs/hybrid            # the stand-ins here
    python experiments/hybrid/run_all.py --cells svhn,cifar10 --print-commands  # a GPU + TFDS

Each cell trains the eight models of ``base.py`` (the DHM's six alphas as one swept program) and
runs the ``classification``, ``ood``, ``attacks`` (normalised-space FGSM) and ``fgsm_pixels``
evaluations. A per-cell digest (``results/<cell>.json``: the figures RESULTS.md prints, with the
budget, wall times and device, all from the workdir) is committed so that RESULTS.md and the
figures (``figures.py``) can be rebuilt without the workdirs (``--collect``). The thesis's
numbers are the digest's (spec/hybrid_models.md, section 5). The MNIST / Fashion-MNIST cells are
STAND-INS for its SVHN / CIFAR-10 tables (digest section 6): they test its claims, not its
numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cells  # noqa: E402  (experiments/cells.py)

from jaxrobust.config import import_file  # noqa: E402

base = import_file(HERE / "base.py")

#: cell -> (OOD set, label, the thesis dataset it stands for / is)
CELLS = {
    "mnist_standin": ("fashion_mnist", "MNIST (STAND-IN for SVHN)", "svhn"),
    "fashion_mnist_standin": ("mnist", "FMNIST (STAND-IN for CIFAR-10)", "cifar10"),
    "svhn": ("cifar100", "SVHN (the thesis's)", "svhn"),
    "cifar10": ("cifar100", "CIFAR-10 (the thesis's)", "cifar10"),
}
RESULTS = HERE / "results"
MODELS = ["resnet", "disc_dhm", "beta_vae", *base.dhm_settings()]
LABELS = {"resnet": "ResNet-18", "disc_dhm": "Disc. DHM", "beta_vae": "beta-VAE"} | {
    s: f"DHM-{k}" for k, s in enumerate(base.dhm_settings())
}
CLASSIFIERS = [m for m in MODELS if m != "beta_vae"]
GENERATIVE = ["beta_vae", *base.dhm_settings()]
LOG_PX = {"elbo_surrogate": "code's surrogate", "elbo": "summed ELBO", "iwae": "IWAE"}

# ----------------------------------------------------- the thesis's numbers (digest section 5)
# Table 5.3, accuracy (%): mean, std over 10 runs
THESIS_ACCURACY = {
    "svhn": [(94.36, .14), (94.29, .06), None, (94.26, .37), (94.24, .51), (94.23, .21),
             (94.23, .21), (94.26, .20), (94.22, .41)],
    "cifar10": [(93.52, .11), (92.62, .11), None, (92.71, .43), (92.73, .47), (92.56, .50),
                (92.65, .43), (92.75, .35), (92.63, .41)],
}  # fmt: skip
# Table 5.4, AUROC: (p(y|x), log p(x)); OOD = CIFAR-100
THESIS_AUROC = {
    "svhn": [(.934, None), (.939, None), (None, .998), (.933, .998), (.936, .997), (.939, .996),
             (.938, .985), (.940, .955), (.938, .938)],
    "cifar10": [(.841, None), (.835, None), (None, .272), (.834, .267), (.843, .257),
                (.840, .259), (.839, .287), (.837, .308), (.835, .317)],
}  # fmt: skip
# Table 5.7, ECE
THESIS_ECE = {
    "svhn": [0.046, 0.046, None, 0.047, 0.045, 0.043, 0.045, 0.046, 0.047],
    "cifar10": [0.057, 0.064, None, 0.064, 0.063, 0.064, 0.065, 0.064, 0.065],
}
# Table 5.8, FGSM accuracy (%) at eps .02 .. .08 (normalised space), the mean over 10 runs
THESIS_FGSM = {
    "svhn": [[46.14, 33.33, 25.37, 20.08, 16.42, 13.82, 11.89],
             [48.99, 36.31, 27.78, 22.07, 18.02, 15.06, 12.86], None,
             [45.05, 32.07, 23.95, 18.62, 15.00, 12.40, 10.56],
             [44.66, 32.08, 24.09, 18.79, 15.14, 12.49, 10.55],
             [43.43, 30.72, 22.83, 17.64, 14.00, 11.51, 9.67],
             [45.73, 33.00, 24.65, 19.06, 15.20, 12.45, 10.47],
             [48.62, 35.79, 27.10, 21.12, 17.03, 14.09, 11.94],
             [49.47, 36.66, 28.13, 22.31, 18.26, 15.32, 13.19]],
    "cifar10": [[57.45, 45.90, 38.67, 33.89, 30.57, 28.17, 26.47],
                [58.00, 46.13, 38.30, 32.97, 29.39, 26.77, 24.78], None,
                [54.51, 41.63, 33.37, 27.88, 24.25, 21.57, 19.56],
                [56.21, 43.86, 35.86, 30.35, 26.54, 23.80, 21.76],
                [56.22, 43.67, 35.41, 29.90, 26.04, 23.35, 21.30],
                [56.04, 44.02, 36.44, 31.23, 27.59, 24.98, 23.03],
                [57.30, 45.40, 37.33, 32.05, 28.42, 25.83, 23.84],
                [57.29, 45.13, 37.17, 32.00, 28.43, 25.78, 23.87]],
}  # fmt: skip


def _thesis(table: dict, dataset: str, model: str):
    return table[dataset][MODELS.index(model)]


def make_cells(args) -> list[cells.Cell]:
    return [
        cells.Cell(name, HERE / f"{name}_cell.py", Path(args.workdir) / name, {}) for name in CELLS
    ]


def make_digest(name: str, workdir: Path, results: dict) -> dict:
    """What RESULTS.md and the figures need of a finished cell, from its workdir."""
    config = json.loads((workdir / "config.json").read_text())
    return {
        "cell": name,
        "experiment": results.get("experiment", ""),
        "finished": datetime.datetime.fromtimestamp(
            (workdir / "results.json").stat().st_mtime, datetime.timezone.utc
        ).isoformat(timespec="seconds"),
        "device": results["meta"]["device"],
        "data": {k: config["data"].get(k) for k in ("name", "train_limit", "validation_limit")},
        "test_limit": config["evaluate"].get("test_limit"),
        "width": config["models"]["dhm"]["architecture"]["width"],
        "batch_size": config["models"]["dhm"]["training"]["batch_size"],
        "iwae_samples": config["models"]["dhm"]["architecture"]["iwae_samples"],
        "models": cells.training_summary(workdir),
        "checkpoints": results["meta"].get("checkpoints"),
        "evaluation_seconds": results["meta"].get("seconds"),
        **{k: results.get(k) for k in ("classification", "ood", "attacks", "fgsm_pixels")},
    }


# ------------------------------------------------------------------------------ tables


def _ms(mean: float, std: float | None, scale: float = 100.0, digits: int = 2) -> str:
    text = f"{scale * mean:.{digits}f}"
    return text if std is None else f"{text} ({scale * std:.{digits}f})"


def _ood(d: dict, ref: str) -> dict | None:
    for table in (d.get("ood") or {}).values():
        if ref in table:
            return table[ref]
    return None


def _thesis_ms(pair, digits: int = 2) -> str:
    return "-" if pair is None else f"{pair[0]:.{digits}f} ({pair[1]:.{digits}f})"


def accuracy_table(name: str, d: dict) -> list[str]:
    dataset = CELLS[name][2]
    lines = [
        f"### S-acc / S-ECE (Tables 5.3 and 5.7): {CELLS[name][1]}",
        "",
        f"Test accuracy, NLL and ECE (15 bins) on the first {d['test_limit'] or 'all'} test "
        "images; mean (sample std) over the runs. Thesis: "
        f"{'SVHN' if dataset == 'svhn' else 'CIFAR-10'}, 10 runs.",
        "",
        "| model | thesis accuracy (%) | accuracy (%) | NLL | thesis ECE | ECE |",
        "|---|---|---|---|---|---|",
    ]
    for m in CLASSIFIERS:
        r = (d.get("classification") or {}).get(m)
        if not r:
            continue
        ece = THESIS_ECE[dataset][MODELS.index(m)]
        lines.append(
            f"| {LABELS[m]} | {_thesis_ms(_thesis(THESIS_ACCURACY, dataset, m))} | "
            f"{_ms(r['accuracy'], r.get('accuracy_std'))} | "
            f"{_ms(r['nll'], r.get('nll_std'), 1.0, 4)} | {ece:.3f} | "
            f"{_ms(r['ece'], r.get('ece_std'), 1.0, 4)} |"
        )
    return lines


def ood_table(name: str, d: dict) -> list[str]:
    dataset, out = CELLS[name][2], CELLS[name][0]
    thesis_pair = "SVHN vs CIFAR-100" if dataset == "svhn" else "CIFAR-10 vs CIFAR-100"
    lines = [
        f"### {'S-far' if dataset == 'svhn' else 'S-near'} (Table 5.4): {CELLS[name][1]} in, "
        f"{out} out",
        "",
        "AUROC, the in-distribution side positive, mean (sample std) over the runs. log p(x): "
        "unit-variance Gaussian decoder in the normalised space; the code's surrogate "
        f"(-MSE - 0.1 KL, means), the summed ELBO and IWAE with K = {d['iwae_samples']}. "
        f"Thesis: {thesis_pair}.",
        "",
        "| model | thesis p(y\\|x) | p(y\\|x) | thesis log p(x) | "
        + " | ".join(f"log p(x): {v}" for v in LOG_PX.values())
        + " |",
        "|---|---|---|---|" + "---|" * len(LOG_PX),
    ]
    for m in MODELS:
        thesis = _thesis(THESIS_AUROC, dataset, m)
        soft = _ood(d, f"{m}/max_softmax") if m in CLASSIFIERS else None
        cols = [
            _ms(r["auroc"], r.get("auroc_std"), 1.0, 3) if (r := _ood(d, f"{m}/{s}")) else "-"
            for s in LOG_PX
        ]
        lines.append(
            f"| {LABELS[m]} | {'-' if thesis[0] is None else f'{thesis[0]:.3f}'} | "
            f"{_ms(soft['auroc'], soft.get('auroc_std'), 1.0, 3) if soft else '-'} | "
            f"{'-' if thesis[1] is None else f'{thesis[1]:.3f}'} | " + " | ".join(cols) + " |"
        )
    return lines


def fgsm_table(name: str, d: dict, key: str) -> list[str]:
    section = d.get(key) or {}
    first = next(iter(section.values()), None)
    if first is None:
        return []
    eps = first["epsilons"]
    dataset = CELLS[name][2]
    normalised = key == "attacks"
    title = (
        "normalised input space, no clipping (the thesis's protocol)"
        if normalised
        else "pixel space, the normalisation inside the attacked function, clipped to [0, 1]"
    )
    lines = [
        f"### S-FGSM (Table 5.8): {CELLS[name][1]}, epsilon in {title}",
        "",
        f"Accuracy (%) on the first {first['num_images']} test images, mean (sample std) over "
        "the runs"
        + (
            "; the thesis's mean in brackets ("
            + ("SVHN" if dataset == "svhn" else "CIFAR-10")
            + ", 10 runs)."
            if normalised
            else "; no thesis counterpart (open point 13)."
        ),
        "",
        "| model | " + " | ".join(f"{e:g}" for e in eps) + " |",
        "|---|" + "---|" * len(eps),
    ]
    for m in CLASSIFIERS:
        r = section.get(m)
        if not r:
            continue
        acc, std = r["accuracy"]["fgsm"], (r.get("accuracy_std") or {}).get("fgsm")
        thesis = _thesis(THESIS_FGSM, dataset, m) if normalised else None
        cols = []
        for i, a in enumerate(acc):
            text = _ms(a, None if std is None else std[i], 100.0, 1)
            cols.append(text + (f" [{thesis[i]:.1f}]" if thesis else ""))
        lines.append(f"| {LABELS[m]} | " + " | ".join(cols) + " |")
    return lines


# ------------------------------------------------------------------------------ claims


def claim_checks(name: str, d: dict) -> list[str]:
    """The numbers each claim of the thesis is judged on (digest section 6), computed here so
    that notes.md can cite them; the verdicts are in notes.md."""
    lines = [f"### Claim figures: {CELLS[name][1]}", ""]
    cls = d.get("classification") or {}
    if "disc_dhm" in cls:
        disc = cls["disc_dhm"]
        gaps = {s: cls[s]["accuracy"] - disc["accuracy"] for s in base.dhm_settings() if s in cls}
        within = sum(abs(g) <= disc.get("accuracy_std", 0.0) for g in gaps.values())
        resnet = cls.get("resnet", {})
        above = [
            LABELS[s]
            for s in gaps
            if resnet
            and cls[s]["accuracy"] - 2 * cls[s].get("accuracy_std", 0.0) > resnet["accuracy"]
        ]
        lines.append(
            "- Accuracy: DHM minus Disc. DHM (points) "
            + ", ".join(f"{LABELS[s]} {100 * g:+.2f}" for s, g in gaps.items())
            + f"; {within} of {len(gaps)} within one Disc. DHM std "
            f"({100 * disc.get('accuracy_std', 0.0):.2f}); DHMs more than 2 std above ResNet-18: "
            + (", ".join(above) or "none")
            + "."
        )
        eces = {m: cls[m]["ece"] for m in CLASSIFIERS if m in cls}
        best = min(eces, key=eces.get)
        lines.append(
            f"- ECE: the lowest is {LABELS[best]} ({eces[best]:.4f}); ResNet-18 "
            f"{eces.get('resnet', float('nan')):.4f}, Disc. DHM {eces['disc_dhm']:.4f}; DHMs "
            f"below Disc. DHM: {sum(eces[s] < eces['disc_dhm'] for s in gaps)} of {len(gaps)}."
        )
    for score, label in LOG_PX.items():
        aurocs = [(_ood(d, f"{s}/{score}") or {}).get("auroc") for s in base.dhm_settings()]
        if None in aurocs:
            continue
        rho = _spearman(np.log10(base.ALPHAS), aurocs)
        vae = (_ood(d, f"beta_vae/{score}") or {}).get("auroc", float("nan"))
        lines.append(
            f"- log p(x) AUROC ({label}): beta-VAE {vae:.3f}, DHM-0..5 "
            + " ".join(f"{a:.3f}" for a in aurocs)
            + f"; Spearman rho with log10 alpha {rho:+.2f}; below 0.5: "
            f"{sum(a < 0.5 for a in [vae, *aurocs])} of 7."
        )
    attacks = d.get("attacks") or {}
    if attacks:
        mean_acc = {m: float(np.mean(r["accuracy"]["fgsm"])) for m, r in attacks.items()}
        dhm = [mean_acc[s] for s in base.dhm_settings() if s in mean_acc]
        rho = _spearman(np.log10(base.ALPHAS[: len(dhm)]), dhm)
        lines.append(
            "- FGSM (normalised space), accuracy averaged over the epsilons: "
            + ", ".join(f"{LABELS[m]} {100 * a:.1f}" for m, a in mean_acc.items())
            + f"; among the DHMs Spearman rho with log10 alpha {rho:+.2f}."
        )
    return lines


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def budget_table(digests: dict) -> list[str]:
    lines = [
        "## Budget, wall time and device",
        "",
        "The thesis: full width, batch 512, 200 epochs, 10 runs, 42k / 8k train / validation, "
        "IWAE K = 100 (open point 10), whole test sets. Per cell below: what ran.",
        "",
        "| cell | width | batch | train / val images | test images | IWAE K | model: runs x "
        "epochs (s / epoch) | evaluation | finished | device |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c, d in digests.items():
        models = ", ".join(
            f"{m}: {r['members']} x {r['epochs']} ({r['median_epoch_seconds'] or 0:.0f} s)"
            for m, r in d["models"].items()
        )
        data = d["data"]
        ev = d.get("evaluation_seconds")
        lines.append(
            f"| {c} | {d['width']:g} | {d['batch_size']} | {data['train_limit'] or 'all'} / "
            f"{data['validation_limit'] or 'all'} | {d['test_limit'] or 'all'} | "
            f"{d['iwae_samples']} | {models} | "
            f"{'-' if ev is None else f'{ev / 60:.1f} min'} | {d['finished']} | {d['device']} |"
        )
    lines += [
        "",
        "`dhm: 18 x 4` is the swept program: DHM-0..DHM-5 x 3 runs, 18 members trained as one "
        "jitted epoch. The best checkpoint is one epoch for all members of a model: the best "
        "mean validation accuracy over them (the beta-VAE: the lowest mean validation loss), "
        "never the test split.",
    ]
    return lines


def write_results(digests: dict, output: Path) -> None:
    text = [
        "# Deep hybrid models (master thesis, seed 000)",
        "",
        "Generated by `python experiments/hybrid/run_all.py --workdir runs/hybrid` from the "
        "committed digests in `results/` (`--collect` rebuilds it from them). **The MNIST and "
        "FMNIST cells are STAND-INS** (digest section 6) for the thesis's SVHN and CIFAR-10 "
        "tables, which need TFDS data this machine cannot fetch: each table prints the "
        "thesis's number of the dataset the cell stands in for beside ours, to compare claims, "
        "not numbers. **Reduced budget**: see the last table; choices the thesis leaves open: "
        "`base.py`.",
        "",
    ]
    for name, d in digests.items():
        text += [f"## {CELLS[name][1]}: {d['experiment']}", ""]
        for part in (
            accuracy_table(name, d),
            ood_table(name, d),
            fgsm_table(name, d, "attacks"),
            fgsm_table(name, d, "fgsm_pixels"),
            claim_checks(name, d),
        ):
            text += [*part, ""]
    cells.finish_results(
        text,
        HERE,
        output,
        "python experiments/hybrid/figures.py --workdir runs/hybrid",
        budget_table(digests),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/hybrid")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument(
        "--collect", action="store_true", help="only rebuild RESULTS.md from the digests"
    )
    cells.add_arguments(parser)
    args = parser.parse_args(argv)
    selected = cells.select(make_cells(args), args.cells or "mnist_standin,fashion_mnist_standin")
    if args.print_commands:
        cells.print_commands(selected)
        return 0
    if not args.collect:
        for cell in selected:
            cells.write_digest(RESULTS, make_digest(cell.name, cell.workdir, cell.run()))
    write_results(cells.read_digests(RESULTS, CELLS), Path(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())

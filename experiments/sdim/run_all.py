"""Train and evaluate the SDIM cells, write RESULTS.md ("Reject Illegal Inputs", seed 003).

    python experiments/sdim/run_all.py --workdir runs/sdim             # MNIST and FMNIST here
    python experiments/sdim/run_all.py --cells cifar10,svhn --print-commands   # a GPU + TFDS

Each cell trains the SDIM and its discriminative counterpart (``base.py``) and runs the
``classification``, ``rejection`` (Tables 2, 3; Fig. 2), ``ood``, ``attacks`` (App. D.1,
Fig. 4), ``adversarial_rejection`` (Tables 4, 5) and ``cw_rejection`` (Tables 6, 7)
evaluations. A per-cell digest (``results/<cell>.json``: the figures RESULTS.md prints, with the
budget, wall times and device, all from the workdir) is committed so that RESULTS.md and the
figures (``figures.py``) can be rebuilt without the workdirs (``--collect``). The paper's
numbers are the digest's (spec/sdim.md, section 4).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cells  # noqa: E402  (experiments/cells.py)

#: cell -> (dataset, label)
CELLS = {
    "mnist": ("mnist", "MNIST"),
    "fashion_mnist": ("fashion_mnist", "Fashion-MNIST"),
    "cifar10": ("cifar10", "CIFAR-10 (needs TFDS)"),
    "svhn": ("svhn_cropped", "SVHN (needs TFDS)"),
}
RESULTS = HERE / "results"
UNTARGETED = ("deepfool", "boundary", "local_search")
KAPPAS = ("0", "500", "1000")

# ------------------------------------------------------ the paper's numbers (digest section 4)
PAPER_ACCURACY = {  # Table 1 (%): disc, SDIM
    "mnist": (99.42, 99.55), "fashion_mnist": (94.25, 94.58),
    "cifar10": (92.35, 92.53), "svhn_cropped": (95.96, 95.74),
}  # fmt: skip
PAPER_PARAMETERS = {1: (1.25e6, 1.46e6), 3: (4.39e6, 4.60e6)}  # Table 1, by n
PAPER_REJECTION = {  # Table 2: (acc left, rejection rate) at the 1st, 2nd percentiles (%)
    "mnist": ((99.95, 3.02), (99.97, 4.00)), "fashion_mnist": ((96.45, 4.63), (96.94, 6.60)),
    "cifar10": ((96.18, 8.90), (96.60, 10.86)), "svhn_cropped": ((97.43, 3.99), (98.00, 6.36)),
}  # fmt: skip
PAPER_OOD = {"fashion_mnist": (99.36, 99.64), "cifar10": (94.24, 95.81)}  # Table 3, 1st / 2nd
PAPER_UNTARGETED = {  # Table 5: detection (%) at the 1st / 2nd percentile
    "mnist": {"deepfool": (98.00, 98.60), "boundary": (100.0, 100.0),
              "local_search": (99.90, 100.0)},
    "cifar10": {"deepfool": (61.10, 64.30), "boundary": (100.0, 100.0),
                "local_search": (88.80, 93.10)},
}  # fmt: skip
PAPER_CW = {  # Table 7: (detection 1st, 2nd, success) (%)
    "mnist": {"0": (100.0, 100.0, 84.65), "500": (99.78, 99.78, 76.61),
              "1000": (90.24, 95.98, 45.56)},
    "cifar10": {"0": (93.93, 94.80, 70.84), "500": (76.55, 84.07, 61.26),
                "1000": (47.86, 75.13, 48.86)},
}  # fmt: skip
PAPER_LOGITS_MNIST = {  # Table 4
    "thresholds": [477.6, 465.2, 481.1, 477.7, 465.4, 407.2, 474.5, 470.4, 472.3, 463.5],
    "original": [482.5, -644.5, -440.8, -378.8, -1082.5, -409.8, -473.8, -850.0, -415.0, -699.2],
    "deepfool": [243.4, -306.4, -172.4, -394.1, -538.3, -181.0, 243.5, -944.2, -107.7, -524.1],
    "boundary": [-58.5, 11.5, 205.7, -149.7, -415.1, -308.0, -356.3, 205.8, -223.3, -250.3],
    "local_search": [180.4, -225.3, -481.9, -281.3, -498.9, -223.2, -378.8, -257.9, -143.1,
                     189.9],
}  # fmt: skip


def make_cells(args) -> list[cells.Cell]:
    return [
        cells.Cell(name, HERE / f"{name}_cell.py", Path(args.workdir) / name, {}) for name in CELLS
    ]


def make_digest(name: str, workdir: Path, results: dict) -> dict:
    """What RESULTS.md and the figures need of a finished cell, from its workdir."""
    config = json.loads((workdir / "config.json").read_text())
    sdim = config["models"]["sdim"]
    return {
        "cell": name,
        "experiment": results.get("experiment", ""),
        "finished": datetime.datetime.fromtimestamp(
            (workdir / "results.json").stat().st_mtime, datetime.timezone.utc
        ).isoformat(timespec="seconds"),
        "device": results["meta"]["device"],
        "dataset": config["data"]["name"],
        "n": sdim["architecture"].get("n", 1),
        "batch_size": sdim["training"]["batch_size"],
        "planned_epochs": sdim["training"]["num_epochs"],
        "models": cells.training_summary(workdir),
        "checkpoints": results["meta"].get("checkpoints"),
        "evaluation_seconds": results["meta"].get("seconds"),
        **{
            k: results.get(k)
            for k in (
                "classification",
                "rejection",
                "ood",
                "attacks",
                "adversarial_rejection",
                "cw_rejection",
            )
        },  # fmt: skip
    }


# ------------------------------------------------------------------------------ tables


def _pct(value, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{100 * value:.{digits}f}"
    )  # fmt: skip


def _paper(value) -> str:
    return "" if value is None else f" [{value:g}]"


def accuracy_tables(d: dict) -> list[str]:
    ds = d["dataset"]
    paper = PAPER_ACCURACY.get(ds, (None, None))
    acc = {m: d["classification"][m]["accuracy"] for m in ("disc", "sdim")}
    lines = [
        "Table 1, test accuracy (%) [paper]; Table 2, rejection by per-class thresholds at the "
        "1st / 2nd percentile of log p(x~|c) over correctly classified training inputs: "
        "accuracy on the accepted test inputs and the rejection rate (%) [paper].",
        "",
        "| model | accuracy | 1st pct: acc. left | 1st pct: rejected | 2nd pct: acc. left | "
        "2nd pct: rejected |",
        "|---|---|---|---|---|---|",
        f"| disc. ResNet(8n+2), n = {d['n']} | {_pct(acc['disc'])}{_paper(paper[0])} | | | | |",
    ]
    rej = PAPER_REJECTION.get(ds, ((None, None), (None, None)))
    cells_ = []
    for i, p in enumerate(("1", "2")):
        row = d["rejection"]["sdim"][p]
        cells_ += [
            f"{_pct(row['accuracy_on_accepted'])}{_paper(rej[i][0])}",
            f"{_pct(row['rejection_rate'])}{_paper(rej[i][1])}",
        ]
    lines.append(f"| SDIM | {_pct(acc['sdim'])}{_paper(paper[1])} | " + " | ".join(cells_) + " |")
    return lines


def ood_table(d: dict) -> list[str]:
    row1 = d["rejection"]["sdim"]["1"]
    outs = sorted(row1.get("out_classwise_detection", {}))
    if not outs:
        return []
    paper = PAPER_OOD.get(d["dataset"], (None, None))
    lines = [
        "Table 3, OOD detection (%): the class-wise mean (for each class c, the share of the OOD "
        "set with log p(x~|c) < delta_c, averaged over c) [paper], and the share Eq. 9 rejects "
        "(the deployed rule); AUROC (%) of the `ood` task's scores (in-distribution positive).",
        "",
        "| OOD set | class-wise 1st | class-wise 2nd | Eq. 9 rejected 1st | Eq. 9 rejected 2nd |"
        + " AUROC max log p(x~|c) | AUROC SDIM max softmax | AUROC disc max softmax |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for out in outs:
        r = [d["rejection"]["sdim"][p] for p in ("1", "2")]
        auroc = []
        for ref in ("sdim/max_log_likelihood", "sdim/max_softmax", "disc/max_softmax"):
            pair = (d.get("ood") or {}).get(f"{d['dataset']}->{out}", {}).get(ref)
            auroc.append(_pct(pair.get("auroc")) if pair else "-")
        lines.append(
            f"| {out} | {_pct(r[0]['out_classwise_detection'][out]['mean'])}{_paper(paper[0])} | "
            f"{_pct(r[1]['out_classwise_detection'][out]['mean'])}{_paper(paper[1])} | "
            f"{_pct(r[0]['out_rejection_rate'][out])} | {_pct(r[1]['out_rejection_rate'][out])} "
            f"| " + " | ".join(auroc) + " |"
        )
    return lines


def _detection_cells(entry: dict, paper) -> list[str]:
    out = []
    for i, p in enumerate(("1", "2")):
        det = entry["detection"][p]
        mark = "" if paper is None else _paper(paper[i])
        out.append(f"{_pct(det['detection_rate'])} ({det['detected']}/{entry['successes']}){mark}")
    return out


def attack_tables(d: dict) -> list[str]:
    lines = []
    adv = d.get("adversarial_rejection")
    if adv:
        paper = PAPER_UNTARGETED.get(d["dataset"], {})
        lines += [
            f"Table 5, untargeted attacks on the first {adv['num_images']} test images (clean "
            f"accuracy {_pct(adv['clean_accuracy'])} %): success = classified as another class "
            "than the label; detection = successes rejected by Eq. 9 (%, detected / successes) "
            "[paper].",
            "",
            "| attack | successes / attempts | detection 1st pct | detection 2nd pct | seconds |",
            "|---|---|---|---|---|",
        ]
        for name, e in adv["attacks"].items():
            lines.append(
                f"| {name} | {e['successes']}/{e['attempts']} | "
                + " | ".join(_detection_cells(e, paper.get(name)))
                + f" | {e['seconds']:.0f} |"
            )
        lines.append("")
    cw = d.get("cw_rejection")
    if cw:
        paper = PAPER_CW.get(d["dataset"], {})
        lines += [
            f"Table 7, targeted CW-L2 at every other class of each correctly classified image of "
            f"the first {cw['num_images']} ({next(iter(cw['attacks'].values()))['sources']} "
            "sources), kappa in raw log-likelihood units: success (%, successes / attempts) and "
            "detection (%, detected / successes) [paper].",
            "",
            "| kappa | success | detection 1st pct | detection 2nd pct | seconds |",
            "|---|---|---|---|---|",
        ]
        for e in cw["attacks"].values():
            kappa = f"{e['spec']['confidence']:g}"
            p = paper.get(kappa)
            success = f"{_pct(e['success_rate'])} ({e['successes']}/{e['attempts']})"
            lines.append(
                f"| {kappa} | {success}{_paper(p[2] if p else None)} | "
                + " | ".join(_detection_cells(e, p))
                + f" | {e['seconds']:.0f} |"
            )
        lines.append("")
    return lines


def logit_table(d: dict) -> list[str]:
    adv = d.get("adversarial_rejection")
    if not adv or adv["logit_table"]["original"] is None:
        return []
    t = adv["logit_table"]
    cw = (d.get("cw_rejection") or {}).get("logit_table", {})
    rows = [("thresholds", t["thresholds"]), ("original", t["original"])]
    rows += list(t["untargeted"].items())
    rows += [(f"{k} (target's score)", v) for k, v in cw.get("targeted", {}).items()]
    header = list(range(len(t["thresholds"])))

    def fmt(values):
        return " | ".join("-" if v is None else f"{v:.1f}" for v in values)

    lines = [
        f"Tables 4 / 6: log p(x~|c) of test image {t['image_index']} (class {t['label']}) for "
        "c = 0..9, clean and after each untargeted attack; CW rows give the target class's "
        f"score per target ('-' = failed); thresholds at the {t['percentile']}th percentile.",
        "",
        "| | " + " | ".join(str(c) for c in header) + " |",
        "|---" * (len(header) + 1) + "|",
    ]
    lines += [f"| {name} | {fmt(values)} |" for name, values in rows]
    if d["dataset"] == "mnist":
        lines += [f"| paper: {k} | {fmt(v)} |" for k, v in PAPER_LOGITS_MNIST.items()]
    return lines


def fig4_table(d: dict) -> list[str]:
    attacks = d.get("attacks")
    if not attacks:
        return []
    names = list(attacks["sdim"]["accuracy"])
    eps = attacks["sdim"]["epsilons"]
    lines = [
        f"App. D.1 / Fig. 4: accuracy (%) under L-inf attacks on the cross-entropy of the "
        f"softmax of the class scores, first {attacks['sdim']['num_images']} test images; the "
        "discriminative counterpart as the baseline (the paper's GBZ is unspecified).",
        "",
        "| epsilon | " + " | ".join(f"SDIM {n}" for n in names)
        + " | " + " | ".join(f"disc {n}" for n in names) + " |",
        "|---" * (2 * len(names) + 1) + "|",
    ]  # fmt: skip
    for i, e in enumerate(eps):
        cells_ = [_pct(attacks[m]["accuracy"][n][i], 1) for m in ("sdim", "disc") for n in names]
        lines.append(f"| {e:g} | " + " | ".join(cells_) + " |")
    return lines


def claim_checks(d: dict) -> list[str]:
    acc = {m: d["classification"][m]["accuracy"] for m in ("disc", "sdim")}
    r1 = d["rejection"]["sdim"]["1"]
    lines = [
        "Claims (computed from the numbers above):",
        "",
        f"- SDIM accuracy close to its discriminative counterpart: SDIM - disc = "
        f"{100 * (acc['sdim'] - acc['disc']):+.2f} points (paper: "
        + (
            f"{PAPER_ACCURACY[d['dataset']][1] - PAPER_ACCURACY[d['dataset']][0]:+.2f})."
            if d["dataset"] in PAPER_ACCURACY
            else "-)."
        ),
        f"- Rejecting {_pct(r1['rejection_rate'])} % of the test inputs (1st percentile) moves "
        f"the accuracy from {_pct(acc['sdim'])} to {_pct(r1['accuracy_on_accepted'])} %: "
        + ("raised." if r1["accuracy_on_accepted"] > acc["sdim"] else "**not raised**."),
    ]
    adv = d.get("adversarial_rejection")
    if adv:
        rates = {n: e["detection"]["1"]["detection_rate"] for n, e in adv["attacks"].items()}
        lines.append(
            "- Detection of successful untargeted attacks (1st pct): "
            + ", ".join(f"{n} {_pct(v)} %" for n, v in rates.items())
            + "."
        )
    cw = d.get("cw_rejection")
    if cw:
        rates = [e["detection"]["1"]["detection_rate"] for e in cw["attacks"].values()]
        known = [r for r in rates if r is not None]
        falling = all(b <= a for a, b in zip(known, known[1:], strict=False))
        lines.append(
            "- CW-L2 detection as kappa grows (1st pct): "
            + " -> ".join(_pct(r) for r in rates)
            + (" %: falls (or holds)." if falling else " %: **does not fall**.")
        )
    return lines


def budget_table(digests: dict) -> list[str]:
    lines = [
        "## Budget and provenance",
        "",
        "The paper trains 500 epochs and attacks the first 1000 test images (CW-L2: ~990 "
        "sources x 9 targets); any smaller number below is this machine's reduction.",
        "",
        "| cell | model | epochs run (planned) | best epoch (train loss) | train wall (s) | "
        "device | finished |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, d in digests.items():
        for model, s in d["models"].items():
            lines.append(
                f"| {name} | {model} | {s.get('epochs')} ({d['planned_epochs']}) | "
                f"{(d.get('checkpoints') or {}).get(model)} | {s['train_seconds']:.0f} | "
                f"{d['device']} | "
                f"{d['finished']} |"
            )
    return lines


def write_results(digests: dict, output: Path) -> None:
    text = [
        '# SDIM: generative classifiers with rejection ("Reject Illegal Inputs", seed 003)',
        "",
        "Generated by `python experiments/sdim/run_all.py --workdir runs/sdim` from the "
        "committed digests in `results/` (`--collect` rebuilds it from them). The paper's "
        "numbers are in [brackets]. Choices the paper leaves open: `base.py`; the reduced "
        "budget: the last table and each table's caption.",
        "",
    ]
    for name, d in digests.items():
        text += [f"## {CELLS[name][1]}: {d['experiment']}", ""]
        for part in (accuracy_tables(d), ood_table(d), attack_tables(d), logit_table(d),
                     fig4_table(d), claim_checks(d)):  # fmt: skip
            if part:
                text += [*part, ""]
    cells.finish_results(
        text,
        HERE,
        output,
        "python experiments/sdim/figures.py --workdir runs/sdim",
        budget_table(digests),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/sdim")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument(
        "--collect", action="store_true", help="only rebuild RESULTS.md from the digests"
    )
    cells.add_arguments(parser)
    args = parser.parse_args(argv)
    selected = cells.select(make_cells(args), args.cells or "mnist,fashion_mnist")
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

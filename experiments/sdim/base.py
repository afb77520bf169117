"""Shared builder of the SDIM experiments ("Reject Illegal Inputs", seed 003; digest
spec/sdim.md).

One cell per training set trains the SDIM and its discriminative counterpart (the same
encoder with a C-way head and cross-entropy, open point 13) into one workdir:

- ``sdim``: kind ``"sdim"``, ResNet(8n+2) encoder (n = 1, ResNet10, for MNIST / FMNIST; n = 3,
  ResNet26, for CIFAR-10 / SVHN), d = 64, alpha = beta = gamma = 1, K = 10, negatives by a
  random derangement of the batch (open point 3);
- ``disc``: kind ``"classifier"``, network ``resnet_8n2`` with the same n and head.

Choices where the paper is silent (digest section 6; all config options): batch 128 (open point
6); 28 -> 32 by bilinear resizing (open point 7), pixels in [0, 1], no normalisation, no
augmentation for MNIST / FMNIST; pad-4 crop + flip for CIFAR-10 / SVHN. Adam 1e-3, no decay.

Model selection: the paper keeps the checkpoint with the lowest training loss (App. B.1, no
validation split); so do these configs (``best_metric = "train/loss"``), which differs from the
validation-carve selection of the other experiments: the test split is never used either way.
A 5,000-image validation carve is still held out (and reported) so that the two rules can be
compared; it is taken from the 60,000 training images, so 55,000 train.

Budget: the paper trains 500 epochs. ``EPOCHS`` is this machine's budget; RESULTS.md states it
beside every number.
"""

from __future__ import annotations

import copy

import ml_collections

EPOCHS = 500  # the paper
PERCENTILES = [1.0, 2.0]  # Table 2
CW_KAPPAS = [0.0, 500.0, 1000.0]  # Table 7, raw log-likelihood units
#: App. D.1 / Fig. 4: accuracy vs L-inf epsilon in [0, 0.5] (pixels in [0, 1])
FIG4_EPSILONS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
#: the paper states no attack settings (open point 11): the library's defaults, except PGD's
#: step (40 steps of 0.02 reach the largest epsilon) and the cells' CPU budget below
PGD = {"num_steps": 40, "step_size": 0.02}

#: per dataset: channels, n, augmentation, OOD set
DATASETS = {
    "mnist": {"n": 1, "crop_padding": 0, "flip": False, "out": ["fashion_mnist"]},
    "fashion_mnist": {"n": 1, "crop_padding": 0, "flip": False, "out": ["mnist"]},
    "cifar10": {"n": 3, "crop_padding": 4, "flip": True, "out": ["svhn_cropped"]},
    "svhn_cropped": {"n": 3, "crop_padding": 4, "flip": True, "out": ["cifar10"]},
}


def _training(epochs: int, batch_size: int) -> dict:
    return {
        "batch_size": batch_size,
        "eval_batch_size": 1000,
        "num_epochs": epochs,
        "optimizer": {"name": "adam", "learning_rate": 1e-3},
        "best_metric": "train/loss",
        "best_mode": "min",
    }


#: this CPU's budget for the MNIST / FMNIST cells (2 cores; one full-width ResNet10 SDIM step at
#: batch 128 takes 0.44 s, tools/bench_sdim.py: a 55,000-image epoch ~ 3.5 min per model; 3
#: epochs gave 98.3 % MNIST test accuracy, below the 99 % the attack tables need).
#: Reductions against the paper (RESULTS.md states each):
#: epochs (500 there); Boundary's proposal steps; CW-L2 on the first ``cw_images`` sources
#: (x 9 targets) instead of ~990.
CPU_BUDGET = {"epochs": 3, "boundary_steps": 200, "cw_images": 100}


def attack_sections(
    num_images: int = 1000, *, boundary_steps: int = 1000, cw_images: int | None = None
) -> dict:
    """``attacks`` (Fig. 4: FGSM and PGD-L-inf on the cross-entropy of softmax(log p(x~|c)),
    PGD with and without a random start; the counterpart as the baseline) and
    ``adversarial_rejection`` (Tables 4-7: untargeted DeepFool, Boundary and LocalSearch on the
    first ``num_images`` test images, targeted CW-L2 at kappa 0 / 500 / 1000 on the first
    ``cw_images``)."""
    untargeted = {
        "deepfool": {"attack": "deepfool"},
        "boundary": {"attack": "boundary", "num_steps": boundary_steps},
        "local_search": {"attack": "local_search"},
    }
    cw = {f"cw_{k:g}": {"attack": "cw_l2", "confidence": k} for k in CW_KAPPAS}
    return {
        "attacks": {
            "models": ["sdim", "disc"],
            "num_images": num_images,
            "chunk_size": min(250, num_images),
            "epsilons": list(FIG4_EPSILONS),
            "attacks": {
                "fgsm": {"attack": "fgsm"},
                "pgd40": {"attack": "pgd", **PGD, "random_start": False},
                "pgd40_random_start": {"attack": "pgd", **PGD, "random_start": True},
            },
        },
        "adversarial_rejection": {
            "model": "sdim",
            "percentiles": list(PERCENTILES),
            "num_images": num_images,
            "chunk_size": min(100, num_images),
            "attacks": untargeted,
        },
        "cw_rejection": {
            "task": "adversarial_rejection",
            "model": "sdim",
            "percentiles": list(PERCENTILES),
            "num_images": cw_images or num_images,
            "chunk_size": min(90, 9 * (cw_images or num_images)),
            "attacks": cw,
        },
    }


def cpu_config(name: str, train: str) -> ml_collections.ConfigDict:
    """A cell at :data:`CPU_BUDGET` (the MNIST / FMNIST cells on this machine)."""
    b = CPU_BUDGET
    c = make_config(name, train, epochs=b["epochs"])
    sections = attack_sections(boundary_steps=b["boundary_steps"], cw_images=b["cw_images"])
    for key, section in sections.items():
        c.evaluate[key] = section
    return c


def make_config(
    name: str, train: str, *, epochs: int = EPOCHS, batch_size: int = 128
) -> ml_collections.ConfigDict:
    """The SDIM and its discriminative counterpart on ``train`` (module docstring)."""
    spec = DATASETS[train]
    grey = train in ("mnist", "fashion_mnist")
    c = ml_collections.ConfigDict()
    c.name = name
    c.seed = 0
    c.progress = True
    c.data = {
        "name": train,
        "validation_split": "train",
        "validation_size": 5000,
        "preprocess": {
            "scale": True,
            "resize_to": 32 if grey else None,
            "resize_mode": "bilinear",
            "crop_padding": spec["crop_padding"],
            "horizontal_flip": spec["flip"],
        },
    }
    c.models = {
        "sdim": {
            "kind": "sdim",
            "architecture": {"n": spec["n"]},
            "training": _training(epochs, batch_size),
        },
        "disc": {
            "kind": "classifier",
            "architecture": {"network": "resnet_8n2", "network_options": {"n": spec["n"]}},
            "training": _training(epochs, batch_size),
        },
    }
    c.evaluate = {
        "checkpoint": "best",
        "batch_size": 500,
        "classification": {"models": ["sdim", "disc"], "ece_bins": 15},
        "rejection": {
            "models": ["sdim"],
            "percentiles": list(PERCENTILES),
            "out_datasets": list(spec["out"]),
        },
        "ood": {
            "out_datasets": list(spec["out"]),
            "scores": ["sdim/max_log_likelihood", "sdim/max_softmax", "disc/max_softmax"],
            "positive": "in",
        },
        **attack_sections(),
    }
    return copy.deepcopy(ml_collections.ConfigDict(c))

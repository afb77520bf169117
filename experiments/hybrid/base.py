"""Shared builder of the deep-hybrid-models experiments (master thesis, seed 000; digest
spec/hybrid_models.md).

One cell per training set trains the thesis's eight models (Table 5.2) into one workdir:

- ``resnet``: the ResNet-18 baseline with the DHM's head on its 512 features;
- ``disc_dhm``: the DHM with beta_G = 0 (no decoder; the cross-entropy alone);
- ``beta_vae``: the VAE alone (beta = 0.1, the code's mean reduction);
- ``dhm``: DHM-0..DHM-5, alpha = 10^k, k = 0..5, beta_G = 1, as ONE swept program
  (``training.sweep``, :mod:`jaxrobust.sweep`): 6 alphas x ``NUM_RUNS`` seeds, one checkpoint;
  evaluated per setting as ``dhm@alpha=1`` ... ``dhm@alpha=100000``.

Choices where the thesis is silent or disagrees with the author's code (digest section 7; all
config options):

- head input: z ~ q in training, mu at test (the thesis; ``head_input="mu"`` is the code's);
- L_G reduction: the code's mean form (per-image MSE over pixels + beta * KL over the latent
  dimensions, closed-form KL); log p(x) scores: the code's surrogate ``elbo_surrogate``, the
  summed ELBO ``elbo`` and IWAE with ``IWAE_SAMPLES`` samples, all under a unit-variance
  Gaussian in the normalised space;
- batch 512 (the thesis; the code: 400); Adam 1e-3, x0.1 every quarter of the epochs (the
  thesis: every 50 of 200); model selection by the best validation accuracy (the beta-VAE: the
  best validation loss), on the validation carve, never the test split; the same carve for
  every model (the code's baseline selected on the CIFAR-10 test set, open point 7);
- OOD inputs normalised with the in-distribution statistics (open point 8); CIFAR-100 OOD = its
  10,000 test images (open point 9); AUROC with the in-distribution positive on whole sets;
- FGSM: one gradient in the normalised space, no clipping, eps 0.02..0.08 (the thesis), and a
  pixel-space grid with clipping to [0, 1] (open point 13).

Budget: the thesis trains 200 epochs, 10 runs, full width. ``WIDTH``, ``EPOCHS`` and ``NUM_RUNS``
below are this machine's reductions for the MNIST / Fashion-MNIST stand-ins (digest section 6,
STAND-IN everywhere they appear); the SVHN / CIFAR-10 cells take the thesis's budget where TFDS
can prepare the data (``--config.models.<m>.training.num_epochs=...`` overrides either).
"""

from __future__ import annotations

import copy

import ml_collections

ALPHAS = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5]  # DHM-0 .. DHM-5
IWAE_SAMPLES = 100
FGSM_NORMALISED = [0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08]  # the thesis, normalised space
FGSM_PIXELS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]  # pixel space, clipped to [0, 1]

#: per dataset: normalisation (the code's), augmentation, validation carve, OOD set
DATASETS = {
    "svhn_cropped": {"mean": [0.5] * 3, "std": [0.5] * 3, "crop_padding": 0, "flip": False,
                     "validation_size": 14652, "out": "cifar100"},
    "cifar10": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010],
                "crop_padding": 4, "flip": True, "validation_size": 8000, "out": "cifar100"},
    # stand-ins (digest section 6): 28 -> 32 zero-padded, 50k / 10k train / validation
    "mnist": {"mean": [0.1307], "std": [0.3081], "crop_padding": 4, "flip": False,
              "validation_size": 10000, "out": "fashion_mnist"},
    "fashion_mnist": {"mean": [0.2860], "std": [0.3530], "crop_padding": 4, "flip": True,
                      "validation_size": 10000, "out": "mnist"},
}  # fmt: skip
THESIS_BUDGET = {"width": 1.0, "epochs": 200, "num_runs": 10, "batch_size": 512}
#: the stand-ins' budget on this CPU, from a timed step (tools/bench_hybrid.py's program, 1 x 32 x
#: 32 inputs, 2 cores): width 0.0625, batch 128 costs 0.44 s per DHM member-step, and the swept
#: DHM alone is 6 alphas x num_runs members. Reductions against the thesis (RESULTS.md states
#: each): width 1/16; batch 128 instead of 512 (4x the steps for the same compute); 4 epochs of a
#: 6,400-image training carve (200 steps, 25,600 images seen); one x0.1 decay after epoch 3
#: instead of three (at 200 steps three decays would leave 50 steps at the working rate); a
#: 2,000-image validation carve; IWAE with 10 samples; the first 2,000 test images.
STAND_IN_BUDGET = {"width": 0.0625, "epochs": 4, "num_runs": 3, "batch_size": 128,
                   "train_limit": 6400, "validation_limit": 2000, "decay_every_epochs": 3,
                   "iwae_samples": 10, "test_limit": 2000}  # fmt: skip


def _training(
    epochs: int, num_runs: int, batch_size: int, best: str, mode: str, decay_every: int | None
) -> dict:
    return {
        "batch_size": batch_size,
        "eval_batch_size": 1000,
        "num_epochs": epochs,
        "num_runs": num_runs,
        "optimizer": {
            "name": "adam",
            "learning_rate": 1e-3,
            # the thesis: x0.1 every 50 of 200 epochs
            "decay_every_epochs": decay_every or max(1, epochs // 4),
            "decay_factor": 0.1,
        },
        "best_metric": best,
        "best_mode": mode,
    }


def hybrid(
    variant: str, width: float, epochs: int, num_runs: int, batch_size: int,
    decay_every: int | None = None, iwae_samples: int = IWAE_SAMPLES, **arch,
) -> dict:  # fmt: skip
    architecture = {"variant": variant, "width": width, "iwae_samples": iwae_samples, **arch}
    best = ("val/loss", "min") if variant == "beta_vae" else ("val/accuracy", "max")
    return {
        "kind": "hybrid",
        "architecture": architecture,
        "training": _training(epochs, num_runs, batch_size, *best, decay_every),
    }


def dhm_settings() -> list[str]:
    """Evaluation names of DHM-0..DHM-5 (the swept model's settings)."""
    return [f"dhm@alpha={a:g}" for a in ALPHAS]


def make_config(
    name: str, train: str, *, width: float, epochs: int, num_runs: int, batch_size: int = 512,
    stand_in: bool = False, decay_every: int | None = None, iwae_samples: int = IWAE_SAMPLES,
) -> ml_collections.ConfigDict:  # fmt: skip
    """The eight models on ``train`` (module docstring), evaluated against its OOD set."""
    spec = DATASETS[train]
    budget = dict(width=width, epochs=epochs, num_runs=num_runs, batch_size=batch_size,
                  decay_every=decay_every, iwae_samples=iwae_samples)  # fmt: skip
    models = {
        "resnet": hybrid("resnet", **budget),
        "disc_dhm": hybrid("dhm", **budget, beta_g=0.0),
        "beta_vae": hybrid("beta_vae", **budget),
        "dhm": hybrid("dhm", **budget, beta_g=1.0),
    }
    models["dhm"]["training"]["sweep"] = {"alpha": list(ALPHAS)}
    classifiers = ["resnet", "disc_dhm", *dhm_settings()]
    generative = ["beta_vae", *dhm_settings()]
    c = ml_collections.ConfigDict()
    c.name = name + (" (STAND-IN for the thesis's SVHN / CIFAR-10 tables)" if stand_in else "")
    c.seed = 0
    c.progress = True
    c.data = {
        "name": train,
        "validation_split": "train",
        "validation_size": spec["validation_size"],
        "preprocess": {
            "scale": True,
            "resize_to": 32 if train in ("mnist", "fashion_mnist") else None,
            "mean": spec["mean"],
            "std": spec["std"],
            "crop_padding": spec["crop_padding"],
            "horizontal_flip": spec["flip"],
        },
    }
    c.models = models
    c.evaluate = {
        "checkpoint": "best",
        "batch_size": 500,
        "classification": {"models": classifiers, "ece_bins": 15},
        "ood": {
            "out_datasets": [spec["out"]],
            "scores": [f"{m}/max_softmax" for m in classifiers]
            + [f"{m}/{s}" for m in generative for s in ("elbo_surrogate", "elbo", "iwae")],
            "positive": "in",
        },
        "attacks": {
            "models": classifiers,
            "num_images": 1000,
            "chunk_size": 250,
            "epsilons": FGSM_NORMALISED,
            "domain": None,
            "space": "model_input",
            "attacks": {"fgsm": {"attack": "fgsm"}},
        },
        # the same attack with epsilon in pixels, normalised inside, clipped to [0, 1]
        "fgsm_pixels": {
            "task": "attacks",
            "models": classifiers,
            "num_images": 1000,
            "chunk_size": 250,
            "epsilons": FGSM_PIXELS,
            "domain": [0.0, 1.0],
            "space": "pixels",
            "attacks": {"fgsm": {"attack": "fgsm"}},
        },
    }
    return copy.deepcopy(ml_collections.ConfigDict(c))


def stand_in_config(name: str, train: str) -> ml_collections.ConfigDict:
    """A stand-in cell (digest section 6) at :data:`STAND_IN_BUDGET`, with the pixel-space FGSM
    grid beside the thesis's normalised one and the semantic test sets of the stand-ins."""
    b = STAND_IN_BUDGET
    c = make_config(name, train, stand_in=True, **{
        "width": b["width"], "epochs": b["epochs"], "num_runs": b["num_runs"],
        "batch_size": b["batch_size"], "decay_every": b["decay_every_epochs"],
        "iwae_samples": b["iwae_samples"],
    })  # fmt: skip
    c.data.train_limit = b["train_limit"]
    c.data.validation_limit = b["validation_limit"]
    c.evaluate.test_limit = b["test_limit"]
    return c

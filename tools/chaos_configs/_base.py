"""Shared by the chaos-harness targets: tiny nets on the synthetic stand-ins (tests/synthetic.py).

Each target file calls :func:`base` and changes what it tests. Sized so one training process
takes seconds after JAX start-up on 2 CPU cores: 256 training images, 4 epochs of 4 steps.
"""

import ml_collections

EPOCHS = 4


def vae(epochs: int = EPOCHS) -> dict:
    return {
        "kind": "vae",
        "architecture": {
            "latent_dim": 4,
            "encoder_features": (4, 8),
            "decoder_features": (8, 4),
        },
        "training": {
            "batch_size": 64,
            "num_epochs": epochs,
            "eval_batch_size": 64,
            "optimizer": {"name": "adam", "learning_rate": 1e-3},
            # "Best" = the largest validation loss, usually epoch 1: so that two steps are kept
            # (best and last) and the preservation policy is exercised across resumes.
            "best_metric": "val/loss",
            "best_mode": "max",
        },
    }


def classifier(epochs: int = EPOCHS) -> dict:
    return {
        "kind": "classifier",
        "architecture": {
            "network": "small_cnn",
            "network_options": {"features": (4, 8), "hidden": 16},
        },
        "training": {
            "batch_size": 64,
            "num_epochs": epochs,
            "eval_batch_size": 64,
            "optimizer": {"name": "adam", "learning_rate": 1e-3},
            "best_metric": "val/accuracy",
            "best_mode": "max",
        },
    }


def base(name: str, models: dict) -> ml_collections.ConfigDict:
    """A config of ``models`` on the synthetic Fashion-MNIST stand-in, MNIST stand-in as OOD."""
    c = ml_collections.ConfigDict()
    c.name = f"chaos_{name}"
    c.seed = 0
    c.progress = False
    c.data = ml_collections.ConfigDict(
        {
            "name": "fashion_mnist",
            "validation_split": "test",  # the stand-ins have 512 training images
            "train_limit": 256,
            "validation_limit": 64,
            "preprocess": {"scale": True},
        }
    )
    c.models = ml_collections.ConfigDict(models)
    classifiers = [n for n, m in models.items() if m["kind"] == "classifier"]
    scores = [f"{n}/max_softmax" for n in classifiers]
    scores += [f"{n}/elbo" for n, m in models.items() if m["kind"] == "vae"]
    c.evaluate = ml_collections.ConfigDict(
        {
            "checkpoint": "best",
            "batch_size": 64,
            "test_limit": 128,
            "ood": {"out_datasets": ["mnist"], "scores": scores},
        }
    )
    if classifiers:
        c.evaluate.classification = {"models": classifiers, "ece_bins": 10}
    return c


def posterior_vae(method: dict, epochs: int = EPOCHS) -> ml_collections.ConfigDict:
    """One VAE with a posterior over its decoder, evaluated with posterior scores."""
    model = vae(epochs)
    model["architecture"].update({"iwae_samples": 2, "iwae_chunk": 2})
    model["training"]["posterior"] = {"filter": "^decoder/", **method}
    c = base(method["method"], {"vae": model})
    c.evaluate.ood.scores = ["vae/expected_ll", "vae/waic"]
    c.evaluate.ood.positive = "higher"
    return c

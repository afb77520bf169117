"""The small MNIST CNN that every attack experiment attacks (parity, benchmark, robustness curve).

`SmallCNN` (two 3x3 conv + 2x2 max-pool stages, 32/64 channels, a 128-unit hidden layer), inputs
in [0, 1] (no normalisation, so attack epsilons are in pixel units as in Madry et al. 2018),
Adam 1e-3, batch 128, 3 epochs on 55,000 training images; the other 5,000 (carved from the
training split, seed 0) validate each epoch and the best checkpoint by validation loss is the
one attacked. The test split is never used for selection.

    jaxrobust train --config experiments/attacks/mnist_cnn.py --workdir runs/attacks/mnist_cnn
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "attacks_mnist_cnn"
    c.seed = 0
    c.progress = True

    c.data = ml_collections.ConfigDict()
    c.data.name = "mnist"
    c.data.validation_split = "train"  # carved from the training split (model selection)
    c.data.validation_size = 5000
    c.data.validation_seed = 0
    c.data.train_limit = 0  # 0 = all 55,000 training images left after the carve
    c.data.validation_limit = 0
    c.data.preprocess = ml_collections.ConfigDict({"scale": True})

    c.models = ml_collections.ConfigDict()
    c.models.cnn = ml_collections.ConfigDict(
        {
            "kind": "classifier",
            "architecture": {"network": "small_cnn"},
            "training": {
                "batch_size": 128,
                "num_epochs": 3,
                "optimizer": {"name": "adam", "learning_rate": 1e-3},
                "best_metric": "val/loss",
                "best_mode": "min",
            },
        }
    )

    c.evaluate = ml_collections.ConfigDict(
        {
            "checkpoint": "best",
            "batch_size": 1000,
            "test_limit": 0,
            "classification": {"models": ["cnn"], "ece_bins": 15},
            # The robustness curve (experiments/attacks/robustness_curve.py): FGSM and PGD-40 at
            # L-inf eps 0..0.3 on the first 1000 test images, cross-entropy, pixels in [0, 1].
            "attacks": {
                "models": ["cnn"],
                "num_images": 1000,
                "chunk_size": 250,
                "seed": 0,
                "epsilons": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
                "attacks": {
                    "fgsm": {"attack": "fgsm"},
                    "pgd": {
                        "attack": "pgd",
                        "num_steps": 40,
                        "step_size": 0.01,
                        "random_start": True,
                    },
                },
            },
        }
    )
    return c

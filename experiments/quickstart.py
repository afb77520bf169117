"""Quickstart: a conv VAE and a small CNN on Fashion-MNIST; OOD detection against MNIST.

Trains both models on 55,000 Fashion-MNIST training images (inputs scaled to [0, 1], no other
preprocessing), validates each epoch on the other 5,000 (carved from the training split with
seed 0; best checkpoint by validation loss; the test split is never used for selection), then
`jaxrobust evaluate` reports classifier accuracy and ECE (15 equal-width bins), and AUROC for
Fashion-MNIST (in) vs MNIST (out) with three scores: the VAE's ELBO (one z sample, larger = in),
KL(q(z|x) || p(z)) (larger = OOD) and the classifier's max softmax (larger = in).

Budget: sized to finish, data fetch included, in under 5 minutes on 2 CPU cores.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "quickstart"
    c.seed = 0
    c.progress = True

    c.data = ml_collections.ConfigDict()
    c.data.name = "fashion_mnist"
    c.data.validation_split = "train"  # carved from the training split (model selection)
    c.data.validation_size = 5000
    c.data.validation_seed = 0
    c.data.train_limit = 0  # 0 = all 55,000 training images left after the carve
    c.data.validation_limit = 0
    c.data.preprocess = ml_collections.ConfigDict({"scale": True})

    c.models = ml_collections.ConfigDict()
    c.models.vae = ml_collections.ConfigDict(
        {
            "kind": "vae",  # conv encoder/decoder, Bernoulli p(x|z), N(0, I) prior
            "architecture": {
                "latent_dim": 16,
                "encoder_features": (32, 64),
                "decoder_features": (64, 32),
            },
            "training": {
                "batch_size": 128,
                "num_epochs": 3,
                "optimizer": {"name": "adam", "learning_rate": 1e-3},
                "best_metric": "val/loss",
                "best_mode": "min",
            },
        }
    )
    c.models.classifier = ml_collections.ConfigDict(
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
            "test_limit": 0,  # 0 = whole test sets
            "classification": {"models": ["classifier"], "ece_bins": 15},
            "ood": {
                "out_datasets": ["mnist"],
                "scores": ["vae/elbo", "vae/kl", "classifier/max_softmax"],
            },
        }
    )
    return c

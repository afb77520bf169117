"""Table 4.7, FMNIST vs MNIST column: the S-VAE on S^3 (m = 4) and the vanilla baseline
(Gaussian latent, m = 3) trained on Fashion-MNIST, 10 runs each; MNIST out."""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))
TRAIN, OUT = "fashion_mnist", ["mnist"]
EPOCHS = 10  # CPU budget (10 runs of each model as one program)


def get_config():
    return _base.svae_cell(
        "Table 4.7: S-VAE (S^3), FMNIST in, MNIST out", TRAIN, OUT, sphere_dim=3, epochs=EPOCHS
    )

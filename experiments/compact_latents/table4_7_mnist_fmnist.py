"""Table 4.7, MNIST vs FMNIST column: the S-VAE on S^2 (m = 3) and the vanilla baseline
(Gaussian latent, m = 2) trained on all of MNIST, 10 runs each; Fashion-MNIST out."""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))
TRAIN, OUT = "mnist", ["fashion_mnist"]
EPOCHS = 10  # CPU budget (10 runs of each model as one program)


def get_config():
    return _base.svae_cell(
        "Table 4.7: S-VAE (S^2), MNIST in, FMNIST out", TRAIN, OUT, sphere_dim=2, epochs=EPOCHS
    )

"""Chapter 5, the MNIST column: the victim CNN, the Lipschitz VAE and the classical VAE trained on
MNIST (FMNIST as outliers); every Chapter-5 table of that column evaluates this workdir.

    jaxrobust train --config experiments/unified_detection/mnist_cell.py \
        --workdir runs/unified_detection/mnist
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.make_config("Chapter 5: MNIST in, FMNIST out", "mnist", "fashion_mnist")

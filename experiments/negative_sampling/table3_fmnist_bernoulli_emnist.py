"""Table 3: FMNIST->MNIST, Bernoulli, EMNIST-Letters negatives (seed 004).

Paper budget: 100 epochs, 5 runs; see base.py for the choices. Needs the auxiliary dataset
(`jaxrobust data fetch emnist_letters` on a machine with TFDS access).
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.make_config(
        "Table 3: FMNIST->MNIST, Bernoulli, EMNIST-Letters negatives",
        "fashion_mnist",
        "mnist",
        "bernoulli",
        negatives="dataset",
        negatives_dataset="emnist_letters",
    )

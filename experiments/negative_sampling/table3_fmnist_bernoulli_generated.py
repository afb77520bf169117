"""Table 3/5: FMNIST->MNIST, Bernoulli, generated negatives (seed 004).

Paper budget: 100 epochs, 5 runs; see base.py for the choices.
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.make_config(
        "Table 3/5: FMNIST->MNIST, Bernoulli, generated negatives",
        "fashion_mnist",
        "mnist",
        "bernoulli",
        negatives="generated",
        colour=False,
    )

"""Table 1: FMNIST->MNIST, Bernoulli, baseline (seed 004).

Paper budget: 100 epochs, 5 runs; see base.py for the choices.
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.make_config(
        "Table 1: FMNIST->MNIST, Bernoulli, baseline",
        "fashion_mnist",
        "mnist",
        "bernoulli",
        negatives="none",
        colour=False,
    )

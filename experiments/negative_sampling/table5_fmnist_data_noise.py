"""Section 4.3: FMNIST->MNIST, Bernoulli, data + N(0, 0.25^2) negatives (seed 004).

Paper budget: 100 epochs, 5 runs; see base.py for the choices.
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.make_config(
        "Section 4.3: FMNIST->MNIST, Bernoulli, data + N(0, 0.25^2) negatives",
        "fashion_mnist",
        "mnist",
        "bernoulli",
        negatives="data_noise",
        colour=False,
    )

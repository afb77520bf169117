"""Table 2: SVHN->CIFAR-10, Gaussian, baseline (seed 004).

Paper budget: 100 epochs, 5 runs; see base.py for the choices.
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.make_config(
        "Table 2: SVHN->CIFAR-10, Gaussian, baseline",
        "svhn_cropped",
        "cifar10",
        "gaussian",
        negatives="none",
        colour=True,
    )

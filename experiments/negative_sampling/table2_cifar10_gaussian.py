"""Table 2: CIFAR-10->SVHN, Gaussian, baseline (seed 004).

Paper budget: 100 epochs, 5 runs; see base.py for the choices.
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.make_config(
        "Table 2: CIFAR-10->SVHN, Gaussian, baseline",
        "cifar10",
        "svhn_cropped",
        "gaussian",
        negatives="none",
        colour=True,
    )

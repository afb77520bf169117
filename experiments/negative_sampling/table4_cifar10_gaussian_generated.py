"""Table 4: CIFAR-10->SVHN, Gaussian, generated negatives (seed 004).

Paper budget: 100 epochs, 5 runs; see base.py for the choices.
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("ns_base", Path(__file__).with_name("base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config():
    return _base.make_config(
        "Table 4: CIFAR-10->SVHN, Gaussian, generated negatives",
        "cifar10",
        "svhn_cropped",
        "gaussian",
        negatives="generated",
        colour=True,
    )

"""Table 5: FMNIST->MNIST, Bernoulli, KMNIST negatives (seed 004).

Paper budget: 100 epochs, 5 runs; see base.py for the choices. Needs the auxiliary dataset
(`jaxrobust data fetch kmnist` on a machine with TFDS access).
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("ns_base", Path(__file__).with_name("base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config():
    return _base.make_config(
        "Table 5: FMNIST->MNIST, Bernoulli, KMNIST negatives",
        "fashion_mnist",
        "mnist",
        "bernoulli",
        negatives="dataset",
        negatives_dataset="kmnist",
    )

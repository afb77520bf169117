"""Table 3.3: MNIST in, FMNIST out, NumPyro NUTS on the decoder's last
layer (an extra column; seed 001, Ch.3).

Paper budget: 100 epochs (to convergence), 200 posterior samples; see base.py for the choices.
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.make_config(
        "Table 3.3: MNIST in, FMNIST out, NUTS, last decoder layer", "mnist", "fashion_mnist", "hmc"
    )

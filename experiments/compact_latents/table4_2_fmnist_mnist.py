"""Table 4.2, FMNIST vs MNIST column (and Figure 4.2 right): trained on Fashion-MNIST.

Vanilla CNN VAE (log-likelihood, input complexity, typicality), the Lipschitz VAE (std of the
log importance weights, hole indicator) and its unconstrained MLP twin (hole indicator, for
Figure 4.2). The BBB rows of Table 4.2 come from experiments/bayesian_vae.
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))
TRAIN, OUT = "fashion_mnist", "mnist"


def get_config():
    c = _base.table4_2_cell("Table 4.2: FMNIST in, MNIST out", TRAIN, OUT)
    return c

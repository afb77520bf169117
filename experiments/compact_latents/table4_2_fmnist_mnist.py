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
    return _base.make_config(
        "Table 4.2: FMNIST in, MNIST out",
        TRAIN,
        [OUT],
        {
            "vanilla": _base.vanilla_cnn(num_runs=1),
            "lipschitz": _base.lipschitz(num_runs=3),
            "vanilla_mlp": _base.vanilla_mlp(num_runs=3),
        },
        {
            "vanilla": ("iwae", "input_complexity", "typicality"),
            "lipschitz": ("iwae_std", "hole_indicator", "iwae"),
            "vanilla_mlp": ("hole_indicator", "iwae"),
        },
    )

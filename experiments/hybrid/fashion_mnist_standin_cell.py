"""Deep hybrid models, STAND-IN (digest section 6): FMNIST in, MNIST out, the CIFAR-10 analogue.

Stand-in cells S-acc, S-ECE and S-FGSM, and S-near.

Tests the thesis's claims, not its numbers: the same eight models and protocols on 28x28 data
zero-padded to 32, at this CPU's budget (base.STAND_IN_BUDGET: narrow ResNet-18, fewer epochs
and runs; RESULTS.md states what each run used).

    jaxrobust train --config experiments/hybrid/fashion_mnist_standin_cell.py \
        --workdir runs/hybrid/fashion_mnist_standin
    jaxrobust evaluate --workdir runs/hybrid/fashion_mnist_standin
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.stand_in_config(
        "Deep hybrid models: FMNIST in, MNIST out (S-near; the CIFAR-10 analogue)",
        "fashion_mnist",
    )

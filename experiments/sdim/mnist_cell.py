"""SDIM on MNIST (Tables 1, 2, 4-7 MNIST columns; Fig. 4), FMNIST as the OOD set.

ResNet10 encoder, 28 -> 32 bilinear, pixels in [0, 1]; the SDIM and its discriminative
counterpart at this CPU's budget (base.CPU_BUDGET; RESULTS.md states it beside every number).

    jaxrobust train --config experiments/sdim/mnist_cell.py --workdir runs/sdim/mnist
    jaxrobust evaluate --workdir runs/sdim/mnist --config experiments/sdim/mnist_cell.py
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.cpu_config("SDIM: MNIST (Tables 1, 2, 4-7; Fig. 4)", "mnist")

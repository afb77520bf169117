"""SDIM on Fashion-MNIST (Tables 1, 2 FMNIST columns; Table 3 FMNIST -> MNIST; Fig. 2).

ResNet10 encoder, 28 -> 32 bilinear, pixels in [0, 1]; the SDIM and its discriminative
counterpart at this CPU's budget (base.CPU_BUDGET; RESULTS.md states it beside every number).

    jaxrobust train --config experiments/sdim/fashion_mnist_cell.py \\
        --workdir runs/sdim/fashion_mnist
    jaxrobust evaluate --workdir runs/sdim/fashion_mnist \\
        --config experiments/sdim/fashion_mnist_cell.py
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.cpu_config("SDIM: Fashion-MNIST (Tables 1-3; Fig. 2)", "fashion_mnist")

"""SDIM on SVHN (Tables 1, 2 SVHN columns), CIFAR-10 as the OOD set.

ResNet26 encoder, pad-4 random crop + horizontal flip, pixels in [0, 1]; the paper's budget
(500 epochs, all attacks on the first 1000 test images). Needs TFDS to prepare the data (a
machine with internet); tested end to end on synthetic stand-ins of the same shapes
(tests/test_sdim_configs.py).

    jaxrobust train --config experiments/sdim/svhn_cell.py --workdir runs/sdim/svhn
    jaxrobust evaluate --workdir runs/sdim/svhn --config experiments/sdim/svhn_cell.py
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.make_config("SDIM: SVHN (Tables 1, 2 SVHN columns)", "svhn_cropped")

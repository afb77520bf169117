"""Deep hybrid models, SVHN in, CIFAR-100 out (Tables 5.3-5.8, SVHN columns).

The thesis's budget (full width, 200 epochs, 10 runs, batch 512). Needs TFDS to prepare the
data (a machine with internet); tested end to end on synthetic stand-ins of the same shapes
(tests/test_hybrid_configs.py).

    jaxrobust train --config experiments/hybrid/svhn_cell.py --workdir runs/hybrid/svhn
    jaxrobust evaluate --workdir runs/hybrid/svhn
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    budget = _base.THESIS_BUDGET
    return _base.make_config(
        "Deep hybrid models: SVHN in, CIFAR-100 out (Tables 5.3-5.8, SVHN columns)",
        "svhn_cropped",
        width=budget["width"],
        epochs=budget["epochs"],
        num_runs=budget["num_runs"],
        batch_size=budget["batch_size"],
    )

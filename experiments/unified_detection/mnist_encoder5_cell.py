"""Ablation of the MNIST column: the same cell with the Lipschitz VAE's encoder bound M = 5
instead of the document's 1 (Chapter 4's ablation, ``experiments/compact_latents``, found that
M = 1 underfits). Everything else, including the victim CNN and the classical VAE, as
``mnist_cell.py``.

    jaxrobust train --config experiments/unified_detection/mnist_encoder5_cell.py \\
        --workdir runs/unified_detection/mnist_encoder5
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    return _base.make_config(
        "Chapter 5 ablation: MNIST in, FMNIST out, Lipschitz encoder M = 5",
        "mnist",
        "fashion_mnist",
        encoder_lipschitz=5.0,
    )

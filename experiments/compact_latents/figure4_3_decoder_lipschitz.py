"""Figure 4.3: the Lipschitz VAE's hole-indicator AUROC as its decoder bound M varies
(M in {1, 2, 3, 4, 5, 10}, encoder M = 1), trained on Fashion-MNIST, MNIST out; one run each."""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))
TRAIN, OUT = "fashion_mnist", ["mnist"]
BOUNDS = (1, 2, 3, 4, 5, 10)
EPOCHS = 10  # CPU budget


def get_config():
    return _base.make_config(
        "Figure 4.3: hole indicator vs the decoder's Lipschitz bound, FMNIST in, MNIST out",
        TRAIN,
        OUT,
        {
            f"lipschitz_m{m}": _base.lipschitz(num_runs=1, decoder_lipschitz=m, epochs=EPOCHS)
            for m in BOUNDS
        },
        {f"lipschitz_m{m}": ("hole_indicator", "iwae_std") for m in BOUNDS},
    )

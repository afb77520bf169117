"""Ablation (ours): the Lipschitz VAE of Table 4.2 (FMNIST in, MNIST out) with the encoder's
bound M = 5 instead of 1. Eq. 4.5 is introduced for the encoder (digest, corrections 2 and open
point 1) while the experiments use encoder M = 1 and give 5 to the decoder; with M = 1 the
posterior means of any two [0, 1] images differ by at most 1 per latent coordinate. This cell
asks whether that, rather than the decoder's bound, limits the fit (val -ELBO near 359 nats
against the unconstrained twin's 243) and the hole indicator. Same runs, epochs, decoder M = 5
and scores as that cell.
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))
TRAIN, OUT = "fashion_mnist", "mnist"
EPOCHS = 10  # CPU budget: the epochs of table4_2_fmnist_mnist
ENCODER_BOUND = 5.0  # eq. 4.5 for m = 10, the value the decoder gets


def get_config():
    model = _base.lipschitz(num_runs=3, epochs=EPOCHS, encoder_lipschitz=ENCODER_BOUND)
    return _base.make_config(
        "Ablation: Lipschitz VAE with encoder M = 5, FMNIST in, MNIST out",
        TRAIN,
        [OUT],
        {"lipschitz_encoder5": model},
        {"lipschitz_encoder5": ("iwae_std", "hole_indicator", "iwae")},
    )

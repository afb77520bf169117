"""Table 5.2 / 5.11: classical (non-Bayesian) VAE, MNIST in, FMNIST out, scored by the std of
repeated importance-sampled log p(x) estimates ("std of LLs", Ch.5) and by the IWAE log p(x)
itself (Table 5.11's expected LL of one model).

Ch.5 uses an MLP VAE with two hidden layers (widths not stated: 512, 256 here), latent 10,
Bernoulli likelihood; the number of repeats and of importance samples are not stated (5 repeats
of K = 100 here). Adam 1e-3, batch 128, 100 epochs (reduced on CPU, see RESULTS.md).
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))


def get_config():
    c = _base.make_config(
        "Table 5.2: classical VAE, MNIST in, FMNIST out", "mnist", "fashion_mnist", "swag"
    )
    vae = c.models.vae
    del vae.training["posterior"]
    vae.architecture.network = "mlp"
    vae.architecture.network_options = {"hidden": (512, 256)}
    vae.architecture.iwae_repeats = 5
    c.evaluate.ood.scores = ["vae/iwae_repeat_std", "vae/iwae"]
    return c

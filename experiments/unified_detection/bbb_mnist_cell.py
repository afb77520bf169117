"""Table 5.1 (MNIST column): Bayes by backprop over ALL layers of the MLP VAE (Ch. 5, section
5.3), MNIST in, FMNIST out, scored by the std over posterior samples theta_s of the
importance-sampled log p(x | theta_s) (eq. 5.19, "Stds of LLs").

The Chapter-3 BBB settings (experiments/bayesian_vae/base.py: scale-mixture prior pi = 0.5,
sigma1 = 1, sigma2 = e^-6, mu ~ N(0, 0.1), rho = -3) with the filter ".*" (every layer) and the
Chapter-5 MLP 512-256, latent 10. Reduced budget: 10 epochs and S = 20 posterior samples of
K = 100 importance samples (the document: 1000 epochs, 100 samples).

    jaxrobust train --config experiments/unified_detection/bbb_mnist_cell.py \\
        --workdir runs/unified_detection/bbb_mnist
"""

from pathlib import Path

from jaxrobust.config import import_file

_bayesian = import_file(Path(__file__).parent.parent / "bayesian_vae" / "base.py")
_base = import_file(Path(__file__).with_name("base.py"))
EPOCHS, POSTERIOR_SAMPLES = 10, 20


def get_config():
    c = _bayesian.make_config(
        "Table 5.1: BBB over all layers, MNIST in, FMNIST out", "mnist", "fashion_mnist", "bbb",
        epochs=EPOCHS, num_samples=POSTERIOR_SAMPLES, iwae_samples=100,
    )  # fmt: skip
    vae = c.models.vae
    vae.architecture.network = "mlp"
    vae.architecture.network_options = {"hidden": (512, 256)}
    vae.architecture.latent_dim = 10
    vae.training.posterior.filter = ".*"  # every layer (Ch. 5), not only the decoder (Ch. 3)
    c.data.validation_split = "train"  # a carve of the training split, never the test split
    c.data.validation_size = 1000
    c.evaluate.test_limit = _base.TEST_LIMIT
    c.evaluate.ood.scores = ["vae/std_ll", "vae/expected_ll"]
    c.evaluate.ood.positive = "out"
    return c

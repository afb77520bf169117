"""Table 4.2, FMNIST vs MNIST column (and Figure 4.2 right): trained on Fashion-MNIST.

Vanilla CNN VAE (log-likelihood, input complexity, typicality), the Lipschitz VAE (std of the
log importance weights, hole indicator) and its unconstrained MLP twin (hole indicator, for
Figure 4.2). The BBB rows of Table 4.2 come from experiments/bayesian_vae. "lipschitz_bias": the
ablation with a learned bias on the decoder's logits (not in Algorithm 1), to test whether the
bias-free decoder (every logit 0 at z = 0) is what holds the Lipschitz VAE back on FMNIST.
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))
TRAIN, OUT = "fashion_mnist", "mnist"


MLP_EPOCHS, CNN_EPOCHS = 10, 5  # CPU budget (FMNIST: half of the MNIST cell's)


def get_config():
    return _base.table4_2_cell(
        "Table 4.2: FMNIST in, MNIST out",
        TRAIN,
        OUT,
        mlp_epochs=MLP_EPOCHS,
        cnn_epochs=CNN_EPOCHS,
        bias_ablation=True,
    )

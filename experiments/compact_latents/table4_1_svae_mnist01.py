"""Table 4.1 and Table 4.7's held-out column: trained on MNIST digits 0 and 1.

The hyperspherical VAE on S^2 (m = 3) and its vanilla baseline (Gaussian latent, m = 2), 10 runs
each as one program; outliers: the held-out digits 2-9 of MNIST's test split (Table 4.7's
"held-out" column, Table 4.1's first) and Fashion-MNIST (Table 4.1's second column). Figure 4.1
draws the latent means of this model. "psvae": the same S-VAE with a Power Spherical q(z|x)
instead of the vMF (the issue's comparison of the two families).
"""

from pathlib import Path

from jaxrobust.config import import_file

_base = import_file(Path(__file__).with_name("base.py"))
TRAIN, OUT = "mnist[0,1]", ["mnist[2-9]", "fashion_mnist"]
EPOCHS = 10  # CPU budget (10 runs of each model as one program)


def get_config():
    return _base.svae_cell(
        "Tables 4.1 / 4.7: S-VAE on MNIST 0/1, held-out digits and FMNIST out",
        TRAIN,
        OUT,
        sphere_dim=2,
        epochs=EPOCHS,
        power_spherical=True,
    )

"""The trained MNIST CNN that the attack tools use: ``experiments/attacks/mnist_cnn.py``.

Shared by ``tools/attack_parity.py`` and ``tools/bench_attacks.py`` (run as scripts, so this
directory is on ``sys.path``).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust import data as datasets
from jaxrobust.config import load_config
from jaxrobust.evaluate.restore import restore_model
from jaxrobust.train import train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "experiments" / "attacks" / "mnist_cnn.py"


def trained_cnn(workdir: str | Path, num_images: int):
    """``(logits_fn, variables, images [N, 28, 28, 1] in [0, 1], labels [N])``.

    Trains ``experiments/attacks/mnist_cnn.py`` into ``workdir`` first when it has no checkpoint.
    The images are the first ``num_images`` of the MNIST test split.
    """
    config = load_config(CONFIG)
    workdir = Path(workdir)
    if not (workdir / "checkpoints" / "cnn").is_dir():
        print(f"No trained CNN in {workdir}: training {CONFIG.name} first.")
        train_and_evaluate(config, workdir)
    model, preprocess, variables, epoch = restore_model(workdir, "cnn", config=config)
    images, labels = datasets.load("mnist", "test", progress=False)
    images = jnp.asarray(preprocess(jnp.asarray(images[:num_images])))
    labels = jnp.asarray(np.asarray(labels[:num_images]), jnp.int32)

    def logits_fn(x: jax.Array) -> jax.Array:
        return model.logits(variables, x)

    return logits_fn, variables, images, labels

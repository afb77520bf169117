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


def quick_cnn(num_images: int, *, weights: str = "quick", train_limit: int = 0, epochs: int = 1,
              seed: int = 0):  # fmt: skip
    """The ``experiments/attacks/mnist_cnn.py`` network without a workdir, for the GPU suite:
    ``(logits_fn, variables, images [N, 28, 28, 1] in [0, 1], labels [N], info)``.

    ``weights="quick"``: trained here for ``epochs`` epochs (Adam 1e-3, batch 128, one jitted
    ``make_train_epoch`` call per epoch) on the first ``train_limit`` (0: all) cached MNIST
    training images; ``"random"``: its initial weights. The images are the first
    ``num_images`` of the cached MNIST test split (synthetic noise when no cache is there).
    ``info`` says which, with the training time and the clean accuracy on the images.
    """
    import time

    from jaxrobust.data.preprocess import Preprocess
    from jaxrobust.models import build_model
    from jaxrobust.models.base import merge_variables, split_variables
    from jaxrobust.train.epoch import TrainState, make_train_epoch
    from jaxrobust.train.optim import build_optimizer
    from jaxrobust.train.sharding import data_mesh

    if weights not in ("quick", "random"):
        raise ValueError(f"weights must be 'quick' or 'random', got {weights!r}.")
    model = build_model("classifier", {"network": "small_cnn"}, (28, 28, 1), 10)
    preprocess = Preprocess.from_config({"scale": True})
    info: dict = {}
    try:
        test_x, test_y = datasets.load("mnist", "test", sources=["cache"], progress=False)
        info["images"] = f"MNIST test (first {num_images:,})"
    except Exception as err:  # no cache: noise images, the cost is the same
        rng = np.random.default_rng(seed)
        test_x = rng.integers(0, 256, (num_images, 28, 28, 1), dtype=np.uint8)
        test_y = rng.integers(0, 10, num_images).astype(np.int32)
        info["images"] = f"synthetic noise (no MNIST cache: {type(err).__name__})"
        weights = "random"
    test_x, test_y = np.asarray(test_x[:num_images]), np.asarray(test_y[:num_images])
    key = jax.random.key(seed)
    variables = jax.jit(model.init)(key, preprocess(jnp.asarray(test_x[:1])))
    if weights == "quick":
        train_x, train_y = datasets.load("mnist", "train", sources=["cache"], progress=False)
        n = len(train_x) if not train_limit else min(train_limit, len(train_x))
        n = max(128, n // 128 * 128)
        x = jnp.asarray(np.asarray(train_x[:n]))
        y = jnp.asarray(np.asarray(train_y[:n]), jnp.int32)
        optimizer = build_optimizer({"name": "adam", "learning_rate": 1e-3}, n // 128)
        params, state = split_variables(variables)
        train_state = TrainState(jnp.zeros((), jnp.int32), params, state, optimizer.init(params))
        epoch = make_train_epoch(model, optimizer, preprocess, 128, data_mesh())
        tic = time.perf_counter()
        for e in range(epochs):
            train_state, metrics = epoch(train_state, x, y, jax.random.fold_in(key, e + 1))
        jax.block_until_ready(train_state)
        info["train_s"] = time.perf_counter() - tic
        variables = merge_variables(train_state.params, train_state.model_state)
        info["weights"] = (
            f"trained here: {epochs} epoch(s) on {n:,} MNIST training images, Adam 1e-3, batch "
            f"128 ({info['train_s']:.1f} s with compilation)"
        )
    else:
        info["weights"] = "random (the initial weights of SmallCNN)"
    images = jnp.asarray(preprocess(jnp.asarray(test_x)))
    labels = jnp.asarray(test_y, jnp.int32)

    def logits_fn(x: jax.Array) -> jax.Array:
        return model.logits(variables, x)

    predictions = np.asarray(jnp.argmax(jax.jit(logits_fn)(images), -1))
    info["clean_accuracy"] = float(np.mean(predictions == np.asarray(labels)))
    return logits_fn, variables, images, labels, info

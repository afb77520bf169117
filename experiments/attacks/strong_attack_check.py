"""Stronger-attack sanity check of the PGD-trained CNN (eps 0.3, first 500 MNIST test images).

Guards the robustness curve against gradient masking: PGD-100 with 5 random restarts on the
cross-entropy and on the CW margin loss should not find many more adversarials than the curve's
PGD-40 (an example counts as robust only if it survives every restart).

    python experiments/attacks/strong_attack_check.py   (after robustness_curve.py --train)
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust import data as datasets
from jaxrobust.attacks import cross_entropy_loss, margin_loss, pgd
from jaxrobust.config import load_config
from jaxrobust.evaluate import restore_model

NUM_IMAGES, CHUNK, EPSILON = 500, 100, 0.3


def main() -> None:
    config = load_config("experiments/attacks/mnist_cnn_pgd.py")
    model, preprocess, variables, _ = restore_model(
        "runs/attacks/mnist_cnn_pgd", "cnn", "last", config=config
    )
    images, labels = datasets.load("mnist", "test")
    x = jnp.asarray(preprocess(jnp.asarray(images[:NUM_IMAGES])))
    y = jnp.asarray(labels[:NUM_IMAGES].astype(np.int32))

    def logits_fn(z):
        return model.logits(variables, z)

    def robust(loss, steps, step, restarts) -> float:
        chunks = NUM_IMAGES // CHUNK

        @jax.jit
        def survives(key):  # [restarts] keys -> [N] bool: correct after every restart
            def one(k):
                xa = jax.lax.map(
                    lambda a: pgd(
                        loss, a[0], a[1], key=a[2], epsilon=EPSILON, step_size=step, num_steps=steps
                    ),
                    (
                        x.reshape(chunks, CHUNK, *x.shape[1:]),
                        y.reshape(chunks, CHUNK),
                        jax.random.split(k, chunks),
                    ),
                )
                return jnp.argmax(logits_fn(xa.reshape(x.shape)), -1) == y

            return jnp.all(jax.lax.map(one, jax.random.split(key, restarts)), axis=0)

        return float(np.mean(survives(jax.random.key(100))))

    for name, loss, steps, step, restarts in [
        ("CE PGD-100 step 0.01, 5 restarts", cross_entropy_loss(logits_fn), 100, 0.01, 5),
        ("margin PGD-100 step 0.01, 5 restarts", margin_loss(logits_fn), 100, 0.01, 5),
        (
            "CE PGD-40 step 0.01, 1 restart (as in the curve)",
            cross_entropy_loss(logits_fn),
            40,
            0.01,
            1,
        ),
    ]:
        start = time.perf_counter()
        accuracy = robust(loss, steps, step, restarts)
        print(f"{name}: {100 * accuracy:.1f}% ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

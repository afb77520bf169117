"""A model kind registered from outside the package: a linear softmax classifier.

The config file registers it on import, so ``jaxrobust train --config`` and ``jaxrobust
evaluate --config`` (separate processes) both know it; nothing in jaxrobust is edited.
"""

import flax.linen as nn
import jax.numpy as jnp

import jaxrobust as jr
from jaxrobust.config import Field


class Linear(nn.Module):
    num_classes: int
    scale: float = 1.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        return self.scale * nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


def build_toy(architecture, image_shape, num_classes):
    del image_shape
    model = jr.models.make_classifier(Linear(num_classes, architecture["scale"]))
    table = {
        **model.scores,
        "neg_logit_norm": jr.scores.Score(
            lambda o: -jnp.linalg.norm(o["logits"], axis=-1), False, "-||f(x)||", ("logits",)
        ),
    }
    return model._replace(kind="toy_linear", scores=table)


jr.register_model(
    "toy_linear",
    build_toy,
    schema={"scale": Field(float, 1.0, minimum=0.0)},
    description="linear softmax classifier (registered by a test config)",
    overwrite=True,
)


def get_config():
    return {
        "name": "toy",
        "seed": 0,
        "progress": False,
        "data": {
            "name": "fashion_mnist",
            "validation_split": "test",
            "preprocess": {"scale": True},
        },
        "models": {
            "toy": {
                "kind": "toy_linear",
                "architecture": {"scale": 0.5},
                "training": {"batch_size": 64, "num_epochs": 2, "eval_batch_size": 128},
            }
        },
        "evaluate": {
            "batch_size": 128,
            "classification": {"models": ["toy"]},
            "ood": {"out_datasets": ["mnist"], "scores": ["toy/max_softmax", "toy/neg_logit_norm"]},
        },
    }

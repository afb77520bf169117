"""Softmax classifiers trained with cross-entropy: log p(y|x) = log_softmax(f(x))_y."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxrobust.models.base import Model, Score


def make_classifier(network: nn.Module) -> Model:
    """Wrap a Flax network ``network(x, train) -> logits`` (batch norm allowed) as a Model."""

    def init(key, images):
        return network.init(key, images, train=False)

    def loss(params, state, batch, key, train):
        variables = {"params": params, **state}
        rngs = {"dropout": key} if key is not None else {}
        if train and state:
            logits, new_state = network.apply(
                variables, batch["image"], train=True, rngs=rngs, mutable=list(state)
            )
        else:
            logits, new_state = (
                network.apply(variables, batch["image"], train=train, rngs=rngs),
                state,
            )
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        accuracy = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
        return ce, ({"loss": ce, "accuracy": accuracy}, new_state)

    def logits_fn(variables, images):
        return network.apply(variables, images, train=False)

    def max_softmax(variables, images, key):
        del key
        return jnp.max(jax.nn.softmax(logits_fn(variables, images)), axis=-1)

    scores = {
        "max_softmax": Score(max_softmax, False, "max_y p(y|x) (Hendrycks & Gimpel 2017)"),
    }
    return Model("classifier", init, loss, scores, logits=logits_fn)

"""Softmax classifiers trained with cross-entropy: log p(y|x) = log_softmax(f(x))_y.

Capabilities: ``logits``, ``features`` (when the network can return its penultimate features,
``network(x, train, return_features=True)``), ``outputs`` (``"logits"``) and the scores
``max_softmax`` (Hendrycks & Gimpel 2017, larger = in-distribution), ``entropy`` (predictive
entropy, larger = OOD) and ``max_logit`` (larger = in-distribution).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxrobust.nn import SmallCNN
    >>> model = make_classifier(SmallCNN(10))
    >>> x = jnp.zeros((2, 28, 28, 1))
    >>> variables = model.init(jax.random.key(0), x)
    >>> losses, (metrics, _) = model.loss(variables, {"image": x, "label": jnp.array([0, 1])},
    ...                                   key=None)
    >>> bool(jnp.allclose(losses, -jax.nn.log_softmax(model.logits(variables, x))[[0, 1], [0, 1]]))
    True
"""

from __future__ import annotations

import inspect

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxrobust import scores
from jaxrobust.models.base import Model, Score, split_variables
from jaxrobust.nn.precision import as_float32


def _has_features(network: nn.Module) -> bool:
    return "return_features" in inspect.signature(type(network).__call__).parameters


def make_classifier(network: nn.Module, *, label_smoothing: float = 0.0) -> Model:
    """Wrap a Flax network ``network(x, train) -> logits`` (dropout, batch norm allowed).

    The loss is the cross-entropy against ``(1 - a) one_hot(y) + a / C`` with ``a =
    label_smoothing`` (``optax.smooth_labels``; 0: the plain cross-entropy); the reported
    ``loss`` metric is that training loss.

    Logits and features of a lower-precision network (e.g. bfloat16) are cast to float32
    before the loss and scores.
    """

    def init(key, images):
        return network.init(key, images, train=False)

    def loss(variables, batch, *, key=None, train=False):
        params, state = split_variables(variables)
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
        logits = as_float32(logits)
        if label_smoothing:
            targets = optax.smooth_labels(
                jax.nn.one_hot(batch["label"], logits.shape[-1], dtype=logits.dtype),
                label_smoothing,
            )
            ce = optax.softmax_cross_entropy(logits, targets)
        else:
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        accuracy = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
        return ce, ({"loss": ce, "accuracy": accuracy}, new_state)

    def logits_fn(variables, images):
        return as_float32(network.apply(variables, images, train=False))

    def features_fn(variables, images):
        return as_float32(network.apply(variables, images, train=False, return_features=True))

    def outputs(variables, images, *, key=None, names=frozenset({"logits"})):
        del key
        out = {}
        if "logits" in names:
            out["logits"] = logits_fn(variables, images)
        if "features" in names:
            out["features"] = features_fn(variables, images)
        return out

    table = {
        "max_softmax": Score(
            lambda o: scores.max_softmax(o["logits"]),
            False,
            "max_y p(y|x) (Hendrycks & Gimpel 2017)",
            ("logits",),
        ),
        "entropy": Score(
            lambda o: scores.predictive_entropy(o["logits"]),
            True,
            "entropy of p(y|x) (nats)",
            ("logits",),
        ),
        "max_logit": Score(
            lambda o: jnp.max(o["logits"], axis=-1), False, "max_y f(x)_y", ("logits",)
        ),
    }
    return Model(
        "classifier",
        init,
        loss,
        scores=table,
        outputs=outputs,
        logits=logits_fn,
        features=features_fn if _has_features(network) else None,
    )

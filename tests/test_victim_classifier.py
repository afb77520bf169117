"""The Chapter-5 victim classifier: CleverHans' basic CNN, patch convolutions, label smoothing."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.models import build_model
from jaxrobust.nn import BasicCNN
from jaxrobust.nn.layers import PatchConv


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "padding"),
    [
        ((1, 28, 28, 1), 8, 2, "SAME"),
        ((1, 14, 14, 3), 6, 2, "VALID"),
        ((1, 10, 7, 2), 4, 3, "SAME"),
    ],
)
def test_patch_conv_is_flax_conv(shape, kernel, stride, padding):
    x = jax.random.normal(jax.random.key(0), shape)
    ours = PatchConv(5, kernel, stride, padding)
    reference = nn.Conv(5, (kernel, kernel), stride, padding)
    variables = ours.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(
        jnp.shape, reference.init(jax.random.key(1), x)
    )
    np.testing.assert_allclose(ours.apply(variables, x), reference.apply(variables, x),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    grad = jax.grad(lambda v, m: jnp.sum(m.apply(v, x) ** 2))
    for a, b in zip(jax.tree.leaves(grad(variables, ours)),
                    jax.tree.leaves(grad(variables, reference)), strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_basic_cnn_has_the_cleverhans_layer_sizes():
    variables = jax.eval_shape(BasicCNN(10).init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    # conv 8x8x1x64, 6x6x64x128, 5x5x128x128 (+ biases), dense 128x10 (+ bias)
    expected = (64 * 64 + 64) + (36 * 64 * 128 + 128) + (25 * 128 * 128 + 128) + (128 * 10 + 10)
    assert sum(v.size for v in jax.tree.leaves(variables)) == expected


def test_label_smoothing_is_the_cross_entropy_against_smoothed_targets():
    architecture = {"network": "small_cnn", "label_smoothing": 0.1,
                    "network_options": {"features": [4], "hidden": 8}}  # fmt: skip
    model = build_model("classifier", architecture, (8, 8, 1), 10)
    x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 1))
    y = jnp.array([0, 3, 9, 3])
    variables = model.init(jax.random.key(1), x)
    losses, _ = model.loss(variables, {"image": x, "label": y}, key=None)
    logits = np.asarray(model.logits(variables, x), np.float64)
    log_p = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
    log_p -= logits.max(1, keepdims=True)
    targets = np.full((4, 10), 0.1 / 10) + 0.9 * np.eye(10)[np.asarray(y)]
    np.testing.assert_allclose(losses, -(targets * log_p).sum(1), rtol=1e-5)

"""bfloat16 mixed precision (``architecture.compute_dtype``): float32 parameters and gradients,
bfloat16 convolutions and dense layers, float32 batch-norm statistics, logits and loss.

Compilation dominates on CPU: dtype properties are read from ``jax.eval_shape`` and
``jax.make_jaxpr`` (no compilation), values are computed for small networks only.
"""

from __future__ import annotations

import copy
import functools
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import only_models

from jaxrobust import nn as jnn
from jaxrobust.config import resolve_config, sections
from jaxrobust.errors import ConfigError
from jaxrobust.evaluate import evaluate
from jaxrobust.models import build_model, make_classifier, register_network
from jaxrobust.nn.conv_ops import conv_general_dilated, conv_impl
from jaxrobust.registry import NETWORKS
from jaxrobust.train import train_and_evaluate
from jaxrobust.train.loop import check_buildable
from jaxrobust.workdir import read_metrics

F32, BF16 = jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)
TINY_WIDTHS = (8, 8, 16, 16)


def tiny_resnet18(dtype=None):
    """ResNet-18's 20 convolutions at small widths (dtype checks: traced, never compiled)."""
    return jnn.resnet18(10, widths=TINY_WIDTHS, dtype=dtype)


def small_resnet(dtype=None):
    """Two stages of the same blocks (one with the projection shortcut): cheap to compile."""
    return jnn.ResNet(stage_sizes=(1, 1), num_classes=10, widths=(8, 16), dtype=dtype)


def batch(n=8, shape=(16, 16, 3), seed=0):
    kx, ky = jax.random.split(jax.random.key(seed))
    return {
        "image": jax.random.uniform(kx, (n, *shape)),
        "label": jax.random.randint(ky, (n,), 0, 10),
    }


def init(module, x, seed=0):
    """Variables of ``module`` drawn on the host (compiling ``module.init`` costs seconds):
    kernels N(0, 1 / fan_in), scales and variances 1, biases and means 0."""
    abstract = jax.eval_shape(module.init, jax.random.key(0), x)
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path[-1:])
        if "kernel" in name:
            fan_in = int(np.prod(leaf.shape[:-1]))
            return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(fan_in), leaf.dtype)
        return jnp.full(leaf.shape, 1.0 if ("scale" in name or "var" in name) else 0.0, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def classifier_grads(model, variables, data, train=True):
    """d mean loss / d params, and (losses, the new batch statistics)."""
    state = {k: v for k, v in variables.items() if k != "params"}

    def loss(p):
        losses, (_, new_state) = model.loss({"params": p, **state}, data, train=train)
        return losses.mean(), (losses, new_state)

    return jax.grad(loss, has_aux=True)(variables["params"])


def dtypes(tree):
    return {jnp.dtype(leaf.dtype) for leaf in jax.tree.leaves(tree)}


def walk_eqns(jaxpr):
    """Every equation of a jaxpr and of the jaxprs nested in its equations' parameters."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(inner, "eqns"):
                    yield from walk_eqns(inner)


def input_dtypes(fn, *args, names=("conv_general_dilated", "dot_general")):
    """{primitive: [the input dtypes of each of its equations]} in ``fn``'s jaxpr."""
    found = {name: [] for name in names}
    for eqn in walk_eqns(jax.make_jaxpr(fn)(*args).jaxpr):
        if eqn.primitive.name in found:
            found[eqn.primitive.name].append({jnp.dtype(v.aval.dtype) for v in eqn.invars})
    return found


def test_config_and_nn_know_the_same_compute_dtypes():
    assert tuple(sections.COMPUTE_DTYPES) == tuple(jnn.COMPUTE_DTYPES)
    assert jnn.compute_dtype("float32") is None
    assert jnp.dtype(jnn.compute_dtype("bfloat16")) == BF16


def test_bf16_resnet18_parameters_statistics_loss_and_gradients_are_float32():
    model = make_classifier(tiny_resnet18(jnp.bfloat16))
    data = batch()
    variables = jax.eval_shape(model.init, jax.random.key(0), data["image"])
    assert set(variables) == {"params", "batch_stats"}
    assert dtypes(variables) == {F32}
    grads, (losses, new_state) = jax.eval_shape(
        functools.partial(classifier_grads, model), variables, data
    )
    assert dtypes(grads) == {F32} and losses.dtype == F32
    assert dtypes(new_state) == {F32}  # the batch-norm running statistics
    reference = make_classifier(tiny_resnet18())
    ref_grads, _ = jax.eval_shape(functools.partial(classifier_grads, reference), variables, data)
    assert jax.tree.structure(ref_grads) == jax.tree.structure(grads)


def test_bf16_logits_and_gradients_are_close_to_float32_and_not_equal():
    # Gradients with the running averages: with batch statistics the gradient at
    # initialisation is too sensitive to compare (rounding only the inputs to bf16 moves
    # float32's own gradient to a cosine of 0.97).
    data = batch()
    bf16, fp32 = make_classifier(small_resnet(jnp.bfloat16)), make_classifier(small_resnet())
    variables = init(fp32, data["image"])

    @jax.jit
    def both(variables):
        return [
            (m.logits(variables, data["image"]), classifier_grads(m, variables, data, False)[0])
            for m in (bf16, fp32)
        ]

    (logits, grads), (ref_logits, ref) = both(variables)
    assert logits.dtype == F32 and dtypes(grads) == {F32}
    err, scale = float(jnp.abs(logits - ref_logits).max()), float(jnp.abs(ref_logits).max())
    assert 0 < err <= 0.03 * scale, (err, scale)  # bf16 keeps 8 significant bits
    g, r = (jnp.concatenate([x.ravel() for x in jax.tree.leaves(t)]) for t in (grads, ref))
    cosine = float(jnp.dot(g, r) / (jnp.linalg.norm(g) * jnp.linalg.norm(r)))
    assert 0.99 < cosine < 1.0 - 1e-7, cosine  # close, and not float32's own


def _numeric_pairs():
    """(float32 module, bfloat16 module, input) whose outputs are compared by value."""
    x28 = batch(4, (28, 28, 1))["image"]
    z = jax.random.normal(jax.random.key(3), (4, 8))
    encoder, decoder = jnn.make_vae_networks("conv", (28, 28, 1), 8, 1)
    encoder16, decoder16 = jnn.make_vae_networks("conv", (28, 28, 1), 8, 1, dtype=jnp.bfloat16)
    return {
        "small_cnn": (jnn.SmallCNN(10), jnn.SmallCNN(10, dtype=jnp.bfloat16), x28),
        "conv_encoder": (encoder, encoder16, x28),
        "conv_decoder": (decoder, decoder16, z),
    }


@pytest.mark.parametrize("name", sorted(_numeric_pairs()))
def test_bf16_outputs_are_float32_close_to_fp32_and_not_equal(name):
    f32, b16, x = _numeric_pairs()[name]
    variables = init(f32, x)
    ref, out = jax.jit(lambda v: (f32.apply(v, x), b16.apply(v, x)))(variables)
    assert ref.dtype == out.dtype == F32
    err, scale = float(jnp.abs(out - ref).max()), float(jnp.abs(ref).max())
    assert err <= 0.03 * scale, (err, scale)  # bf16 keeps 8 significant bits
    assert not np.array_equal(np.asarray(out), np.asarray(ref))  # the option has an effect


@pytest.mark.parametrize("impl", ["canonical", "lax"])
def test_resnet18_convolutions_and_dense_layers_run_in_bf16_forward_and_backward(impl):
    data = batch()
    for dtype, expected in ((None, F32), (jnp.bfloat16, BF16)):
        model = make_classifier(tiny_resnet18(dtype))
        variables = jax.eval_shape(model.init, jax.random.key(0), data["image"])
        with conv_impl(impl):
            found = input_dtypes(functools.partial(classifier_grads, model, data=data), variables)
        convs, dots = found["conv_general_dilated"], found["dot_general"]
        # 20 convolutions forward; the backward pass adds input and kernel gradients
        assert len(convs) >= 3 * 20 - 1, (impl, len(convs))
        assert all(ins == {expected} for ins in convs), convs
        assert dots and all(ins == {expected} for ins in dots), dots


def _vae_networks():
    cases = []
    for name in sorted(jnn.VAE_NETWORKS):
        shape = (28, 28, 1) if name in ("ch3_gray", "mlp", "conv") else (32, 32, 3)
        options = {"hidden": (32,)} if name == "mlp" else {}
        cases.append((name, shape, options))
    return cases


@pytest.mark.parametrize("name, shape, options", _vae_networks(), ids=lambda v: v)
def test_every_vae_network_computes_in_bf16_with_float32_outputs(name, shape, options):
    x, z = jnp.zeros((2, *shape)), jnp.zeros((2, 8))
    pairs = zip(
        jnn.make_vae_networks(name, shape, 8, shape[-1], dtype=jnp.bfloat16, **options),
        (x, z),
        strict=True,
    )
    for module, inputs in pairs:
        variables = jax.eval_shape(module.init, jax.random.key(0), inputs)
        assert dtypes(variables) == {F32}, name
        apply = functools.partial(module.apply, mutable=["batch_stats"], train=True)
        out, state = jax.eval_shape(apply, variables, inputs)
        assert out.dtype == F32 and dtypes(state) <= {F32}, name
        found = input_dtypes(apply, variables, inputs)
        layers = found["conv_general_dilated"] + found["dot_general"]
        assert layers and all(ins == {BF16} for ins in layers), (name, layers)


@pytest.mark.parametrize("network", ["conv", "dcgan"])
def test_vae_compute_dtype_reaches_encoder_and_decoder_and_the_loss_is_float32(network):
    shape = (28, 28, 1) if network == "conv" else (32, 32, 3)
    data = {"image": jnp.zeros((2, *shape)), "label": jnp.zeros(2, jnp.int32)}
    for name, expected in (("float32", F32), ("bfloat16", BF16)):
        architecture = {"latent_dim": 4, "network": network, "compute_dtype": name}
        model = build_model("vae", architecture, shape, 10)
        variables = jax.eval_shape(model.init, jax.random.key(0), data["image"])
        assert dtypes(variables) == {F32}

        def loss(params, state, model=model):
            losses, _ = model.loss({**state, "params": params}, data, key=jax.random.key(1))
            return losses.mean()

        params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
        value, grads = jax.eval_shape(jax.value_and_grad(loss), params, state)
        assert value.dtype == F32 and dtypes(grads) == {F32}
        found = input_dtypes(jax.grad(loss), params, state)
        layers = found["conv_general_dilated"] + found["dot_general"]
        assert len(found["conv_general_dilated"]) >= 4, network  # encoder and decoder
        assert all(ins == {expected} for ins in layers), (name, layers)


@pytest.mark.parametrize(
    "strides, lhs_dilation, features",
    [((1, 1), (1, 1), 4), ((2, 2), (1, 1), 32), ((1, 1), (2, 2), 32)],
    ids=["plain", "strided", "transposed"],
)
def test_canonical_conv_path_takes_bf16_and_matches_lax(strides, lhs_dilation, features):
    """The custom_vjp of conv_ops (the CPU path): bf16 in, bf16 values and gradients out,
    matching lax's float32 result; strided and lhs-dilated (polyphase) cases included."""
    kx, kw = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (2, 8, 8, 16)).astype(jnp.bfloat16)
    w = (0.2 * jax.random.normal(kw, (3, 3, 16, features))).astype(jnp.bfloat16)

    def loss(x, w, impl):
        y = conv_general_dilated(
            x,
            w,
            strides,
            [(1, 1), (1, 1)],
            lhs_dilation=lhs_dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            impl=impl,
        )
        return jnp.sum(y.astype(jnp.float32) ** 2), y

    @jax.jit
    def both(x, w):
        grad = jax.grad(loss, argnums=(0, 1), has_aux=True)
        return grad(x, w, "canonical"), grad(x.astype(F32), w.astype(F32), "lax")

    ((dx, dw), y), ((rx, rw), ry) = both(x, w)
    assert y.dtype == dx.dtype == dw.dtype == BF16  # the custom gradients match the primal
    for got, ref in ((y, ry), (dx, rx), (dw, rw)):
        err = float(jnp.abs(got.astype(F32) - ref).max())
        assert err <= 0.02 * float(jnp.abs(ref).max()), err


def test_a_few_sgd_steps_of_a_bf16_resnet_lower_the_loss():
    model = make_classifier(small_resnet(jnp.bfloat16))
    data = batch(16)
    variables = init(model, data["image"])
    optimizer = optax.sgd(0.1, momentum=0.9)
    params, state = variables["params"], {"batch_stats": variables["batch_stats"]}

    @jax.jit
    def train(params, state):
        def step(carry, _):
            params, state, opt_state = carry

            def loss(p):
                losses, (_, new_state) = model.loss({"params": p, **state}, data, train=True)
                return losses.mean(), new_state

            (value, new_state), grads = jax.value_and_grad(loss, has_aux=True)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), new_state, opt_state), value

        carry, losses = jax.lax.scan(step, (params, state, optimizer.init(params)), length=10)
        return carry[0], losses

    params, losses = train(params, state)
    assert dtypes(params) == {F32}  # the optimizer updates float32
    assert bool(jnp.isfinite(losses).all())
    assert float(losses[-1]) < 0.75 * float(losses[0]), losses


def test_an_unknown_compute_dtype_is_refused_when_the_config_is_checked(tiny_config):
    config = copy.deepcopy(tiny_config)
    config.models.classifier.architecture.compute_dtype = "float16"
    with pytest.raises(ConfigError) as err:
        resolve_config(config)
    message = str(err.value)
    assert "models.classifier.architecture.compute_dtype" in message
    assert "'float16'" in message and "'float32'" in message and "'bfloat16'" in message
    tiny_config.models.vae.architecture.compute_dtype = "bf16"
    with pytest.raises(ConfigError, match=r"vae\.architecture\.compute_dtype.*bfloat16"):
        resolve_config(tiny_config)


def test_dtype_in_network_options_and_networks_without_dtype_are_config_errors(tiny_config):
    architecture = {"network": "small_cnn", "network_options": {"dtype": "bfloat16"}}
    with pytest.raises(ConfigError, match="set architecture.compute_dtype"):
        build_model("classifier", architecture, (28, 28, 1), 10)

    class NoDtype(nn.Module):
        num_classes: int

        @nn.compact
        def __call__(self, x, train=False):
            return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))

    register_network("no_dtype_net", lambda c, **o: NoDtype(c), overwrite=True)
    try:
        config = only_models(tiny_config, "classifier")
        config.models.classifier.architecture.network = "no_dtype_net"
        config.models.classifier.architecture.compute_dtype = "bfloat16"
        config = resolve_config(config)
        with pytest.raises(ConfigError, match="NoDtype has no dtype attribute"):
            check_buildable(config)  # before anything trains
        config.models.classifier.architecture.compute_dtype = "float32"
        check_buildable(config)
    finally:
        NETWORKS._entries.pop("no_dtype_net", None)


def test_a_bf16_config_trains_and_evaluates_end_to_end(synthetic_data, tiny_config, tmp_path):
    # The option's way from the config to training, the checkpoint and evaluation. small_cnn:
    # a tiny ResNet-18 takes minutes to compile and train here (the networks are checked
    # above, the VAE's builder too).
    config = only_models(tiny_config, "classifier")
    config.models.classifier.architecture.compute_dtype = "bfloat16"
    train_and_evaluate(config, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["models"]["classifier"]["architecture"]["compute_dtype"] == "bfloat16"
    rows = read_metrics(tmp_path)
    assert len(rows) == 2 and rows[-1]["train/loss"] < rows[0]["train/loss"], rows
    results = evaluate(tmp_path)
    assert results["classification"]["classifier"]["accuracy"] > 0.9  # separable classes

"""The model interface: every capability survives every wrapper, loss jits with a static train."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.inference import bbb_model
from jaxrobust.inference.bbb import GaussianPrior
from jaxrobust.models import CAPABILITIES, build_model, with_variables_transform
from jaxrobust.train.adversarial import adversarial_training

X = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
Y = jnp.array([0, 4, 9])


def vae():
    arch = {"latent_dim": 2, "network": "mlp", "network_options": {"hidden": (16,)}}
    return build_model("vae", {**arch, "iwae_samples": 4, "iwae_chunk": 4}, (28, 28, 1), 10)


def cnn():
    return build_model("classifier", {"network": "small_cnn"}, (28, 28, 1), 10)


def wrappers(model):
    out = {
        "bbb": bbb_model(model, ".*", GaussianPrior(1.0), kl_per_example=lambda b: 1.0 / b),
        "transform": with_variables_transform(model, lambda v: v),
    }
    if model.logits is not None:
        out["adversarial"] = adversarial_training(
            model, {"epsilon": 0.1, "num_steps": 2, "epsilon_ramp_steps": 5}
        )
    return out


@pytest.mark.parametrize("make", [vae, cnn], ids=["vae", "classifier"])
def test_every_capability_survives_every_wrapper(make):
    model = make()
    assert model.capabilities()  # each family has some
    for name, wrapped in wrappers(model).items():
        for capability in CAPABILITIES:
            had, has = (
                getattr(model, capability) is not None,
                getattr(wrapped, capability) is not None,
            )
            assert had == has, f"{name} lost or invented {capability}"
        assert set(wrapped.scores) == set(model.scores), name
        assert wrapped.latent is model.latent and wrapped.kind == model.kind


def test_bbb_capabilities_evaluate_at_the_variational_mean():
    model = cnn()
    wrapped = bbb_model(model, ".*", GaussianPrior(1.0), kl_per_example=lambda b: 1.0 / b)
    variables = wrapped.init(jax.random.key(0), X)
    mean = {"params": variables["params"]["variational"]["mu"]}
    np.testing.assert_allclose(wrapped.logits(variables, X), model.logits(mean, X), rtol=1e-6)
    got = wrapped.score(variables, X, ["max_softmax"])["max_softmax"]
    np.testing.assert_allclose(got, jnp.max(jax.nn.softmax(model.logits(mean, X)), -1), rtol=1e-6)


def test_adversarial_wrapper_capabilities_ignore_the_step_counter():
    model = cnn()
    wrapped = adversarial_training(model, {"epsilon": 0.1, "num_steps": 2, "epsilon_ramp_steps": 5})
    variables = wrapped.init(jax.random.key(0), X)
    assert "adversarial_training" in variables
    plain = {"params": variables["params"]}
    np.testing.assert_allclose(wrapped.logits(variables, X), model.logits(plain, X), rtol=1e-6)
    features = wrapped.features(variables, X)
    np.testing.assert_allclose(features, model.features(plain, X), rtol=1e-6)


def test_loss_jits_with_train_static_and_key_keyword_only():
    model = cnn()
    variables = model.init(jax.random.key(0), X)
    loss = jax.jit(model.loss, static_argnames="train")
    batch = {"image": X, "label": Y}
    eager, _ = model.loss(variables, batch, key=None, train=False)
    jitted, (metrics, _) = loss(variables, batch, key=None, train=False)
    np.testing.assert_allclose(eager, jitted, rtol=1e-6)
    with pytest.raises(TypeError):
        model.loss(variables, batch, None, False)  # key and train are keyword-only


def test_vae_encode_decode_and_density_capabilities():
    model = vae()
    variables = model.init(jax.random.key(0), X)
    mu, log_var = model.encode(variables, X)
    assert mu.shape == log_var.shape == (3, 2)
    assert model.decode(variables, mu).shape == X.shape
    key = jax.random.key(4)
    # The density capability is the IWAE score, and K = 1 importance sample is the ELBO.
    np.testing.assert_allclose(
        model.log_likelihood(variables, X, key=key),
        model.score(variables, X, ["iwae"], key=key)["iwae"],
        rtol=1e-6,
    )
    one = model.log_likelihood(variables, X, key=key, num_samples=1)
    assert np.all(np.isfinite(one)) and one.shape == (3,)

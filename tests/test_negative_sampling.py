"""VAE objectives of the negative-sampling paper (seed 004, section 3), checked by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import only_models

from jaxrobust.distributions import diagonal_gaussian_kl, make_observation_model
from jaxrobust.models import build_model
from jaxrobust.models.base import split_variables
from jaxrobust.models.vae import VAE
from jaxrobust.nn import make_vae_networks

IMAGE = (28, 28, 1)


def vae(**cfg):
    base = {"latent_dim": 3, "encoder_features": (4, 8), "decoder_features": (8, 4)}
    return build_model("vae", {**base, **cfg}, IMAGE, 10)


def setup(model, n=4):
    x = jax.random.uniform(jax.random.key(1), (n, *IMAGE))
    params, state = split_variables(model.init(jax.random.key(0), x))
    return x, params, state


def encode(params, images):
    """(mu, log_var) of q(z|x) from a separately built module of the same architecture."""
    enc, dec = make_vae_networks(
        "conv", IMAGE, 3, 1, encoder_features=(4, 8), decoder_features=(8, 4)
    )
    module = VAE(enc, dec, make_observation_model("bernoulli"))
    return module.apply({"params": params}, images, method=VAE.encode)


@pytest.mark.parametrize("source", ["uniform_noise", "data_noise"])
def test_loss_is_negative_elbo_plus_kl_to_the_shifted_prior(source):
    shift = 8.0
    plain, neg = vae(), vae(negatives={"source": source, "shift": shift, "sigma": 0.25})
    x, params, state = setup(neg)
    key = jax.random.key(7)
    loss, (metrics, _) = neg.loss({"params": params, **state}, {"image": x}, key=key, train=True)
    plain_loss, _ = plain.loss({"params": params, **state}, {"image": x}, key=key, train=True)
    # The negatives as the objective draws them (key fold_in 1), rebuilt independently here.
    neg_key = jax.random.fold_in(key, 1)
    if source == "uniform_noise":
        x_neg = jax.random.uniform(neg_key, x.shape)
    else:
        x_neg = jnp.clip(x + 0.25 * jax.random.normal(neg_key, x.shape), 0.0, 1.0)
    mu, log_var = encode(params, x_neg)
    # KL(q || N(s 1, I)) by the general two-Gaussian formula.
    expected_kl = diagonal_gaussian_kl(mu, log_var, jnp.full_like(mu, shift), jnp.zeros_like(mu))
    np.testing.assert_allclose(metrics["negative_kl"], expected_kl, rtol=1e-5)
    np.testing.assert_allclose(loss, plain_loss + expected_kl, rtol=1e-5)


def test_generated_negatives_route_gradients_as_stated():
    """Encoder term: no gradient to the decoder. Generator term: no gradient to the encoder."""
    x, params, state = setup(vae())
    key = jax.random.key(3)

    def grads(model):
        def objective(p):
            return jnp.mean(
                model.loss({"params": p, **state}, {"image": x}, key=key, train=True)[0]
            )

        return jax.grad(objective)(params)

    plain = grads(vae())
    encoder_only = grads(vae(negatives={"source": "generated", "generator_weight": 0.0}))
    full = grads(vae(negatives={"source": "generated", "generator_weight": 1.0}))
    close = lambda a, b: jax.tree.all(  # noqa: E731
        jax.tree.map(lambda u, v: np.allclose(u, v, rtol=1e-5, atol=1e-7), a, b)
    )
    # Generator weight 0: the decoder's gradient is the plain VAE's (x_gen is stop-gradient).
    assert close(encoder_only["decoder"], plain["decoder"])
    assert not close(encoder_only["encoder"], plain["encoder"])
    # The generator term changes only the decoder's gradient (the encoder is frozen in it).
    assert close(full["encoder"], encoder_only["encoder"])
    assert not close(full["decoder"], encoder_only["decoder"])


@pytest.mark.parametrize(
    ("observation", "options", "param_names"),
    [
        ("gaussian", {"scale": 0.5}, set()),
        ("gaussian_learned", {"per_pixel": False}, {"log_scale"}),
        ("gaussian_learned", {"per_pixel": True, "min_log_scale": -5.0}, set()),
        ("quantized_gaussian", {}, set()),
    ],
)
def test_observation_models_plug_into_the_vae(observation, options, param_names):
    model = vae(observation=observation, observation_options=options)
    x, params, state = setup(model)
    assert param_names <= set(params)
    loss, (metrics, _) = model.loss(
        {"params": params, **state}, {"image": x}, key=jax.random.key(2), train=True
    )
    elbo = model.score({"params": params}, x, ["elbo"], key=jax.random.key(2))["elbo"]
    np.testing.assert_allclose(loss, -elbo, rtol=1e-5)
    np.testing.assert_allclose(
        model.score({"params": params}, x, ["bpd"], key=jax.random.key(2))["bpd"],
        -elbo / (np.prod(IMAGE) * np.log(2.0)),
        rtol=1e-5,
    )


def test_iwae_score_is_at_least_the_elbo_on_average_and_batch_norm_state_updates():
    model = build_model(
        "vae",
        {"latent_dim": 4, "network": "dcgan", "iwae_samples": 20, "iwae_chunk": 8},
        (32, 32, 3),
        10,
    )
    x = jax.random.uniform(jax.random.key(1), (3, 32, 32, 3))
    params, state = split_variables(model.init(jax.random.key(0), x))
    _, (_, new_state) = model.loss(
        {"params": params, **state}, {"image": x}, key=jax.random.key(2), train=True
    )
    changed = jax.tree.map(lambda a, b: not np.allclose(a, b), state, new_state)
    assert any(jax.tree.leaves(changed)), "training must update the batch statistics"
    variables = {"params": params, **state}
    iwae = model.score(variables, x, ["iwae"], key=jax.random.key(5))["iwae"]
    elbos = jnp.stack(
        [model.score(variables, x, ["elbo"], key=jax.random.key(k))["elbo"] for k in range(20)]
    )
    assert float(jnp.mean(iwae)) >= float(jnp.mean(elbos)) - 1.0


def test_unknown_negative_source_is_explained():
    with pytest.raises(ValueError, match="Unknown negatives.source"):
        vae(negatives={"source": "emnist"})


def test_auxiliary_dataset_negatives_are_the_batch_negatives():
    plain, neg = vae(), vae(negatives={"source": "dataset", "dataset": "mnist", "shift": 8.0})
    x, params, state = setup(neg)
    x_neg = jax.random.uniform(jax.random.key(9), x.shape) ** 3
    key = jax.random.key(4)
    batch = {"image": x, "negative_image": x_neg}
    loss, (metrics, _) = neg.loss({"params": params, **state}, batch, key=key, train=True)
    plain_loss, _ = plain.loss({"params": params, **state}, {"image": x}, key=key, train=True)
    mu, log_var = encode(params, x_neg)
    expected = diagonal_gaussian_kl(mu, log_var, jnp.full_like(mu, 8.0), jnp.zeros_like(mu))
    np.testing.assert_allclose(loss, plain_loss + expected, rtol=1e-5)
    # Validation batches have no negatives: -ELBO alone; training without them is an error.
    val_loss, _ = neg.loss({"params": params, **state}, {"image": x}, key=key, train=False)
    np.testing.assert_allclose(val_loss, plain_loss, rtol=1e-6)
    with pytest.raises(ValueError, match="no 'negative_image'"):
        neg.loss({"params": params, **state}, {"image": x}, key=key, train=True)


def test_training_loop_feeds_auxiliary_negatives(synthetic_data, tiny_config, tmp_path):
    from jaxrobust.errors import ConfigError
    from jaxrobust.train import train_and_evaluate

    only_models(tiny_config, "vae")
    tiny_config.data.train_limit = 256
    tiny_config.models.vae.training.num_epochs = 1
    tiny_config.models.vae.architecture.negatives = {
        "source": "dataset",
        "dataset": "mnist",
        "shift": 8.0,
    }
    summary = train_and_evaluate(tiny_config, tmp_path / "aux")
    assert np.isfinite(summary["vae"]["train/negative_kl"])
    tiny_config.models.vae.architecture.negatives = {"source": "dataset"}
    with pytest.raises(ConfigError, match="negatives.dataset is not set"):
        train_and_evaluate(tiny_config, tmp_path / "aux2")

"""Deep hybrid models (seed 000): architecture sizes against the author's code, the loss."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrobust as jr
from jaxrobust.config import resolve_config
from jaxrobust.errors import ConfigError
from jaxrobust.models import build_model

# Parameter counts of the author's PyTorch modules (b-turan/hybrid_robustness: pl_bolts
# resnet18_encoder / resnet18_decoder, the head, fc_mu / fc_var), digest section 1.
AUTHOR_COUNTS = {
    "resnet": ({"variant": "resnet"}, 11_302_730),
    "disc_dhm": ({"variant": "dhm", "beta_g": 0.0, "head_input": "mu"}, 22_668_426),
    "disc_dhm_with_fc_var": ({"variant": "dhm", "beta_g": 0.0}, 22_799_754),
    "beta_vae": ({"variant": "beta_vae"}, 20_057_088),
    "dhm": ({"variant": "dhm"}, 31_425_354),
}


def _count(architecture, shape=(32, 32, 3)):
    model = build_model("hybrid", architecture, shape, 10)
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape)))
    return sum(math.prod(p.shape) for p in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("name", sorted(AUTHOR_COUNTS))
def test_full_size_parameter_counts_equal_the_authors_code(name):
    architecture, expected = AUTHOR_COUNTS[name]
    assert _count(architecture) == expected


def _tiny(variant="dhm", **options):
    return jr.models.make_hybrid(
        (32, 32, 1), 10, variant=variant, widths=(4, 4, 8, 8), blocks=(1, 1, 1, 1), latent_dim=3,
        head_hidden=6,
        **options,
    )  # fmt: skip


def _batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": jnp.asarray(rng.normal(size=(n, 32, 32, 1)), jnp.float32),
        "label": jnp.asarray(rng.integers(0, 10, n), jnp.int32),
    }


def test_disc_dhm_loss_is_the_cross_entropy_of_its_logits():
    model, batch = _tiny(beta_g=0.0, head_input="mu"), _batch()
    variables = model.init(jax.random.key(0), batch["image"])
    losses, (metrics, _) = model.loss(variables, batch, key=jax.random.key(1))
    logits = np.asarray(model.logits(variables, batch["image"]), np.float64)
    log_p = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
    log_p -= logits.max(1, keepdims=True)
    ce = -log_p[np.arange(4), np.asarray(batch["label"])]
    np.testing.assert_allclose(losses, ce, rtol=1e-5)
    assert "l_g" not in metrics and model.log_likelihood is None


def test_dhm_loss_is_alpha_ce_plus_beta_g_times_the_code_reduction():
    alpha, beta_g, beta = 10.0, 1.0, 0.1
    model, batch = _tiny(alpha=alpha, beta_g=beta_g, beta=beta, head_input="mu"), _batch()
    variables = model.init(jax.random.key(0), batch["image"])
    losses, (metrics, _) = model.loss(variables, batch, key=jax.random.key(1))
    x = np.asarray(batch["image"], np.float64)
    mu, log_var = (np.asarray(a, np.float64) for a in model.encode(variables, batch["image"]))
    # the same z as the loss: the loss's key split, then the Gaussian reparameterisation
    z_key = jax.random.split(jax.random.key(1))[0]
    eps = np.asarray(jax.random.normal(z_key, mu.shape), np.float64)
    z = mu + np.exp(0.5 * log_var) * eps
    recon = np.asarray(model.decode(variables, jnp.asarray(z, jnp.float32)), np.float64)
    mse = ((recon - x) ** 2).reshape(4, -1).mean(1)  # F.mse_loss(reduction="mean") per image
    kl = 0.5 * (mu**2 + np.exp(log_var) - 1 - log_var).mean(1)  # kl_divergence(q, p).mean(1)
    np.testing.assert_allclose(metrics["l_g"], mse + beta * kl, rtol=1e-4)
    np.testing.assert_allclose(losses, alpha * metrics["ce"] + beta_g * metrics["l_g"], rtol=1e-6)


def test_summed_reduction_is_the_negative_gaussian_elbo_with_a_beta_weighted_kl():
    model, batch = _tiny(reduction="sum", beta=0.5), _batch()
    variables = model.init(jax.random.key(0), batch["image"])
    _, (metrics, _) = model.loss(variables, batch, key=jax.random.key(1))
    nll = -(metrics["elbo"] + metrics["kl"])
    np.testing.assert_allclose(metrics["l_g"], nll + 0.5 * metrics["kl"], rtol=1e-6)
    d = 32 * 32
    np.testing.assert_allclose(
        nll, 0.5 * d * metrics["mse"] + 0.5 * d * np.log(2 * np.pi), rtol=1e-5
    )


def test_iwae_score_is_at_least_the_elbo_on_average_and_reads_swept_weights():
    model, batch = _tiny(iwae_samples=16, iwae_chunk=8), _batch(8)
    variables = model.init(jax.random.key(0), batch["image"])
    s = model.score(variables, batch["image"], ["elbo", "iwae"], key=jax.random.key(3))
    assert float(jnp.mean(s["iwae"])) >= float(jnp.mean(s["elbo"]))
    swept = {**variables, "loss_weights": {"alpha": 3.0, "beta_g": 0.0, "beta": 0.1}}
    losses, (metrics, _) = model.loss(swept, batch, key=jax.random.key(1))
    np.testing.assert_allclose(losses, 3.0 * metrics["ce"], rtol=1e-6)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("alpha", -1.0, "alpha"),
        ("beta_g", -0.5, "beta_g"),
        ("beta", -0.1, "beta"),
        ("head_input", "z", "head_input"),
        ("variant", "vae", "variant"),
    ],
)
def test_bad_hybrid_architecture_is_refused_at_load(tiny_config, key, value, match):
    tiny_config.models = {
        "dhm": {
            "kind": "hybrid",
            "architecture": {"width": 0.125, key: value},
            "training": {"batch_size": 8, "num_epochs": 1},
        }
    }
    tiny_config.evaluate = {}
    with pytest.raises(ConfigError, match=match):
        resolve_config(tiny_config)


def test_28x28_inputs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="resize_to = 32"):
        jr.models.make_hybrid((28, 28, 1), 10)

"""Variational autoencoder (Kingma & Welling 2014) with a Bernoulli observation model.

ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)), q(z|x) = N(mu(x), diag sigma^2(x)),
p(z) = N(0, I), one reparameterised sample z = mu + sigma * eps for the expectation.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrobust.distributions import (
    bernoulli_log_prob,
    bits_per_dim,
    diagonal_gaussian_kl_to_standard,
)
from jaxrobust.models.base import Model, Score
from jaxrobust.nn import ConvDecoder, ConvEncoder


class VAE(nn.Module):
    """Conv encoder q(z|x) and conv decoder p(x|z) returning Bernoulli logits."""

    image_shape: Sequence[int]
    latent_dim: int
    encoder_features: Sequence[int] = (32, 64)
    decoder_features: Sequence[int] = (64, 32)

    def setup(self):
        self.encoder = ConvEncoder(self.latent_dim, self.encoder_features)
        self.decoder = ConvDecoder(self.image_shape, self.decoder_features)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)

    def __call__(self, x: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
        """Per-example ELBO terms: ``log_lik``, ``kl`` and ``elbo`` (nats), each ``[N]``."""
        mu, log_var = self.encode(x)
        eps = jax.random.normal(key, mu.shape, mu.dtype)
        z = mu + jnp.exp(0.5 * log_var) * eps
        log_lik = bernoulli_log_prob(self.decode(z), x)
        kl = diagonal_gaussian_kl_to_standard(mu, log_var)
        return {"log_lik": log_lik, "kl": kl, "elbo": log_lik - kl}


def make_vae(
    image_shape: Sequence[int],
    latent_dim: int,
    encoder_features: Sequence[int] = (32, 64),
    decoder_features: Sequence[int] = (64, 32),
) -> Model:
    """A :class:`Model` whose per-example loss is the negative ELBO (nats)."""
    module = VAE(tuple(image_shape), latent_dim, tuple(encoder_features), tuple(decoder_features))
    num_dims = int(jnp.prod(jnp.asarray(image_shape)))

    def init(key, images):
        init_key, sample_key = jax.random.split(key)
        return module.init(init_key, images, sample_key)

    def loss(params, state, batch, key, train):
        del train  # no dropout or batch norm
        terms = module.apply({"params": params, **state}, batch["image"], key)
        neg_elbo = -terms["elbo"]
        metrics = {"loss": neg_elbo, "kl": terms["kl"], "bpd": bits_per_dim(neg_elbo, num_dims)}
        return neg_elbo, (metrics, state)

    def elbo_score(variables, images, key):
        return module.apply(variables, images, key)["elbo"]

    def kl_score(variables, images, key):
        del key
        mu, log_var = module.apply(variables, images, method=VAE.encode)
        return diagonal_gaussian_kl_to_standard(mu, log_var)

    scores = {
        "elbo": Score(elbo_score, False, "ELBO estimate of log p(x), one z sample (nats)"),
        "kl": Score(kl_score, True, "KL(q(z|x) || p(z)) in closed form (nats)"),
    }
    return Model("vae", init, loss, scores)

"""Variational autoencoder (Kingma & Welling 2014) with negative sampling (seed 004, section 3).

VAE = encoder q(z|x) in a latent family (:mod:`jaxrobust.distributions.latent`; the Gaussian
N(mu(x), diag sigma^2(x)) with prior N(0, I) by default) + decoder + observation model p(x|z)
(any of :func:`jaxrobust.distributions.make_observation_model`):
    ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))   (one reparameterised z, closed-form KL)

Negative sampling (Csiszarik et al., seed 004, eq. in section 3): with negatives x_neg and the
negative prior p_neg(z) = N(s * 1, I) (s = 8 grayscale, 25 colour; a family's
``kl_to_shifted_prior``),
    L = -ELBO(x) + KL(q(z|x_neg) || p_neg(z))      (no reconstruction term for negatives)
Negative sources (``negatives.source``):
- ``"dataset"``: an auxiliary dataset (``negatives.dataset``, any ``jaxrobust.data`` name of the
  same image shape); the training loop draws a batch of it per step (``batch["negative_image"]``);
- ``"uniform_noise"``: every pixel ~ U[0, 1];
- ``"data_noise"``: x + sigma * N(0, I) (sigma 0.25 in the paper), clipped to [0, 1];
- ``"generated"`` (adversarial variant, sections 3 and 4.3): x_gen = E[x | z], z ~ p(z).
  Gradients: the ENCODER is trained to map x_gen into p_neg through
  KL(q(z | stop_gradient(x_gen)) || p_neg) (the decoder gets nothing from this term); the
  DECODER ("the generator gets gradient signal to map the generated images into the prior") is
  trained through ``generator_weight`` * KL(q(z|x_gen) || p(z)) evaluated with the encoder's
  parameters under stop_gradient (the encoder gets nothing from this term).
- ``"none"``: the plain VAE.
The paper's alternating encoder/decoder updates: optimizer option
``alternate: ["encoder", "decoder"]`` (:func:`jaxrobust.train.optim.alternating`).

Scores of latent holes and input complexity (dissertation Ch.4, seed 001, eqs. 4.16-4.19), all
from the one set of K = ``iwae_samples`` samples z_k ~ q(z|x) of the IWAE estimate (one chunked
scan, :func:`jaxrobust.scores.iwae_and_hole_indicator`):
- ``hole_indicator``: std_k log p(x|z_k) (ddof 1, eq. 4.17);
- ``iwae_std``: std_k log w_k, the Chapter-4 "std of LLs" (eq. 4.16);
- ``input_complexity``: S = -log p(x) / (d ln 2) - L(x), L the bits/dim of a lossless JPEG2000
  code of the input (eq. 4.19, :mod:`jaxrobust.scores.complexity`; inputs in [0, 1]);
- ``typicality``: |-log p(x) - H| (eq. 4.18), H = mean -log p(x) over held-out in-distribution
  inputs (a score with a ``reference``: the evaluation uses the validation carve of the
  training data);
with log p(x) the IWAE estimate; all larger = OOD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.distributions import ObservationModel, bits_per_dim, make_observation_model
from jaxrobust.distributions.latent import GAUSSIAN, LatentFamily, get_latent_family
from jaxrobust.models.base import Model, Score
from jaxrobust.nn import make_vae_networks
from jaxrobust.scores.complexity import input_complexity, jpeg2000_bits_per_dim
from jaxrobust.scores.importance import (
    importance_weighted_log_likelihood,
    iwae_and_hole_indicator,
    iwae_and_term_stds,
    repeated_log_likelihood_std,
)
from jaxrobust.scores.stacked import typicality_per_input

NEGATIVE_SOURCES = ("none", "dataset", "uniform_noise", "data_noise", "generated")
#: Names of the VAE's ``outputs`` (each computed once per call, whatever scores need it):
#: ``iwae`` (an :class:`~jaxrobust.scores.IWAEResult`) and ``hole_indicator`` come from one
#: scan over the same K samples; ``complexity_bpd`` is the JPEG2000 bits/dim of the input;
#: ``latent_mean`` the mean of q(z|x); ``term_stds`` the stds of log p(x|z), log q(z|x) and
#: log p(z) over the same K samples (Fig. 5.1).
OUTPUTS = (
    "elbo",
    "kl",
    "iwae",
    "hole_indicator",
    "iwae_repeat_std",
    "complexity_bpd",
    "latent_mean",
    "term_stds",
)


class VAE(nn.Module):
    """Encoder, decoder, the latent family and the observation model's own parameters."""

    encoder: nn.Module
    decoder: nn.Module
    observation: ObservationModel
    latent: LatentFamily = GAUSSIAN

    def setup(self):
        self.observation_params = {
            name: self.param(name, lambda _, v=value: jnp.asarray(v))
            for name, value in self.observation.init_params().items()
        }

    def encode(self, x: jax.Array, train: bool = False) -> Any:
        """The latent family's parameters of q(z|x)."""
        return self.latent.params(self.encoder(x, train=train))

    def decode(self, z: jax.Array, train: bool = False) -> jax.Array:
        return self.decoder(z, train=train)

    def log_likelihood(self, decoder_out: jax.Array, x: jax.Array) -> jax.Array:
        return self.observation.log_prob(decoder_out, x, self.observation_params)

    def reconstruction_mean(self, decoder_out: jax.Array) -> jax.Array:
        return self.observation.mean(decoder_out, self.observation_params)

    def __call__(self, x: jax.Array, key: jax.Array, train: bool = False) -> dict[str, Any]:
        """Per-example ``log_lik``, ``kl``, ``elbo`` (nats, ``[N]``) and the latent ``params``."""
        params = self.encode(x, train)
        z = self.latent.sample(key, params)
        log_lik = self.log_likelihood(self.decode(z, train), x)
        kl = self.latent.kl_to_prior(params)
        return {"log_lik": log_lik, "kl": kl, "elbo": log_lik - kl, "params": params}

    def log_weight(self, x: jax.Array, key: jax.Array) -> jax.Array:
        """One importance log-weight per input: log p(x|z) + log p(z) - log q(z|x), z ~ q."""
        return self.log_weight_terms(x, key)[0]

    def log_weight_terms(self, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(log w, log p(x|z))`` per input for one z ~ q(z|x) drawn with ``key``."""
        params = self.encode(x)
        z = self.latent.sample(key, params)
        log_lik = self.log_likelihood(self.decode(z), x)
        log_w = log_lik + self.latent.prior_log_prob(z) - self.latent.log_prob(z, params)
        return log_w, log_lik

    def log_weight_components(self, x: jax.Array, key: jax.Array) -> tuple[jax.Array, ...]:
        """``(log w, log p(x|z), log q(z|x), log p(z))`` per input for one z ~ q(z|x)."""
        params = self.encode(x)
        z = self.latent.sample(key, params)
        log_lik = self.log_likelihood(self.decode(z), x)
        log_q, log_prior = self.latent.log_prob(z, params), self.latent.prior_log_prob(z)
        return log_lik + log_prior - log_q, log_lik, log_q, log_prior

    def log_joint(self, x: jax.Array, z: jax.Array) -> jax.Array:
        """log p(x | z) + log p(z) per input (nats, ``[B]``): log p(z | x) + log p(x)."""
        return self.log_likelihood(self.decode(z), x) + self.latent.prior_log_prob(z)

    def generate_mean(self, z: jax.Array, train: bool = False) -> jax.Array:
        """E[x | z]: the generator's output for latent codes ``z``."""
        return self.reconstruction_mean(self.decode(z, train))


def _check_negatives(negatives: Mapping[str, Any]) -> dict[str, Any]:
    negatives = {"source": "none", "shift": 8.0, "sigma": 0.25, "generator_weight": 1.0,
                 **dict(negatives or {})}  # fmt: skip
    if negatives["source"] not in NEGATIVE_SOURCES:
        raise ValueError(
            f"Unknown negatives.source {negatives['source']!r}; known: {NEGATIVE_SOURCES}."
        )
    unknown = set(negatives) - {"source", "shift", "sigma", "generator_weight", "clip", "dataset"}
    if unknown:
        raise ValueError(f"Unknown negatives options {sorted(unknown)}.")
    return negatives


def make_vae(
    image_shape: Sequence[int],
    latent_dim: int,
    encoder_features: Sequence[int] = (32, 64),
    decoder_features: Sequence[int] = (64, 32),
    *,
    latent: str | LatentFamily = "gaussian",
    network: str = "conv",
    network_options: Mapping[str, Any] | None = None,
    observation: str = "bernoulli",
    observation_options: Mapping[str, Any] | None = None,
    negatives: Mapping[str, Any] | None = None,
    iwae_samples: int = 100,
    iwae_chunk: int = 50,
    iwae_repeats: int = 5,
) -> Model:
    """A :class:`Model` whose per-example loss is -ELBO (+ the negative-sampling KL), in nats.

    Capabilities: ``encode`` (the latent family's parameters), ``decode`` (E[x | z]),
    ``log_likelihood`` (IWAE, ``num_samples`` defaulting to ``iwae_samples``), ``log_joint``
    (log p(x|z) + log p(z)), ``outputs``
    (:data:`OUTPUTS`). Scores: ``elbo`` (larger = in-distribution), ``bpd`` (bits per dimension
    of -ELBO, larger = OOD: the paper's "AUC BPD"), ``kl`` (KL(q(z|x) || p(z)), larger = OOD:
    "AUC KL"), ``iwae`` (importance-weighted log p(x) with ``iwae_samples`` samples),
    ``iwae_std`` (std of the log-weights, larger = OOD: the Ch.4 "std of LLs", eq. 4.16),
    ``iwae_repeat_std`` (std over ``iwae_repeats`` independent IWAE estimates of log p(x),
    larger = OOD: the classical-VAE "std of LLs" of Ch.5, Table 5.2), ``hole_indicator`` (std of
    log p(x|z_k) over the same K samples, ddof 1, eq. 4.17, larger = OOD), ``input_complexity``
    (-log p(x) in bits/dim minus the lossless JPEG2000 bits/dim of x, eq. 4.19, larger = OOD;
    inputs in [0, 1]), ``typicality`` (|-log p(x) - H|, eq. 4.18, larger = OOD; a score with a
    ``reference``: H from held-out in-distribution data, see :mod:`jaxrobust.scores.table`) and
    ``latent_mean_inf_norm`` (||E_q[z|x]||_inf, larger = OOD: Fig. 4.2), where log p(x) is the
    IWAE estimate. ``iwae``, ``iwae_std``, ``hole_indicator``, ``input_complexity`` and
    ``typicality`` share one set of K samples.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import jaxrobust as jr
        >>> vae = make_vae((8, 8, 1), 2, network="mlp", network_options={"hidden": (16,)},
        ...                iwae_samples=4, iwae_chunk=4)
        >>> x = jnp.full((3, 8, 8, 1), 0.5)
        >>> variables = vae.init(jax.random.key(0), x)
        >>> mu, log_var = vae.encode(variables, x)
        >>> mu.shape, vae.decode(variables, mu).shape
        ((3, 2), (3, 8, 8, 1))
        >>> s = vae.score(variables, x, ["elbo", "iwae", "iwae_std", "hole_indicator"],
        ...               key=jax.random.key(1))
        >>> bool(jnp.all(s["iwae"] >= s["elbo"] - 50.0)), s["hole_indicator"].shape
        (True, (3,))

        Typicality needs the statistic (log p(x)) of held-out in-distribution inputs:

        >>> key = jax.random.key(2)
        >>> held_out = jr.scores.score_statistics(vae.scores, vae.outputs, variables,
        ...                                        x[:2], ["typicality"], key=key)
        >>> vae.score(variables, x, ["typicality"], key=key, held_out=held_out)["typicality"].shape
        (3,)
    """
    image_shape = tuple(image_shape)
    family = get_latent_family(latent)
    obs = make_observation_model(observation, **dict(observation_options or {}))
    options = dict(network_options or {})
    if network == "conv":
        options.setdefault("encoder_features", tuple(encoder_features))
        options.setdefault("decoder_features", tuple(decoder_features))
    encoder, decoder = make_vae_networks(
        network,
        image_shape,
        latent_dim,
        obs.decoder_channels(image_shape[-1]),
        head_width=family.head_width(latent_dim),
        **options,
    )
    module = VAE(encoder, decoder, obs, family)
    neg = _check_negatives(negatives or {})
    if neg["source"] != "none" and family.kl_to_shifted_prior is None:
        raise ValueError(
            f"Negative sampling needs a shifted prior; latent family {family.name!r} has none."
        )
    num_dims = int(np.prod(image_shape))

    def init(key, images):
        init_key, sample_key = jax.random.split(key)
        return module.init(init_key, images, sample_key)

    def apply(variables, *args, train=False, method=None):
        """``module.apply``; in training, batch statistics (if any) are updated and returned."""
        mutable = ["batch_stats"] if train and "batch_stats" in variables else False
        out = module.apply(variables, *args, method=method, mutable=mutable)
        return out if mutable else (out, {k: v for k, v in variables.items() if k != "params"})

    def loss(variables, batch, *, key, train=False):
        params = variables["params"]
        state = {k: v for k, v in variables.items() if k != "params"}
        x = batch["image"]
        # The positive term uses ``key`` itself, so the loss is -ELBO of the "elbo" score.
        neg_key, gen_key = jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)
        terms, state = apply({"params": params, **state}, x, key, train, train=train)
        total = -terms["elbo"]
        metrics = {
            "elbo": terms["elbo"],
            "kl": terms["kl"],
            "bpd": bits_per_dim(-terms["elbo"], num_dims),
        }
        # Validation batches carry no auxiliary negatives: their loss is then -ELBO alone.
        skip = neg["source"] == "dataset" and not train and "negative_image" not in batch
        if neg["source"] != "none" and not skip:
            x_neg = _negatives(x, batch, neg_key, params, state, train)
            latent_params, state = apply(
                {"params": params, **state}, x_neg, train, train=train, method=VAE.encode
            )
            neg_kl = family.kl_to_shifted_prior(latent_params, neg["shift"])
            total = total + neg_kl
            metrics["negative_kl"] = neg_kl
            if neg["source"] == "generated":
                gen_kl = _generator_kl(params, state, x.shape[0], gen_key, train)
                total = total + neg["generator_weight"] * gen_kl
                metrics["generator_kl"] = gen_kl
        metrics["loss"] = total
        return total, (metrics, state)

    def _generated(params, state, num, key, train):
        z = family.sample_prior(key, (num, latent_dim))
        out, _ = apply({"params": params, **state}, z, train, train=train,
                       method=VAE.generate_mean)  # fmt: skip
        return out

    def _negatives(x, batch, key, params, state, train):
        source = neg["source"]
        if source == "dataset":
            if "negative_image" not in batch:
                raise ValueError(
                    "negatives.source is 'dataset' but the batch has no 'negative_image'; train "
                    "through jaxrobust.train with negatives.dataset set."
                )
            return batch["negative_image"]
        if source == "uniform_noise":
            return jax.random.uniform(key, x.shape, x.dtype)
        if source == "data_noise":
            noisy = x + neg["sigma"] * jax.random.normal(key, x.shape, x.dtype)
            return jnp.clip(noisy, 0.0, 1.0) if neg.get("clip", True) else noisy
        # "generated": the encoder term sees the generator's output as fixed data.
        return jax.lax.stop_gradient(_generated(params, state, x.shape[0], key, train))

    def _generator_kl(params, state, num, key, train):
        """KL(q(z|x_gen) || p(z)) with x_gen differentiable and the encoder frozen."""
        x_gen = _generated(params, state, num, key, train)
        frozen = {**params, "encoder": jax.lax.stop_gradient(params["encoder"])}
        latent_params, _ = apply({"params": frozen, **state}, x_gen, train, train=train,
                                 method=VAE.encode)  # fmt: skip
        return family.kl_to_prior(latent_params)

    def encode(variables, images):
        return module.apply(variables, images, method=VAE.encode)

    def decode(variables, z):
        return module.apply(variables, z, method=VAE.generate_mean)

    def log_joint(variables, images, z):
        return module.apply(variables, images, z, method=VAE.log_joint)

    def _log_weight_fn(variables, images):
        def log_weight_fn(k):
            return module.apply(variables, images, k, method=VAE.log_weight)

        return log_weight_fn

    def _log_terms_fn(variables, images):
        def log_terms_fn(k):
            return module.apply(variables, images, k, method=VAE.log_weight_terms)

        return log_terms_fn

    def log_likelihood(variables, images, *, key, num_samples=None):
        k, chunk = (iwae_samples, iwae_chunk) if num_samples is None else (num_samples, None)
        chunk = min(iwae_chunk, k) if chunk is None else chunk
        return importance_weighted_log_likelihood(
            _log_weight_fn(variables, images), key=key, num_samples=k, chunk_size=chunk
        ).log_likelihood

    def outputs(variables, images, *, key, names):
        unknown = set(names) - set(OUTPUTS)
        if unknown:
            raise KeyError(f"Unknown VAE outputs {sorted(unknown)}; known: {list(OUTPUTS)}.")
        out = {}
        if "elbo" in names:
            terms = module.apply(variables, images, key)
            out["elbo"] = {k: terms[k] for k in ("elbo", "log_lik", "kl")}
        if "kl" in names or "latent_mean" in names:
            latent_params = encode(variables, images)
            if "kl" in names:
                out["kl"] = family.kl_to_prior(latent_params)
            if "latent_mean" in names:
                out["latent_mean"] = family.mean(latent_params)
        if "term_stds" in names:  # one scan: IWAE, the hole indicator and the per-term stds
            out["iwae"], stds = iwae_and_term_stds(
                lambda k: module.apply(variables, images, k, method=VAE.log_weight_components),
                key=key,
                num_samples=iwae_samples,
                chunk_size=iwae_chunk,
            )
            out["term_stds"] = dict(zip(("log_lik", "log_q", "log_prior"), stds, strict=True))
            out["hole_indicator"] = stds[0]
        elif "iwae" in names or "hole_indicator" in names:  # one scan over the same K samples
            out["iwae"], out["hole_indicator"] = iwae_and_hole_indicator(
                _log_terms_fn(variables, images),
                key=key,
                num_samples=iwae_samples,
                chunk_size=iwae_chunk,
            )
        if "complexity_bpd" in names:
            out["complexity_bpd"] = jpeg2000_bits_per_dim(images)
        if "iwae_repeat_std" in names:
            out["iwae_repeat_std"] = repeated_log_likelihood_std(
                _log_weight_fn(variables, images),
                key=key,
                num_samples=iwae_samples,
                num_repeats=iwae_repeats,
                chunk_size=iwae_chunk,
            )
        return out

    table = {
        "elbo": Score(
            lambda o: o["elbo"]["elbo"],
            False,
            "ELBO estimate of log p(x), one z sample (nats)",
            ("elbo",),
        ),
        "bpd": Score(
            lambda o: bits_per_dim(-o["elbo"]["elbo"], num_dims),
            True,
            "bits per dimension of -ELBO (one z sample)",
            ("elbo",),
        ),
        "kl": Score(lambda o: o["kl"], True, "KL(q(z|x) || p(z)) in closed form (nats)", ("kl",)),
        "iwae": Score(
            lambda o: o["iwae"].log_likelihood,
            False,
            f"importance-weighted log p(x), K = {iwae_samples} (nats)",
            ("iwae",),
        ),
        "iwae_std": Score(
            lambda o: o["iwae"].std_log_weights,
            True,
            f"std of the K = {iwae_samples} importance log-weights (nats)",
            ("iwae",),
        ),
        "iwae_repeat_std": Score(
            lambda o: o["iwae_repeat_std"],
            True,
            f"std over {iwae_repeats} IWAE estimates of log p(x), K = {iwae_samples} (nats)",
            ("iwae_repeat_std",),
        ),
        **{
            f"std_{term}": Score(
                lambda o, t=term: o["term_stds"][t],
                True,
                f"std of {what} over the K = {iwae_samples} samples z_k ~ q(z|x) (Fig. 5.1, nats)",
                ("term_stds",),
            )
            for term, what in (("log_q", "log q(z|x)"), ("log_prior", "log p(z)"))
        },
        "hole_indicator": Score(
            lambda o: o["hole_indicator"],
            True,
            f"hole indicator: std of log p(x|z_k), z_k ~ q(z|x), K = {iwae_samples} (nats)",
            ("hole_indicator",),
        ),
        "input_complexity": Score(
            lambda o: input_complexity(o["iwae"].log_likelihood, o["complexity_bpd"], num_dims),
            True,
            f"-log p(x) (IWAE, K = {iwae_samples}) minus lossless JPEG2000 bits/dim",
            ("iwae", "complexity_bpd"),
        ),
        "typicality": Score(
            lambda o: o["iwae"].log_likelihood,  # the statistic; H from held-out data
            True,
            f"|-log p(x) - H| (IWAE, K = {iwae_samples}; H: mean over held-out data, nats)",
            ("iwae",),
            reference=typicality_per_input,
        ),
        "latent_mean_inf_norm": Score(
            lambda o: jnp.max(jnp.abs(o["latent_mean"]), axis=-1),
            True,
            "||E_q[z|x]||_inf, the largest coordinate of the latent mean",
            ("latent_mean",),
        ),
    }
    return Model(
        "vae",
        init,
        loss,
        scores=table,
        outputs=outputs,
        log_likelihood=log_likelihood,
        encode=encode,
        decode=decode,
        latent=family,
        log_joint=log_joint,
    )

"""Deep hybrid models (DHM): a classifier and a beta-VAE sharing the latent code z (seed 000).

p(x, y, z) = p(y | x, z) p(x, z), trained with (thesis eq. 3.1, Table 5.2)

    L = alpha * L_D + beta_G * L_G,
    L_D = CE(head(concat(f(x), z)), y),   L_G = the beta-VAE loss of x,

f a CIFAR ResNet-18 (the classifier branch) and z from the VAE's own ResNet-18 encoder
q(z | x) = N(mu(x), diag exp(log_var(x))), decoded by the residual decoder of the author's code
(:class:`~jaxrobust.nn.resnet.ResNetDecoder`, no output activation). The head is
Dropout(.5) - Linear(512 + 256, 256) - Dropout(.25) - Linear(256, C), no nonlinearity between the
Linears (the code). Variants (``architecture.variant``):

- ``"dhm"``: both branches. ``beta_g = 0`` is the Disc. DHM: no decoder (and, with
  ``head_input="mu"``, no log-variance layer), trained by the cross-entropy alone;
- ``"resnet"``: the ResNet-18 baseline, the same head on the 512 features alone;
- ``"beta_vae"``: the VAE alone (no classifier).

Choices where the thesis and the code differ (digest ``spec/hybrid_models.md`` section 7):
``head_input="sample"`` (default, the thesis: z ~ q in training, reparameterised; mu at test)
or ``"mu"`` (the code: mu in training and at test). ``reduction="mean"`` (default, the code:
per-image MSE averaged over pixels + beta * KL averaged over the latent dimensions, closed-form
KL, one z) or ``"sum"`` (the summed negative ELBO under a unit-variance Gaussian p(x | z) in the
normalised input space, + beta * the summed KL). Scores of log p(x) (larger = in-distribution):
``elbo_surrogate`` (the code's -(MSE_mean + beta KL_mean)), ``elbo`` (the summed ELBO, one z) and
``iwae`` (``iwae_samples`` importance samples), all under the unit-variance Gaussian.

The loss weights ``alpha``, ``beta_g`` and ``beta`` are read from the variables' ``loss_weights``
collection when it is there (a hyperparameter sweep, :mod:`jaxrobust.train.sweep`), else from
the architecture.

Example:
    >>> import math, jax, jax.numpy as jnp
    >>> model = make_hybrid((32, 32, 1), 10, widths=(8, 8, 16, 16), latent_dim=4)
    >>> x, y = jnp.zeros((2, 32, 32, 1)), jnp.array([0, 1])
    >>> variables = model.init(jax.random.key(0), x)
    >>> losses, (metrics, _) = model.loss(variables, {"image": x, "label": y},
    ...                                   key=jax.random.key(1))
    >>> losses.shape, model.logits(variables, x).shape
    ((2,), (2, 10))
    >>> sorted(metrics)
    ['accuracy', 'ce', 'elbo', 'kl', 'l_g', 'loss', 'mse']
    >>> model.capabilities()
    ('logits', 'features', 'log_likelihood', 'encode', 'decode', 'log_joint', 'outputs')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxrobust import scores
from jaxrobust.config.schema import Field
from jaxrobust.distributions.latent import GAUSSIAN
from jaxrobust.models.base import Model, Score, split_variables
from jaxrobust.nn.precision import as_float32
from jaxrobust.nn.resnet import ResNet, ResNetDecoder
from jaxrobust.scores.importance import importance_weighted_log_likelihood
from jaxrobust.sweep import LOSS_WEIGHTS_COLLECTION

VARIANTS = ("dhm", "resnet", "beta_vae")
HEAD_INPUTS = ("sample", "mu")
REDUCTIONS = ("mean", "sum")
RESNET18_WIDTHS = (64, 128, 256, 512)
LOSS_WEIGHTS = ("alpha", "beta_g", "beta")

#: ``architecture`` of ``kind: "hybrid"``.
HYBRID_ARCHITECTURE = {
    "variant": Field(str, "dhm", choices=VARIANTS, help="dhm | resnet | beta_vae"),
    "width": Field(float, 1.0, above=0.0, help="multiplier of the ResNet-18 widths 64..512"),
    "blocks": Field(
        list,
        [2, 2, 2, 2],
        items=Field(int, minimum=1),
        help="residual blocks per stage, encoders and decoder ([2, 2, 2, 2]: ResNet-18)",
    ),  # fmt: skip
    "latent_dim": Field(int, 256, minimum=1),
    "head_hidden": Field(int, 256, minimum=1, help="the head's hidden Linear (the code: 256)"),
    "head_input": Field(str, "sample", choices=HEAD_INPUTS, help="z ~ q (thesis) or mu (code)"),
    "reduction": Field(str, "mean", choices=REDUCTIONS, help="L_G as the code (mean) or summed"),
    "alpha": Field(float, 1.0, minimum=0.0, help="weight of the cross-entropy L_D"),
    "beta_g": Field(float, 1.0, minimum=0.0, help="weight of the VAE loss L_G (0: Disc. DHM)"),
    "beta": Field(float, 0.1, minimum=0.0, help="KL weight inside L_G (beta-VAE)"),
    "iwae_samples": Field(int, 100, minimum=1, help="importance samples of the iwae score"),
    "iwae_chunk": Field(int, 10, minimum=1),
    "compute_dtype": Field(str, "float32", choices=("float32", "bfloat16")),
}


def scaled_widths(width: float, base: Sequence[int] = RESNET18_WIDTHS) -> tuple[int, ...]:
    """ResNet-18 stage widths times ``width`` (at least 1 channel each).

    Example:
        >>> scaled_widths(0.25)
        (16, 32, 64, 128)
    """
    return tuple(max(1, round(width * w)) for w in base)


class HybridNetwork(nn.Module):
    """The DHM's networks; which exist depends on ``variant`` and the static flags."""

    num_classes: int
    out_channels: int
    latent_dim: int = 256
    widths: Sequence[int] = RESNET18_WIDTHS
    head_hidden: int = 256
    variant: str = "dhm"
    blocks: Sequence[int] = (2, 2, 2, 2)
    generative: bool = True  # the decoder (and the log-variance layer)
    sample_head: bool = True  # the head sees z ~ q in training (else mu)
    dtype: Any = None

    @property
    def has_vae(self) -> bool:
        return self.variant in ("dhm", "beta_vae")

    @property
    def has_classifier(self) -> bool:
        return self.variant in ("dhm", "resnet")

    @property
    def has_log_var(self) -> bool:
        return self.has_vae and (self.generative or self.sample_head)

    def setup(self):
        widths = tuple(self.widths)
        resnet = dict(
            stage_sizes=tuple(self.blocks), num_classes=None, widths=widths, dtype=self.dtype
        )
        if self.has_vae:
            self.vae_encoder = ResNet(**resnet)
            self.fc_mu = nn.Dense(self.latent_dim, dtype=self.dtype)
            if self.has_log_var:
                self.fc_var = nn.Dense(self.latent_dim, dtype=self.dtype)
        if self.has_vae and self.generative:
            decoder_widths = (widths[3], widths[2], widths[1], widths[0], widths[0])
            self.decoder = ResNetDecoder(
                self.out_channels, decoder_widths, tuple(self.blocks), dtype=self.dtype
            )
        if self.has_classifier:
            self.classifier = ResNet(**resnet)
            self.head_hidden_layer = nn.Dense(self.head_hidden, dtype=self.dtype)
            self.head_out = nn.Dense(self.num_classes, dtype=self.dtype)
            self.dropout_in, self.dropout_hidden = nn.Dropout(0.5), nn.Dropout(0.25)

    def encode(self, x, train: bool = False):
        """``(mu, log_var)`` of q(z | x) (log_var None without the layer)."""
        h = self.vae_encoder(x, train=train)
        mu = as_float32(self.fc_mu(h))
        log_var = as_float32(self.fc_var(h)) if self.has_log_var else None
        return mu, log_var

    def decode(self, z, train: bool = False):
        return as_float32(self.decoder(z, train=train))

    def classifier_features(self, x, train: bool = False):
        return as_float32(self.classifier(x, train=train))

    def head(self, features, code, train: bool = False):
        h = features if code is None else jnp.concatenate([features, code], axis=-1)
        h = self.dropout_in(h, deterministic=not train)
        h = self.dropout_hidden(self.head_hidden_layer(h), deterministic=not train)
        return as_float32(self.head_out(h))

    def predict(self, x, train: bool = False):
        """Logits at test time: the head on concat(f(x), mu(x)) (dhm) or f(x) (resnet), with
        dropout off (``train`` is accepted for a uniform call and must be False)."""
        del train
        code = self.encode(x)[0] if self.variant == "dhm" else None
        return self.head(self.classifier_features(x), code)

    def __call__(self, x, key, train: bool = False) -> dict[str, Any]:
        """Every quantity of one training/validation step; ``key`` draws z."""
        out: dict[str, Any] = {}
        code = None
        if self.has_vae:
            mu, log_var = self.encode(x, train)
            out["mu"], out["log_var"] = mu, log_var
            code = mu
            if log_var is not None:
                z = GAUSSIAN.sample(key, (mu, log_var))
                out["z"] = z
                if self.sample_head and train:
                    code = z
            if self.generative:
                out["reconstruction"] = self.decode(out["z"], train)
        if self.has_classifier:
            features = self.classifier_features(x, train)
            out["logits"] = self.head(features, code if self.variant == "dhm" else None, train)
        return out


def make_hybrid(
    image_shape: Sequence[int],
    num_classes: int,
    *,
    variant: str = "dhm",
    widths: Sequence[int] = RESNET18_WIDTHS,
    blocks: Sequence[int] = (2, 2, 2, 2),
    latent_dim: int = 256,
    head_hidden: int = 256,
    head_input: str = "sample",
    reduction: str = "mean",
    alpha: float = 1.0,
    beta_g: float = 1.0,
    beta: float = 0.1,
    iwae_samples: int = 100,
    iwae_chunk: int = 10,
    dtype: Any = None,
) -> Model:
    """The hybrid model of ``variant`` (module docstring) for ``image_shape`` (32x32xC) inputs.

    Per-example loss: ``alpha * CE + beta_g * L_G`` (``"dhm"``), ``CE`` (``"resnet"``), ``L_G``
    (``"beta_vae"``); metrics ``loss``, ``accuracy``, ``ce``, ``l_g``, ``mse`` (mean over
    pixels), ``kl`` (summed over the latent dimensions) as far as the variant has them.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown hybrid variant {variant!r}; known: {VARIANTS}.")
    if head_input not in HEAD_INPUTS or reduction not in REDUCTIONS:
        raise ValueError(
            f"head_input must be one of {HEAD_INPUTS} and reduction one of {REDUCTIONS}, got "
            f"{head_input!r} and {reduction!r}."
        )
    for name, value in (("alpha", alpha), ("beta_g", beta_g), ("beta", beta)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0 (a loss weight), got {value!r}.")
    image_shape = tuple(image_shape)
    if image_shape[:2] != (32, 32):
        raise ValueError(
            f"The hybrid model's ResNet decoder makes 32x32 images, got inputs {image_shape}; "
            "pad or resize 28x28 data to 32 (data.preprocess.resize_to = 32)."
        )
    generative = variant == "beta_vae" or (variant == "dhm" and beta_g > 0)
    if len(blocks) != 4 or len(widths) != 4:
        raise ValueError(f"blocks and widths need 4 stages each, got {blocks} and {widths}.")
    network = HybridNetwork(
        num_classes, image_shape[-1], latent_dim, tuple(widths), head_hidden, variant,
        tuple(blocks), generative, head_input == "sample", dtype,
    )  # fmt: skip
    defaults = {"alpha": alpha, "beta_g": beta_g, "beta": beta}
    loss_weights = {
        "dhm": ("alpha", "beta_g", "beta") if generative else ("alpha",),
        "resnet": (),
        "beta_vae": ("beta",),
    }[variant]
    num_pixels = math.prod(image_shape)

    def weights(variables) -> dict:
        return {**defaults, **variables.get(LOSS_WEIGHTS_COLLECTION, {})}

    def init(key, images):
        params_key, dropout_key, z_key = jax.random.split(key, 3)
        return network.init({"params": params_key, "dropout": dropout_key}, images, z_key)

    def apply(variables, *args, train=False, method=None, rngs=None):
        mutable = ["batch_stats"] if train else False
        out = network.apply(variables, *args, train=train, method=method, rngs=rngs or {},
                            mutable=mutable)  # fmt: skip
        if train:
            out, updates = out
            return out, {**variables, **updates}
        return out, variables

    def generative_terms(x, mu, log_var, reconstruction, beta):
        """Per example: ``l_g`` (``reduction``), ``mse`` (mean over pixels), ``kl`` (summed),
        ``elbo`` (summed, unit-variance Gaussian) and ``elbo_surrogate`` (the code's)."""
        squared = jnp.sum(jnp.square(reconstruction - x).reshape(x.shape[0], -1), axis=-1)
        kl = GAUSSIAN.kl_to_prior((mu, log_var))
        elbo = -0.5 * squared - 0.5 * num_pixels * math.log(2 * math.pi) - kl
        surrogate = -(squared / num_pixels + beta * kl / latent_dim)
        nll = -(elbo + kl)  # -log p(x|z), summed
        l_g = -surrogate if reduction == "mean" else nll + beta * kl
        return {"l_g": l_g, "mse": squared / num_pixels, "kl": kl, "elbo": elbo,
                "elbo_surrogate": surrogate}  # fmt: skip

    def loss(variables, batch, *, key, train=False):
        x = batch["image"]
        z_key, dropout_key = jax.random.split(key)
        w = weights(variables)
        out, new_variables = apply(variables, x, z_key, train=train,
                                   rngs={"dropout": dropout_key})  # fmt: skip
        metrics = {}
        total = jnp.zeros(x.shape[0], jnp.float32)
        if "logits" in out:
            ce = optax.softmax_cross_entropy_with_integer_labels(out["logits"], batch["label"])
            metrics["ce"] = ce
            metrics["accuracy"] = (jnp.argmax(out["logits"], -1) == batch["label"]).astype(
                jnp.float32
            )
            total = total + (w["alpha"] * ce if variant == "dhm" else ce)
        if "reconstruction" in out:
            terms = generative_terms(x, out["mu"], out["log_var"], out["reconstruction"], w["beta"])
            metrics.update({k: terms[k] for k in ("l_g", "mse", "kl", "elbo")})
            total = total + (w["beta_g"] * terms["l_g"] if variant == "dhm" else terms["l_g"])
        metrics["loss"] = total
        _, state = split_variables(new_variables)
        return total, (metrics, state)

    def logits_fn(variables, images):
        return apply(variables, images, method=HybridNetwork.predict)[0]

    def features_fn(variables, images):
        return apply(variables, images, method=HybridNetwork.classifier_features)[0]

    def encode_fn(variables, images):
        return apply(variables, images, method=HybridNetwork.encode)[0]

    def decode_fn(variables, z):
        return apply(variables, z, method=HybridNetwork.decode)[0]

    def log_weight(variables, x, key):
        mu, log_var = encode_fn(variables, x)
        z = GAUSSIAN.sample(key, (mu, log_var))
        log_lik = _unit_gaussian_log_prob(decode_fn(variables, z), x)
        return log_lik + GAUSSIAN.prior_log_prob(z) - GAUSSIAN.log_prob(z, (mu, log_var))

    def log_likelihood(variables, x, *, key, num_samples=None):
        return importance_weighted_log_likelihood(
            lambda k: log_weight(variables, x, k), key=key,
            num_samples=num_samples or iwae_samples, chunk_size=iwae_chunk,
        ).log_likelihood  # fmt: skip

    def log_joint(variables, x, z):
        return _unit_gaussian_log_prob(decode_fn(variables, z), x) + GAUSSIAN.prior_log_prob(z)

    def outputs(variables, images, *, key=None, names=frozenset({"logits"})):
        out = {}
        if "logits" in names:
            out["logits"] = logits_fn(variables, images)
        if "features" in names:
            out["features"] = features_fn(variables, images)
        if {"elbo", "elbo_surrogate"} & set(names):
            mu, log_var = encode_fn(variables, images)
            z = GAUSSIAN.sample(jax.random.fold_in(key, 1), (mu, log_var))
            terms = generative_terms(
                images, mu, log_var, decode_fn(variables, z), weights(variables)["beta"]
            )
            out["elbo"], out["elbo_surrogate"] = terms["elbo"], terms["elbo_surrogate"]
        if "iwae" in names:
            out["iwae"] = log_likelihood(variables, images, key=jax.random.fold_in(key, 2))
        return out

    has_logits = variant in ("dhm", "resnet")
    table = {}
    if has_logits:
        table.update(
            max_softmax=Score(lambda o: scores.max_softmax(o["logits"]), False,
                              "max_y p(y|x) (the thesis's p(y|x) score)", ("logits",)),
            entropy=Score(lambda o: scores.predictive_entropy(o["logits"]), True,
                          "entropy of p(y|x) (nats)", ("logits",)),
        )  # fmt: skip
    if generative:
        table.update(
            elbo_surrogate=Score(lambda o: o["elbo_surrogate"], False,
                                 "-(MSE_mean + beta KL_mean): the code's log p(x)",
                                 ("elbo_surrogate",)),
            elbo=Score(lambda o: o["elbo"], False, "summed ELBO, unit-variance Gaussian p(x|z)",
                       ("elbo",)),
            iwae=Score(lambda o: o["iwae"], False, "IWAE log p(x), unit-variance Gaussian",
                       ("iwae",)),
        )  # fmt: skip
    model = Model(
        "hybrid",
        init,
        loss,
        scores=table,
        outputs=outputs,
        logits=logits_fn if has_logits else None,
        features=features_fn if has_logits else None,
        log_likelihood=log_likelihood if generative else None,
        encode=encode_fn if generative else None,
        decode=decode_fn if generative else None,
        latent=GAUSSIAN if generative else None,
        log_joint=log_joint if generative else None,
    )
    return model._replace(loss_weights={k: defaults[k] for k in loss_weights})


def _unit_gaussian_log_prob(mean: jax.Array, x: jax.Array) -> jax.Array:
    """log N(x; mean, I) summed over the image (nats, ``[B]``)."""
    d = math.prod(x.shape[1:])
    squared = jnp.sum(jnp.square(x - mean).reshape(x.shape[0], -1), axis=-1)
    return -0.5 * squared - 0.5 * d * math.log(2 * math.pi)


def build_hybrid(cfg: Mapping[str, Any], image_shape: Sequence[int], num_classes: int) -> Model:
    """The registered builder of ``kind: "hybrid"`` (schema :data:`HYBRID_ARCHITECTURE`)."""
    dtype = jnp.bfloat16 if cfg.get("compute_dtype", "float32") == "bfloat16" else None
    return make_hybrid(
        image_shape,
        num_classes,
        variant=cfg.get("variant", "dhm"),
        widths=scaled_widths(cfg.get("width", 1.0)),
        blocks=tuple(cfg.get("blocks", (2, 2, 2, 2))),
        latent_dim=cfg.get("latent_dim", 256),
        head_hidden=cfg.get("head_hidden", 256),
        head_input=cfg.get("head_input", "sample"),
        reduction=cfg.get("reduction", "mean"),
        alpha=cfg.get("alpha", 1.0),
        beta_g=cfg.get("beta_g", 1.0),
        beta=cfg.get("beta", 0.1),
        iwae_samples=cfg.get("iwae_samples", 100),
        iwae_chunk=cfg.get("iwae_chunk", 10),
        dtype=dtype,
    )

"""Supervised Deep InfoMax (SDIM): a generative classifier with rejection (seed 003, Sec. 3).

An encoder E (:func:`~jaxrobust.nn.resnet.resnet_8n2`, d = 64 outputs) maps x to the
representation x~ = E(x); its last stage's 4 x 4 map L(x) is the local feature map. Classes are
diagonal Gaussians on x~ (a C x 2d embedding: means and log-scales), so the logits are the
class-conditional log-likelihoods

    log p(x~ | c) = sum_j log N(x~_j; mu_cj, sigma_cj^2)        (summed over the d dims, nats)

and the prediction is argmax_c (Eq. 8, uniform prior). The loss per example (Eq. 7) is

    J = alpha J_MI + beta J_NLL + gamma J_LM,
    J_MI  = -(1/M^2) sum_i I_JSD(L_i(x), x~)  with I_JSD = E_pos[-softplus(-T)] - E_neg[softplus(T)]
    J_NLL = -log p(x~ | y),
    J_LM  = 1/(C-1) sum_{c != y} max(log p(x~|c) + K - log p(x~|y), 0)^2,

with the concat-and-convolve T network (Table 8): L(x) concatenated with x~ tiled over the
M x M locations (256 + 64 channels), 1x1 convs 256-ReLU-256-ReLU-1. Positive pairs are
(L_i(x_b), x~_b); negatives pair x~_b with L_i(x_pi(b)), pi a random derangement of the batch
(``mi_negatives="derangement"``: a uniformly random single cycle, never b itself, App. B.2), or all
other inputs of the batch (``"all_pairs"``, the Fig. 1 caption; B times the T work). The JSD form
is DIM's (Hjelm et al. 2019); the paper does not write it (digest open point 4).

The scales are not floored (open point 2: logits near 480 over 64 dims need sigma ~ 1e-4);
``min_log_scale`` (default log 1e-5) only guards against underflow. Initialisation (the paper is
silent): class means N(0, 1), log-scales 0.

The Gaussian log-density is ``jax.scipy.stats.norm.logpdf``; no distribution package is needed
for a diagonal Gaussian summed over dims, and distrax / NumPyro would add a dependency for one
line.

Example:
    >>> import jax, jax.numpy as jnp
    >>> model = make_sdim((32, 32, 1), 10, n=1, widths=(4, 4, 8, 8), rep_dim=6, t_hidden=8)
    >>> x, y = jnp.zeros((4, 32, 32, 1)), jnp.array([0, 1, 2, 3])
    >>> variables = model.init(jax.random.key(0), x)
    >>> losses, (metrics, _) = model.loss(variables, {"image": x, "label": y},
    ...                                   key=jax.random.key(1))
    >>> losses.shape, model.logits(variables, x).shape, model.features(variables, x).shape
    ((4,), (4, 10), (4, 6))
    >>> sorted(metrics)
    ['accuracy', 'loss', 'margin', 'mi', 'nll']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrobust import scores
from jaxrobust.config.schema import Field
from jaxrobust.models.base import Model, Score, split_variables
from jaxrobust.nn.precision import as_float32
from jaxrobust.nn.resnet import resnet_8n2
from jaxrobust.sweep import LOSS_WEIGHTS_COLLECTION

NEGATIVES = ("derangement", "all_pairs")
LOSS_WEIGHTS = ("alpha", "beta", "gamma")

#: ``architecture`` of ``kind: "sdim"``.
SDIM_ARCHITECTURE = {
    "n": Field(int, 1, minimum=1, help="blocks per stage: ResNet(8n+2); 1 = ResNet10, 3 = 26"),
    "widths": Field(list, [32, 64, 128, 256], items=Field(int, minimum=1)),
    "head_hidden": Field(int, 256, minimum=1, help="the encoder head's hidden Linear-BN-ReLU"),
    "rep_dim": Field(int, 64, minimum=1, help="d, the representation's dimension"),
    "t_hidden": Field(int, 256, minimum=1, help="the T network's 1x1 conv widths"),
    "mi_negatives": Field(str, "derangement", choices=NEGATIVES, help="negatives of the MI bound"),
    "alpha": Field(float, 1.0, minimum=0.0, help="weight of J_MI"),
    "beta": Field(float, 1.0, minimum=0.0, help="weight of J_NLL"),
    "gamma": Field(float, 1.0, minimum=0.0, help="weight of the margin loss J_LM"),
    "margin": Field(float, 10.0, minimum=0.0, help="K of the likelihood margin (nats)"),
    "min_log_scale": Field(float, math.log(1e-5), help="guard on log sigma (open point 2)"),
}


class TNetwork(nn.Module):
    """Concat-and-convolve T (Table 8): ``[..., M, M, C_L + d] -> [..., M, M]`` scores; 1x1
    convolutions are Dense layers over the channel axis."""

    hidden: int = 256

    @nn.compact
    def __call__(self, pairs: jax.Array) -> jax.Array:
        h = nn.relu(nn.Dense(self.hidden)(pairs))
        h = nn.relu(nn.Dense(self.hidden)(h))
        return nn.Dense(1)(h)[..., 0]


class SDIMNetwork(nn.Module):
    """Encoder, T network and the class-conditional Gaussians (module docstring)."""

    num_classes: int
    n: int = 1
    widths: Sequence[int] = (32, 64, 128, 256)
    head_hidden: int = 256
    rep_dim: int = 64
    t_hidden: int = 256
    min_log_scale: float = math.log(1e-5)

    def setup(self):
        self.encoder = resnet_8n2(
            self.n, self.rep_dim, widths=tuple(self.widths), head_hidden=self.head_hidden
        )
        self.t_network = TNetwork(self.t_hidden)
        self.class_mean = self.param(
            "class_mean", nn.initializers.normal(1.0), (self.num_classes, self.rep_dim)
        )
        self.class_log_scale = self.param(
            "class_log_scale", nn.initializers.zeros, (self.num_classes, self.rep_dim)
        )

    def encode(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        """``(L(x) [B, M, M, C_L], x~ [B, d])``."""
        return self.encoder(x, train, return_local=True)

    def class_log_likelihood(self, rep: jax.Array) -> jax.Array:
        """``log p(x~ | c)`` for every class: ``[B, d] -> [B, C]`` (nats)."""
        log_scale = jnp.maximum(self.class_log_scale, self.min_log_scale)
        return class_log_likelihood(rep, self.class_mean, log_scale)

    def t_scores(self, local: jax.Array, rep: jax.Array) -> jax.Array:
        """T on pairs: ``local [..., M, M, C_L]`` with ``rep [..., d]`` tiled -> ``[..., M, M]``."""
        tiled = jnp.broadcast_to(rep[..., None, None, :], (*local.shape[:-1], rep.shape[-1]))
        return self.t_network(jnp.concatenate([local, tiled], axis=-1))

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        _, rep = self.encode(x, train)
        return self.class_log_likelihood(rep)


def class_log_likelihood(rep: jax.Array, mean: jax.Array, log_scale: jax.Array) -> jax.Array:
    """``sum_j log N(rep_j; mean_cj, exp(log_scale_cj)^2)``: ``[B, d], [C, d] -> [B, C]``.

    Example:
        >>> from scipy.stats import norm
        >>> v = class_log_likelihood(jnp.array([[0.5, -1.0]]), jnp.zeros((1, 2)),
        ...                          jnp.log(jnp.array([[2.0, 0.5]])))
        >>> bool(jnp.isclose(v[0, 0], norm.logpdf(0.5, 0, 2) + norm.logpdf(-1.0, 0, 0.5)))
        True
    """
    return jnp.sum(
        jax.scipy.stats.norm.logpdf(rep[:, None, :], mean[None], jnp.exp(log_scale)[None]), -1
    )


def jsd_mutual_information(t_positive: jax.Array, t_negative: jax.Array) -> jax.Array:
    """DIM's Jensen-Shannon MI estimate per example: ``mean(-softplus(-T+)) - mean(softplus(T-))``
    over the locations (and, for ``t_negative [B, K, M, M]``, the K negatives).

    Example:
        >>> float(jsd_mutual_information(jnp.zeros((1, 2, 2)), jnp.zeros((1, 2, 2)))[0])
        -1.386...
    """
    positive = -jax.nn.softplus(-t_positive).reshape(t_positive.shape[0], -1).mean(-1)
    negative = jax.nn.softplus(t_negative).reshape(t_negative.shape[0], -1).mean(-1)
    return positive - negative


def likelihood_margin_loss(logits: jax.Array, labels: jax.Array, margin: float) -> jax.Array:
    """Eq. 6 per example: ``1/(C-1) sum_{c != y} max(l_c + K - l_y, 0)^2``.

    Example:
        >>> l = jnp.array([[5.0, 0.0, 4.0]])
        >>> float(likelihood_margin_loss(l, jnp.array([0]), 10.0)[0])  # (5^2 + 9^2) / 2
        53.0
    """
    own = jnp.take_along_axis(logits, labels[:, None], axis=-1)
    hinge = jnp.maximum(logits + margin - own, 0.0) ** 2
    others = 1.0 - jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return jnp.sum(hinge * others, -1) / (logits.shape[-1] - 1)


def random_derangement(key: jax.Array | None, n: int) -> jax.Array:
    """A permutation of ``range(n)`` with no fixed point (n >= 2): one random n-cycle
    (``perm[i] -> perm[i + 1]``); without a key the shift by one.

    Example:
        >>> p = random_derangement(jax.random.key(0), 6)
        >>> bool(jnp.all(p != jnp.arange(6))), sorted(p.tolist()) == list(range(6))
        (True, True)
    """
    if key is None:
        return jnp.roll(jnp.arange(n), -1)
    order = jax.random.permutation(key, n)
    return jnp.zeros(n, jnp.int32).at[order].set(jnp.roll(order, -1))


def make_sdim(
    image_shape: Sequence[int],
    num_classes: int,
    *,
    n: int = 1,
    widths: Sequence[int] = (32, 64, 128, 256),
    head_hidden: int = 256,
    rep_dim: int = 64,
    t_hidden: int = 256,
    mi_negatives: str = "derangement",
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 1.0,
    margin: float = 10.0,
    min_log_scale: float = math.log(1e-5),
) -> Model:
    """The SDIM model (module docstring); capabilities ``logits`` (= log p(x~|c)), ``features``
    (x~), ``outputs``; scores ``max_log_likelihood`` (max_c log p(x~|c), larger = in) and the
    softmax classifier's ``max_softmax`` and ``entropy`` of softmax(log p(x~|c))."""
    if mi_negatives not in NEGATIVES:
        raise ValueError(f"mi_negatives={mi_negatives!r}; choose one of {NEGATIVES}.")
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma), ("margin", margin)):
        if not value >= 0:
            raise ValueError(f"SDIM: {name} = {value} must be >= 0.")
    if num_classes < 2:
        raise ValueError(f"SDIM needs >= 2 classes (the margin loss), got {num_classes}.")
    network = SDIMNetwork(
        num_classes, n=n, widths=tuple(widths), head_hidden=head_hidden, rep_dim=rep_dim,
        t_hidden=t_hidden, min_log_scale=min_log_scale,
    )  # fmt: skip
    defaults = {"alpha": alpha, "beta": beta, "gamma": gamma}

    def _every_part(module, x):  # touches the encoder, T and the class parameters
        local, rep = module.encode(x, False)
        return module.t_scores(local, rep), module.class_log_likelihood(rep)

    def init(key, images):
        return network.init(key, images, method=_every_part)

    def weights(variables):
        swept = variables.get(LOSS_WEIGHTS_COLLECTION, {})
        return {k: swept.get(k, v) for k, v in defaults.items()}

    def loss(variables, batch, *, key=None, train=False):
        _, state = split_variables(variables)
        model_vars = {k: v for k, v in variables.items() if k != LOSS_WEIGHTS_COLLECTION}
        x, labels = batch["image"], batch["label"]

        def forward(module, x):
            local, rep = module.encode(x, train)
            logits = module.class_log_likelihood(rep)
            positive = module.t_scores(local, rep)
            if mi_negatives == "all_pairs":  # T(L(x_j), x~_b) for every j != b
                b = x.shape[0]
                pairs = module.t_scores(
                    jnp.broadcast_to(local[None], (b, *local.shape)),
                    jnp.broadcast_to(rep[:, None], (b, b, rep.shape[-1])),
                )  # [B (rep), B (local), M, M]
                off = ~jnp.eye(b, dtype=bool)
                negative = pairs[off].reshape(b, b - 1, *pairs.shape[2:])
            else:
                negative = module.t_scores(local[random_derangement(key, x.shape[0])], rep)
            return logits, positive, negative

        mutable = [k for k in state if k != LOSS_WEIGHTS_COLLECTION] if train else []
        if mutable:
            (logits, t_pos, t_neg), new_state = network.apply(
                model_vars, x, method=forward, mutable=mutable
            )
            new_state = {**state, **new_state}
        else:
            logits, t_pos, t_neg = network.apply(model_vars, x, method=forward)
            new_state = state
        logits = as_float32(logits)
        mi = jsd_mutual_information(t_pos, t_neg)
        nll = -jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
        margin_loss = likelihood_margin_loss(logits, labels, margin)
        w = weights(variables)
        total = -w["alpha"] * mi + w["beta"] * nll + w["gamma"] * margin_loss
        accuracy = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        metrics = {"loss": total, "mi": mi, "nll": nll, "margin": margin_loss,
                   "accuracy": accuracy}  # fmt: skip
        return total, (metrics, new_state)

    def _vars(variables):
        return {k: v for k, v in variables.items() if k != LOSS_WEIGHTS_COLLECTION}

    def logits_fn(variables, images):
        return as_float32(network.apply(_vars(variables), images, train=False))

    def features_fn(variables, images):
        return as_float32(
            network.apply(_vars(variables), images, method=lambda m, x: m.encode(x, False)[1])
        )

    def outputs(variables, images, *, key=None, names=frozenset({"logits"})):
        del key
        local_rep = network.apply(_vars(variables), images, method=lambda m, x: m.encode(x))
        rep = as_float32(local_rep[1])
        out = {}
        if "logits" in names:
            out["logits"] = as_float32(
                network.apply(_vars(variables), rep, method=SDIMNetwork.class_log_likelihood)
            )
        if "features" in names:
            out["features"] = rep
        return out

    table = {
        "max_log_likelihood": Score(
            lambda o: jnp.max(o["logits"], -1), False, "max_c log p(x~|c) (nats)", ("logits",)
        ),
        "max_softmax": Score(
            lambda o: scores.max_softmax(o["logits"]),
            False,
            "max_c softmax(log p(x~|c))",
            ("logits",),
        ),  # fmt: skip
        "entropy": Score(
            lambda o: scores.predictive_entropy(o["logits"]),
            True,
            "entropy of softmax(log p(x~|c)) (nats)",
            ("logits",),
        ),  # fmt: skip
    }
    del image_shape  # any H x W x C the encoder accepts (the paper: 32 x 32)
    return Model(
        "sdim",
        init,
        loss,
        scores=table,
        outputs=outputs,
        logits=logits_fn,
        features=features_fn,
        loss_weights=dict(defaults),
    )


def build_sdim(cfg: Mapping[str, Any], image_shape: Sequence[int], num_classes: int) -> Model:
    """The registered builder of ``kind: "sdim"`` (schema :data:`SDIM_ARCHITECTURE`)."""
    keys = ("n", "widths", "head_hidden", "rep_dim", "t_hidden", "mi_negatives", "alpha", "beta",
            "gamma", "margin", "min_log_scale")  # fmt: skip
    return make_sdim(image_shape, num_classes, **{k: cfg[k] for k in keys if k in cfg})

"""The functional model interface every model family of jaxrobust implements.

A :class:`Model` is a NamedTuple of pure functions over Flax variable dicts ``{"params": ...,
**state}`` (``state``: mutable collections such as ``batch_stats``; only ``params`` receive
gradients). Every model has ``init`` and ``loss``; the rest are *capabilities*, present (a
function) or absent (None), and code asks for a capability, never for a family's name:

- ``logits(variables, x) -> [B, C]``: a classifier (attacks, classification, BMA);
- ``features(variables, x) -> [B, D]``: penultimate features, for feature-space detectors;
- ``log_likelihood(variables, x, *, key, num_samples=None) -> [B]``: an estimate of log p(x) in
  nats (a VAE's importance-weighted bound), the density that posterior scores stack;
- ``encode(variables, x) -> latent params`` (a pytree, e.g. ``(mu, log_var)``) and
  ``decode(variables, z) -> E[x | z]``, with ``latent`` the :class:`LatentFamily`;
- ``log_joint(variables, x, z) -> [B]``: log p(x | z) + log p(z) in nats, the negative potential
  of latent HMC (:func:`jaxrobust.inference.latent_hmc`);
- ``outputs(variables, x, *, key, names) -> {name: ...}`` computes named outputs once each, and
  ``scores`` (a table of :class:`~jaxrobust.scores.Score`) are functions of those outputs, so all
  scores of a model on a batch come from one call (:func:`jaxrobust.scores.compute_scores`).

Wrappers (Bayes by backprop, adversarial training, ...) return ``model._replace(...)``; the
helper :func:`with_variables_transform` re-targets every capability at once.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxrobust.models import make_classifier
    >>> from jaxrobust.nn import SmallCNN
    >>> model = make_classifier(SmallCNN(10))
    >>> x, y = jnp.zeros((2, 28, 28, 1)), jnp.array([0, 1])
    >>> variables = model.init(jax.random.key(0), x)
    >>> loss = jax.jit(model.loss, static_argnames="train")  # train switches dropout / BN
    >>> losses, (metrics, state) = loss(variables, {"image": x, "label": y}, key=None)
    >>> losses.shape, sorted(metrics), model.logits(variables, x).shape
    ((2,), ['accuracy', 'loss'], (2, 10))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

from jaxrobust.scores.table import Score, compute_scores

PyTree = Any
Batch = Mapping[str, jax.Array]  # {"image": float [B, H, W, C], "label": int [B], ...}

# loss(variables, batch, *, key, train=False) -> (per-example loss [B], (metrics {name: [B]},
# new state: the variables' non-params collections after the step))
LossFn = Callable[..., tuple[jax.Array, tuple[dict, PyTree]]]

#: The optional capabilities of a model (see the module docstring).
CAPABILITIES = (
    "logits",
    "features",
    "log_likelihood",
    "encode",
    "decode",
    "log_joint",
    "outputs",
)


class Model(NamedTuple):
    """A model as pure functions: ``init``, ``loss`` and optional capabilities (module docstring).

    Attributes:
      kind: registry name, e.g. ``"vae"`` or ``"classifier"``.
      init: ``init(key, x) -> variables``.
      loss: ``loss(variables, batch, *, key, train=False) -> (losses [B], (metrics, state))``:
        per-example losses (training minimises their mean, evaluation takes a masked mean),
        per-example metrics ``{name: [B]}`` and the updated non-params collections. ``train`` is
        a static switch (dropout, batch statistics): jit with ``static_argnames="train"``.
      scores: named per-input scores computed from ``outputs``.
      latent: the latent family of ``encode`` (None without one).
      loss_weights: the scalar loss weights a hyperparameter sweep may stack (name -> the
        architecture's value); the loss reads a swept value from the variables' collection
        ``"loss_weights"`` when present (:mod:`jaxrobust.train.sweep`).
    """

    kind: str
    init: Callable[[jax.Array, jax.Array], PyTree]
    loss: LossFn
    scores: Mapping[str, Score] = {}
    outputs: Callable[..., Mapping[str, Any]] | None = None
    logits: Callable[[PyTree, jax.Array], jax.Array] | None = None
    features: Callable[[PyTree, jax.Array], jax.Array] | None = None
    log_likelihood: Callable[..., jax.Array] | None = None
    encode: Callable[[PyTree, jax.Array], Any] | None = None
    decode: Callable[[PyTree, jax.Array], jax.Array] | None = None
    latent: Any = None
    log_joint: Callable[[PyTree, jax.Array, jax.Array], jax.Array] | None = None
    loss_weights: Mapping[str, float] = {}

    def capabilities(self) -> tuple[str, ...]:
        """The names of the capabilities this model has.

        Example:
            >>> Model("toy", None, None, logits=lambda v, x: x).capabilities()
            ('logits',)
        """
        return tuple(name for name in CAPABILITIES if getattr(self, name) is not None)

    def score(
        self,
        variables: PyTree,
        x: jax.Array,
        names,
        *,
        key: jax.Array | None = None,
        held_out: Mapping[str, jax.Array] | None = None,
    ) -> dict[str, jax.Array]:
        """``{name: [B]}`` for the scores ``names``, all from one call of ``outputs``
        (``held_out``: the held-out statistics of scores with a ``reference``, see
        :func:`jaxrobust.scores.compute_scores`).

        Example:
            >>> import jax, jax.numpy as jnp
            >>> from jaxrobust.models import make_classifier
            >>> from jaxrobust.nn import SmallCNN
            >>> model = make_classifier(SmallCNN(10))
            >>> v = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
            >>> s = model.score(v, jnp.zeros((3, 28, 28, 1)), ["max_softmax", "entropy"])
            >>> {k: v.shape for k, v in s.items()}
            {'max_softmax': (3,), 'entropy': (3,)}
        """
        if self.outputs is None:
            raise ValueError(f"Model {self.kind!r} has no outputs capability, hence no scores.")
        return compute_scores(
            self.scores, self.outputs, variables, x, names, key=key, held_out=held_out
        )


def split_variables(variables: PyTree) -> tuple[PyTree, PyTree]:
    """``{"params": p, **state}`` -> ``(p, state)``.

    Example:
        >>> split_variables({"params": 1, "batch_stats": 2})
        (1, {'batch_stats': 2})
    """
    state = {k: v for k, v in variables.items() if k != "params"}
    return variables["params"], state


def merge_variables(params: PyTree, state: PyTree) -> dict:
    """Inverse of :func:`split_variables`.

    Example:
        >>> merge_variables(1, {"batch_stats": 2})
        {'params': 1, 'batch_stats': 2}
    """
    return {"params": params, **state}


def with_variables_transform(model: Model, transform: Callable[[PyTree], PyTree]) -> Model:
    """``model`` whose capabilities (every one of :data:`CAPABILITIES`) first map the variables
    they are given through ``transform`` (e.g. a variational posterior to its mean).

    Example:
        >>> m = Model("toy", None, None, logits=lambda v, x: v * x)
        >>> with_variables_transform(m, lambda v: 2 * v).logits(3, 1)
        6
    """

    def wrap(fn):
        if fn is None:
            return None

        def wrapped(variables, *args, **kwargs):
            return fn(transform(variables), *args, **kwargs)

        return wrapped

    return model._replace(**{name: wrap(getattr(model, name)) for name in CAPABILITIES})

"""Model kinds and classifier networks by name: ``register_model`` / ``register_network``.

A model kind is a builder ``build(architecture, image_shape, num_classes) -> Model`` with the
schema of its ``architecture`` config section (:mod:`jaxrobust.config`; defaults filled and
unknown keys refused before the builder runs). Registering from outside the package::

    import jaxrobust as jr

    def build_toy(architecture, image_shape, num_classes):
        return jr.models.make_classifier(MyNetwork(num_classes, architecture["width"]))

    jr.register_model("toy", build_toy, schema={"width": jr.config.Field(int, 8, minimum=1)})

Example:
    >>> from jaxrobust.models import build_model, known_models
    >>> {"classifier", "vae"} <= set(known_models())
    True
    >>> model = build_model("classifier", {"network": "small_cnn"}, (28, 28, 1), 10)
    >>> model.capabilities()
    ('logits', 'features', 'outputs')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from jaxrobust.config import sections
from jaxrobust.models.base import Model
from jaxrobust.models.classifier import make_classifier
from jaxrobust.models.vae import make_vae
from jaxrobust.nn import SmallCNN, resnet18
from jaxrobust.registry import MODELS, NETWORKS

Builder = Callable[[Mapping[str, Any], Sequence[int], int], Model]


class ModelKind(NamedTuple):
    """A registered model kind: its builder and the schema of its ``architecture`` section."""

    build: Builder
    schema: Mapping[str, Any] | None = None
    description: str = ""


def register_model(
    kind: str,
    build: Builder,
    *,
    schema: Mapping[str, Any] | None = None,
    description: str = "",
    overwrite: bool = False,
) -> None:
    """Make ``kind`` usable as ``config.models.<name>.kind`` (see the module docstring).

    Example:
        >>> from jaxrobust.models import make_classifier
        >>> register_model("my_cnn", lambda a, shape, c: make_classifier(SmallCNN(c)),
        ...                overwrite=True)
        >>> "my_cnn" in known_models()
        True
    """
    MODELS.register(kind, ModelKind(build, schema, description), overwrite=overwrite)


def register_network(name: str, factory: Callable[..., Any], *, overwrite: bool = False) -> None:
    """A classifier network ``factory(num_classes, **network_options) -> flax.linen.Module``.

    Example:
        >>> register_network("wide_cnn", lambda c, **o: SmallCNN(c, features=(64, 128)),
        ...                  overwrite=True)
        >>> build_model("classifier", {"network": "wide_cnn"}, (28, 28, 1), 10).kind
        'classifier'
    """
    NETWORKS.register(name, factory, overwrite=overwrite)


def known_models() -> list[str]:
    """Names accepted as ``kind`` in a model config.

    Example:
        >>> "vae" in known_models()
        True
    """
    return MODELS.names()


def build_model(
    kind: str, architecture: Mapping[str, Any], image_shape: Sequence[int], num_classes: int
) -> Model:
    """The model of kind ``kind`` for images of ``image_shape`` (after preprocessing).

    Example:
        >>> vae = build_model("vae", {"latent_dim": 2, "network": "mlp"}, (8, 8, 1), 10)
        >>> vae.kind, vae.latent.name
        ('vae', 'gaussian')
    """
    entry = MODELS.get(kind, where="config.models.<name>.kind")
    return entry.build(dict(architecture), tuple(image_shape), num_classes)


def _build_vae(cfg: Mapping[str, Any], image_shape: Sequence[int], num_classes: int) -> Model:
    del num_classes
    return make_vae(
        image_shape,
        latent_dim=cfg["latent_dim"],
        encoder_features=cfg.get("encoder_features", (32, 64)),
        decoder_features=cfg.get("decoder_features", (64, 32)),
        latent=cfg.get("latent", "gaussian"),
        network=cfg.get("network", "conv"),
        network_options=cfg.get("network_options", {}),
        observation=cfg.get("observation", "bernoulli"),
        observation_options=cfg.get("observation_options", {}),
        negatives=cfg.get("negatives", {}),
        iwae_samples=cfg.get("iwae_samples", 100),
        iwae_chunk=cfg.get("iwae_chunk", 50),
        iwae_repeats=cfg.get("iwae_repeats", 5),
    )


def _build_classifier(
    cfg: Mapping[str, Any], image_shape: Sequence[int], num_classes: int
) -> Model:
    del image_shape
    factory = NETWORKS.get(cfg["network"], where="architecture.network")
    return make_classifier(factory(num_classes, **dict(cfg.get("network_options") or {})))


register_network("small_cnn", lambda num_classes, **options: SmallCNN(num_classes, **options))
register_network("resnet18", lambda num_classes, **options: resnet18(num_classes, **options))
register_model(
    "vae",
    _build_vae,
    schema=sections.VAE_ARCHITECTURE,
    description="variational autoencoder (seed 004, Ch.3)",
)
register_model(
    "classifier",
    _build_classifier,
    schema=sections.CLASSIFIER_ARCHITECTURE,
    description="softmax classifier",
)

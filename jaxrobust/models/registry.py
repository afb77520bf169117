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

Both built-in kinds take ``compute_dtype`` ("float32" or "bfloat16", :mod:`jaxrobust.nn.precision`):
in bfloat16 the network computes in bfloat16 with float32 parameters and float32 outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from jaxrobust.config import sections
from jaxrobust.errors import ConfigError
from jaxrobust.models.base import Model
from jaxrobust.models.classifier import make_classifier
from jaxrobust.models.hybrid import HYBRID_ARCHITECTURE, build_hybrid
from jaxrobust.models.sdim import SDIM_ARCHITECTURE, build_sdim
from jaxrobust.models.vae import make_vae
from jaxrobust.nn import BasicCNN, SmallCNN, compute_dtype, resnet18, resnet_8n2
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


def _network_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(cfg.get("network_options") or {})
    if "dtype" in options:
        raise ConfigError(
            f"architecture.network_options.dtype={options['dtype']!r} is not an option: set "
            f"architecture.compute_dtype (one of {list(sections.COMPUTE_DTYPES)}) instead."
        )
    return options


def _compute_dtype(name: str) -> Any:
    try:
        return compute_dtype(name)
    except ValueError as err:
        raise ConfigError(f"architecture.compute_dtype: {err}") from None


def with_compute_dtype(network: Any, name: str, where: str = "architecture.network") -> Any:
    """``network`` (a Flax module) computing in compute dtype ``name`` ("float32": unchanged).

    The module must have a ``dtype`` field that it hands to its layers, as the networks of
    :mod:`jaxrobust.nn` do; one without is a ``ConfigError`` for "bfloat16".

    Example:
        >>> with_compute_dtype(SmallCNN(10), "bfloat16").dtype
        <class 'jax.numpy.bfloat16'>
        >>> with_compute_dtype(SmallCNN(10), "float32").dtype is None
        True
    """
    dtype = _compute_dtype(name)
    if dtype is None:
        return network
    if "dtype" not in {f.name for f in dataclasses.fields(network)}:
        raise ConfigError(
            f"{where}: {type(network).__name__} has no dtype attribute, so it cannot compute in "
            f"{name}; set architecture.compute_dtype='float32', or give the module a Flax "
            "dtype field that it passes to its layers."
        )
    return network.clone(dtype=dtype)


def _build_vae(cfg: Mapping[str, Any], image_shape: Sequence[int], num_classes: int) -> Model:
    del num_classes
    options = _network_options(cfg)
    dtype = _compute_dtype(cfg.get("compute_dtype", "float32"))
    if dtype is not None:
        options["dtype"] = dtype  # make_vae_networks hands it to the encoder and the decoder
    return make_vae(
        image_shape,
        latent_dim=cfg["latent_dim"],
        encoder_features=cfg.get("encoder_features", (32, 64)),
        decoder_features=cfg.get("decoder_features", (64, 32)),
        latent=cfg.get("latent", "gaussian"),
        network=cfg.get("network", "conv"),
        network_options=options,
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
    network = factory(num_classes, **_network_options(cfg))
    compute = cfg.get("compute_dtype", "float32")
    return make_classifier(
        with_compute_dtype(network, compute, f"network {cfg['network']!r}"),
        label_smoothing=cfg.get("label_smoothing", 0.0),
    )


register_network("small_cnn", lambda num_classes, **options: SmallCNN(num_classes, **options))
register_network(
    "cleverhans_basic_cnn", lambda num_classes, **options: BasicCNN(num_classes, **options)
)
register_network("resnet18", lambda num_classes, **options: resnet18(num_classes, **options))
register_network(
    "resnet_8n2", lambda num_classes, n=1, **options: resnet_8n2(n, num_classes, **options)
)
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
register_model(
    "hybrid",
    build_hybrid,
    schema=HYBRID_ARCHITECTURE,
    description="deep hybrid model: ResNet-18 classifier + beta-VAE sharing z (seed 000)",
)
register_model(
    "sdim",
    build_sdim,
    schema=SDIM_ARCHITECTURE,
    description="supervised deep InfoMax: generative classifier with rejection (seed 003)",
)

"""Build a :class:`Model` from a config section, e.g. ``config.models.vae``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxrobust.models.base import Model
from jaxrobust.models.classifier import make_classifier
from jaxrobust.models.vae import make_vae
from jaxrobust.nn import SmallCNN, resnet18

_NETWORKS: dict[str, Callable[[int], Any]] = {
    "small_cnn": lambda num_classes: SmallCNN(num_classes),
    "resnet18": resnet18,
}


def _build_vae(cfg: Mapping[str, Any], image_shape: Sequence[int], num_classes: int) -> Model:
    del num_classes
    return make_vae(
        image_shape,
        latent_dim=cfg["latent_dim"],
        encoder_features=cfg.get("encoder_features", (32, 64)),
        decoder_features=cfg.get("decoder_features", (64, 32)),
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
    name = cfg["network"]
    if name not in _NETWORKS:
        raise ValueError(f"Unknown classifier network {name!r}; known: {sorted(_NETWORKS)}.")
    return make_classifier(_NETWORKS[name](num_classes))


_BUILDERS = {"vae": _build_vae, "classifier": _build_classifier}


def known_models() -> list[str]:
    """Names accepted as ``kind`` in a model config."""
    return sorted(_BUILDERS)


def build_model(cfg: Mapping[str, Any], image_shape: Sequence[int], num_classes: int) -> Model:
    """Model for ``cfg["kind"]`` on images of ``image_shape`` (after preprocessing)."""
    kind = cfg.get("kind")
    if kind not in _BUILDERS:
        raise ValueError(f"Unknown model kind {kind!r}; known kinds: {known_models()}.")
    return _BUILDERS[kind](cfg, tuple(image_shape), num_classes)

"""Models as pure functions: a :class:`Model` bundles init, loss and the capabilities of a family.

Families: :func:`make_vae` (variational autoencoders with any latent family and observation
model), :func:`make_classifier` (softmax classifiers over any Flax network) and
:func:`make_hybrid` (deep hybrid models: a classifier and a beta-VAE sharing z) and
:func:`make_sdim` (supervised deep InfoMax, a generative classifier with rejection). New families
register a builder with :func:`register_model`; classifier networks with
:func:`register_network`.
"""

from jaxrobust.models.base import (
    CAPABILITIES,
    Model,
    merge_variables,
    split_variables,
    with_variables_transform,
)
from jaxrobust.models.classifier import make_classifier
from jaxrobust.models.hybrid import make_hybrid
from jaxrobust.models.registry import (
    ModelKind,
    build_model,
    known_models,
    register_model,
    register_network,
)
from jaxrobust.models.sdim import make_sdim
from jaxrobust.models.vae import make_vae
from jaxrobust.scores.table import Score

__all__ = [
    "CAPABILITIES",
    "Model",
    "ModelKind",
    "Score",
    "build_model",
    "known_models",
    "make_classifier",
    "make_hybrid",
    "make_sdim",
    "make_vae",
    "merge_variables",
    "register_model",
    "register_network",
    "split_variables",
    "with_variables_transform",
]

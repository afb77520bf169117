"""Models as pure functions: a :class:`Model` bundles init, loss and scores of one network."""

from jaxrobust.models.base import Model, Score
from jaxrobust.models.registry import build_model, known_models

__all__ = ["Model", "Score", "build_model", "known_models"]

"""Adversarial attacks as pure, jittable functions over a batch (see each module for its paper).

An attack takes a model function (``logits_fn(x)``, or a per-example ``loss_fn(x, y)`` for the
gradient attacks), the inputs in a declared domain (default [0, 1]; ``domain=None`` for an
unbounded normalised space), labels or targets, a key where it is random, and its parameters;
loops are ``lax`` loops, sweeps are vmapped.

- :mod:`~jaxrobust.attacks.gradient`: FGSM, R+FGSM, PGD / BIM (L-inf, L2), expectation over
  transformation.
- :mod:`~jaxrobust.attacks.cw`: Carlini-Wagner L2 with confidence kappa and binary search over c.
- :mod:`~jaxrobust.attacks.deepfool`: multi-class DeepFool.
- :mod:`~jaxrobust.attacks.jsma`: Jacobian-based saliency map attack (targeted).
- :mod:`~jaxrobust.attacks.boundary`: decision-based Boundary attack.
- :mod:`~jaxrobust.attacks.local_search`: score-based LocalSearch (Narodytska & Kasiviswanathan).
- :mod:`~jaxrobust.attacks.latent`: the encoder attack (symmetric KL of q(z|x) within a ball).
"""

from jaxrobust.attacks._checks import DEFAULT_DOMAIN, cross_entropy_loss, margin_loss
from jaxrobust.attacks.boundary import BoundaryResult, boundary_attack
from jaxrobust.attacks.cw import CWResult, carlini_wagner_l2
from jaxrobust.attacks.deepfool import DeepFoolResult, deepfool
from jaxrobust.attacks.gradient import (
    expectation_over_transformation,
    fgsm,
    fgsm_sweep,
    pgd,
    pgd_sweep,
)
from jaxrobust.attacks.jsma import JSMAResult, jsma
from jaxrobust.attacks.latent import latent_attack, symmetric_gaussian_kl
from jaxrobust.attacks.local_search import LocalSearchResult, local_search_attack

__all__ = [
    "DEFAULT_DOMAIN",
    "BoundaryResult",
    "CWResult",
    "DeepFoolResult",
    "JSMAResult",
    "LocalSearchResult",
    "boundary_attack",
    "carlini_wagner_l2",
    "cross_entropy_loss",
    "deepfool",
    "expectation_over_transformation",
    "fgsm",
    "fgsm_sweep",
    "jsma",
    "latent_attack",
    "local_search_attack",
    "margin_loss",
    "pgd",
    "pgd_sweep",
    "symmetric_gaussian_kl",
]

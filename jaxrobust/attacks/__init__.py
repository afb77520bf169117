"""Adversarial attacks as pure, jittable functions over a batch (see each module for its paper).

An attack takes a model function (``logits_fn(x)``, or a per-example ``loss_fn(x, y)`` for the
gradient attacks), the inputs in a declared domain (default [0, 1]; ``domain=None`` for an
unbounded normalised space), labels or targets, a key where it is random, and its parameters;
loops are ``lax`` loops, sweeps are vmapped. Every attack is jittable (mark the function and
the parameters that shape the program, such as ``num_steps``, ``norm`` or ``targeted``,
static).

- :mod:`~jaxrobust.attacks.gradient`: FGSM, R+FGSM, PGD / BIM (L-inf, L2), expectation over
  transformation.
- :mod:`~jaxrobust.attacks.cw`: Carlini-Wagner L2 with confidence kappa and binary search over c.
- :mod:`~jaxrobust.attacks.deepfool`: multi-class DeepFool.
- :mod:`~jaxrobust.attacks.jsma`: Jacobian-based saliency map attack (targeted).
- :mod:`~jaxrobust.attacks.boundary`: decision-based Boundary attack.
- :mod:`~jaxrobust.attacks.local_search`: score-based LocalSearch (Narodytska & Kasiviswanathan).
- :mod:`~jaxrobust.attacks.latent`: the encoder attack (symmetric KL of q(z|x) within a ball).

Conventions:

- The PRNG key is keyword-only, ``key=``, in every attack (``fgsm``, ``fgsm_sweep``, ``pgd``,
  ``pgd_sweep``, ``latent_attack``, ``boundary_attack``, ``local_search_attack``,
  ``expectation_over_transformation``). The attacks that used to take it positionally
  (``pgd`` and ``boundary_attack`` / ``local_search_attack`` after the labels, ``pgd_sweep``
  after the epsilons, ``latent_attack`` after ``x``) still accept it there through one shim,
  :func:`jaxrobust.attacks._checks.positional_key`, which moves it to ``key=`` and emits a
  ``DeprecationWarning``; pass ``key=`` instead.
- Input checks (:mod:`jaxrobust.attacks._checks`): bad input raises
  :class:`~jaxrobust.errors.InputError`. Inputs with NaN or inf are refused (how many, and
  where); the domain check uses the finite values. Labels and targets are checked against the
  model's class count (read from ``logits_fn``'s output shape; the gradient attacks read it from
  a loss built by ``cross_entropy_loss`` / ``margin_loss`` or EOT with ``num_classes=``, or
  take ``num_classes=``): out of range raises eagerly. Inside the caller's ``jit``, where the
  values are unknown, the examples with out-of-range labels come back as NaN adversarial inputs
  (search attacks: ``success=False``, NaN distances), and the two losses give a NaN value and
  gradient there: accuracy computed from them is NaN, never a plausible number. An attack whose
  result is NaN from finite inputs raises ``NonFiniteAttackError`` (a ``FloatingPointError``).
- Results. The fixed-budget attacks (``fgsm``, ``pgd``, ``fgsm_sweep``, ``pgd_sweep``,
  ``latent_attack``) return the adversarial inputs themselves, an array shaped like ``x``
  (``[E, B, ...]`` for the sweeps over ``E`` epsilons); ``expectation_over_transformation``
  returns a loss for them. The search attacks (``carlini_wagner_l2``, ``deepfool``, ``jsma``,
  ``boundary_attack``, ``local_search_attack``) return a NamedTuple whose first two fields
  are ``adversarial`` (``[B, ...]``) and ``success`` (bool ``[B]``), in that order, followed by
  the attack's own fields: ``CWResult.l2``, ``DeepFoolResult.l2``, ``JSMAResult.num_changed``,
  ``BoundaryResult.l2``, ``LocalSearchResult.rounds`` and ``.pixels_changed``.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from jaxrobust import attacks
  >>> logits_fn = lambda x: x @ jnp.array([[1.0, -1.0], [-1.0, 1.0]])
  >>> x, y = jnp.array([[0.6, 0.4], [0.4, 0.6]]), jnp.array([0, 1])
  >>> x_adv = attacks.pgd(
  ...     attacks.cross_entropy_loss(logits_fn), x, y, key=jax.random.key(0), epsilon=0.15,
  ...     step_size=0.05, num_steps=10,
  ... )
  >>> x_adv.shape  # a fixed-budget attack: the adversarial inputs
  (2, 2)
  >>> adversarial, success, *rest = attacks.deepfool(logits_fn, x)  # a search attack
  >>> print(adversarial.shape, success, list(attacks.DeepFoolResult._fields[2:]))
  (2, 2) [ True  True] ['l2']
"""

from jaxrobust.attacks._checks import (
    DEFAULT_DOMAIN,
    NonFiniteAttackError,
    cross_entropy_loss,
    margin_loss,
)
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
    "NonFiniteAttackError",
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

"""Adversarial training (Madry et al. 2018) as a wrapper around a classifier's loss.

Madry et al. 2018, eq. (2.1), train on the saddle-point problem

    min_theta  E_{(x, y) ~ D} [ max_{delta in S} L(theta, x + delta, y) ],

with ``S`` the L-inf ball of radius ``epsilon``; the inner maximisation is approximated by PGD
and the outer minimisation by SGD on the loss at the PGD point (Danskin's theorem: the gradient
of the max is the gradient of ``L`` at the maximiser). :func:`adversarial_training` returns a
:class:`~jaxrobust.models.Model` whose ``loss`` does exactly that, so the ordinary training loop
(``jaxrobust.train``) trains it; nothing else changes. The choices:

- The inner maximisation is :func:`jaxrobust.attacks.pgd` on the per-example cross-entropy of
  the model's eval-mode logits (``model.logits``: no dropout, batch-norm running statistics) at
  the *current* parameters, which are wrapped in ``jax.lax.stop_gradient``: the adversarial
  images are treated as fixed inputs of the outer problem (no gradient flows through the attack,
  as in Madry et al.). Default L-inf, random start uniform in the ball (Madry et al.), inputs
  clipped to ``domain`` (default [0, 1]).
- The attack key is split from the loss key (``attack_key, model_key = split(key)``), so the
  attack's random start is a pure function of the training step's key.
- Train mode (``train=True``): the loss is the wrapped model's loss at the adversarial images
  (all of the batch; ``fraction`` < 1 replaces only the first ``round(fraction * B)`` images,
  a clean/adversarial split of the batch, cf. the clean + adversarial objective of Goodfellow
  et al. 2015). Eval mode (``train=False``): the clean
  loss, unchanged (validation metrics stay clean accuracy/loss).
- Optional epsilon ramp (``epsilon_ramp_steps`` = K > 0; not in Madry et al.): at training step
  t (counted from 0) the radius is ``epsilon * min(1, (t + 1) / K)`` and the step size is scaled
  by the same factor. The step counter lives in the model state (collection
  ``"adversarial_training"``, ``{"step": int32}``), so it is checkpointed and resumed with the
  rest of the state. Without a ramp the model's variables are exactly those of the wrapped model.

Config (a dict, e.g. ``config.models.cnn.adversarial_training``)::

    {"epsilon": 0.3, "num_steps": 40, "step_size": 0.01, "random_start": True, "norm": "linf",
     "domain": (0.0, 1.0), "fraction": 1.0, "epsilon_ramp_steps": 0}

``epsilon`` and ``num_steps`` are required; ``step_size`` defaults to ``2.5 * epsilon /
num_steps`` (Madry et al.'s rule of thumb).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxrobust.attacks import cross_entropy_loss, pgd
from jaxrobust.errors import ConfigError
from jaxrobust.models.base import (
    Model,
    merge_variables,
    split_variables,
    with_variables_transform,
)

COLLECTION = "adversarial_training"
DEFAULTS: dict[str, Any] = {
    "epsilon": None,
    "num_steps": None,
    "step_size": None,
    "random_start": True,
    "norm": "linf",
    "domain": (0.0, 1.0),
    "fraction": 1.0,
    "epsilon_ramp_steps": 0,
}
NORMS = ("linf", "l2")


def _number(where: str, name: str, value: Any, kind: type, minimum: float, hint: str):
    """``value`` as ``kind`` (float or int; bools refused) if it is >= ``minimum``."""
    allowed = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, allowed) or not value >= minimum:
        what = "a number" if kind is float else "an integer"
        hint = f" {hint}" if hint else ""
        raise ConfigError(f"{where}.{name} must be {what} >= {minimum}{hint}, got {value!r}.")
    return kind(value)


def check_adversarial_config(cfg: Mapping[str, Any], where: str = "adversarial_training") -> dict:
    """The validated config with defaults filled in; raises ConfigError naming the fix."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(
            f"{where} must be a dict such as {{'epsilon': 0.3, 'num_steps': 40}}, got {cfg!r}."
        )
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; the known keys are {list(DEFAULTS)}."
        )
    out = {**DEFAULTS, **dict(cfg)}
    for name in ("epsilon", "num_steps"):
        if out[name] is None:
            raise ConfigError(f"{where}.{name} is required (e.g. epsilon=0.3, num_steps=40).")
    eps = _number(where, "epsilon", out["epsilon"], float, 0, "(the ball radius)")
    steps = _number(where, "num_steps", out["num_steps"], int, 1, "")
    if out["step_size"] is None:
        out["step_size"] = 2.5 * eps / steps
    size = _number(
        where, "step_size", out["step_size"], float, 0, "(or absent for 2.5 * epsilon / num_steps)"
    )
    if out["norm"] not in NORMS:
        raise ConfigError(f"{where}.norm must be one of {NORMS}, got {out['norm']!r}.")
    if not isinstance(out["random_start"], bool):
        raise ConfigError(
            f"{where}.random_start must be True or False, got {out['random_start']!r}."
        )
    domain = out["domain"]
    if domain is not None:
        if len(domain) != 2 or not float(domain[0]) < float(domain[1]):
            raise ConfigError(
                f"{where}.domain must be (low, high) with low < high (the input range after "
                f"preprocessing), or None for an unbounded input space; got {domain!r}."
            )
        domain = (float(domain[0]), float(domain[1]))
    out["domain"] = domain
    frac = _number(
        where, "fraction", out["fraction"], float, 0, "(share of each batch made adversarial)"
    )
    if frac > 1:
        raise ConfigError(f"{where}.fraction must be in [0, 1], got {frac!r}.")
    _number(where, "epsilon_ramp_steps", out["epsilon_ramp_steps"], int, 0, "(0 = no ramp)")
    out["epsilon"], out["step_size"], out["fraction"] = eps, size, frac
    return out


def adversarial_training(model: Model, cfg: Mapping[str, Any], name: str = "model") -> Model:
    """``model`` with its training loss taken at PGD adversarial inputs (see module docstring).

    Args:
      model: a classifier (``model.logits`` is used by the attack) whose ``loss`` reads
        ``batch["image"]`` and ``batch["label"]``.
      cfg: the ``adversarial_training`` config section (keys in the module docstring).
      name: the model's name in ``config.models``, for error messages.

    Returns:
      A Model with the same ``kind``, scores and capabilities (``_replace``); ``loss``
      adversarial in train mode and the clean loss in eval mode.
    """
    where = f"config.models.{name}.adversarial_training"
    c = check_adversarial_config(cfg, where)
    if model.logits is None:
        raise ConfigError(
            f"{where}: adversarial training needs a classifier (a model with logits); model "
            f"kind {model.kind!r} has none. Remove the section or use kind='classifier'."
        )
    ramp = c["epsilon_ramp_steps"]

    def split_state(state):
        if not ramp:
            return state, None
        inner = {k: v for k, v in state.items() if k != COLLECTION}
        return inner, state[COLLECTION]["step"]

    def join_state(inner, step):
        return inner if not ramp else {**inner, COLLECTION: {"step": step}}

    def adversarial_images(params, state, step, images, labels, key):
        variables = jax.lax.stop_gradient({"params": params, **state})
        loss_fn = cross_entropy_loss(lambda x: model.logits(variables, x))
        scale = 1.0 if not ramp else jnp.minimum(1.0, (step + 1).astype(jnp.float32) / ramp)
        num_adv = round(c["fraction"] * images.shape[0])
        if num_adv == 0:
            return images
        x_adv = pgd(
            loss_fn,
            jax.lax.stop_gradient(images[:num_adv]),
            labels[:num_adv],
            key=key,
            epsilon=c["epsilon"] * scale,
            step_size=c["step_size"] * scale,
            num_steps=c["num_steps"],
            norm=c["norm"],
            random_start=c["random_start"],
            domain=c["domain"],
        )
        x_adv = jax.lax.stop_gradient(x_adv)
        if num_adv < images.shape[0]:  # only the first num_adv images are attacked
            x_adv = jnp.concatenate([x_adv, images[num_adv:]], axis=0)
        return x_adv

    def init(key, images):
        variables = model.init(key, images)
        if ramp:
            variables = {**variables, COLLECTION: {"step": jnp.zeros((), jnp.int32)}}
        return variables

    def loss(variables, batch, *, key, train=False):
        params, state = split_variables(variables)
        inner, step = split_state(state)
        if not train:
            losses, (metrics, new_inner) = model.loss(
                merge_variables(params, inner), batch, key=key, train=False
            )
            return losses, (metrics, join_state(new_inner, step))
        if key is None:
            raise ValueError(
                "Adversarial training needs the loss key in train mode (the attack's random "
                "start and the model's randomness are split from it); pass a PRNG key."
            )
        attack_key, model_key = jax.random.split(key)
        x_adv = adversarial_images(params, inner, step, batch["image"], batch["label"], attack_key)
        losses, (metrics, new_inner) = model.loss(
            merge_variables(params, inner), {**batch, "image": x_adv}, key=model_key, train=True
        )
        return losses, (metrics, join_state(new_inner, None if step is None else step + 1))

    def strip(variables):
        return {k: v for k, v in variables.items() if k != COLLECTION}

    # Every capability (logits, scores' outputs, ...) sees the variables without the counter.
    return with_variables_transform(model, strip)._replace(init=init, loss=loss)

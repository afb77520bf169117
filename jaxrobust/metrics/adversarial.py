"""Adversarial robustness: accuracy under attack and attack success rate."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrobust.errors import InputError
from jaxrobust.metrics._arrays import check_same_length, class_indices

SUCCESS_DENOMINATORS = ("correct", "all")


def adversarial_accuracy(adversarial_predictions, labels) -> jax.Array:
    """Fraction of adversarial inputs still classified as their true label.

    Predictions and labels are integer class indices ``[N]`` (float, bool or negative ones
    raise ``InputError``).

    Examples:
        >>> float(adversarial_accuracy([0, 1, 2, 2], [0, 1, 1, 2]))
        0.75
    """
    n = check_same_length(adversarial_predictions=adversarial_predictions, labels=labels)
    adversarial_predictions = class_indices("adversarial_predictions", adversarial_predictions)
    hits = adversarial_predictions == class_indices("labels", labels)
    return jnp.sum(hits, dtype=jnp.int32) / n


def attack_success_rate(
    clean_predictions,
    adversarial_predictions,
    labels,
    *,
    targets=None,
    among: str = "correct",
) -> jax.Array:
    """Fraction of attacked inputs on which the attack reached its goal.

    Untargeted success: the adversarial prediction differs from the true label. Targeted success
    (``targets`` given): the adversarial prediction equals the target. ``among="correct"``
    (default, as foolbox and the SDIM paper report) counts only inputs the model classified
    correctly before the attack; ``among="all"`` counts every input. NaN when nothing counts.

    Examples:
        Inputs 0-2 were classified correctly; the attack changed the label of 0, 2 and 3:

        >>> clean, adversarial, labels = [0, 1, 2, 0], [1, 1, 0, 2], [0, 1, 2, 1]
        >>> round(float(attack_success_rate(clean, adversarial, labels)), 4)  # 2 of 3
        0.6667
        >>> float(attack_success_rate(clean, adversarial, labels, among="all"))  # 3 of 4
        0.75

        Targeted: inputs 0 and 2 reached their targets, input 1 did not.

        >>> targets = [1, 0, 0, 2]
        >>> round(float(attack_success_rate(clean, adversarial, labels, targets=targets)), 4)
        0.6667
    """
    if not isinstance(among, str) or among not in SUCCESS_DENOMINATORS:
        raise InputError(f"among must be one of {SUCCESS_DENOMINATORS}, got {among!r}.")
    arrays = dict(
        clean_predictions=clean_predictions,
        adversarial_predictions=adversarial_predictions,
        labels=labels,
    )
    if targets is not None:
        arrays["targets"] = targets
    check_same_length(**arrays)
    clean, adversarial, labels = (class_indices(name, arrays[name]) for name in list(arrays)[:3])
    if targets is None:
        success = adversarial != labels
    else:
        success = adversarial == class_indices("targets", targets)
    counted = clean == labels if among == "correct" else jnp.ones_like(success)
    num_counted = jnp.sum(counted, dtype=jnp.int32)
    num_success = jnp.sum(success & counted, dtype=jnp.int32)
    return jnp.where(num_counted > 0, num_success / jnp.maximum(num_counted, 1), jnp.nan)

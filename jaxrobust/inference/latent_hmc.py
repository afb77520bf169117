"""Latent HMC (the dissertation's Algorithm 3, after Kuzina et al. 2022): one HMC chain per input.

For an input x and a latent-variable model, the chain samples the posterior p(z | x) with the
potential

    U(z) = -log p(x | z) - log p(z),     K(p) = 1/2 p^T p  (identity mass; the document prints -1/2)

by Hamiltonian Monte Carlo: p ~ N(0, I), ``num_integration_steps`` leapfrog steps of size eta
(half kick, drift, half kick), accepted with probability min(1, exp(H_0 - H_L)). The active
defense (:mod:`jaxrobust.evaluate.active_defense`) starts the chain at the encoder's mean and
decodes where it ends.

Every chain of a batch runs in one jitted program: ``vmap`` over the inputs, ``lax.scan`` over the
HMC steps. The transition kernel is BlackJAX's (``blackjax.mcmc.hmc.build_kernel``, velocity
Verlet, Metropolis-Hastings; a NaN or divergent proposal is rejected): a well-kept, pure kernel
that takes the step size as an argument, so every chain has its own. NumPyro's ``HMC`` (used for
the weight posteriors of :mod:`jaxrobust.inference.hmc`) couples its adaptation to its ``MCMC``
driver, one chain set per call, and would need a driver per input.

Step size, per chain, adapted toward ``target_acceptance`` during the first
``num_adaptation_steps`` steps (default: all of them, as Kuzina's scripts adapt throughout):

- ``"dual_averaging"`` (default): BlackJAX's dual averaging (Hoffman & Gelman 2014, sec. 3.2.1)
  on the chain's Metropolis acceptance probability; after the adaptation the step is frozen at
  the averaged value (so later steps are exact HMC);
- ``"kuzina"``: the rule of Kuzina et al.'s code, eta <- eta (1 + 0.01 (alpha - target) /
  target), per chain (their code uses the batch's mean acceptance for one shared eta);
- ``"none"``: the initial step throughout.

Defaults (digest open point 15): 100 steps, 20 leapfrog steps, eta 0.05, target 0.9.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.mcmc import hmc as blackjax_hmc

from jaxrobust.arrays import is_traced
from jaxrobust.errors import InputError

__all__ = ["ADAPTATIONS", "LatentHMCResult", "latent_hmc"]

#: ``latent_hmc(adaptation=...)``: how each chain's step size moves toward the target acceptance.
ADAPTATIONS = ("dual_averaging", "kuzina", "none")

#: log p(x | z) + log p(z) for a batch: ``log_joint(variables, x [B, ...], z [B, d]) -> [B]``
#: (a model's ``log_joint`` capability).
LogJoint = Callable[[Any, jax.Array, jax.Array], jax.Array]


class LatentHMCResult(NamedTuple):
    """What :func:`latent_hmc` returns; ``N`` chains (one per input), latent dimension ``d``.

    Attributes:
      z: ``[N, d]`` the chains' last states.
      step_size: ``[N]`` each chain's step size at the end (after adaptation: the frozen one).
      acceptance_rate: ``[N]`` mean Metropolis acceptance probability over the steps after the
        adaptation (over all steps if the adaptation runs to the end).
      num_divergent: ``[N]`` proposals BlackJAX flagged divergent (energy error above 1000),
        counted over the same steps as ``acceptance_rate``.
      potential: ``[N]`` U(z) at the last state.
      trace: ``[num_steps, N, d]`` every state (only with ``return_trace=True``, else None).
    """

    z: jax.Array
    step_size: jax.Array
    acceptance_rate: jax.Array
    num_divergent: jax.Array
    potential: jax.Array
    trace: jax.Array | None = None


def _check_options(num_steps, num_integration_steps, target_acceptance, adaptation, n_adapt):
    for name, value in (("num_steps", num_steps), ("num_integration_steps", num_integration_steps)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"latent_hmc: {name} must be a positive integer, got {value!r}.")
    if not 0.0 < target_acceptance < 1.0:
        raise InputError(
            f"latent_hmc: target_acceptance must be in (0, 1), got {target_acceptance!r}."
        )
    if adaptation not in ADAPTATIONS:
        raise InputError(
            f"latent_hmc: unknown adaptation {adaptation!r}; choose one of {list(ADAPTATIONS)}."
        )
    if not isinstance(n_adapt, int) or not 0 <= n_adapt <= num_steps:
        raise InputError(
            f"latent_hmc: num_adaptation_steps must be an integer in 0..num_steps={num_steps}, "
            f"got {n_adapt!r}."
        )


def _refuse_non_finite(potential, where: str):
    if is_traced(potential):
        return
    bad = np.flatnonzero(~np.isfinite(np.asarray(potential)))
    if bad.size:
        raise InputError(
            f"latent_hmc: the potential U(z) = -log p(x|z) - log p(z) is not finite {where} for "
            f"{bad.size} chain(s) (first: {bad[:5].tolist()}). Start the chains where the model "
            "has a finite density (e.g. the encoder's mean), and check the inputs and the "
            "model's variables for NaN."
        )


def latent_hmc(
    log_joint: LogJoint,
    x: jax.Array,
    z_init: jax.Array,
    *,
    key: jax.Array,
    variables: Any = None,
    num_steps: int = 100,
    num_integration_steps: int = 20,
    step_size=0.05,
    target_acceptance: float = 0.9,
    adaptation: str = "dual_averaging",
    num_adaptation_steps: int | None = None,
    return_trace: bool = False,
) -> LatentHMCResult:
    """Run one HMC chain per input on U(z) = -log p(x|z) - log p(z) (module docstring).

    Args:
      log_joint: ``log_joint(variables, x, z) -> [B]``, log p(x|z) + log p(z) in nats for a
        batch, e.g. a model's ``log_joint`` capability. It is a static argument of the jitted
        program (reuse the same function object between calls); ``variables`` are traced.
      x: ``[N, ...]`` the inputs, one chain each.
      z_init: ``[N, d]`` the chains' starting points (e.g. the encoder's means).
      key: PRNG key.
      variables: passed to ``log_joint`` as its first argument (a model's variables).
      step_size: the initial leapfrog step, a scalar or ``[N]``.
      num_adaptation_steps: steps during which the step size adapts (default ``num_steps``).
      return_trace: also return every state, ``[num_steps, N, d]``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> # p(z) = N(0, I), p(x | z) = N(z, I): the posterior is N(x / 2, I / 2)
        >>> def log_joint(variables, x, z):
        ...     return -0.5 * jnp.sum((x - z) ** 2 + z**2, axis=-1)
        >>> x = jnp.full((500, 2), 2.0)
        >>> out = latent_hmc(log_joint, x, jnp.zeros((500, 2)), key=jax.random.key(0),
        ...                  num_steps=60, num_integration_steps=5, step_size=0.3)
        >>> bool(abs(float(out.z.mean()) - 1.0) < 0.1), out.z.shape
        (True, (500, 2))
    """
    n_adapt = num_steps if num_adaptation_steps is None else num_adaptation_steps
    _check_options(num_steps, num_integration_steps, target_acceptance, adaptation, n_adapt)
    x, z_init = jnp.asarray(x), jnp.asarray(z_init)
    if z_init.ndim != 2 or z_init.shape[0] != x.shape[0]:
        raise InputError(
            f"latent_hmc: z_init must be [N, d] with N = len(x) = {x.shape[0]}, got shape "
            f"{z_init.shape}."
        )
    if not jnp.issubdtype(z_init.dtype, jnp.floating):
        raise InputError(f"latent_hmc: z_init has dtype {z_init.dtype}; pass floating latents.")
    steps = jnp.broadcast_to(jnp.asarray(step_size, z_init.dtype), z_init.shape[:1])
    if not is_traced(steps) and not bool(jnp.all(steps > 0)):
        raise InputError(f"latent_hmc: step_size must be positive, got {step_size!r}.")
    if not is_traced(z_init) and not is_traced(x):
        _refuse_non_finite(-log_joint(variables, x, z_init), "at the initial z")
    out = _run(
        log_joint,
        variables,
        x,
        z_init,
        steps,
        key,
        num_steps,
        num_integration_steps,
        float(target_acceptance),
        adaptation,
        n_adapt,
        return_trace,
    )
    _refuse_non_finite(out.potential, "at the end of the chains")
    return out


@functools.partial(jax.jit, static_argnums=(0, 6, 7, 8, 9, 10, 11))
def _run(log_joint, variables, x, z_init, steps, key, num_steps, num_leapfrog, target, adaptation,
         n_adapt, return_trace):  # fmt: skip
    kernel = blackjax_hmc.build_kernel()
    inverse_mass = jnp.ones(z_init.shape[-1], z_init.dtype)
    da_init, da_update, da_final = dual_averaging_adaptation(target)

    def log_density(x_i):
        return lambda z: log_joint(variables, x_i[None], z[None])[0]

    def chain_step(chain_key, state, x_i, eta):
        new, info = kernel(chain_key, state, log_density(x_i), eta, inverse_mass, num_leapfrog)
        return new, info.acceptance_rate, info.is_divergent

    states = jax.vmap(lambda x_i, z_i: blackjax_hmc.init(z_i, log_density(x_i)))(x, z_init)
    da_states = jax.vmap(da_init)(steps)

    def body(carry, t):
        states, eta, da_states, accepted, divergent = carry
        keys = jax.random.split(jax.random.fold_in(key, t), z_init.shape[0])
        states, alpha, is_divergent = jax.vmap(chain_step)(keys, states, x, eta)
        alpha = jnp.where(jnp.isfinite(alpha), alpha, 0.0)
        adapting = t < n_adapt
        if adaptation == "dual_averaging":
            da_states = jax.vmap(da_update)(da_states, alpha)
            last_adaptive = t == n_adapt - 1
            adapted = jnp.where(last_adaptive, jax.vmap(da_final)(da_states),
                                jnp.exp(da_states.log_step_size))  # fmt: skip
            eta = jnp.where(adapting, adapted, eta)
        elif adaptation == "kuzina":
            eta = jnp.where(adapting, eta * (1.0 + 0.01 * (alpha - target) / target), eta)
        counted = (t >= n_adapt) | (n_adapt == num_steps)
        accepted = accepted + jnp.where(counted, alpha, 0.0)
        divergent = divergent + (counted & is_divergent).astype(jnp.int32)
        return (states, eta, da_states, accepted, divergent), (
            states.position if return_trace else None
        )

    n = z_init.shape[0]
    carry0 = (states, steps, da_states, jnp.zeros(n, z_init.dtype), jnp.zeros(n, jnp.int32))
    (states, eta, _, accepted, divergent), trace = jax.lax.scan(body, carry0, jnp.arange(num_steps))
    counted_steps = num_steps if n_adapt == num_steps else num_steps - n_adapt
    return LatentHMCResult(
        z=states.position,
        step_size=eta,
        acceptance_rate=accepted / counted_steps,
        num_divergent=divergent,
        potential=-states.logdensity,
        trace=trace,
    )

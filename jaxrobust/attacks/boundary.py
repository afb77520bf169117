"""The Boundary attack: decision-based, minimal L2 (untargeted or targeted).

W. Brendel, J. Rauber and M. Bethge, "Decision-Based Adversarial Attacks: Reliable Attacks
Against Black-Box Machine Learning Models", ICLR 2018.

Only the decision ``argmax logits_fn(x)`` is used. An input ``z`` is adversarial when its
decision differs from the label (untargeted) or equals the target (targeted). Starting from an
adversarial ``x_0``, each step with the original ``o``, ``d = o - x_k`` and ``n = ||d||_2``::

    eta  ~ N(0, I),  eta <- eta - <eta, d/n> d/n,  eta <- spherical_step * n * eta / ||eta||
    s    = clip(o + (eta - d) / sqrt(1 + spherical_step^2))       (on the sphere ||o - s|| = n)
    l    = max(source_step * n + ||o - s|| - n, 0) / ||o - s||
    c    = clip(s + l * (o - s))                                   (closer by source_step * n)
    x_{k+1} = c  if c is adversarial and ||o - c|| < n,  else x_k

Step sizes are adapted as in the authors' implementation (foolbox 3.3's ``BoundaryAttack``):
every ``adapt_every`` steps the spherical candidate ``s`` is also judged, and whether ``s`` and
``c`` were adversarial is appended to per-example windows of the last ``spherical_window``
(100) and ``step_window`` (30) records. When the spherical window is full and more than 50 % of
it was adversarial, both step sizes grow by ``step_adaptation``; below 20 % both shrink; when
the step window is full, above 25 % ``source_step`` grows and below 10 % it shrinks. A window
that led to an adaptation is emptied. An example whose ``source_step`` is below
``convergence`` stops.

The initialisation is uniform noise in the domain, rejected until adversarial (the paper's
maximum-entropy start); a given ``starting_points`` replaces it (a targeted attack usually
needs an example of the target class; foolbox's default start is a blend of the input and
noise found by line search). Differences from foolbox: each example draws its own orthogonal
noise (foolbox shares one draw across the batch), and there is no line search after the noise
start. Every example keeps its own step sizes; all run in parallel under one ``lax.scan`` (one
model call per step, two on the recording steps). With ``domain=None`` no clipping applies and
``starting_points`` are required (there is no domain to draw noise from).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.attacks._checks import (
    DEFAULT_DOMAIN,
    Domain,
    LogitsFn,
    check_epsilon,
    check_inputs,
    check_labels,
    check_positive_int,
    check_targets,
    clip_to_domain,
    finish_search,
    is_concrete,
    num_classes,
    positional_key,
)
from jaxrobust.errors import InputError

# Success-rate thresholds of the step-size adaptation (foolbox 3's BoundaryAttack, by the authors).
_SPHERICAL_HIGH, _SPHERICAL_LOW = 0.5, 0.2
_STEP_HIGH, _STEP_LOW = 0.25, 0.1


class BoundaryResult(NamedTuple):
    """What :func:`boundary_attack` returns: ``adversarial``, ``success`` and ``l2`` per input.

    Examples:
      >>> from jaxrobust import attacks
      >>> attacks.BoundaryResult._fields
      ('adversarial', 'success', 'l2')
    """

    adversarial: jax.Array  # [B, ...]; the original input where no adversarial start was found
    success: jax.Array  # [B] bool: `adversarial` is adversarial
    l2: jax.Array  # [B] ||adversarial - x||_2


def _norm(v: jax.Array) -> jax.Array:
    """Per-example L2 norm of a flat ``[B, D]`` array."""
    return jnp.sqrt(jnp.sum(v**2, axis=1))


@positional_key(3)
def boundary_attack(
    logits_fn: LogitsFn,
    x: jax.Array,
    labels: jax.Array,
    *,
    key: jax.Array,
    starting_points: jax.Array | None = None,
    targeted: bool = False,
    targets: jax.Array | None = None,
    num_steps: int = 1000,
    spherical_step: float = 1e-2,
    source_step: float = 1e-2,
    step_adaptation: float = 1.5,
    adapt_every: int = 10,
    spherical_window: int = 100,
    step_window: int = 30,
    convergence: float = 1e-7,
    init_trials: int = 100,
    domain: Domain = DEFAULT_DOMAIN,
) -> BoundaryResult:
    """Boundary attack on ``x [B, ...]`` with true ``labels [B]``.

    Args:
      logits_fn: ``x [B, ...] -> logits [B, classes]``; only its argmax is used.
      x: inputs ``[B, ...]`` inside ``domain``.
      labels: true classes ``[B]`` (integer).
      key: PRNG key for the initial noise and the proposals (keyword-only, required; passed
        positionally after ``labels`` it still works, with a ``DeprecationWarning``).
      starting_points: adversarial inputs ``[B, ...]`` to start from (checked when concrete);
        otherwise uniform noise in ``domain``, up to ``init_trials`` draws per example.
      targeted: reach ``targets [B]`` instead of leaving ``labels``.
      num_steps: proposal steps (0 returns the starting points).
      spherical_step, source_step: initial relative step sizes (per example, then adapted).
      step_adaptation: factor (> 1) by which step sizes are multiplied or divided.
      adapt_every: steps between two records of the success of the candidates (and two
        chances to adapt the step sizes); the spherical candidate is only judged then.
      spherical_window, step_window: lengths of the per-example windows of recorded successes
        of the spherical and the full candidates; a window must be full to adapt, and is
        emptied when it has.
      convergence: an example stops once its ``source_step`` falls below this.
      init_trials: the most uniform-noise draws per example for the start.
      domain: ``(low, high)`` for clipping (and drawing the start), or None (unbounded; then
        ``starting_points`` are required).

    Returns:
      ``BoundaryResult(adversarial [B, ...], success [B] bool, l2 [B])``.

    Examples:
      A linear two-class model, whose nearest adversarial lies at the L2 distance
      ``|x_0 - x_1| / sqrt(2)`` from ``x``: the walk starts far away and gets close to it.

      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> logits_fn = lambda x: x @ jnp.array([[1.0, -1.0], [-1.0, 1.0]])
      >>> x, y = jnp.array([[0.6, 0.4], [0.4, 0.6]]), jnp.array([0, 1])
      >>> starts = jnp.array([[0.0, 1.0], [1.0, 0.0]])  # adversarial, at distance 0.85
      >>> result = attacks.boundary_attack(
      ...     logits_fn, x, y, key=jax.random.key(0), starting_points=starts, num_steps=300
      ... )
      >>> print(result.success, jnp.argmax(logits_fn(result.adversarial), axis=1))
      [ True  True] [1 0]
      >>> nearest = jnp.abs(x[:, 0] - x[:, 1]) / jnp.sqrt(2.0)
      >>> print(np.asarray(nearest, float).round(4))
      [0.1414 0.1414]
      >>> print(bool(jnp.all((result.l2 >= nearest - 1e-6) & (result.l2 < 2 * nearest))))
      True
    """
    x = check_inputs(x, domain)
    n_classes = num_classes(logits_fn, x)
    labels = check_labels(x, labels, num_classes=n_classes)
    targets = check_targets(x, targeted, targets, n_classes)
    num_steps = check_positive_int("num_steps", num_steps, minimum=0)
    adapt_every = check_positive_int("adapt_every", adapt_every)
    spherical_window = check_positive_int("spherical_window", spherical_window)
    step_window = check_positive_int("step_window", step_window)
    check_epsilon("convergence", convergence)
    init_trials = check_positive_int("init_trials", init_trials)
    check_epsilon("spherical_step", spherical_step)
    check_epsilon("source_step", source_step)
    if not step_adaptation > 1.0:
        raise InputError(f"step_adaptation must be > 1, got {step_adaptation!r}.")

    batch = x.shape[0]
    flat_x = x.reshape(batch, -1).astype(jnp.float32)

    def is_adversarial(z_flat: jax.Array) -> jax.Array:
        z = z_flat.reshape((z_flat.shape[0],) + x.shape[1:]).astype(x.dtype)
        pred = jnp.argmax(logits_fn(z), axis=1)
        reps = z_flat.shape[0] // batch
        if targeted:
            return pred == jnp.tile(targets, reps)
        return pred != jnp.tile(labels, reps)

    def clip(z: jax.Array) -> jax.Array:
        return clip_to_domain(z, domain)

    init_key, key = jax.random.split(key)
    if starting_points is not None:
        start = check_inputs(starting_points, domain)
        if start.shape != x.shape:
            raise InputError(
                f"starting_points must have the shape of the inputs {x.shape}, got {start.shape}."
            )
        start = start.reshape(batch, -1).astype(jnp.float32)
        found = is_adversarial(start)
        if is_concrete(found) and not bool(jnp.all(found)):
            bad = np.flatnonzero(~np.asarray(found)).tolist()
            raise InputError(
                f"starting_points must be adversarial; those at indices {bad[:10]} are not "
                f"({'not the target class' if targeted else 'classified as their label'})."
            )
    elif domain is None:
        raise InputError(
            "With domain=None there is no domain to draw the initial noise from; pass "
            "starting_points (adversarial inputs) or a bounded domain."
        )
    else:
        low, high = domain
        found0 = is_adversarial(flat_x)  # already adversarial: start (and stay) at x

        def init_cond(state):
            i, _, _, found = state
            return (i < init_trials) & ~jnp.all(found)

        def init_body(state):
            i, k, start, found = state
            k, sub = jax.random.split(k)
            noise = jax.random.uniform(sub, flat_x.shape, jnp.float32, low, high)
            new = ~found & is_adversarial(noise)
            return i + 1, k, jnp.where(new[:, None], noise, start), found | new

        _, _, start, found = jax.lax.while_loop(
            init_cond, init_body, (jnp.int32(0), init_key, flat_x, found0)
        )

    def proposals(cur, sph_size, src_size, step_key):
        diff = flat_x - cur
        dist = _norm(diff)
        safe_dist = jnp.where(dist > 0, dist, 1.0)
        direction = diff / safe_dist[:, None]
        eta = jax.random.normal(step_key, cur.shape, jnp.float32)
        eta = eta - jnp.sum(eta * direction, axis=1, keepdims=True) * direction
        eta_norm = jnp.maximum(_norm(eta), 1e-12)
        eta = eta * (sph_size * safe_dist / eta_norm)[:, None]
        spherical = clip(flat_x + (eta - diff) / jnp.sqrt(1.0 + sph_size**2)[:, None])
        new_diff = flat_x - spherical
        new_dist = jnp.maximum(_norm(new_diff), 1e-12)
        length = jnp.maximum(src_size * safe_dist + new_dist - safe_dist, 0.0) / new_dist
        return dist, spherical, clip(spherical + length[:, None] * new_diff)

    def append(queue, pointer, values):
        return queue.at[pointer].set(values.astype(queue.dtype)), (pointer + 1) % len(queue)

    def adapt(queue, high, low):
        """(factor [B], cleared queue): the window's success rate beyond high/low thresholds."""
        full = ~jnp.any(jnp.isnan(queue), axis=0)
        rate = jnp.nanmean(jnp.where(full[None], queue, 0.0), axis=0)
        up, down = full & (rate > high), full & (rate < low)
        factor = jnp.where(up, step_adaptation, jnp.where(down, 1.0 / step_adaptation, 1.0))
        return factor, jnp.where((up | down)[None], jnp.nan, queue)

    def step(carry, step_key):
        i, cur, sph_size, src_size, sph_queue, sph_ptr, step_queue, step_ptr = carry
        dist, spherical, candidate = proposals(cur, sph_size, src_size, step_key)
        update_stats = (i + 1) % adapt_every == 0

        def both():
            adv = is_adversarial(jnp.concatenate([spherical, candidate]))
            return adv[:batch], adv[batch:]

        def candidate_only():
            return jnp.zeros(batch, bool), is_adversarial(candidate)

        sph_adv, cand_adv = jax.lax.cond(update_stats, both, candidate_only)
        running = found & (dist > 0) & (src_size >= convergence)
        accept = running & cand_adv & (_norm(flat_x - candidate) < dist)
        cur = jnp.where(accept[:, None], candidate, cur)

        def update(sizes_and_queues):
            sph_size, src_size, sph_queue, sph_ptr, step_queue, step_ptr = sizes_and_queues
            sph_queue, sph_ptr = append(sph_queue, sph_ptr, sph_adv)
            step_queue, step_ptr = append(step_queue, step_ptr, cand_adv)
            factor, sph_queue = adapt(sph_queue, _SPHERICAL_HIGH, _SPHERICAL_LOW)
            sph_size, src_size = sph_size * factor, src_size * factor
            factor, step_queue = adapt(step_queue, _STEP_HIGH, _STEP_LOW)
            return sph_size, src_size * factor, sph_queue, sph_ptr, step_queue, step_ptr

        stats = (sph_size, src_size, sph_queue, sph_ptr, step_queue, step_ptr)
        stats = jax.lax.cond(update_stats, update, lambda s: s, stats)
        return (i + 1, cur, *stats), None

    sizes = jnp.ones(batch, jnp.float32)
    carry = (
        jnp.int32(0),
        start,
        spherical_step * sizes,
        source_step * sizes,
        jnp.full((spherical_window, batch), jnp.nan, jnp.float32),
        jnp.int32(0),
        jnp.full((step_window, batch), jnp.nan, jnp.float32),
        jnp.int32(0),
    )
    step_keys = jax.random.split(key, num_steps)
    (_, final, *_), _ = jax.lax.scan(step, carry, step_keys, length=num_steps)

    final = jnp.where(found[:, None], final, flat_x)
    success = is_adversarial(final)
    l2 = _norm(final - flat_x)
    adversarial = final.reshape(x.shape).astype(x.dtype)
    result = BoundaryResult(adversarial, success, l2)
    return finish_search(x, result, "boundary_attack", n_classes, labels, targets)

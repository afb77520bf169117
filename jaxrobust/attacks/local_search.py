"""LocalSearch: score-based black-box attack on a few pixels (untargeted).

N. Narodytska and S. Kasiviswanathan, "Simple Black-Box Adversarial Attacks on Deep Neural
Networks", CVPR Workshops 2017 (Algorithm LocSearchAdv); the attack of the SDIM paper's
black-box evaluation.

Pixel values live in the cyclic range ``[LB, UB]`` (``cyclic_bound``, by default the domain).
With the centre ``m = (LB + UB) / 2`` and half-width ``h = (UB - LB) / 2``, a value ``v`` is
written ``u = (v - m) / h`` in ``[-1, 1]`` (the paper's zero-centred normalisation). Per round
``i`` with the current image ``I`` and candidate pixel set ``P``::

    PERT(I, (a, b)):  u[a, b, :] <- p * sign(u[a, b, :])          (one probe image per pixel)
    score(a, b)     = softmax(logits(PERT(I, (a, b))))[label]
    P*              = the t pixels of P with the lowest scores
    I[a, b, :]      <- CYC(r * u[a, b, :])  for (a, b) in P*,
                       CYC(z) = z - 2 if z > 1, z + 2 if z < -1 (wrapped modulo 2 in general)
    stop            if the label is not among the top_k classes of I
    P               <- the (2d + 1) x (2d + 1) squares around the pixels of P*

The initial ``P`` is a random ``initial_fraction`` (10 %, as in the paper) of the pixel
locations. Probe images may leave the domain (``p > 1``), as in the paper: they are only scored;
the returned image is in ``[LB, UB]`` at every changed pixel and unchanged elsewhere.

Vectorised simplifications: the candidate set is a boolean mask over pixel locations and every
pixel location is probed each round (candidates are then chosen by masking the scores), in
chunks of ``probe_batch`` pixels; when ``P`` has fewer than ``t`` pixels only those are changed.
All examples run for ``rounds`` steps of one ``lax.scan``; an example that has succeeded is
frozen by a mask. ``sign(0) = 0`` as in the formula, so a pixel exactly at the centre is not
changed by PERT or CYC. Inputs are images ``[B, H, W]`` or ``[B, H, W, C]`` (channels last; a
pixel's channels are perturbed together).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrobust.attacks._checks import (
    DEFAULT_DOMAIN,
    Domain,
    LogitsFn,
    check_epsilon,
    check_inputs,
    check_labels,
    check_positive_int,
    finish_search,
    is_concrete,
    num_classes,
    positional_key,
)
from jaxrobust.errors import InputError


class LocalSearchResult(NamedTuple):
    """What :func:`local_search_attack` returns: ``adversarial``, ``success``, ``rounds`` and
    ``pixels_changed`` per input.

    Examples:
      >>> from jaxrobust import attacks
      >>> attacks.LocalSearchResult._fields
      ('adversarial', 'success', 'rounds', 'pixels_changed')
    """

    adversarial: jax.Array  # [B, H, W(, C)]
    success: jax.Array  # [B] bool: the label is not among the top_k classes at `adversarial`
    rounds: jax.Array  # [B] int: rounds run (the round of success, or `rounds`)
    pixels_changed: jax.Array  # [B] int: pixel locations that differ from x


def _cyclic(u: jax.Array) -> jax.Array:
    """The paper's CYC on [-1, 1]: values outside wrap around by the range width 2."""
    return jnp.where(jnp.abs(u) <= 1.0, u, jnp.mod(u + 1.0, 2.0) - 1.0)


@positional_key(3)
def local_search_attack(
    logits_fn: LogitsFn,
    x: jax.Array,
    labels: jax.Array,
    *,
    key: jax.Array,
    perturbation: float = 1.5,
    perturb_size_r: float = 1.5,
    radius: int = 5,
    num_pixels: int = 10,
    rounds: int = 150,
    top_k: int = 1,
    initial_fraction: float = 0.1,
    cyclic_bound: tuple[float, float] | None = None,
    probe_batch: int = 256,
    domain: Domain = DEFAULT_DOMAIN,
) -> LocalSearchResult:
    """LocSearchAdv on images ``x [B, H, W(, C)]`` with true ``labels [B]``.

    Args:
      logits_fn: ``x [B, ...] -> logits [B, classes]``; its softmax scores the probes.
      x: images ``[B, H, W]`` or ``[B, H, W, C]`` inside ``domain``.
      labels: true classes ``[B]`` (integer).
      key: PRNG key for the initial candidate pixels (keyword-only, required; passed
        positionally after ``labels`` it still works, with a ``DeprecationWarning``).
      perturbation: ``p``, the probe value ``p * sign(u)`` in centred units.
      perturb_size_r: ``r``, the cyclic perturbation ``CYC(r * u)`` of the chosen pixels.
      radius: ``d``, the half-width of the neighbourhood squares of the next candidate set.
      num_pixels: ``t``, pixels changed per round.
      rounds: ``R``, the most rounds.
      top_k: success once the label is not among the ``top_k`` classes.
      initial_fraction: share of pixel locations in the random initial candidate set.
      cyclic_bound: ``(LB, UB)``; defaults to ``domain`` and must lie inside it.
      probe_batch: pixel probes per model call (per example), to bound memory.
      domain: ``(low, high)`` of the inputs, or None (then ``cyclic_bound`` is required).

    Returns:
      ``LocalSearchResult(adversarial, success [B] bool, rounds [B], pixels_changed [B])``.

    Examples:
      A 2x2 image is class 1 while its pixels sum above 2. In centred units ``u = 2 v - 1`` the
      pixels at 0.75 (``u = 0.5``) go to ``CYC(1.5 u)``: 0.75 (0.875) in round 1, then 1.125,
      which wraps to -0.875 (0.0625) in round 2, where the label flips.

      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jaxrobust import attacks
      >>> logits_fn = lambda x: jnp.stack(
      ...     [jnp.zeros(x.shape[0]), jnp.sum(x, axis=(1, 2)) - 2.0], axis=1
      ... )
      >>> x, y = jnp.full((1, 2, 2), 0.75), jnp.array([1])
      >>> result = attacks.local_search_attack(
      ...     logits_fn, x, y, key=jax.random.key(0), num_pixels=4, rounds=5, initial_fraction=1.0
      ... )
      >>> print(result.success, result.rounds, result.pixels_changed)
      [ True] [2] [4]
      >>> print(np.asarray(result.adversarial, float).round(4))
      [[[0.0625 0.0625]
        [0.0625 0.0625]]]
    """
    x = check_inputs(x, domain)
    n_classes = num_classes(logits_fn, x)
    labels = check_labels(x, labels, num_classes=n_classes)
    if x.ndim not in (3, 4):
        raise InputError(f"LocalSearch needs images [B, H, W] or [B, H, W, C], got {x.shape}.")
    radius = check_positive_int("radius", radius, minimum=0)
    num_pixels = check_positive_int("num_pixels", num_pixels)
    rounds = check_positive_int("rounds", rounds)
    top_k = check_positive_int("top_k", top_k)
    probe_batch = check_positive_int("probe_batch", probe_batch)
    check_epsilon("perturbation", perturbation)
    check_epsilon("perturb_size_r", perturb_size_r)
    if not 0.0 < initial_fraction <= 1.0:
        raise InputError(f"initial_fraction must be in (0, 1], got {initial_fraction!r}.")
    if cyclic_bound is None:
        if domain is None:
            raise InputError("With domain=None pass cyclic_bound=(LB, UB), the pixel range.")
        cyclic_bound = domain
    lb, ub = float(cyclic_bound[0]), float(cyclic_bound[1])
    if not lb < ub:
        raise InputError(f"cyclic_bound must satisfy LB < UB, got {cyclic_bound!r}.")
    if domain is not None and (lb < domain[0] or ub > domain[1]):
        raise InputError(f"cyclic_bound {cyclic_bound!r} must lie inside the domain {domain!r}.")
    if is_concrete(x) and (float(jnp.min(x)) < lb - 1e-6 or float(jnp.max(x)) > ub + 1e-6):
        raise InputError(f"Inputs must lie inside cyclic_bound {cyclic_bound!r}.")

    images = x if x.ndim == 4 else x[..., None]  # [B, H, W, C]
    batch, height, width, channels = images.shape
    n_pix = height * width
    top_k = min(top_k, n_classes)
    t = min(num_pixels, n_pix)
    centre, half = (lb + ub) / 2.0, (ub - lb) / 2.0
    u0 = ((images.astype(jnp.float32) - centre) / half).reshape(batch, n_pix, channels)

    def to_input(u: jax.Array) -> jax.Array:  # [N, n_pix, C] -> model input [N, ...]
        v = (u * half + centre).reshape((u.shape[0], height, width, channels))
        return v.astype(x.dtype).reshape((u.shape[0],) + x.shape[1:])

    def still_correct(u: jax.Array) -> jax.Array:
        logits = logits_fn(to_input(u))
        _, top = jax.lax.top_k(logits, top_k)
        return jnp.any(top == labels[:, None], axis=1)

    n_chunks = -(-n_pix // probe_batch)
    chunk = -(-n_pix // n_chunks)
    padded = n_chunks * chunk

    def probe_scores(u: jax.Array) -> jax.Array:
        """Probability of the label after PERT at every pixel location: [B, n_pix]."""
        probe_values = perturbation * jnp.sign(u)  # [B, n_pix, C]

        def one_chunk(start):
            pix = start + jnp.arange(chunk)  # [chunk]
            hit = pix[:, None] == jnp.arange(n_pix)[None, :]  # [chunk, n_pix]
            probes = jnp.where(hit[None, :, :, None], probe_values[:, None], u[:, None])
            probes = probes.reshape(batch * chunk, n_pix, channels)
            log_p = jax.nn.log_softmax(logits_fn(to_input(probes)).astype(jnp.float32))
            log_p = log_p.reshape(batch, chunk, -1)
            return jnp.exp(jnp.take_along_axis(log_p, labels[:, None, None], axis=2)[..., 0])

        scores = jax.lax.map(one_chunk, jnp.arange(n_chunks) * chunk)  # [n_chunks, B, chunk]
        return jnp.moveaxis(scores, 0, 1).reshape(batch, padded)[:, :n_pix]

    def neighbourhood(chosen: jax.Array) -> jax.Array:
        """Dilate a [B, n_pix] mask by (2d + 1) x (2d + 1) squares."""
        grid = chosen.reshape(batch, height, width).astype(jnp.float32)
        size = 2 * radius + 1
        grown = jax.lax.reduce_window(grid, 0.0, jax.lax.max, (1, size, size), (1, 1, 1), "SAME")
        return grown.reshape(batch, n_pix) > 0

    n_init = max(1, int(round(initial_fraction * n_pix)))
    _, init_idx = jax.lax.top_k(jax.random.uniform(key, (batch, n_pix)), n_init)
    candidates0 = jnp.zeros((batch, n_pix), bool).at[jnp.arange(batch)[:, None], init_idx].set(True)

    def round_step(carry, _):
        u, candidates, active, used = carry
        scores = jnp.where(candidates, probe_scores(u), jnp.inf)
        neg_best, chosen_idx = jax.lax.top_k(-scores, t)  # lowest scores first
        valid = jnp.isfinite(neg_best)  # fewer than t candidates: only those
        chosen = (
            jnp.zeros((batch, n_pix), bool).at[jnp.arange(batch)[:, None], chosen_idx].max(valid)
        )
        chosen = chosen & active[:, None]
        u = jnp.where(chosen[..., None], _cyclic(perturb_size_r * u), u)
        used = used + active
        active = active & still_correct(u)
        candidates = jnp.where(active[:, None], neighbourhood(chosen), candidates)
        return (u, candidates, active, used), None

    active0 = still_correct(u0)
    carry = (u0, candidates0, active0, jnp.zeros(batch, jnp.int32))
    (u, _, active, used), _ = jax.lax.scan(round_step, carry, None, length=rounds)
    changed = jnp.any(u != u0, axis=2)  # [B, n_pix]
    mask = changed.reshape((batch,) + x.shape[1:3] + (1,) * (x.ndim - 3))
    adversarial = jnp.where(mask, jnp.clip(to_input(u), lb, ub), x)
    result = LocalSearchResult(adversarial, ~active, used, jnp.sum(changed, axis=1))
    return finish_search(x, result, "local_search_attack", n_classes, labels)

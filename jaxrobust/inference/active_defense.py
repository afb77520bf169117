"""The active defense of the dissertation's Algorithm 2: tell adversarial inputs from outliers.

For an input x and a VAE with a Gaussian latent (z = the encoder's mean, digest open point 18)::

    hole test:   Sigma_z[x] = hole indicator (eq. 4.17); Sigma_z[x] <= tau_hole  ->  "inlier"
    otherwise:   z_hmc = M steps of latent HMC from z (Algorithm 3, jaxrobust.inference.latent_hmc)
                 g_0 = MS-SSIM(x, dec(z)),  g_h = MS-SSIM(x, dec(z_hmc)),  gain = g_h - g_0
                 |gain| > theta  ->  "attack",  else  "outlier"

An attack moved the encoding off the data's posterior; HMC on p(z | x) moves it back, and the
reconstruction gets closer to x (large gain). An outlier has no good code anywhere, so HMC gains
little. As printed, Algorithm 2 decides inside the HMC loop after one step; here all M steps run
and the decision is taken once (open point 14). ``signed=True`` tests gain > theta instead of
|gain| (open point 17).

Thresholds (open points 16, 17): tau_hole is the 95th percentile of the hole indicator on
held-out in-distribution data (5 % false alarms), fitted by :func:`fit_thresholds`, which refuses
scores of the test split; theta is 0.15 by default (the digest's value between the document's
non-generative gains, <= 0.11, and generative ones, >= 0.19), or fitted on validation attacks
and validation outliers by :func:`fit_gain_threshold`.

:func:`active_defense` computes every quantity of every input in one jitted call (vmapped HMC
chains for all inputs, so the shapes are static; the decision masks the inliers), which is also
what Tables 5.7 / 5.8 report (mean MS-SSIM without and with HMC, and the gain).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.errors import InputError
from jaxrobust.inference.latent_hmc import latent_hmc
from jaxrobust.metrics.detection import threshold_from_percentile
from jaxrobust.metrics.similarity import MNIST_MS_SSIM, ms_ssim

__all__ = [
    "DECISIONS",
    "DEFAULT_GAIN_THRESHOLD",
    "ActiveDefenseThresholds",
    "active_defense",
    "decide",
    "defense_quantities",
    "fit_gain_threshold",
    "fit_thresholds",
]

#: decision codes: ``DECISIONS[code]``
DECISIONS = ("inlier", "outlier", "attack")
#: theta of Algorithm 2 (digest open point 17)
DEFAULT_GAIN_THRESHOLD = 0.15
#: splits thresholds may be fitted on
FIT_SPLITS = ("validation", "train")


class ActiveDefenseThresholds(NamedTuple):
    """Algorithm 2's thresholds and where they come from (saved beside the evaluation)."""

    hole: float
    gain: float = DEFAULT_GAIN_THRESHOLD
    signed: bool = False
    fitted_on: str = "validation"
    hole_percentile: float = 95.0

    def to_json(self) -> dict[str, Any]:
        return dict(self._asdict())


def fit_thresholds(
    hole_scores,
    *,
    split: str,
    percentile: float = 95.0,
    gain: float = DEFAULT_GAIN_THRESHOLD,
    signed: bool = False,
) -> ActiveDefenseThresholds:
    """tau_hole = the ``percentile``-th percentile of held-out in-distribution hole indicators.

    ``split`` names where ``hole_scores`` come from, and must be ``"validation"`` (or
    ``"train"``): fitting on the test split is refused.

    Example:
        >>> import numpy as np
        >>> t = fit_thresholds(np.arange(101.0), split="validation")
        >>> t.hole, t.gain
        (95.0, 0.15)
    """
    if split not in FIT_SPLITS:
        raise InputError(
            f"fit_thresholds: thresholds are fitted on held-out in-distribution data "
            f"({' or '.join(FIT_SPLITS)}), not on {split!r}: the test split must not choose "
            "them. Pass the validation carve's hole indicators."
        )
    if not (isinstance(gain, (int, float)) and math.isfinite(gain) and gain >= 0):
        raise InputError(f"fit_thresholds: gain (theta) must be a non-negative number, got {gain}")
    hole = threshold_from_percentile(hole_scores, higher_is_ood=False, percentile=percentile)
    return ActiveDefenseThresholds(float(hole), float(gain), bool(signed), split, float(percentile))


def fit_gain_threshold(gains_attack, gains_outlier, *, signed: bool = False) -> float:
    """theta maximising the balanced accuracy of "attack" (gain above theta) vs "outlier" on
    validation attacks and validation outliers (the midpoint between neighbouring candidates).

    Example:
        >>> fit_gain_threshold([0.3, 0.4, 0.5], [0.0, 0.05, 0.1])
        0.2
    """
    a = np.asarray(gains_attack, np.float64).ravel()
    o = np.asarray(gains_outlier, np.float64).ravel()
    if a.size == 0 or o.size == 0 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(o))):
        raise InputError("fit_gain_threshold: needs finite, non-empty gains of both kinds.")
    if not signed:
        a, o = np.abs(a), np.abs(o)
    values = np.unique(np.concatenate([a, o]))
    candidates = np.concatenate([[values[0] - 1.0], (values[1:] + values[:-1]) / 2.0])
    balanced = [(np.mean(a > t) + np.mean(o <= t)) / 2.0 for t in candidates]
    return float(max(candidates[int(np.argmax(balanced))], 0.0))


def decide(hole_score, gain, thresholds: ActiveDefenseThresholds) -> jax.Array:
    """Algorithm 2's decision codes (:data:`DECISIONS`), ``[B]`` int32: 0 inlier (no hole),
    1 outlier (in a hole, small gain), 2 attack (in a hole, gain above theta).

    Example:
        >>> import jax.numpy as jnp
        >>> t = ActiveDefenseThresholds(hole=1.0, gain=0.15)
        >>> decide(jnp.array([0.5, 2.0, 2.0, 2.0]), jnp.array([0.9, 0.1, 0.3, -0.3]), t).tolist()
        [0, 1, 2, 2]
    """
    if not isinstance(thresholds, ActiveDefenseThresholds):
        raise InputError(
            f"decide: thresholds must be ActiveDefenseThresholds, got {thresholds!r}; fit them "
            "on held-out in-distribution data with fit_thresholds(validation_hole_scores, "
            "split='validation')."
        )
    hole_score, gain = jnp.asarray(hole_score), jnp.asarray(gain)
    in_hole = hole_score > thresholds.hole
    moved = (gain if thresholds.signed else jnp.abs(gain)) > thresholds.gain
    return jnp.where(in_hole, jnp.where(moved, 2, 1), 0).astype(jnp.int32)


def active_defense(
    model,
    variables,
    x: jax.Array,
    *,
    key: jax.Array,
    thresholds: ActiveDefenseThresholds | None = None,
    hmc: Mapping[str, Any] | None = None,
    similarity: Mapping[str, Any] | None = None,
) -> dict[str, jax.Array]:
    """Every quantity of Algorithm 2 for a batch ``x`` ``[B, H, W, C]`` in one jitted call.

    Returns ``{"hole_indicator", "ms_ssim_reconstruction", "ms_ssim_hmc", "gain",
    "acceptance_rate", "step_size"}`` (all ``[B]``), the codes ``"z"`` (the encoder's means) and
    ``"z_hmc"`` (where the chains end), ``[B, d]``, and, with ``thresholds``, ``"decision"``
    (codes of :data:`DECISIONS`). ``hmc``: options of :func:`latent_hmc` (``num_steps``,
    ``num_integration_steps``, ``step_size``, ``target_acceptance``, ``adaptation``);
    ``similarity``: options of :func:`~jaxrobust.metrics.ms_ssim` (default
    :data:`~jaxrobust.metrics.MNIST_MS_SSIM`). The model needs the ``encode``, ``decode`` and
    ``log_joint`` capabilities, a Gaussian latent, and the ``hole_indicator`` score.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxrobust.models import build_model
        >>> vae = build_model("vae", {"latent_dim": 2, "network": "mlp"}, (28, 28, 1), 10)
        >>> v = vae.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
        >>> x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
        >>> out = active_defense(vae, v, x, key=jax.random.key(2), hmc={"num_steps": 5},
        ...                      thresholds=ActiveDefenseThresholds(hole=0.0))
        >>> sorted(out), out["decision"].shape
        (['acceptance_rate', 'decision', 'gain', 'hole_indicator', 'ms_ssim_hmc', 'ms_ssim_reconstruction', 'step_size', 'z', 'z_hmc'], (3,))
    """  # noqa: E501
    missing = [c for c in ("encode", "decode", "log_joint") if getattr(model, c, None) is None]
    if missing or "hole_indicator" not in model.scores:
        what = missing + ([] if "hole_indicator" in model.scores else ["the hole_indicator score"])
        raise InputError(
            f"active_defense: the model ({model.kind!r}) lacks {', '.join(what)}; it needs a VAE "
            "(jaxrobust.models.make_vae)."
        )
    if getattr(model.latent, "name", "gaussian") != "gaussian":
        raise InputError(
            f"active_defense: latent HMC runs in R^d and needs a Gaussian latent; this model's "
            f"latent is {model.latent.name!r} (a sphere). Use a Gaussian-latent VAE."
        )
    similarity = dict(MNIST_MS_SSIM if similarity is None else similarity)
    x = jnp.asarray(x)
    ms_ssim(x[:1], x[:1], **similarity)  # the image-size check of MS-SSIM, before any work
    out = defense_quantities(model, variables, x, key=key, hmc=hmc, similarity=similarity)
    if thresholds is not None:
        out["decision"] = decide(out["hole_indicator"], out["gain"], thresholds)
    return out


def defense_quantities(
    model,
    variables,
    x: jax.Array,
    *,
    key: jax.Array,
    hmc: Mapping[str, Any] | None = None,
    similarity: Mapping[str, Any] | None = None,
) -> dict[str, jax.Array]:
    """The quantities of :func:`active_defense` without its checks or the decision: pure and
    jittable, so that callers can ``vmap`` it over stacked runs of a model."""
    hmc = dict(hmc or {})
    similarity = dict(MNIST_MS_SSIM if similarity is None else similarity)
    score_key, hmc_key = jax.random.split(key)
    hole = model.score(variables, x, ["hole_indicator"], key=score_key)["hole_indicator"]
    z0 = _encoder_mean(model, variables, x)
    chains = latent_hmc(model.log_joint, x, z0, key=hmc_key, variables=variables, **hmc)
    reconstruction = jnp.clip(model.decode(variables, z0), 0.0, 1.0)
    after_hmc = jnp.clip(model.decode(variables, chains.z), 0.0, 1.0)
    g0 = ms_ssim(x, reconstruction, **similarity)
    gh = ms_ssim(x, after_hmc, **similarity)
    return {
        "hole_indicator": hole,
        "ms_ssim_reconstruction": g0,
        "ms_ssim_hmc": gh,
        "gain": gh - g0,
        "acceptance_rate": chains.acceptance_rate,
        "step_size": chains.step_size,
        "z": z0,
        "z_hmc": chains.z,
    }


def _encoder_mean(model, variables, x):
    return model.latent.mean(model.encode(variables, x))

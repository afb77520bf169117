"""Calibration of classifiers: expected calibration error and reliability-diagram bins.

ECE (Naeini et al. 2015; hybrid-models thesis eq. 4.1) with M equal-width confidence bins
B_m = ((m-1)/M, m/M]:  ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|, over the top-label
confidence max_k p(k|x).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _check_probs(probs: jax.Array, labels: jax.Array) -> None:
    if probs.ndim != 2:
        raise ValueError(f"probs must be [N, classes], got shape {probs.shape}.")
    if labels.shape != probs.shape[:1]:
        raise ValueError(f"labels must be [N] = [{probs.shape[0]}], got shape {labels.shape}.")


def reliability_bins(probs: jax.Array, labels: jax.Array, num_bins: int = 15) -> dict:
    """Per-bin ``count``, mean ``confidence`` and ``accuracy`` (0 where a bin is empty)."""
    probs = jnp.asarray(probs, jnp.float32)
    labels = jnp.asarray(labels)
    _check_probs(probs, labels)
    confidence = jnp.max(probs, axis=-1)
    correct = (jnp.argmax(probs, axis=-1) == labels).astype(jnp.float32)
    bins = jnp.clip(jnp.ceil(confidence * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
    count = jnp.zeros(num_bins).at[bins].add(1.0)
    conf_sum = jnp.zeros(num_bins).at[bins].add(confidence)
    acc_sum = jnp.zeros(num_bins).at[bins].add(correct)
    safe = jnp.maximum(count, 1.0)
    return {
        "count": count,
        "confidence": conf_sum / safe,
        "accuracy": acc_sum / safe,
        "edges": jnp.linspace(0.0, 1.0, num_bins + 1),
    }


def expected_calibration_error(probs: jax.Array, labels: jax.Array, num_bins: int = 15):
    """Top-label ECE with ``num_bins`` equal-width bins (default 15, as the thesis)."""
    bins = reliability_bins(probs, labels, num_bins)
    weights = bins["count"] / jnp.sum(bins["count"])
    return jnp.sum(weights * jnp.abs(bins["accuracy"] - bins["confidence"]))

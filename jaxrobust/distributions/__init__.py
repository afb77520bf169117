"""Observation models p(x|z) and related helpers, all in nats."""

from jaxrobust.distributions.observation import (
    bernoulli_log_prob,
    bits_per_dim,
    diagonal_gaussian_kl_to_standard,
)

__all__ = ["bernoulli_log_prob", "bits_per_dim", "diagonal_gaussian_kl_to_standard"]

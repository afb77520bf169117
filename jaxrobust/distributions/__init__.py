"""Observation models p(x|z), Gaussian latent densities and divergences, latent families
q(z|x), and the distributions on the sphere (:mod:`von_mises_fisher`, :mod:`power_spherical`),
all in nats."""

from jaxrobust.distributions import power_spherical, von_mises_fisher
from jaxrobust.distributions.gaussian import (
    diagonal_gaussian_kl,
    diagonal_gaussian_kl_to_standard,
    diagonal_gaussian_log_prob,
    diagonal_gaussian_sample,
    shifted_normal_kl,
    standard_normal_log_prob,
)
from jaxrobust.distributions.observation import (
    OBSERVATION_MODELS,
    ObservationModel,
    bernoulli_log_prob,
    bits_per_dim,
    gaussian_log_prob,
    make_observation_model,
    quantized_gaussian_log_prob,
)

__all__ = [
    "OBSERVATION_MODELS",
    "ObservationModel",
    "bernoulli_log_prob",
    "bits_per_dim",
    "diagonal_gaussian_kl",
    "diagonal_gaussian_kl_to_standard",
    "diagonal_gaussian_log_prob",
    "diagonal_gaussian_sample",
    "gaussian_log_prob",
    "make_observation_model",
    "power_spherical",
    "quantized_gaussian_log_prob",
    "shifted_normal_kl",
    "standard_normal_log_prob",
    "von_mises_fisher",
]

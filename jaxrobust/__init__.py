"""jaxrobust: robust deep learning in JAX (OOD detection, uncertainty, adversarial robustness).

The public API, one concern per package (``docs/design.md``)::

    import jaxrobust as jr

    vae = jr.models.make_vae((28, 28, 1), latent_dim=16)        # models: Model + capabilities
    x_adv = jr.attacks.pgd(loss_fn, x, y, key=key, epsilon=0.3, step_size=0.01, num_steps=40)
    jr.metrics.detection_summary(s_in, s_out, higher_is_ood=True)  # metrics on arrays
    jr.scores.stacked_scores(log_lik)                              # scores of model outputs
    jr.inference.restore_posterior("runs/x/posterior/vae")         # posterior stacks
    jr.data.load("fashion_mnist", "test")                           # datasets
    jr.evaluate.restore_model("runs/quickstart", "vae")            # checkpoints, no config

Extension by registration: :func:`register_model`, :func:`register_network`,
:func:`register_posterior`, :func:`register_evaluation`, :func:`register_latent_family`.

Example:
    >>> import jaxrobust as jr
    >>> sorted(jr.registry.MODELS.names())[:2]
    ['classifier', 'vae']
"""

from jaxrobust import (
    attacks,
    config,
    data,
    distributions,
    evaluate,
    inference,
    metrics,
    models,
    nn,
    registry,
    scores,
    train,
)
from jaxrobust.distributions.latent import register_latent_family
from jaxrobust.evaluate.task import register_evaluation
from jaxrobust.inference.methods import register_posterior
from jaxrobust.models.registry import register_model, register_network

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "attacks",
    "config",
    "data",
    "distributions",
    "evaluate",
    "inference",
    "metrics",
    "models",
    "nn",
    "register_evaluation",
    "register_latent_family",
    "register_model",
    "register_network",
    "register_posterior",
    "registry",
    "scores",
    "train",
]

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
    >>> {"classifier", "vae"} <= set(jr.registry.MODELS.names())
    True
"""

import importlib

__version__ = "0.1.0"

#: Subpackages, imported on first use (``import jaxrobust.data`` stays free of JAX).
_SUBPACKAGES = (
    "attacks",
    "config",
    "data",
    "distributions",
    "evaluate",
    "inference",
    "metrics",
    "models",
    "nn",
    "registry",
    "scores",
    "train",
    "workdir",
)
_REGISTRATIONS = {
    "register_evaluation": "jaxrobust.evaluate.task",
    "register_latent_family": "jaxrobust.distributions.latent",
    "register_model": "jaxrobust.models.registry",
    "register_network": "jaxrobust.models.registry",
    "register_posterior": "jaxrobust.inference.methods",
}


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"jaxrobust.{name}")
    if name in _REGISTRATIONS:
        return getattr(importlib.import_module(_REGISTRATIONS[name]), name)
    raise AttributeError(f"module 'jaxrobust' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = ["__version__", *_SUBPACKAGES, *_REGISTRATIONS]

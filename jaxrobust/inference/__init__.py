"""Posterior inference over (a subset of) a model's parameters; every method ends in the same
artifact, :class:`PosteriorSamples` (a parameter tree with a leading sample axis, saved by Orbax).

- :mod:`~jaxrobust.inference.subset`: choose parameters by path (e.g. the decoder).
- Deep ensembles: members as one program (the training loop's run axis).
- :mod:`~jaxrobust.inference.swag`: SWA-Gaussian moments and sampling (Maddox et al. 2019).
- :mod:`~jaxrobust.inference.bbb`: Bayes by backprop, mean-field Gaussian (Blundell et al. 2015).
- :mod:`~jaxrobust.inference.sghmc`: scale-adapted SGHMC (Springenberg et al. 2016) as an optax
  transformation; :mod:`~jaxrobust.inference.collect` keeps thinned samples in the optimizer state.
- :mod:`~jaxrobust.inference.hmc`: HMC/NUTS through NumPyro with diagnostics.
- :mod:`~jaxrobust.inference.methods`: the ``posterior`` config section of the training loop,
  and :func:`register_posterior` for new methods.
- :mod:`~jaxrobust.inference.predict`: per-sample outputs of a stack (log p(x | theta_s),
  logits) in one jitted call.
"""

from jaxrobust.inference.methods import (
    Posterior,
    PosteriorMethod,
    bbb_model,
    build_posterior,
    check_posterior_config,
    register_posterior,
)
from jaxrobust.inference.predict import map_posterior, posterior_log_likelihoods
from jaxrobust.inference.samples import (
    PosteriorSamples,
    from_stack,
    restore_posterior,
    sample_variables,
    save_posterior,
    stack_samples,
)
from jaxrobust.inference.subset import combine, mask, reject, select

__all__ = [
    "Posterior",
    "PosteriorMethod",
    "PosteriorSamples",
    "bbb_model",
    "build_posterior",
    "check_posterior_config",
    "map_posterior",
    "posterior_log_likelihoods",
    "register_posterior",
    "combine",
    "from_stack",
    "mask",
    "reject",
    "restore_posterior",
    "sample_variables",
    "save_posterior",
    "select",
    "stack_samples",
]

"""Posterior methods as parts of the ordinary training loop, chosen by a config section.

``config.models.<name>.posterior`` (absent = a point estimate)::

    method: "ensemble" | "swag" | "sghmc" | "bbb" | "hmc"
    filter: "^decoder/"      # regex on parameter paths (jaxrobust.inference.subset); ".*" = all
    rest: "point" | "fixed"  # parameters outside the filter: trained by the optimizer, or frozen
    num_samples: 200         # posterior samples written to workdir/posterior/<name>

    ensemble: members (M independent initialisations trained as one program: the run axis)
    swag:     start_epoch, rank (40), scale (0.5), low_rank (True); moments collected at the end
              of every epoch from start_epoch on (or every ``every_steps`` steps from the end of
              its first epoch; 0 = once per epoch), by the config's optimizer (SGD in Maddox
              et al.)
    sghmc:    momentum_decay (0.05), burn_in_epochs, thinning_steps, prior_alpha, prior_beta;
              lr = optimizer.learning_rate (1e-3 in the dissertation); the rest uses the optimizer
    bbb:      prior {pi, sigma1, sigma2} (scale mixture) or {sigma} (Gaussian), kl_weight
              "per_batch" (eq. 3.8: the weight KL once per minibatch, N = batch size) or
              "dataset" (Blundell et al.: KL / number of minibatches), mu_init, mu_std, rho_init
    hmc:      NUTS/HMC through NumPyro (jaxrobust.inference.hmc) on the chosen parameters after
              the point estimate is trained (num_epochs with the optimizer; the rest stays at its
              trained value): potential U = (N / n) sum_{i<=n} loss_i(theta) - log N(theta; 0,
              prior_std^2), loss_i the model's per-example loss with ``latent_samples`` FIXED keys
              (common random numbers make a VAE's one-sample -ELBO a deterministic function of
              the decoder), n = ``data`` training images (0 = all: full batch). Options
              num_warmup, thinning, num_chains, algorithm, target_accept_prob, max_tree_depth,
              prior_std, data, latent_samples; diagnostics go into posterior.json.

Each method returns a :class:`Posterior`: the model to train (BBB trains variational
parameters), the optimizer (SGHMC is one; SWAG and sample collection wrap one), the number of
runs (ensemble members) and ``finalize(state, key) -> (PosteriorSamples, meta)``. Everything a
method accumulates (SWAG moments, SGHMC samples) lives in the optimizer state, so it is
checkpointed with it and training resumes bitwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrobust.config import sections
from jaxrobust.inference import bbb as bbb_lib
from jaxrobust.inference import subset
from jaxrobust.inference.collect import collect_samples, collected_samples
from jaxrobust.inference.hmc import run_nuts
from jaxrobust.inference.samples import PosteriorSamples, from_stack, stack_samples
from jaxrobust.inference.sghmc import gamma_prior_precision, sghmc
from jaxrobust.inference.swag import swag_collector, swag_sample, swag_state
from jaxrobust.models.base import (
    Model,
    merge_variables,
    split_variables,
    with_variables_transform,
)
from jaxrobust.registry import POSTERIORS, unknown_name_message

PyTree = Any
_COMMON = ("method", "filter", "rest", "num_samples")
_OPTIONS = {
    "ensemble": ("members",),
    "swag": ("start_epoch", "every_steps", "rank", "scale", "low_rank"),
    "sghmc": ("momentum_decay", "burn_in_epochs", "thinning_steps", "prior_alpha", "prior_beta"),
    "bbb": ("prior", "kl_weight", "mu_init", "mu_std", "rho_init"),
    "hmc": ("num_warmup", "thinning", "num_chains", "algorithm", "target_accept_prob",
            "max_tree_depth", "prior_std", "data", "latent_samples"),
}  # fmt: skip


def _get(cfg: Mapping[str, Any], key: str, default: Any) -> Any:
    """``cfg[key]``, or ``default`` when absent or None (a resolved config holds every key)."""
    value = cfg.get(key)
    return default if value is None else value


class Posterior(NamedTuple):
    """What the training loop needs to train one posterior method (see module docstring).

    Example:
        >>> Posterior._fields
        ('method', 'model', 'optimizer', 'num_runs', 'finalize')
    """

    method: str
    model: Model
    optimizer: optax.GradientTransformation
    num_runs: int | None
    # finalize(state, key, train_batch) -> (samples, meta); train_batch: preprocessed training
    # images (only HMC uses them, its potential).
    finalize: Callable[[Any, jax.Array, Callable[[int], dict]], tuple[PosteriorSamples, dict]]


class PosteriorMethod(NamedTuple):
    """A registered posterior method: ``build(cfg, model, optimizer, example, *, steps_per_epoch,
    num_train, num_epochs, seed, learning_rate) -> Posterior``, its option names (beyond
    ``method, filter, rest, num_samples``) and the schema of its config section.

    Example:
        >>> from jaxrobust.registry import POSTERIORS
        >>> POSTERIORS.get("ensemble").options
        ('members',)
    """

    build: Callable[..., Posterior]
    options: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = None


def register_posterior(
    method: str,
    build: Callable[..., Posterior],
    *,
    options: tuple[str, ...] = (),
    schema: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Make ``method`` usable as ``training.posterior.method`` (see :class:`PosteriorMethod`).

    Example:
        >>> from jaxrobust.registry import POSTERIORS
        >>> sorted(POSTERIORS.names())
        ['bbb', 'ensemble', 'hmc', 'sghmc', 'swag']
    """
    POSTERIORS.register(method, PosteriorMethod(build, tuple(options), schema), overwrite=overwrite)


def check_posterior_config(cfg: Mapping[str, Any], name: str) -> dict:
    """The posterior section with defaults, or a ValueError naming what is wrong.

    Example:
        >>> check_posterior_config({"method": "ensemble", "members": 3}, "cnn")["num_samples"]
        3
    """
    cfg = {k: v for k, v in dict(cfg).items() if v is not None or k == "method"}
    method = cfg.get("method")
    entry = POSTERIORS.get(method, where=f"config.models.{name}.training.posterior.method")
    unknown = sorted(set(cfg) - set(_COMMON) - set(entry.options))
    if unknown:
        accepted = sorted(_COMMON + entry.options)
        where = f"config.models.{name}.training.posterior"
        raise ValueError(
            unknown_name_message("key", unknown[0], accepted, where)
            + f" (unknown options {unknown} for method {method!r})"
        )
    cfg.setdefault("filter", subset.ALL)
    cfg.setdefault("rest", "point")
    cfg.setdefault("num_samples", 200 if method != "ensemble" else _get(cfg, "members", 5))
    if cfg["rest"] not in ("point", "fixed"):
        raise ValueError(f"posterior.rest must be 'point' or 'fixed', got {cfg['rest']!r}.")
    if method == "ensemble":
        members = cfg.get("members")
        if members is None:
            raise ValueError("posterior.members is required for an ensemble: an integer >= 2.")
        if not isinstance(members, int) or members < 2:
            raise ValueError(f"posterior.members must be an integer >= 2, got {members!r}.")
        if cfg["filter"] != subset.ALL:
            raise ValueError(
                "An ensemble trains every parameter of each member; leave posterior.filter at "
                "'.*' (for a posterior over part of the model use swag, sghmc or bbb)."
            )
        cfg["num_samples"] = members
    if method == "hmc" and cfg["num_samples"] % _get(cfg, "num_chains", 1):
        raise ValueError(
            f"posterior.num_samples ({cfg['num_samples']}) must be a multiple of num_chains "
            f"({cfg.get('num_chains', 1)})."
        )
    if not isinstance(cfg["num_samples"], int) or cfg["num_samples"] < 2:
        raise ValueError(
            f"posterior.num_samples must be an integer >= 2, got {cfg['num_samples']!r}."
        )
    return cfg


def build_posterior(cfg: Mapping[str, Any], *args, **kwargs) -> Posterior:
    """The :class:`Posterior` of ``cfg`` (already checked) from its registered method.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from jaxrobust.models import build_model
        >>> cnn = build_model("classifier", {"network": "small_cnn"}, (28, 28, 1), 10)
        >>> cfg = check_posterior_config({"method": "ensemble", "members": 2}, "cnn")
        >>> p = build_posterior(cfg, cnn, optax.adam(1e-3), jnp.zeros((1, 28, 28, 1)),
        ...                     steps_per_epoch=1, num_train=1, num_epochs=1, seed=0)
        >>> p.method, p.num_runs
        ('ensemble', 2)
    """
    return POSTERIORS.get(cfg["method"]).build(cfg, *args, **kwargs)


def _build_builtin(
    cfg: Mapping[str, Any],
    model: Model,
    optimizer: optax.GradientTransformation,
    example: jax.Array,
    *,
    steps_per_epoch: int,
    num_train: int,
    num_epochs: int,
    seed: int,
    learning_rate: float = 1e-3,
) -> Posterior:
    """The :class:`Posterior` of ``cfg`` (already checked) for ``model`` trained by ``optimizer``.

    ``learning_rate`` is SGHMC's (the config optimizer's learning rate); ``seed`` keys the
    samplers' noise.
    """
    method = cfg["method"]
    pattern = cfg["filter"]
    shapes = jax.eval_shape(model.init, jax.random.key(0), example)
    params_shape, _ = split_variables(shapes)
    mask = subset.mask(params_shape, pattern)
    num_samples = cfg["num_samples"]

    def with_rest_frozen(inner):
        if cfg["rest"] == "point":
            return inner
        labels = jax.tree.map(lambda m: "chosen" if m else "rest", mask)
        return optax.multi_transform({"chosen": inner, "rest": optax.set_to_zero()}, labels)

    def point_finalize(samples_of):
        def finalize(state, key, train_batch):
            del train_batch
            rest = subset.reject(state.params, pattern)
            return stack_samples(samples_of(state, key), rest, state.model_state), {}

        return finalize

    if method == "ensemble":

        def finalize_ensemble(state, key, train_batch):
            del key, train_batch
            return from_stack(merge_variables(state.params, state.model_state)), {}

        return Posterior(method, model, optimizer, cfg["members"], finalize_ensemble)

    if method == "swag":
        start_epoch = _get(cfg, "start_epoch", max(1, num_epochs - 40 + 1))
        if not 1 <= start_epoch <= num_epochs:
            raise ValueError(
                f"posterior.start_epoch must be in [1, num_epochs={num_epochs}], got {start_epoch}."
            )
        rank = _get(cfg, "rank", 40)
        # Update k (0-based) ends epoch e when k + 1 = e * steps_per_epoch.
        swag_opt = swag_collector(
            with_rest_frozen(optimizer),
            start_step=start_epoch * steps_per_epoch - 1,
            every_steps=cfg.get("every_steps") or steps_per_epoch,
            rank=rank,
            mask=mask,
        )

        def swag_samples(state, key):
            return swag_sample(
                key,
                swag_state(state.opt_state),
                num_samples,
                scale=_get(cfg, "scale", 0.5),
                low_rank=_get(cfg, "low_rank", True),
            )

        return Posterior(method, model, swag_opt, None, point_finalize(swag_samples))

    if method == "sghmc":
        burn_in = _get(cfg, "burn_in_epochs", 1) * steps_per_epoch
        thinning = _get(cfg, "thinning_steps", steps_per_epoch)
        needed = burn_in + (num_samples - 1) * thinning + 1
        if needed > num_epochs * steps_per_epoch:
            raise ValueError(
                f"SGHMC needs {needed} steps for burn-in plus {num_samples} samples every "
                f"{thinning} steps, but {num_epochs} epochs give {num_epochs * steps_per_epoch}; "
                "raise num_epochs, or lower num_samples, thinning_steps or burn_in_epochs."
            )
        sampler = optax.chain(
            gamma_prior_precision(
                alpha=_get(cfg, "prior_alpha", 1.0),
                beta=_get(cfg, "prior_beta", 1.0),
                num_data=num_train,
                resample_every=steps_per_epoch,
                seed=seed,
            ),
            sghmc(
                learning_rate=learning_rate,
                momentum_decay=_get(cfg, "momentum_decay", 0.05),
                num_burn_in_steps=burn_in,
                scale_grad=num_train,
                seed=seed + 1,
            ),
        )
        rest_opt = optimizer if cfg["rest"] == "point" else optax.set_to_zero()
        labels = jax.tree.map(lambda m: "chosen" if m else "rest", mask)
        combined = optax.multi_transform({"chosen": sampler, "rest": rest_opt}, labels)
        collecting = collect_samples(
            combined, start_step=burn_in, every_steps=thinning, num_samples=num_samples, mask=mask
        )

        def sghmc_samples(state, key):
            del key
            return collected_samples(state.opt_state)

        return Posterior(method, model, collecting, None, point_finalize(sghmc_samples))

    if method == "hmc":
        return Posterior(method, model, optimizer, None, _hmc_finalize(cfg, model, num_train))

    # Bayes by backprop.
    kl_weight = _get(cfg, "kl_weight", "per_batch")
    if kl_weight not in ("per_batch", "dataset"):
        raise ValueError(
            f"posterior.kl_weight must be 'per_batch' or 'dataset', got {kl_weight!r}."
        )
    prior = _bbb_prior(_get(cfg, "prior", {}))
    wrapped = bbb_model(
        model,
        pattern,
        prior,
        kl_per_example=(lambda batch: 1.0 / batch)
        if kl_weight == "per_batch"
        else (lambda _: 1.0 / num_train),
        mu_init=_get(cfg, "mu_init", "normal"),
        mu_std=_get(cfg, "mu_std", 0.1),
        rho_init=_get(cfg, "rho_init", -3.0),
    )
    if cfg["rest"] == "fixed":

        def labels(params):
            return {
                k: jax.tree.map(lambda _, k=k: "chosen" if k == "variational" else "rest", v)
                for k, v in params.items()
            }

        optimizer = optax.multi_transform(
            {"chosen": optimizer, "rest": optax.set_to_zero()}, labels
        )

    def finalize_bbb(state, key, train_batch):
        del train_batch
        variational = state.params["variational"]
        samples = bbb_lib.posterior_samples(key, variational, num_samples)
        rest = state.params.get("point", {})
        return stack_samples(samples, rest, state.model_state), {"prior": prior._asdict()}

    return Posterior(method, wrapped, optimizer, None, finalize_bbb)


def _hmc_finalize(cfg: Mapping[str, Any], model: Model, num_train: int):
    """NUTS/HMC over the chosen parameters, started at the trained point estimate."""
    pattern = cfg["filter"]
    n = _get(cfg, "data", 1000) or num_train
    if not 1 <= n <= num_train:
        raise ValueError(f"posterior.data must be in [0, {num_train}] (0 = all), got {n}.")
    prior_std = float(_get(cfg, "prior_std", 1.0))
    latent_samples = int(_get(cfg, "latent_samples", 1))
    thinning = int(_get(cfg, "thinning", 1))

    def finalize(state, key, train_batch):
        batch = train_batch(n)
        rest = subset.reject(state.params, pattern)
        loss_keys = jax.random.split(jax.random.fold_in(key, 1), latent_samples)

        def potential(theta):
            params = subset.combine(theta, rest)

            def data_term(loss_key):
                variables = merge_variables(params, state.model_state)
                losses, _ = model.loss(variables, batch, key=loss_key, train=False)
                return jnp.sum(losses)

            nll = jnp.mean(jax.vmap(data_term)(loss_keys)) * (num_train / n)
            squares = sum(jnp.sum(x**2) for x in jax.tree.leaves(theta))
            return nll + 0.5 * squares / prior_std**2

        samples, diagnostics = run_nuts(
            potential,
            subset.select(state.params, pattern),
            jax.random.fold_in(key, 2),
            num_warmup=int(_get(cfg, "num_warmup", 500)),
            num_samples=cfg["num_samples"] * thinning // int(_get(cfg, "num_chains", 1)),
            thinning=thinning,
            num_chains=int(_get(cfg, "num_chains", 1)),
            algorithm=_get(cfg, "algorithm", "nuts"),
            target_accept_prob=float(_get(cfg, "target_accept_prob", 0.8)),
            max_tree_depth=int(_get(cfg, "max_tree_depth", 10)),
        )
        meta = {"diagnostics": diagnostics, "potential_data": n, "prior_std": prior_std}
        return stack_samples(samples, rest, state.model_state), meta

    return finalize


def _bbb_prior(cfg: Mapping[str, Any]):
    cfg = dict(cfg)
    if "sigma" in cfg:
        if set(cfg) != {"sigma"}:
            raise ValueError(f"A Gaussian BBB prior takes only 'sigma', got {sorted(cfg)}.")
        return bbb_lib.GaussianPrior(float(cfg["sigma"]))
    unknown = sorted(set(cfg) - {"pi", "sigma1", "sigma2"})
    if unknown:
        raise ValueError(f"Unknown BBB prior options {unknown}; use pi, sigma1, sigma2 or sigma.")
    return bbb_lib.ScaleMixturePrior(
        pi=float(_get(cfg, "pi", 0.5)),
        sigma1=float(cfg.get("sigma1", 1.0)),
        sigma2=float(cfg.get("sigma2", math.exp(-6.0))),
    )


def bbb_model(
    model: Model,
    pattern: str,
    prior,
    *,
    kl_per_example: Callable[[int], float],
    mu_init: str = "normal",
    mu_std: float = 0.1,
    rho_init: float = -3.0,
) -> Model:
    """``model`` with a mean-field Gaussian q(theta) over the parameters matching ``pattern``.

    Parameters: ``{"variational": {"mu", "rho"}, "point": rest}``. Per step one theta ~ q is
    drawn (reparameterised) and the per-example loss becomes
    ``loss_i(theta) + kl_per_example(B) * (log q(theta) - log p(theta))`` (eq. 3.8, negated, with
    the weight KL spread over the batch). Validation uses the same one-sample loss; every
    capability of ``model`` (scores, logits, log_likelihood, encode, ...) is kept and evaluates
    at the variational mean.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxrobust.inference.bbb import GaussianPrior
        >>> from jaxrobust.models import build_model
        >>> cnn = build_model("classifier", {"network": "small_cnn"}, (28, 28, 1), 10)
        >>> bayes = bbb_model(cnn, "^Dense_1/", GaussianPrior(1.0), kl_per_example=lambda b: 1 / b)
        >>> v = bayes.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
        >>> sorted(v["params"]), bayes.logits(v, jnp.zeros((2, 28, 28, 1))).shape
        (['point', 'variational'], (2, 10))
    """

    def init(key, images):
        params, state = split_variables(model.init(key, images))
        chosen = subset.select(params, pattern)
        rest = subset.reject(params, pattern)
        variational = bbb_lib.mean_field_init(
            jax.random.fold_in(key, 17), chosen, mu_init=mu_init, mu_std=mu_std, rho_init=rho_init
        )
        new = {"variational": variational, **({"point": rest} if rest else {})}
        return merge_variables(new, state)

    def loss(variables, batch, *, key, train=False):
        params, state = split_variables(variables)
        theta, kl = bbb_lib.kl_estimate(jax.random.fold_in(key, 23), params["variational"], prior)
        full = subset.combine(theta, params.get("point", {}))
        losses, (metrics, state) = model.loss(
            merge_variables(full, state), batch, key=key, train=train
        )
        weight_kl = kl * kl_per_example(losses.shape[0])
        losses = losses + weight_kl
        metrics = {**metrics, "weight_kl": jnp.broadcast_to(kl, losses.shape), "loss": losses}
        return losses, (metrics, state)

    def at_mean(variables):
        params, state = split_variables(variables)
        mean = subset.combine(params["variational"]["mu"], params.get("point", {}))
        return merge_variables(mean, state)

    # Every capability (scores' outputs, logits, log_likelihood, encode, ...) at the mean.
    return with_variables_transform(model, at_mean)._replace(init=init, loss=loss)


for _method, _options in _OPTIONS.items():
    register_posterior(
        _method, _build_builtin, options=_options, schema=sections.POSTERIOR_SCHEMAS[_method]
    )

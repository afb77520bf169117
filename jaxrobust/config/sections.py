"""The schema of every config section (see :mod:`jaxrobust.config.schema` for the rules).

The layout::

    name, seed, progress
    data: name, validation_split, validation_size, validation_seed, train_limit,
          validation_limit, preprocess {Preprocess fields}
    models:
      <name>: kind, architecture {the kind's schema}, training {batch_size, num_epochs,
              eval_batch_size, optimizer {...}, best_metric, best_mode, num_runs,
              posterior {method, filter, rest, num_samples, the method's options},
              adversarial_training {...}}
    evaluate: checkpoint, batch_size, test_limit, <task> {the task's schema}

Model kinds, posterior methods and evaluation tasks register their own schemas (e.g.
``register_model("vae", build, schema=VAE_ARCHITECTURE)``); :func:`jaxrobust.config.resolve_config`
puts them together. A key whose default is None and whose help says "derived" is computed by
the code that reads it (e.g. SWAG's ``start_epoch``).

Every numeric key has a declared range (``minimum``/``maximum`` inclusive, ``above``/``below``
exclusive; floats must also be finite): counts are >= 1, limits >= 0 (0 = all), rates and
scales > 0, probabilities and decays in their unit interval, seeds in ``[0, SEED_MAX]``.
"""

from __future__ import annotations

import math
import re

from jaxrobust.config.schema import INT_LIMIT, REQUIRED, Field, Schema, validate_section
from jaxrobust.data import dataset_info, known_datasets
from jaxrobust.data.errors import UnknownDatasetError
from jaxrobust.data.preprocess import RESIZE_MODES, Preprocess
from jaxrobust.errors import ConfigError
from jaxrobust.registry import NETWORKS, UnknownNameError, unknown_name_message
from jaxrobust.sweep import check_sweep_section

#: The largest seed: ``jax.random.key`` keeps 32 bits (without x64, seed 2**32 is seed 0), and
#: seeds ``seed + r`` (runs, members, evaluation) must stay distinct.
SEED_MAX = 2**31 - 1
#: The most runs or ensemble members trained as one program.
MAX_RUNS = 4096
#: The largest layer width, latent size or image side an architecture may ask for.
MAX_SIZE = 2**16


def seed_field(**kwargs) -> Field:
    """The :class:`Field` of a seed: an integer in ``[0, SEED_MAX]`` (default 0).

    Examples:
      >>> seed_field().maximum == SEED_MAX
      True
    """
    return Field(int, kwargs.pop("default", 0), minimum=0, maximum=SEED_MAX, **kwargs)


# --- custom checks -----------------------------------------------------------------------------


def positive(value: float, path: str) -> float:
    """``value`` if it is > 0 and finite, else a ConfigError naming ``path``.

    (The built-in schemas declare ``above=0.0`` instead; this check is kept for registered ones.)

    Examples:
      >>> positive(0.5, "config.lr")
      0.5
    """
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{path} must be > 0, got {value!r}.")
    return value


def known_dataset(value: str, path: str) -> str:
    """``value`` if :func:`jaxrobust.data.dataset_info` knows it (closest match otherwise).

    Examples:
      >>> known_dataset("mnist", "config.data.name")
      'mnist'
    """
    try:
        dataset_info(value)
    except UnknownDatasetError:
        raise UnknownNameError(
            unknown_name_message("dataset", value, known_datasets(), path)
        ) from None
    return value


def _regex(value: str, path: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ConfigError(f"{path} must be a regular expression, got {value!r}: {err}.") from None
    return value


def _size_or_fraction(value: int | float, path: str) -> int | float:
    if isinstance(value, int) and value >= 1:
        return value
    if isinstance(value, float) and 0 < value < 1:
        return value
    if isinstance(value, int) and value > INT_LIMIT:
        raise ConfigError(f"{path} must be at most {INT_LIMIT}, got {value!r}.")
    raise ConfigError(
        f"{path} must be a number of examples (an integer >= 1) or a fraction of the training "
        f"split (a float in (0, 1)), got {value!r}."
    )


def _preprocess(value: dict, path: str) -> dict:
    try:
        Preprocess.from_config(value)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path}: {err}") from None
    return value


def _data_section(value: dict, path: str) -> dict:
    """The preprocessing fits the dataset's images (e.g. no zero-padding down to a smaller size)."""
    try:
        Preprocess.from_config(value["preprocess"]).output_shape(
            dataset_info(value["name"]).image_shape
        )
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"{path}.preprocess does not fit {value['name']!r} images: {err}"
        ) from None
    return value


def _registered_network(value: str, path: str) -> str:
    NETWORKS.get(value, where=path)
    return value


def _checkpoint(value: str | int, path: str) -> str | int:
    if value in ("best", "last") or (isinstance(value, int) and value >= 1):
        return value
    raise ConfigError(f"{path} must be 'best', 'last' or an epoch number >= 1, got {value!r}.")


def _score_ref(value: str, path: str) -> str:
    model, _, score = value.partition("/")
    if not model or not score or "/" in score:
        raise ConfigError(
            f"{path} must look like 'model/score' (a key of config.models and one of its "
            f"scores, e.g. 'vae/elbo'), got {value!r}."
        )
    return value


def check_domain(value, path: str):
    if value is None:
        return None
    if len(value) != 2 or not float(value[0]) < float(value[1]):
        raise ConfigError(
            f"{path} must be (low, high) with low < high (the input range after "
            f"preprocessing), or None for an unbounded input space; got {value!r}."
        )
    return value


def _negatives(value: dict, path: str) -> dict:
    if value["source"] == "dataset" and not value.get("dataset"):
        raise ConfigError(
            f"{path}.source is 'dataset' but negatives.dataset is not set: name the auxiliary "
            f"dataset, e.g. {path}.dataset='emnist_letters' (known: {known_datasets()})."
        )
    return value


# --- data --------------------------------------------------------------------------------------

_PP = Preprocess._field_defaults

#: ``config.data.preprocess``: the fields of :class:`jaxrobust.data.preprocess.Preprocess`.
PREPROCESS: Schema = {
    "scale": Field(bool, _PP["scale"], help="map uint8 [0, 255] to float [0, 1]"),
    "mean": Field((list, tuple), _PP["mean"], items=Field(float), help="per-channel mean"),
    "std": Field((list, tuple), _PP["std"], items=Field(float, above=0.0), help="per-channel std"),
    "resize_to": Field(
        int, _PP["resize_to"], minimum=1, maximum=MAX_SIZE, help="target height/width"
    ),
    "resize_mode": Field(str, _PP["resize_mode"], choices=RESIZE_MODES),
    "crop_padding": Field(
        int, _PP["crop_padding"], minimum=0, maximum=MAX_SIZE, help="random-crop padding"
    ),
    "horizontal_flip": Field(bool, _PP["horizontal_flip"]),
}

#: ``config.data``.
DATA: Schema = {
    "name": Field(str, REQUIRED, check=known_dataset, help="the training dataset"),
    "validation_split": Field(
        str, "train", choices=("train", "test"), help="'train': carved from the training split"
    ),
    "validation_size": Field(
        (int, float), 5000, check=_size_or_fraction, help="examples (int) or fraction (float)"
    ),
    "validation_seed": seed_field(help="the carve of the validation split"),
    "train_limit": Field(int, 0, minimum=0, help="0 = all"),
    "validation_limit": Field(int, 0, minimum=0, help="0 = all"),
    "preprocess": Field(dict, {}, schema=PREPROCESS, check=_preprocess),
    "feed": Field(
        str,
        "auto",
        choices=("auto", "device", "host"),
        help="device: the dataset on the devices, batches gathered in the jitted epoch; host: "
        "each process puts only its shard of every batch on its devices; auto: host with "
        "several processes (jaxrobust.train.feed)",
    ),
}

# --- models: architectures ---------------------------------------------------------------------

NEGATIVE_SOURCES = ("none", "dataset", "uniform_noise", "data_noise", "generated")

#: ``architecture.negatives`` of a VAE (negative sampling, jaxrobust/models/vae.py).
NEGATIVES: Schema = {
    "source": Field(str, "none", choices=NEGATIVE_SOURCES),
    "shift": Field(float, 8.0, help="mean s of the negative prior N(s * 1, I)"),
    "sigma": Field(float, 0.25, minimum=0.0, help="data_noise standard deviation"),
    "generator_weight": Field(float, 1.0, minimum=0.0),
    "clip": Field(bool, True, help="data_noise: clip to [0, 1]"),
    "dataset": Field(str, None, check=known_dataset, help="the auxiliary dataset of 'dataset'"),
}

_FEATURES = Field(int, minimum=1, maximum=MAX_SIZE)

#: ``architecture.compute_dtype`` names (``jaxrobust.nn.COMPUTE_DTYPES`` maps them to dtypes).
COMPUTE_DTYPES = ("float32", "bfloat16")
_COMPUTE_DTYPE = Field(
    str,
    "float32",
    choices=COMPUTE_DTYPES,
    help="bfloat16: convolutions and dense layers in bfloat16, parameters, batch-norm "
    "statistics and the loss in float32",
)

#: ``architecture`` of model kind ``vae`` (what ``make_vae`` takes).
VAE_ARCHITECTURE: Schema = {
    "latent_dim": Field(int, REQUIRED, minimum=1, maximum=MAX_SIZE),
    "latent": Field(str, "gaussian", help="the latent family q(z|x)"),
    "network": Field(str, "conv", help="a VAE encoder/decoder pair of jaxrobust.nn"),
    "network_options": Field(dict, {}),
    "encoder_features": Field((list, tuple), (32, 64), items=_FEATURES),
    "decoder_features": Field((list, tuple), (64, 32), items=_FEATURES),
    "observation": Field(str, "bernoulli", help="the observation model p(x|z)"),
    "observation_options": Field(dict, {}),
    "negatives": Field(dict, {}, schema=NEGATIVES, check=_negatives),
    "iwae_samples": Field(int, 100, minimum=1),
    "iwae_chunk": Field(int, 50, minimum=1),
    "iwae_repeats": Field(int, 5, minimum=1),
    "compute_dtype": _COMPUTE_DTYPE,
}

#: ``architecture`` of model kind ``classifier``.
CLASSIFIER_ARCHITECTURE: Schema = {
    "network": Field(str, REQUIRED, check=_registered_network, help="a registered network"),
    "network_options": Field(dict, {}),
    "compute_dtype": _COMPUTE_DTYPE,
    "label_smoothing": Field(
        float,
        0.0,
        minimum=0.0,
        below=1.0,
        help="cross-entropy against (1 - a) one_hot + a / C (CleverHans tutorials: 0.1)",
    ),  # fmt: skip
}

# --- models: training --------------------------------------------------------------------------

OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "rmsprop")

#: ``training.optimizer`` (jaxrobust/train/optim.py).
OPTIMIZER: Schema = {
    "name": Field(str, "adam", choices=OPTIMIZER_NAMES),
    "learning_rate": Field(float, 1e-3, above=0.0),
    "b1": Field(float, 0.9, minimum=0.0, below=1.0, help="adam; 1 divides by zero"),
    "b2": Field(float, 0.999, minimum=0.0, below=1.0, help="adam; 1 divides by zero"),
    "weight_decay": Field(float, 1e-4, minimum=0.0, help="adamw"),
    "momentum": Field(float, None, minimum=0.0, below=1.0, help="sgd; None or 0: none"),
    "decay": Field(float, 0.9, minimum=0.0, below=1.0, help="rmsprop"),
    "decay_every_epochs": Field(
        int, None, minimum=0, help="lr * decay_factor^(epoch // decay_every_epochs); None, 0: off"
    ),
    "decay_factor": Field(float, 0.1, above=0.0),
    "alternate": Field(
        (list, tuple), (), items=Field(str), help="parameter groups updated in turn"
    ),
}

#: ``training.adversarial_training`` (jaxrobust/train/adversarial.py).
ADVERSARIAL_TRAINING: Schema = {
    "epsilon": Field(float, REQUIRED, minimum=0.0, help="the ball radius"),
    "num_steps": Field(int, REQUIRED, minimum=1, help="PGD steps"),
    "step_size": Field(float, None, above=0.0, help="derived: None = 2.5 * epsilon / num_steps"),
    "random_start": Field(bool, True),
    "norm": Field(str, "linf", choices=("linf", "l2")),
    "domain": Field(
        (list, tuple, type(None)), (0.0, 1.0), items=Field(float), check=check_domain,
        help="input range after preprocessing; None = unbounded",
    ),
    "fraction": Field(float, 1.0, minimum=0.0, maximum=1.0, help="share of a batch attacked"),
    "epsilon_ramp_steps": Field(int, 0, minimum=0, help="0 = no ramp"),
}  # fmt: skip

#: Keys every posterior section has (a method's schema may redefine them).
POSTERIOR_COMMON: Schema = {
    "method": Field(str, REQUIRED, help="a registered posterior method"),
    "filter": Field(str, ".*", check=_regex, help="regex on parameter paths"),
    "rest": Field(str, "point", choices=("point", "fixed")),
    "num_samples": Field(int, 200, minimum=2, help="posterior samples written"),
}

#: ``posterior.prior`` of ``bbb``: a scale mixture (pi, sigma1, sigma2) or a Gaussian (sigma).
BBB_MIXTURE_PRIOR: Schema = {
    "pi": Field(float, 0.5, minimum=0.0, maximum=1.0),
    "sigma1": Field(float, 1.0, above=0.0),
    "sigma2": Field(float, math.exp(-6.0), above=0.0),
}
BBB_GAUSSIAN_PRIOR: Schema = {"sigma": Field(float, REQUIRED, above=0.0)}


def _bbb_prior(value: dict, path: str) -> dict:
    schema = BBB_GAUSSIAN_PRIOR if "sigma" in value else BBB_MIXTURE_PRIOR
    if "sigma" in value and set(value) != {"sigma"}:
        raise ConfigError(
            f"{path}: a Gaussian prior takes only 'sigma' (a scale mixture takes pi, sigma1, "
            f"sigma2), got {sorted(value)}."
        )
    return validate_section(value, schema, path)


#: The options of each built-in posterior method (jaxrobust/inference/methods.py).
POSTERIOR_SCHEMAS: dict[str, Schema] = {
    "ensemble": {
        "members": Field(
            int, REQUIRED, minimum=2, maximum=MAX_RUNS, help="independent initialisations"
        ),
        "filter": Field(
            str, ".*", choices=(".*",), help="An ensemble trains every parameter of each member."
        ),
        "num_samples": Field(int, None, minimum=2, maximum=MAX_RUNS, help="derived: = members"),
    },
    "swag": {
        "start_epoch": Field(int, None, minimum=1, help="derived: None = num_epochs - 39"),
        "every_steps": Field(int, 0, minimum=0, help="0 = once per epoch"),
        "rank": Field(int, 40, minimum=1),
        "scale": Field(float, 0.5, minimum=0.0),
        "low_rank": Field(bool, True),
    },
    "sghmc": {
        "momentum_decay": Field(float, 0.05, minimum=0.0, maximum=1.0),
        "burn_in_epochs": Field(int, 1, minimum=0),
        "thinning_steps": Field(int, None, minimum=1, help="derived: None = steps per epoch"),
        "prior_alpha": Field(float, 1.0, above=0.0),
        "prior_beta": Field(float, 1.0, above=0.0),
    },
    "bbb": {
        "prior": Field(dict, {}, check=_bbb_prior),
        "kl_weight": Field(str, "per_batch", choices=("per_batch", "dataset")),
        "mu_init": Field(str, "normal", choices=("normal", "params")),
        "mu_std": Field(float, 0.1, minimum=0.0),
        "rho_init": Field(float, -3.0),
    },
    "hmc": {
        "num_warmup": Field(int, 500, minimum=0),
        "thinning": Field(int, 1, minimum=1),
        "num_chains": Field(int, 1, minimum=1),
        "algorithm": Field(str, "nuts", choices=("nuts", "hmc")),
        "target_accept_prob": Field(float, 0.8, above=0.0, below=1.0),
        "max_tree_depth": Field(int, 10, minimum=1),
        "prior_std": Field(float, 1.0, above=0.0),
        "data": Field(int, 1000, minimum=0, help="training images in the potential; 0 = all"),
        "latent_samples": Field(int, 1, minimum=1),
    },
}


def check_posterior(value: dict | None, path: str) -> dict | None:
    """Checks across the keys of a validated posterior section (ensemble, HMC).

    Examples:
      >>> check_posterior({"method": "hmc", "num_samples": 4, "num_chains": 2}, "config.p")
      {'method': 'hmc', 'num_samples': 4, 'num_chains': 2}
    """
    if value is None:
        return None
    method = value.get("method")
    if method == "ensemble":
        given = value.get("num_samples")
        if given is not None and given != value.get("members"):
            raise ConfigError(
                f"{path}.num_samples ({given}) must equal members ({value.get('members')}) for "
                "an ensemble (each member is one sample); leave it out."
            )
    samples, chains = value.get("num_samples"), value.get("num_chains") or 1
    if method == "hmc" and isinstance(samples, int) and samples % chains:
        raise ConfigError(
            f"{path}.num_samples ({value['num_samples']}) must be a multiple of num_chains "
            f"({value.get('num_chains', 1)})."
        )
    return value


def check_training(value: dict, path: str) -> dict:
    """Checks across the keys of a validated training section (SWAG's start epoch).

    Examples:
      >>> check_training({"num_epochs": 3, "posterior": None}, "config.models.m.training")
      {'num_epochs': 3, 'posterior': None}
    """
    posterior = value.get("posterior") or {}
    start = posterior.get("start_epoch") if posterior.get("method") == "swag" else None
    if start is not None and start > value["num_epochs"]:
        raise ConfigError(
            f"{path}.posterior.start_epoch must be in [1, num_epochs={value['num_epochs']}], "
            f"got {start}."
        )
    if value.get("sweep") and value.get("posterior"):
        raise ConfigError(
            f"{path}: a sweep and a posterior section cannot be combined yet; train the sweep "
            "as point models (drop posterior) or the posterior per setting."
        )
    burn_in = posterior.get("burn_in_epochs") if posterior.get("method") == "sghmc" else None
    if burn_in is not None and burn_in >= value["num_epochs"]:
        raise ConfigError(
            f"{path}.posterior.burn_in_epochs ({burn_in}) must be < num_epochs "
            f"({value['num_epochs']}): no sample would be collected after the burn-in; raise "
            "num_epochs or lower burn_in_epochs."
        )
    return value


#: ``models.<name>.training`` (``posterior`` is completed by the method's schema at resolve).
TRAINING: Schema = {
    "batch_size": Field(int, REQUIRED, minimum=1),
    "num_epochs": Field(int, REQUIRED, minimum=1),
    "eval_batch_size": Field(int, 1000, minimum=1),
    "optimizer": Field(dict, {}, schema=OPTIMIZER),
    "best_metric": Field(str, "val/loss", help="the metric that picks the best checkpoint"),
    "best_mode": Field(str, "min", choices=("min", "max")),
    "num_runs": Field(int, None, minimum=1, maximum=MAX_RUNS, help="seeds trained as one program"),
    "sweep": Field(
        dict,
        None,
        check=check_sweep_section,
        help="loss weights stacked as one program: {name: [values]} (jaxrobust.sweep)",
    ),  # fmt: skip
    "posterior": Field(dict, None, check=check_posterior),
    "adversarial_training": Field(dict, None, schema=ADVERSARIAL_TRAINING),
}

#: ``models.<name>`` (``architecture`` is the kind's schema at resolve).
MODEL: Schema = {
    "kind": Field(str, REQUIRED, help="a registered model kind"),
    "architecture": Field(dict, {}),
    "training": Field(dict, REQUIRED, schema=TRAINING, check=check_training),
}

# --- evaluate ----------------------------------------------------------------------------------

#: The keys of ``config.evaluate`` that are not tasks.
EVALUATE: Schema = {
    "checkpoint": Field((str, int), "best", check=_checkpoint, help="'best', 'last' or an epoch"),
    "batch_size": Field(int, 1000, minimum=1),
    "test_limit": Field(int, 0, minimum=0, help="0 = whole test sets"),
}

#: ``evaluate.classification``.
CLASSIFICATION_TASK: Schema = {
    "models": Field((list, tuple), REQUIRED, items=Field(str), help="keys of config.models"),
    "ece_bins": Field(int, 15, minimum=1),
}

#: ``evaluate.ood``.
OOD_TASK: Schema = {
    "out_datasets": Field((list, tuple), [], items=Field(str, check=known_dataset)),
    "scores": Field((list, tuple), [], items=Field(str, check=_score_ref), help="'model/score'"),
    "positive": Field(str, "in", choices=("in", "out", "higher")),
}


#: ``evaluate.intensity_scaling`` (dissertation Table 4.8).
INTENSITY_TASK: Schema = {
    "models": Field((list, tuple), REQUIRED, items=Field(str), help="keys of config.models"),
    "score": Field(str, "hole_indicator", help="a score of each model's table"),
    "dataset": Field(str, REQUIRED, check=known_dataset, help="the outliers, scaled"),
    "scales": Field(
        (list, tuple), [1, 3, 5, 7, 9, 11, 13, 15], items=Field(float, above=0.0, maximum=1e6)
    ),
    "positive": Field(str, "out", choices=("in", "out")),
}


def _at_least_one(value: dict, path: str) -> dict:
    if not value:
        raise ConfigError(
            f"{path} is empty: give at least one model, e.g. {path}.vae = "
            "{'kind': 'vae', 'architecture': {...}, 'training': {...}}."
        )
    return value


#: The top level (``models`` and ``evaluate`` are completed by the registries at resolve).
CONFIG: Schema = {
    "name": Field(str, ""),
    "seed": seed_field(help="training seed; run r of num_runs uses seed + r"),
    "progress": Field(bool, True),
    "data": Field(dict, REQUIRED, schema=DATA, check=_data_section),
    "models": Field(dict, REQUIRED, check=_at_least_one, help="name -> model section"),
    "evaluate": Field(dict, {}, schema=EVALUATE),
}

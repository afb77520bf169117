"""Configs are validated once, at load, against a schema per section (jaxrobust.config).

Every section refuses a typo with the key's path and the closest known key; types and ranges are
checked; defaults are filled in; resolving is idempotent. No training here: the file is fast.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import ml_collections
import pytest

from jaxrobust.config import (
    REQUIRED,
    Field,
    apply_overrides,
    load_config,
    load_workdir_config,
    resolve_config,
    save_config,
    sections,
    validate_section,
)
from jaxrobust.config import resolve as resolve_module
from jaxrobust.data.preprocess import Preprocess
from jaxrobust.errors import ConfigError
from jaxrobust.registry import EVALUATIONS, MODELS, NETWORKS, POSTERIORS

BASE = {
    "name": "schema_test",
    "data": {"name": "mnist"},
    "models": {
        "vae": {
            "kind": "vae",
            "architecture": {"latent_dim": 4},
            "training": {"batch_size": 8, "num_epochs": 2},
        },
        "classifier": {
            "kind": "classifier",
            "architecture": {"network": "small_cnn"},
            "training": {"batch_size": 8, "num_epochs": 2},
        },
    },
    "evaluate": {
        "classification": {"models": ["classifier"]},
        "ood": {"out_datasets": ["fashion_mnist"], "scores": ["vae/elbo"]},
    },
}

_BUILTIN = [
    (MODELS, "vae", sections.VAE_ARCHITECTURE),
    (MODELS, "classifier", sections.CLASSIFIER_ARCHITECTURE),
    (EVALUATIONS, "classification", sections.CLASSIFICATION_TASK),
    (EVALUATIONS, "ood", sections.OOD_TASK),
    *[(POSTERIORS, m, schema) for m, schema in sections.POSTERIOR_SCHEMAS.items()],
]


@pytest.fixture(autouse=True)
def registries(monkeypatch):
    """The built-in kinds, methods and tasks with the section schemas.

    The packages register them on import; an entry still missing (or registered without a
    schema) is stood in for here, for this test only.
    """
    resolve_module._load_registrations()
    for registry, name, schema in _BUILTIN:
        entry = registry._entries.get(name)
        if entry is None or getattr(entry, "schema", None) is None:
            stand_in = (
                entry._replace(schema=schema)
                if hasattr(entry, "_replace")
                else SimpleNamespace(schema=schema)
            )
            monkeypatch.setitem(registry._entries, name, stand_in)
    if "small_cnn" not in NETWORKS:
        monkeypatch.setitem(NETWORKS._entries, "small_cnn", object())


def with_value(base: dict, dotted: str, value) -> dict:
    """A deep copy of ``base`` with ``dotted`` set to ``value`` (sections created as needed)."""
    out = copy.deepcopy(base)
    *parents, leaf = dotted.split(".")
    node = out
    for name in parents:
        node = node.setdefault(name, {})
    node[leaf] = value
    return out


def without(base: dict, dotted: str) -> dict:
    out = copy.deepcopy(base)
    *parents, leaf = dotted.split(".")
    node = out
    for name in parents:
        node = node[name]
    del node[leaf]
    return out


def config_file(tmp_path, config: dict, name: str = "config.py"):
    path = tmp_path / name
    path.write_text(f"def get_config():\n    return {config!r}\n")
    return path


# --- a typo in every section fails at load, naming the key and the closest match ---------------

ADVERSARIAL = {"epsilon": 0.3, "num_steps": 3}
TYPOS = [
    # (section set up first, or None; the section's path; the typo; the key meant)
    (None, "", "progres", "progress"),
    (None, "data", "validaton_size", "validation_size"),
    (None, "data.preprocess", "scal", "scale"),
    (None, "models.vae", "architecure", "architecture"),
    (None, "models.vae.architecture", "obsrvation", "observation"),
    (None, "models.vae.architecture.negatives", "sigm", "sigma"),
    (None, "models.classifier.architecture", "netwrok", "network"),
    (None, "models.vae.training", "num_epoch", "num_epochs"),
    (None, "models.vae.training.optimizer", "lerning_rate", "learning_rate"),
    (
        ("models.classifier.training.adversarial_training", ADVERSARIAL),
        "models.classifier.training.adversarial_training",
        "step_sise",
        "step_size",
    ),
    (
        ("models.vae.training.posterior", {"method": "ensemble", "members": 2}),
        "models.vae.training.posterior",
        "member",
        "members",
    ),
    (
        ("models.vae.training.posterior", {"method": "swag"}),
        "models.vae.training.posterior",
        "start_epochs",
        "start_epoch",
    ),
    (
        ("models.vae.training.posterior", {"method": "sghmc"}),
        "models.vae.training.posterior",
        "momentum_decy",
        "momentum_decay",
    ),
    (
        ("models.vae.training.posterior", {"method": "bbb"}),
        "models.vae.training.posterior",
        "kl_weigth",
        "kl_weight",
    ),
    (
        ("models.vae.training.posterior", {"method": "bbb", "prior": {}}),
        "models.vae.training.posterior.prior",
        "sigma_1",
        "sigma1",
    ),
    (
        ("models.vae.training.posterior", {"method": "hmc"}),
        "models.vae.training.posterior",
        "num_warmups",
        "num_warmup",
    ),
    (None, "evaluate", "batch_sise", "batch_size"),
    (None, "evaluate", "classificaton", "classification"),
    (None, "evaluate.classification", "ece_bin", "ece_bins"),
    (None, "evaluate.ood", "score", "scores"),
]


@pytest.mark.parametrize(
    "setup, section, typo, meant", TYPOS, ids=[f"{s or 'config'}.{t}" for _, s, t, _ in TYPOS]
)
def test_a_typo_in_any_section_fails_at_load_with_the_closest_key(
    tmp_path, setup, section, typo, meant
):
    config = with_value(BASE, *setup) if setup else copy.deepcopy(BASE)
    dotted = f"{section}.{typo}" if section else typo
    path = config_file(tmp_path, with_value(config, dotted, 1))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    where = f"config.{section}" if section else "config"
    assert f"'{typo}' in {where};" in message, message
    assert f"did you mean '{meant}'?" in message, message


@pytest.mark.parametrize(
    "key, value, home",
    [
        ("num_epochs", 3, "training"),
        ("optimizer", {}, "training"),
        ("latent_dim", 4, "architecture"),
    ],
)
def test_a_key_of_the_old_flat_model_layout_is_sent_to_its_section(key, value, home):
    with pytest.raises(ConfigError, match=rf"move it to config\.models\.vae\.{home}\.{key}"):
        resolve_config(with_value(BASE, f"models.vae.{key}", value))


# --- missing keys, types and ranges ------------------------------------------------------------


@pytest.mark.parametrize(
    "dotted",
    [
        "data.name",
        "models.vae.kind",
        "models.vae.architecture.latent_dim",
        "models.classifier.architecture.network",
        "models.vae.training",
        "models.vae.training.batch_size",
        "models.vae.training.num_epochs",
        "evaluate.classification.models",
    ],
)
def test_a_missing_required_key_is_named(dotted):
    with pytest.raises(ConfigError, match=rf"config\.{dotted} is required"):
        resolve_config(without(BASE, dotted))


@pytest.mark.parametrize(
    "dotted, value, match",
    [
        ("seed", -1, r"config\.seed must be a non-negative integer.*got -1"),
        ("seed", "0", r"config\.seed must be a non-negative integer.*got '0' \(str\)"),
        ("progress", 1, r"config\.progress must be True or False"),
        ("data.train_limit", -1, r"data\.train_limit must be a non-negative integer"),
        ("data.validation_limit", -5, r"data\.validation_limit must be a non-negative integer"),
        ("data.validation_size", 1.5, r"validation_size must be a number of examples"),
        ("data.validation_size", 0, r"validation_size must be a number of examples"),
        ("data.validation_split", "val", r"validation_split must be one of \['train', 'test'\]"),
        ("data.preprocess.crop_padding", -2, r"crop_padding must be a non-negative integer"),
        ("data.preprocess.mean", [0.5], r"data\.preprocess: Give both mean and std"),
        ("models.vae.training.num_epochs", 0, r"num_epochs must be a positive integer, got 0"),
        ("models.vae.training.num_epochs", 2.0, r"num_epochs must be a positive integer.*float"),
        ("models.vae.training.num_epochs", True, r"num_epochs must be a positive integer.*bool"),
        ("models.vae.training.batch_size", 0, r"batch_size must be a positive integer, got 0"),
        ("models.vae.training.batch_size", None, r"batch_size must be a positive integer.*None"),
        ("models.vae.training.eval_batch_size", 0, r"eval_batch_size must be a positive"),
        ("models.vae.training.num_runs", 0, r"num_runs must be a positive integer"),
        ("models.vae.training.best_mode", "mni", r"did you mean 'min'"),
        ("models.vae.training.optimizer.learning_rate", 0.0, r"learning_rate must be a number > 0"),
        ("models.vae.training.optimizer.learning_rate", "fast", r"learning_rate must be a number"),
        ("models.vae.training.optimizer.name", "adamm", r"one of .*did you mean 'adam'"),
        ("models.vae.architecture.latent_dim", 0, r"latent_dim must be a positive integer"),
        ("models.vae.architecture.encoder_features", (8, 0), r"encoder_features\[1\] must be"),
        ("models.vae.architecture.negatives.source", "dataset", r"negatives.dataset is not set"),
        ("models.vae.architecture.negatives.dataset", "emnist_leters", r"mean 'emnist_letters'"),
        ("models.vae.kind", "vea", r"Unknown model kind 'vea' in config\.models\.vae\.kind"),
        ("models.classifier.architecture.network", "smal_cnn", r"did you mean 'small_cnn'"),
        ("models", {}, r"config\.models is empty"),
        ("data.name", "fashon_mnist", r"Unknown dataset .*did you mean 'fashion_mnist'"),
        ("evaluate.batch_size", 0, r"evaluate\.batch_size must be a positive integer"),
        ("evaluate.test_limit", -1, r"evaluate\.test_limit must be a non-negative integer"),
        ("evaluate.checkpoint", 0, r"checkpoint must be 'best', 'last' or an epoch"),
        ("evaluate.checkpoint", "bset", r"checkpoint must be 'best', 'last' or an epoch"),
        ("evaluate.classification.ece_bins", 0, r"ece_bins must be a positive integer"),
        (
            "evaluate.classification.models",
            ["clasifier"],
            r"models\[0\]; did you mean 'classifier'",
        ),
        ("evaluate.ood.scores", ["vea/elbo"], r"Unknown model 'vea'.*did you mean 'vae'"),
        ("evaluate.ood.scores", ["elbo"], r"scores\[0\] must look like 'model/score'"),
        ("evaluate.ood.out_datasets", ["mnsit"], r"did you mean 'mnist'"),
        ("evaluate.ood.positive", "inn", r"positive must be one of"),
        (
            "evaluate.rejection",
            {"models": ["classifier"], "percentiles": [0.0]},
            r"percentiles\[0\] must be a number in \(0, 100\), got 0.0",
        ),
        (
            "evaluate.rejection",
            {"models": ["classifier"], "percentiles": [1.0, 100.0]},
            r"percentiles\[1\] must be a number in \(0, 100\), got 100.0",
        ),
    ],
)
def test_wrong_types_and_values_out_of_range_are_refused(dotted, value, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config(with_value(BASE, dotted, value))


@pytest.mark.parametrize(
    "posterior, match",
    [
        ({"method": "swagg"}, r"Unknown posterior method 'swagg'.*did you mean 'swag'"),
        ({"rank": 2}, r"posterior\.method is required"),
        ({"method": "ensemble"}, r"posterior\.members is required"),
        ({"method": "ensemble", "members": 1}, r"members must be an integer >= 2"),
        ({"method": "ensemble", "members": 2, "filter": "^decoder/"}, r"every parameter"),
        ({"method": "swag", "start_epoch": 3}, r"start_epoch must be in \[1, num_epochs=2\]"),
        ({"method": "swag", "rest": "frozen"}, r"rest must be 'point' or 'fixed'"),
        ({"method": "swag", "filter": "("}, r"filter must be a regular expression"),
        ({"method": "sghmc", "num_samples": 1}, r"num_samples must be an integer >= 2"),
        ({"method": "bbb", "prior": {"sigma": 0.0}}, r"prior\.sigma must be a number > 0"),
        ({"method": "bbb", "prior": {"sigma": 1.0, "pi": 0.5}}, r"takes only 'sigma'"),
        ({"method": "hmc", "num_samples": 5, "num_chains": 2}, r"multiple of num_chains"),
        (
            {"method": "hmc", "target_accept_prob": 1.0},
            r"target_accept_prob must be a number in \(0, 1\)",
        ),
    ],
)
def test_posterior_sections_are_checked_per_method(posterior, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config(with_value(BASE, "models.vae.training.posterior", posterior))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({}, r"adversarial_training\.epsilon is required"),
        ({"epsilon": -0.1, "num_steps": 3}, r"epsilon must be a non-negative number"),
        ({"epsilon": 0.3, "num_steps": 0}, r"num_steps must be a positive integer"),
        ({**ADVERSARIAL, "fraction": 1.5}, r"fraction must be a number in \[0, 1\]"),
        ({**ADVERSARIAL, "norm": "l1"}, r"norm must be one of \['linf', 'l2'\]"),
        ({**ADVERSARIAL, "domain": (1.0, 0.0)}, r"domain must be \(low, high\) with low < high"),
    ],
)
def test_adversarial_training_section_is_checked(changes, match):
    config = with_value(BASE, "models.classifier.training.adversarial_training", changes)
    with pytest.raises(ConfigError, match=match):
        resolve_config(config)


# --- config files that do not load -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, match",
    [
        ("def get_config():\n    raise RuntimeError('no such thing')\n", r"raised RuntimeError"),
        ("def get_config():\n    return [1, 2]\n", r"must return an ml_collections.*got list"),
        ("import not_a_module_anywhere\n", r"failed to import: ModuleNotFoundError"),
        ("def get_config(:\n", r"failed to import: SyntaxError"),
        ("CONFIG = {}\n", r"must define get_config\(\)"),
    ],
)
def test_a_config_file_that_fails_is_reported_with_its_path(tmp_path, text, match):
    path = tmp_path / "broken_config.py"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        load_config(path)
    assert str(path) in str(err.value)


# --- defaults, idempotence, overrides ----------------------------------------------------------


def test_every_default_is_filled_in():
    config = with_value(BASE, "models.vae.training.posterior", {"method": "swag"})
    config = with_value(config, "models.classifier.training.adversarial_training", ADVERSARIAL)
    c = resolve_config(config)
    assert isinstance(c, ml_collections.ConfigDict)
    assert (c.seed, c.progress) == (0, True)
    assert c.data.validation_split == "train" and c.data.validation_size == 5000
    assert (c.data.validation_seed, c.data.train_limit, c.data.validation_limit) == (0, 0, 0)
    assert c.data.preprocess.to_dict() == Preprocess()._asdict()
    vae = c.models.vae
    assert vae.architecture.observation == "bernoulli" and vae.architecture.latent == "gaussian"
    assert tuple(vae.architecture.encoder_features) == (32, 64)
    assert vae.architecture.negatives.source == "none" and vae.architecture.iwae_samples == 100
    assert vae.training.eval_batch_size == 1000 and vae.training.num_runs is None
    assert (vae.training.best_metric, vae.training.best_mode) == ("val/loss", "min")
    assert vae.training.optimizer.name == "adam" and vae.training.optimizer.learning_rate == 1e-3
    posterior = vae.training.posterior
    assert (posterior.filter, posterior.rest, posterior.num_samples) == (".*", "point", 200)
    assert posterior.rank == 40 and posterior.start_epoch is None  # None: derived when read
    assert c.models.classifier.training.posterior is None
    adversarial = c.models.classifier.training.adversarial_training
    assert adversarial.norm == "linf" and tuple(adversarial.domain) == (0.0, 1.0)
    assert adversarial.step_size is None and adversarial.epsilon_ramp_steps == 0
    assert c.models.classifier.architecture.network_options.to_dict() == {}
    assert (c.evaluate.checkpoint, c.evaluate.batch_size, c.evaluate.test_limit) == (
        "best",
        1000,
        0,
    )
    assert c.evaluate.classification.ece_bins == 15 and c.evaluate.ood.positive == "in"


def test_a_section_under_another_name_runs_the_task_it_names():
    second = {"task": "classification", "models": ["classifier"], "ece_bins": 5}
    c = resolve_config(with_value(BASE, "evaluate.coarse_ece", second))
    assert c.evaluate.coarse_ece.ece_bins == 5 and c.evaluate.classification.ece_bins == 15
    assert c.evaluate.coarse_ece.task == "classification"
    with pytest.raises(ConfigError, match="coarse_ece.task.*'classification'"):
        resolve_config(with_value(BASE, "evaluate.coarse_ece", {**second, "task": "clasification"}))
    with pytest.raises(
        ConfigError, match="'ece_binz' in config.evaluate.coarse_ece"
    ):  # the task's schema applies
        resolve_config(with_value(BASE, "evaluate.coarse_ece", {**second, "ece_binz": 5}))
    with pytest.raises(ConfigError, match="no_task"):  # neither a task nor names one
        resolve_config(with_value(BASE, "evaluate.no_task", {"models": ["classifier"]}))


def test_bbb_prior_defaults_are_the_scale_mixture():
    config = with_value(BASE, "models.vae.training.posterior", {"method": "bbb"})
    prior = resolve_config(config).models.vae.training.posterior.prior
    assert prior.to_dict() == {"pi": 0.5, "sigma1": 1.0, "sigma2": pytest.approx(2.4787521e-3)}


def test_resolving_is_idempotent_and_survives_the_stored_json(tmp_path):
    config = with_value(BASE, "models.vae.training.posterior", {"method": "hmc"})
    once = resolve_config(config)
    assert resolve_config(once) == once
    save_config(once, tmp_path)
    restored = load_workdir_config(tmp_path)
    assert resolve_config(restored) == restored
    assert restored.to_json(sort_keys=True) == once.to_json(sort_keys=True)


def test_overrides_may_name_any_key_with_a_default(tmp_path):
    path = config_file(tmp_path, BASE)
    config = load_config(
        path,
        [
            "data.validation_size=100",  # not in the file: a default
            "models.vae.training.num_runs=3",  # default None
            "models.vae.training.optimizer.name=sgd",
            "evaluate.checkpoint=3",  # 'best' | 'last' | int: parsed by the field's types
            "evaluate.ood.positive=out",
        ],
    )
    assert config.data.validation_size == 100 and config.models.vae.training.num_runs == 3
    assert config.models.vae.training.optimizer.name == "sgd"
    assert config.evaluate.checkpoint == 3 and config.evaluate.ood.positive == "out"
    fraction = load_config(path, ["data.validation_size=0.25", "evaluate.checkpoint=last"])
    assert fraction.data.validation_size == 0.25 and fraction.evaluate.checkpoint == "last"


@pytest.mark.parametrize(
    "override, match",
    [
        ("models.vae.training.lerning_rate=1", r"Unknown config key 'models\.vae\.training\.ler"),
        ("models.vae.training.optimizer.lerning_rate=1", r"did you mean 'learning_rate'"),
        ("models.vae.training.num_epochs=0", r"num_epochs must be a positive integer, got 0"),
        ("models.vae.training.num_epochs=two", r"Cannot parse 'two'"),
        ("models.vae.training.posterior.method=swag", r"posterior is None"),
        ("data.validation_size=big", r"Cannot parse 'big'"),
    ],
)
def test_bad_overrides_are_refused_with_the_key(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(config_file(tmp_path, BASE), [override])


def test_a_whole_section_can_be_given_by_an_override(tmp_path):
    config = load_config(
        config_file(tmp_path, BASE),
        ["models.vae.training.posterior={'method': 'ensemble', 'members': 3}"],
    )
    assert config.models.vae.training.posterior.members == 3
    assert config.models.vae.training.posterior.filter == ".*"


def test_apply_overrides_then_resolve_validates_the_change():
    config = resolve_config(BASE)
    apply_overrides(config, ["data.train_limit=-3"])
    with pytest.raises(ConfigError, match="train_limit must be a non-negative integer"):
        resolve_config(config)


# --- the engine and its agreement with the code that reads the sections ------------------------


def test_validate_section_open_dicts_nested_sections_and_none():
    schema = {
        "options": Field(dict, {}),
        "inner": Field(dict, None, schema={"k": Field(int, 1)}),
        "must": Field(str, REQUIRED),
    }
    out = validate_section({"options": {"anything": [1]}, "must": "x"}, schema, "config.s")
    assert out == {"options": {"anything": [1]}, "inner": None, "must": "x"}
    assert validate_section({"inner": {}, "must": "x"}, schema, "config.s")["inner"] == {"k": 1}
    with pytest.raises(ConfigError, match=r"Unknown key 'j' in config\.s\.inner"):
        validate_section({"inner": {"j": 2}, "must": "x"}, schema, "config.s")
    with pytest.raises(ConfigError, match=r"config\.s\.must must be a string"):
        validate_section({"must": None}, schema, "config.s")


def test_the_sections_match_the_code_that_reads_them():
    from jaxrobust.inference import methods
    from jaxrobust.train import adversarial

    pp = sections.PREPROCESS
    assert {k: f.default for k, f in pp.items()} == Preprocess._field_defaults
    adv = sections.ADVERSARIAL_TRAINING
    assert set(adv) == set(adversarial.DEFAULTS)
    for key, field in adv.items():
        if field.required:  # DEFAULTS marks a required key with None
            assert adversarial.DEFAULTS[key] is None, key
        else:
            assert field.default == adversarial.DEFAULTS[key], key
    common = set(sections.POSTERIOR_COMMON)
    assert common == set(methods._COMMON)
    for method, options in methods._OPTIONS.items():
        assert set(sections.POSTERIOR_SCHEMAS[method]) - common == set(options), method


def test_the_builtin_registrations_use_the_section_schemas(monkeypatch):
    monkeypatch.undo()  # the registries as the packages left them, without this file's stand-ins
    for registry, name, schema in _BUILTIN:
        entry = registry.get(name)
        assert getattr(entry, "schema", None) is not None, f"{registry.what} {name!r}"
        assert set(entry.schema) >= set(schema) - set(sections.POSTERIOR_COMMON), name

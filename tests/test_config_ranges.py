"""Numbers and files of a config: every number has a range, checked at load; config files that
cannot be used are refused with their path; config.json is written atomically.

No training here (resolve_config and shapes only): the file runs in seconds.
"""

from __future__ import annotations

import copy
import errno
import json
import math
import os

import ml_collections
import pytest
from conftest import TINY_CONFIG

from jaxrobust import config as config_lib
from jaxrobust.config import load_config, resolve_config, save_config
from jaxrobust.errors import ConfigError, JaxrobustError
from jaxrobust.train.loop import check_buildable, train_and_evaluate

NAN, INF = float("nan"), float("inf")
OPT = "models.vae.training.optimizer"


@pytest.fixture(scope="module")
def tiny():
    return load_config(TINY_CONFIG)


def with_value(config, dotted: str, value):
    """A deep copy of ``config`` with key path ``dotted`` set to ``value`` (any type)."""
    out = ml_collections.ConfigDict(copy.deepcopy(config_lib.config_to_dict(config)))
    *parents, leaf = dotted.split(".")
    node = out
    for name in parents:
        node = node[name]
    if leaf in node:
        del node[leaf]
    node[leaf] = value
    return out


ATTACKS = {
    "models": ["classifier"],
    "num_images": 8,
    "chunk_size": 8,
    "attacks": {"fgsm": {"attack": "fgsm"}},
}


# Each case: (key path, value, text the error must contain). All resolved before on base13.
OUT_OF_RANGE = [
    # NaN and infinity, in fields with and without a range of their own
    (f"{OPT}.learning_rate", INF, "learning_rate must be a number > 0"),
    (f"{OPT}.weight_decay", INF, "NaN and infinity are not accepted"),
    (f"{OPT}.decay_factor", INF, "NaN and infinity"),
    ("models.vae.architecture.negatives.shift", NAN, "negatives.shift"),
    ("models.vae.architecture.negatives.shift", -INF, "NaN and infinity"),
    ("models.vae.architecture.negatives.generator_weight", INF, "generator_weight"),
    ("models.vae.training.adversarial_training", {"epsilon": INF, "num_steps": 1}, "epsilon"),
    ("evaluate.attacks", {**ATTACKS, "epsilons": [0.0, INF]}, "epsilons[1]"),
    ("evaluate.attacks", {**ATTACKS, "epsilons": [NAN]}, "epsilons[0]"),
    # a decay or momentum of 1: Adam's bias correction divides by 1 - b^t = 0
    (f"{OPT}.b1", 1.0, "b1 must be a number in [0, 1)"),
    (f"{OPT}.b2", 1.0, "b2 must be a number in [0, 1)"),
    (f"{OPT}.momentum", 1.0, "momentum must be"),
    (f"{OPT}.decay", 1.0, "decay must be a number in [0, 1)"),
    # seeds: jax keeps 32 bits, so seed 2**32 would silently be seed 0
    ("seed", 2**32, "seed must be a non-negative integer <= 2147483647"),
    ("data.validation_seed", 2**40, "validation_seed must be"),
    # integers beyond 64 bits, and counts no program can hold
    ("models.vae.training.batch_size", 2**64, "larger than any 64-bit integer"),
    ("data.train_limit", 10**30, "larger than any 64-bit integer"),
    ("models.vae.training.num_runs", 10**6, "num_runs must be a positive integer <= 4096"),
    ("models.vae.architecture.latent_dim", 10**12, "latent_dim must be a positive integer <="),
    (
        "models.vae.training.posterior",
        {"method": "ensemble", "members": 10**9},
        "members must be an integer in [2, 4096]",
    ),
    # a step of zero with a positive radius: PGD would never move
    (
        "models.vae.training.adversarial_training",
        {"epsilon": 0.1, "num_steps": 3, "step_size": 0.0},
        "step_size must be a number > 0",
    ),
    # SGHMC whose burn-in covers the whole run: no sample after it
    (
        "models.vae.training.posterior",
        {"method": "sghmc", "burn_in_epochs": 2},
        "burn_in_epochs (2) must be < num_epochs (2)",
    ),
]


@pytest.mark.parametrize("dotted, value, match", OUT_OF_RANGE)
def test_numbers_out_of_range_are_refused_with_path_and_range(tiny, dotted, value, match):
    with pytest.raises(ConfigError) as caught:
        resolve_config(with_value(tiny, dotted, value))
    message = str(caught.value)
    assert match in message, message
    assert message.startswith("config.") or "config." in message  # the key's full path


@pytest.mark.parametrize(
    "override, match",
    [
        (f"{OPT}.learning_rate=1e999", "NaN and infinity"),  # literal_eval gives inf
        ("models.vae.architecture.negatives.shift=-1e999", "NaN and infinity"),
        ("models.vae.training.batch_size=100000000000000000000000", "64-bit"),
        ("seed=4294967296", "seed must be a non-negative integer <="),
    ],
)
def test_overrides_out_of_range_are_refused(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(TINY_CONFIG, [override])


@pytest.mark.parametrize(
    "override, match",
    [  # the examples of issue 13 (refused since the config redesign; kept as regressions)
        ("data.train_limit=-100", "train_limit must be a non-negative integer"),
        ("models.vae.training.num_epochs=0", "num_epochs must be a positive integer"),
        (f"{OPT}.learning_rate=-0.1", "learning_rate must be .*> 0"),
        (f"{OPT}.learning_rate=0.0", "learning_rate must be .*> 0"),
        ("evaluate.batch_size=0", "evaluate.batch_size must be a positive integer"),
    ],
)
def test_issue_examples_are_refused_before_anything_is_written(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        config = load_config(TINY_CONFIG, [override])
        train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_config_resolved_in_range_is_buildable(tiny, synthetic_data):
    # The boundaries themselves are accepted.
    config = tiny
    for dotted, value in [
        (f"{OPT}.b1", 0.0),
        (f"{OPT}.b2", 0.999999),
        ("seed", 2**31 - 1),
        ("models.vae.training.num_runs", 1),
        ("data.train_limit", 0),
    ]:
        config = with_value(config, dotted, value)
    resolved = resolve_config(config)
    check_buildable(resolved)
    assert resolved.seed == 2**31 - 1


def _numeric_fields(schema, where):
    for key, field in schema.items():
        path = f"{where}.{key}"
        if field.schema is not None:
            yield from _numeric_fields(field.schema, path)
        item = field.items
        if item is not None and set(item.type_tuple) & {int, float}:
            yield f"{path}[]", item
        if set(field.type_tuple) & {int, float} and not set(field.type_tuple) & {str, list}:
            yield path, field


# Numbers whose whole (finite) range is meaningful: a mean, a shift, an initial log-scale, the
# bounds of an input domain.
UNBOUNDED = {
    "data.preprocess.mean[]",
    "models.vae.architecture.negatives.shift",
    "posterior.bbb.rho_init",
    "domain[]",  # (low, high) of the input space: checked as a pair (low < high)
}


def test_every_numeric_field_of_every_section_declares_its_range():
    from jaxrobust.config import sections

    schemas = {
        "data": sections.DATA,
        "models.vae.architecture": sections.VAE_ARCHITECTURE,
        "models.vae.training": sections.TRAINING,
        "training.adversarial_training": sections.ADVERSARIAL_TRAINING,
        "training.optimizer": sections.OPTIMIZER,
        "posterior": sections.POSTERIOR_COMMON,
        "posterior.bbb.prior": {**sections.BBB_MIXTURE_PRIOR, **sections.BBB_GAUSSIAN_PRIOR},
        "evaluate": sections.EVALUATE,
        "evaluate.classification": sections.CLASSIFICATION_TASK,
        "": {k: v for k, v in sections.CONFIG.items() if k != "models"},
    }
    schemas.update({f"posterior.{m}": s for m, s in sections.POSTERIOR_SCHEMAS.items()})
    from jaxrobust.evaluate import robustness

    schemas["evaluate.attacks"] = robustness.SCHEMA
    missing = []
    for where, schema in schemas.items():
        for path, field in _numeric_fields(schema, where):
            path = path.lstrip(".")
            if not field.finite:
                missing.append(f"{path} (accepts NaN/inf)")
            if path in UNBOUNDED or any(path.endswith(u) for u in UNBOUNDED):
                continue
            if not field.bounded and field.check is None:
                missing.append(path)
    assert not missing, f"numeric fields without a declared range: {missing}"


def test_resolved_numbers_lie_in_their_declared_ranges(tiny):
    resolved = resolve_config(tiny)
    schema = config_lib.config_schema(resolved)
    checked = 0

    def walk(values, schema, where):
        nonlocal checked
        for key, field in schema.items():
            value = values.get(key)
            if field.schema is not None and isinstance(value, dict):
                walk(value, field.schema, f"{where}.{key}")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                assert not isinstance(value, float) or math.isfinite(value)
                assert field.in_range(value), f"{where}.{key}={value!r}"
                checked += 1

    walk(config_lib.config_to_dict(resolved), schema, "config")
    assert checked >= 30


# --- config files ---------------------------------------------------------------------------


def test_a_workdir_config_json_loads_as_a_config(tiny, tmp_path):
    path = save_config(tiny, tmp_path / "run")
    loaded = load_config(path)
    assert config_lib.config_to_dict(loaded) == config_lib.config_to_dict(tiny)
    # with overrides, parsed by the schema like for a Python file
    again = load_config(path, ["models.vae.training.num_epochs=5"])
    assert again.models.vae.training.num_epochs == 5


@pytest.mark.parametrize(
    "text, match",
    [
        ("[1, 2]", "must hold a JSON object"),
        ("{not json", "is not valid JSON"),
        ('{"data": {"name": "mnist"}, "models": {}}', "config.models is empty"),
        ('{"data": {"name": "mnist"}, "seed": NaN, "models": {}}', "seed must be"),
    ],
)
def test_a_bad_json_config_is_refused_with_its_path(tmp_path, text, match):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as caught:
        load_config(path)
    if "JSON" in match:
        assert str(path) in str(caught.value)


def test_config_paths_that_are_not_config_files_are_explained(tiny, tmp_path):
    save_config(tiny, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"is a directory.*pass --config .*config\.json"):
        load_config(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="is a directory, not a config file"):
        load_config(tmp_path / "empty")
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(ConfigError, match=r"must be a Python file \(\.py.*\(\.json"):
        load_config(tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.py")


@pytest.mark.parametrize(
    "body, match",
    [  # reported with the file's path (since the config redesign; kept as regressions)
        ("def get_config():\n    return None\n", "got NoneType"),
        (
            "def get_config():\n    raise RuntimeError('boom')\n",
            "get_config\\(\\) raised RuntimeError",
        ),
        ("raise ImportError('no module')\n", "failed to import: ImportError"),
        ("def get_config():\n    return 3\n", "got int"),
        ("X = 1\n", "must define get_config"),
    ],
)
def test_a_python_config_file_that_fails_is_named(tmp_path, body, match):
    path = tmp_path / "broken.py"
    path.write_text(body)
    with pytest.raises(ConfigError, match=match) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


# --- config.json is written atomically ----------------------------------------------------------


def test_save_config_goes_through_a_temporary_file_in_the_same_directory(
    tiny, tmp_path, monkeypatch
):
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    path = save_config(tiny, tmp_path)
    assert replaced and replaced[-1][1] == os.fspath(path)
    assert os.path.dirname(replaced[-1][0]) == os.fspath(tmp_path)
    assert json.loads(path.read_text())["models"]["vae"]["kind"] == "vae"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_a_failed_config_write_keeps_the_old_file_and_leaves_no_temporary(
    tiny, tmp_path, monkeypatch
):
    save_config(tiny, tmp_path)
    before = (tmp_path / "config.json").read_bytes()
    changed = with_value(tiny, "models.vae.training.num_epochs", 9)

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", os.fspath(dst))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError) as caught:
        save_config(changed, tmp_path)
    assert caught.value.errno == errno.ENOSPC or isinstance(caught.value, JaxrobustError)
    assert (tmp_path / "config.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


@pytest.mark.parametrize("key", ["num_chains", "num_samples"])
@pytest.mark.parametrize("value", ["2", [2], {"a": 1}, 0])
def test_a_wrongly_typed_posterior_number_is_a_config_error(tiny, key, value):
    # (found by tests/test_fuzz_config.py: the method's own check did `num_samples % num_chains`
    # on the raw values and raised TypeError, or ZeroDivisionError for num_chains=0)
    posterior = {"method": "hmc", "num_samples": 2, "num_warmup": 2, key: value}
    with pytest.raises(ConfigError, match=rf"posterior\.{key} must be"):
        resolve_config(with_value(tiny, "models.vae.training.posterior", posterior))


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"domain": [1.0, 0.0]}, "low < high"),
        ({"seed": 2**32}, "<= 2147483647"),
        (
            {"attacks": {"pgd": {"attack": "pgd", "step_size": 0.0}}},
            "step_size must be a number > 0",
        ),
    ],
)
def test_the_attacks_task_section_has_ranges(bad, match):
    """A seed jax would truncate to 32 bits, an empty domain or a zero PGD step is refused."""
    from jaxrobust.config.schema import validate_section
    from jaxrobust.evaluate import robustness

    section = {"models": ["cnn"], "attacks": {"fgsm": {"attack": "fgsm"}}, **bad}
    with pytest.raises(ConfigError, match=match):
        validate_section(section, robustness.SCHEMA, "evaluate.attacks")

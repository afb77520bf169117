"""Property-based tests (hypothesis) over config values and ``--config.key=value`` overrides.

For every numeric key of every section schema (the tiny test config, with each posterior
method, adversarial training and the attacks task switched on in turn), values are drawn from
input classes: inside the declared range, at and just past its boundaries, negative, zero, NaN,
infinite, huge integers, numpy scalars and wrong types (str, list, None, bool, dict, a float where
an integer is expected); unknown keys are put in every schema'd section; override strings and
command lines are generated for the CLI parser. Properties:

- every case resolves (``resolve_config``) and builds (``check_buildable``, shapes only), or is
  refused with a jaxrobust error (:class:`~jaxrobust.errors.ConfigError`); never another
  exception;
- a resolved config's numbers are finite and inside their declared ranges, and the value given
  is the value resolved (no silent change);
- an unknown key is always refused.

Budget: ``JAXROBUST_FUZZ_EXAMPLES`` examples per property (tests/fuzz_budget.py). The counts of
cases and outcomes per input class are written as JSON to ``JAXROBUST_FUZZ_REPORT_CONFIG`` (or
``JAXROBUST_FUZZ_REPORT``) when set.
"""

from __future__ import annotations

import copy
import math
import os
import traceback

import hypothesis.strategies as st
import ml_collections
import numpy as np
import pytest
from conftest import TINY_CONFIG
from fuzz_budget import FUZZ_SETTINGS, Outcomes
from hypothesis import given

from jaxrobust.cli import UsageError, _split_overrides
from jaxrobust.config import (
    apply_overrides,
    config_schema,
    config_to_dict,
    load_config,
    resolve_config,
    sections,
)
from jaxrobust.errors import JaxrobustError
from jaxrobust.evaluate.robustness import ATTACK_SCHEMA
from jaxrobust.registry import UnknownNameError
from jaxrobust.train.loop import check_buildable

OUTCOMES = Outcomes("test_fuzz_config")

# Keys whose large valid values cost time in check_buildable (one key per run): drawn small.
COSTLY = ("num_runs", "members")
SMALL = 8

ATTACKS = {
    "models": ["classifier"],
    "num_images": 8,
    "chunk_size": 8,
    "attacks": {"fgsm": {"attack": "fgsm"}, "pgd": {"attack": "pgd", "num_steps": 2}},
}
POSTERIORS = {
    "none": None,
    "ensemble": {"method": "ensemble", "members": 2},
    "swag": {"method": "swag", "rank": 2},
    "sghmc": {"method": "sghmc", "num_samples": 2},
    "bbb": {"method": "bbb", "num_samples": 2, "prior": {"pi": 0.5}},
    "hmc": {"method": "hmc", "num_samples": 2, "num_warmup": 2},
}


@pytest.fixture(scope="module", autouse=True)
def _write_report():
    yield
    OUTCOMES.write(os.environ.get("JAXROBUST_FUZZ_REPORT_CONFIG"))


def _bases() -> dict[str, dict]:
    tiny = config_to_dict(load_config(TINY_CONFIG))
    tiny["models"]["classifier"]["training"]["adversarial_training"] = {
        "epsilon": 0.1,
        "num_steps": 2,
    }
    tiny["evaluate"]["attacks"] = copy.deepcopy(ATTACKS)
    bases = {}
    for name, posterior in POSTERIORS.items():
        config = copy.deepcopy(tiny)
        config["models"]["vae"]["training"]["posterior"] = copy.deepcopy(posterior)
        bases[name] = config
    return bases


BASES = _bases()


def _is_numeric(field) -> bool:
    types = set(field.type_tuple)
    return bool(types & {int, float}) and not types & {str, list, tuple, dict}


def _walk(schema, path: tuple, out: dict, sections_out: dict) -> None:
    for key, field in schema.items():
        here = (*path, key)
        dotted = ".".join(here)
        sub = field.schema
        if dotted.endswith("posterior.prior"):
            sub = {**sections.BBB_MIXTURE_PRIOR}
        if len(here) >= 2 and here[-2:] == ("attacks", "attacks"):
            for name in ATTACKS["attacks"]:
                _walk(ATTACK_SCHEMA, (*here, name), out, sections_out)
            continue
        if sub is not None:
            sections_out.setdefault(dotted, sub)
            _walk(sub, here, out, sections_out)
        elif field.items is not None and _is_numeric(field.items):
            out.setdefault(f"{dotted}[0]", field.items)
        elif _is_numeric(field) or (field.check is not None and int in field.type_tuple):
            out.setdefault(dotted, field)


def _targets():
    """(base name, key path, Field) of every numeric key, and the schema'd sections."""
    numeric, schemas = {}, {}
    for name, base in BASES.items():
        found, found_sections = {}, {}
        _walk(config_schema(base), (), found, found_sections)
        for dotted, field in found.items():
            numeric.setdefault(dotted, (name, field))
        for dotted, schema in found_sections.items():
            schemas.setdefault(dotted, (name, schema))
    return (
        sorted((b, d, f) for d, (b, f) in numeric.items()),
        sorted((b, d, s) for d, (b, s) in schemas.items()),
    )


NUMERIC, SECTIONS = _targets()


def test_the_fuzz_covers_every_section():
    paths = {dotted for _, dotted, _ in NUMERIC}
    for expected in (
        "seed",
        "data.train_limit",
        "data.validation_size",
        "data.preprocess.std[0]",
        "models.vae.training.optimizer.learning_rate",
        "models.vae.training.num_runs",
        "models.vae.architecture.negatives.shift",
        "models.classifier.training.adversarial_training.epsilon",
        "models.vae.training.posterior.members",
        "models.vae.training.posterior.prior.sigma1",
        "models.vae.training.posterior.target_accept_prob",
        "models.vae.training.posterior.burn_in_epochs",
        "models.vae.training.posterior.rank",
        "models.vae.training.posterior.mu_std",
        "evaluate.batch_size",
        "evaluate.classification.ece_bins",
        "evaluate.attacks.epsilons[0]",
        "evaluate.attacks.attacks.pgd.step_size",
    ):
        assert expected in paths, expected
    assert len(NUMERIC) >= 60 and len(SECTIONS) >= 10


# --- values by input class ------------------------------------------------------------------


def _above(field):
    return getattr(field, "above", None)


def _below(field):
    return getattr(field, "below", None)


def _bounds(field):
    low = field.minimum if field.minimum is not None else _above(field)
    high = field.maximum if field.maximum is not None else _below(field)
    return low, high


def _in_range(field, key: str):
    ints = int in field.type_tuple
    low, high = _bounds(field)
    if ints and not (float in field.type_tuple and field.check is not None):
        lo = (
            int(math.floor(low)) + (1 if _above(field) is not None else 0)
            if low is not None
            else -5
        )
        hi = (
            int(math.ceil(high)) - (1 if _below(field) is not None else 0)
            if high is not None
            else 0
        )
        hi = max(hi, lo + 1000) if high is None else hi
        if key in COSTLY:
            hi = min(hi, lo + SMALL)
        return st.integers(lo, max(lo, hi))
    return st.floats(
        min_value=low if low is not None else -1e6,
        max_value=high if high is not None else 1e6,
        exclude_min=_above(field) is not None,
        exclude_max=_below(field) is not None,
        allow_nan=False,
        allow_infinity=False,
    )


def _boundaries(field, key: str):
    values = []
    for bound in (field.minimum, field.maximum, _above(field), _below(field)):
        if bound is None:
            continue
        values += [bound, bound + 1, bound - 1]
        if float in field.type_tuple:
            values += [
                math.nextafter(float(bound), math.inf),
                math.nextafter(float(bound), -math.inf),
            ]
    if key in COSTLY:
        values = [v for v in values if v <= SMALL or v > sections.MAX_RUNS]
    if int in field.type_tuple and float not in field.type_tuple:
        values = [int(v) for v in values if float(v).is_integer()]
    return st.sampled_from(values or [0])


HUGE = [2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]
WRONG_TYPES = ["1", "", "nan", [1], [], (1, 2), None, True, False, {"a": 1}, b"1"]


def _values(field, key: str):
    """(input class, value) pairs for ``field``."""
    classes = {
        "in_range": _in_range(field, key),
        "boundary": _boundaries(field, key),
        "negative": st.sampled_from([-1, -1.0, -0.5, -1e-300, -1e30]),
        "zero": st.sampled_from([0, 0.0, -0.0]),
        "nan": st.sampled_from([math.nan, -math.nan, np.float32("nan"), np.float64("nan")]),
        "inf": st.sampled_from([math.inf, -math.inf, 1e308 * 10, np.float32("inf")]),
        "huge_int": st.sampled_from(HUGE),
        "numpy_scalar": st.sampled_from(
            [np.int64(3), np.int32(1), np.float32(0.5), np.float64(2.0), np.uint8(255)]
        ),
        "wrong_type": st.sampled_from(WRONG_TYPES),
    }
    if int in field.type_tuple and float not in field.type_tuple:
        classes["float_for_int"] = st.sampled_from([1.0, 2.5, 1e20])
    return st.sampled_from(sorted(classes)).flatmap(
        lambda name: st.tuples(st.just(name), classes[name])
    )


# --- applying a value -----------------------------------------------------------------------


def _set(config: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for name in parents:
        if node.get(name) is None:
            node[name] = {}
        node = node[name]
    if leaf.endswith("[0]"):
        leaf = leaf[:-3]
        current = list(node.get(leaf) or [])
        node[leaf] = [value, *current[1:]] if current else [value]
        if leaf in ("mean", "std"):  # mean and std go together
            other = "std" if leaf == "mean" else "mean"
            if not node.get(other):
                node[other] = [0.5] if other == "std" else [0.0]
    else:
        node[leaf] = value


def _get(config, dotted: str):
    node = config
    for name in dotted.replace("[0]", ".0").split("."):
        node = node[int(name)] if name == "0" else node[name]
    return node


def _inside(field, value) -> bool:
    """``value`` inside the range ``field`` declares (inclusive minimum/maximum, exclusive
    above/below); NaN never is."""
    if isinstance(value, float) and math.isnan(value):
        return False
    minimum, maximum = field.minimum, field.maximum
    above, below = _above(field), _below(field)
    return (
        (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum)
        and (above is None or value > above)
        and (below is None or value < below)
    )


def _check_in_ranges(resolved) -> None:
    """Every number of the resolved config is finite and inside its declared range."""
    found, _ = {}, {}
    values = config_to_dict(resolved)
    _walk(config_schema(values), (), found, {})
    for dotted, field in found.items():
        try:
            value = _get(values, dotted)
        except (KeyError, IndexError, TypeError):
            continue
        if value is None or isinstance(value, (bool, str)):
            continue
        assert not isinstance(value, float) or math.isfinite(value), (dotted, value)
        assert _inside(field, value), (dotted, value)


def _same_number(given, resolved) -> bool:
    if isinstance(given, (bool, np.bool_)) or not isinstance(given, (int, float, np.number)):
        return True  # only numbers are compared
    return float(resolved) == float(given) and type(resolved) in (int, float)


def _attempt(config: dict, input_class: str, context: str):
    """Resolve and build ``config``; returns the resolved config or None (refused)."""
    try:
        resolved = resolve_config(ml_collections.ConfigDict(config))
        check_buildable(resolved)
    except JaxrobustError:
        OUTCOMES.record(input_class, "refused")
        return None
    except Exception as err:
        OUTCOMES.record(input_class, "traceback")
        raise AssertionError(
            f"{context}: raised {type(err).__name__} (not a jaxrobust error): {err}\n"
            + traceback.format_exc()
        ) from err
    return resolved


# --- properties -----------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(data=st.data())
def test_any_number_anywhere_resolves_in_range_or_is_refused(data):
    base, dotted, field = data.draw(st.sampled_from(NUMERIC), label="target")
    input_class, value = data.draw(_values(field, dotted.split(".")[-1]), label="value")
    config = copy.deepcopy(BASES[base])
    _set(config, dotted, value)
    resolved = _attempt(config, input_class, f"{dotted}={value!r} ({input_class})")
    if resolved is None:
        return
    try:
        _check_in_ranges(resolved)
        assert _same_number(value, _get(config_to_dict(resolved), dotted)), (dotted, value)
    except AssertionError:
        OUTCOMES.record(input_class, "wrong_result")
        raise
    OUTCOMES.record(input_class, "ok")


@FUZZ_SETTINGS
@given(data=st.data())
def test_several_numbers_at_once_resolve_in_range_or_are_refused(data):
    count = data.draw(st.integers(2, 5), label="count")
    config = copy.deepcopy(BASES[data.draw(st.sampled_from(sorted(BASES)), label="base")])
    targets = [t for t in NUMERIC if t[0] in ("none", "ensemble")]
    changed = []
    for _ in range(count):
        _, dotted, field = data.draw(st.sampled_from(targets), label="target")
        input_class, value = data.draw(_values(field, dotted.split(".")[-1]), label="value")
        _set(config, dotted, value)
        changed.append(f"{dotted}={value!r}")
    resolved = _attempt(config, "combined", ", ".join(changed))
    if resolved is None:
        return
    try:
        _check_in_ranges(resolved)
    except AssertionError:
        OUTCOMES.record("combined", "wrong_result")
        raise
    OUTCOMES.record("combined", "ok")


KEY_NAMES = st.one_of(
    st.sampled_from(["lr", "learning_rat", "epochs", "batchsize", "seeds", "Num_epochs", "x"]),
    st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True),
)


@FUZZ_SETTINGS
@given(data=st.data())
def test_an_unknown_key_in_any_section_is_refused(data):
    base, dotted, schema = data.draw(st.sampled_from(SECTIONS), label="section")
    key = data.draw(KEY_NAMES.filter(lambda k: k not in schema), label="key")
    config = copy.deepcopy(BASES[base])
    node = config
    for name in dotted.split("."):
        if node.get(name) is None:
            node[name] = {}
        node = node[name]
    node[key] = data.draw(st.sampled_from([1, 0.5, "a", None, [1]]), label="value")
    try:
        resolve_config(ml_collections.ConfigDict(config))
    except UnknownNameError as err:
        assert repr(key) in str(err) and "Known:" in str(err), str(err)
        OUTCOMES.record("unknown_key", "refused")
        return
    except JaxrobustError:  # refused for another reason first (e.g. the method's own check)
        OUTCOMES.record("unknown_key", "refused")
        return
    except Exception as err:
        OUTCOMES.record("unknown_key", "traceback")
        raise AssertionError(f"{dotted}.{key}: {type(err).__name__}: {err}") from err
    OUTCOMES.record("unknown_key", "wrong_result")
    raise AssertionError(f"unknown key {dotted}.{key} was accepted")


RAW_VALUES = st.one_of(
    st.sampled_from(
        [
            "0", "-1", "1", "2", "0.5", "1e-3", "-0.0", "nan", "inf", "-inf", "1e999", "-1e999",
            "NaN", "None", "none", "True", "false", "yes", "[1, 2]", "(1,)", "[]", "{'a': 1}",
            "{}", "10**30", "1_000", "0x10", "1e20", "9223372036854775808", "'3'", '"x"', "",
            "=", "a=b", "__import__('os').getcwd()", "[nan]", "[1e999]", "(0.0, 1.0)", "mnist",
        ]
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)  # fmt: skip


@FUZZ_SETTINGS
@given(data=st.data())
def test_any_override_string_applies_or_is_refused(data):
    keys = [d for _, d, _ in NUMERIC if not d.startswith("evaluate.attacks")]
    keys = [d.replace("[0]", "") for d in keys if "posterior." not in d]
    dotted = data.draw(
        st.one_of(
            st.sampled_from(keys),
            st.sampled_from(["seed", "name", "progress", "data.name", "models.vae.kind"]),
            st.text(max_size=20),
        ),
        label="key",
    )
    raw = data.draw(RAW_VALUES, label="raw")
    item = data.draw(st.sampled_from([f"{dotted}={raw}", f"{dotted}{raw}"]), label="override")
    config = ml_collections.ConfigDict(copy.deepcopy(BASES["none"]))
    try:
        apply_overrides(config, [item])
    except JaxrobustError:
        OUTCOMES.record("override_string", "refused")
        return
    except Exception as err:
        OUTCOMES.record("override_string", "traceback")
        raise AssertionError(f"override {item!r}: {type(err).__name__}: {err}") from err
    resolved = _attempt(config_to_dict(config), "override_string", f"override {item!r}")
    if resolved is not None:
        _check_in_ranges(resolved)
        OUTCOMES.record("override_string", "ok")


ARGS = st.lists(
    st.one_of(
        st.sampled_from(
            ["train", "evaluate", "--workdir", "w", "--config", "x.py", "--config.", "--config.=",
             "--config.seed", "--config.seed=1", "--config..a=1", "--config.a.=1", "--config.a",
             "--config.a=", "--config.a==b", "-", "--", "--config.models.vae.training.num_epochs"]
        ),
        st.text(max_size=8),
        st.text(max_size=8).map(lambda t: f"--config.{t}"),
    ),
    max_size=6,
)  # fmt: skip


@FUZZ_SETTINGS
@given(argv=ARGS)
def test_the_cli_override_splitter_parses_or_refuses_usage(argv):
    try:
        rest, overrides = _split_overrides(argv)
    except UsageError:
        OUTCOMES.record("cli_argv", "refused")
        return
    except Exception as err:
        OUTCOMES.record("cli_argv", "traceback")
        raise AssertionError(f"{argv!r}: {type(err).__name__}: {err}") from err
    for item in overrides:
        key, _, _ = item.partition("=")
        assert "=" in item and key and all(key.split(".")), (argv, item)
    assert not any(a.startswith("--config.") for a in rest), (argv, rest)
    OUTCOMES.record("cli_argv", "ok")

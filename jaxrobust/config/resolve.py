"""The whole config validated at once: the static sections plus the registries' schemas.

:func:`config_schema` completes :data:`jaxrobust.config.sections.CONFIG` for one config: each
``models.<name>.architecture`` gets the schema its ``kind`` registered (``MODELS``), each
``training.posterior`` the common keys plus its ``method``'s options (``POSTERIORS``), and each
task key of ``evaluate`` its task's schema (``EVALUATIONS``). :func:`resolve_config` validates
against it, checks that the models the evaluation names exist, and returns the config with every
default filled in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxrobust.config import sections
from jaxrobust.config.schema import (
    REQUIRED,
    Field,
    Schema,
    plain,
    validate_section,
    validate_value,
)
from jaxrobust.errors import ConfigError
from jaxrobust.registry import (
    EVALUATIONS,
    MODELS,
    POSTERIORS,
    UnknownNameError,
    closest_match,
    unknown_name_message,
)
from jaxrobust.sweep import Sweep, split_member_name


def _load_registrations() -> None:
    """Import the packages whose import registers the built-in kinds, methods and tasks."""
    import jaxrobust.evaluate  # noqa: F401
    import jaxrobust.inference  # noqa: F401
    import jaxrobust.models  # noqa: F401


def _is_mapping(value: Any) -> bool:
    return isinstance(value, (Mapping, ml_collections.ConfigDict))


def _entry_schema(entry: Any) -> Schema | None:
    return getattr(entry, "schema", None)


def _posterior_field(posterior: Any, where: str) -> Field:
    base = sections.TRAINING["posterior"]
    if not _is_mapping(posterior):
        return base
    method = plain(posterior).get("method")
    if isinstance(method, str) and method in POSTERIORS:
        # The method's own checks first (unknown options, members, rest, ...): their messages
        # name the method's accepted options.
        from jaxrobust.inference.methods import check_posterior_config

        model_name = where.split(".")[2] if where.startswith("config.models.") else where
        try:
            check_posterior_config(plain(posterior), model_name)
        except ConfigError:
            raise
        except ValueError as err:
            raise ConfigError(str(err)) from None
        except (TypeError, ArithmeticError):
            pass  # a value of the wrong type or range (num_chains="2" or 0): the schema names it
    method = posterior.get("method")
    if method is None and closest_match("method", list(posterior)) is None:
        raise ConfigError(
            f"{where}.method is required: one of {POSTERIORS.names()} (or set "
            f"{where} = None for a point estimate)."
        )
    schema = dict(sections.POSTERIOR_COMMON)
    if isinstance(method, str):
        if method not in POSTERIORS:
            raise UnknownNameError(
                unknown_name_message("posterior method", method, POSTERIORS.names(), where)
                + f" posterior.method must be one of {POSTERIORS.names()}, or register one "
                "with jaxrobust.register_posterior."
            )
        options = _entry_schema(POSTERIORS.get(method, where=f"{where}.method"))
        if options is None:  # registered without a schema: not checked
            return base
        schema.update(options)
    return dataclasses.replace(base, schema=schema)


def _refuse_flat_keys(section: Mapping, architecture: Schema | None, where: str) -> None:
    """A training or architecture key put directly in the model section: say where it goes."""
    for key in section:
        if key in sections.MODEL:
            continue
        if key in sections.TRAINING:
            home = "training"
        elif architecture is not None and key in architecture:
            home = "architecture"
        else:
            continue
        message = unknown_name_message("key", key, sections.MODEL, where)
        raise UnknownNameError(
            f"{message} A model section is {{kind, architecture, training}}: move it to "
            f"{where}.{home}.{key}."
        )


def _model_field(name: str, section: Any) -> Field:
    where = f"config.models.{name}"
    schema = dict(sections.MODEL)
    if _is_mapping(section):
        kind = section.get("kind")
        architecture = None
        if isinstance(kind, str):
            architecture = _entry_schema(MODELS.get(kind, where=f"{where}.kind"))
            if architecture is not None:
                schema["architecture"] = dataclasses.replace(
                    schema["architecture"], schema=architecture
                )
        _refuse_flat_keys(section, architecture, where)
        training = section.get("training")
        if _is_mapping(training):
            posterior = _posterior_field(training.get("posterior"), f"{where}.training.posterior")
            schema["training"] = dataclasses.replace(
                schema["training"], schema={**sections.TRAINING, "posterior": posterior}
            )
    return Field(dict, REQUIRED, schema=schema, check=_check_sweep_values)


def _check_sweep_values(section: dict, path: str) -> dict:
    """Swept values obey the architecture field of the same name (e.g. alpha >= 0)."""
    sweep = (section.get("training") or {}).get("sweep") or {}
    kind = section.get("kind")
    architecture = _entry_schema(MODELS.get(kind, where=f"{path}.kind")) or {}
    for name, values in sweep.items():
        field = architecture.get(name)
        if field is None:
            continue
        for i, value in enumerate(values):
            validate_value(value, field, f"{path}.training.sweep.{name}[{i}]")
    return section


def evaluation_task_name(key: str, section: Any) -> str:
    """The registered task that ``config.evaluate.<key>`` runs: ``key`` itself, or the section's
    ``task`` entry, so that one task can run twice under two names (e.g. the ``attacks`` task
    once in the model's input space and once in pixel space).

    Raises UnknownNameError for a key that is neither a task nor names one.

    Examples:
      >>> evaluation_task_name("attacks", {})
      'attacks'
      >>> evaluation_task_name("fgsm_pixels", {"task": "attacks", "space": "pixels"})
      'attacks'
    """
    _load_registrations()
    task = plain(section).get("task") if _is_mapping(section) else None
    name = task if isinstance(task, str) and key not in EVALUATIONS else key
    if name not in EVALUATIONS:
        if name == key:
            known = [*sections.EVALUATE, *EVALUATIONS.names()]
            message = unknown_name_message("key or evaluation task", key, known, "config.evaluate")
        else:
            where = f"config.evaluate.{key}.task"
            message = unknown_name_message("evaluation task", name, EVALUATIONS.names(), where)
        raise UnknownNameError(message)
    return name


def _evaluate_schema(section: Mapping) -> Schema:
    schema = dict(sections.EVALUATE)
    for key, value in section.items():
        if key in schema:
            continue
        name = evaluation_task_name(key, value)
        task = dict(_entry_schema(EVALUATIONS.get(name)) or {})
        if name != key:
            task["task"] = Field(str, name, choices=(name,), help="the task this section runs")
        schema[key] = Field(dict, None, schema=task, help=f"evaluation task {name!r}")
    return schema


def config_schema(config: Any) -> Schema:
    """The schema of ``config``: :data:`~jaxrobust.config.sections.CONFIG` with the registered
    schemas of its model kinds, posterior methods and evaluation tasks filled in.

    Raises UnknownNameError for an unregistered kind, method or task (closest match included).

    Examples:
      >>> schema = config_schema({"models": {}, "evaluate": {"batch_size": 10}})
      >>> sorted(schema["evaluate"].schema)
      ['batch_size', 'checkpoint', 'test_limit']
    """
    _load_registrations()
    values = plain(config) if _is_mapping(config) else {}
    schema = dict(sections.CONFIG)
    models = values.get("models")
    if _is_mapping(models):
        fields = {name: _model_field(name, section) for name, section in models.items()}
        schema["models"] = dataclasses.replace(schema["models"], schema=fields)
    evaluate = values.get("evaluate")
    if _is_mapping(evaluate):
        schema["evaluate"] = dataclasses.replace(
            schema["evaluate"], schema=_evaluate_schema(evaluate)
        )
    return schema


def field_at(config: Any, dotted: str) -> Field | None:
    """The :class:`Field` of key path ``dotted`` (``"models.vae.training.num_epochs"``) in
    ``config``'s schema, or None where the path is in an open dict or not in the schema.

    Examples:
      >>> field_at({"models": {}}, "data.validation_size").default
      5000
      >>> field_at({"models": {}}, "data.no_such_key") is None
      True
    """
    try:
        schema: Schema | None = config_schema(config)
    except ConfigError:
        return None
    *parents, leaf = dotted.split(".")
    for name in parents:
        field = schema.get(name)
        if field is None or field.schema is None:
            return None
        schema = field.schema
    return schema.get(leaf)


def _check_references(resolved: Mapping) -> None:
    """Every model an evaluation task names is a key of ``config.models``."""
    models = resolved["models"]
    for task, section in resolved["evaluate"].items():
        if task in sections.EVALUATE or not isinstance(section, Mapping):
            continue
        names = section.get("models")
        if isinstance(names, (list, tuple)):
            for i, name in enumerate(names):
                _check_model_name(name, models, f"config.evaluate.{task}.models[{i}]")
        scores = section.get("scores")
        if isinstance(scores, (list, tuple)):
            for i, ref in enumerate(scores):
                name = str(ref).partition("/")[0]
                _check_model_name(name, models, f"config.evaluate.{task}.scores[{i}] ({ref!r})")


def _check_model_name(name: str, models: Mapping, where: str) -> None:
    """A key of ``config.models``, or ``"<model>@<setting>"`` of a swept model."""
    base, label = split_member_name(str(name))
    if base not in models:
        raise UnknownNameError(unknown_name_message("model", base, models, where))
    if label is not None:
        sweep = Sweep.from_training(models[base].get("training") or {})
        if sweep is None:
            raise UnknownNameError(
                f"{where}: {name!r} names a sweep setting, but config.models.{base} has no "
                "training.sweep; use the plain model name."
            )
        sweep.setting_index(label, where)


def resolve_config(config: Any) -> ml_collections.ConfigDict:
    """The whole config validated, as a new ``ConfigDict`` with every default filled in.

    Idempotent: resolving a resolved config gives the same config. Raises ConfigError (or its
    subclass UnknownNameError) naming the key path and what to do.

    Examples:
      >>> config = {"data": {"name": "mnist"},
      ...           "models": {"vae": {"kind": "vae", "architecture": {"latent_dim": 2},
      ...                              "training": {"batch_size": 32, "num_epochs": 1}}}}
      >>> resolved = resolve_config(config)
      >>> resolved.models.vae.training.optimizer.name, resolved.evaluate.checkpoint
      ('adam', 'best')
      >>> resolve_config(resolved) == resolved
      True
    """
    if not _is_mapping(config):
        raise ConfigError(
            f"A config must be an ml_collections.ConfigDict or a dict, got {type(config).__name__}."
        )
    values = plain(config)
    resolved = validate_section(values, config_schema(values), "config")
    _check_references(resolved)
    return ml_collections.ConfigDict(resolved)

"""Config files, ``--config.key.path=value`` overrides and the config stored in a workdir.

:func:`load_config` imports a Python file, calls its ``get_config()``, resolves it (validation
against the schemas, defaults filled in), applies the overrides, each parsed to the type of the
field it replaces, and resolves again. It also loads a resolved config stored as JSON (a
workdir's ``config.json``), which is a valid config as it stands. The resolved config is
stored as JSON next to the checkpoints so that evaluation, in another process, rebuilds exactly
the trained models.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import ml_collections

from jaxrobust.config.resolve import field_at, resolve_config
from jaxrobust.config.schema import Field
from jaxrobust.errors import ConfigError
from jaxrobust.registry import closest_match

CONFIG_FILENAME = "config.json"

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def import_file(path: str | os.PathLike) -> ModuleType:
    """Import a Python file by path (config files load their shared builders this way).

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     _ = (Path(tmp) / "base.py").write_text("WIDTH = 3")
      ...     import_file(Path(tmp) / "base.py").WIDTH
      3
    """
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"jaxrobust_config_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"Cannot import {path}: a config file must be a Python file (.py).")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONFIG_SUFFIXES = (".py", ".json")


def _check_config_path(path: Path) -> None:
    """A clear ConfigError for a config path that is missing, a directory or not .py/.json."""
    if path.is_dir():
        inside = path / CONFIG_FILENAME
        hint = (
            f" To reuse the config of that training run, pass --config {inside}."
            if inside.is_file()
            else " Pass a Python config file (.py, with get_config()) or a config.json."
        )
        raise ConfigError(f"Config path {path} is a directory, not a config file.{hint}")
    if not path.exists():
        raise ConfigError(
            f"Config file {path} does not exist; check the path (relative paths are from "
            f"{Path.cwd()})."
        )
    if path.suffix not in CONFIG_SUFFIXES:
        raise ConfigError(
            f"Config file {path} must be a Python file (.py, defining get_config()) or a "
            f"resolved config stored as JSON (.json, e.g. a workdir's {CONFIG_FILENAME}), got "
            f"a {path.suffix or 'suffix-less'} file."
        )


def _read_json_config(path: Path) -> ml_collections.ConfigDict:
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"Config file {path} is not valid JSON ({err}); if it is a workdir's "
            f"{CONFIG_FILENAME}, it is damaged: pass the Python config file that trained it."
        ) from None
    if not isinstance(stored, dict):
        raise ConfigError(
            f"Config file {path} must hold a JSON object (a config section), got "
            f"{type(stored).__name__}."
        )
    return ml_collections.ConfigDict(stored)


def _read_config_file(path: Path) -> ml_collections.ConfigDict:
    _check_config_path(path)
    if path.suffix == ".json":
        return _read_json_config(path)
    try:
        module = import_file(path)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - any error of a user's file is reported with it
        raise ConfigError(
            f"Config file {path} failed to import: {type(err).__name__}: {err}"
        ) from err
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"Config file {path} must define get_config().")
    try:
        config = module.get_config()
    except Exception as err:  # noqa: BLE001
        raise ConfigError(
            f"Config file {path}: get_config() raised {type(err).__name__}: {err}"
        ) from err
    if isinstance(config, ml_collections.ConfigDict):
        return config
    if isinstance(config, dict):
        return ml_collections.ConfigDict(config)
    raise ConfigError(
        f"Config file {path}: get_config() must return an ml_collections.ConfigDict or a dict, "
        f"got {type(config).__name__}."
    )


def _resolve_with_overrides(
    config: ml_collections.ConfigDict, overrides: Iterable[str]
) -> ml_collections.ConfigDict:
    resolved = resolve_config(config)
    overrides = list(overrides)
    if not overrides:
        return resolved
    apply_overrides(resolved, overrides)
    return resolve_config(resolved)


def load_config(
    path: str | os.PathLike, overrides: Iterable[str] = ()
) -> ml_collections.ConfigDict:
    """The resolved config of file ``path`` with ``key=value`` overrides.

    ``path`` is a Python file (its ``get_config()``) or a JSON file holding a config, such as the
    ``config.json`` a training run stores in its workdir. The file's config is resolved first (so
    an override may name any key that has a default), then the overrides are applied and the
    result resolved again.

    Raises:
      ConfigError: the path is missing, a directory or neither .py nor .json; the file fails to
        import, its ``get_config()`` raises or returns something else than a ConfigDict or dict,
        or its JSON is invalid (each message names the file); or the config or an override is
        invalid.

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     _ = (Path(tmp) / "bad.py").write_text("def get_config():\\n    return [1]")
      ...     try:
      ...         load_config(Path(tmp) / "bad.py")
      ...     except ConfigError as err:
      ...         print(str(err).split(": ", 1)[1])
      get_config() must return an ml_collections.ConfigDict or a dict, got list.
    """
    return _resolve_with_overrides(_read_config_file(Path(path)), overrides)


def _unknown_key(dotted: str, depth: int, node: Any) -> ConfigError:
    parts = dotted.split(".")
    where = ".".join(["config", *parts[:depth]])
    known = sorted(node.keys())
    match = closest_match(parts[depth], known)
    hint = f" did you mean {match!r}?" if match is not None else ""
    return ConfigError(f"Unknown config key {dotted!r}:{hint} {where} has {known}.")


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable[str]) -> None:
    """Apply ``a.b.c=value`` strings to ``config`` in place, each value parsed to the type of the
    field it replaces (its schema :class:`Field` where there is one, else the current value).

    Unknown keys raise with the closest match and the known keys listed. ``load_config`` calls
    this between two resolutions; after a direct call, resolve the config again to validate it.

    Examples:
      >>> import ml_collections
      >>> config = ml_collections.ConfigDict({"seed": 0, "name": "x"})
      >>> apply_overrides(config, ["seed=3", "name=run 1"])
      >>> config.seed, config.name
      (3, 'run 1')
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} must look like key.path=value.")
        dotted, raw = item.split("=", 1)
        *parents, leaf = dotted.split(".")
        node = config
        for depth, name in enumerate(parents):
            if node is None:
                where = ".".join(["config", *parents[:depth]])
                raise ConfigError(
                    f"Cannot set {dotted!r}: {where} is None. Set the whole section instead, "
                    f"e.g. --config.{'.'.join(parents[:depth])}=\"{{'key': value}}\"."
                )
            if not hasattr(node, "keys") or name not in node:
                raise _unknown_key(dotted, depth, node if hasattr(node, "keys") else {})
            node = node[name]
        if node is None:
            raise ConfigError(
                f"Cannot set {dotted!r}: config.{'.'.join(parents)} is None. Set the whole "
                f"section instead, e.g. --config.{'.'.join(parents)}=\"{{'{leaf}': {raw}}}\"."
            )
        if not hasattr(node, "keys") or leaf not in node:
            raise _unknown_key(dotted, len(parents), node if hasattr(node, "keys") else {})
        value = _parse(raw, node[leaf], dotted, field_at(config, dotted))
        try:
            node[leaf] = value
        except TypeError:  # the ConfigDict locked the old type; the schema allows the new one
            del node[leaf]
            node[leaf] = value


def _parse(raw: str, current: Any, key: str, field: Field | None) -> Any:
    """``raw`` parsed for the field ``key``: by its schema ``field``, else like ``current``."""
    if field is None:
        return _parse_like(raw, current, key)
    types = tuple(t for t in field.type_tuple if t is not type(None))
    nullable = type(None) in field.type_tuple
    if types == (str,) and not (nullable and raw == "None"):
        return raw
    if types == (bool,) and not (nullable and raw == "None"):
        return _parse_bool(raw, key)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if str in types:
            return raw
        raise ConfigError(
            f"Cannot parse {raw!r} for {key} (expects {_names(types)}; currently {current!r})."
        ) from None
    if value is None and nullable:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and float in types:
        if int not in types:
            value = float(value)
    if _fits(value, types):
        return value
    if str in types:
        return raw
    raise ConfigError(f"{key} expects {_names(types)}, got {raw!r} ({type(value).__name__}).")


def _fits(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, (list, tuple)):
        return list in types or tuple in types
    if isinstance(value, dict):
        return dict in types
    return isinstance(value, tuple(t for t in types if t not in (bool, list, tuple, dict)))


def _names(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def _parse_bool(raw: str, key: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"{key} is a bool; got {raw!r} (use true or false).")


def _parse_like(raw: str, current: Any, key: str) -> Any:
    if isinstance(current, str):
        return raw
    if isinstance(current, bool):
        return _parse_bool(raw, key)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if current is None:
            return raw
        raise ConfigError(f"Cannot parse {raw!r} for {key} (currently {current!r}).") from None
    if isinstance(current, float) and isinstance(value, int):
        value = float(value)
    if current is not None and value is not None and not isinstance(value, type(current)):
        if not (isinstance(current, (list, tuple)) and isinstance(value, (list, tuple))):
            raise ConfigError(
                f"{key} expects {type(current).__name__}, got {raw!r} ({type(value).__name__})."
            )
    return value


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
    """Plain JSON-able dict (tuples become lists).

    Examples:
      >>> config_to_dict(ml_collections.ConfigDict({"features": (8, 16)}))
      {'features': [8, 16]}
    """
    return json.loads(config.to_json_best_effort())


def save_config(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> Path:
    """Write ``workdir/config.json`` atomically; returns its path.

    The JSON goes to a temporary file in ``workdir`` (flushed to disk), which then replaces
    ``config.json`` in one ``os.replace``: a kill or a full disk at any moment leaves either the
    old file or the new one, never a partial one, and no temporary file behind.

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     save_config(ml_collections.ConfigDict({"seed": 1}), tmp).name
      'config.json'
    """
    path = Path(workdir) / CONFIG_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config_to_dict(config), indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{CONFIG_FILENAME}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def load_workdir_config(
    workdir: str | os.PathLike, overrides: Iterable[str] = ()
) -> ml_collections.ConfigDict:
    """The config a training run stored in ``workdir``, resolved, with ``key=value`` overrides.

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     try:
      ...         load_workdir_config(tmp)
      ...     except ConfigError as err:
      ...         print("is not a jaxrobust training directory" in str(err))
      True
    """
    path = Path(workdir) / CONFIG_FILENAME
    if not path.is_file():
        raise ConfigError(
            f"{path} not found: {workdir} is not a jaxrobust training directory. Run "
            f"`jaxrobust train --config CONFIG.py --workdir {workdir}` first, or pass --config."
        )
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"{path} is not valid JSON ({err}); the stored config is damaged: pass the config "
            f"file that trained {workdir} with --config."
        ) from None
    if not isinstance(stored, dict):
        raise ConfigError(
            f"{path} must hold a JSON object, got {type(stored).__name__}; the stored config is "
            f"damaged: pass the config file that trained {workdir} with --config."
        )
    return _resolve_with_overrides(ml_collections.ConfigDict(stored), overrides)

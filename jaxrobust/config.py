"""Experiment configs: Python files with ``get_config() -> ml_collections.ConfigDict``.

Overrides use dotted paths, ``--config.models.vae.num_epochs=2``; the value is parsed to the type
of the field it replaces. The resolved config is stored as JSON next to the checkpoints so that
evaluation, in another process, rebuilds exactly the trained models.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import ml_collections

from jaxrobust.errors import ConfigError

CONFIG_FILENAME = "config.json"


def import_file(path: str | os.PathLike) -> ModuleType:
    """Import a Python file by path (config files load their shared builders this way)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"jaxrobust_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(
    path: str | os.PathLike, overrides: Iterable[str] = ()
) -> ml_collections.ConfigDict:
    """Import ``path``, call its ``get_config()`` and apply ``key=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    module = import_file(path)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"Config file {path} must define get_config().")
    config = module.get_config()
    if not isinstance(config, ml_collections.ConfigDict):
        config = ml_collections.ConfigDict(config)
    apply_overrides(config, overrides)
    return config


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable[str]) -> None:
    """Apply ``a.b.c=value`` strings in place; unknown keys raise with the known ones listed."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} must look like key.path=value.")
        dotted, raw = item.split("=", 1)
        *parents, leaf = dotted.split(".")
        node = config
        for depth, name in enumerate(parents):
            if name not in node:
                known = sorted(node.keys())
                prefix = ".".join(parents[:depth]) or "config"
                raise ConfigError(f"Unknown config key {dotted!r}: {prefix} has {known}.")
            node = node[name]
        if leaf not in node:
            raise ConfigError(f"Unknown config key {dotted!r}; known here: {sorted(node.keys())}.")
        node[leaf] = _parse_like(raw, node[leaf], dotted)


def _parse_like(raw: str, current: Any, key: str) -> Any:
    if isinstance(current, str):
        return raw
    if isinstance(current, bool):
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"{key} is a bool; got {raw!r} (use true or false).")
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
    """Plain JSON-able dict (tuples become lists)."""
    return json.loads(config.to_json_best_effort())


def save_config(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> Path:
    """Write ``workdir/config.json`` atomically."""
    path = Path(workdir) / CONFIG_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config_to_dict(config), indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def load_workdir_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
    """The config a training run stored in ``workdir``."""
    path = Path(workdir) / CONFIG_FILENAME
    if not path.is_file():
        raise ConfigError(
            f"{path} not found: {workdir} is not a jaxrobust training directory. Run "
            f"`jaxrobust train --config CONFIG.py --workdir {workdir}` first, or pass --config."
        )
    return ml_collections.ConfigDict(json.loads(path.read_text()))

"""Shared fixtures: a synthetic data cache and the tiny test config."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# One persistent JAX compilation cache per test session, shared by the xdist workers and the
# subprocesses the end-to-end tests start (the same small programs are compiled in many test
# files and processes); set before JAX is imported, which reads these at import.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"jaxrobust-tests-xla-{_RUN}")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


def _write_art_config() -> None:
    """ART (the attack-parity reference) writes ~/.art/config.json on its first import, and two
    xdist workers importing it at once on a fresh machine race (one sees the file appear after
    its existence check and fails with a NameError at collection). Write it first, atomically."""
    folder = Path(os.path.expanduser("~")) / ".art"
    path = folder / "config.json"
    if path.exists():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"config.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"ART_DATA_PATH": str(folder / "data")}, indent=4))
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable home: ART falls back to /tmp itself


_write_art_config()

from synthetic import write_synthetic_cache  # noqa: E402

from jaxrobust.config import load_config  # noqa: E402

TESTS = Path(__file__).parent
TINY_CONFIG = TESTS / "configs" / "tiny.py"


@pytest.fixture(scope="session")
def synthetic_data_root(tmp_path_factory) -> Path:
    return write_synthetic_cache(tmp_path_factory.mktemp("data"))


@pytest.fixture
def synthetic_data(synthetic_data_root, monkeypatch) -> Path:
    """Point JAXROBUST_DATA (this process and its subprocesses) at the synthetic cache."""
    monkeypatch.setenv("JAXROBUST_DATA", str(synthetic_data_root))
    return synthetic_data_root


@pytest.fixture
def tiny_config():
    return load_config(TINY_CONFIG)


def only_models(config, *names: str):
    """Keep only the models ``names`` in ``config`` (in place) and drop what ``evaluate`` asks of
    the others (a config's evaluation may name only its own models)."""
    config.models = {name: config.models[name] for name in names}
    ev = config.evaluate
    ev.classification.models = [m for m in ev.classification.models if m in names]
    ev.ood.scores = [s for s in ev.ood.scores if s.split("/")[0] in names]
    return config


def subprocess_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return env


def pytest_collection_modifyitems(config, items):
    """pytest-xdist (``--dist loadgroup``, pyproject addopts): the tests of a file that share a
    module- or class-scoped fixture (a training run, a report collector) go to one worker, so
    the fixture runs once; every other test is handed out on its own, which balances the two
    workers better than whole files."""
    grouping = hasattr(config, "workerinput") and config.getvalue("loadgroup")
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        scopes = {d.scope for defs in info.name2fixturedefs.values() for d in defs}
        if scopes & {"module", "class", "package"}:
            group = item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(group))
            if grouping:
                _suffix_group(item, group)


def _suffix_group(item, group: str) -> None:
    """xdist's scheduler reads the group from an ``@group`` suffix of the node id, which xdist
    3.8 writes to ``item._nodeid``; pytest 9.2 derives ``nodeid`` from ``item._id`` instead, so
    the suffix never arrives and every grouped test ran alone (module fixtures built on both
    workers). Write it where this pytest reads it."""
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:  # pytest < 9.2: xdist's own suffix works
        return
    if "@" not in item.nodeid:
        item._id = coerce_node_id(f"{item.nodeid}@{group}")

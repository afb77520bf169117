"""Shared fixtures: a synthetic data cache and the tiny test config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

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
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        scopes = {d.scope for defs in info.name2fixturedefs.values() for d in defs}
        if scopes & {"module", "class", "package"}:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))

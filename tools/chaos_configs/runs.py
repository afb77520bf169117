"""Chaos target `runs`: R = 3 stacked runs of the CNN classifier (`training.num_runs = 3`)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("chaos_base", Path(__file__).with_name("_base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config():
    model = _base.classifier()
    model["training"]["num_runs"] = 3
    return _base.base("runs", {"classifier": model})

"""Chaos target `point`: a point VAE and a point CNN classifier (two models in one workdir)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("chaos_base", Path(__file__).with_name("_base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)

#: What tools/chaos.py's decoy evaluation changes (default: fewer test images). The last epoch
#: instead of the best: other numbers from the same compiled passes (no extra compilation).
DECOY_OVERRIDES = ["evaluate.checkpoint=last"]


def get_config():
    return _base.base("point", {"vae": _base.vae(), "classifier": _base.classifier()})

"""Chaos target `swag`: SWAG over the VAE decoder, moments collected from epoch 2."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("chaos_base", Path(__file__).with_name("_base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config():
    return _base.posterior_vae({"method": "swag", "num_samples": 3, "start_epoch": 2, "rank": 2})

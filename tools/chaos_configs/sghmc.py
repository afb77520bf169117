"""Chaos target `sghmc`: SGHMC over the VAE decoder, one burn-in epoch, a sample every 2 steps."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("chaos_base", Path(__file__).with_name("_base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config():
    return _base.posterior_vae(
        {"method": "sghmc", "num_samples": 3, "burn_in_epochs": 1, "thinning_steps": 2}
    )

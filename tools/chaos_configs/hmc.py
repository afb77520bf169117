"""Chaos target `hmc`: NUTS over one decoder layer, sampled after 3 point-estimate epochs."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("chaos_base", Path(__file__).with_name("_base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config():
    return _base.posterior_vae(
        {
            "method": "hmc",
            "filter": "^decoder/ConvTranspose_1/",
            "num_samples": 4,
            "num_warmup": 4,
            "data": 32,
            "max_tree_depth": 3,
            "num_chains": 1,
        },
        epochs=3,
    )

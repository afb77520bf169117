"""The tiny test config with its VAE only, on 256 training images (multi-process tests)."""

import importlib.util
from pathlib import Path

_TINY = Path(__file__).resolve().parent / "tiny.py"


def get_config():
    spec = importlib.util.spec_from_file_location("tiny_config", _TINY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config()
    c.name = "tiny_vae"
    c.models = {"vae": c.models.vae}
    c.evaluate.classification.models = []
    c.evaluate.ood.scores = [s for s in c.evaluate.ood.scores if s.startswith("vae/")]
    c.data.train_limit = 256
    c.data.validation_limit = 256
    return c

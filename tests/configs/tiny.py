"""The quickstart experiment shrunk for tests: small nets, 2 epochs, synthetic data."""

import importlib.util
from pathlib import Path

_QUICKSTART = Path(__file__).resolve().parents[2] / "experiments" / "quickstart.py"


def get_config():
    spec = importlib.util.spec_from_file_location("quickstart_config", _QUICKSTART)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config()
    c.name = "tiny"
    c.progress = False
    c.models.vae.latent_dim = 4
    c.models.vae.encoder_features = (8, 16)
    c.models.vae.decoder_features = (16, 8)
    for model in c.models.values():
        model.batch_size = 64
        model.num_epochs = 2
        model.eval_batch_size = 128
    c.evaluate.batch_size = 128
    return c

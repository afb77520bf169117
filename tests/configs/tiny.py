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
    # The synthetic stand-ins have 512 training images: the tests validate on the test split
    # (explicitly; the quickstart itself carves 5,000 validation images from training).
    c.data.validation_split = "test"
    c.models.vae.architecture.latent_dim = 4
    c.models.vae.architecture.encoder_features = (8, 16)
    c.models.vae.architecture.decoder_features = (16, 8)
    for model in c.models.values():
        model.training.batch_size = 64
        model.training.num_epochs = 2
        model.training.eval_batch_size = 128
    c.evaluate.batch_size = 128
    return c

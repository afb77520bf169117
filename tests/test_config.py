"""Config files and --config.key=value overrides."""

from __future__ import annotations

import pytest
from conftest import TINY_CONFIG

from jaxrobust.config import apply_overrides, load_config, load_workdir_config, save_config
from jaxrobust.errors import ConfigError


def test_overrides_keep_the_field_types():
    config = load_config(
        TINY_CONFIG,
        [
            "models.vae.architecture.latent_dim=7",
            "models.vae.training.optimizer.learning_rate=1",
            "progress=true",
            "models.vae.architecture.encoder_features=(4, 8)",
            "data.name=mnist",
        ],
    )
    assert config.models.vae.architecture.latent_dim == 7
    assert config.models.vae.training.optimizer.learning_rate == 1.0
    assert isinstance(config.models.vae.training.optimizer.learning_rate, float)
    assert config.progress is True
    assert tuple(config.models.vae.architecture.encoder_features) == (4, 8)
    assert config.data.name == "mnist"


@pytest.mark.parametrize(
    "override, message",
    [
        ("models.vae.architecture.latnt=3", "Unknown config key"),
        ("modelz.vae.architecture.latent_dim=3", "config has"),
        ("models.vae.architecture.latent_dim=three", "Cannot parse"),
        ("models.vae.architecture.latent_dim=2.5", "expects int"),
        ("progress=maybe", "is a bool"),
        ("seed", "key.path=value"),
    ],
)
def test_bad_overrides_are_explained(override, message):
    config = load_config(TINY_CONFIG)
    with pytest.raises(ConfigError, match=message):
        apply_overrides(config, [override])


def test_stored_config_round_trips(tmp_path):
    config = load_config(TINY_CONFIG)
    save_config(config, tmp_path)
    restored = load_workdir_config(tmp_path)
    assert restored.models.vae.architecture.latent_dim == config.models.vae.architecture.latent_dim
    assert list(restored.evaluate.ood.scores) == list(config.evaluate.ood.scores)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.py")

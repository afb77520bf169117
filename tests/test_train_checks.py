"""A config is checked whole before anything is written or trained."""

from __future__ import annotations

import pytest

from jaxrobust.config import load_config
from jaxrobust.errors import ConfigError
from jaxrobust.train import train_and_evaluate
from jaxrobust.train.loop import checkpoint_dir


def test_mistake_in_the_second_model_surfaces_before_the_first_trains(
    synthetic_data, tiny_config, tmp_path
):
    # Valid for the schema (a known network), but the DCGAN networks need 32x32
    # images: only building the model (shapes only) finds it.
    tiny_config.models.classifier.kind = "vae"
    tiny_config.models.classifier.architecture = {"latent_dim": 2, "network": "dcgan"}
    tiny_config.evaluate.classification.models = []
    tiny_config.evaluate.ood.scores = ["vae/elbo"]
    with pytest.raises(ConfigError, match="config.models.classifier cannot be built.*dcgan"):
        train_and_evaluate(tiny_config, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # the rejected config never claimed the workdir
    assert not checkpoint_dir(tmp_path / "run", "vae").exists()


def test_rejected_config_file_writes_nothing(tmp_path):
    config_file = tmp_path / "bad.py"
    config_file.write_text(
        "from pathlib import Path\n"
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('q', {str(_quickstart())!r})\n"
        "q = importlib.util.module_from_spec(spec); spec.loader.exec_module(q)\n"
        "def get_config():\n"
        "    c = q.get_config()\n"
        "    c.models.vae.architecture.obsrvation = 'gaussian'\n"
        "    return c\n"
    )
    with pytest.raises(ConfigError, match="obsrvation.*did you mean 'observation'"):
        load_config(config_file)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.py"]


def _quickstart():
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "experiments" / "quickstart.py"


@pytest.mark.parametrize(
    "change, match",
    [
        # The conv decoder halves the image twice: 202 is not divisible by 4 (a ValueError
        # inside the network before, shown as a bug).
        ({"data.preprocess.resize_to": 202}, "config.models.vae cannot be built.*202"),
        # An option the classifier network does not take (a TypeError before).
        ({"models.classifier.architecture.network_options": {"zzz": 1}}, "classifier.*zzz"),
    ],
)
def test_a_network_that_cannot_be_built_is_a_config_error(synthetic_data, change, match):
    from jaxrobust.config import resolve_config
    from jaxrobust.train.loop import check_buildable

    config = load_config("tests/configs/tiny.py")
    for dotted, value in change.items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    with pytest.raises(ConfigError, match=match):
        check_buildable(resolve_config(config))

"""The negative-sampling experiment configs: every one builds its model; the CIFAR-10/SVHN
configs (datasets not obtainable offline) train and evaluate end to end on synthetic stand-ins
of the same shape (32x32x3 uint8)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from synthetic import write_colour_stand_ins

from jaxrobust.config import load_config
from jaxrobust.evaluate import evaluate
from jaxrobust.train import build_from_config, train_and_evaluate

CONFIGS = sorted(
    (Path(__file__).parents[1] / "experiments" / "negative_sampling").glob("table*.py")
)


def test_all_cells_have_a_config():
    names = {p.stem for p in CONFIGS}
    assert len(names) == 19
    assert {"table1_fmnist_bernoulli", "table4_cifar10_quantized_gaussian_generated"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_builds_a_model_with_the_paper_settings(path):
    config = load_config(path)
    cfg = config.models.vae.architecture
    training = config.models.vae.training
    colour = config.data.name in ("cifar10", "svhn_cropped")
    assert training.num_runs == 5 and training.batch_size == 50 and training.num_epochs == 100
    assert cfg.latent_dim == (100 if colour else 10)
    assert cfg.negatives.shift == (25.0 if colour else 8.0)
    model, preprocess = build_from_config(config, "vae")
    shape = (2, 32, 32, 3) if colour else (2, 28, 28, 1)
    variables = jax.eval_shape(model.init, jax.random.key(0), jax.numpy.zeros(shape))
    assert "encoder" in variables["params"] and "decoder" in variables["params"]


def test_colour_config_runs_end_to_end_on_synthetic_stand_ins(tmp_path, monkeypatch):
    root = write_colour_stand_ins(tmp_path / "data", n_train=100, n_test=60)
    monkeypatch.setenv("JAXROBUST_DATA", str(root))
    config = load_config(
        Path(__file__).parents[1]
        / "experiments"
        / "negative_sampling"
        / "table4_cifar10_quantized_gaussian_generated.py",
        [
            "models.vae.training.num_epochs=1",
            "models.vae.training.num_runs=2",
            "models.vae.architecture.latent_dim=8",
            "models.vae.training.eval_batch_size=30",
            "evaluate.batch_size=30",
            "progress=False",
        ],
    )
    summary = train_and_evaluate(config, tmp_path / "run")
    assert np.isfinite(summary["vae"]["train/loss"])
    assert "train/generator_kl" in summary["vae"] and "train/negative_kl" in summary["vae"]
    results = evaluate(tmp_path / "run")["ood"]["cifar10->svhn_cropped"]
    assert set(results) == {"vae/bpd", "vae/kl"}
    assert results["vae/bpd"]["num_runs"] == 2 and len(results["vae/kl"]["runs"]["auroc"]) == 2

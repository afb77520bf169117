"""The Bayesian-VAE experiment configs: each builds its model and posterior with the
dissertation's settings; a CIFAR-10/SVHN config (datasets not obtainable offline) trains and
evaluates end to end on synthetic stand-ins of the same shape (32x32x3 uint8)."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest
from synthetic import write_colour_stand_ins

from jaxrobust.config import load_config
from jaxrobust.evaluate import evaluate
from jaxrobust.inference.methods import check_posterior_config
from jaxrobust.train import build_from_config, train_and_evaluate

HERE = Path(__file__).parents[1] / "experiments" / "bayesian_vae"
CONFIGS = sorted(HERE.glob("table3_*.py"))
SCORES = {"expected_ll", "waic", "disagreement", "entropy", "std_ll", "typicality"}


def test_every_table_and_method_has_a_config():
    names = {p.stem for p in CONFIGS}
    for table in ("3_1_fmnist_mnist", "3_2_cifar10_svhn", "3_3_mnist_fmnist", "3_4_svhn_cifar10"):
        assert {f"table{table}_{m}" for m in ("bbb", "sghmc", "swag", "ensemble")} <= names
    assert {"table3_1_fmnist_mnist_hmc", "table3_3_mnist_fmnist_hmc"} <= names
    assert (HERE / "table5_2_classical_vae.py").is_file()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_has_the_dissertation_settings(path):
    config = load_config(path)
    cfg = config.models.vae.architecture
    training = config.models.vae.training
    latent = {"cifar10": 70, "svhn_cropped": 20}.get(config.data.name, 10)
    assert cfg.latent_dim == latent and cfg.observation == "bernoulli"
    assert cfg.network == ("ch3_rgb" if latent != 10 else "ch3_gray")
    posterior = check_posterior_config(training.posterior.to_dict(), "vae")
    method = posterior["method"]
    if method in ("bbb", "sghmc", "swag"):
        assert posterior["filter"] == "^decoder/" and posterior["num_samples"] == 200
    if method == "bbb":
        assert posterior["prior"]["pi"] == 0.5 and posterior["rho_init"] == -3.0
        assert posterior["kl_weight"] == "per_batch"
    if method == "sghmc":
        assert posterior["momentum_decay"] == 0.05 and training.optimizer.learning_rate == 1e-3
    if method == "swag":
        assert posterior["rank"] == 40
    assert {s.split("/")[1] for s in config.evaluate.ood.scores} == SCORES
    model, _ = build_from_config(config, "vae")
    shape = (2, 32, 32, 3) if latent != 10 else (2, 28, 28, 1)
    variables = jax.eval_shape(model.init, jax.random.key(0), jax.numpy.zeros(shape))
    assert "decoder" in variables["params"]


def test_cifar_config_runs_end_to_end_on_synthetic_stand_ins(tmp_path, monkeypatch):
    root = write_colour_stand_ins(tmp_path / "data", n_train=64, n_test=40)
    monkeypatch.setenv("JAXROBUST_DATA", str(root))
    config = load_config(
        HERE / "table3_2_cifar10_svhn_swag.py",
        [
            "models.vae.training.num_epochs=2",
            "models.vae.training.batch_size=32",
            "models.vae.training.posterior.start_epoch=1",
            "models.vae.training.posterior.every_steps=1",
            "models.vae.training.posterior.num_samples=3",
            "models.vae.architecture.iwae_samples=2",
            "models.vae.architecture.iwae_chunk=2",
            "models.vae.training.eval_batch_size=20",
            "evaluate.batch_size=20",
            "progress=False",
        ],
    )
    train_and_evaluate(config, tmp_path / "run")
    results = evaluate(tmp_path / "run")["ood"]["cifar10->svhn_cropped"]
    assert {name.split("/")[1] for name in results} == SCORES
    assert results["vae/std_ll"]["positive"] == "out" and results["vae/waic"]["positive"] == "in"
    assert all(0.0 <= r["auroc"] <= 1.0 for r in results.values())

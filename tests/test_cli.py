"""The command line end to end, on the synthetic stand-in datasets, in separate processes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import TINY_CONFIG, subprocess_env

from jaxrobust.cli import main


def jaxrobust(*args, data_root):
    env = subprocess_env(JAXROBUST_DATA=str(data_root))
    cmd = [sys.executable, "-m", "jaxrobust.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_train_then_evaluate_in_another_process(synthetic_data_root, tmp_path):
    workdir = tmp_path / "run"
    trained = jaxrobust(
        "train",
        "--config",
        str(TINY_CONFIG),
        "--workdir",
        str(workdir),
        "--config.models.vae.training.num_epochs=3",
        data_root=synthetic_data_root,
    )
    assert trained.returncode == 0, trained.stderr
    assert (
        json.loads((workdir / "config.json").read_text())["models"]["vae"]["training"]["num_epochs"]
        == 3
    )

    evaluated = jaxrobust("evaluate", "--workdir", str(workdir), data_root=synthetic_data_root)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "| classifier |" in evaluated.stdout and "| vae/kl | OOD |" in evaluated.stdout

    results = json.loads((workdir / "results.json").read_text())
    assert results["meta"]["checkpoints"] == {"classifier": 2, "vae": 3}
    classifier = results["classification"]["classifier"]
    assert classifier["accuracy"] > 0.9  # the synthetic classes are separable
    assert 0.0 <= classifier["ece"] <= 1.0 and classifier["ece_bins"] == 15
    calibration_keys = {"ece_equal_mass", "classwise_ece", "mce", "brier", "nll"}
    assert calibration_keys <= set(classifier)
    ood = results["ood"]["fashion_mnist->mnist"]
    assert set(ood) == {"vae/elbo", "vae/kl", "classifier/max_softmax"}
    # Uniform noise is far from the dark square images: the ELBO must separate them.
    assert ood["vae/elbo"]["auroc"] > 0.95
    assert ood["vae/elbo"]["mean_in"] > ood["vae/elbo"]["mean_out"]
    detection_keys = {"auroc", "aupr_in", "aupr_out", "fpr80", "fpr95"}
    assert detection_keys <= set(ood["vae/kl"]) and ood["vae/kl"]["positive"] == "in"
    markdown = (workdir / "results.md").read_text()
    assert "## OOD detection: fashion_mnist (in) vs mnist (out)" in markdown
    assert "| AUROC (%) | AUPR-in (%) | AUPR-out (%) | FPR@80 (%) | FPR@95 (%) |" in markdown
    assert "| classwise ECE (%) |" in markdown
    plots = sorted(p.name for p in (workdir / "plots").iterdir())
    assert "roc_fashion_mnist_vs_mnist.png" in plots
    assert "reliability_classifier.png" in plots
    assert sum(name.startswith("hist_") for name in plots) == 3
    assert all((workdir / "plots" / name).read_bytes()[:4] == b"\x89PNG" for name in plots)


def test_evaluate_with_a_mismatched_config_fails_clearly(synthetic_data_root, tmp_path):
    workdir = tmp_path / "run"
    args = [
        "--config.models.vae.training.num_epochs=1",
        "--config.models.classifier.training.num_epochs=1",
    ]
    trained = jaxrobust(
        "train",
        "--config",
        str(TINY_CONFIG),
        "--workdir",
        str(workdir),
        *args,
        data_root=synthetic_data_root,
    )
    assert trained.returncode == 0, trained.stderr
    evaluated = jaxrobust(
        "evaluate",
        "--workdir",
        str(workdir),
        "--config",
        str(TINY_CONFIG),
        "--config.models.classifier.architecture.network=resnet18",
        data_root=synthetic_data_root,
    )
    assert evaluated.returncode == 1
    assert "does not match the model the config builds" in evaluated.stderr
    assert "Traceback" not in evaluated.stderr


def test_cli_errors_name_the_problem(synthetic_data, tmp_path, capsys):
    assert main(["evaluate", "--workdir", str(tmp_path)]) == 1
    assert "not a jaxrobust training directory" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--config",
                str(TINY_CONFIG),
                "--workdir",
                str(tmp_path),
                "--config.models.vae.architecture.latent_dimension=3",
            ]
        )
        == 1
    )
    assert (
        "Unknown config key 'models.vae.architecture.latent_dimension'" in capsys.readouterr().err
    )
    assert main(["data", "fetch", "not_a_dataset"]) == 1
    assert "Known datasets" in capsys.readouterr().err


def test_data_list_shows_the_cache(synthetic_data, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert str(synthetic_data) in out
    assert "fashion_mnist" in out and "synthetic" in out and "512" in out


def test_help_documents_each_command(capsys):
    for command in (["train"], ["evaluate"], ["data", "fetch"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        assert "usage: jaxrobust" in capsys.readouterr().out

"""The hybrid-models SVHN / CIFAR-10 configs (experiments/hybrid) end to end on synthetic
32x32x3 stand-ins of the same shapes: the 8 models (the DHM's alpha sweep as one program)
train, and every evaluation of the cell runs on every model and setting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import write_colour_stand_ins

from jaxrobust.config import import_file, load_config, resolve_config
from jaxrobust.evaluate import evaluate, restore_model
from jaxrobust.train import train_and_evaluate

HYBRID = Path(__file__).resolve().parents[1] / "experiments" / "hybrid"


def _shrunk(cell: str):
    config = load_config(HYBRID / f"{cell}_cell.py")
    config.progress = False
    config.data.validation_size = 32
    config.data.train_limit = 64
    for section in config.models.values():
        section.architecture.update(
            {"width": 0.03125, "blocks": [1, 1, 1, 1], "latent_dim": 4, "head_hidden": 8,
             "iwae_samples": 2, "iwae_chunk": 2}
        )  # fmt: skip
        section.training.update({"num_epochs": 1, "num_runs": 1, "batch_size": 32,
                                 "eval_batch_size": 32})  # fmt: skip
    config.evaluate.update({"batch_size": 32, "test_limit": 32})
    for section in ("attacks", "fgsm_pixels"):
        config.evaluate[section].update({"num_images": 32, "chunk_size": 32})
    return resolve_config(config)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["svhn", "cifar10"])
def test_the_thesis_configs_train_and_evaluate_every_model_on_stand_ins(
    cell, tmp_path, monkeypatch
):
    root = write_colour_stand_ins(tmp_path / "data", 64, 32, names=("cifar10", "svhn_cropped",
                                                                   "cifar100"))  # fmt: skip
    monkeypatch.setenv("JAXROBUST_DATA", str(root))
    config = _shrunk(cell)
    workdir = tmp_path / "run"
    train_and_evaluate(config, workdir)
    results = evaluate(workdir, config)
    settings = [f"dhm@alpha={a:g}" for a in (1, 10, 100, 1e3, 1e4, 1e5)]
    classifiers = ["resnet", "disc_dhm", *settings]
    assert set(results["classification"]) == set(classifiers)
    for name in classifiers:
        row = results["classification"][name]
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["ece"] <= 1.0
        accuracy = results["attacks"][name]["accuracy"]["fgsm"]
        assert len(accuracy) == 7 and all(0.0 <= a <= 1.0 for a in accuracy)
        pixels = results["fgsm_pixels"][name]
        assert pixels["space"] == "pixels" and pixels["epsilons"][0] == 0.0
        # eps 0 in pixel space attacks nothing: the clean accuracy of the same 32 test images
        assert len(pixels["accuracy"]["fgsm"]) == 7
        assert pixels["accuracy"]["fgsm"][0] == pytest.approx(row["accuracy"], abs=1e-6)
    ood = results["ood"]
    scored = {ref for table in ood.values() for ref in table}
    assert {"beta_vae/iwae", "dhm@alpha=100000/elbo_surrogate", "resnet/max_softmax"} <= scored
    _, _, variables, _ = restore_model(workdir, "dhm", "best", config=config)
    np.testing.assert_allclose(variables["loss_weights"]["alpha"], [1, 10, 100, 1e3, 1e4, 1e5])
    _, _, disc, _ = restore_model(workdir, "disc_dhm", "best", config=config)
    assert "decoder" not in disc["params"] and "decoder" in variables["params"]
    _report_and_figures(cell, workdir, results, tmp_path)


def _report_and_figures(cell, workdir, results, tmp_path):
    """The experiment's digest, RESULTS.md tables and figures from the cell's workdir."""
    run_all = import_file(HYBRID / "run_all.py")
    figures = import_file(HYBRID / "figures.py")
    digest = run_all.make_digest(cell, workdir, results)
    assert digest["models"]["dhm"]["members"] == 6 and digest["models"]["resnet"]["epochs"] == 1
    output = tmp_path / "RESULTS.md"
    run_all.write_results({cell: digest}, output)
    text = output.read_text()
    for label in ("ResNet-18", "Disc. DHM", "beta-VAE", "DHM-0", "DHM-5"):
        assert f"| {label} |" in text
    assert "[46.1]" in text if cell == "svhn" else "[57.5]" in text  # Table 5.8 beside ours
    assert "epsilon in pixel space" in text and "Spearman rho" in text
    digests = {cell: digest}
    for draw in (figures.accuracy_vs_alpha, figures.auroc_vs_alpha, figures.ece_vs_alpha,
                 figures.fgsm_vs_epsilon):  # fmt: skip
        draw(digests, tmp_path / "figure.png")
        assert (tmp_path / "figure.png").stat().st_size > 1000

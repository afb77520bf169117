"""The SDIM CIFAR-10 / SVHN configs (experiments/sdim) end to end on synthetic 32x32x3
stand-ins of the same shapes: the SDIM (ResNet26 encoder) and its discriminative counterpart
train, and every evaluation of the cell runs (classification, rejection with Table 3's OOD
detection, Fig. 4's attacks, Tables 4-7's attacks detected by rejection)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import write_colour_stand_ins

from jaxrobust.config import import_file, load_config, resolve_config
from jaxrobust.data import load
from jaxrobust.evaluate import evaluate
from jaxrobust.train import train_and_evaluate

SDIM = Path(__file__).resolve().parents[1] / "experiments" / "sdim"
IMAGES = 8


def _shrunk(cell: str):
    config = load_config(SDIM / f"{cell}_cell.py")
    config.progress = False
    config.data.validation_size = 32
    config.data.train_limit = 64
    config.models.sdim.architecture.update(
        {"widths": [4, 4, 8, 8], "head_hidden": 8, "rep_dim": 8, "t_hidden": 8}
    )
    config.models.disc.architecture.network_options.update({"widths": [4, 4, 8, 8],
                                                             "head_hidden": 8})  # fmt: skip
    for section in config.models.values():
        section.training.update({"num_epochs": 1, "batch_size": 32, "eval_batch_size": 32})
    e = config.evaluate
    e.update({"batch_size": 32, "test_limit": 32})
    e.attacks.update({"num_images": IMAGES, "chunk_size": IMAGES})
    e.attacks.attacks.pgd40.num_steps = e.attacks.attacks.pgd40_random_start.num_steps = 2
    e.adversarial_rejection.update({"num_images": IMAGES, "chunk_size": IMAGES})
    attacks = e.adversarial_rejection.attacks
    attacks.deepfool.max_iterations = 3
    attacks.boundary.num_steps = 3
    attacks.local_search.rounds = 2
    e.cw_rejection.update({"num_images": 4, "chunk_size": 36})
    for spec in e.cw_rejection.attacks.values():
        spec.update({"max_iterations": 3, "binary_search_steps": 1})
    return resolve_config(config)


@pytest.mark.slow
@pytest.mark.parametrize("cell, out", [("cifar10", "svhn_cropped"), ("svhn", "cifar10")])
def test_the_papers_configs_train_and_evaluate_on_stand_ins(cell, out, tmp_path, monkeypatch):
    root = write_colour_stand_ins(tmp_path / "data", 96, 32)
    monkeypatch.setenv("JAXROBUST_DATA", str(root))
    config = _shrunk(cell)
    # the logit table's image: the class of the first test image, so that it is attacked
    config.evaluate.adversarial_rejection.table_class = int(load(config.data.name, "test")[1][0])
    assert config.models.sdim.architecture.n == 3  # ResNet26
    workdir = tmp_path / "run"
    train_and_evaluate(config, workdir)
    results = evaluate(workdir, config)
    assert set(results["classification"]) == {"sdim", "disc"}
    for percentile in ("1", "2"):
        row = results["rejection"]["sdim"][percentile]
        assert len(row["thresholds"]) == 10 and 0.0 <= row["rejection_rate"] <= 1.0
        assert 0.0 <= row["out_classwise_detection"][out]["mean"] <= 1.0  # Table 3
    assert (workdir / "plots" / f"rejection_histograms_sdim_{out}.png").is_file()  # Fig. 2/3
    for name in ("sdim", "disc"):  # Fig. 4 / 5: accuracy vs eps, the counterpart beside
        accuracy = results["attacks"][name]["accuracy"]
        assert set(accuracy) == {"fgsm", "pgd40", "pgd40_random_start"}
        assert all(len(a) == 11 for a in accuracy.values())
    untargeted = results["adversarial_rejection"]
    assert set(untargeted["attacks"]) == {"deepfool", "boundary", "local_search"}
    for entry in untargeted["attacks"].values():
        assert entry["attempts"] == IMAGES and entry["targeted"] is False
    cw = results["cw_rejection"]
    correct = cw["clean_accuracy"] * 4
    assert set(cw["attacks"]) == {"cw_0", "cw_500", "cw_1000"}
    for entry in cw["attacks"].values():
        assert entry["attempts"] == pytest.approx(9 * correct) and entry["targeted"] is True
    assert results["meta"]["tasks"]["cw_rejection"] == "adversarial_rejection"
    report = (workdir / "results.md").read_text()
    assert "Adversarial inputs detected by rejection" in report and "cw_500" in report
    _report_and_figures(cell, workdir, results, tmp_path)


def _report_and_figures(cell, workdir, results, tmp_path):
    """The experiment's digest, RESULTS.md tables and figures from the cell's workdir."""
    run_all = import_file(SDIM / "run_all.py")
    figures = import_file(SDIM / "figures.py")
    digest = run_all.make_digest(cell, workdir, results)
    assert digest["n"] == 3 and set(digest["models"]) == {"sdim", "disc"}
    output = tmp_path / "RESULTS.md"
    run_all.write_results({cell: digest}, output)
    text = output.read_text()
    for caption in ("Table 1", "Table 3", "Table 5", "Table 7", "Fig. 4", "Claims"):
        assert caption in text, caption
    assert f"{100 * digest['classification']['sdim']['accuracy']:.2f}" in text
    assert figures.accuracy_vs_epsilon({cell: digest}, tmp_path / "fig4.png")
    assert figures.logit_heatmap(cell, digest, tmp_path / "heat.png")

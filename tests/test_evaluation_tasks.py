"""Evaluation tasks end to end on the synthetic stand-ins: one pass per model and dataset, the
Bayesian model average of an ensemble classifier, attack curves, rejection, a toy model kind
registered from outside the package through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import only_models, subprocess_env
from sklearn.metrics import roc_auc_score

import jaxrobust as jr
from jaxrobust.config import load_config
from jaxrobust.evaluate import evaluate
from jaxrobust.train import train_and_evaluate

TESTS = Path(__file__).parent
COUNT = {"iwae": 0}


def _count(_):
    COUNT["iwae"] += 1


def build_counting_vae(architecture, image_shape, num_classes):
    """The VAE, with a host callback counting every batch on which its IWAE output runs."""
    model = jr.models.build_model("vae", architecture, image_shape, num_classes)

    def outputs(variables, x, *, key, names):
        out = model.outputs(variables, x, key=key, names=names)
        if "iwae" in names:
            jax.debug.callback(_count, out["iwae"].log_likelihood[0])
        return out

    return model._replace(outputs=outputs)


@pytest.fixture(scope="module")
def vae_workdir(synthetic_data_root, tmp_path_factory):
    from jaxrobust.models.registry import MODELS

    patch = pytest.MonkeyPatch()
    patch.setenv("JAXROBUST_DATA", str(synthetic_data_root))

    jr.register_model(
        "counting_vae", build_counting_vae, schema=MODELS.get("vae").schema, overwrite=True
    )
    config = only_models(load_config(TESTS / "configs" / "tiny.py"), "vae")
    config.models.vae.kind = "counting_vae"
    config.models.vae.training.num_epochs = 1
    config.models.vae.architecture.iwae_samples = 4
    config.models.vae.architecture.iwae_chunk = 2
    workdir = tmp_path_factory.mktemp("vae")
    train_and_evaluate(config, workdir)
    yield workdir, config
    patch.undo()


def test_iwae_and_iwae_std_share_one_pass_per_dataset(vae_workdir):
    workdir, config = vae_workdir
    config.evaluate.ood.scores = ["vae/iwae", "vae/iwae_std", "vae/elbo", "vae/kl"]
    COUNT["iwae"] = 0
    results = evaluate(workdir, config)
    jax.effects_barrier()
    batches = 256 // config.evaluate.batch_size  # the synthetic test sets hold 256 images
    assert COUNT["iwae"] == 2 * batches  # one pass over each of the two datasets, not two each
    passes = results["meta"]["passes"]
    assert [(p["model"], p["dataset"]) for p in passes] == [
        ("vae", "fashion_mnist"),
        ("vae", "mnist"),
    ]
    ood = results["ood"]["fashion_mnist->mnist"]
    assert set(ood) == {"vae/iwae", "vae/iwae_std", "vae/elbo", "vae/kl"}


def test_an_ood_set_of_another_image_shape_is_refused_before_any_pass(
    vae_workdir, tmp_path, monkeypatch
):
    """fashion_mnist (28x28x1) models against 32x32x3 images: refused at planning, no pass."""
    import shutil

    from synthetic import write_colour_stand_ins

    workdir, config = vae_workdir
    root = tmp_path / "data"
    shutil.copytree(os.environ["JAXROBUST_DATA"], root)
    write_colour_stand_ins(root, 8, 8, names=("cifar10",))
    monkeypatch.setenv("JAXROBUST_DATA", str(root))
    config = jr.config.resolve_config(config)
    config.evaluate.ood.out_datasets = ["cifar10"]
    COUNT["iwae"] = 0
    with pytest.raises(jr.errors.ConfigError, match=r"OOD set cifar10 has images \(32, 32, 3\)"):
        evaluate(workdir, config)
    jax.effects_barrier()
    assert COUNT["iwae"] == 0


def _ensemble_config():
    config = only_models(load_config(TESTS / "configs" / "tiny.py"), "classifier")
    config.models.classifier.training.num_epochs = 1
    config.models.classifier.training.posterior = {"method": "ensemble", "members": 3}
    config.evaluate.ood.scores = [
        "classifier/predictive_entropy",
        "classifier/expected_entropy",
        "classifier/mutual_information",
    ]
    return load_config_from(config)


def load_config_from(config):
    return jr.config.resolve_config(config)


def test_ensemble_classifier_bma_and_uncertainty_match_numpy(synthetic_data, tmp_path):
    config = _ensemble_config()
    train_and_evaluate(config, tmp_path)
    results = evaluate(tmp_path, config)

    # The members' logits, straight from the saved stack, then everything in NumPy.
    posterior, _ = jr.inference.restore_posterior(tmp_path / "posterior" / "classifier")
    model, preprocess = jr.train.build_from_config(config, "classifier")
    member_variables = [
        jax.tree.map(lambda a, s=s: a[s], posterior.samples) for s in range(3)
    ]  # the ensemble stack holds every variable

    def logits_of(name):
        images, labels = jr.data.load(name, "test")
        x = preprocess(jnp.asarray(images))
        stack = np.stack([np.asarray(model.logits(v, x), np.float64) for v in member_variables])
        return stack, np.asarray(labels)

    def softmax(z):
        z = z - z.max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    def entropy(p):
        return -(p * np.log(np.clip(p, 1e-300, None))).sum(-1)

    stack_in, labels = logits_of("fashion_mnist")
    probs = softmax(stack_in)  # [3, N, C]
    bma = probs.mean(0)
    got = results["classification"]["classifier"]
    assert got["bma"] and got["num_samples"] == 3
    np.testing.assert_allclose(got["accuracy"], np.mean(bma.argmax(-1) == labels), atol=1e-6)
    nll = -np.mean(np.log(bma[np.arange(len(labels)), labels]))
    np.testing.assert_allclose(got["nll"], nll, rtol=1e-4)
    conf, pred = bma.max(-1), bma.argmax(-1)
    edges = np.linspace(0, 1, 16)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(
                np.mean(pred[inside] == labels[inside]) - conf[inside].mean()
            )
    np.testing.assert_allclose(got["ece"], ece, atol=1e-5)

    stack_out, _ = logits_of("mnist")
    ood = results["ood"]["fashion_mnist->mnist"]
    for name, fn in {
        "predictive_entropy": lambda s: entropy(softmax(s).mean(0)),
        "expected_entropy": lambda s: entropy(softmax(s)).mean(0),
        "mutual_information": lambda s: entropy(softmax(s).mean(0)) - entropy(softmax(s)).mean(0),
    }.items():
        s_in, s_out = fn(stack_in), fn(stack_out)
        y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]  # OOD positive: larger = OOD
        expected = roc_auc_score(y, np.r_[s_in, s_out])
        np.testing.assert_allclose(ood[f"classifier/{name}"]["auroc"], expected, atol=2e-3)
        np.testing.assert_allclose(ood[f"classifier/{name}"]["mean_in"], s_in.mean(), rtol=1e-3)


def test_attack_and_rejection_tasks_on_an_affine_classifier(synthetic_data, tmp_path):
    """FGSM accuracy of a trained CNN from the task equals the same attack computed directly;
    rejection thresholds come from the training split and reject the far OOD noise."""
    config = only_models(load_config(TESTS / "configs" / "tiny.py"), "classifier")
    config.models.classifier.training.num_epochs = 1
    config.evaluate.attacks = {
        "models": ["classifier"],
        "num_images": 128,
        "chunk_size": 64,
        "epsilons": [0.0, 0.1, 0.3],
        "attacks": {"fgsm": {"attack": "fgsm"}, "pgd": {"attack": "pgd", "num_steps": 3}},
    }
    # the same task a second time under another name, with its own epsilons
    config.evaluate.fgsm_wide = {
        "task": "attacks",
        "models": ["classifier"],
        "num_images": 128,
        "chunk_size": 64,
        "epsilons": [0.2],
        "attacks": {"fgsm": {"attack": "fgsm"}},
    }
    config.evaluate.rejection = {
        "models": ["classifier"],
        "percentiles": [5.0],
        "out_datasets": ["mnist"],
    }
    config = jr.config.resolve_config(config)
    train_and_evaluate(config, tmp_path)
    results = evaluate(tmp_path, config)

    model, preprocess, variables, _ = jr.evaluate.restore_model(tmp_path, "classifier", "best")
    images, labels = jr.data.load("fashion_mnist", "test")
    x, y = preprocess(jnp.asarray(images[:128])), jnp.asarray(labels[:128])
    loss_fn = jr.attacks.cross_entropy_loss(lambda z: model.logits(variables, z))
    for i, eps in enumerate((0.0, 0.1, 0.3)):
        x_adv = jr.attacks.fgsm(loss_fn, x, y, epsilon=eps)
        acc = float(np.mean(np.argmax(model.logits(variables, x_adv), -1) == np.asarray(y)))
        assert results["attacks"]["classifier"]["accuracy"]["fgsm"][i] == pytest.approx(acc)
    x_adv = jr.attacks.fgsm(loss_fn, x, y, epsilon=0.2)
    acc = float(np.mean(np.argmax(model.logits(variables, x_adv), -1) == np.asarray(y)))
    assert results["fgsm_wide"]["classifier"]["accuracy"]["fgsm"] == [pytest.approx(acc)]
    assert results["meta"]["tasks"]["fgsm_wide"] == "attacks"
    assert (tmp_path / "plots" / "fgsm_wide" / "robustness_classifier.png").is_file()
    pgd = results["attacks"]["classifier"]["accuracy"]["pgd"]
    assert pgd[0] == pytest.approx(results["attacks"]["classifier"]["accuracy"]["fgsm"][0])
    assert all(b <= a + 1e-9 for a, b in zip(pgd, pgd[1:], strict=False))  # monotone in eps

    row = results["rejection"]["classifier"]["5"]
    train_logits = np.asarray(
        model.logits(variables, preprocess(jnp.asarray(jr.data.load("fashion_mnist", "train")[0])))
    )
    train_labels = jr.data.load("fashion_mnist", "train")[1]
    for c, threshold in enumerate(row["thresholds"]):
        own = train_logits[(train_labels == c) & (train_logits.argmax(-1) == c), c]
        if own.size:
            np.testing.assert_allclose(threshold, np.percentile(own, 5.0), rtol=1e-5)
    assert 0.0 <= row["rejection_rate"] <= 1.0
    assert (tmp_path / "results.md").read_text().count("## Attacks: classifier") == 2
    assert (tmp_path / "plots" / "robustness_classifier.png").is_file()


@pytest.mark.slow
def test_toy_model_registered_outside_the_package_trains_and_evaluates_through_the_cli(
    synthetic_data_root, tmp_path
):
    config = str(TESTS / "configs" / "toy_model.py")
    env = subprocess_env(JAXROBUST_DATA=str(synthetic_data_root))

    def cli(*args):
        cmd = [sys.executable, "-m", "jaxrobust.cli", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    trained = cli("train", "--config", config, "--workdir", str(tmp_path))
    assert trained.returncode == 0, trained.stderr
    evaluated = cli("evaluate", "--workdir", str(tmp_path), "--config", config)
    assert evaluated.returncode == 0, evaluated.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["classification"]["toy"]["accuracy"] > 0.5  # chance is 0.1: it learned
    assert set(results["ood"]["fashion_mnist->mnist"]) == {"toy/max_softmax", "toy/neg_logit_norm"}
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["models"]["toy"]["architecture"] == {"scale": 0.5}

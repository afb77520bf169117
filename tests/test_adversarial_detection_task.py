"""The ``adversarial_detection`` task end to end on the synthetic stand-ins (Chapter 5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TESTS
from sklearn.metrics import roc_auc_score

import jaxrobust as jr
from jaxrobust.config import load_config
from jaxrobust.errors import ConfigError
from jaxrobust.evaluate import evaluate
from jaxrobust.train import train_and_evaluate

SOURCES, INLIERS = 8, 48


def _config():
    config = load_config(TESTS / "configs" / "tiny.py")
    config.data.validation_split = "train"  # the defense's thresholds: a validation carve
    config.data.validation_size = 64
    config.models.vae.architecture.network = "mlp"
    config.models.vae.architecture.latent_dim = 2
    config.models.vae.architecture.iwae_samples = 8
    config.models.vae.architecture.iwae_chunk = 8
    config.models.vae.training.num_runs = 2
    for section in config.models.values():
        section.training.num_epochs = 1
    config.evaluate = {
        "checkpoint": "last",
        "batch_size": 64,
        "adversarial_detection": {
            "victim": "classifier",
            "detectors": ["vae/kl", "vae/hole_indicator"],
            "num_sources": SOURCES,
            "num_inliers": INLIERS,
            "chunk_size": 8,
            "attacks": {
                "fgsm": {"attack": "fgsm", "epsilon": 0.3},
                "cw": {"attack": "cw_l2", "max_iterations": 5},
                "encoder": {"attack": "encoder", "model": "vae", "epsilon": 0.1, "num_steps": 3},
                "adaptive": {
                    "attack": "adaptive",
                    "model": "vae",
                    "epsilon": 0.3,
                    "num_steps": 2,
                    "eot_samples": 2,
                },
            },
            "active_defense": {
                "models": ["vae"],
                "outliers": ["mnist"],
                "constant_outliers": [1.0],
                "num_defense_inputs": 8,
                "batch_size": 8,
                "hmc": {"num_steps": 3, "num_integration_steps": 2},
            },
        },
    }
    return config


@pytest.fixture(scope="module")
def evaluated(synthetic_data_root, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JAXROBUST_DATA", str(synthetic_data_root))
        workdir = tmp_path_factory.mktemp("adversarial")
        config = jr.config.resolve_config(_config())
        train_and_evaluate(config, workdir)
        results = evaluate(workdir, config)
        victim = jr.evaluate.restore_model(workdir, "classifier", "last")
        vae = jr.evaluate.restore_model(workdir, "vae", "last")
        images, labels = jr.data.load("fashion_mnist", "test")
        yield results["adversarial_detection"], victim, vae, images, labels, workdir, config


def test_fgsm_successes_and_a_deterministic_detector_match_a_direct_computation(evaluated):
    result, victim, vae, images, labels, workdir, _ = evaluated
    model, preprocess, variables, _ = victim
    x = preprocess(jnp.asarray(images[: SOURCES + INLIERS]))
    y = jnp.asarray(labels[:SOURCES].astype(np.int32))
    loss = jr.attacks.cross_entropy_loss(lambda z: model.logits(variables, z))
    adv = jr.attacks.fgsm(loss, x[:SOURCES], y, epsilon=0.3)
    success = np.asarray(jnp.argmax(model.logits(variables, adv), -1) != y)
    fgsm = result["attacks"]["fgsm"]
    assert (fgsm["attempts"], fgsm["successes"]) == (SOURCES, int(success.sum()))
    assert success.sum() > 0
    vae_model, _, vae_variables, _ = vae
    aurocs = []
    for r in range(2):  # the detector per run, from the closed-form KL (no sampling)
        v = jax.tree.map(lambda a, r=r: a[r], vae_variables)
        kl = lambda z, v=v: np.asarray(vae_model.score(v, z, ["kl"])["kl"])  # noqa: E731
        s_in, s_adv = kl(x[SOURCES:]), kl(adv[success])
        aurocs.append(roc_auc_score(np.r_[np.zeros(INLIERS), np.ones(len(s_adv))],
                                    np.r_[s_in, s_adv]))  # fmt: skip
    got = fgsm["detectors"]["vae/kl"]
    np.testing.assert_allclose(got["runs"]["auroc"], aurocs, atol=1e-6)
    assert got["num_runs"] == 2


def test_targeted_and_encoder_attacks_count_their_attempts(evaluated):
    result = evaluated[0]
    cw = result["attacks"]["cw"]
    assert cw["attempts"] == SOURCES * 9  # each source at the 9 other classes
    assert 0 <= cw["successes"] <= cw["attempts"]
    encoder = result["attacks"]["encoder"]
    assert (encoder["attempts"], encoder["runs"]) == (SOURCES, 2)
    assert set(encoder["detectors"]) == {"vae/kl", "vae/hole_indicator"}
    assert encoder["detectors"]["vae/kl"]["num_runs"] == 2
    adaptive = result["attacks"]["adaptive"]
    assert adaptive["attempts"] == SOURCES and 0 <= adaptive["evaded"] <= adaptive["successes"]
    assert adaptive["hole_threshold"] > 0


def test_active_defense_reports_every_group_with_validation_thresholds(evaluated):
    result, _, vae, _, _, workdir, _ = evaluated
    defense = result["active_defense"]["vae"]
    assert len(defense["thresholds"]) == 2
    assert all(t["fitted_on"] == "validation" for t in defense["thresholds"])
    groups = defense["groups"]
    assert {"inliers", "outlier:mnist", "attack:fgsm", "attack:encoder"} <= set(groups)
    for g in groups.values():
        assert g["inputs"] <= 8
        shares = [g["runs"][f"decided_{d}"] for d in ("inlier", "outlier", "attack")]
        np.testing.assert_allclose(np.sum(shares, axis=0), 1.0)
        assert np.all(np.abs(g["runs"]["gain"]) <= 1.0)
    white = groups["outlier:constant_1"]  # all-ones images: a deterministic reconstruction
    model, _, variables, _ = vae
    ones = jnp.ones((1, 28, 28, 1))
    expected = []
    for r in range(2):
        v = jax.tree.map(lambda a, r=r: a[r], variables)
        z = model.latent.mean(model.encode(v, ones))
        reconstruction = jnp.clip(model.decode(v, z), 0.0, 1.0)
        weights = jr.metrics.ms_ssim_weights(3)
        similarity = jr.metrics.ms_ssim(ones, reconstruction, filter_size=7, weights=weights)
        expected.append(float(similarity[0]))
    np.testing.assert_allclose(white["runs"]["ms_ssim_reconstruction"], expected, rtol=1e-5)
    assert white["inputs"] == 8
    text = (workdir / "results.md").read_text()
    assert "Active defense (Algorithm 2): vae" in text and "| attack:fgsm |" in text


def test_thresholds_on_the_test_split_and_too_few_test_images_are_refused(evaluated, tmp_path):
    *_, workdir, config = evaluated
    too_many = config.copy_and_resolve_references()
    too_many.evaluate.adversarial_detection.num_inliers = 10_000
    with pytest.raises(ConfigError, match="num_sources \\+ num_inliers"):
        evaluate(workdir, too_many)
    on_test = config.copy_and_resolve_references()
    on_test.data.validation_split = "test"
    with pytest.raises(ConfigError, match="test split"):
        evaluate(workdir, on_test)

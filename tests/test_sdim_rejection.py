"""A tiny SDIM trained end to end on the synthetic squares: Appendix D.1's vanishing
cross-entropy gradient (and the random start that breaks it), and the ``rejection`` /
``adversarial_rejection`` tasks against direct NumPy computations on the same model."""

from __future__ import annotations

import copy
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrobust as jr
from jaxrobust.config import import_file
from jaxrobust.errors import ConfigError
from jaxrobust.evaluate import evaluate
from jaxrobust.train import train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]
NUM_IMAGES = 32
#: exp(-104) underflows float32 even as a denormal: a softmax this confident is exactly one-hot
CONFIDENT_GAP = 104.0


@pytest.fixture(scope="module")
def sdim_workdir(synthetic_data_root, tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("JAXROBUST_DATA", str(synthetic_data_root))
    base = import_file(ROOT / "experiments" / "sdim" / "base.py")
    config = base.make_config("tiny sdim", "fashion_mnist", epochs=40, batch_size=64)
    config.progress = False
    config.data.validation_split = "test"  # the stand-in has 512 training images
    del config.models["disc"]
    config.models.sdim.architecture.update(
        {"widths": [4, 8, 8, 16], "head_hidden": 16, "rep_dim": 64, "t_hidden": 16}
    )
    config.models.sdim.training.optimizer.learning_rate = 1e-2
    config.evaluate = {
        "batch_size": 128,
        "rejection": {"models": ["sdim"], "percentiles": [1.0, 2.0], "out_datasets": ["mnist"]},
        "attacks": {
            "models": ["sdim"],
            "num_images": 64,
            "chunk_size": 32,
            "epsilons": [0.0, 0.1, 0.3],
            "attacks": {
                "fgsm": {"attack": "fgsm"},
                "pgd_no_start": {
                    "attack": "pgd",
                    "num_steps": 5,
                    "step_size": 0.1,
                    "random_start": False,
                },
            },
        },  # fmt: skip
        "adversarial_rejection": {
            "model": "sdim",
            "percentiles": [1.0, 2.0],
            "num_images": NUM_IMAGES,
            "chunk_size": 16,
            "attacks": {
                "deepfool": {"attack": "deepfool"},
                "boundary": {"attack": "boundary", "num_steps": 20},
                "local_search": {"attack": "local_search", "rounds": 5},
                "cw_0": {"attack": "cw_l2", "max_iterations": 20, "binary_search_steps": 2},
            },
        },  # fmt: skip
    }
    workdir = tmp_path_factory.mktemp("sdim")
    train_and_evaluate(config, workdir)
    results = evaluate(workdir, config)
    restored = jr.evaluate.restore_model(workdir, "sdim", "best")
    yield workdir, results, restored, config
    patch.undo()


def _test_inputs(restored, n: int):
    images, labels = jr.data.load("fashion_mnist", "test")
    return restored.preprocess(jnp.asarray(images[:n])), jnp.asarray(labels[:n].astype(np.int32))


def test_fgsm_cross_entropy_gradient_vanishes_on_sdim_but_not_from_a_random_start(sdim_workdir):
    """App. D.1: softmax(log p(x~|c)) saturates, so CE and its input gradient are exactly 0 on
    confidently classified inputs; a random start inside the eps ball revives the gradient."""
    _, results, restored, _ = sdim_workdir
    model, variables = restored.model, restored.variables
    x, y = _test_inputs(restored, 64)
    logits = np.asarray(model.logits(variables, x))
    top2 = np.sort(logits, -1)[:, -2:]
    confident = (logits.argmax(-1) == np.asarray(y)) & (top2[:, 1] - top2[:, 0] > CONFIDENT_GAP)
    assert confident.mean() > 0.9, "the tiny SDIM is not trained confidently enough"

    loss = jr.attacks.cross_entropy_loss(lambda a: model.logits(variables, a))
    grad = jax.vmap(jax.grad(lambda a, b: loss(a[None], b[None]).sum()))
    g = np.asarray(grad(x, y)).reshape(len(x), -1)
    assert np.all(g[confident] == 0.0)
    noisy = jnp.clip(x + jax.random.uniform(jax.random.key(3), x.shape, minval=-0.3, maxval=0.3),
                     0.0, 1.0)  # fmt: skip
    g_noisy = np.asarray(grad(noisy, y)).reshape(len(x), -1)
    assert np.mean(np.any(g_noisy != 0.0, -1)) > 0.2

    # so FGSM (and PGD without a random start) leaves the accuracy flat in eps (Fig. 4)
    clean = float(np.mean(logits.argmax(-1) == np.asarray(y)))
    for name in ("fgsm", "pgd_no_start"):
        accuracy = results["attacks"]["sdim"]["accuracy"][name]
        assert accuracy == pytest.approx([clean] * 3, abs=1.5 / 64)


def _train_logits(restored):
    images, labels = jr.data.load("fashion_mnist", "train")
    x = restored.preprocess(jnp.asarray(images))
    logits = np.asarray(restored.model.logits(restored.variables, x))
    return logits, labels


def test_rejection_thresholds_are_numpy_percentiles_of_the_training_scores(sdim_workdir):
    workdir, results, restored, _ = sdim_workdir
    logits, labels = _train_logits(restored)
    for percentile in ("1", "2"):
        row = results["rejection"]["sdim"][percentile]
        for c, threshold in enumerate(row["thresholds"]):
            own = logits[(labels == c) & (logits.argmax(-1) == c), c]
            np.testing.assert_allclose(threshold, np.percentile(own, float(percentile)), rtol=1e-5)
        assert results["adversarial_rejection"]["thresholds"][percentile] == pytest.approx(
            row["thresholds"]
        )
    assert (workdir / "plots" / "rejection_histograms_sdim_mnist.png").is_file()  # Fig. 2


def test_adversarial_rejection_counts_match_the_attack_and_eq_9_computed_directly(sdim_workdir):
    _, results, restored, _ = sdim_workdir
    task = results["adversarial_rejection"]
    model, variables = restored.model, restored.variables
    x, y = _test_inputs(restored, NUM_IMAGES)
    logits_fn = lambda a: model.logits(variables, a)  # noqa: E731
    clean = np.asarray(logits_fn(x))
    assert task["clean_accuracy"] == pytest.approx(np.mean(clean.argmax(-1) == np.asarray(y)))

    # DeepFool is deterministic: the same adversarial inputs, then Eq. 9 in NumPy
    adv = jr.attacks.deepfool(logits_fn, x).adversarial
    adv_logits = np.asarray(logits_fn(adv))
    success = adv_logits.argmax(-1) != np.asarray(y)
    entry = task["attacks"]["deepfool"]
    assert (entry["attempts"], entry["successes"]) == (NUM_IMAGES, int(success.sum()))
    for percentile, thresholds in task["thresholds"].items():
        predicted = adv_logits.argmax(-1)
        rejected = adv_logits.max(-1) < np.asarray(thresholds)[predicted]
        assert entry["detection"][percentile]["detected"] == int(np.sum(rejected & success))

    # targeted CW: every other class of each correctly classified source
    correct = int(np.sum(clean.argmax(-1) == np.asarray(y)))
    assert task["attacks"]["cw_0"]["attempts"] == 9 * correct
    assert task["attacks"]["cw_0"]["sources"] == correct
    for name in ("boundary", "local_search"):
        e = task["attacks"][name]
        assert e["attempts"] == NUM_IMAGES and 0 <= e["successes"] <= NUM_IMAGES
        for d in e["detection"].values():
            assert 0 <= d["detected"] <= e["successes"]

    # the logit table (Tables 4 / 6): the first class-0 image, clean and attacked
    table = task["logit_table"]
    first = int(np.flatnonzero(np.asarray(y) == 0)[0])
    assert table["image_index"] == first
    np.testing.assert_allclose(table["original"], clean[first], rtol=1e-5)
    np.testing.assert_allclose(table["untargeted"]["deepfool"], adv_logits[first], rtol=1e-4)
    assert len(table["targeted"]["cw_0"]) == 10 and table["targeted"]["cw_0"][0] is None


def test_a_bad_section_is_refused_before_any_attack(sdim_workdir):
    workdir, _, _, config = sdim_workdir

    def plan_only(section):
        bad = copy.deepcopy(config)
        bad.evaluate = {"batch_size": 128, "adversarial_rejection": section}
        return evaluate(workdir, bad)

    with pytest.raises(ConfigError, match="not a key of config.models"):
        plan_only({"model": "nope", "attacks": {"d": {"attack": "deepfool"}}})
    with pytest.raises(ConfigError, match="test images asked for"):
        plan_only({"model": "sdim", "num_images": 100000, "attacks": {"d": {"attack": "deepfool"}}})
    with pytest.raises(ConfigError, match="names no attack"):
        plan_only({"model": "sdim", "attacks": {}})
    with pytest.raises(ConfigError, match=r"percentiles"):
        plan_only(
            {"model": "sdim", "percentiles": [100.0], "attacks": {"d": {"attack": "deepfool"}}}
        )

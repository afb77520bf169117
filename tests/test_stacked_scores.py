"""Scores of stacked log-likelihoods against a direct NumPy/SciPy transcription of Ch.3."""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from jaxrobust import scores


def transcription(log_lik: np.ndarray, entropy: float) -> dict[str, np.ndarray]:
    """Eqs. 3.14-3.19 of seed 001 in float64, in the order the dissertation defines them."""
    w = softmax(log_lik, axis=0)
    mean = log_lik.mean(0)
    return {
        "expected_ll": mean,
        "log_predictive": logsumexp(log_lik, axis=0) - np.log(log_lik.shape[0]),
        "waic": mean - log_lik.var(0, ddof=1),
        "disagreement": 1.0 / np.sum(w**2, axis=0),
        "entropy": -np.sum(np.where(w > 0, w * np.log(np.where(w > 0, w, 1.0)), 0.0), axis=0),
        "std_ll": log_lik.std(0, ddof=1),
        "typicality": np.abs(-mean - entropy),
    }


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("scale", "spread"),
    [(-100.0, 5.0), (-3000.0, 40.0), (-1e4, 0.01)],  # MNIST-like, CIFAR-like, near-identical
)
def test_scores_match_transcription(scale, spread):
    rng = np.random.default_rng(0)
    log_lik_in = (scale + spread * rng.normal(size=(50, 300))).astype(np.float32)
    log_lik = (scale * 1.2 + spread * 3 * rng.normal(size=(50, 200))).astype(np.float32)
    entropy = scores.typicality_entropy(log_lik_in)
    np.testing.assert_allclose(entropy, -log_lik_in.astype(np.float64).mean(), rtol=1e-6)
    got = scores.stacked_scores(log_lik, entropy=entropy)
    expected = transcription(log_lik.astype(np.float64), float(entropy))
    assert set(got) == set(expected) == set(scores.STACKED_SCORES)
    for name, value in expected.items():
        rtol = 1e-3 if name == "std_ll" and spread < 1 else 2e-5
        np.testing.assert_allclose(got[name], value, rtol=rtol, atol=1e-4, err_msg=name)
        # The single-score functions agree with the batched call.
        score = scores.STACKED_SCORES[name]
        single = score.fn(log_lik, entropy) if score.needs_entropy else score.fn(log_lik)
        np.testing.assert_allclose(single, got[name], rtol=1e-6, err_msg=name)


class StackedScoreVariantsTest(chex.TestCase):
    """Every score equals the transcription both eagerly and inlined in a caller's ``jax.jit``."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_scores_match_transcription(self):
        rng = np.random.default_rng(0)
        log_lik = (-3000.0 * 1.2 + 40.0 * 3 * rng.normal(size=(50, 200))).astype(np.float32)
        entropy = np.float32(3000.0)
        expected = transcription(log_lik.astype(np.float64), float(entropy))
        for name, score in scores.STACKED_SCORES.items():
            fn = self.variant(score.fn)
            got = fn(log_lik, entropy) if score.needs_entropy else fn(log_lik)
            np.testing.assert_allclose(got, expected[name], rtol=2e-5, atol=1e-4, err_msg=name)


def test_limits_of_the_weight_scores():
    agree = np.full((8, 3), -500.0, np.float32)
    np.testing.assert_allclose(scores.disagreement(agree), 8.0, rtol=1e-6)
    np.testing.assert_allclose(scores.weight_entropy(agree), np.log(8.0), rtol=1e-6)
    one_dominates = agree.copy()
    one_dominates[3] = -100.0  # 400 nats above the others: w = (0, .., 1, .., 0)
    np.testing.assert_allclose(scores.disagreement(one_dominates), 1.0, rtol=1e-6)
    np.testing.assert_allclose(scores.weight_entropy(one_dominates), 0.0, atol=1e-6)


def test_directions_are_declared():
    higher_is_ood = {name: s.higher_is_ood for name, s in scores.STACKED_SCORES.items()}
    assert higher_is_ood == {
        "expected_ll": False,
        "log_predictive": False,
        "waic": False,
        "disagreement": False,
        "entropy": False,
        "std_ll": True,
        "typicality": True,
    }


def test_scores_are_jittable_and_vmappable_over_stacks():
    rng = np.random.default_rng(1)
    stacks = rng.normal(-50, 2, (4, 10, 30)).astype(np.float32)  # 4 runs, 10 samples, 30 inputs
    batched = jax.jit(jax.vmap(scores.weight_entropy))(stacks)
    for run in range(4):
        np.testing.assert_allclose(
            batched[run], transcription(stacks[run].astype(np.float64), 0.0)["entropy"], rtol=1e-5
        )


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match=r"must be \[S, N\]"):
        scores.waic(np.zeros(5))
    with pytest.raises(ValueError, match="at least 2 samples"):
        scores.std_log_likelihood(np.zeros((1, 5)))
    bad = np.zeros((3, 4))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="sample 1, input 2"):
        scores.disagreement(bad)
    with pytest.raises(ValueError, match="typicality needs entropy"):
        scores.stacked_scores(np.zeros((3, 4)), names=["typicality"])
    with pytest.raises(ValueError, match="Unknown scores"):
        scores.stacked_scores(np.zeros((3, 4)), names=["wiac"])
    with pytest.raises(ValueError, match="must be a scalar"):
        scores.typicality(np.zeros((3, 4)), np.zeros(2))

"""Detection metrics against scikit-learn: random, tied and degenerate inputs, 10^6 scores."""

from __future__ import annotations

import functools
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from jaxrobust import metrics


def sklearn_reference(scores_in, scores_out, positive: str, tpr_targets=(0.8, 0.95)) -> dict:
    """The same quantities from scikit-learn; larger score = more in-distribution."""
    scores_in = np.asarray(scores_in, np.float64)
    scores_out = np.asarray(scores_out, np.float64)
    y_in = np.r_[np.ones(len(scores_in)), np.zeros(len(scores_out))]
    # scikit-learn refuses infinities; finite stand-ins beyond the data keep the same ranking.
    s = np.nan_to_num(np.r_[scores_in, scores_out], posinf=1e300, neginf=-1e300)
    y, s_pos = (y_in, s) if positive == "in" else (1 - y_in, -s)
    # All thresholds: the default drop_intermediate=True drops collinear ROC points, which can
    # remove the most stringent threshold reaching the TPR (see jaxrobust.metrics.detection).
    fpr, tpr, _ = roc_curve(y, s_pos, drop_intermediate=False)
    out = {
        "auroc": roc_auc_score(y_in, s),
        "aupr_in": average_precision_score(y_in, s),
        "aupr_out": average_precision_score(1 - y_in, -s),
    }
    for t in tpr_targets:
        out[f"fpr{round(100 * t)}"] = fpr[np.argmax(tpr >= t)]
    return out


def assert_matches_sklearn(scores_in, scores_out, atol=1e-6):
    for positive in ("in", "out"):
        expected = sklearn_reference(scores_in, scores_out, positive)
        got = metrics.detection_summary(
            scores_in, scores_out, higher_is_ood=False, positive=positive
        )
        for key, value in expected.items():
            np.testing.assert_allclose(float(got[key]), value, atol=atol, err_msg=key)
        # The single metrics and the opposite declared direction on negated scores agree.
        flipped = dict(higher_is_ood=True)
        np.testing.assert_allclose(
            metrics.auroc(-scores_in, -scores_out, **flipped), expected["auroc"], atol=atol
        )
        np.testing.assert_allclose(
            metrics.average_precision(-scores_in, -scores_out, positive=positive, **flipped),
            expected[f"aupr_{positive}"],
            atol=atol,
        )
        np.testing.assert_allclose(
            metrics.fpr_at_tpr(-scores_in, -scores_out, tpr=0.95, positive=positive, **flipped),
            expected["fpr95"],
            atol=atol,
        )


CASES = {
    "continuous": lambda r: (r.normal(1, 1, 400), r.normal(0, 1, 300)),
    "many ties": lambda r: (r.integers(0, 5, 400), r.integers(0, 4, 300)),
    "all equal": lambda r: (np.zeros(50), np.zeros(70)),
    "one tiny class (out)": lambda r: (r.normal(0, 1, 500), r.normal(-1, 1, 3)),
    "one tiny class (in)": lambda r: (r.normal(0, 1, 1), r.normal(-1, 1, 500)),
    "perfect": lambda r: (r.uniform(2, 3, 40), r.uniform(0, 1, 60)),
    "inverted": lambda r: (r.uniform(0, 1, 40), r.uniform(2, 3, 60)),
    "with infinities": lambda r: (np.r_[r.normal(0, 1, 30), np.inf], np.r_[-np.inf, [0.0] * 5]),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_sklearn_on_named_cases(case, seed):
    scores_in, scores_out = CASES[case](np.random.default_rng(seed))
    assert_matches_sklearn(np.asarray(scores_in, np.float32), np.asarray(scores_out, np.float32))


# Sizes from a small set keep the number of compiled shapes (and the test time) bounded.
SIZES = st.sampled_from([1, 2, 5, 33])
SCORE_VALUES = st.one_of(
    st.integers(-3, 3).map(float),  # heavy ties
    # XLA flushes float32 subnormals to zero (documented in jaxrobust.metrics.detection).
    st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False, width=32),
)


@settings(
    max_examples=int(os.environ.get("JAXROBUST_HYPOTHESIS_EXAMPLES", 60)),
    deadline=None,
    derandomize=os.environ.get("JAXROBUST_HYPOTHESIS_EXAMPLES") is None,
)
@given(st.data(), SIZES, SIZES)
def test_matches_sklearn_on_generated_inputs(data, n_in, n_out):
    values = st.lists(SCORE_VALUES, min_size=n_in, max_size=n_in)
    scores_in = np.asarray(data.draw(values), np.float32)
    scores_out = np.asarray(
        data.draw(st.lists(SCORE_VALUES, min_size=n_out, max_size=n_out)), np.float32
    )
    assert_matches_sklearn(scores_in, scores_out)


@pytest.mark.gpu
def test_million_scores_match_sklearn_in_float32():
    rng = np.random.default_rng(0)
    # 10^6 scores, rounded to create ties, one side much larger than the other.
    scores_in = np.round(rng.normal(0.3, 1, 800_000), 3).astype(np.float32)
    scores_out = np.round(rng.normal(0, 1, 200_000), 3).astype(np.float32)
    assert_matches_sklearn(scores_in, scores_out, atol=2e-6)


class DetectionVariantsTest(chex.TestCase):
    """The metrics equal scikit-learn both eagerly and inlined in a caller's ``jax.jit``."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_summary_matches_sklearn(self):
        scores_in, scores_out = CASES["many ties"](np.random.default_rng(0))
        scores_in = np.asarray(scores_in, np.float32)
        scores_out = np.asarray(scores_out, np.float32)
        summary = self.variant(
            functools.partial(metrics.detection_summary, higher_is_ood=False, positive="out")
        )
        got = summary(scores_in, scores_out)
        for key, value in sklearn_reference(scores_in, scores_out, "out").items():
            np.testing.assert_allclose(float(got[key]), value, atol=1e-6, err_msg=key)


@pytest.mark.gpu
def test_metrics_run_inside_jit_and_vmap():
    rng = np.random.default_rng(1)
    scores_in = jnp.asarray(rng.normal(1, 1, (3, 200)), jnp.float32)
    scores_out = jnp.asarray(rng.normal(0, 1, (3, 150)), jnp.float32)

    @jax.jit
    def all_aurocs(a, b):
        return jax.vmap(lambda x, y: metrics.auroc(x, y, higher_is_ood=False))(a, b)

    got = all_aurocs(scores_in, scores_out)
    for i in range(3):
        expected = sklearn_reference(scores_in[i], scores_out[i], "in")["auroc"]
        np.testing.assert_allclose(got[i], expected, atol=1e-6)
    # Inside jit NaN cannot raise; it makes the result NaN instead of a wrong number.
    with_nan = scores_in.at[0, 5].set(jnp.nan)
    assert np.isnan(all_aurocs(with_nan, scores_out)[0])
    assert np.isfinite(all_aurocs(with_nan, scores_out)[1])


@pytest.mark.gpu
def test_roc_curve_matches_sklearn_points():
    rng = np.random.default_rng(2)
    scores_in = rng.integers(0, 20, 300).astype(np.float32)
    scores_out = rng.integers(0, 15, 200).astype(np.float32)
    fpr, tpr = metrics.roc_curve(scores_in, scores_out, higher_is_ood=False)
    y = np.r_[np.ones(300), np.zeros(200)]
    ref_fpr, ref_tpr, _ = roc_curve(y, np.r_[scores_in, scores_out], drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)


def test_detection_at_threshold_and_percentile_threshold():
    rng = np.random.default_rng(3)
    scores_in = rng.normal(2, 1, 1000).astype(np.float32)
    scores_out = rng.normal(-1, 1, 800).astype(np.float32)
    threshold = metrics.threshold_from_percentile(scores_in, higher_is_ood=False, percentile=2)
    np.testing.assert_allclose(threshold, np.percentile(scores_in, 2), rtol=1e-6)
    rates = metrics.detection_at_threshold(
        scores_in, scores_out, higher_is_ood=False, threshold=threshold
    )
    np.testing.assert_allclose(rates.detection_rate, np.mean(scores_out < threshold))
    np.testing.assert_allclose(rates.false_alarm_rate, np.mean(scores_in < threshold))
    # The same decision for a score where larger means OOD.
    threshold_ood = metrics.threshold_from_percentile(-scores_in, higher_is_ood=True, percentile=2)
    np.testing.assert_allclose(threshold_ood, -threshold, atol=1e-5)
    flipped = metrics.detection_at_threshold(
        -scores_in, -scores_out, higher_is_ood=True, threshold=threshold_ood
    )
    np.testing.assert_allclose(flipped.detection_rate, rates.detection_rate)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.auroc(np.zeros(3), np.zeros(0), higher_is_ood=False), "empty"),
        (lambda: metrics.auroc(np.zeros(0), np.zeros(3), higher_is_ood=False), "empty"),
        (lambda: metrics.auroc([0.1, np.nan], [0.2], higher_is_ood=False), "1 NaN"),
        (lambda: metrics.auroc([0.1], [0.2], higher_is_ood="yes"), "True or False"),
        (
            lambda: metrics.average_precision([1.0], [0.0], higher_is_ood=False, positive="pos"),
            "positive must be",
        ),
        (lambda: metrics.fpr_at_tpr([1.0], [0.0], higher_is_ood=False, tpr=95), r"\[0, 1\]"),
        (
            lambda: metrics.threshold_from_percentile([1.0], higher_is_ood=False, percentile=101),
            "percentile",
        ),
    ],
)
def test_bad_inputs_are_explained(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()

"""Input checks of the public array API (issue 13): attacks, metrics, scores, data helpers.

Every case here gave a silently wrong number (or a raw traceback) before: each test refuses the
input with a jaxrobust error that names the problem and the fix, or shows the result is NaN
(never plausible) where the values are unknown, inside a caller's ``jit``.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust import attacks
from jaxrobust.errors import InputError, JaxrobustError

W = jnp.array([[1.0, -1.0, 0.5], [-1.0, 1.0, -0.5]])  # 2 features -> 3 classes


def logits_fn(x):
    return x @ W


X = jnp.array([[0.6, 0.4], [0.4, 0.6], [0.5, 0.5]])
KEY = jax.random.key(0)
CE = attacks.cross_entropy_loss(logits_fn)

# ---------------------------------------------------------------------------------------------
# Attacks: labels against the model's class count


def _fgsm(y, x=X, **kw):
    return attacks.fgsm(CE, x, y, epsilon=0.1, **kw)


def _pgd(y, x=X, **kw):
    return attacks.pgd(CE, x, y, key=KEY, epsilon=0.1, step_size=0.05, num_steps=3, **kw)


def _fgsm_sweep(y, x=X, **kw):
    return attacks.fgsm_sweep(CE, x, y, jnp.array([0.05, 0.1]), **kw)


def _pgd_sweep(y, x=X, **kw):
    return attacks.pgd_sweep(
        CE, x, y, jnp.array([0.05, 0.1]), key=KEY, step_size=0.05, num_steps=2, **kw
    )


def _eot(y, x=X, **kw):
    eot = attacks.expectation_over_transformation(
        lambda x, y, k: CE(x + 0.01 * jax.random.normal(k, x.shape), y), 2, key=KEY, num_classes=3
    )
    return attacks.fgsm(eot, x, y, epsilon=0.1, **kw)


def _cw(y, x=X, **kw):
    return attacks.carlini_wagner_l2(logits_fn, x, y, max_iterations=3, binary_search_steps=1, **kw)


def _boundary(y, x=X, **kw):
    return attacks.boundary_attack(logits_fn, x, y, key=KEY, num_steps=3, **kw)


def _image_logits(z):  # images [B, 2, 2] -> 3 classes, from the first row of pixels
    return z.reshape(z.shape[0], 4)[:, :2] @ W


def _local_search(y, x=X, **kw):
    images = jnp.repeat(jnp.asarray(x)[:, None, :], 2, axis=1)  # [B, 2, 2]
    return attacks.local_search_attack(_image_logits, images, y, key=KEY, rounds=1, **kw)


def _jsma(y, x=X, **kw):
    return attacks.jsma(logits_fn, x, y, gamma=1.0)


LABELLED = {
    "fgsm": _fgsm,
    "pgd": _pgd,
    "fgsm_sweep": _fgsm_sweep,
    "pgd_sweep": _pgd_sweep,
    "eot_fgsm": _eot,
    "carlini_wagner_l2": _cw,
    "boundary_attack": _boundary,
    "local_search_attack": _local_search,
    "jsma": _jsma,  # its labels are the targets
}


@pytest.mark.parametrize("bad", [3, 7, -1])
@pytest.mark.parametrize("name", sorted(LABELLED))
def test_attacks_refuse_labels_outside_the_class_count(name, bad):
    labels = jnp.array([0, bad, 1])
    with pytest.raises(InputError, match=r"class indices in \[0, 3\).*positions \[1\]"):
        LABELLED[name](labels)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "carlini_wagner_l2", "boundary_attack"])
def test_attacks_refuse_targets_outside_the_class_count(name):
    labels, targets = jnp.array([0, 1, 2]), jnp.array([1, 3, 0])
    with pytest.raises(InputError, match=r"targets must be class indices in \[0, 3\)"):
        LABELLED[name](labels, targeted=True, targets=targets)


def test_gradient_attacks_take_an_explicit_class_count_for_a_custom_loss():
    custom = lambda x, y: CE(x, y) * 1.0  # noqa: E731  (declares no class count)
    with pytest.raises(InputError, match=r"\[0, 3\)"):
        attacks.fgsm(custom, X, jnp.array([0, 5, 1]), epsilon=0.1, num_classes=3)


@pytest.mark.parametrize("name", sorted(LABELLED))
def test_out_of_range_labels_under_jit_give_nan_adversarial_examples(name):
    """Inside the caller's jit the label values are unknown: the examples whose label is out of
    range come back NaN (so accuracy on them is NaN), the others are untouched by the check."""
    attack = jax.jit(LABELLED[name])
    good = attack(jnp.array([0, 1, 2]))
    bad = attack(jnp.array([0, 9, -1]))
    adv_good, adv_bad = (good, bad) if isinstance(good, jax.Array) else (good[0], bad[0])
    axis = 1 if "sweep" in name else 0  # sweeps are [E, B, ...]
    rows = lambda a, i: np.take(np.asarray(a), i, axis=axis)  # noqa: E731
    assert np.isfinite(rows(adv_good, [0, 1, 2])).all()
    assert np.isnan(rows(adv_bad, [1, 2])).all()
    np.testing.assert_allclose(rows(adv_bad, 0), rows(adv_good, 0))
    if not isinstance(good, jax.Array):
        assert not bool(bad.success[1]) and not bool(bad.success[2])


def test_losses_give_nan_value_and_nan_gradient_for_out_of_range_labels():
    for loss in (CE, attacks.margin_loss(logits_fn)):
        y = jnp.array([0, 3, -1])
        values = loss(X, y)
        grads = jax.grad(lambda x, loss=loss, y=y: jnp.sum(loss(x, y)))(X)
        assert np.isfinite(values[0]) and np.isnan(values[1:]).all()
        assert np.isfinite(grads[0]).all() and np.isnan(grads[1:]).all()  # before: zero


def test_pgd_under_jit_no_longer_returns_the_clean_input_for_a_too_large_label():
    attack = jax.jit(functools.partial(_pgd, random_start=False))
    adv = np.asarray(attack(jnp.array([0, 1, 3])))
    assert not np.allclose(adv[2], np.asarray(X[2]))  # before: exactly the clean input


# ---------------------------------------------------------------------------------------------
# Attacks: NaN / inf inputs and the domain check


def test_one_nan_pixel_does_not_hide_a_0_255_batch():
    x = np.full((3, 2), 255.0, np.float32)
    x[1, 0] = np.nan
    with pytest.raises(InputError, match=r"1 NaN/inf values of 6, first at \(1, 0\)") as err:
        attacks.fgsm(CE, x, jnp.array([0, 1, 2]), epsilon=0.1)
    assert "span [255, 255], outside the attack domain" in str(err.value)


@pytest.mark.parametrize("name", sorted(LABELLED))
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_attacks_refuse_non_finite_inputs(name, value):
    x = np.asarray(X).copy()
    x[2, 1] = value
    with pytest.raises(InputError, match=r"NaN/inf values .* first at \(2, (0, )?1\)"):
        LABELLED[name](jnp.array([0, 1, 2]), x=jnp.asarray(x))


def test_deepfool_and_latent_refuse_nan_inputs():
    x = np.asarray(X).copy()
    x[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN/inf"):
        attacks.deepfool(logits_fn, x)
    encode = lambda z: (z, jnp.zeros_like(z))  # noqa: E731
    with pytest.raises(InputError, match="NaN/inf"):
        attacks.latent_attack(encode, x, key=KEY, delta=0.1, step_size=0.05, num_steps=2)


def test_nan_from_the_model_on_finite_inputs_is_refused():
    huge = jnp.array([[3e38, -3e38]] * 3)  # logits overflow to inf
    with pytest.raises(JaxrobustError, match="from finite inputs") as err:
        attacks.fgsm(CE, huge, jnp.array([0, 1, 2]), epsilon=0.1, domain=None)
    assert isinstance(err.value, FloatingPointError)  # NonFiniteAttackError


def test_attack_errors_are_jaxrobust_errors_and_value_errors():
    for bad in (
        lambda: attacks.fgsm(CE, X.astype(jnp.int32), jnp.array([0, 1, 2]), epsilon=0.1),
        lambda: attacks.fgsm(CE, X[0], jnp.array([0]), epsilon=0.1),
        lambda: attacks.fgsm(CE, X[:0], jnp.array([], jnp.int32), epsilon=0.1),
        lambda: attacks.fgsm(CE, X, jnp.array([0.0, 1.0, 2.0]), epsilon=0.1),
        lambda: attacks.fgsm(CE, X, jnp.array([0, 1, 2]), epsilon=-0.1),
        lambda: attacks.fgsm(CE, jnp.ones((3, 5)) * 0.5, jnp.array([0, 1, 2]), epsilon=0.1),
    ):
        with pytest.raises(JaxrobustError) as err:
            bad()
        assert isinstance(err.value, ValueError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _pgd(jnp.array([0, 1, 2]))  # the valid call still works, silently


# ---------------------------------------------------------------------------------------------
# Metrics: 1-D scores or an explicit axis; precision; duplicate TPR keys

from jaxrobust import metrics  # noqa: E402
from jaxrobust.errors import PrecisionWarning  # noqa: E402

RNG = np.random.default_rng(0)
STACK_IN, STACK_OUT = RNG.normal(1.0, 1.0, (2, 30)), RNG.normal(0.0, 1.0, (2, 20))
STACK_IN[1] -= 2.0  # the second run ranks the other way: pooled, the two would blur


def _sklearn_auroc(s_in, s_out):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(np.r_[np.ones(len(s_in)), np.zeros(len(s_out))], np.r_[s_in, s_out])


DETECTION = {
    "auroc": lambda a, b, **kw: metrics.auroc(a, b, higher_is_ood=False, **kw),
    "average_precision": lambda a, b, **kw: metrics.average_precision(
        a, b, higher_is_ood=False, **kw
    ),
    "fpr_at_tpr": lambda a, b, **kw: metrics.fpr_at_tpr(a, b, higher_is_ood=False, **kw),
    "detection_summary": lambda a, b, **kw: metrics.detection_summary(
        a, b, higher_is_ood=False, **kw
    ),
    "detection_at_threshold": lambda a, b, **kw: metrics.detection_at_threshold(
        a, b, higher_is_ood=False, threshold=0.5, **kw
    ),
    "roc_curve": lambda a, b, **kw: metrics.roc_curve(a, b, higher_is_ood=False, **kw),
}


@pytest.mark.parametrize("name", sorted(DETECTION))
def test_detection_metrics_refuse_stacks_instead_of_pooling_them(name):
    with pytest.raises(InputError, match=r"shape \(2, 30\).*1-D scores \[N\].*axis=-1"):
        DETECTION[name](STACK_IN, STACK_OUT)


def test_threshold_from_percentile_refuses_a_stack():
    with pytest.raises(InputError, match="1-D scores"):
        metrics.threshold_from_percentile(STACK_IN, higher_is_ood=False, percentile=2)


@pytest.mark.parametrize("axis", [-1, 1])
def test_axis_gives_one_value_per_row(axis):
    per_row = metrics.auroc(STACK_IN, STACK_OUT, higher_is_ood=False, axis=axis)
    expected = [_sklearn_auroc(STACK_IN[r], STACK_OUT[r]) for r in range(2)]
    np.testing.assert_allclose(per_row, expected, rtol=1e-6)
    summary = metrics.detection_summary(STACK_IN, STACK_OUT, higher_is_ood=False, axis=axis)
    np.testing.assert_allclose(summary["auroc"], expected, rtol=1e-6)
    for r in range(2):
        one = metrics.detection_summary(STACK_IN[r], STACK_OUT[r], higher_is_ood=False)
        for key, value in one.items():
            np.testing.assert_allclose(summary[key][r], value, rtol=1e-6)
        ap = metrics.average_precision(STACK_IN, STACK_OUT, higher_is_ood=False, axis=axis)[r]
        np.testing.assert_allclose(
            ap, metrics.average_precision(STACK_IN[r], STACK_OUT[r], higher_is_ood=False)
        )
        fpr = metrics.fpr_at_tpr(STACK_IN, STACK_OUT, higher_is_ood=False, axis=axis)[r]
        np.testing.assert_allclose(
            fpr, metrics.fpr_at_tpr(STACK_IN[r], STACK_OUT[r], higher_is_ood=False)
        )
    # Axis 0 of a [N, R] layout, and stacks with different rows on the two sides.
    np.testing.assert_allclose(
        metrics.auroc(STACK_IN.T, STACK_OUT.T, higher_is_ood=False, axis=0), expected, rtol=1e-6
    )
    with pytest.raises(InputError, match="same rows on both sides"):
        metrics.auroc(STACK_IN, STACK_OUT[:1], higher_is_ood=False, axis=-1)


def test_axis_works_inside_jit():
    fn = jax.jit(lambda a, b: metrics.auroc(a, b, higher_is_ood=False, axis=-1))
    expected = [_sklearn_auroc(STACK_IN[r], STACK_OUT[r]) for r in range(2)]
    np.testing.assert_allclose(fn(STACK_IN, STACK_OUT), expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("scores_in", "scores_out"),
    [
        (np.array([1 + 1e-12, 1 + 3e-12]), np.array([1 + 2e-12])),  # float64 below float32 eps
        (np.array([2**25 + 1, 2**25 + 3], np.int64), np.array([2**25 + 2], np.int64)),  # > 2**24
        (np.array([1e300, 1e301]), np.array([1e302])),  # beyond the float32 range: all inf
    ],
)
def test_precision_loss_of_float32_conversion_warns(scores_in, scores_out):
    with pytest.warns(PrecisionWarning, match=r"merges 3 distinct values into [12]"):
        value = metrics.auroc(scores_in, scores_out, higher_is_ood=False)
    # The metric is that of the converted (tied) scores, and the warning says so.
    with np.errstate(over="ignore"):
        a, b = scores_in.astype(np.float32)[:, None], scores_out.astype(np.float32)[None, :]
    np.testing.assert_allclose(value, np.mean((a > b) + 0.5 * (a == b)))
    for name in ("average_precision", "fpr_at_tpr", "detection_summary"):
        with pytest.warns(PrecisionWarning):
            DETECTION[name](scores_in, scores_out)
    # Conversions that keep every value distinct (or ties that were there) do not warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.auroc(np.array([1, 3], np.int64), np.array([2], np.int64), higher_is_ood=False)
        metrics.auroc(np.array([0.1, 0.3]), np.array([0.2]), higher_is_ood=False)  # float64
        metrics.auroc(np.array([1.0, 1.0]), np.array([1.0]), higher_is_ood=False)  # real ties


def test_duplicate_tpr_keys_are_refused():
    with pytest.raises(InputError, match=r"0.95 and 0.951 both give the key 'fpr95'"):
        metrics.detection_summary([3.0, 2.0, 1.0], [0.0], higher_is_ood=False, tprs=(0.95, 0.951))
    summary = metrics.detection_summary([3.0, 1.0], [2.0], higher_is_ood=False, tprs=(0.5, 0.9))
    assert sorted(summary) == ["aupr_in", "aupr_out", "auroc", "fpr50", "fpr90"]


@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.auroc([1.0], [0.0], higher_is_ood="yes"),
        lambda: metrics.auroc(["a"], ["b"], higher_is_ood=False),
        lambda: metrics.auroc([1.0 + 1j], [0.0], higher_is_ood=False),
        lambda: metrics.auroc(1.0, [0.0], higher_is_ood=False),
        lambda: metrics.fpr_at_tpr([1.0], [0.0], higher_is_ood=False, tpr="high"),
        lambda: metrics.detection_summary([1.0], [0.0], higher_is_ood=False, tprs=0.95),
        lambda: metrics.detection_at_threshold([1.0], [0.0], higher_is_ood=False, threshold=np.nan),
        lambda: metrics.threshold_from_percentile([1.0], higher_is_ood=False, percentile="2"),
        lambda: metrics.expected_calibration_error([[0.5, 0.5]], [0], num_bins=True),
        lambda: metrics.adversarial_accuracy([0.0, 1.0], [0, 1]),
        lambda: metrics.adversarial_accuracy([0, 1], [0, -1]),
        lambda: metrics.attack_success_rate([0, 1], [1, 1], [0.5, 1.0]),
        lambda: metrics.classification_with_rejection([0, 1], [0, 1.5], [True, False]),
        lambda: metrics.accept_above_class_thresholds([[np.nan, 1.0]], [0.0, 0.0]),
        lambda: metrics.class_thresholds_from_percentile([[1.0, 2.0]], [3], 50.0),
        lambda: metrics.adversarial_accuracy([[0, 1], [0]], [0, 1]),
    ],
)
def test_metric_input_errors_are_jaxrobust_errors(call):
    with pytest.raises(JaxrobustError):
        call()


# ---------------------------------------------------------------------------------------------
# Scores: NaN, shapes and dtypes refused where an eager check is possible

from jaxrobust import scores  # noqa: E402

# NonFiniteScoreError (jaxrobust.scores._checks): a JaxrobustError and a FloatingPointError.
NonFiniteScoreError = JaxrobustError

LOGITS = jnp.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
STACK = jnp.stack([LOGITS, -LOGITS])


@pytest.mark.parametrize(
    "fn", [scores.max_softmax, scores.predictive_entropy], ids=["max_softmax", "entropy"]
)
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_predictive_scores_refuse_nan_and_inf_logits(fn, value):
    logits = np.asarray(LOGITS).copy()
    logits[1, 2] = value
    with pytest.raises(InputError, match=r"NaN/\+inf values \(first at \(1, 2\)\)"):
        fn(logits)


STACKED_FNS = {
    "bma_log_probabilities": scores.bma_log_probabilities,
    "expected_entropy": scores.expected_entropy,
    "mutual_information": scores.mutual_information,
    "variation_ratio": scores.variation_ratio,
    "classifier_stack_scores": scores.classifier_stack_scores,
}


@pytest.mark.parametrize("name", sorted(STACKED_FNS))
def test_stacked_classifier_scores_refuse_nan_and_wrong_ranks(name):
    stack = np.asarray(STACK).copy()
    stack[1, 0, 1] = np.nan
    with pytest.raises(InputError, match=r"first at \(1, 0, 1\)"):
        STACKED_FNS[name](stack)
    with pytest.raises(InputError, match=r"must be \[S, N, C\]"):
        STACKED_FNS[name](LOGITS)  # [N, C] where a stack is expected
    with pytest.raises(InputError, match="empty"):
        STACKED_FNS[name](np.zeros((2, 0, 3), np.float32))


def test_a_masked_class_gives_a_finite_entropy():
    logits = jnp.array([[0.0, 0.0, -jnp.inf]])
    np.testing.assert_allclose(scores.predictive_entropy(logits), [np.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(scores.expected_entropy(logits[None]), [np.log(2.0)], rtol=1e-6)


def test_predictive_scores_refuse_wrong_rank_and_dtype():
    with pytest.raises(InputError, match=r"must be \[N, C\]"):
        scores.max_softmax(jnp.zeros(3))
    with pytest.raises(InputError, match="real numbers"):
        scores.predictive_entropy(np.array([["a", "b"]]))


LOG_LIK = jnp.array([[-1.0, -10.0], [-3.0, -10.0]])


@pytest.mark.parametrize("name", ["waic", "disagreement", "entropy", "std_ll"])
def test_stacked_scores_refuse_minus_inf_where_they_would_be_nan(name):
    log_lik = np.asarray(LOG_LIK).copy()
    log_lik[1, 0] = -np.inf
    with pytest.raises(InputError, match=r"inf values \(first at sample 1, input 0\)"):
        scores.STACKED_SCORES[name].fn(log_lik)
    with pytest.raises(InputError, match="inf values"):
        scores.stacked_scores(log_lik, names=(name,))
    # The scores that stay defined at -inf accept it.
    log_lik = np.asarray(LOG_LIK).copy()
    log_lik[:, 0] = -np.inf  # zero likelihood under every sample
    out = scores.stacked_scores(
        log_lik, entropy=6.0, names=("expected_ll", "log_predictive", "typicality")
    )
    assert out["expected_ll"][0] == -np.inf and out["log_predictive"][0] == -np.inf
    assert out["typicality"][0] == np.inf and not any(np.isnan(v).any() for v in out.values())


def test_stacked_scores_refuse_plus_inf_bad_entropy_and_dtype():
    log_lik = np.asarray(LOG_LIK).copy()
    log_lik[0, 1] = np.inf
    with pytest.raises(InputError, match=r"\+inf"):
        scores.expected_log_likelihood(log_lik)
    with pytest.raises(InputError, match="entropy H must be finite"):
        scores.typicality(LOG_LIK, np.nan)
    with pytest.raises(InputError, match="real numbers"):
        scores.waic(np.array([[1 + 1j, 2], [3, 4]]))
    with pytest.raises(InputError, match="sequence of score names"):
        scores.stacked_scores(LOG_LIK, names="waic")


def test_importance_sampling_refuses_nan_log_weights_and_bad_keys():
    def nan_weights(key):
        return jnp.array([0.0, jnp.nan]) + jax.random.normal(key, (2,))

    with pytest.raises(NonFiniteScoreError, match=r"first at \(1,\)\).*log_weight_fn"):
        scores.importance_weighted_log_likelihood(nan_weights, key=KEY, num_samples=4, chunk_size=2)
    with pytest.raises(NonFiniteScoreError):
        scores.repeated_log_likelihood_std(
            nan_weights, key=KEY, num_samples=2, num_repeats=2, chunk_size=2
        )
    # Inside a jit the value is unknown: NaN, never a plausible number.
    jitted = jax.jit(
        lambda k: (
            scores.importance_weighted_log_likelihood(
                nan_weights, key=k, num_samples=4, chunk_size=2
            ).log_likelihood
        )
    )
    out = jitted(KEY)
    assert np.isfinite(out[0]) and np.isnan(out[1])
    with pytest.raises(InputError, match="PRNG key"):
        scores.importance_weighted_log_likelihood(nan_weights, key=7, num_samples=4, chunk_size=2)
    with pytest.raises(InputError, match="key is required"):
        scores.repeated_log_likelihoods(
            nan_weights, key=None, num_samples=2, num_repeats=2, chunk_size=2
        )
    with pytest.raises(InputError, match=r"shape \[N\]"):
        scores.importance_weighted_log_likelihood(
            lambda k: jnp.zeros((0,)), key=KEY, num_samples=2, chunk_size=2
        )


def test_compute_scores_checks_what_each_score_returns():
    table = {
        "ok": scores.Score(lambda o: o["x"].sum(-1), False, "sum", ("x",)),
        "pooled": scores.Score(lambda o: o["x"].sum(), False, "total", ("x",)),
        "nan": scores.Score(lambda o: o["x"].sum(-1) * jnp.nan, False, "nan", ("x",)),
    }
    outputs = lambda v, x, *, key, names: {"x": x}  # noqa: E731
    x = jnp.ones((2, 3))
    assert scores.compute_scores(table, outputs, None, x, ["ok"], key=None)["ok"].shape == (2,)
    with pytest.raises(InputError, match=r"'pooled' returned shape \(\)"):
        scores.compute_scores(table, outputs, None, x, ["pooled"], key=None)
    with pytest.raises(NonFiniteScoreError, match="'nan'"):
        scores.compute_scores(table, outputs, None, x, ["nan"], key=None)
    with pytest.raises(JaxrobustError, match="Unknown score 'nope'"):
        scores.compute_scores(table, outputs, None, x, ["nope"], key=None)


# ---------------------------------------------------------------------------------------------
# Data helpers: sizes, shapes, dtypes and ranges

from jaxrobust.data.batching import padded_batches, shuffled_batches, steps_per_epoch  # noqa: E402
from jaxrobust.data.preprocess import Preprocess  # noqa: E402
from jaxrobust.data.splits import carve_validation  # noqa: E402
from jaxrobust.errors import ConfigError  # noqa: E402

UINT8 = np.arange(2 * 4 * 4 * 1, dtype=np.uint8).reshape(2, 4, 4, 1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: padded_batches(10, 0), "batch_size must be >= 1, got 0"),  # was ZeroDivision
        (lambda: padded_batches(10, -2), "batch_size must be >= 1"),  # was an empty plan
        (lambda: padded_batches(0, 4), "num_examples must be >= 1"),
        (lambda: padded_batches(10, 2.5), "batch_size must be an integer"),
        (lambda: steps_per_epoch(-5, 2), "num_examples must be >= 0"),
        (lambda: steps_per_epoch(10, True), "batch_size must be an integer"),
        (lambda: steps_per_epoch(3, 4), "at most 3"),
        (lambda: steps_per_epoch(0, 4), "dataset is empty"),
        (lambda: shuffled_batches(None, 10, 2), "PRNG key"),
    ],
)
def test_batching_refuses_bad_sizes(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_padded_batches_with_a_negative_size_no_longer_returns_an_empty_plan():
    with pytest.raises(InputError):
        padded_batches(-3, 2)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (20, r"gives 20 of 20 .* count in \[1, 19\]"),  # carve larger than / equal to the data
        (50, r"gives 50 of 20"),
        (-3, r"gives -3 of 20"),
        (0, r"gives 0 of 20"),
        (1.5, "integer count or a fraction"),
        (float("nan"), "integer count or a fraction"),
        (True, "integer count or a fraction"),
        ("100", "integer count or a fraction"),
    ],
)
def test_carve_validation_refuses_bad_sizes(size, message):
    images, labels = np.zeros((20, 2, 2, 1), np.uint8), np.zeros(20, np.int32)
    with pytest.raises(InputError, match=message):
        carve_validation(images, labels, size=size, seed=0)


def test_carve_validation_refuses_mismatched_labels_bad_seed_and_tiny_splits():
    images = np.zeros((5, 2, 2, 1), np.uint8)
    with pytest.raises(InputError, match="5 images but 4 labels"):
        carve_validation(images, np.zeros(4), size=1, seed=0)
    with pytest.raises(InputError, match="seed must be an integer >= 0"):
        carve_validation(images, np.zeros(5), size=1, seed=-1)
    with pytest.raises(InputError, match="fewer than the 2 needed"):
        carve_validation(images[:1], np.zeros(1), size=1, seed=0)
    with pytest.raises(InputError, match="leading example axis"):
        carve_validation(None, np.zeros(5), size=1, seed=0)
    (tr, _), (va, _) = carve_validation(images, np.zeros(5), size=np.int64(2), seed=0)
    assert len(tr) == 3 and len(va) == 2  # NumPy integers are counts too


def test_preprocess_refuses_float_images_where_uint8_is_expected():
    already_scaled = UINT8.astype(np.float32) / 255.0
    with pytest.raises(InputError, match=r"scale=True.*float32 images \(already scaled\?\)"):
        Preprocess()(already_scaled)  # before: divided by 255 a second time, silently
    with pytest.raises(InputError, match="already scaled"):
        jax.jit(lambda x: Preprocess()(x))(already_scaled)  # dtypes are static: also in a jit
    np.testing.assert_allclose(Preprocess(scale=False)(already_scaled), already_scaled)


def test_preprocess_refuses_bad_ranks_ranges_nan_and_channel_counts():
    with pytest.raises(InputError, match=r"\[B, H, W, C\].*images\[\.\.\., None\]"):
        Preprocess()(UINT8[..., 0])
    with pytest.raises(InputError, match=r"pixels in \[0, 255\]"):
        Preprocess()(UINT8.astype(np.int32) * 100)
    with pytest.raises(InputError, match="NaN/inf"):
        Preprocess(scale=False)(np.full((1, 2, 2, 1), np.nan, np.float32))
    rgb_stats = Preprocess.from_config({"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]})
    with pytest.raises(InputError, match="mean has 3 entries for 1-channel images"):
        rgb_stats(UINT8)  # before: broadcast to 3 channels silently
    with pytest.raises(InputError, match="needs a random key"):
        Preprocess(horizontal_flip=True)(UINT8, train=True)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"resize_to": 0}, "resize_to must be an integer >= 1"),
        ({"resize_to": -32}, "resize_to must be an integer >= 1"),
        ({"crop_padding": -4}, "crop_padding must be an integer >= 0"),
        ({"crop_padding": 2.5}, "crop_padding must be an integer"),
        ({"mean": 0.5, "std": 0.5}, "list of per-channel numbers"),
        ({"mean": [np.nan], "std": [1.0]}, "finite numbers"),
        ({"mean": [0.5, 0.5], "std": [0.2, 0.2, 0.2]}, "mean has 2 entries but std 3"),
        ({"scale": "yes"}, "scale must be True or False"),
        ({"resize": 32}, "Unknown preprocessing option"),
    ],
)
def test_preprocess_config_values_are_checked(cfg, message):
    with pytest.raises(ConfigError, match=message):
        Preprocess.from_config(cfg)

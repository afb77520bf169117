"""Property-based tests of the public array API (issue 13): metrics, attacks, scores, data.

Every generated case, valid or not (shapes, dtypes, NaN/inf, out-of-range labels, empty arrays,
wrong ranks, huge values), must either return a correct, finite result (checked against an
independent reference: scikit-learn, NumPy closed forms) or raise a ``JaxrobustError``; never
another exception type, never a NaN result. The one exception is a documented NaN for a
quantity that does not exist (accuracy on accepted inputs when none is accepted), counted as
``undefined``.

Budget: ``JAXROBUST_FUZZ_EXAMPLES`` examples per property (tests/fuzz_budget.py; the slow
search attacks get a fifth, the importance sampler half). Sizes come from a few values so that
the jitted metrics compile once per shape. The outcome counts per input class are written as JSON to
``$JAXROBUST_FUZZ_REPORT`` at the end of the module, for RELIABILITY.md.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fuzz_budget import FUZZ_EXAMPLES, FUZZ_SETTINGS, Outcomes
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_curve

from jaxrobust import attacks, metrics, scores
from jaxrobust.data import load
from jaxrobust.data.batching import padded_batches, steps_per_epoch
from jaxrobust.data.preprocess import Preprocess
from jaxrobust.data.splits import carve_validation
from jaxrobust.errors import JaxrobustError, PrecisionWarning

OUTCOMES = Outcomes("test_fuzz_api")
SLOW = settings(FUZZ_SETTINGS, max_examples=max(3, FUZZ_EXAMPLES // 5))
MEDIUM = settings(FUZZ_SETTINGS, max_examples=max(5, FUZZ_EXAMPLES // 2))


@pytest.fixture(scope="module", autouse=True)
def _write_report():
    yield
    OUTCOMES.write()


class WrongResult(AssertionError):
    pass


def run_case(input_class: str, call, check) -> None:
    """Run one case: ``check(result)`` returns True (correct), "undefined" (a documented NaN)
    or raises WrongResult; a JaxrobustError is a refusal; anything else fails the property."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrecisionWarning)  # the result is still checked
            warnings.simplefilter("ignore", DeprecationWarning)
            result = call()
    except JaxrobustError:
        OUTCOMES.record(input_class, "refused")
        return
    except Exception:
        OUTCOMES.record(input_class, "traceback")
        raise
    try:
        verdict = check(result)
    except WrongResult:
        nan = any(np.isnan(np.asarray(leaf, float)).any() for leaf in _leaves(result))
        OUTCOMES.record(input_class, "nan_result" if nan else "wrong_result")
        raise
    OUTCOMES.record(input_class, "undefined" if verdict == "undefined" else "ok")


def _leaves(result):
    return [leaf for leaf in jax.tree_util.tree_leaves(result) if np.size(leaf)]


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise WrongResult(message)


def finite(result) -> bool:
    return all(np.isfinite(np.asarray(leaf, float)).all() for leaf in _leaves(result))


def close(a, b, tol: float = 1e-5) -> bool:
    return bool(np.allclose(np.asarray(a, float), np.asarray(b, float), atol=tol, rtol=tol))


# ---------------------------------------------------------------------------------------------
# Detection metrics

SIZES = st.sampled_from([1, 6])  # few shapes: the jitted metrics compile once per shape

SCORE_CLASSES = (
    "float32",
    "float64",
    "int64",
    "ties",
    "with_inf",
    "nan",
    "empty",
    "stack_2d",
    "scalar",
    "huge_float64",
    "large_int",
    "bool",
    "complex",
    "strings",
)


@st.composite
def score_pair(draw):
    kind = draw(st.sampled_from(SCORE_CLASSES))
    n_in, n_out = draw(SIZES), draw(SIZES)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))

    def side(n):
        if kind in ("float32", "nan", "with_inf", "stack_2d", "scalar", "empty"):
            return rng.normal(0, draw(st.sampled_from([1e-3, 1.0, 1e6])), n).astype(np.float32)
        if kind == "float64":
            return rng.normal(0, 1, n)
        if kind == "int64":
            return rng.integers(-5, 6, n)
        if kind == "ties":
            return rng.integers(0, 3, n).astype(np.float32)
        if kind == "huge_float64":
            return rng.choice([1e300, 2e300, -1e300, 1.0, 1.0 + 1e-12], n)
        if kind == "large_int":
            return 2**25 + rng.integers(0, 4, n)
        if kind == "bool":
            return rng.integers(0, 2, n).astype(bool)
        if kind == "complex":
            return rng.normal(size=n) + 1j
        return np.array(["a"] * n)

    a, b = side(n_in), side(n_out)
    if kind == "nan":
        a[draw(st.integers(0, n_in - 1))] = np.nan
    elif kind == "with_inf":
        b[0] = draw(st.sampled_from([np.inf, -np.inf]))
    elif kind == "stack_2d":
        a, b = np.stack([a, a]), np.stack([b, b])
    elif kind == "scalar":
        a = a[0]
    elif kind == "empty":
        b = b[:0]
    return kind, a, b


def _reference_scores(a, b):
    """The scores the metrics compare: float32 (ties where conversion merges values)."""
    with np.errstate(over="ignore"):
        return np.asarray(a).astype(np.float32), np.asarray(b).astype(np.float32)


def _auroc_reference(a, b):
    a, b = a.astype(np.float64)[:, None], b.astype(np.float64)[None, :]
    return np.mean((a > b) + 0.5 * (a == b))


@FUZZ_SETTINGS
@given(score_pair(), st.booleans(), st.sampled_from(["in", "out"]))
def test_detection_metrics_are_right_or_refused(case, higher_is_ood, positive):
    kind, a, b = case

    def check(summary):
        expect(finite(summary), f"non-finite summary {summary}")
        ra, rb = _reference_scores(a, b)
        if higher_is_ood:
            ra, rb = -ra, -rb
        expect(close(summary["auroc"], _auroc_reference(ra, rb)), f"auroc {summary['auroc']}")
        if np.isfinite(np.r_[ra, rb]).all():
            labels = np.r_[np.ones(ra.size), np.zeros(rb.size)]
            s = np.r_[ra, rb].astype(np.float64)
            expect(close(summary["aupr_in"], average_precision_score(labels, s), 1e-4), "aupr_in")
            expect(
                close(summary["aupr_out"], average_precision_score(1 - labels, -s), 1e-4),
                "aupr_out",
            )
            pos_labels, pos_s = (labels, s) if positive == "in" else (1 - labels, -s)
            fpr, tpr, _ = roc_curve(pos_labels, pos_s, drop_intermediate=False)
            expect(close(summary["fpr95"], fpr[np.argmax(tpr >= 0.95)]), "fpr95")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrecisionWarning)
            single = metrics.auroc(a, b, higher_is_ood=higher_is_ood)
        expect(close(single, summary["auroc"]), "auroc != summary")
        return True

    run_case(
        f"detection/{kind}",
        lambda: metrics.detection_summary(
            a, b, higher_is_ood=higher_is_ood, positive=positive, tprs=(0.8, 0.95)
        ),
        check,
    )


@FUZZ_SETTINGS
@given(
    score_pair(),
    st.one_of(
        st.sampled_from([0.0, 0.5, 0.8, 0.95, 1.0]),
        st.floats(0, 1),
        st.sampled_from([-0.1, 1.5, 95, float("nan"), float("inf"), "0.95", None, True]),
        st.tuples(st.floats(0, 1), st.floats(0, 1)),
    ),
)
def test_fpr_at_tpr_and_tpr_keys_are_right_or_refused(case, tpr):
    kind, a, b = case

    def check_one(value):
        expect(finite(value) and 0 <= float(value) <= 1, f"fpr {value}")
        return True

    if isinstance(tpr, tuple):  # tprs of detection_summary: duplicates refused

        def check_keys(summary):
            keys = {f"fpr{round(100 * t):d}" for t in tpr}
            expect(keys <= set(summary) and finite(summary), f"keys {sorted(summary)}")
            expect(len(keys) == len(set(tpr)) or tpr[0] == tpr[1], "a dropped key")
            return True

        run_case(
            f"tprs/{kind}",
            lambda: metrics.detection_summary(a, b, higher_is_ood=False, tprs=tpr),
            check_keys,
        )
    else:
        run_case(
            f"fpr_at_tpr/{kind}",
            lambda: metrics.fpr_at_tpr(a, b, higher_is_ood=False, tpr=tpr),
            check_one,
        )


@FUZZ_SETTINGS
@given(st.sampled_from([1, 3]), SIZES, SIZES, st.integers(0, 2**16))
def test_axis_gives_the_per_row_metric(rows, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(rows, n_in)), rng.normal(size=(rows, n_out)).astype(np.float32)

    def check(values):
        expected = [_auroc_reference(*_reference_scores(a[r], b[r])) for r in range(rows)]
        expect(close(values, expected) and values.shape == (rows,), f"{values} != {expected}")
        return True

    run_case("detection/axis", lambda: metrics.auroc(a, b, higher_is_ood=False, axis=-1), check)


# ---------------------------------------------------------------------------------------------
# Calibration, rejection, adversarial accuracy

PROB_CLASSES = (
    "valid",
    "nan",
    "not_normalised",
    "logits",
    "labels_out_of_range",
    "float_labels",
    "one_column",
    "empty",
    "wrong_rank",
    "mismatched",
)


@st.composite
def probs_and_labels(draw):
    kind = draw(st.sampled_from(PROB_CLASSES))
    n, c = draw(SIZES), draw(st.sampled_from([2, 4]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    logits = rng.normal(0, draw(st.sampled_from([0.1, 1.0, 10.0])), (n, c)).astype(np.float32)
    probs = np.array(jax.nn.softmax(logits, axis=-1))
    labels = rng.integers(0, c, n)
    if kind == "nan":
        probs[0, 0] = np.nan
    elif kind == "not_normalised":
        probs = probs * 1.5
    elif kind == "logits":
        probs = logits
    elif kind == "labels_out_of_range":
        labels[-1] = draw(st.sampled_from([-1, c, c + 10]))
    elif kind == "float_labels":
        labels = labels.astype(np.float32)
    elif kind == "one_column":
        probs = np.ones((n, 1), np.float32)
    elif kind == "empty":
        probs, labels = probs[:0], labels[:0]
    elif kind == "wrong_rank":
        probs = probs[None]
    elif kind == "mismatched":
        labels = labels[:-1]
    return kind, probs, labels, draw(st.sampled_from([1, 5, 15]))


def _ece_reference(probs, labels, num_bins):
    conf = probs.max(axis=1).astype(np.float64)
    hit = (probs.argmax(axis=1) == labels).astype(np.float64)
    index = np.searchsorted(np.arange(1, num_bins + 1) / num_bins, conf, side="left")
    gaps = [abs(np.sum(conf[index == m] - hit[index == m])) for m in range(num_bins)]
    return np.sum(gaps) / len(conf)


@FUZZ_SETTINGS
@given(probs_and_labels())
def test_calibration_metrics_are_right_or_refused(case):
    kind, probs, labels, num_bins = case

    def check(summary):
        expect(finite(summary), f"non-finite {summary}")
        p = probs.astype(np.float64)
        onehot = np.eye(p.shape[1])[labels]
        expect(close(summary["ece"], _ece_reference(probs, labels, num_bins), 1e-5), "ece")
        expect(close(summary["brier"], np.mean(np.sum((p - onehot) ** 2, 1)), 1e-5), "brier")
        nll = np.mean(-np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-38)))
        expect(close(summary["nll"], nll, 1e-4), "nll")
        expect(close(summary["accuracy"], np.mean(p.argmax(1) == labels)), "accuracy")
        return True

    run_case(
        f"calibration/{kind}",
        lambda: metrics.calibration_summary(probs, labels, num_bins=num_bins),
        check,
    )


CLASS_INDEX_CLASSES = ("valid", "none_accepted", "float", "negative", "mismatched", "empty")


@FUZZ_SETTINGS
@given(st.sampled_from(CLASS_INDEX_CLASSES), SIZES, st.integers(0, 2**16))
def test_rejection_and_adversarial_metrics_are_right_or_refused(kind, n, seed):
    rng = np.random.default_rng(seed)
    predictions, labels = rng.integers(0, 3, n), rng.integers(0, 3, n)
    accepted = rng.integers(0, 2, n).astype(bool)
    if kind == "none_accepted":
        accepted[:] = False
    elif kind == "float":
        predictions = predictions + 0.5
    elif kind == "negative":
        labels[0] = -1
    elif kind == "mismatched":
        labels = labels[1:]
    elif kind == "empty":
        predictions, labels, accepted = predictions[:0], labels[:0], accepted[:0]

    def check_rejection(result):
        num = int(accepted.sum())
        expect(int(result.num_accepted) == num, "num_accepted")
        expect(close(result.rejection_rate, 1 - num / n), "rejection_rate")
        if num == 0:  # documented: accuracy on no accepted input is NaN
            expect(bool(np.isnan(result.accuracy_on_accepted)), "accuracy with none accepted")
            return "undefined"
        right = np.sum(accepted & (predictions == labels)) / num
        expect(close(result.accuracy_on_accepted, right), "accuracy_on_accepted")
        return True

    run_case(
        f"rejection/{kind}",
        lambda: metrics.classification_with_rejection(predictions, labels, accepted),
        check_rejection,
    )

    def check_accuracy(value):
        expect(close(value, np.mean(predictions == labels)), f"adversarial accuracy {value}")
        return True

    run_case(
        f"adversarial_accuracy/{kind}",
        lambda: metrics.adversarial_accuracy(predictions, labels),
        check_accuracy,
    )


# ---------------------------------------------------------------------------------------------
# Attacks on a tiny linear model

ATTACK_CLASSES = (
    "valid",
    "valid",
    "valid",
    "valid",
    "label_too_large",
    "label_negative",
    "nan_pixel",
    "inf_pixel",
    "out_of_domain",
    "uint8",
    "float_labels",
    "wrong_label_shape",
    "empty_batch",
    "no_batch_axis",
    "bad_epsilon",
    "huge_unbounded",
    "wrong_features",
)


@st.composite
def attack_case(draw):
    kind = draw(st.sampled_from(ATTACK_CLASSES))
    b, d, c = draw(st.sampled_from([1, 3])), 2, draw(st.sampled_from([2, 3]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    w = jnp.asarray(rng.normal(size=(d, c)).astype(np.float32))
    x = rng.uniform(0.05, 0.95, (b, d)).astype(np.float32)
    y = rng.integers(0, c, b)
    epsilon, domain = float(draw(st.sampled_from([0.0, 0.05, 0.2]))), (0.0, 1.0)
    if kind == "label_too_large":
        y[-1] = c + draw(st.integers(0, 3))
    elif kind == "label_negative":
        y[0] = -1
    elif kind == "nan_pixel":
        x[-1, 0] = np.nan
    elif kind == "inf_pixel":
        x[0, -1] = -np.inf
    elif kind == "out_of_domain":
        x = x * 255.0
    elif kind == "uint8":
        x = (x * 255).astype(np.uint8)
    elif kind == "float_labels":
        y = y.astype(np.float32)
    elif kind == "wrong_label_shape":
        y = np.r_[y, 0]
    elif kind == "empty_batch":
        x, y = x[:0], y[:0]
    elif kind == "no_batch_axis":
        x, y = x[0], y[:1]
    elif kind == "bad_epsilon":
        epsilon = draw(st.sampled_from([-0.1, float("nan"), float("inf")]))
    elif kind == "huge_unbounded":
        x, domain = x * 3e38, None
    elif kind == "wrong_features":
        x = np.concatenate([x, x], axis=1)
    return kind, w, x, y, epsilon, domain


def _check_adversarial(x, epsilon, domain, norm_bound=True):
    def check(x_adv):
        x_adv = np.asarray(x_adv)
        expect(x_adv.shape == np.shape(x), f"shape {x_adv.shape}")
        expect(finite(x_adv), "non-finite adversarial inputs")
        if domain is not None:
            expect(
                bool((x_adv >= domain[0] - 1e-6).all() and (x_adv <= domain[1] + 1e-6).all()),
                "outside the domain",
            )
        if norm_bound:
            expect(float(np.max(np.abs(x_adv - x))) <= epsilon + 1e-5, "outside the eps ball")
        return True

    return check


@FUZZ_SETTINGS
@given(attack_case(), st.sampled_from(["fgsm", "pgd", "pgd_l2", "margin_fgsm"]))
def test_gradient_attacks_are_right_or_refused(case, which):
    kind, w, x, y, epsilon, domain = case
    logits_fn = lambda z: z @ w  # noqa: E731
    loss = (attacks.margin_loss if which == "margin_fgsm" else attacks.cross_entropy_loss)(
        logits_fn
    )

    def call():
        if which in ("fgsm", "margin_fgsm"):
            return attacks.fgsm(loss, x, y, epsilon=epsilon, domain=domain)
        norm = "l2" if which == "pgd_l2" else "linf"
        return attacks.pgd(
            loss,
            x,
            y,
            key=jax.random.key(0),
            epsilon=epsilon,
            step_size=epsilon / 2 + 0.01,
            num_steps=2,
            norm=norm,
            domain=domain,
        )

    check = _check_adversarial(x, epsilon if which != "pgd_l2" else epsilon + 1e-5, domain)
    run_case(f"attack_{which}/{kind}", call, check)


@jax.jit
def _jitted_pgd(w, x, y):
    loss = attacks.cross_entropy_loss(lambda z: z @ w)
    return attacks.pgd(loss, x, y, key=jax.random.key(1), epsilon=0.1, step_size=0.05, num_steps=2)


@FUZZ_SETTINGS
@given(st.sampled_from([1, 4]), st.sampled_from([2, 3]), st.integers(0, 2**16))
def test_attacks_under_jit_poison_out_of_range_labels(batch, classes, seed):
    """Inside a jit labels are unknown: an out-of-range label must give NaN, never the clean
    input (which would count as a robust example)."""
    rng = np.random.default_rng(seed)
    w = jnp.asarray(rng.normal(size=(2, classes)).astype(np.float32))
    x = jnp.asarray(rng.uniform(0.1, 0.9, (batch, 2)).astype(np.float32))
    y = rng.integers(-2, classes + 2, batch)
    bad = (y < 0) | (y >= classes)

    def check(x_adv):
        x_adv = np.asarray(x_adv)
        expect(bool(np.isnan(x_adv[bad]).all()), "an out-of-range label was not poisoned")
        expect(bool(np.isfinite(x_adv[~bad]).all()), "a valid label was poisoned")
        return True

    run_case(
        "attack_pgd_jit/" + ("out_of_range" if bad.any() else "valid"),
        lambda: _jitted_pgd(w, x, jnp.asarray(y)),
        check,
    )


@SLOW
@given(attack_case(), st.sampled_from(["deepfool", "carlini_wagner_l2", "jsma", "boundary"]))
def test_search_attacks_are_right_or_refused(case, which):
    kind, w, x, y, _, domain = case
    logits_fn = lambda z: z @ w  # noqa: E731

    def call():
        if which == "deepfool":
            return attacks.deepfool(logits_fn, x, max_iterations=3, domain=domain)
        if which == "carlini_wagner_l2":
            return attacks.carlini_wagner_l2(
                logits_fn, x, y, binary_search_steps=1, max_iterations=3, domain=domain
            )
        if which == "jsma":
            return attacks.jsma(logits_fn, x, y, gamma=1.0, domain=domain)
        return attacks.boundary_attack(
            logits_fn, x, y, key=jax.random.key(0), num_steps=3, init_trials=3, domain=domain
        )

    def check(result):
        _check_adversarial(x, 0.0, domain, norm_bound=False)(result.adversarial)
        expect(result.success.shape == (np.shape(x)[0],), "success shape")
        expect(finite(result), "non-finite fields")
        return True

    run_case(f"attack_{which}/{kind}", call, check)


# ---------------------------------------------------------------------------------------------
# Scores

LOGIT_CLASSES = (
    "valid",
    "huge",
    "masked_class",
    "nan",
    "plus_inf",
    "all_masked",
    "wrong_rank",
    "empty",
    "int",
)


@st.composite
def logits_case(draw):
    kind = draw(st.sampled_from(LOGIT_CLASSES))
    s, n, c = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 4])), 3
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    stack = rng.normal(0, 3, (s, n, c)).astype(np.float32)
    if kind == "huge":
        stack = stack * 1e37
    elif kind == "masked_class":
        stack[..., -1] = -np.inf
    elif kind == "nan":
        stack[0, 0, 0] = np.nan
    elif kind == "plus_inf":
        stack[-1, -1, 0] = np.inf
    elif kind == "all_masked":
        stack[0, 0, :] = -np.inf
    elif kind == "wrong_rank":
        stack = stack[0, 0]
    elif kind == "empty":
        stack = stack[:, :0]
    elif kind == "int":
        stack = np.round(stack).astype(np.int32)
    return kind, stack


def _log_softmax(z):
    z = z.astype(np.float64)
    m = np.max(z, axis=-1, keepdims=True)
    shifted = z - m
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _entropy(log_p):
    p = np.exp(log_p)
    return -np.sum(np.where(p > 0, p * np.where(np.isfinite(log_p), log_p, 0.0), 0.0), axis=-1)


@FUZZ_SETTINGS
@given(logits_case())
def test_classifier_scores_are_right_or_refused(case):
    kind, stack = case

    def check_stack(out):
        expect(finite(out), f"non-finite scores {out}")
        log_p = _log_softmax(stack)
        bma = np.log(np.mean(np.exp(log_p), axis=0))
        total, expected = _entropy(bma), np.mean(_entropy(log_p), axis=0)
        tol = 1e-3
        expect(close(out["predictive_entropy"], total, tol), "predictive_entropy")
        expect(close(out["expected_entropy"], expected, tol), "expected_entropy")
        expect(close(out["mutual_information"], np.maximum(total - expected, 0), tol), "MI")
        expect(close(out["max_probability"], np.exp(bma).max(-1), tol), "max_probability")
        return True

    run_case(f"classifier_stack/{kind}", lambda: scores.classifier_stack_scores(stack), check_stack)
    single = stack[0] if np.ndim(stack) == 3 else stack

    def check_single(value):
        expect(finite(value), "non-finite max_softmax")
        expect(close(value, np.exp(_log_softmax(single)).max(-1), 1e-4), "max_softmax")
        return True

    run_case(f"max_softmax/{kind}", lambda: scores.max_softmax(single), check_single)


LOG_LIK_CLASSES = (
    "valid",
    "large",
    "minus_inf",
    "plus_inf",
    "nan",
    "one_sample",
    "wrong_rank",
    "empty",
    "int",
)


@FUZZ_SETTINGS
@given(
    st.sampled_from(LOG_LIK_CLASSES),
    st.sampled_from([2, 3]),
    st.sampled_from([1, 4]),
    st.integers(0, 2**16),
    st.sampled_from(["expected_ll", "log_predictive", "waic", "std_ll", "disagreement", "entropy"]),
)
def test_stacked_scores_are_right_or_refused(kind, s, n, seed, name):
    rng = np.random.default_rng(seed)
    log_lik = rng.normal(-100, 5, (s, n)).astype(np.float32)
    if kind == "large":
        log_lik = log_lik * 100.0
    elif kind == "minus_inf":
        log_lik[0, 0] = -np.inf
    elif kind == "plus_inf":
        log_lik[-1, 0] = np.inf
    elif kind == "nan":
        log_lik[0, -1] = np.nan
    elif kind == "one_sample":
        log_lik = log_lik[:1]
    elif kind == "wrong_rank":
        log_lik = log_lik[0]
    elif kind == "empty":
        log_lik = log_lik[:, :0]
    elif kind == "int":
        log_lik = np.round(log_lik).astype(np.int64)

    def check(out):
        value = np.asarray(out[name])
        ll = np.asarray(log_lik, np.float64)
        expect(value.shape == (ll.shape[1],), "shape")
        if kind == "minus_inf" and name == "expected_ll":  # the mean of a -inf sample
            expect(bool(value[0] == -np.inf) and finite(value[1:]), "-inf score")
            return True
        expect(finite(value), f"non-finite {name}")
        shifted = ll - ll.max(0)
        log_w = shifted - np.log(np.sum(np.exp(shifted), 0))
        reference = {
            "expected_ll": ll.mean(0),
            "log_predictive": ll.max(0) + np.log(np.mean(np.exp(shifted), 0)),
            "waic": ll.mean(0) - ll.var(0, ddof=1) if s > 1 else None,
            "std_ll": ll.std(0, ddof=1) if s > 1 else None,
            "disagreement": 1 / np.sum(np.exp(2 * log_w), 0),
            "entropy": -np.sum(np.exp(log_w) * log_w, 0),
        }[name]
        scale = max(1.0, float(np.abs(reference).max()))
        expect(close(value / scale, reference / scale, 1e-4), f"{name} {value} != {reference}")
        return True

    run_case(f"stacked/{kind}", lambda: scores.stacked_scores(log_lik, names=(name,)), check)


@MEDIUM
@given(
    st.sampled_from(["valid", "nan_weight", "plus_inf_weight", "minus_inf_weight", "bad_key"]),
    st.sampled_from([-1, 0, 1, 2, 5]),
    st.sampled_from([-1, 0, 2, 4]),
    st.sampled_from([1, 3]),
)
def test_importance_sampling_is_right_or_refused(kind, num_samples, chunk_size, n):
    weights = np.linspace(-3.0, -1.0, n).astype(np.float32)
    if kind == "nan_weight":
        weights[0] = np.nan
    elif kind == "plus_inf_weight":
        weights[-1] = np.inf
    elif kind == "minus_inf_weight":
        weights[0] = -np.inf
    key = 3 if kind == "bad_key" else jax.random.key(0)
    log_w = jnp.asarray(weights)

    def check(result):
        expected = weights.astype(np.float64)
        ll, elbo = np.asarray(result.log_likelihood), np.asarray(result.elbo)
        expect(close(ll, expected) and close(elbo, expected), "constant log-weights")
        if num_samples > 1:
            std = np.asarray(result.std_log_weights)
            expect(close(np.where(np.isfinite(expected), std, 0.0), 0.0), "std of constants")
        if kind == "minus_inf_weight":
            return True  # -inf is the documented estimate of a zero likelihood
        expect(finite(result.log_likelihood), "non-finite estimate")
        return True

    run_case(
        f"iwae/{kind}",
        lambda: scores.importance_weighted_log_likelihood(
            lambda k: log_w, key=key, num_samples=num_samples, chunk_size=chunk_size
        ),
        check,
    )


# ---------------------------------------------------------------------------------------------
# Data helpers and loaders


CARVE_SIZES = st.one_of(
    st.integers(1, 12),  # a count (valid when < n)
    st.sampled_from([0.1, 0.25, 0.5, 0.9]),  # a fraction
    st.sampled_from([0, -3, 45, 1.0, 1.5, float("nan"), True, "0.1", None]),  # refused
)


@FUZZ_SETTINGS
@given(
    st.sampled_from([20, 7, 20, 2, 0, 1]),
    CARVE_SIZES,
    st.one_of(st.integers(0, 2**20), st.sampled_from([-1, 1.5, None])),
)
def test_carve_validation_partitions_or_refuses(n, size, seed):
    images = np.arange(n * 2).reshape(n, 2)
    labels = np.arange(n)

    def check(parts):
        (tr_x, tr_y), (va_x, va_y) = parts
        count = int(round(size * n)) if isinstance(size, float) else size
        expect(len(va_y) == count and len(tr_y) == n - count, "sizes")
        expect(sorted(np.r_[tr_y, va_y].tolist()) == list(range(n)), "not a partition")
        expect(
            bool((tr_x[:, 0] == 2 * tr_y).all() and (va_x[:, 0] == 2 * va_y).all()),
            "images and labels separated",
        )
        return True

    run_case(
        "carve_validation", lambda: carve_validation(images, labels, size=size, seed=seed), check
    )


@FUZZ_SETTINGS
@given(
    st.one_of(st.integers(1, 50), st.sampled_from([0, -3, 2.0, None])),
    st.one_of(st.integers(1, 12), st.sampled_from([0, -2, 2.5, True, None])),
)
def test_batch_plans_cover_the_data_or_refuse(num, batch_size):
    def check_padded(plan):
        idx, mask = plan
        expect(idx.shape == mask.shape and idx.shape[1] == batch_size, "plan shape")
        expect(sorted(idx[mask].tolist()) == list(range(num)), "every example exactly once")
        expect(idx.shape[0] == math.ceil(num / batch_size), "steps")
        return True

    run_case("padded_batches", lambda: padded_batches(num, batch_size), check_padded)

    def check_steps(steps):
        expect(steps == num // batch_size and steps >= 1, f"steps {steps}")
        return True

    run_case("steps_per_epoch", lambda: steps_per_epoch(num, batch_size), check_steps)


IMAGE_CLASSES = (
    "uint8",
    "int_out_of_range",
    "float_scaled",
    "float_nan",
    "wrong_rank",
    "bool",
    "channel_mismatch",
)


@FUZZ_SETTINGS
@given(
    st.sampled_from(IMAGE_CLASSES),
    st.booleans(),
    st.one_of(st.none(), st.integers(-2, 8)),
    st.sampled_from(["pad", "bilinear"]),
    st.integers(0, 2**16),
)
def test_preprocess_is_right_or_refuses(kind, scale, resize_to, mode, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (2, 4, 4, 1)).astype(np.uint8)
    mean = std = None
    if kind == "int_out_of_range":
        images = images.astype(np.int32) * 3 - 100
    elif kind == "float_scaled":
        images = images / 255.0
    elif kind == "float_nan":
        images = images.astype(np.float32)
        images[0, 0, 0, 0] = np.nan
    elif kind == "wrong_rank":
        images = images[..., 0]
    elif kind == "bool":
        images = images > 128
    elif kind == "channel_mismatch":
        mean, std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]

    def call():
        cfg = {
            "scale": scale,
            "resize_to": resize_to,
            "resize_mode": mode,
            "mean": mean,
            "std": std,
        }
        return Preprocess.from_config(cfg)(images)

    def check(x):
        x = np.asarray(x)
        size = resize_to or 4
        expect(x.shape == (2, size, size, 1), f"shape {x.shape}")
        expect(finite(x), "non-finite output")
        if scale:
            expect(bool((x >= -1e-6).all() and (x <= 1 + 1e-6).all()), "outside [0, 1]")
        if resize_to in (None, 4):
            ref = np.asarray(images, np.float64) / (255.0 if scale else 1.0)
            expect(close(x, ref, 1e-5), "values")
        return True

    run_case(f"preprocess/{kind}", call, check)


@FUZZ_SETTINGS
@given(
    st.sampled_from(["fashion_mnist", "mnist", "cifar10", "mnits", ""]),
    st.sampled_from(["train", "test", "validation", "TEST"]),
)
def test_load_returns_valid_arrays_or_refuses(synthetic_data_root, name, split):
    def check(arrays):
        images, labels = arrays
        expect(images.dtype == np.uint8 and images.ndim == 4, f"images {images.dtype}")
        expect(
            labels.shape == images.shape[:1] and np.issubdtype(labels.dtype, np.integer), "labels"
        )
        expect(bool((labels >= 0).all() and (labels < 10).all()), "label range")
        return True

    run_case(
        f"load/{'known' if name in ('fashion_mnist', 'mnist') else 'missing_or_unknown'}",
        lambda: load(name, split, data_dir=synthetic_data_root, sources=["cache"], progress=False),
        check,
    )


def test_zz_no_failure_was_recorded():
    """The module's tally (also written to $JAXROBUST_FUZZ_REPORT): no raw traceback, no NaN
    result, no wrong result in any input class."""
    totals = OUTCOMES.summary()["totals"]
    assert totals["traceback"] == totals["nan_result"] == totals["wrong_result"] == 0, totals
    assert totals["ok"] > 0 and totals["refused"] > 0

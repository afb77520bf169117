"""The ``attacks`` task's epsilon spaces and runs against NumPy on a linear model: FGSM in the
normalised input space without clipping (the hybrid-models thesis, seed 000), in pixel space
with the normalisation inside the attacked function, and run by run for stacked runs."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.data.preprocess import Preprocess
from jaxrobust.evaluate.robustness import _attacked_space, make_attack_evaluator
from jaxrobust.runs import over_runs

FGSM = {"attack": "fgsm", "norm": "linf", "loss": "cross_entropy"}
EPSILONS = [0.0, 0.02, 0.05, 0.08, 0.3]
N, D, C = 32, 4 * 4, 3


def _linear_logits(variables, x):
    return x.reshape(x.shape[0], -1) @ variables["w"] + variables["b"]


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    variables = {"w": rng.normal(size=(D, C)).astype(np.float32),
                 "b": rng.normal(size=C).astype(np.float32)}  # fmt: skip
    pixels = rng.uniform(size=(N, 4, 4, 1)).astype(np.float32)
    labels = rng.integers(0, C, N).astype(np.int32)
    return variables, pixels, labels


def _numpy_fgsm_correct(variables, x, y, eps, *, normalise=lambda a: a, clip=None):
    """sign of d CE / d x for the linear model on normalise(x), one step per epsilon."""
    w, b = (np.asarray(variables[k], np.float64) for k in ("w", "b"))
    flat = x.reshape(len(x), -1).astype(np.float64)
    logits = normalise(flat) @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(C)[y]) @ w.T  # d CE / d normalised input; the normaliser's scale > 0
    adv = flat + eps * np.sign(grad)
    if clip is not None:
        adv = np.clip(adv, *clip)
    return np.argmax(normalise(adv) @ w + b, 1) == y


def test_fgsm_in_the_normalised_space_without_clipping_matches_numpy():
    variables, pixels, labels = _problem()
    x = (pixels - 0.5) / 0.25  # the model's (normalised) inputs
    evaluate = make_attack_evaluator(_linear_logits, FGSM, EPSILONS, 16, None)
    correct = np.asarray(
        evaluate(variables, jnp.asarray(x), jnp.asarray(labels), jax.random.key(0))
    )
    for i, eps in enumerate(EPSILONS):
        np.testing.assert_array_equal(correct[i], _numpy_fgsm_correct(variables, x, labels, eps))
    assert correct[0].mean() > correct[-1].mean()  # the attack bites


class _Restored(NamedTuple):
    model: object
    preprocess: Preprocess


class _Model(NamedTuple):
    logits: object


def test_fgsm_in_pixel_space_normalises_inside_and_clips_to_the_pixel_domain():
    variables, pixels, labels = _problem(1)
    restored = _Restored(_Model(_linear_logits), Preprocess(scale=True, mean=(0.5,), std=(0.25,)))
    preprocess, logits_fn = _attacked_space(restored, "pixels")
    uint8 = np.round(pixels * 255).astype(np.uint8)
    x = np.asarray(preprocess(uint8))
    np.testing.assert_allclose(x, uint8 / 255.0, rtol=1e-6)  # pixels, not normalised
    evaluate = make_attack_evaluator(logits_fn, FGSM, EPSILONS, 16, (0.0, 1.0))
    correct = np.asarray(
        evaluate(variables, jnp.asarray(x), jnp.asarray(labels), jax.random.key(0))
    )
    for i, eps in enumerate(EPSILONS):
        expected = _numpy_fgsm_correct(
            variables, x, labels, eps, normalise=lambda a: (a - 0.5) / 0.25, clip=(0.0, 1.0)
        )
        np.testing.assert_array_equal(correct[i], expected)


def test_stacked_runs_are_attacked_each_with_its_own_weights():
    runs = [_problem(seed)[0] for seed in (2, 3, 4)]
    _, pixels, labels = _problem(5)
    stacked = jax.tree.map(lambda *a: np.stack(a), *runs)
    evaluate = make_attack_evaluator(_linear_logits, FGSM, EPSILONS, 16, (0.0, 1.0))
    per_run = jax.jit(over_runs(evaluate, in_axes=(0, None, None, None)))
    correct = np.asarray(per_run(stacked, jnp.asarray(pixels), jnp.asarray(labels),
                                 jax.random.key(0)))  # fmt: skip
    assert correct.shape == (3, len(EPSILONS), N)
    for r, variables in enumerate(runs):
        for i, eps in enumerate(EPSILONS):
            expected = _numpy_fgsm_correct(variables, pixels, labels, eps, clip=(0.0, 1.0))
            np.testing.assert_array_equal(correct[r, i], expected)

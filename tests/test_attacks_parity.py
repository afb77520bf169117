"""Quick parity of the attacks with independent libraries on a small trained CNN.

The full comparison on the trained MNIST CNN is ``tools/attack_parity.py`` (output in
``experiments/attacks/parity.md``). Here: a two-layer CNN trained for a few hundred Adam steps on
synthetic 12x12 images of 5 classes (a blurred class template plus noise, in [0, 1]); every
attack runs on the same JAX function in both libraries (:mod:`jaxrobust.attacks.references`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrobust import attacks

pytest.importorskip("foolbox")
pytest.importorskip("art")
pytest.importorskip("cleverhans")

from jaxrobust.attacks.references import (  # noqa: E402
    art_classifier,
    cleverhans_attacks,
    foolbox_model,
)

CLASSES, SIZE = 5, 12


class TinyCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Conv(8, (3, 3))(x))
        h = nn.avg_pool(h, (2, 2), (2, 2))
        h = nn.relu(nn.Conv(8, (3, 3))(h))
        h = h.reshape(h.shape[0], -1)
        return nn.Dense(CLASSES)(h)


def synthetic(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    templates = np.random.default_rng(0).uniform(size=(CLASSES, SIZE, SIZE, 1))
    labels = rng.integers(0, CLASSES, size=n)
    images = 0.6 * templates[labels] + 0.4 * rng.uniform(size=(n, SIZE, SIZE, 1))
    return images.astype(np.float32), labels.astype(np.int32)


@pytest.fixture(scope="module")
def cnn():
    rng = np.random.default_rng(1)
    x_train, y_train = synthetic(rng, 512)
    net = TinyCNN()
    params = net.init(jax.random.PRNGKey(0), x_train[:1])
    optimizer = optax.adam(1e-2)

    def loss(p):
        logits = net.apply(p, x_train)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y_train).mean()

    @jax.jit
    def train(p):
        def step(carry, _):
            p, s = carry
            g = jax.grad(loss)(p)
            u, s = optimizer.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p, _), _ = jax.lax.scan(step, (p, optimizer.init(p)), None, length=200)
        return p

    params = train(params)

    def logits_fn(x):
        return net.apply(params, x)

    x, y = synthetic(rng, 40)
    x, y = jnp.asarray(x), jnp.asarray(y)
    assert float(jnp.mean(jnp.argmax(logits_fn(x), -1) == y)) >= 0.9  # a trained classifier
    return logits_fn, x, y


def l2(a, b) -> np.ndarray:
    return np.linalg.norm(np.asarray(a - b).reshape(len(a), -1), axis=1)


def median_over(success, norms) -> float:
    return float(np.median(norms[np.asarray(success, bool)]))


def test_fgsm_and_pgd_identical_to_cleverhans(cnn):
    logits_fn, x, y = cnn
    fgm, ch_pgd = cleverhans_attacks()
    loss = attacks.cross_entropy_loss(logits_fn)
    onehot = jax.nn.one_hot(y, CLASSES)
    for eps in (0.05, 0.2):
        ours = attacks.fgsm(loss, x, y, epsilon=eps)
        np.testing.assert_array_equal(ours, fgm(logits_fn, x, eps, np.inf, 0.0, 1.0, onehot))
    ours = attacks.pgd(loss, x, y, epsilon=0.1, step_size=0.02, num_steps=10, random_start=False)
    ref = ch_pgd(logits_fn, x, 0.1, 0.02, 10, np.inf, 0.0, 1.0, onehot, rand_init=False)
    np.testing.assert_array_equal(ours, ref)
    assert float(jnp.max(jnp.abs(ours - x))) > 0.09  # the attack did move the inputs
    # cleverhans' JAX L2 FGM steps grad / ||grad|| (length 1, eps_iter unused): step_size 1.
    ours = attacks.pgd(
        loss, x, y, epsilon=1.5, step_size=1.0, num_steps=5, norm="l2", random_start=False
    )
    ref = ch_pgd(logits_fn, x, 1.5, 1.0, 5, 2, 0.0, 1.0, onehot, rand_init=False)
    # L2 steps carry the gradient's rounding (cleverhans sums per-example vmapped gradients, we
    # differentiate the batch sum): equal to float32 resolution, not bitwise.
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    assert float(np.max(l2(ours, x))) > 1.4


def test_deepfool_and_cw_match_foolbox(cnn):
    import foolbox as fb

    logits_fn, x, y = cnn
    fmodel = foolbox_model(logits_fn)

    attack = fb.attacks.L2DeepFoolAttack(steps=50, candidates=CLASSES, overshoot=0.02)
    _, ref, _ = attack(fmodel, x, y, epsilons=None)
    ref_ok = np.asarray(jnp.argmax(logits_fn(ref), -1) != y)
    ours = attacks.deepfool(logits_fn, x, num_candidates=CLASSES, overshoot=0.02)
    ours_ok = np.asarray(jnp.argmax(logits_fn(ours.adversarial), -1) != y)
    assert abs(ours_ok.mean() - ref_ok.mean()) <= 0.02
    ours_median, ref_median = (
        median_over(ours_ok, l2(ours.adversarial, x)),
        median_over(ref_ok, l2(ref, x)),
    )
    assert abs(ours_median / ref_median - 1) < 0.10

    settings = {"binary_search_steps": 3, "steps": 50, "confidence": 0.0, "initial_const": 1e-1}
    attack = fb.attacks.L2CarliniWagnerAttack(stepsize=5e-2, **settings)
    _, ref, _ = attack(fmodel, x, y, epsilons=None)
    found = np.asarray(jnp.any(ref.reshape(len(x), -1) != 0, axis=1))  # zeros = not found
    ref_ok = found & np.asarray(jnp.argmax(logits_fn(ref), -1) != y)
    ours = attacks.carlini_wagner_l2(
        logits_fn,
        x,
        y,
        confidence=0.0,
        initial_const=1e-1,
        binary_search_steps=3,
        max_iterations=50,
        learning_rate=5e-2,
        abort_early=True,
    )
    assert ref_ok.mean() > 0.5
    assert abs(float(ours.success.mean()) - ref_ok.mean()) <= 0.02
    ours_median = median_over(ours.success, l2(ours.adversarial, x))
    assert abs(ours_median / median_over(ref_ok, l2(ref, x)) - 1) < 0.10


def test_boundary_matches_foolbox_from_the_same_starts(cnn):
    import foolbox as fb

    logits_fn, x, y = cnn
    fmodel = foolbox_model(logits_fn)
    init = fb.attacks.LinearSearchBlendedUniformNoiseAttack(steps=50)
    starts = init.run(fmodel, x, fb.criteria.Misclassification(y))
    _, ref, _ = fb.attacks.BoundaryAttack(steps=1000)(
        fmodel, x, y, starting_points=starts, epsilons=None
    )
    ours = jax.jit(
        lambda x, y, k, s: attacks.boundary_attack(logits_fn, x, y, k, num_steps=1000, **s)
    )(x, y, jax.random.PRNGKey(0), {"starting_points": starts})
    assert np.all(np.asarray(ours.success))
    assert np.all(np.asarray(jnp.argmax(logits_fn(ref), -1) != y))
    start_median = float(np.median(l2(starts, x)))
    ours_median, ref_median = float(np.median(ours.l2)), float(np.median(l2(ref, x)))
    assert ours_median < 0.8 * start_median  # both walks made progress from the start ...
    assert ref_median < 0.8 * start_median
    assert abs(ours_median / ref_median - 1) < 0.15  # ... and about the same


def test_jsma_target_saliency_matches_art(cnn):
    from art.attacks.evasion import SaliencyMapMethod

    logits_fn, x, y = cnn
    targets = (np.asarray(y) + 1 + np.arange(len(y)) % (CLASSES - 1)) % CLASSES
    classifier = art_classifier(logits_fn, tuple(x.shape[1:]), CLASSES)
    art_jsma = SaliencyMapMethod(classifier, theta=1.0, gamma=0.2, batch_size=64, verbose=False)
    ref = art_jsma.generate(np.asarray(x), y=targets)
    ref_ok = np.asarray(jnp.argmax(logits_fn(jnp.asarray(ref)), -1)) == targets
    ours = attacks.jsma(logits_fn, x, jnp.asarray(targets), theta=1.0, gamma=0.2, saliency="target")
    assert ref_ok.mean() > 0.5
    assert abs(float(ours.success.mean()) - ref_ok.mean()) <= 0.02
    ref_l0 = (np.asarray(ref) != np.asarray(x)).reshape(len(x), -1).sum(1)
    assert (
        abs(
            median_over(ours.success, np.asarray(ours.num_changed)) / median_over(ref_ok, ref_l0)
            - 1
        )
        < 0.10
    )

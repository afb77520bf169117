"""Adversarial training (jaxrobust.train.adversarial) against NumPy PGD and closed forms."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import only_models

from jaxrobust.errors import ConfigError
from jaxrobust.evaluate import restore_model
from jaxrobust.models.classifier import make_classifier
from jaxrobust.models.registry import build_model
from jaxrobust.train import adversarial_training, build_from_config, train_and_evaluate

B, D, C = 6, 12, 4


class Affine(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


def affine_setup(num_classes=C, seed=0):
    rng = np.random.default_rng(seed)
    model = make_classifier(Affine(num_classes))
    x = rng.uniform(0.05, 0.95, (B, D)).astype(np.float32)
    y = rng.integers(0, num_classes, B).astype(np.int32)
    params = model.init(jax.random.key(seed), jnp.asarray(x[:1]))["params"]
    params = jax.tree.map(lambda p: jnp.asarray(rng.normal(0, 1.0, p.shape), jnp.float32), params)
    return model, params, x, y


def np_logits(params, x):
    w, b = (np.asarray(params["Dense_0"][k], np.float64) for k in ("kernel", "bias"))
    return x @ w + b


def np_ce(params, x, y):
    z = np_logits(params, x)
    z = z - z.max(1, keepdims=True)
    return -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1)))


def np_pgd_linf(params, x, y, eps, step, num_steps, start, domain=(0.0, 1.0)):
    """Reference L-inf PGD with the analytic input gradient of an affine softmax classifier."""
    w = np.asarray(params["Dense_0"]["kernel"], np.float64)
    x = x.astype(np.float64)
    x_t = np.clip(start, *domain)
    for _ in range(num_steps):
        z = np_logits(params, x_t)
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(y)), y] -= 1.0
        grad = p @ w.T  # d CE / d x = W (softmax - onehot)
        x_t = np.clip(x + np.clip(x_t + step * np.sign(grad) - x, -eps, eps), *domain)
    return x_t


def wrapped_loss(model, params, x, y, key, train, state=None):
    batch = {"image": jnp.asarray(x), "label": jnp.asarray(y)}
    return model.loss({"params": params, **(state or {})}, batch, key=key, train=train)


@pytest.mark.parametrize("random_start", [False, True])
def test_train_loss_is_the_loss_at_numpy_pgd_images(random_start):
    model, params, x, y = affine_setup()
    cfg = {"epsilon": 0.2, "num_steps": 7, "step_size": 0.05, "random_start": random_start}
    adv = adversarial_training(model, cfg)
    key = jax.random.key(3)
    start = x.astype(np.float64)
    if random_start:  # the documented contract: the attack key is split(key)[0], start U(-eps, eps)
        attack_key = jax.random.split(key)[0]
        start = x + 0.2 * np.asarray(jax.random.uniform(attack_key, x.shape, minval=-1.0))
    x_ref = np_pgd_linf(params, x, y, 0.2, 0.05, 7, start)
    losses, (_, state) = jax.jit(lambda p: wrapped_loss(adv, p, x, y, key, True))(params)
    np.testing.assert_allclose(np.asarray(losses), np_ce(params, x_ref, y), rtol=1e-4, atol=1e-5)
    assert state == {}
    # The attack did something: the loss went up on every example.
    assert np.all(np.asarray(losses) > np_ce(params, x, y) + 1e-3)


def test_one_full_step_on_a_two_class_linear_model_is_the_exact_worst_case():
    # Two classes, no domain: max_{|d|_inf <= eps} CE = softplus(-(m - eps * |w_y - w_o|_1)),
    # m the clean margin, reached by one sign step of size eps.
    model, params, x, y = affine_setup(num_classes=2, seed=1)
    eps = 0.3
    cfg = {"epsilon": eps, "num_steps": 1, "step_size": eps, "random_start": False}
    adv = adversarial_training(model, {**cfg, "domain": None})
    losses, _ = wrapped_loss(adv, params, x, y, jax.random.key(0), True)
    z = np_logits(params, x)
    w = np.asarray(params["Dense_0"]["kernel"], np.float64)
    margin = z[np.arange(B), y] - z[np.arange(B), 1 - y]
    l1 = np.abs(w[:, y] - w[:, 1 - y]).sum(0)
    expected = np.logaddexp(0.0, -(margin - eps * l1))
    np.testing.assert_allclose(np.asarray(losses), expected, rtol=1e-5, atol=1e-6)


def test_eval_mode_is_the_clean_loss_bitwise():
    model, params, x, y = affine_setup()
    adv = adversarial_training(model, {"epsilon": 0.3, "num_steps": 3})
    key = jax.random.key(1)
    clean = wrapped_loss(model, params, x, y, key, False)
    wrapped = wrapped_loss(adv, params, x, y, key, False)
    for a, b in zip(jax.tree.leaves(clean), jax.tree.leaves(wrapped), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_no_gradient_flows_through_the_attack():
    model, params, x, y = affine_setup(seed=2)
    cfg = {"epsilon": 0.25, "num_steps": 5, "step_size": 0.1, "random_start": False}
    adv = adversarial_training(model, cfg)
    key = jax.random.key(0)
    x_ref = np_pgd_linf(params, x, y, 0.25, 0.1, 5, x).astype(np.float32)
    grad_wrapped = jax.grad(lambda p: wrapped_loss(adv, p, x, y, key, True)[0].mean())(params)
    # Gradient of the plain loss at the adversarial images held fixed (Danskin).
    grad_fixed = jax.grad(lambda p: wrapped_loss(model, p, x_ref, y, key, True)[0].mean())(params)
    for a, b in zip(jax.tree.leaves(grad_wrapped), jax.tree.leaves(grad_fixed), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    # ... and the gradient of the clean loss is different (the attack mattered).
    grad_clean = jax.grad(lambda p: wrapped_loss(model, p, x, y, key, True)[0].mean())(params)
    assert not np.allclose(grad_clean["Dense_0"]["kernel"], grad_fixed["Dense_0"]["kernel"])


def test_fraction_keeps_the_rest_of_the_batch_clean():
    model, params, x, y = affine_setup(seed=3)
    cfg = {"epsilon": 0.2, "num_steps": 4, "step_size": 0.05, "random_start": False}
    adv = adversarial_training(model, {**cfg, "fraction": 0.5})
    losses, _ = wrapped_loss(adv, params, x, y, jax.random.key(0), True)
    x_ref = np_pgd_linf(params, x, y, 0.2, 0.05, 4, x)
    expected = np.concatenate([np_ce(params, x_ref, y)[:3], np_ce(params, x, y)[3:]])
    np.testing.assert_allclose(np.asarray(losses), expected, rtol=1e-4, atol=1e-5)
    # fraction 0: nothing is attacked, the training loss is the clean loss
    clean = adversarial_training(model, {**cfg, "fraction": 0.0})
    losses, _ = wrapped_loss(clean, params, x, y, jax.random.key(0), True)
    np.testing.assert_allclose(np.asarray(losses), np_ce(params, x, y), rtol=1e-4, atol=1e-5)


def test_epsilon_ramp_scales_the_ball_and_counts_steps():
    model, params, x, y = affine_setup(num_classes=2, seed=4)
    eps, ramp = 0.4, 4
    cfg = {"epsilon": eps, "num_steps": 1, "step_size": eps, "random_start": False}
    adv = adversarial_training(model, {**cfg, "domain": None, "epsilon_ramp_steps": ramp})
    variables = adv.init(jax.random.key(0), jnp.asarray(x[:1]))
    assert int(variables["adversarial_training"]["step"]) == 0
    z = np_logits(params, x)
    w = np.asarray(params["Dense_0"]["kernel"], np.float64)
    margin = z[np.arange(B), y] - z[np.arange(B), 1 - y]
    l1 = np.abs(w[:, y] - w[:, 1 - y]).sum(0)
    for step in (0, 1, 3, 10):  # radius eps * min(1, (step + 1) / ramp)
        state = {"adversarial_training": {"step": jnp.asarray(step, jnp.int32)}}
        losses, (_, new_state) = wrapped_loss(adv, params, x, y, jax.random.key(0), True, state)
        radius = eps * min(1.0, (step + 1) / ramp)
        expected = np.logaddexp(0.0, -(margin - radius * l1))
        np.testing.assert_allclose(np.asarray(losses), expected, rtol=1e-5, atol=1e-6)
        assert int(new_state["adversarial_training"]["step"]) == step + 1
        _, (_, eval_state) = wrapped_loss(adv, params, x, y, jax.random.key(0), False, state)
        assert int(eval_state["adversarial_training"]["step"]) == step
    # logits and scores ignore the counter.
    logits = adv.logits({"params": params, **state}, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(logits), z, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"epsilon": 0.3, "num_steps": 10, "eps_ramp": 2}, r"unknown key.*eps_ramp.*known keys"),
        ({"epsilon": -0.1, "num_steps": 10}, r"epsilon must be a number >= 0"),
        ({"epsilon": 0.3}, r"num_steps is required"),
        ({"epsilon": 0.3, "num_steps": 0}, r"num_steps must be an integer >= 1"),
        ({"epsilon": 0.3, "num_steps": 10, "norm": "l1"}, r"norm must be one of"),
        ({"epsilon": 0.3, "num_steps": 10, "fraction": 1.5}, r"fraction"),
        ({"epsilon": 0.3, "num_steps": 10, "domain": (1.0, 0.0)}, r"low < high"),
        ({"epsilon": 0.3, "num_steps": 10, "step_size": -1.0}, r"step_size must be"),
        ({"epsilon": 0.3, "num_steps": 10, "epsilon_ramp_steps": 1.5}, r"epsilon_ramp_steps"),
        (0.3, r"must be a dict"),
    ],
)
def test_bad_config_is_refused(cfg, match):
    model, _, _, _ = affine_setup()
    with pytest.raises(ConfigError, match=match):
        adversarial_training(model, cfg, "cnn")


def test_a_model_without_logits_is_refused():
    vae = build_model("vae", {"latent_dim": 2}, (28, 28, 1), 10)
    with pytest.raises(ConfigError, match="needs a classifier"):
        adversarial_training(vae, {"epsilon": 0.3, "num_steps": 1}, "vae")


def test_config_hook_trains_resumes_and_restores(synthetic_data, tiny_config, tmp_path):
    config = only_models(tiny_config, "classifier")
    plain, _ = build_from_config(config, "classifier")
    cfg = {"epsilon": 0.1, "num_steps": 1, "epsilon_ramp_steps": 3}
    config.models.classifier.training.adversarial_training = cfg
    config.data.train_limit, config.data.validation_limit = 128, 128
    config.models.classifier.training.num_epochs = 1
    adv, _ = build_from_config(config, "classifier")
    assert plain.loss is not adv.loss and plain.kind == adv.kind
    train_and_evaluate(config, tmp_path)
    config.models.classifier.training.num_epochs = 2  # resuming with more epochs is allowed
    summary = train_and_evaluate(config, tmp_path)
    _, _, variables, epoch = restore_model(tmp_path, "classifier", "last", config=config)
    steps = summary["classifier"]["step"]
    assert epoch == 2 and steps == 2 * (128 // 64)
    assert int(variables["adversarial_training"]["step"]) == steps
    # A changed attack is a different experiment: the workdir refuses it.
    config.models.classifier.training.adversarial_training.epsilon = 0.2
    with pytest.raises(ConfigError, match="adversarial_training.epsilon"):
        train_and_evaluate(config, tmp_path)

"""The SDIM model (seed 003): parameter counts of Table 1, the JSD MI estimate, the likelihood
margin loss and the class-conditional Gaussians against NumPy / SciPy, the derangement of the
negatives, and the loss weights."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from jaxrobust.models import build_model, make_sdim
from jaxrobust.models.sdim import (
    class_log_likelihood,
    jsd_mutual_information,
    likelihood_margin_loss,
    random_derangement,
)
from jaxrobust.nn import resnet_8n2


def _count(model, shape) -> int:
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape)))
    return sum(math.prod(p.shape) for p in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize(("n", "channels", "expected"), [(1, 1, 1_250_794), (3, 3, 4_388_650)])
def test_the_discriminative_resnets_have_table_1s_parameter_counts(n, channels, expected):
    assert _count(resnet_8n2(n, 10), (32, 32, channels)) == expected


@pytest.mark.parametrize(("n", "channels", "expected"), [(1, 1, 1_414_177), (3, 3, 4_552_033)])
def test_sdim_parameter_counts_follow_the_text(n, channels, expected):
    """Table 1 says 1.46M / 4.60M; the text's T network (320 input channels, Table 8) gives
    the disc. count + 16,448 - 2,570 (the 64-way head) + T's 148,225 + the 1,280 class
    parameters = 1,414,177 / 4,552,033 (digest open point 5: 1.46M needs a 512-channel T)."""
    head = (256 * 64 + 64) - (256 * 10 + 10)
    t_network = (320 * 256 + 256) + (256 * 256 + 256) + (256 + 1)
    disc = 1_250_794 if n == 1 else 4_388_650
    assert expected == disc + head + t_network + 2 * 10 * 64
    assert _count(build_model("sdim", {"n": n}, (32, 32, channels), 10), (32, 32, channels)) == (
        expected
    )


def test_jsd_mutual_information_matches_numpy_on_fixed_t_outputs():
    rng = np.random.default_rng(0)
    t_pos, t_neg = rng.normal(size=(5, 4, 4)) * 3, rng.normal(size=(5, 4, 4)) * 3
    softplus = lambda a: np.log1p(np.exp(a))  # noqa: E731
    expected = [
        np.mean(-softplus(-t_pos[b])) - np.mean(softplus(t_neg[b])) for b in range(5)
    ]  # E_P[-sp(-T)] - E_Q[sp(T)] over the 16 locations
    got = jsd_mutual_information(jnp.asarray(t_pos), jnp.asarray(t_neg))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    all_pairs = rng.normal(size=(5, 4, 4, 4))  # [B, K negatives, M, M]
    got = jsd_mutual_information(jnp.asarray(t_pos), jnp.asarray(all_pairs))
    expected = [np.mean(-softplus(-t_pos[b])) - np.mean(softplus(all_pairs[b])) for b in range(5)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_margin_loss_matches_a_numpy_loop():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(7, 4)) * 8
    labels = rng.integers(0, 4, 7)
    expected = []
    for i in range(7):
        terms = [
            max(logits[i, c] + 10.0 - logits[i, labels[i]], 0.0) ** 2
            for c in range(4)
            if c != labels[i]
        ]
        expected.append(sum(terms) / 3)
    got = likelihood_margin_loss(jnp.asarray(logits), jnp.asarray(labels), 10.0)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_class_log_likelihood_is_the_summed_diagonal_gaussian_of_scipy():
    rng = np.random.default_rng(2)
    rep, mean = rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    log_scale = rng.normal(size=(4, 5)) - 4.0  # sigma ~ 0.02: logits in the hundreds
    got = class_log_likelihood(jnp.asarray(rep), jnp.asarray(mean), jnp.asarray(log_scale))
    expected = norm.logpdf(rep[:, None], mean[None], np.exp(log_scale)[None]).sum(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_the_derangement_has_no_fixed_point_and_varies_with_the_key():
    perms = {tuple(random_derangement(jax.random.key(k), 8).tolist()) for k in range(20)}
    assert len(perms) > 10
    for p in perms:
        assert sorted(p) == list(range(8)) and all(p[i] != i for i in range(8))


def _tiny(**kw):
    return make_sdim((32, 32, 1), 3, n=1, widths=(4, 4, 8, 8), head_hidden=8, rep_dim=5,
                     t_hidden=8, **kw)  # fmt: skip


def test_the_loss_is_the_weighted_sum_of_its_terms_and_weights_can_be_swept():
    x = jax.random.uniform(jax.random.key(0), (6, 32, 32, 1))
    batch = {"image": x, "label": jnp.array([0, 1, 2, 0, 1, 2])}
    model = _tiny(alpha=0.5, beta=2.0, gamma=0.25)
    variables = model.init(jax.random.key(1), x)
    losses, (m, _) = model.loss(variables, batch, key=jax.random.key(2))
    np.testing.assert_allclose(losses, -0.5 * m["mi"] + 2.0 * m["nll"] + 0.25 * m["margin"],
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(m["nll"], -model.logits(variables, x)[jnp.arange(6), batch["label"]],
                               rtol=1e-5)  # fmt: skip
    swept = {**variables, "loss_weights": {"alpha": 1.0, "beta": 1.0, "gamma": 0.0}}
    losses, (m, _) = model.loss(swept, batch, key=jax.random.key(2))
    np.testing.assert_allclose(losses, -m["mi"] + m["nll"], rtol=1e-5)
    assert model.loss_weights == {"alpha": 0.5, "beta": 2.0, "gamma": 0.25}


def test_all_pairs_negatives_average_every_other_input():
    x = jax.random.uniform(jax.random.key(3), (4, 32, 32, 1))
    batch = {"image": x, "label": jnp.array([0, 1, 2, 0])}
    model = _tiny(mi_negatives="all_pairs", beta=0.0, gamma=0.0)
    variables = model.init(jax.random.key(1), x)
    losses, _ = model.loss(variables, batch, key=None)
    from jaxrobust.models.sdim import SDIMNetwork

    network = SDIMNetwork(3, n=1, widths=(4, 4, 8, 8), head_hidden=8, rep_dim=5, t_hidden=8)

    def t(module, x, b, j):
        local, rep = module.encode(x, False)
        return module.t_scores(local[j : j + 1], rep[b : b + 1])

    sp = lambda a: np.log1p(np.exp(np.asarray(a, np.float64)))  # noqa: E731
    for b in range(4):
        pos = network.apply(variables, x, b, b, method=t)
        negs = [network.apply(variables, x, b, j, method=t) for j in range(4) if j != b]
        mi = np.mean(-sp(-pos)) - np.mean([sp(n) for n in negs])
        np.testing.assert_allclose(losses[b], -mi, rtol=1e-4)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"alpha": -1.0}, "alpha"),
        ({"mi_negatives": "pairs"}, "mi_negatives"),
        ({"gamma": -0.1}, "gamma"),
    ],
)
def test_bad_settings_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        _tiny(**changes)

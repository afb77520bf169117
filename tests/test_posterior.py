"""Posterior methods through the training loop, the sample artifact, and posterior scores.

References: separately trained runs (ensembles), an independent Python loop over samples with
NumPy/scikit-learn (scores and metrics), and a fresh process (restore)."""

from __future__ import annotations

import copy
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import subprocess_env
from sklearn.metrics import roc_auc_score

from jaxrobust import data as datasets
from jaxrobust.errors import CheckpointMismatchError, CheckpointNotFoundError, ConfigError
from jaxrobust.evaluate import evaluate, restore_model
from jaxrobust.inference import subset
from jaxrobust.inference.bbb import GaussianPrior, mean_field_log_prob, prior_log_prob
from jaxrobust.inference.methods import bbb_model
from jaxrobust.inference.predict import posterior_log_likelihoods
from jaxrobust.inference.samples import (
    PosteriorSamples,
    restore_posterior,
    sample_variables,
    save_posterior,
)
from jaxrobust.models.vae import make_vae
from jaxrobust.train import build_from_config, train_and_evaluate
from jaxrobust.train.loop import model_key, posterior_dir

PAIR = "fashion_mnist->mnist"


def posterior_config(config, posterior: dict, **vae):
    config.models = {"vae": config.models.vae}
    config.models.vae.training.posterior = ml_collections.ConfigDict(posterior)
    config.models.vae.architecture.iwae_samples = 4
    config.models.vae.architecture.iwae_chunk = 4
    config.evaluate.classification.models = []
    config.evaluate.ood.scores = ["vae/expected_ll", "vae/waic", "vae/std_ll", "vae/typicality"]
    config.evaluate.ood.positive = "higher"
    config.evaluate.test_limit = 96
    config.data.train_limit = 256
    config.data.validation_limit = 128
    config.models.vae.training.num_epochs = 2
    for key, value in vae.items():
        config.models.vae.training[key] = value
    return config


# --- parameter subsets -----------------------------------------------------------------------


def test_select_reject_combine_round_trip():
    params = {"encoder": {"a": {"kernel": 1, "bias": 2}}, "decoder": {"b": {"kernel": 3}}}
    chosen = subset.select(params, "^decoder/")
    rest = subset.reject(params, "^decoder/")
    assert chosen == {"decoder": {"b": {"kernel": 3}}}
    assert rest == {"encoder": {"a": {"kernel": 1, "bias": 2}}}
    assert subset.combine(chosen, rest) == params
    assert subset.mask(params, "kernel$") == {
        "encoder": {"a": {"kernel": True, "bias": False}},
        "decoder": {"b": {"kernel": True}},
    }
    with pytest.raises(ValueError, match="matches no parameter.*encoder/a/kernel"):
        subset.select(params, "^head/")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        subset.select(params, "(")
    with pytest.raises(ValueError, match="more than one tree"):
        subset.combine(chosen, chosen)


# --- posterior log-likelihoods ---------------------------------------------------------------


@pytest.mark.gpu
def test_posterior_log_likelihoods_equal_a_loop_over_samples():
    model = make_vae((8, 8, 1), 3, network="mlp", iwae_samples=5, iwae_chunk=2)
    images = jax.random.uniform(jax.random.key(1), (6, 8, 8, 1))
    variables = model.init(jax.random.key(0), images)
    params = variables["params"]
    rest = subset.reject(params, "^decoder/")
    samples = jax.vmap(lambda k: subset.select(model.init(k, images)["params"], "^decoder/"))(
        jax.random.split(jax.random.key(2), 3)
    )
    posterior = PosteriorSamples({"params": samples}, {"params": rest})
    key = jax.random.key(3)

    def iwae(v, x, k):
        return model.log_likelihood(v, x, key=k)

    got = jax.jit(lambda p, x, k: posterior_log_likelihoods(iwae, p, x, k))(posterior, images, key)
    keys = jax.random.split(key, 3)
    for s in range(3):
        one = jax.tree.map(lambda x, s=s: x[s], posterior.samples)
        want = iwae(sample_variables(one, posterior.fixed), images, keys[s])
        np.testing.assert_allclose(got[s], want, rtol=1e-5)
    # The samples differ, so the rows do too.
    assert not np.allclose(got[0], got[1])


# --- ensembles -------------------------------------------------------------------------------


def test_ensemble_members_equal_separately_trained_models(synthetic_data, tiny_config, tmp_path):
    members, seed = 2, 5
    config = posterior_config(
        copy.deepcopy(tiny_config), {"method": "ensemble", "members": members}
    )
    config.seed = seed
    train_and_evaluate(config, tmp_path / "ensemble")
    posterior, meta = restore_posterior(posterior_dir(tmp_path / "ensemble", "vae"))
    assert meta["method"] == "ensemble" and posterior.num_samples == members
    for member in range(members):
        single = copy.deepcopy(tiny_config)
        single = posterior_config(single, {"method": "ensemble", "members": 2})
        del single.models.vae.training["posterior"]
        single.seed = seed + member
        train_and_evaluate(single, tmp_path / f"member{member}")
        _, _, want, _ = restore_model(tmp_path / f"member{member}", "vae", "last", config=single)
        got = jax.tree.map(lambda x, m=member: x[m], posterior.samples)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


# --- SWAG end to end: evaluation against an independent loop, restore in a fresh process -----


@pytest.fixture
def swag_workdir(synthetic_data, tiny_config, tmp_path):
    posterior = {"method": "swag", "filter": "^decoder/", "num_samples": 3, "start_epoch": 1,
                 "rank": 2}  # fmt: skip
    config = posterior_config(copy.deepcopy(tiny_config), posterior)
    train_and_evaluate(config, tmp_path)
    return tmp_path, config


def _reference_log_lik(model, preprocess, posterior, images, key, batch_size):
    """log_lik[S, N] by a Python loop over samples (each mapped over the same batches and batch
    keys as evaluation, sample s using the s-th split of a batch's key)."""
    from jaxrobust.evaluate.batched import map_dataset

    rows = []
    for s in range(posterior.num_samples):
        sample = jax.tree.map(lambda x, s=s: x[s], posterior.samples)

        def fn(v, x, k, s=s):
            return model.score(v, x, ["iwae"], key=jax.random.split(k, posterior.num_samples)[s])[
                "iwae"
            ]

        variables = sample_variables(sample, posterior.fixed)
        rows.append(map_dataset(fn, variables, images, preprocess, key, batch_size))
    return np.stack(rows).astype(np.float64)


def test_swag_posterior_scores_match_an_independent_computation(swag_workdir):
    workdir, config = swag_workdir
    posterior, meta = restore_posterior(posterior_dir(workdir, "vae"))
    assert meta["method"] == "swag" and posterior.num_samples == 3
    assert set(posterior.samples["params"]) == {"decoder"}
    assert "encoder" in posterior.fixed["params"]
    results = evaluate(workdir)["ood"][PAIR]
    model, preprocess = build_from_config(config, "vae")

    key = jax.random.key(config.seed + 1)
    lls = {}
    for name in ("fashion_mnist", "mnist"):
        images, _ = datasets.load(name, "test")
        lls[name] = _reference_log_lik(
            model, preprocess, posterior, images[:96], key, config.evaluate.batch_size
        )
    ll_in, ll_out = lls["fashion_mnist"], lls["mnist"]
    entropy = -np.mean(ll_in.mean(0))
    reference = {
        "expected_ll": (ll_in.mean(0), ll_out.mean(0), False),
        "waic": (
            ll_in.mean(0) - ll_in.var(0, ddof=1),
            ll_out.mean(0) - ll_out.var(0, ddof=1),
            False,
        ),
        "std_ll": (ll_in.std(0, ddof=1), ll_out.std(0, ddof=1), True),
        "typicality": (np.abs(-ll_in.mean(0) - entropy), np.abs(-ll_out.mean(0) - entropy), True),
    }
    for name, (s_in, s_out, higher_is_ood) in reference.items():
        labels = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
        scores = np.r_[s_in, s_out] * (1 if higher_is_ood else -1)
        np.testing.assert_allclose(
            results[f"vae/{name}"]["auroc"], roc_auc_score(labels, scores), atol=1e-6
        )
        assert results[f"vae/{name}"]["positive"] == ("out" if higher_is_ood else "in")


def test_posterior_restores_in_a_fresh_process_and_scores_identically(swag_workdir, tmp_path):
    workdir, config = swag_workdir
    posterior, _ = restore_posterior(posterior_dir(workdir, "vae"))
    model, _ = build_from_config(config, "vae")
    images = jax.random.uniform(jax.random.key(4), (16, 28, 28, 1))
    np.save(tmp_path / "images.npy", np.asarray(images))
    fn = jax.jit(
        lambda p, x, k: posterior_log_likelihoods(
            (lambda v, x, k: model.log_likelihood(v, x, key=k)), p, x, k
        )
    )
    here = np.asarray(fn(posterior, images, jax.random.key(9)))
    script = f"""
import jax, numpy as np
from jaxrobust.config import load_workdir_config
from jaxrobust.inference.samples import restore_posterior
from jaxrobust.inference.predict import posterior_log_likelihoods
from jaxrobust.train import build_from_config
from jaxrobust.train.loop import model_key, posterior_dir
workdir = {str(workdir)!r}
config = load_workdir_config(workdir)
model, _ = build_from_config(config, "vae")
posterior, _ = restore_posterior(posterior_dir(workdir, "vae"))
images = np.load({str(tmp_path / "images.npy")!r})
log_lik = lambda v, x, k: model.log_likelihood(v, x, key=k)  # noqa: E731
fn = jax.jit(lambda p, x, k: posterior_log_likelihoods(log_lik, p, x, k))
np.save({str(tmp_path / "there.npy")!r}, np.asarray(fn(posterior, images, jax.random.key(9))))
"""
    subprocess.run([sys.executable, "-c", script], check=True, env=subprocess_env())
    there = np.load(tmp_path / "there.npy")
    np.testing.assert_array_equal(here, there)


def test_missing_or_mismatched_posterior_is_explained(swag_workdir, tmp_path):
    workdir, config = swag_workdir
    with pytest.raises(CheckpointNotFoundError, match="Train the model"):
        restore_posterior(tmp_path / "nowhere")
    other = copy.deepcopy(config)
    other.models.vae.architecture.latent_dim = 5
    with pytest.raises(CheckpointMismatchError, match="do not fit the model"):
        evaluate(workdir, other)
    bad_score = copy.deepcopy(config)
    bad_score.evaluate.ood.scores = ["vae/elbo"]
    with pytest.raises(ConfigError, match="posterior stack.*expected_ll"):
        evaluate(workdir, bad_score)


# --- BBB -------------------------------------------------------------------------------------


def test_bbb_loss_is_the_model_loss_at_a_weight_sample_plus_the_weight_kl_per_batch():
    model = make_vae((8, 8, 1), 3, network="mlp")
    prior = GaussianPrior(1.0)
    wrapped = bbb_model(model, "^decoder/", prior, kl_per_example=lambda b: 1.0 / b)
    images = jax.random.uniform(jax.random.key(1), (5, 8, 8, 1))
    variables = wrapped.init(jax.random.key(0), images)
    params = variables["params"]
    assert set(params) == {"variational", "point"}
    assert set(params["variational"]["mu"]) == {"decoder"}
    key = jax.random.key(7)
    losses, (metrics, _) = wrapped.loss({"params": params}, {"image": images}, key=key, train=True)
    # Recompute: the weight sample is mu + softplus(rho) * eps with the wrapper's key.
    theta = jax.tree.map(
        lambda m, r, e: m + jax.nn.softplus(r) * e,
        params["variational"]["mu"],
        params["variational"]["rho"],
        _eps_like(jax.random.fold_in(key, 23), params["variational"]["mu"]),
    )
    inner, _ = model.loss(
        {"params": subset.combine(theta, params["point"])}, {"image": images}, key=key, train=True
    )
    kl = mean_field_log_prob(theta, params["variational"]) - prior_log_prob(theta, prior)
    np.testing.assert_allclose(losses, inner + kl / 5, rtol=1e-5)
    np.testing.assert_allclose(metrics["weight_kl"], jnp.full(5, kl), rtol=1e-5)


def _eps_like(key, tree):
    from jaxrobust.inference.bbb import _split_like

    keys = _split_like(key, tree)
    return jax.tree.map(lambda k, x: jax.random.normal(k, x.shape, x.dtype), keys, tree)


def test_bbb_and_sghmc_train_and_write_samples(synthetic_data, tiny_config, tmp_path):
    bbb = {"method": "bbb", "filter": "^decoder/", "num_samples": 4, "prior": {"sigma": 1.0}}
    config = posterior_config(copy.deepcopy(tiny_config), bbb)
    summary = train_and_evaluate(config, tmp_path / "bbb")
    assert np.isfinite(summary["vae"]["train/weight_kl"])
    posterior, meta = restore_posterior(posterior_dir(tmp_path / "bbb", "vae"))
    assert meta["method"] == "bbb" and posterior.num_samples == 4
    sghmc = {"method": "sghmc", "filter": "^decoder/", "num_samples": 3, "burn_in_epochs": 1,
             "thinning_steps": 1}  # fmt: skip
    config = posterior_config(copy.deepcopy(tiny_config), sghmc)
    train_and_evaluate(config, tmp_path / "sghmc")
    posterior, meta = restore_posterior(posterior_dir(tmp_path / "sghmc", "vae"))
    assert meta["method"] == "sghmc" and posterior.num_samples == 3
    leaf = np.asarray(jax.tree.leaves(posterior.samples)[0])
    assert not np.allclose(leaf[0], leaf[1])  # consecutive samples differ


def test_hmc_samples_a_decoder_layer_after_the_point_estimate(
    synthetic_data, tiny_config, tmp_path
):
    hmc = {"method": "hmc", "filter": "^decoder/ConvTranspose_1/", "num_samples": 8,
           "num_warmup": 8, "data": 32, "max_tree_depth": 3, "num_chains": 2}  # fmt: skip
    config = posterior_config(copy.deepcopy(tiny_config), hmc, num_epochs=1)
    train_and_evaluate(config, tmp_path)
    posterior, meta = restore_posterior(posterior_dir(tmp_path, "vae"))
    assert posterior.num_samples == 8
    assert set(subset.paths(posterior.samples["params"])) == {
        "decoder/ConvTranspose_1/kernel",
        "decoder/ConvTranspose_1/bias",
    }
    diagnostics = meta["diagnostics"]
    assert diagnostics["num_chains"] == 2 and 0.0 <= diagnostics["accept_prob"] <= 1.0
    assert {"num_divergences", "max_r_hat", "min_ess"} <= set(diagnostics)
    leaf = np.asarray(posterior.samples["params"]["decoder"]["ConvTranspose_1"]["kernel"])
    assert np.all(np.isfinite(leaf)) and not np.allclose(leaf[0], leaf[-1])
    # The rest is the trained point estimate, shared by every sample.
    _, _, point, _ = restore_model(tmp_path, "vae", "last", config=config)
    np.testing.assert_array_equal(
        posterior.fixed["params"]["encoder"]["Conv_0"]["kernel"],
        point["params"]["encoder"]["Conv_0"]["kernel"],
    )


def test_bad_posterior_configs_are_explained(synthetic_data, tiny_config, tmp_path):
    cases = [
        ({"method": "laplace"}, "method must be one of"),
        ({"method": "swag", "members": 3}, "unknown options \\['members'\\]"),
        ({"method": "ensemble", "members": 1}, "members must be an integer >= 2"),
        ({"method": "swag", "rest": "frozen"}, "rest must be 'point' or 'fixed'"),
        ({"method": "sghmc", "num_samples": 500, "thinning_steps": 50}, "SGHMC needs"),
        ({"method": "swag", "filter": "^head/"}, "matches no parameter"),
    ]
    for i, (posterior, match) in enumerate(cases):
        config = posterior_config(copy.deepcopy(tiny_config), posterior)
        with pytest.raises((ConfigError, ValueError), match=match):
            train_and_evaluate(config, tmp_path / str(i))


def test_save_posterior_replaces_atomically(tmp_path):
    samples = PosteriorSamples({"params": {"w": jnp.ones((3, 2))}}, {"params": {"b": jnp.zeros(2)}})
    save_posterior(tmp_path / "p", samples, {"method": "test"})
    save_posterior(tmp_path / "p", samples._replace(samples={"params": {"w": jnp.zeros((4, 2))}}))
    restored, meta = restore_posterior(tmp_path / "p")
    assert restored.num_samples == 4 and "method" not in meta
    assert not (tmp_path / "p.tmp").exists()


@pytest.mark.parametrize("method", ["bbb", "swag"])
def test_rest_fixed_keeps_the_other_parameters_at_their_initial_values(
    method, synthetic_data, tiny_config, tmp_path
):
    posterior = {"method": method, "filter": "^decoder/", "rest": "fixed", "num_samples": 2}
    if method == "swag":
        posterior.update(start_epoch=1, every_steps=1, rank=2)
    config = posterior_config(copy.deepcopy(tiny_config), posterior, num_epochs=1)
    train_and_evaluate(config, tmp_path)
    restored, _ = restore_posterior(posterior_dir(tmp_path, "vae"))
    model, preprocess = build_from_config(config, "vae")
    # The initial encoder of this run: init with the run's key, as the training loop does.
    images, _ = datasets.load(config.data.name, "train")
    example = preprocess(jnp.asarray(images[:1]))
    init = model.init(jax.random.fold_in(model_key(config.seed, "vae"), 0), example)
    for got, want in zip(
        jax.tree.leaves(restored.fixed["params"]["encoder"]),
        jax.tree.leaves(init["params"]["encoder"]),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)
    # ... while the decoder samples moved away from the initial decoder.
    first = jax.tree.leaves(restored.samples["params"]["decoder"])[0][0]
    assert not np.allclose(first, jax.tree.leaves(init["params"]["decoder"])[0])

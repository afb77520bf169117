"""Chapter-4 scores: the hole indicator (eq. 4.17), input complexity (eq. 4.19) and typicality per
input (eq. 4.18), against NumPy references on explicit samples, Pillow's decoder (lossless
JPEG2000) and hand computations; the VAE computes all of them in one call of its outputs, and
the ood evaluation end to end, with typicality's H from the validation carve."""

from __future__ import annotations

import io
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import only_models
from PIL import Image
from scipy.special import logsumexp

import jaxrobust as jr
from jaxrobust.config import load_config
from jaxrobust.errors import ConfigError, InputError
from jaxrobust.models import make_vae
from jaxrobust.scores import (
    NonFiniteScoreError,
    compute_scores,
    finish_scores,
    hole_indicator,
    importance_weighted_log_likelihood,
    input_complexity,
    iwae_and_hole_indicator,
    jpeg2000_bits_per_dim,
    jpeg2000_bytes,
    score_statistics,
    typicality_per_input,
)

KEY = jax.random.key(0)
INPUTS = 5


def log_terms_fn(key):
    """(log w, log p(x|z)) for 5 inputs with input-dependent scales and a large offset."""
    eps = jax.random.normal(key, (2, INPUTS))
    scale = jnp.arange(1.0, INPUTS + 1.0)
    log_lik = -1000.0 + scale * eps[0]
    return log_lik + 0.5 * eps[1] - 3.0, log_lik


def explicit_samples(num_samples):
    """The samples the estimators draw (sample k uses fold_in(key, k)), as float64 NumPy."""
    pairs = [log_terms_fn(jax.random.fold_in(KEY, k)) for k in range(num_samples)]
    log_w = np.stack([np.asarray(p[0], np.float64) for p in pairs])
    log_lik = np.stack([np.asarray(p[1], np.float64) for p in pairs])
    return log_w, log_lik


# ----------------------------------------------------------------------------- hole indicator


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 10, 64])
def test_hole_indicator_is_the_ddof1_std_of_the_samples_for_every_chunking(chunk_size):
    _, log_lik = explicit_samples(10)
    got = hole_indicator(
        lambda k: log_terms_fn(k)[1], key=KEY, num_samples=10, chunk_size=chunk_size
    )
    np.testing.assert_allclose(got, log_lik.std(0, ddof=1), rtol=2e-4)


def test_iwae_and_hole_indicator_share_the_samples_of_both_estimators():
    log_w, log_lik = explicit_samples(12)
    iwae, hole = iwae_and_hole_indicator(log_terms_fn, key=KEY, num_samples=12, chunk_size=5)
    np.testing.assert_allclose(iwae.log_likelihood, logsumexp(log_w, 0) - math.log(12), rtol=1e-6)
    np.testing.assert_allclose(iwae.std_log_weights, log_w.std(0, ddof=1), rtol=2e-4)
    np.testing.assert_allclose(iwae.elbo, log_w.mean(0), rtol=1e-6)
    np.testing.assert_allclose(hole, log_lik.std(0, ddof=1), rtol=2e-4)
    # The same numbers as the two single-purpose estimators with the same key.
    alone = importance_weighted_log_likelihood(
        lambda k: log_terms_fn(k)[0], key=KEY, num_samples=12, chunk_size=5
    )
    for a, b in zip(iwae, alone, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(
        hole,
        hole_indicator(lambda k: log_terms_fn(k)[1], key=KEY, num_samples=12, chunk_size=4),
        rtol=1e-5,
    )


def test_hole_indicator_under_jit_and_with_one_sample():
    jitted = jax.jit(
        lambda key: hole_indicator(
            lambda k: log_terms_fn(k)[1], key=key, num_samples=10, chunk_size=4
        )
    )
    _, log_lik = explicit_samples(10)
    np.testing.assert_allclose(jitted(KEY), log_lik.std(0, ddof=1), rtol=2e-4)
    iwae, hole = iwae_and_hole_indicator(log_terms_fn, key=KEY, num_samples=1, chunk_size=1)
    assert np.all(np.isnan(hole)) and np.all(np.isnan(iwae.std_log_weights))  # ddof 1


def test_hole_indicator_refuses_bad_input():
    fn = lambda k: log_terms_fn(k)[1]  # noqa: E731
    with pytest.raises(InputError, match="num_samples must be an int >= 2"):
        hole_indicator(fn, key=KEY, num_samples=1, chunk_size=1)
    with pytest.raises(InputError, match="chunk_size"):
        hole_indicator(fn, key=KEY, num_samples=4, chunk_size=0)
    with pytest.raises(InputError, match="shape \\[N\\]"):
        hole_indicator(lambda k: jnp.zeros((2, 3)), key=KEY, num_samples=4, chunk_size=2)
    with pytest.raises(InputError, match="a tuple of 2 arrays"):
        iwae_and_hole_indicator(fn, key=KEY, num_samples=4, chunk_size=2)
    with pytest.raises(InputError, match="one length N"):
        iwae_and_hole_indicator(
            lambda k: (jnp.zeros(3), jnp.zeros(4)), key=KEY, num_samples=4, chunk_size=2
        )
    with pytest.raises(NonFiniteScoreError, match="hole indicator"):
        hole_indicator(lambda k: jnp.array([0.0, jnp.nan]), key=KEY, num_samples=4, chunk_size=2)
    # Under jit: NaN for that input, no error.
    nan = jax.jit(
        lambda key: hole_indicator(
            lambda k: jnp.array([0.0, jnp.nan]) + jax.random.normal(k, (2,)),
            key=key,
            num_samples=4,
            chunk_size=2,
        )
    )(KEY)
    assert np.isfinite(nan[0]) and np.isnan(nan[1])


# ----------------------------------------------------------------------------- input complexity


def _images(rng, n, shape):
    return rng.integers(0, 256, (n, *shape)).astype(np.uint8)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (5, 7, 1)])
def test_jpeg2000_is_lossless_jp2_and_counts_every_byte(shape):
    rng = np.random.default_rng(1)
    images = _images(rng, 3, shape)
    images[1] = 128  # a constant image
    for given in (images, images.astype(np.float32) / 255.0):  # uint8, or floats in [0, 1]
        codes = jpeg2000_bytes(given)
        for code, image in zip(codes, images, strict=True):
            assert code.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n")  # the JP2 signature box
            decoded = np.asarray(Image.open(io.BytesIO(code)))
            np.testing.assert_array_equal(decoded.reshape(image.shape), image)
        d = int(np.prod(shape))
        expected = np.array([8.0 * len(code) / d for code in codes], np.float32)
        np.testing.assert_array_equal(jpeg2000_bits_per_dim(given), expected)


def test_constant_image_codes_far_smaller_than_noise():
    rng = np.random.default_rng(2)
    flat = np.full((1, 28, 28, 1), 0.3)
    noise = rng.uniform(size=(1, 28, 28, 1))
    smooth = np.tile(np.linspace(0.0, 1.0, 28)[None, None, :, None], (1, 28, 1, 1))
    bits = jpeg2000_bits_per_dim(np.concatenate([flat, smooth, noise]))
    assert bits[0] < 0.3 * bits[2] and bits[1] < 0.6 * bits[2]
    assert bits[2] > 8.0  # uniform noise does not compress (plus the header)


def test_bits_per_dim_agrees_under_jit_vmap_and_lax_map():
    rng = np.random.default_rng(3)
    images = rng.uniform(size=(2, 3, 8, 8, 1)).astype(np.float32)
    eager = np.stack([jpeg2000_bits_per_dim(batch) for batch in images])
    np.testing.assert_array_equal(jax.jit(jax.vmap(jpeg2000_bits_per_dim))(images), eager)
    np.testing.assert_array_equal(
        jax.jit(lambda x: jax.lax.map(jpeg2000_bits_per_dim, x))(images), eager
    )
    # vmapped over something else (runs): the images are coded once, broadcast to each run.
    runs = jax.jit(jax.vmap(lambda w, x: w * jpeg2000_bits_per_dim(x), in_axes=(0, None)))(
        jnp.array([1.0, 2.0]), images[0]
    )
    np.testing.assert_array_equal(runs, np.stack([eager[0], 2 * eager[0]]))
    # Out of [0, 1] under jit: NaN for that image only.
    bad = images[0].copy()
    bad[1, 0, 0, 0] = 1.5
    got = jax.jit(jpeg2000_bits_per_dim)(bad)
    assert np.isnan(got[1]) and np.isfinite(np.asarray(got)[[0, 2]]).all()


def test_input_complexity_matches_a_hand_computation():
    # 28x28 grey: d = 784; NLL 1000 nats = 1000 / (784 ln 2) bits/dim.
    log_lik = jnp.array([-1000.0, -543.4])
    bpd = jnp.array([2.5, 0.0])
    expected = np.array([1000.0 / (784 * np.log(2.0)) - 2.5, 543.4 / (784 * np.log(2.0))])
    np.testing.assert_allclose(input_complexity(log_lik, bpd, 784), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "images",
    [
        np.full((1, 4, 4, 1), 1.5, np.float32),
        np.full((1, 4, 4, 1), -0.5, np.float32),
        np.full((1, 4, 4, 1), np.nan, np.float32),
    ],
    ids=["above_one", "negative", "nan"],
)
def test_images_outside_the_unit_interval_are_refused(images):
    for fn in (jpeg2000_bits_per_dim, jpeg2000_bytes):
        with pytest.raises(InputError, match="data.preprocess.scale = True and no mean/std"):
            fn(images)


def test_input_complexity_refuses_bad_input():
    with pytest.raises(InputError, match="C = 1 \\(grey\\) or 3"):
        jpeg2000_bits_per_dim(np.zeros((1, 4, 4, 2), np.uint8))
    with pytest.raises(InputError, match="\\[N, H, W, C\\]"):
        jpeg2000_bits_per_dim(np.zeros((4, 4, 1), np.uint8))
    with pytest.raises(InputError, match="uint8 pixels or floats"):
        jpeg2000_bits_per_dim(np.zeros((1, 4, 4, 1), np.int32))
    with pytest.raises(InputError, match="num_dims"):
        input_complexity(jnp.zeros(2), jnp.zeros(2), 0)
    with pytest.raises(InputError, match="shapes"):
        input_complexity(jnp.zeros(2), jnp.zeros(3), 784)
    with pytest.raises(InputError, match="NaN or negative"):
        input_complexity(jnp.zeros(2), jnp.array([1.0, jnp.nan]), 784)
    with pytest.raises(InputError, match="NaN/\\+inf"):
        input_complexity(jnp.array([jnp.nan, 0.0]), jnp.ones(2), 784)


# ----------------------------------------------------------------------------- typicality


def test_typicality_per_input_and_reference_scores():
    rng = np.random.default_rng(4)
    ll, held = rng.normal(-100, 5, 7), rng.normal(-90, 3, 11)
    expected = np.abs(-ll - np.mean(-held))
    np.testing.assert_allclose(typicality_per_input(ll, held), expected, atol=5e-5)  # float32
    table = {
        "typ": jr.scores.Score(
            lambda o: o["ll"], True, "typicality", ("ll",), reference=typicality_per_input
        ),
        "ll": jr.scores.Score(lambda o: o["ll"], False, "log p", ("ll",)),
    }
    calls = []

    def outputs(variables, x, *, key, names):
        calls.append(sorted(names))
        return {"ll": x}

    got = compute_scores(table, outputs, None, jnp.asarray(ll), ["typ", "ll"], key=None,
                         held_out={"typ": jnp.asarray(held)})  # fmt: skip
    np.testing.assert_allclose(got["typ"], expected, atol=5e-5)
    np.testing.assert_allclose(got["ll"], ll, rtol=1e-6)
    assert calls == [["ll"]]
    stats = score_statistics(table, outputs, None, jnp.asarray(held), ["typ"], key=None)
    np.testing.assert_allclose(stats["typ"], held, rtol=1e-6)  # the statistic, not the score
    with pytest.raises(InputError, match="relative to held-out in-distribution data"):
        compute_scores(table, outputs, None, jnp.asarray(ll), ["typ"], key=None)
    with pytest.raises(InputError, match="shape \\[M\\]"):
        finish_scores(table, {"typ": jnp.asarray(ll)}, {"typ": jnp.zeros((0,))})
    with pytest.raises(InputError, match="must be \\[N\\]"):
        typicality_per_input(jnp.zeros((2, 2)), jnp.zeros(3))


# ----------------------------------------------------------------------------- the VAE


@pytest.fixture(scope="module")
def tiny_vae():
    vae = make_vae((8, 8, 1), 3, network="mlp", network_options={"hidden": (16,)},
                   iwae_samples=6, iwae_chunk=4)  # fmt: skip
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.integers(0, 256, (4, 8, 8, 1)).astype(np.float32) / 255.0)
    variables = vae.init(jax.random.key(0), x)
    return vae, variables, x


def test_vae_hole_indicator_is_the_std_of_log_p_x_given_z_of_its_iwae_samples(tiny_vae):
    vae, variables, x = tiny_vae
    key = jax.random.key(7)
    out = vae.score(variables, x, ["hole_indicator", "iwae"], key=key)
    # NumPy reference: the same z_k = sample(fold_in(key, k)) and the Bernoulli log-density of
    # the decoder's mean, in float64.
    params = vae.encode(variables, x)
    x64 = np.asarray(x, np.float64)
    log_lik = []
    for k in range(6):
        z = vae.latent.sample(jax.random.fold_in(key, k), params)
        mean = np.clip(np.asarray(vae.decode(variables, z), np.float64), 1e-12, 1 - 1e-12)
        log_lik.append(np.sum(x64 * np.log(mean) + (1 - x64) * np.log1p(-mean), axis=(1, 2, 3)))
    np.testing.assert_allclose(out["hole_indicator"], np.std(log_lik, 0, ddof=1), rtol=2e-3)
    assert vae.scores["hole_indicator"].higher_is_ood


def test_vae_per_term_stds_are_the_stds_of_the_log_weight_terms_of_its_samples(tiny_vae):
    """Fig. 5.1's scores: stds (ddof 1) of log p(x|z_k), log q(z_k|x) and log p(z_k) over the
    same z_k as the IWAE estimate, against SciPy's Gaussian log-densities in float64."""
    from scipy import stats

    vae, variables, x = tiny_vae
    key = jax.random.key(9)
    names = ["hole_indicator", "std_log_q", "std_log_prior", "iwae"]
    out = vae.score(variables, x, names, key=key)
    alone = vae.score(variables, x, ["hole_indicator", "iwae"], key=key)
    np.testing.assert_allclose(out["hole_indicator"], alone["hole_indicator"], rtol=1e-5)
    np.testing.assert_allclose(out["iwae"], alone["iwae"], rtol=1e-6)
    mu, log_var = (np.asarray(p, np.float64) for p in vae.encode(variables, x))
    log_q, log_prior = [], []
    for k in range(6):
        z = np.asarray(vae.latent.sample(jax.random.fold_in(key, k), vae.encode(variables, x)))
        log_q.append(stats.norm.logpdf(z, mu, np.exp(0.5 * log_var)).sum(-1))
        log_prior.append(stats.norm.logpdf(z).sum(-1))
    np.testing.assert_allclose(out["std_log_q"], np.std(log_q, 0, ddof=1), rtol=2e-3)
    np.testing.assert_allclose(out["std_log_prior"], np.std(log_prior, 0, ddof=1), rtol=2e-3)
    assert not np.allclose(out["std_log_q"], out["std_log_prior"])


def test_vae_scores_come_from_one_call_of_its_outputs(tiny_vae):
    vae, variables, x = tiny_vae
    key = jax.random.key(8)
    names = ["iwae", "iwae_std", "hole_indicator", "input_complexity", "typicality",
             "latent_mean_inf_norm"]  # fmt: skip
    calls = []

    def outputs(v, images, *, key, names):
        calls.append(sorted(names))
        return vae.outputs(v, images, key=key, names=names)

    held_out = score_statistics(vae.scores, vae.outputs, variables, x[:2], ["typicality"], key=key)
    got = compute_scores(vae.scores, outputs, variables, x, names, key=key, held_out=held_out)
    assert calls == [["complexity_bpd", "hole_indicator", "iwae", "latent_mean"]]
    iwae = np.asarray(got["iwae"], np.float64)
    alone = vae.score(variables, x, ["iwae", "hole_indicator"], key=key)  # the same samples
    np.testing.assert_allclose(got["iwae"], alone["iwae"], rtol=1e-6)
    np.testing.assert_allclose(got["hole_indicator"], alone["hole_indicator"], rtol=1e-6)
    bpd = np.array([8.0 * len(c) / 64 for c in jpeg2000_bytes(np.asarray(x))])
    np.testing.assert_allclose(got["input_complexity"], -iwae / (64 * np.log(2)) - bpd, rtol=1e-5)
    h = -np.mean(np.asarray(held_out["typicality"], np.float64))
    np.testing.assert_allclose(got["typicality"], np.abs(-iwae - h), rtol=1e-5, atol=1e-4)
    mu, _ = vae.encode(variables, x)
    np.testing.assert_allclose(got["latent_mean_inf_norm"], np.abs(mu).max(-1), rtol=1e-6)
    for name in names[1:]:
        assert vae.scores[name].higher_is_ood, name
    jitted = jax.jit(lambda v, images, k: vae.outputs(v, images, key=k, names={"complexity_bpd"}))
    np.testing.assert_array_equal(jitted(variables, x, key)["complexity_bpd"], bpd)


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def evaluated(synthetic_data_root, tmp_path_factory):
    from jaxrobust.train import train_and_evaluate

    patch = pytest.MonkeyPatch()
    patch.setenv("JAXROBUST_DATA", str(synthetic_data_root))
    config = only_models(load_config(Path(__file__).parent / "configs" / "tiny.py"), "vae")
    config.data.validation_split = "train"  # typicality's H: held out from training
    config.data.validation_size = 64
    config.data.train_limit = 128
    config.evaluate.test_limit = 128
    config.models.vae.training.num_epochs = 1
    architecture = config.models.vae.architecture
    architecture.network, architecture.network_options = "mlp", {"hidden": (32,)}  # compiles fast
    architecture.iwae_samples, architecture.iwae_chunk = 4, 2
    config.evaluate.ood.scores = ["vae/hole_indicator", "vae/input_complexity", "vae/typicality",
                                  "vae/latent_mean_inf_norm"]  # fmt: skip
    workdir = tmp_path_factory.mktemp("holes")
    train_and_evaluate(config, workdir)
    results = jr.evaluate.evaluate(workdir, config)
    yield workdir, config, results
    patch.undo()


def test_ood_task_computes_the_chapter4_scores(evaluated):
    workdir, config, results = evaluated
    ood = results["ood"]["fashion_mnist->mnist"]
    assert set(ood) == set(config.evaluate.ood.scores)
    for ref in ood:
        assert ood[ref]["higher_is_ood"] and np.isfinite(ood[ref]["auroc"]), ref
    passes = [(p["model"], p["dataset"]) for p in results["meta"]["passes"]]
    assert sorted(passes) == [
        ("vae", "fashion_mnist"),
        ("vae", "fashion_mnist:validation"),
        ("vae", "mnist"),
    ]  # one pass per dataset, the held-out carve included


def test_typicality_is_relative_to_the_validation_carve(evaluated):
    workdir, config, _ = evaluated
    ctx = jr.evaluate.EvaluationContext(workdir, config)
    in_name, held = "fashion_mnist", "fashion_mnist:validation"
    for dataset in (in_name, "mnist"):
        ctx.request("vae", dataset, ["iwae", "typicality"])
    ctx.request("vae", held, ["iwae"])
    iwae_held = np.asarray(ctx.outputs("vae", held)["iwae"], np.float64)
    assert iwae_held.shape == (1, 64)  # the carve, not the 128 test images
    h = -iwae_held.mean()
    for dataset in (in_name, "mnist"):
        out = ctx.outputs("vae", dataset)
        # float32 NLLs of ~500 nats: absolute rounding ~1e-4
        np.testing.assert_allclose(out["typicality"], np.abs(-out["iwae"] - h), atol=5e-4)
    assert len(ctx.passes) == 3


def test_typicality_is_refused_when_validation_is_the_test_split(evaluated):
    workdir, config, _ = evaluated
    config = jr.config.resolve_config(config)
    config.data.validation_split = "test"
    ctx = jr.evaluate.EvaluationContext(workdir, config)
    ctx.request("vae", "fashion_mnist", ["hole_indicator"])  # fine: no held-out statistic
    with pytest.raises(ConfigError, match="data.validation_split = 'train'"):
        ctx.request("vae", "fashion_mnist", ["typicality"])


def test_intensity_scaling_scores_the_scaled_outliers(evaluated):
    """Table 4.8's task: scores of s * x for every scale from one pass, and their AUROC against
    the in-distribution scores (checked against direct calls and scikit-learn)."""
    from sklearn.metrics import roc_auc_score

    from jaxrobust.evaluate.intensity import run, scaled_scores

    workdir, config, _ = evaluated
    ctx = jr.evaluate.EvaluationContext(workdir, config)
    score, scales = "latent_mean_inf_norm", [1.0, 3.0]  # deterministic: the encoder's mean
    section = {"models": ["vae"], "score": score, "dataset": "mnist", "scales": scales,
               "positive": "out"}  # fmt: skip
    ctx.request("vae", "fashion_mnist", [score])
    got = scaled_scores(ctx, "vae", score, "mnist", scales)  # [S, 1, N]
    restored = ctx.restored("vae")
    x = restored.preprocess(ctx.dataset("mnist").images)
    key = jax.random.key(0)
    for i, s in enumerate(scales):
        direct = restored.model.score(restored.variables, s * x, [score], key=key)[score]
        np.testing.assert_allclose(got[i, 0], direct, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got[0], got[1])  # the scale reaches the model
    result = run(section, ctx)["models"]["vae"]["scales"]
    s_in = np.asarray(ctx.outputs("vae", "fashion_mnist")[score][0])
    for i, s in enumerate(scales):
        labels = np.r_[np.zeros(len(s_in)), np.ones(got.shape[-1])]
        expected = roc_auc_score(labels, np.r_[s_in, got[i, 0]])
        assert result[f"{s:g}"]["auroc"] == pytest.approx(expected, abs=1e-6)

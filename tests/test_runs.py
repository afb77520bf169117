"""R runs of one config trained as one vmapped program equal R separate runs."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxrobust.errors import ConfigError
from jaxrobust.evaluate import evaluate, restore_model
from jaxrobust.train import train_and_evaluate


def vae_only(config, **changes):
    config.models = {"vae": config.models.vae}
    config.evaluate.classification.models = []
    config.evaluate.ood.scores = ["vae/kl"]
    config.evaluate.test_limit = 300
    config.data.train_limit = 512
    config.data.validation_limit = 256
    config.models.vae.training.num_epochs = 1
    for key, value in changes.items():
        if key == "seed":
            setattr(config, key, value)
        else:
            config.models.vae.training[key] = value
    return config


def test_vmapped_runs_equal_separate_runs(synthetic_data, tiny_config, tmp_path):
    import copy

    num_runs, seed = 3, 11
    stacked_cfg = vae_only(copy.deepcopy(tiny_config), seed=seed, num_runs=num_runs)
    summary = train_and_evaluate(stacked_cfg, tmp_path / "stacked")
    assert summary["vae"]["num_runs"] == num_runs
    assert len(summary["vae"]["val/loss/runs"]) == num_runs
    _, _, stacked, _ = restore_model(tmp_path / "stacked", "vae", "last", config=stacked_cfg)
    stacked_results = evaluate(tmp_path / "stacked")["ood"]["fashion_mnist->mnist"]["vae/kl"]
    assert stacked_results["num_runs"] == num_runs
    runs_auroc = stacked_results["runs"]["auroc"]
    np.testing.assert_allclose(stacked_results["auroc"], np.mean(runs_auroc))
    np.testing.assert_allclose(stacked_results["auroc_std"], np.std(runs_auroc, ddof=1))
    assert "(" in (tmp_path / "stacked" / "results.md").read_text().split("| vae/kl |")[1]
    for run in range(num_runs):
        single_cfg = vae_only(copy.deepcopy(tiny_config), seed=seed + run)
        single_summary = train_and_evaluate(single_cfg, tmp_path / f"run{run}")
        _, _, single, _ = restore_model(tmp_path / f"run{run}", "vae", "last", config=single_cfg)
        for got, want in zip(jax.tree.leaves(stacked), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(np.asarray(got)[run], np.asarray(want), rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(
            summary["vae"]["val/loss/runs"][run], single_summary["vae"]["val/loss"], rtol=1e-4
        )
        # The KL score is deterministic: the stacked evaluation of run r is run r's evaluation.
        single_results = evaluate(tmp_path / f"run{run}")["ood"]["fashion_mnist->mnist"]
        np.testing.assert_allclose(runs_auroc[run], single_results["vae/kl"]["auroc"], atol=1e-4)
    # Different seeds give different runs.
    leaf = np.asarray(jax.tree.leaves(stacked)[0])
    assert not np.allclose(leaf[0], leaf[1])


def test_bad_num_runs_is_explained(synthetic_data, tiny_config, tmp_path):
    config = vae_only(tiny_config, num_runs=0)
    with pytest.raises(ConfigError, match="num_runs must be a positive integer"):
        train_and_evaluate(config, tmp_path / "bad")


@pytest.mark.gpu
@pytest.mark.parametrize("strategy", ["vmap", "map"])
def test_over_runs_matches_a_loop_over_runs(strategy):
    from jaxrobust.runs import over_runs

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4, 3, 2)).astype(np.float32)  # 4 runs
    shared = rng.normal(size=(5, 3)).astype(np.float32)
    offsets = rng.normal(size=(4,)).astype(np.float32)

    def fn(w, x, b):
        return {"y": x @ w + b}

    got = jax.jit(over_runs(fn, (0, None, 0), strategy))(weights, shared, offsets)["y"]
    want = np.stack([shared @ weights[r] + offsets[r] for r in range(4)])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_unknown_runs_strategy_is_explained():
    from jaxrobust.runs import runs_strategy

    with pytest.raises(ValueError, match="runs strategy must be one of"):
        runs_strategy("pmap")

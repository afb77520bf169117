"""Hyperparameter sweeps as one program (jaxrobust.sweep): a stacked loss-weight axis."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import TINY_CONFIG

from jaxrobust.config import load_config, resolve_config
from jaxrobust.errors import ConfigError
from jaxrobust.evaluate import evaluate, restore_model
from jaxrobust.registry import UnknownNameError
from jaxrobust.sweep import Sweep
from jaxrobust.train import train_and_evaluate
from jaxrobust.train.loop import check_buildable

ALPHAS = [1.0, 100.0]


def _config(alpha=1.0, sweep=None, num_runs=2):
    config = load_config(TINY_CONFIG)
    config.data.preprocess.resize_to = 32
    config.data.train_limit = 64
    config.models = {
        "dhm": {
            "kind": "hybrid",
            "architecture": {"width": 0.0625, "blocks": [1, 1, 1, 1], "latent_dim": 4,
                             "head_hidden": 8, "alpha": alpha, "iwae_samples": 4,
                             "iwae_chunk": 4},
            "training": {"batch_size": 32, "num_epochs": 1, "eval_batch_size": 64,
                         "num_runs": num_runs, "sweep": sweep},
        }
    }  # fmt: skip
    config.evaluate = {"batch_size": 64, "test_limit": 64}
    return config


@pytest.fixture(scope="module")
def trained(synthetic_data_root, tmp_path_factory):
    """The 2-alpha x 2-seed sweep as one program, and alpha = 100 trained on its own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JAXROBUST_DATA", str(synthetic_data_root))
        swept_dir, alone_dir = tmp_path_factory.mktemp("swept"), tmp_path_factory.mktemp("alone")
        swept = resolve_config(_config(sweep={"alpha": ALPHAS}))
        alone = resolve_config(_config(alpha=100.0))
        train_and_evaluate(swept, swept_dir)
        train_and_evaluate(alone, alone_dir)
        yield swept, swept_dir, alone, alone_dir


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_each_setting_of_the_swept_program_equals_its_separately_trained_model(trained):
    swept, swept_dir, alone, alone_dir = trained
    _, _, all_members, _ = restore_model(swept_dir, "dhm", "last", config=swept)
    assert all_members["loss_weights"]["alpha"].tolist() == [1.0, 1.0, 100.0, 100.0]
    _, _, member, _ = restore_model(swept_dir, "dhm@alpha=100", "last", config=swept)
    _, _, reference, _ = restore_model(alone_dir, "dhm", "last", config=alone)
    ours = {k: v for k, v in member.items() if k != "loss_weights"}
    for a, b in zip(_leaves(ours), _leaves(reference), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    # the other setting trained differently (the sweep is not a copy of one model)
    _, _, first, _ = restore_model(swept_dir, "dhm@alpha=1", "last", config=swept)
    pairs = zip(_leaves(first["params"]), _leaves(member["params"]), strict=True)
    diffs = [np.abs(a - b).max() for a, b in pairs]
    assert max(diffs) > 1e-3


def test_settings_are_evaluated_by_name_with_their_own_runs(trained):
    swept, swept_dir, alone, alone_dir = trained
    names = Sweep.from_training(swept.models.dhm.training).setting_names("dhm")
    assert names == ["dhm@alpha=1", "dhm@alpha=100"]
    config = swept.copy_and_resolve_references()
    config.evaluate.classification = {"models": [*names, "dhm"]}
    results = evaluate(swept_dir, resolve_config(config))["classification"]
    reference_config = alone.copy_and_resolve_references()
    reference_config.evaluate.classification = {"models": ["dhm"]}
    reference = evaluate(alone_dir, resolve_config(reference_config))["classification"]["dhm"]
    got = results["dhm@alpha=100"]
    assert got["num_runs"] == 2 and results["dhm"]["num_runs"] == 4
    np.testing.assert_allclose(got["runs"]["accuracy"], reference["runs"]["accuracy"], atol=1e-6)
    np.testing.assert_allclose(got["runs"]["nll"], reference["runs"]["nll"], rtol=2e-4)


def test_unknown_or_out_of_range_swept_weights_are_refused_before_training():
    with pytest.raises(ConfigError, match=r"sweep\.alpha\[1\]"):
        resolve_config(_config(sweep={"alpha": [1.0, -2.0]}))
    with pytest.raises(UnknownNameError, match="not a loss weight this model can sweep"):
        check_buildable(resolve_config(_config(sweep={"gamma": [1.0, 2.0]})))
    with pytest.raises(ConfigError, match="repeats a value"):
        resolve_config(_config(sweep={"alpha": [1.0, 1.0]}))
    config = _config(sweep={"alpha": ALPHAS})
    config.evaluate.classification = {"models": ["dhm@alpha=3"]}
    with pytest.raises(UnknownNameError, match="Unknown sweep setting 'alpha=3'"):
        resolve_config(config)

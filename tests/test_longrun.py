"""The long-run check (tools/longrun_check.py), reduced: 8 epochs and 100 evaluation batches of
the tiny VAE, no recompilation after the first epoch / batch and flat memory; and the check's
own detectors (a recompiling function is counted, a grown RSS fails the verdict).

``python tools/longrun_check.py`` runs the full check (50 epochs, 1000 batches, both models).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import longrun_check  # noqa: E402


def test_reduced_long_run_has_no_recompilation_and_flat_memory(synthetic_data, tmp_path):
    out = tmp_path / "longrun.json"
    argv = ["--epochs", "8", "--batches", "100", "--warmup-epochs", "3", "--warmup-batches",
            "10", "--models", "vae", "--workdir", str(tmp_path), "--data", str(synthetic_data),
            "--out", str(out)]  # fmt: skip
    code = longrun_check.main(argv)
    record = json.loads(out.read_text())
    assert code == 0, record["failed"]
    vae = record["models"]["vae"]
    assert vae["epochs"] == 8 and len(vae["per_epoch"]) == 8 and vae["eval_batches"] == 100
    assert vae["compiles_after_epoch_1"] == 0 and vae["eval_compiles_after_batch_1"] == 0
    assert abs(vae["rss_growth_mb"]) < 50 and abs(vae["eval_rss_growth_mb"]) < 50
    # The counter saw the compilations that did happen (the epoch, the validation pass, ...).
    assert len(record["compiled_functions"]) >= 2
    assert all(row["rss_mb"] > 0 for row in vae["per_epoch"])


def test_counter_counts_recompilations_and_the_verdict_reports_them():
    counter = longrun_check.CompileCounter()
    f = jax.jit(lambda x: jnp.tanh(x) * 2)
    inputs = {n: jnp.ones(n) for n in range(3, 10)}
    with counter.listening():
        f(inputs[3]).block_until_ready()
        warm = counter.compiles
        for n in range(4, 7):  # a new shape every "epoch": a recompilation each time
            f(inputs[n]).block_until_ready()
        f(inputs[6]).block_until_ready()
    assert counter.compiles - warm == 3
    after = counter.compiles
    f(inputs[9]).block_until_ready()  # not listening any more
    assert counter.compiles == after
    record = {
        "models": {
            "m": {
                "compiles_after_epoch_1": counter.compiles - warm,
                "rss_growth_mb": 80.0,
                "eval_compiles_after_batch_1": 0,
                "eval_rss_growth_mb": 0.5,
            }
        }
    }
    failed = longrun_check.verdict(record, 50.0)
    assert failed == [
        "m: 3 compilations after epoch 1",
        "m: RSS grew 80.0 MiB during training (limit 50.0)",
    ]


def test_doctests_of_the_check():
    import doctest

    assert doctest.testmod(longrun_check).failed == 0

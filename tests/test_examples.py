"""``examples/library_use.py`` runs with public names only and does what it says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "library_use.py"


def test_library_use_example():
    spec = importlib.util.spec_from_file_location("library_use", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source = EXAMPLE.read_text()
    assert "jaxrobust." not in source.replace("import jaxrobust as jr", "")  # public names only
    out = module.main()

    # A few optax steps lower both training losses.
    assert out["vae_losses"][-1] < out["vae_losses"][0]
    assert out["cnn_losses"][-1] < out["cnn_losses"][0]
    # IWAE is a tighter bound than the one-sample ELBO on average; the std is non-negative.
    assert float(jnp.mean(out["iwae"])) > float(jnp.mean(out["elbo"])) - 1.0
    assert bool(jnp.all(out["iwae_std"] >= 0))
    # The ensemble trained 3 different members in one program; its MI matches NumPy.
    logits = np.asarray(out["member_logits"], np.float64)
    assert logits.shape == (3, 32, 10) and not np.allclose(logits[0], logits[1])
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)

    def entropy(q):
        return -(q * np.log(q)).sum(-1)

    mi = entropy(p.mean(0)) - entropy(p).mean(0)
    np.testing.assert_allclose(out["ensemble"]["mutual_information"], mi, atol=1e-5)
    # PGD stays in the eps ball and the domain, and does not raise accuracy.
    x, x_pgd = out["images"], out["x_pgd"]
    assert float(jnp.max(jnp.abs(x_pgd - x))) <= 0.1 + 1e-6
    assert float(jnp.min(x_pgd)) >= 0.0 and float(jnp.max(x_pgd)) <= 1.0
    assert out["pgd_accuracy"] <= out["clean_accuracy"]
    # The latent attack moved the encoding (D_sym > 0) within its ball.
    assert float(jnp.max(jnp.abs(out["x_latent"] - x))) <= 0.1 + 1e-6
    assert float(jnp.min(out["latent_divergence"])) > 0.0
    jax.effects_barrier()

"""tools/bench_vmf.py: its PyTorch peer samples the right vMF, and its quick mode writes the
figures and ratios (issue 15).

- The peer (a twin of the S-VAE authors' ``VonMisesFisher.rsample``): the mean of mu.z at
  kappa 10 and 100, m = 3 and 64, against A_m(kappa) = I_{m/2}(kappa) / I_{m/2-1}(kappa) from
  SciPy, within 5 standard deviations (Var(mu.z) = 1 - A^2 - (m-1) A / kappa); the authors'
  own b (their Taylor form above kappa = 10) is detectably biased at m = 64, kappa = 20.
- ``--quick``: every workload in the JSON with both sides' figures, the ratio equal to the
  quotient of the rates, the samplers' checks passed, both hole indicators equal within
  sampling error and the two networks equal (same weights), and the markdown section.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import ive

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))

import bench_vmf  # noqa: E402


def _z_score(m: int, kappa: float, authors_b: bool = False, n: int = 20_000) -> float:
    torch.manual_seed(0)
    loc = torch.zeros(n, m)
    loc[:, -1] = 1.0
    z = bench_vmf.torch_vmf_rsample(loc, torch.full((n, 1), kappa), authors_b=authors_b)
    assert z.shape == (n, m)
    np.testing.assert_allclose(z.norm(dim=-1).numpy(), 1.0, atol=1e-3)
    a = ive(m / 2, kappa) / ive(m / 2 - 1, kappa)
    var = 1 - a * a - (m - 1) * a / kappa
    return (float(z[:, -1].double().mean()) - a) / math.sqrt(var / n)


@pytest.mark.parametrize("m", [3, 64])
@pytest.mark.parametrize("kappa", [10.0, 100.0])
def test_peer_mean_resultant_length_matches_a_m(m, kappa):
    assert abs(_z_score(m, kappa)) < 5.0


def test_authors_b_is_biased_at_m64():
    assert _z_score(64, 20.0, authors_b=True) < -20.0  # 0.12 instead of A_64(20) = 0.29


def test_quick_mode_json_and_section(tmp_path):
    out, md = tmp_path / "vmf.json", tmp_path / "BENCH.md"
    assert bench_vmf.main(["--quick", "--json", str(out), "--output", str(md)]) == 0
    result = json.loads(out.read_text())
    assert result["device"] and result["stamp"]["torch"]
    for key in ("vmf_m3", "vmf_m3_inverse_cdf", "vmf_m64", "hole_indicator"):
        record = result["workloads"][key]
        rates = {side: record["figures"][side]["rate"] for side in ("jaxrobust", "pytorch")}
        assert all(r > 0 for r in rates.values())
        (ratio,) = record["ratios"]
        assert ratio["value"] == pytest.approx(rates["jaxrobust"] / rates["pytorch"])
    for key in ("vmf_m3", "vmf_m3_inverse_cdf", "vmf_m64"):
        checks = result["workloads"][key]["checks"]
        assert checks["pytorch"]["ok"] and checks["jaxrobust"]["ok"]
    assert not result["workloads"]["vmf_m64"]["checks"]["pytorch, the authors' b"]["ok"]
    hole = result["workloads"]["hole_indicator"]
    assert max(hole["parity"].values()) < 1e-4
    assert hole["agreement"]["finite"] and hole["agreement"]["rel_diff_of_means"] < 0.1
    text = md.read_text()
    assert bench_vmf.BEGIN in text and bench_vmf.END in text
    assert result["device"] in text and "ratio jaxrobust / PyTorch" in text

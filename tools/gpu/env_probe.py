"""The suite's first step: the device, the versions and the date, as JSON (``--json FILE``).

Imports JAX first (so that it, not PyTorch, loads the CUDA libraries it was built with), then
PyTorch, and records ``bench_report.suite_environment``, ``jax.print_environment_info`` and, on a
GPU, ``nvidia-smi``'s name, driver, memory and clocks. With ``--device gpu`` it fails (exit 2)
when JAX's backend is not the GPU.

    python tools/gpu/env_probe.py --device auto --json /tmp/env.json
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/: bench_report

from bench_report import atomic_write_json, suite_environment  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--json", required=True)
    args = parser.parse_args(argv)

    import jax

    backend = jax.default_backend()
    device = "gpu" if backend == "gpu" else "cpu"
    env = suite_environment(device)
    env["backend"] = backend
    env["devices"] = [str(d) for d in jax.devices()]
    try:  # the CUDA runtime, cuDNN and driver versions JAX sees (private module: best effort)
        from jax._src.lib import cuda_versions

        if cuda_versions is not None:
            versions = {}
            for name in dir(cuda_versions):
                if name.endswith("_get_version"):
                    try:
                        versions[name.replace("_get_version", "")] = str(
                            getattr(cuda_versions, name)()
                        )
                    except Exception:  # e.g. a function that takes arguments
                        continue
            env["jax_cuda_versions"] = versions
    except Exception as err:
        env["jax_cuda_versions"] = f"unavailable: {type(err).__name__}"
    try:
        env["jax_environment_info"] = jax.print_environment_info(return_string=True)
    except Exception as err:  # informative only
        env["jax_environment_info"] = f"unavailable: {type(err).__name__}: {err}"
    if shutil.which("nvidia-smi"):
        query = "name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit"
        try:
            out = subprocess.run(
                ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            env["nvidia_smi"] = {"query": query, "rows": out.stdout.strip().splitlines()}
        except (OSError, subprocess.SubprocessError) as err:
            env["nvidia_smi"] = f"failed: {err}"
    atomic_write_json(args.json, {"environment": env, "workloads": {}})
    print(f"[probe] {env['device']}; jax {env['stamp'].get('jax')}, backend {backend}", flush=True)
    if args.device == "gpu" and backend != "gpu":
        print(
            f"[probe] JAX's backend is {backend!r}, not the GPU ({jax.devices()}): is the jax "
            "CUDA plugin installed and a GPU visible?",
            flush=True,
        )
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

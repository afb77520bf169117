"""Runs training in a fresh process for the tests (device count and kills need their own process).

  python train_worker.py --workdir W [--kill-after MODEL:EPOCH] [--devices N] [--vae-runs R]
                         [KEY=VALUE ...]

With --devices N, XLA_FLAGS must already request N host devices; the run uses the first N.
--kill-after sends SIGKILL to this process right after that model's epoch is checkpointed,
like a pre-empted batch job. --vae-runs R trains only the VAE, R runs stacked (num_runs = R).
"""

import argparse
import os
import signal
from pathlib import Path

import jax
from conftest import only_models

from jaxrobust.config import load_config
from jaxrobust.train import train_and_evaluate

TINY = Path(__file__).parent / "configs" / "tiny.py"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--kill-after", default=None)
    parser.add_argument("--devices", type=int, default=None)
    parser.add_argument("--vae-runs", type=int, default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    config = load_config(TINY, args.overrides)
    if args.vae_runs:
        only_models(config, "vae")
        config.models.vae.training.num_runs = args.vae_runs
    hooks = []
    if args.kill_after:
        model, epoch = args.kill_after.split(":")

        def kill(name, done_epoch, state):
            if name == model and done_epoch == int(epoch):
                os.kill(os.getpid(), signal.SIGKILL)

        hooks.append(kill)
    devices = jax.devices()[: args.devices] if args.devices else None
    if args.devices and len(devices) != args.devices:
        raise SystemExit(f"asked for {args.devices} devices, have {len(jax.devices())}")
    train_and_evaluate(config, args.workdir, hooks=hooks, devices=devices)


if __name__ == "__main__":
    main()

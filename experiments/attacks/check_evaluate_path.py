"""The ``attacks`` evaluation task vs the robustness-curve script it replaced, on one checkpoint.

Runs the FGSM / PGD-40 accuracy curve of ``evaluate.attacks`` (``jaxrobust evaluate``) and the
evaluator of ``experiments/attacks/robustness_curve.py`` as it was before the task existed
(commit b06cba1, from a checkout given by ``--before``, e.g. ``git worktree add /work/before
b06cba1``) on the same checkpoint, the same first 1000 MNIST test images and the same keys, and
prints both curves and their largest difference:

    python experiments/attacks/check_evaluate_path.py --before /work/before \\
        --workdir runs/attacks/mnist_cnn
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

OLD = """
import json, sys
import jax, jax.numpy as jnp, numpy as np
sys.argv = ["x"]
from jaxrobust import data as datasets
from jaxrobust.config import load_config
from jaxrobust.evaluate import restore_model
spec = __import__("importlib.util").util.spec_from_file_location(
    "old_curve", "{before}/experiments/attacks/robustness_curve.py")
old = __import__("importlib.util").util.module_from_spec(spec); spec.loader.exec_module(old)
config = load_config("{before}/experiments/attacks/{config}")
model, preprocess, variables, epoch = restore_model("{workdir}", config, "cnn", "{which}")
images, labels = datasets.load("mnist", "test")
x = jnp.asarray(preprocess(jnp.asarray(images[:1000])))
y = jnp.asarray(labels[:1000].astype(np.int32))
fg, pg = old.make_evaluator(model.logits, 250)(variables, x, y, jax.random.key(0))
print(json.dumps({{"epoch": epoch, "fgsm": np.asarray(fg, np.float64).mean(1).tolist(),
                  "pgd": np.asarray(pg, np.float64).mean(1).tolist()}}))
"""


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="checkout of commit b06cba1")
    p.add_argument("--workdir", default="runs/attacks/mnist_cnn")
    p.add_argument("--config", default="mnist_cnn.py", help="config file in experiments/attacks")
    args = p.parse_args(argv)

    from jaxrobust.config import load_config
    from jaxrobust.evaluate import evaluate

    config = load_config(HERE / args.config)
    new = evaluate(args.workdir, config)["attacks"]["cnn"]
    script = OLD.format(
        before=Path(args.before).absolute(),
        config=args.config,
        workdir=Path(args.workdir).absolute(),
        which=config.evaluate.checkpoint,
    )
    env = {"PYTHONPATH": str(Path(args.before).absolute())}
    # cwd = the old checkout: ``python -c`` puts the working directory first on sys.path.
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **env}, cwd=args.before,
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"the old evaluator failed:\n{done.stderr[-3000:]}")
    old = json.loads(done.stdout.strip().splitlines()[-1])
    diff = max(
        abs(a - b) for k in ("fgsm", "pgd") for a, b in zip(new["accuracy"][k], old[k], strict=True)
    )
    out = {"epoch": new["epoch"], "task": new["accuracy"], "script": old, "max_abs_diff": diff}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

"""Command line: ``jaxrobust train | evaluate | data``.

jaxrobust train --config experiments/quickstart.py --workdir runs/quickstart [--config.K=V ...]
jaxrobust evaluate --workdir runs/quickstart [--config FILE] [--config.K=V ...]
jaxrobust data fetch mnist fashion_mnist
jaxrobust data list
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxrobust.errors import JaxrobustError

OVERRIDE_HELP = (
    "Override config fields with --config.path.to.key=value (repeatable), e.g. "
    "--config.models.vae.training.num_epochs=1."
)


def _split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate ``--config.a.b=v`` / ``--config.a.b v`` overrides from the other arguments."""
    rest, overrides = [], []
    it = iter(argv)
    for arg in it:
        if arg.startswith("--config."):
            body = arg[len("--config.") :]
            if "=" not in body:
                body = f"{body}={next(it, '')}"
            overrides.append(body)
        else:
            rest.append(arg)
    return rest, overrides


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxrobust", description="Robust deep learning in JAX: train, evaluate, data."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train the models of a config into a workdir (resumes if it has checkpoints)",
        epilog=OVERRIDE_HELP,
    )
    train.add_argument("--config", required=True, help="Python config file with get_config()")
    train.add_argument("--workdir", required=True, help="output directory")

    evaluate = sub.add_parser(
        "evaluate",
        help="restore a workdir's checkpoints and write results.json, results.md and plots",
        epilog=OVERRIDE_HELP,
    )
    evaluate.add_argument("--workdir", required=True, help="directory written by `train`")
    evaluate.add_argument(
        "--config", help="config file (default: the workdir's config.json from training)"
    )

    data = sub.add_parser("data", help="fetch datasets into the cache, or list the cache")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="download/convert datasets into the cache")
    fetch.add_argument("names", nargs="+", help="dataset names (see `jaxrobust data list`)")
    data_sub.add_parser("list", help="known datasets, and what is cached (sizes, sources)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest, overrides = _split_overrides(argv)
    args = _parser().parse_args(rest)
    try:
        if args.command == "train":
            return _train(args, overrides)
        if args.command == "evaluate":
            return _evaluate(args, overrides)
        return _data(args)
    except (JaxrobustError, KeyError, ValueError, FileNotFoundError, FloatingPointError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"jaxrobust {args.command}: error: {message}", file=sys.stderr)
        return 1


def _train(args, overrides) -> int:
    from jaxrobust.config import load_config
    from jaxrobust.train import train_and_evaluate

    config = load_config(args.config, overrides)
    summary = train_and_evaluate(config, args.workdir)
    for name, row in summary.items():
        shown = {
            k: v
            for k, v in row.items()
            if k.startswith(("train/", "val/")) and isinstance(v, (int, float))
        }
        text = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
        print(f"{name}: epoch {row.get('epoch')} (best {row.get('best_epoch')}): {text}")
    print(f"Checkpoints in {args.workdir}/checkpoints.")
    print(f"Next: jaxrobust evaluate --workdir {args.workdir}")
    return 0


def _evaluate(args, overrides) -> int:
    from jaxrobust.config import load_config, load_workdir_config
    from jaxrobust.evaluate import evaluate, results_markdown

    if args.config:
        config = load_config(args.config, overrides)
    else:
        config = load_workdir_config(args.workdir, overrides)  # validated after the overrides
    results = evaluate(args.workdir, config)
    print(results_markdown(results))
    print(f"Written: {args.workdir}/results.json, results.md, plots/")
    return 0


def _data(args) -> int:
    from jaxrobust import data

    if args.data_command == "fetch":
        for row in data.fetch(args.names):
            print(_fetch_line(row))
        return 0
    rows = data.cached_entries()
    print(f"Data directory: {data.data_dir()}")
    print(f"Known datasets: {', '.join(data.known_datasets())}")
    if not rows:
        print("Nothing cached yet. Fetch with: jaxrobust data fetch NAME...")
        return 0
    print(f"{'dataset':<16}{'split':<8}{'examples':>10}{'size (MB)':>12}  source")
    for row in rows:
        print(
            f"{row['dataset']:<16}{row['split']:<8}{row.get('n_examples', 0):>10}"
            f"{row['size_bytes'] / 1e6:>12.1f}  {row.get('source', '?')}"
        )
    return 0


def _fetch_line(row: dict) -> str:
    return (
        f"{row['dataset']}/{row['split']}: {row['action']} ({row['n_examples']} examples, "
        f"{row['size_bytes'] / 1e6:.1f} MB, source {row['source']}) -> {row['path']}"
    )


if __name__ == "__main__":
    sys.exit(main())

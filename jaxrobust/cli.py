"""Command line: ``jaxrobust train | evaluate | data``.

jaxrobust train --config experiments/quickstart.py --workdir runs/quickstart [--config.K=V ...]
jaxrobust evaluate --workdir runs/quickstart [--config FILE] [--config.K=V ...]
jaxrobust data fetch mnist fashion_mnist
jaxrobust data list

Exit status: 0 done; 1 an error, reported in one message that names the problem and the fix
(a jaxrobust error, or a filesystem error such as a full disk or a read-only workdir); 2 a usage
error (bad arguments); 130 interrupted (Ctrl-C: rerun the same command to resume). Only an
unexpected exception, a bug, prints its traceback, with a line saying how to report it.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from collections.abc import Sequence

from jaxrobust.errors import JaxrobustError

#: Exit statuses of :func:`main`.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

REPORT_HINT = (
    "This is a bug in jaxrobust, not a problem with your input: please report it with the "
    "command you ran and the traceback above."
)

OVERRIDE_HELP = (
    "Override config fields with --config.path.to.key=value (repeatable), e.g. "
    "--config.models.vae.training.num_epochs=1."
)


class UsageError(Exception):
    """A command line that cannot be parsed (reported with the usage, exit status 2)."""


def _split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate ``--config.a.b=v`` / ``--config.a.b v`` overrides from the other arguments.

    Raises :class:`UsageError` for an override without a key or without a value.

    Examples:
      >>> _split_overrides(["train", "--config.seed=3", "--config.name", "x"])
      (['train'], ['seed=3', 'name=x'])
    """
    rest, overrides = [], []
    it = iter(argv)
    for arg in it:
        if arg.startswith("--config."):
            body = arg[len("--config.") :]
            if "=" not in body:
                value = next(it, None)
                if value is None or value.startswith("--"):
                    raise UsageError(
                        f"{arg} needs a value: write {arg}=VALUE (e.g. "
                        "--config.models.vae.training.num_epochs=1)."
                    )
                body = f"{body}={value}"
            key = body.split("=", 1)[0]
            if not key or any(not part for part in key.split(".")):
                raise UsageError(
                    f"{arg!r} is not an override: write --config.path.to.key=VALUE (e.g. "
                    "--config.models.vae.training.num_epochs=1)."
                )
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
    group = train.add_argument_group(
        "several processes (jax.distributed)",
        "Run the same command once per process. Under SLURM (srun), Open MPI (mpirun) or on a "
        "TPU pod slice the processes find each other from the environment; elsewhere give all "
        "three flags. Process 0 writes the logs and metrics; all write the checkpoint.",
    )
    group.add_argument("--coordinator", help="host:port of process 0, e.g. 10.0.0.1:12345")
    group.add_argument("--num-processes", type=int, help="how many processes take part")
    group.add_argument("--process-id", type=int, help="this process's index, 0..N-1")
    group.add_argument(
        "--heartbeat-timeout",
        type=int,
        default=None,
        metavar="SECONDS",
        help="declare a silent process dead after this long (default 60)",
    )

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
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Examples:
      >>> main(["data", "fetch", "not_a_dataset"])  # the message goes to stderr
      1
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        rest, overrides = _split_overrides(argv)
    except UsageError as err:
        parser.error(str(err))  # prints the usage, exits with status 2
    args = parser.parse_args(rest)
    command = " ".join(filter(None, [args.command, getattr(args, "data_command", None)]))
    try:
        if args.command == "train":
            return _train(args, overrides)
        if args.command == "evaluate":
            return _evaluate(args, overrides)
        return _data(args)
    except KeyboardInterrupt:
        _error(command, "interrupted; rerun the same command to resume.")
        return EXIT_INTERRUPTED
    except JaxrobustError as err:
        _error(command, _error_message(err))
        return EXIT_ERROR
    except OSError as err:
        _error(command, os_error_message(err))
        return EXIT_ERROR
    except (KeyError, ValueError, FloatingPointError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        _error(command, message)
        return EXIT_ERROR
    except Exception:  # noqa: BLE001 - a bug: show it, with how to report it
        traceback.print_exc()
        _error(command, f"unexpected error. {REPORT_HINT}")
        return EXIT_ERROR


def _error(command: str, message) -> None:
    try:
        sys.stdout.flush()
    except OSError:  # e.g. stdout is a closed pipe
        pass
    print(f"jaxrobust {command}: error: {message}", file=sys.stderr)


def _error_message(err: JaxrobustError) -> str:
    """The message of a jaxrobust error; an OSError-style one (errno, strerror, path) is
    explained like :func:`os_error_message`."""
    if isinstance(err, OSError) and err.errno is not None and err.strerror is not None:
        return os_error_message(err)
    text = str(err)
    return text if text else type(err).__name__


def _path_of(err: OSError) -> str | None:
    names = [n for n in (err.filename, err.filename2) if n is not None]
    return " -> ".join(os.fsdecode(n) for n in names) if names else None


def os_error_message(err: OSError) -> str:
    """A filesystem error as one message: what failed, on which path, and what to do.

    Examples:
      >>> message = os_error_message(OSError(errno.ENOSPC, "No space left on device", "runs/x/a"))
      >>> message.split(". ")[0]
      'No space left on device: runs/x/a'
      >>> "rerun the same command" in message
      True
    """
    path = _path_of(err)
    what = err.strerror or str(err) or type(err).__name__
    head = f"{what}: {path}" if path else what
    folder = os.path.dirname(path) if path else None
    fixes = {
        errno.ENOSPC: "Free space on that disk (or pass a --workdir on another one) and rerun the "
        "same command: training resumes from its last checkpoint.",
        errno.EDQUOT: "Your disk quota is exhausted: free space (or pass a --workdir elsewhere) "
        "and rerun the same command: training resumes from its last checkpoint.",
        errno.EACCES: f"Make {folder or 'the workdir'} writable (chmod u+w) or pass another "
        "--workdir.",
        errno.EPERM: f"Make {folder or 'the workdir'} writable (chmod u+w) or pass another "
        "--workdir.",
        errno.EROFS: "That file system is read-only: pass a --workdir on a writable one (copy "
        "the workdir there to evaluate it).",
        errno.ENOTDIR: "A folder on that path is a file: remove or rename the file, or pass "
        "another --workdir.",
        errno.EEXIST: "A file is in the way: pass a --workdir that is a directory (or does not "
        "exist yet), or move the file away.",
        errno.EISDIR: "That path is a directory where a file is expected: check the path.",
        errno.ENOENT: "Check the path: it (or a folder above it) does not exist.",
        errno.EMFILE: "Too many open files: raise the limit (ulimit -n) and rerun.",
        errno.ENAMETOOLONG: "Use a shorter --workdir path.",
        errno.EIO: "The disk reported an I/O error: check the device, or use another --workdir.",
    }
    fix = fixes.get(err.errno, "Check that the path is on a mounted, writable file system.")
    return f"{head}. {fix}"


def _train(args, overrides) -> int:
    from jaxrobust import distributed

    # Before anything touches a device: join the other processes, if any.
    distributed.initialize(
        args.coordinator,
        args.num_processes,
        args.process_id,
        heartbeat_timeout_s=args.heartbeat_timeout or distributed.HEARTBEAT_TIMEOUT_S,
    )

    from jaxrobust.config import load_config
    from jaxrobust.train import train_and_evaluate

    config = load_config(args.config, overrides)
    distributed.start_watchdog()  # a peer that dies makes this process stop with a message
    summary = train_and_evaluate(config, args.workdir)
    distributed.sync("jaxrobust train done")
    distributed.finish_watchdog()
    if not distributed.is_main_process():
        return 0
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
    rows = data.cached_entries(verify=True)  # hash and size checked, not read from sidecars
    print(f"Data directory: {data.data_dir()}")
    print(f"Known datasets: {', '.join(data.known_datasets())}")
    if not rows:
        print("Nothing cached yet. Fetch with: jaxrobust data fetch NAME...")
        return 0
    print(f"{'dataset':<16}{'split':<8}{'examples':>10}{'size (MB)':>12}  {'source':<10}status")
    for row in rows:
        examples = row.get("n_examples")
        print(
            f"{row['dataset']:<16}{row['split']:<8}{'?' if examples is None else examples:>10}"
            f"{row['size_bytes'] / 1e6:>12.1f}  {row.get('source', '?'):<10}"
            f"{row.get('status', '?')}"
        )
    damaged = [row for row in rows if str(row.get("status", "")).startswith("damaged")]
    if damaged:
        names = " ".join(sorted({row["dataset"] for row in damaged}))
        print(f"{len(damaged)} damaged file(s): re-fetch with `jaxrobust data fetch {names}`.")
        return 1
    return 0


def _fetch_line(row: dict) -> str:
    return (
        f"{row['dataset']}/{row['split']}: {row['action']} ({row['n_examples']} examples, "
        f"{row['size_bytes'] / 1e6:.1f} MB, source {row['source']}) -> {row['path']}"
    )


def console_main() -> None:
    """The ``jaxrobust`` program: :func:`main`, then exit with its status.

    After Ctrl-C, and after an error in a multi-process run, the process exits at once
    (``os._exit``) instead of through the interpreter's shutdown: an Orbax save interrupted mid-
    write leaves a background thread waiting on an executor that the shutdown has closed, and
    the process would hang. Nothing on disk needs that thread: a checkpoint step is committed by
    a rename, and the next run sets an unfinished one aside (``tools/chaos.py`` kills with
    SIGINT too).
    """
    status = main()
    if status == EXIT_INTERRUPTED or (status != EXIT_OK and _in_multiprocess_run()):
        # After an error in a multi-process run, JAX's shutdown would wait at a barrier for the
        # other processes (one of which may be gone) and then abort; the message is printed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def _in_multiprocess_run() -> bool:
    module = sys.modules.get("jaxrobust.distributed")
    return module is not None and module.is_initialized()


if __name__ == "__main__":
    console_main()

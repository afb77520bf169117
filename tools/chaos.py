"""Chaos harness: kill `jaxrobust train` and `jaxrobust evaluate` at random moments, resume, and
compare every final artifact bitwise with an uninterrupted run.

  python tools/chaos.py --trials 20 --seed 0 [--workdir runs/chaos] [--out RELIABILITY-chaos.json]
                        [--targets point,runs,...] [--write-report [RELIABILITY.md]]

Targets (tools/chaos_configs/<target>.py, tiny nets on the synthetic stand-ins of
tests/synthetic.py): ``point`` (a VAE and a CNN, two models in one workdir), ``runs`` (R = 3
stacked runs) and the posterior methods ``ensemble``, ``swag``, ``sghmc``, ``bbb``, ``hmc``.

Per target, one uninterrupted reference: ``jaxrobust train``, then a *decoy* evaluation (the same
workdir evaluated with other settings, so its numbers differ) and the reference evaluation.
Training runs twice; the two must be bitwise equal (or the target is not deterministic and the
harness stops), and the second, which finds the compilation cache warm like the trials do, sets
the time scale of the kills and the number of changes they aim at. A target's config file may
say what its decoy changes (``DECOY_OVERRIDES``, e.g. the last checkpoint instead of the best).
Per trial (targets round-robin; every choice drawn from ``--seed`` and the trial number):

1. ``jaxrobust train`` as a subprocess, sent SIGKILL (in some trials SIGINT or SIGTERM) at a
   random moment: uniform in time over the reference's duration (``time``), at the k-th change
   of ``checkpoints/`` or ``posterior/`` seen by a fast poll loop (``checkpoint``: Orbax's
   temporary step directories, renames, deletions, posterior writes), or at the k-th change of
   ``metrics.jsonl`` (``log``: right after a row is appended). Rerun the same command to resume,
   1-3 kills (``--train-kills``), then once to the end; every rerun must succeed.
2. Compare with the reference: every array of every kept checkpoint step and of the posterior
   samples (restored with Orbax, compared by dtype, shape and bytes), every JSON item of each
   step, ``metrics.jsonl`` (the same set of (model, epoch) rows, one each, equal numbers once the
   timing fields and resumption markers are removed) and ``config.json``.
3. Copy the decoy's result files into the workdir, then kill ``jaxrobust evaluate`` several
   times (``--eval-kills``): uniform in time, at a change of ``plots/``, or at a change of the
   committed results (``results.json``, ``results.md``, ``evaluations/``). After every kill the
   results must be whole and of one generation: both files parse, ``results.md`` is what
   ``results_markdown`` renders from ``results.json``, the numbers are the decoy's or the
   reference's, and every PNG is complete and byte-equal to one of the two runs' plots. Then
   evaluate to the end and compare ``results.json`` (timing and device fields removed),
   ``results.md`` and the plots with the reference, bytewise.

Results are read through ``workdir/results.json`` and ``workdir/results.md`` whether they are
files or symlinks (into ``evaluations/current/``, say). All subprocesses share a persistent JAX
compilation cache under ``--workdir`` (``--no-compile-cache`` to compile in every process), which
only saves start-up time: the reference compiles, the trials load the same executables.

Prints one line per kill and per trial and a markdown table; writes the per-trial details to
``--out``; ``--write-report`` rewrites the chaos section of RELIABILITY.md. Exit status 1 if any
artifact differs or any resume fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIGS = HERE / "chaos_configs"
TARGETS = ("point", "runs", "ensemble", "swag", "sghmc", "bbb", "hmc")
TRAIN_MODES = ("log", "checkpoint", "time")
EVAL_MODES = ("commit", "time", "plots")
SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM}
#: Keys that differ between two correct runs: timing, device, host, resumption and generation
#: markers. Removed (at any depth) before JSON artifacts are compared.
VOLATILE = re.compile(
    r"seconds|time|date|host|pid|device|parallelism|images_per_second|compile|resum"
    r"|dropped|generation|created|started|lock",
    re.IGNORECASE,
)
#: Names that are temporaries or bookkeeping, never compared (listed as leftovers if found).
TEMPORARY = re.compile(r"tmp|\.partial$|^\.|commit_success\.txt$")
DECOY_TEST_LIMIT = 64
PNG_HEAD = b"\x89PNG\r\n\x1a\n"
PNG_TAIL = b"\x00\x00\x00\x00IEND\xaeB`\x82"
REPORT_BEGIN = "<!-- chaos:begin (written by tools/chaos.py --write-report) -->"
REPORT_END = "<!-- chaos:end -->"


# --- artifacts -------------------------------------------------------------------------------


def strip_volatile(value: Any) -> Any:
    """``value`` without the keys matched by :data:`VOLATILE`, at any depth.

    Examples:
        >>> strip_volatile({"epoch": 1, "epoch_seconds": 0.2, "m": {"device": "cpu", "a": [1]}})
        {'epoch': 1, 'm': {'a': [1]}}
    """
    if isinstance(value, dict):
        return {k: strip_volatile(v) for k, v in value.items() if not VOLATILE.search(str(k))}
    if isinstance(value, list):
        return [strip_volatile(v) for v in value]
    return value


def _normalise_text(text: str, workdir: Path) -> str:
    """Workdir paths and generation numbers replaced, so two workdirs' files compare equal."""
    for form in {str(workdir.absolute()), str(workdir.resolve()), str(workdir)}:
        text = text.replace(form, "<workdir>")
    return re.sub(r"evaluations/\d+", "evaluations/<n>", text)


def _is_orbax_tree(directory: Path) -> bool:
    return (directory / "_METADATA").exists() or (directory / "manifest.ocdbt").exists()


def _restore_arrays(directory: Path) -> dict[str, Any]:
    """``{leaf path: numpy array}`` of the Orbax array tree in ``directory`` (no target needed)."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as checkpointer:
        tree = checkpointer.restore(directory.absolute())
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        out[jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def tree_artifacts(root: Path, workdir: Path, prefix: str = "") -> tuple[dict, list[str]]:
    """Every artifact under ``root``: ``{relative path: value}`` and the temporaries skipped.

    An Orbax array tree (a directory with ``_METADATA``) becomes ``{"arrays": {leaf: array}}``;
    a JSON file its content without volatile keys; any other file its (normalised) bytes.
    """
    out: dict[str, Any] = {}
    skipped: list[str] = []
    if not root.exists():
        return out, skipped
    for entry in sorted(root.iterdir()):
        name = f"{prefix}{entry.name}"
        if TEMPORARY.search(entry.name):
            if entry.name != "commit_success.txt":
                skipped.append(name)
            continue
        if entry.is_dir():
            if _is_orbax_tree(entry):
                try:
                    out[name] = {"arrays": _restore_arrays(entry)}
                except Exception as err:  # noqa: BLE001 - a damaged tree is a finding
                    out[name] = {"error": f"{type(err).__name__}: {err}"[:300]}
            else:
                sub, sub_skipped = tree_artifacts(entry, workdir, f"{name}/")
                out.update(sub)
                skipped += sub_skipped
            continue
        raw = entry.read_bytes()
        try:
            out[name] = {"json": strip_volatile(json.loads(raw))}
        except (UnicodeDecodeError, json.JSONDecodeError):
            out[name] = {"bytes": raw}
    return out, skipped


def metrics_rows(path: Path) -> tuple[dict, list[str]]:
    """``{(model, epoch): [rows without volatile keys]}`` of ``metrics.jsonl`` and its problems
    (unparseable lines; rows without model/epoch, e.g. markers, are left out)."""
    rows: dict[tuple, list] = {}
    problems = []
    if not path.exists():
        return rows, [f"{path.name} missing"]
    text = path.read_text()
    if text and not text.endswith("\n"):
        problems.append(f"{path.name} does not end with a newline")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"{path.name} line {number} is not JSON: {line[:80]!r}")
            continue
        if not isinstance(row, dict) or "model" not in row or "epoch" not in row:
            continue
        rows.setdefault((row["model"], row["epoch"]), []).append(strip_volatile(row))
    return rows, problems


def training_artifacts(workdir: Path) -> dict:
    """The artifacts of a trained workdir that must equal the reference's."""
    out: dict[str, Any] = {}
    skipped: list[str] = []
    config = workdir / "config.json"
    out["config.json"] = (
        {"json": strip_volatile(_read_json(config))} if config.exists() else {"missing": True}
    )
    for sub in ("checkpoints", "posterior"):
        found, left = tree_artifacts(workdir / sub, workdir, f"{sub}/")
        out.update(found)
        skipped += left
    rows, problems = metrics_rows(workdir / "metrics.jsonl")
    for (model, epoch), found in rows.items():
        out[f"metrics.jsonl[{model}, epoch {epoch}]"] = {"rows": found}
    return {"artifacts": out, "temporaries": skipped, "problems": problems}


def compare_artifacts(reference: dict, got: dict) -> tuple[int, int, list[str]]:
    """``(artifacts compared, arrays compared, differences)``; arrays compared bitwise."""
    differences = list(got.get("problems", []))
    ref, new = reference["artifacts"], got["artifacts"]
    for name in sorted(set(ref) - set(new)):
        differences.append(f"{name}: missing (the reference has it)")
    for name in sorted(set(new) - set(ref)):
        differences.append(f"{name}: not in the reference")
    arrays = 0
    for name in sorted(set(ref) & set(new)):
        a, b = ref[name], new[name]
        if "arrays" in a and "arrays" in b:
            la, lb = a["arrays"], b["arrays"]
            if set(la) != set(lb):
                differences.append(
                    f"{name}: leaves differ: missing {sorted(set(la) - set(lb))[:5]}, "
                    f"extra {sorted(set(lb) - set(la))[:5]}"
                )
            for leaf in sorted(set(la) & set(lb)):
                x, y = la[leaf], lb[leaf]
                arrays += 1
                if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                    differences.append(f"{name}{leaf}: array differs ({x.dtype}{list(x.shape)})")
        elif "rows" in a and "rows" in b:
            if len(b["rows"]) != 1:
                differences.append(f"{name}: {len(b['rows'])} rows (one expected)")
            for row in b["rows"]:
                keys = sorted(k for k in set(row) | set(a["rows"][0]) if row.get(k, "?") !=
                              a["rows"][0].get(k, "?"))  # fmt: skip
                if keys:
                    differences.append(f"{name}: row differs in {keys}: {_short(row)}")
        elif a != b:
            differences.append(f"{name}: differs: {_short(b)} vs reference {_short(a)}")
    return len(set(ref) | set(new)), arrays, differences


def _short(value: Any) -> str:
    return (repr(value) if not isinstance(value, dict) else json.dumps(value, default=str))[:200]


def results_paths(workdir: Path) -> tuple[Path, Path, Path]:
    """``results.json``, ``results.md`` and the plots folder, through the workdir's names."""
    json_path, md_path = workdir / "results.json", workdir / "results.md"
    plots = workdir / "plots"
    if not plots.exists() and json_path.exists():
        plots = Path(os.path.realpath(json_path)).parent / "plots"
    return json_path, md_path, plots


def evaluation_artifacts(workdir: Path) -> dict:
    """The normalised results and plot bytes of ``workdir`` (what the reference is compared to)."""
    json_path, md_path, plots = results_paths(workdir)
    out: dict[str, Any] = {}
    if json_path.exists():
        results = json.loads(_normalise_text(json_path.read_text(), workdir))
        out["results.json"] = {"json": strip_volatile(results)}
    if md_path.exists():
        out["results.md"] = {"bytes": _normalise_text(md_path.read_text(), workdir).encode()}
    if plots.is_dir():
        for png in sorted(plots.glob("*.png")):
            out[f"plots/{png.name}"] = {"bytes": png.read_bytes()}
    return {"artifacts": out, "problems": []}


def check_results(workdir: Path, generations: dict[str, dict]) -> tuple[str, list[str]]:
    """After a kill: ``(generation, problems)``. The result files must be absent, or whole, of
    one generation (one of ``generations``: name -> :func:`evaluation_artifacts`) and agree."""
    from jaxrobust.evaluate import results_markdown

    json_path, md_path, plots = results_paths(workdir)
    problems = []
    for path in (json_path, md_path):
        if os.path.lexists(path) and not path.exists():
            problems.append(f"{path.name} is a dangling link to {os.readlink(path)}")
    if json_path.exists() != md_path.exists():
        have = json_path.name if json_path.exists() else md_path.name
        problems.append(f"only {have} exists")
    generation = "none"
    if json_path.exists() and md_path.exists():
        try:
            results = json.loads(json_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return "broken", [*problems, f"results.json does not parse: {err}"]
        try:
            markdown = md_path.read_text()
        except UnicodeDecodeError as err:
            return "broken", [*problems, f"results.md is not text: {err}"]
        if results_markdown(results).rstrip() != markdown.rstrip():
            problems.append("results.md is not the rendering of results.json (mixed generations)")
        normalised = strip_volatile(json.loads(_normalise_text(json.dumps(results), workdir)))
        matches = [n for n, g in generations.items() if g["artifacts"]["results.json"]["json"] ==
                   normalised]  # fmt: skip
        generation = matches[0] if matches else "neither"
        if not matches:
            problems.append("results.json has the numbers of neither the decoy nor the reference")
    if plots.is_dir():
        for png in sorted(plots.glob("*.png")):
            data = png.read_bytes()
            if not (data.startswith(PNG_HEAD) and data.endswith(PNG_TAIL)):
                problems.append(f"plots/{png.name} is not a whole PNG ({len(data)} bytes)")
                continue
            key = f"plots/{png.name}"
            if not any(
                g["artifacts"].get(key, {}).get("bytes") == data for g in generations.values()
            ):
                problems.append(f"{key} is neither the decoy's nor the reference's")
    return generation, problems


def _result_entries(workdir: Path) -> list[str]:
    """Top-level names written by an evaluation."""
    return sorted(
        p.name
        for p in workdir.iterdir()
        if p.name.startswith("results") or p.name in ("plots", "evaluations")
    )


def _copy_entries(source: Path, names: list[str], dest: Path) -> None:
    """Copy ``names`` of ``source`` into ``dest``, links kept (absolute ones made relative)."""
    for name in names:
        src, dst = source / name, dest / name
        if os.path.lexists(dst):
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            else:
                dst.unlink()
        if src.is_symlink():
            target = os.readlink(src)
            if os.path.isabs(target) and target.startswith(str(source.resolve())):
                target = os.path.relpath(target, source.resolve())
            os.symlink(target, dst)
        elif src.is_dir():
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst)


# --- processes and kills ---------------------------------------------------------------------


def _names(root: Path, depth: int) -> set[str]:
    out, stack = set(), [(root, depth)]
    while stack:
        directory, left = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            out.add(entry.path)
            if left > 1 and entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), left - 1))
    return out


def _lstat(path: Path) -> tuple | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def watcher(mode: str, workdir: Path):
    """A cheap function returning the state that ``mode`` aims at (compared between polls)."""
    if mode == "checkpoint":
        return lambda: (_names(workdir / "checkpoints", 3), _names(workdir / "posterior", 2))
    if mode == "log":
        return lambda: (_lstat(workdir / "metrics.jsonl"),)
    if mode == "commit":
        return lambda: (
            _lstat(workdir / "results.json"),
            _lstat(workdir / "results.md"),
            _lstat(workdir / "evaluations" / "current"),
            _names(workdir / "evaluations", 2),
        )
    if mode == "plots":
        return lambda: (frozenset((p, _lstat(Path(p))) for p in _names(workdir / "plots", 1)),)
    raise ValueError(f"unknown kill mode {mode!r}")


def run_cli(
    cli_args: list[str],
    env: dict,
    log: Path,
    *,
    plan: dict | None = None,
    observe: tuple[str, ...] = (),
    workdir: Path | None = None,
    timeout: float = 600.0,
) -> dict:
    """Run ``python -m jaxrobust.cli *cli_args``; send ``plan["signal"]`` when the plan fires.

    ``plan``: ``{"mode": "time", "at": seconds}`` or ``{"mode": <watched mode>, "skip": k}``
    (fire at the (k+1)-th change). ``observe``: modes whose changes are only counted.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"args": cli_args}
    watches = {}
    if plan and plan["mode"] != "time":
        watches[plan["mode"]] = watcher(plan["mode"], workdir)
    for mode in observe:
        watches[mode] = watcher(mode, workdir)
    last = {mode: fn() for mode, fn in watches.items()}
    events = dict.fromkeys(watches, 0)
    busy = bool(plan) and plan["mode"] == "commit"
    with open(log, "ab") as out:
        out.write(f"\n$ jaxrobust {' '.join(cli_args)}  (plan {plan})\n".encode())
        out.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "jaxrobust.cli", *cli_args],
            cwd=str(workdir.parent if workdir else REPO),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        fired = None
        while proc.poll() is None:
            now = time.perf_counter() - start
            if now > timeout:
                proc.kill()
                record["timed_out"] = True
                break
            if fired is None and plan is not None:
                if plan["mode"] == "time" and now >= plan["at"]:
                    fired = {"at_s": round(now, 3), "event": f"{now:.2f} s after start"}
                for mode, fn in watches.items():
                    state = fn()
                    if state != last[mode]:
                        events[mode] += 1
                        if fired is None and mode == plan["mode"] and events[mode] > plan["skip"]:
                            fired = {
                                "at_s": round(now, 3),
                                "event": _describe(mode, last[mode], state),
                            }
                        last[mode] = state
                if fired is not None:
                    proc.send_signal(SIGNALS[plan["signal"]])
                    record["fired"] = fired
                    grace = 5.0 if plan["signal"] == "KILL" else 60.0
                    try:
                        proc.wait(timeout=grace)
                    except subprocess.TimeoutExpired:
                        record["ignored_signal"] = (
                            f"still running {grace:.0f} s after SIG{plan['signal']}"
                        )
                        proc.kill()
                    break
            else:
                for mode, fn in watches.items():
                    state = fn()
                    if state != last[mode]:
                        events[mode] += 1
                        last[mode] = state
            if not busy:
                time.sleep(0.0003 if watches else 0.005)
        record["returncode"] = proc.wait()
        record["seconds"] = round(time.perf_counter() - start, 3)
    record["events"] = events
    return record


#: What each component of a watcher's state is (for the record of what a kill hit).
LABELS = {
    "checkpoint": ("checkpoints/", "posterior/"),
    "log": ("metrics.jsonl",),
    "commit": ("results.json", "results.md", "evaluations/current", "evaluations/"),
    "plots": ("plots/",),
}


def _describe(mode: str, before: tuple, after: tuple) -> str:
    """What changed first between two watcher states, for the record.

    Examples:
        >>> _describe("log", ((7, 100, 1),), ((7, 180, 2),))
        'metrics.jsonl grew 100 -> 180 bytes'
        >>> _describe("checkpoint", ({"w/c/m/1"}, set()), ({"w/c/m/1", "w/c/m/2.tmp"}, set()))
        'new c/m/2.tmp'
    """
    for label, a, b in zip(LABELS[mode], before, after, strict=False):
        if a == b:
            continue
        if isinstance(a, (set, frozenset)) and isinstance(b, (set, frozenset)):
            for sign, items in (("new", b - a), ("gone", a - b)):
                if items:
                    item = sorted(items, key=str)[0]
                    name = item[0] if isinstance(item, tuple) else item
                    return f"{sign} {'/'.join(Path(name).parts[-3:])}"
        if a is None:
            return f"{label} created"
        if b is None:
            return f"{label} removed"
        if a[0] != b[0]:
            return f"{label} replaced"
        return f"{label} grew {a[1]} -> {b[1]} bytes" if b[1] > a[1] else f"{label} rewritten"
    return "changed"


# --- the harness -----------------------------------------------------------------------------


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    low_i, high_i = int(low), int(high or low)
    if not 0 <= low_i <= high_i:
        raise argparse.ArgumentTypeError(f"expected a range like 1-3, got {text!r}")
    return low_i, high_i


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("runs/chaos"))
    parser.add_argument("--out", type=Path, default=Path("RELIABILITY-chaos.json"))
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated subset")
    parser.add_argument("--train-kills", type=_range, default=(1, 3), help="kills per trial")
    parser.add_argument("--eval-kills", type=_range, default=(2, 3), help="evaluate kills")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    parser.add_argument("--data", type=Path, default=None, help="JAXROBUST_DATA to use")
    parser.add_argument("--no-compile-cache", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep passing trials' workdirs")
    parser.add_argument(
        "--report-from",
        type=Path,
        default=None,
        help="rewrite the RELIABILITY.md section from this --out file of an earlier run; no run",
    )
    parser.add_argument(
        "--write-report",
        nargs="?",
        const=REPO / "RELIABILITY.md",
        type=Path,
        default=None,
        help="rewrite the chaos section of this file (default RELIABILITY.md)",
    )
    return parser


def _environment(args, root: Path) -> dict:
    env = dict(os.environ)
    data = args.data
    if data is None:
        data = root / "data"
        if not (data / ".written").exists():
            sys.path.insert(0, str(REPO / "tests"))
            from synthetic import write_synthetic_cache

            write_synthetic_cache(data)
            (data / ".written").write_text("tests/synthetic.py\n")
    env["JAXROBUST_DATA"] = str(Path(data).absolute())
    if not args.no_compile_cache:
        env["JAX_COMPILATION_CACHE_DIR"] = str((root / "jax_cache").absolute())
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(REPO)) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _say(text: str) -> None:
    print(text, flush=True)


def decoy_overrides(target: str) -> list[str]:
    """What the decoy evaluation of ``target`` changes: its config file's ``DECOY_OVERRIDES``,
    else ``evaluate.test_limit`` (other numbers, but new shapes to compile)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"chaos_{target}", CONFIGS / f"{target}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(getattr(module, "DECOY_OVERRIDES", [f"evaluate.test_limit={DECOY_TEST_LIMIT}"]))


def reference(target: str, root: Path, env: dict, timeout: float) -> dict:
    """Train, decoy-evaluate and evaluate ``target`` uninterrupted; its artifacts and timings.

    Training runs twice: the second run (with the compilation cache warm, as in the trials)
    gives the time scale and the change counts the kills aim at, and must equal the first
    bitwise, or there is nothing to compare the trials with. The decoy evaluation runs before
    the reference one (so, with same-shaped decoys, the reference evaluation's cache is warm).
    """
    workdir, again = root / target / "reference", root / target / "reference-again"
    for directory in (workdir, again):
        shutil.rmtree(directory, ignore_errors=True)
    workdir.parent.mkdir(parents=True, exist_ok=True)
    log = root / target / "reference.log"
    log.unlink(missing_ok=True)
    config = str(CONFIGS / f"{target}.py")
    eval_args = ["evaluate", "--workdir", str(workdir.absolute())]

    def run(args: list[str], where: Path, what: str, observe: tuple = ()) -> dict:
        record = run_cli(args, env, log, observe=observe, workdir=where, timeout=timeout)
        if record["returncode"] != 0:
            raise SystemExit(f"{what} of {target} failed (rc {record['returncode']}); see {log}")
        return record

    def same(reference_artifacts: dict, artifacts: dict, what: str) -> None:
        differences = compare_artifacts(reference_artifacts, artifacts)[2]
        if differences:
            raise SystemExit(
                f"{target}: two uninterrupted {what} runs differ, so interrupted ones cannot be "
                f"compared bitwise (is the run deterministic?): {differences[:5]}"
            )

    train_args = ["train", "--config", config, "--workdir", str(workdir.absolute())]
    run(train_args, workdir, "reference training")
    train_args_again = ["train", "--config", config, "--workdir", str(again.absolute())]
    train = run(train_args_again, again, "reference training", ("checkpoint", "log"))
    trained = training_artifacts(workdir)
    same(trained, training_artifacts(again), "training")
    shutil.rmtree(again, ignore_errors=True)

    before = set(_result_entries(workdir))
    decoy_args = [*eval_args, *(f"--config.{o}" for o in decoy_overrides(target))]
    decoy_run = run(decoy_args, workdir, "decoy evaluation")
    names = sorted(set(_result_entries(workdir)) - before)
    decoy_dir = root / target / "decoy"
    shutil.rmtree(decoy_dir, ignore_errors=True)
    decoy_dir.mkdir()
    _copy_entries(workdir, names, decoy_dir)
    decoy = evaluation_artifacts(workdir)
    evaluation = run(eval_args, workdir, "reference evaluation", ("commit", "plots"))
    evaluated = evaluation_artifacts(workdir)
    if decoy["artifacts"].get("results.json") == evaluated["artifacts"].get("results.json"):
        _say(f"  warning: {target}: the decoy's numbers equal the reference's")
    rows = sum(1 for k in trained["artifacts"] if k.startswith("metrics.jsonl["))
    return {
        "target": target,
        "train": train,
        "decoy": decoy_run,
        "evaluate": evaluation,
        "rows": rows,
        "decoy_entries": names,
        "decoy_dir": decoy_dir,
        "trained": trained,
        "decoy_artifacts": decoy,
        "evaluated": evaluated,
        "train_args": train_args,
        "eval_args": eval_args,
    }


def _progress(workdir: Path) -> int:
    rows, _ = metrics_rows(workdir / "metrics.jsonl")
    return len(rows)


def _plan(rng: random.Random, modes: tuple, mode: str | None, signal_name: str, ref: dict,
          phase: str, done: float) -> dict:  # fmt: skip
    mode = mode or rng.choice(modes)
    run = ref[phase]
    if mode == "log" and round(ref["rows"] * (1.0 - done)) < 1:
        mode = "time"  # every row is written: the next run only finishes (posterior, close)
    if mode == "time":
        return {"mode": mode, "signal": signal_name, "at": round(rng.uniform(0, run["seconds"]), 3)}
    if mode == "log":  # every row still to come changes metrics.jsonl at least once
        expected = round(ref["rows"] * (1.0 - done))
    else:  # a margin for changes the poll loop may merge or miss
        expected = round(0.8 * run["events"].get(mode, 1) * (1.0 - done))
    return {"mode": mode, "signal": signal_name, "skip": rng.randrange(max(1, expected))}


def _signal_name(rng: random.Random, trial: int, first: bool) -> str:
    if first:
        return ("KILL", "INT", "TERM")[trial % 3]
    return rng.choices(("KILL", "INT", "TERM"), weights=(6, 2, 2))[0]


def run_trial(trial: int, target: str, ref: dict, args, root: Path, env: dict) -> dict:
    """One trial: killed and resumed training, then killed and rerun evaluation; compared."""
    rng = random.Random(f"{args.seed}:{trial}")
    tic = time.perf_counter()
    workdir = root / target / f"trial{trial:03d}"
    shutil.rmtree(workdir, ignore_errors=True)
    log = root / target / f"trial{trial:03d}.log"
    log.unlink(missing_ok=True)
    train_args = [a if a != ref["train_args"][-1] else str(workdir.absolute())
                  for a in ref["train_args"]]  # fmt: skip
    eval_args = ["evaluate", "--workdir", str(workdir.absolute())]
    failures: list[str] = []
    kills: list[dict] = []
    resumes = 0

    def check_run(record: dict, what: str) -> None:
        if record.get("timed_out"):
            failures.append(f"{what} ran past {args.timeout:.0f} s")
        if record.get("ignored_signal"):
            failures.append(f"{what}: {record['ignored_signal']}")

    # Training: 1-3 kills (each a fresh process on the same workdir), then to the end.
    for k in range(rng.randint(*args.train_kills)):
        done = _progress(workdir) / max(1, ref["rows"])
        first_mode = TRAIN_MODES[trial % len(TRAIN_MODES)] if k == 0 else None
        plan = _plan(rng, TRAIN_MODES, first_mode, _signal_name(rng, trial, k == 0), ref, "train",
                     done)  # fmt: skip
        record = run_cli(train_args, env, log, plan=plan, workdir=workdir, timeout=args.timeout)
        record.update(phase="train", plan=plan)
        resumes += "fired" in record  # the next process resumes what this one left
        check_run(record, f"train kill {k + 1}")
        if "fired" not in record and record["returncode"] != 0:
            failures.append(f"train run {k + 1} failed before its kill (rc {record['returncode']})")
        kills.append(record)
        _say(f"  trial {trial} {target}: train {_kill_text(record)}")
    final = run_cli(train_args, env, log, workdir=workdir, timeout=args.timeout)
    check_run(final, "final train")
    if final["returncode"] != 0:
        failures.append(f"resumed training failed (rc {final['returncode']}; see {log})")
    compared, arrays, differences = compare_artifacts(ref["trained"], training_artifacts(workdir))
    temporaries = training_artifacts(workdir)["temporaries"] if differences else []

    # Evaluation: the decoy's results in place, then killed evaluations, then one to the end.
    _copy_entries(ref["decoy_dir"], ref["decoy_entries"], workdir)
    generations = {"decoy": ref["decoy_artifacts"], "reference": ref["evaluated"]}
    seen = []
    for k in range(rng.randint(*args.eval_kills)):
        first_mode = EVAL_MODES[trial % len(EVAL_MODES)] if k == 0 else None
        plan = _plan(rng, EVAL_MODES, first_mode, _signal_name(rng, trial + 1, k == 0), ref,
                     "evaluate", 0.0)  # fmt: skip
        record = run_cli(eval_args, env, log, plan=plan, workdir=workdir, timeout=args.timeout)
        record.update(phase="evaluate", plan=plan)
        check_run(record, f"evaluate kill {k + 1}")
        if "fired" not in record and record["returncode"] != 0:
            failures.append(f"evaluate run {k + 1} failed (rc {record['returncode']})")
        generation, problems = check_results(workdir, generations)
        record["results_after"] = {"generation": generation, "problems": problems}
        failures += [f"after evaluate kill {k + 1}: {p}" for p in problems]
        seen.append(generation)
        kills.append(record)
        _say(f"  trial {trial} {target}: evaluate {_kill_text(record)} -> results {generation}"
             + (f" PROBLEMS {problems}" if problems else ""))  # fmt: skip
    final_eval = run_cli(eval_args, env, log, workdir=workdir, timeout=args.timeout)
    check_run(final_eval, "final evaluate")
    if final_eval["returncode"] != 0:
        failures.append(f"evaluation after the kills failed (rc {final_eval['returncode']})")
    e_compared, _, e_differences = compare_artifacts(
        ref["evaluated"], evaluation_artifacts(workdir)
    )
    differences += e_differences
    ok = not failures and not differences
    seconds = round(time.perf_counter() - tic, 1)
    fired = [r for r in kills if "fired" in r]
    result = {
        "trial": trial,
        "target": target,
        "workdir": str(workdir),
        "kills": kills,
        "train_kills": sum(1 for r in fired if r["phase"] == "train"),
        "evaluate_kills": sum(1 for r in fired if r["phase"] == "evaluate"),
        "signals": [r["plan"]["signal"] for r in fired],
        "resumes": resumes,
        "final_train": final,
        "final_evaluate": final_eval,
        "artifacts_compared": compared + e_compared,
        "arrays_compared": arrays,
        "results_generations_after_kills": seen,
        "differences": differences,
        "failures": failures,
        "leftover_temporaries": temporaries,
        "equal": ok,
        "seconds": seconds,
    }
    _say(f"trial {trial} {target}: {len(fired)} kills ({result['train_kills']} train, "
         f"{result['evaluate_kills']} evaluate), {resumes} resumes, {compared + e_compared} "
         f"artifacts ({arrays} arrays) compared: {'all equal' if ok else 'DIFFERENT'}, "
         f"{seconds} s")  # fmt: skip
    for line in failures + differences:
        _say(f"    {line}")
    if ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _kill_text(record: dict) -> str:
    plan = record["plan"]
    aim = (
        f"at {plan['at']} s"
        if plan["mode"] == "time"
        else f"{plan['mode']} change {plan['skip'] + 1}"
    )
    if "fired" not in record:
        return f"SIG{plan['signal']} {aim}: finished first (rc {record['returncode']})"
    return (f"SIG{plan['signal']} {aim}: fired at {record['fired']['at_s']} s "
            f"({record['fired']['event']}), rc {record['returncode']}")  # fmt: skip


def summary_table(trials: list[dict], targets: list[str]) -> str:
    lines = [
        "| target | trials | kills (train + evaluate) | SIGINT / SIGTERM | resumes "
        "| artifacts compared (arrays) | all equal | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups = [(t, [r for r in trials if r["target"] == t]) for t in targets]
    groups.append(("**all**", trials))
    for name, rows in groups:
        if not rows:
            continue
        train = sum(r["train_kills"] for r in rows)
        ev = sum(r["evaluate_kills"] for r in rows)
        signals = [s for r in rows for s in r["signals"]]
        lines.append(
            f"| {name} | {len(rows)} | {train + ev} ({train} + {ev}) "
            f"| {signals.count('INT')} / {signals.count('TERM')} "
            f"| {sum(r['resumes'] for r in rows)} "
            f"| {sum(r['artifacts_compared'] for r in rows)} "
            f"({sum(r['arrays_compared'] for r in rows)}) "
            f"| {'yes' if all(r['equal'] for r in rows) else '**no**'} "
            f"| {sum(r['seconds'] for r in rows):.0f} |"
        )
    return "\n".join(lines)


def report_section(report: dict) -> str:
    sys.path.insert(0, str(HERE))
    from bench_report import stamp_text

    refs = report["references"]
    ref_lines = ", ".join(
        f"{t} {r['train_seconds']:.0f} s + {r['evaluate_seconds']:.0f} s" for t, r in refs.items()
    )
    per_trial = report["seconds_trials"] / max(1, len(report["trials"]))
    return "\n".join(
        [
            REPORT_BEGIN,
            "",
            "```",
            report["command"],
            "```",
            "",
            stamp_text(report["stamp"], report.get("device")),
            "",
            summary_table(report["trials"], list(refs)),
            "",
            f"{len(report['trials'])} trials in {report['seconds_total']:.0f} s "
            f"({per_trial:.0f} s per trial on average, references included in the total); "
            f"uninterrupted references (train + evaluate): {ref_lines}. "
            f"Every kill resumed and every artifact equal: "
            f"**{'yes' if report['all_equal'] else 'no'}**. Per-trial details (each kill's "
            f"moment, what the poll loop saw when it fired, return codes, the results' generation "
            f"after every evaluate kill): `{report['out']}`.",
            *_findings(report["trials"]),
            "",
            REPORT_END,
        ]
    )


def _findings(trials: list[dict]) -> list[str]:
    """One bullet per trial that failed: what its kills did and what differed."""
    lines = []
    for t in trials:
        if t["equal"]:
            continue
        kills = "; ".join(
            f"{k['phase']} SIG{k['plan']['signal']} ({k['plan']['mode']}: {k['fired']['event']})"
            for k in t["kills"]
            if "fired" in k
        )
        found = t["failures"] + t["differences"]
        shown = "; ".join(found[:4]) + (f"; and {len(found) - 4} more" if len(found) > 4 else "")
        lines.append(f"- trial {t['trial']} ({t['target']}; {kills}): {shown}")
    return ["", "Trials that failed:", "", *lines] if lines else []


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.report_from is not None:  # only rewrite the section from an earlier run's details
        sys.path.insert(0, str(HERE))
        from bench_report import write_section

        report = json.loads(args.report_from.read_text())
        path = args.write_report or REPO / "RELIABILITY.md"
        write_section(path, REPORT_BEGIN, REPORT_END, report_section(report), "## Chaos harness")
        _say(f"Rewrote the chaos section of {path} from {args.report_from}")
        return 0 if report["all_equal"] else 1
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown or not targets:
        raise SystemExit(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    if args.trials < 1:
        raise SystemExit(f"--trials must be >= 1, got {args.trials}")
    tic = time.perf_counter()
    root = args.workdir.absolute()
    root.mkdir(parents=True, exist_ok=True)
    env = _environment(args, root)
    order = [targets[t % len(targets)] for t in range(args.trials)]
    used = list(dict.fromkeys(order))
    refs = {}
    for target in used:
        _say(f"reference {target}: train, decoy evaluation, evaluate ...")
        refs[target] = reference(target, root, env, args.timeout)
        r = refs[target]
        _say(f"reference {target}: train {r['train']['seconds']:.1f} s "
             f"({r['train']['events']}), evaluate {r['evaluate']['seconds']:.1f} s "
             f"({r['evaluate']['events']})")  # fmt: skip
    trials_tic = time.perf_counter()
    trials = [run_trial(t, order[t], refs[order[t]], args, root, env) for t in range(args.trials)]
    table = summary_table(trials, used)
    _say("")
    _say(table)
    sys.path.insert(0, str(HERE))
    from bench_report import run_stamp

    from jaxrobust.devices import describe_devices

    command = "python tools/chaos.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {
        "command": command,
        "stamp": run_stamp(("orbax-checkpoint",)),
        "device": describe_devices(),
        "seed": args.seed,
        "targets": used,
        "references": {
            t: {
                "train_seconds": r["train"]["seconds"],
                "evaluate_seconds": r["evaluate"]["seconds"],
                "train_events": r["train"]["events"],
                "evaluate_events": r["evaluate"]["events"],
                "metrics_rows": r["rows"],
            }
            for t, r in refs.items()
        },
        "trials": trials,
        "all_equal": all(r["equal"] for r in trials),
        "seconds_trials": round(time.perf_counter() - trials_tic, 1),
        "seconds_total": round(time.perf_counter() - tic, 1),
        "out": str(args.out),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    _say(f"\nDetails: {args.out}")
    if args.write_report:
        from bench_report import write_section

        write_section(args.write_report, REPORT_BEGIN, REPORT_END, report_section(report),
                      "## Chaos harness")  # fmt: skip
        _say(f"Rewrote the chaos section of {args.write_report}")
    return 0 if report["all_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())

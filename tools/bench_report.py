"""Shared by the benchmarks in tools/: interleaved timing, the run stamp (date and package
versions) and the generated BENCHMARKS.md sections.

The benchmarks run as scripts (``python tools/bench_x.py``), so their own directory is on
``sys.path`` and they import this module by name.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

#: Always stamped (a missing one reads "not installed"); ``OPTIONAL`` ones only when installed.
REQUIRED = ("jax", "jaxlib", "numpy")
OPTIONAL = ("torch", "flax", "optax", "foolbox")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def run_stamp(extra: Iterable[str] = ()) -> dict[str, str]:
    """What a benchmark run was measured with: ``date`` (today, ISO), the installed versions of
    jax, jaxlib and numpy, ``python`` (``platform.python_version()``), and those of torch, flax,
    optax, foolbox and the ``extra`` distributions that are installed (others are left out).
    Computed when called, so every run stamps its own date and versions."""
    stamp = {"date": datetime.date.today().isoformat()}
    for package in REQUIRED:
        stamp[package] = _version(package) or "not installed"
    stamp["python"] = platform.python_version()
    for package in (*OPTIONAL, *extra):
        version = _version(package)
        if version is not None and package not in stamp:
            stamp[package] = version
    return stamp


def stamp_text(stamp: dict[str, str], on: str | None = None) -> str:
    """One line for a report, e.g. ``Measured 2026-12-01 on <on>; jax 0.10.2, jaxlib 0.10.2,
    numpy 2.4.6, Python 3.12.3, flax 0.12.8`` (``on``, the device, is optional)."""
    where = f" on {on}" if on else ""
    versions = ", ".join(
        f"{'Python' if name == 'python' else name} {version}"
        for name, version in stamp.items()
        if name != "date"
    )
    return f"Measured {stamp['date']}{where}; {versions}."


def measure(runners: dict[str, Callable[[int], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each runner: one warm-up call each (argument -1), then ``repeats``
    rounds that call every runner once in turn (interleaved, so drifting machine load hits all
    alike)."""
    for run in runners.values():
        run(-1)
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run(i)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def write_section(path: Path, begin: str, end: str, section: str, title: str = "") -> None:
    """Replace the text between ``begin`` and ``end`` markers in ``path`` with ``section`` (which
    includes the markers), or append ``title`` and the section; the file is replaced atomically.
    """
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = section.rstrip("\n")
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + (title + "\n\n" if title else "") + section + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------- suite mode
#
# ``tools/gpu/suite.py`` runs each benchmark as ``python tools/bench_x.py --preset P --device D
# --json FILE``: the workloads at the preset's sizes, jaxrobust beside PyTorch on the same device,
# every figure written to FILE (atomically, after each workload, so a step killed by its time box
# leaves what it finished). The helpers below are shared by the benchmarks' suite modes.

PRESETS = ("smoke", "cpu", "gpu")
#: Distributions whose versions the suite records (besides jax, jaxlib, numpy, Python).
SUITE_PACKAGES = (
    "torch",
    "flax",
    "optax",
    "numpyro",
    "chex",
    "orbax-checkpoint",
    "ml-collections",
    "torchvision",
    "torchattacks",
    "torchmetrics",
    "foolbox",
    "scikit-learn",
    "scipy",
)


def add_suite_arguments(parser) -> None:
    """``--preset``, ``--device``, ``--json``, ``--budget-s``, ``--profile`` (the suite mode)."""
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default=None,
        help="suite mode (tools/gpu/suite.py): the preset's sizes, figures written to --json",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="suite mode: the device of both sides (auto: JAX's backend)",
    )
    parser.add_argument("--json", default=None, help="suite mode: write the figures here")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="suite mode: seconds this run may take (sizes and repeats shrink to fit)",
    )
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="suite mode: jax.profiler summary of the jaxrobust side (auto: where a target is "
        "missed)",
    )


def suite_device(device: str) -> str:
    """``"gpu"`` or ``"cpu"``: ``device`` checked against JAX's backend (``"auto"``: the
    backend). JAX is initialised here, before PyTorch loads its CUDA libraries.

    Examples:
        >>> import jax
        >>> suite_device("auto") == ("gpu" if jax.default_backend() == "gpu" else "cpu")
        True
    """
    import jax

    backend = jax.default_backend()
    if device == "auto":
        return "gpu" if backend == "gpu" else "cpu"
    if device != ("gpu" if backend == "gpu" else "cpu"):
        raise SystemExit(
            f"--device {device} but JAX's default backend is {backend!r} ({jax.devices()}): "
            "install jax with its CUDA plugin for a GPU run, or pass --device "
            f"{'gpu' if backend == 'gpu' else 'cpu'}."
        )
    return device


def torch_device(device: str, preset: str = "gpu"):
    """The ``torch.device`` of the suite's PyTorch side. On a GPU: TF32 allowed for matmuls and
    convolutions (JAX's default precision for float32 on a GPU) and cuDNN autotuning on (XLA
    autotunes its convolutions too); on the CPU: one thread per core (one in the smoke preset,
    whose figures do not matter and whose machine may be shared)."""
    import torch

    if device == "gpu":
        if not torch.cuda.is_available():
            raise SystemExit(
                "JAX sees a GPU but torch.cuda.is_available() is False: install a CUDA build of "
                "torch, or run the suite with --device cpu."
            )
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        return torch.device("cuda")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(1 if preset == "smoke" else cores or 1)
    return torch.device("cpu")


def torch_sync(dev) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def suite_environment(device: str) -> dict:
    """Device, versions and date of a suite run: ``describe_devices()``, :func:`run_stamp` with
    the suite's packages, CUDA/cuDNN of both sides where there is a GPU."""
    from jaxrobust.devices import describe_devices

    env = {
        "device": describe_devices(),
        "stamp": run_stamp(extra=SUITE_PACKAGES),
        "preset_device": device,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    try:
        import torch

        env["torch_cuda"] = torch.version.cuda
        if device == "gpu" and torch.cuda.is_available():
            env["torch_device"] = torch.cuda.get_device_name(0)
            env["torch_cudnn"] = torch.backends.cudnn.version()
    except ImportError:
        env["torch"] = "not installed"
    plugins = {}
    for dist in ("jax-cuda13-plugin", "jax-cuda13-pjrt", "jax-cuda12-plugin", "jax-cuda12-pjrt"):
        version = _version(dist)
        if version:
            plugins[dist] = version
    if plugins:
        env["jax_cuda"] = plugins
    return env


def atomic_write_json(path: str | os.PathLike, data) -> None:
    """``data`` as JSON in ``path``, written to a temporary file that replaces it."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default, allow_nan=True) + "\n")
    os.replace(tmp, path)


def _json_default(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


class SuiteRecorder:
    """The JSON a benchmark writes in suite mode: ``{"environment", "workloads": {key: record}}``,
    rewritten atomically after each :meth:`add`."""

    def __init__(self, path: str | os.PathLike | None, device: str, preset: str) -> None:
        self.path = path
        self.data = {"preset": preset, "environment": suite_environment(device), "workloads": {}}
        self.flush()

    def add(self, key: str, record: dict) -> None:
        self.data["workloads"][key] = record
        print(f"[suite] {key}: {summary_line(record)}", flush=True)
        self.flush()

    def add_profiled(self, key: str, record: dict, args, run: Callable[[int], object] | None):
        """:meth:`add`, then :func:`maybe_profile` of ``run`` and :meth:`add` again with the
        profile: the figures are on disk before the profiler runs (should it crash)."""
        self.add(key, record)
        profile = maybe_profile(args, record["ratios"], run) if run is not None else None
        if profile:
            record["profile"] = profile
            self.add(key, record)

    def flush(self) -> None:
        if self.path:
            atomic_write_json(self.path, self.data)


def figure(
    label: str,
    seconds: list[float],
    items: float,
    *,
    side: str,
    compile_s: float | None = None,
    cost: dict | None = None,
    **extra,
) -> dict:
    """One measured program: ``rate`` = ``items`` / median ``seconds`` (per timed call), with
    its compile time, the XLA cost figures of :func:`program_cost` and the achieved rates.

    Examples:
        >>> f = figure("jax", [2.0, 1.0, 4.0], 100, side="jaxrobust")
        >>> f["median_s"], f["rate"]
        (2.0, 50.0)
    """
    median = statistics.median(seconds)
    out = {
        "label": label,
        "side": side,
        "items": items,
        "seconds": [float(s) for s in seconds],
        "median_s": median,
        "rate": items / median,
    }
    if compile_s is not None:
        out["compile_s"] = compile_s
    if cost:
        cost = dict(cost)
        if cost.get("flops_per_call"):
            cost["achieved_tflops"] = cost["flops_per_call"] / median / 1e12
        if cost.get("bytes_per_call"):
            cost["achieved_gbs"] = cost["bytes_per_call"] / median / 1e9
        out["cost"] = cost
    out.update(extra)
    return out


def missing(label: str, side: str, reason: str) -> dict:
    """A figure that could not be measured, and why (a peer not installed, an option absent)."""
    return {"label": label, "side": side, "missing": reason}


def ratio_spec(num: str, den: str, *, kind: str = "speedup", target: float | None = None,
               name: str | None = None, per: str = "rate") -> dict:  # fmt: skip
    """A ratio of two figures: ``speedup`` = rate(num) / rate(den) (target: at least),
    ``time`` = rate(den) / rate(num), i.e. time per item of num over den (target: at most).
    ``per`` names the figures' field compared (``"rate"``: items/s; ``"call_rate"``: model
    calls/s, for attacks that stop early)."""
    if kind not in ("speedup", "time"):
        raise ValueError(f"ratio kind must be 'speedup' or 'time', got {kind!r}.")
    return {"num": num, "den": den, "kind": kind, "target": target, "name": name, "per": per}


def ratio_value(figures: dict, spec: dict) -> float | None:
    """The value of ``spec`` (see :func:`ratio_spec`) from ``figures``; None if either is missing.

    Examples:
        >>> figs = {"a": {"rate": 30.0}, "b": {"rate": 10.0}, "c": {"missing": "no"}}
        >>> ratio_value(figs, ratio_spec("a", "b")), ratio_value(figs, ratio_spec("a", "b", kind="time"))
        (3.0, 0.3333333333333333)
        >>> ratio_value(figs, ratio_spec("a", "c")) is None
        True
    """  # noqa: E501
    num, den = figures.get(spec["num"], {}), figures.get(spec["den"], {})
    per = spec.get("per", "rate")
    if not num.get(per) or not den.get(per):
        return None
    if spec["kind"] == "speedup":
        return num[per] / den[per]
    return den[per] / num[per]


def target_met(spec: dict, value: float | None) -> bool | None:
    """Whether ``value`` meets the spec's target (None without a target or a value)."""
    if spec.get("target") is None or value is None:
        return None
    return value >= spec["target"] if spec["kind"] == "speedup" else value <= spec["target"]


def workload_record(
    title: str,
    unit: str,
    figures: dict,
    ratios: list[dict],
    *,
    params: dict | None = None,
    notes: list[str] | tuple[str, ...] = (),
) -> dict:
    """A workload of the suite: its figures, ratio specs (values filled in) and notes."""
    filled = []
    for spec in ratios:
        value = ratio_value(figures, spec)
        filled.append({**spec, "value": value, "met": target_met(spec, value)})
    return {
        "title": title,
        "unit": unit,
        "figures": figures,
        "ratios": filled,
        "params": params or {},
        "notes": list(notes),
    }


def summary_line(record: dict) -> str:
    parts = []
    for spec in record.get("ratios", []):
        value = spec.get("value")
        text = "n/a" if value is None else f"{value:.2f}"
        parts.append(f"{spec.get('name') or spec['num'] + '/' + spec['den']} {text}")
    return "; ".join(parts) or record.get("status", "")


def misses_target(ratios: list[dict]) -> bool:
    """Whether any ratio of ``ratios`` (specs) misses its target, judged from a quick figure."""
    return any(spec.get("met") is False for spec in ratios)


def fit_count(per_item_s: float, budget_s: float, *, maximum: int, minimum: int = 1,
              multiple: int = 1) -> int:  # fmt: skip
    """How many items fit in ``budget_s`` at ``per_item_s`` each: between ``minimum`` and
    ``maximum``, rounded down to a multiple of ``multiple``.

    Examples:
        >>> fit_count(0.01, 5.0, maximum=10_000, multiple=100)
        500
        >>> fit_count(1.0, 5.0, maximum=10_000, minimum=100, multiple=100)
        100
        >>> fit_count(1.0, float("inf"), maximum=10_000)
        10000
    """
    fits = budget_s / max(per_item_s, 1e-9)
    count = maximum if fits >= maximum else max(minimum, int(fits))
    return max(multiple, count // multiple * multiple)


# --- XLA cost analysis and a FLOP count that knows loop trip counts


def _sub_jaxprs(eqn):
    """(jaxpr, multiplicity, is_branch) of each jaxpr inside ``eqn``'s parameters."""
    name = eqn.primitive.name
    found = []

    def visit(value):
        if hasattr(value, "eqns"):
            found.append(value)
        elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
            found.append(value.jaxpr)
        elif isinstance(value, (tuple, list)):
            for v in value:
                visit(v)

    for value in eqn.params.values():
        visit(value)
    length = eqn.params.get("length", 1) if name == "scan" else 1
    return [(j, length, name == "cond") for j in found], name == "while"


def jaxpr_flops(jaxpr) -> tuple[float, float, bool]:
    """(dot + convolution FLOPs with scan trip counts, the same counting every loop body once,
    whether a while loop of unknown trip count was met) of a (closed) jaxpr.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> def f(x):
        ...     return jax.lax.scan(lambda c, _: (c @ c, None), x, None, length=10)[0]
        >>> jaxpr_flops(jax.make_jaxpr(f)(jnp.ones((4, 4))))
        (1280.0, 128.0, False)
    """
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    full = once = 0.0
    has_while = False
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            flops = 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[i] for i in contract)
            full, once = full + flops, once + flops
            continue
        if name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            spec = eqn.params["dimension_numbers"].rhs_spec
            flops = (
                2.0
                * math.prod(eqn.outvars[0].aval.shape)
                * rhs[spec[1]]
                * math.prod(rhs[i] for i in spec[2:])
            )
            full, once = full + flops, once + flops
            continue
        subs, is_while = _sub_jaxprs(eqn)
        has_while |= is_while
        if not subs:
            continue
        counts = [(jaxpr_flops(j), m) for j, m, _ in subs]
        has_while |= any(c[2] for c, _ in counts)
        if subs[0][2]:  # cond: the costliest branch
            full += max(c[0] for c, _ in counts)
            once += max(c[1] for c, _ in counts)
        else:
            full += sum(c[0] * m for c, m in counts)
            once += sum(c[1] for c, _ in counts)
    return full, once, has_while


def program_cost(fn, args, compiled=None, calls: int = 1) -> dict:
    """Where the time of a jitted program goes, per timed run of ``calls`` calls of ``fn(*args)``:

    - ``xla_flops`` / ``xla_bytes``: XLA's cost analysis of the compiled program (``compiled``),
      which counts every loop body once;
    - ``dot_conv_flops``: the dot and convolution FLOPs of the jaxpr with loop trip counts, and
      ``loop_factor`` = that over the same count with loop bodies once;
    - ``flops_per_call`` (= ``dot_conv_flops`` x ``calls``) and ``bytes_per_call`` (XLA's bytes
      x ``loop_factor`` x ``calls``, an estimate), from which :func:`figure` derives the
      achieved TFLOP/s and GB/s.
    """
    import jax

    out: dict = {"calls": calls}
    try:
        full, once, has_while = jaxpr_flops(jax.make_jaxpr(fn)(*args))
        out.update(dot_conv_flops=full, loop_factor=full / once if once else 1.0)
        if has_while:
            out["note"] = "a while loop (unknown trip count) counted once"
        out["flops_per_call"] = full * calls
    except Exception as err:  # the cost is diagnostic: never fail a benchmark over it
        out["jaxpr_error"] = f"{type(err).__name__}: {err}"[:300]
    if compiled is not None:
        try:
            analysis = compiled.cost_analysis()
            if isinstance(analysis, (list, tuple)):
                analysis = analysis[0] if analysis else {}
            analysis = analysis or {}
            out["xla_flops"] = float(analysis.get("flops", 0.0))
            out["xla_bytes"] = float(analysis.get("bytes accessed", 0.0))
            out["xla_transcendentals"] = float(analysis.get("transcendentals", 0.0))
            if out["xla_bytes"]:
                out["bytes_per_call"] = out["xla_bytes"] * out.get("loop_factor", 1.0) * calls
        except Exception as err:
            out["xla_error"] = f"{type(err).__name__}: {err}"[:300]
    return out


def profile_top_ops(run: Callable[[int], object], top: int = 12) -> dict:
    """A jax.profiler trace of one ``run(0)``, summarised: the ``top`` ops by total time (device
    ops where the trace has a device, else host events), their share, busy and wall time."""
    import collections
    import glob
    import gzip
    import json
    import tempfile

    import jax

    with tempfile.TemporaryDirectory(prefix="jaxrobust-profile-") as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            run(0)
        files = glob.glob(os.path.join(tmp, "**", "perfetto_trace.json.gz"), recursive=True)
        if not files:
            return {"error": "the profiler wrote no perfetto trace"}
        with gzip.open(files[0], "rt") as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    processes, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            processes[e["pid"]] = e["args"]["name"]
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e.get("tid"))] = e["args"]["name"]
    spans = [e for e in events if e.get("ph") == "X" and "dur" in e]
    device_pids = {p for p, n in processes.items() if "gpu" in n.lower() or "/device:" in n.lower()}
    where = "device"
    chosen = [e for e in spans if e["pid"] in device_pids]
    ops = [e for e in chosen if threads.get((e["pid"], e.get("tid")), "") == "XLA Ops"]
    if ops:
        chosen, where = ops, "device (XLA Ops)"
    elif chosen:
        streams = [
            e for e in chosen if "stream" in threads.get((e["pid"], e.get("tid")), "").lower()
        ]
        chosen, where = (streams or chosen), "device (streams)"
    else:
        chosen = [e for e in spans if not e["name"].startswith("$")]
        where = "host"
    if not chosen:
        return {"error": "no timed events in the trace"}
    totals: dict = collections.defaultdict(float)
    counts: collections.Counter = collections.Counter()
    for e in chosen:
        totals[e["name"]] += e["dur"]
        counts[e["name"]] += 1
    busy = sum(totals.values())
    start = min(e["ts"] for e in chosen)
    end = max(e["ts"] + e["dur"] for e in chosen)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return {
        "where": where,
        "wall_ms": (end - start) / 1e3,
        "busy_ms": busy / 1e3,
        "top": [
            {"name": name[:90], "ms": us / 1e3, "count": counts[name], "share": us / busy}
            for name, us in ranked
        ],
    }


def maybe_profile(args, ratios: list[dict], run: Callable[[int], object]) -> dict | None:
    """:func:`profile_top_ops` of ``run`` per ``--profile`` (auto: where a target is missed);
    errors are recorded, never raised."""
    mode = getattr(args, "profile", "never")
    if mode == "never" or (mode == "auto" and not misses_target(ratios)):
        return None
    try:
        return profile_top_ops(run)
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}"[:300]}


def open_suite(args, suite_sizes: dict) -> tuple[str, object, SuiteRecorder, dict]:
    """What every benchmark's suite mode starts with: ``(device, torch device, recorder, sizes
    of this preset)`` from the ``--device``, ``--preset`` and ``--json`` arguments."""
    device = suite_device(args.device)
    recorder = SuiteRecorder(args.json, device, args.preset)
    return device, torch_device(device, args.preset), recorder, suite_sizes[args.preset]

"""Several processes, one program: JAX's multi-controller runtime (``jax.distributed``).

``jaxrobust train`` runs unchanged under N processes (one per host, or one per GPU): each runs
the same command, :func:`initialize` joins them through ``jax.distributed.initialize`` (from the
cluster's environment, SLURM or Open MPI or a TPU pod slice, or from explicit ``--coordinator``,
``--num-processes`` and ``--process-id`` flags), and the training mesh spans every process's
devices (:func:`jaxrobust.train.sharding.data_mesh`). Each process puts only its shard of every
batch on its own devices (``jax.make_array_from_callback``, see :mod:`jaxrobust.train.feed`);
Orbax writes one checkpoint from all processes; logs, ``metrics.jsonl`` and progress bars come
from process 0 (:func:`is_main_process`). Evaluation stays a single-process program that
restores that checkpoint.

On CPU the cross-process collectives are Gloo's (``jax_cpu_collectives_implementation``), so the
same code is tested with 2 local processes of 2 CPU devices each.

When a process dies, the others notice at their next collective (Gloo reports the closed
connection at once): :func:`peer_failure` turns that error into a :class:`PeerProcessError` that
says what to do (restart all processes with the same command: training resumes from the last
checkpoint), and the command line exits at once instead of waiting at JAX's shutdown barrier for
a process that is gone. A process waiting elsewhere (at a checkpoint's barrier, say) would only
learn it when JAX's coordinator misses the dead one's heartbeats and aborts the rest with a C++
stack trace; so each process also runs a small watchdog thread (:func:`start_watchdog`) that
counts a beat into JAX's own key-value store every second and reads the others': a process
silent for half the heartbeat timeout, or a coordinator that stopped answering, makes it print
the same kind of message and exit with status 1 first. A process that finishes says so, so it
is not mistaken for a dead one.

Examples:
    >>> process_count(), is_main_process()  # a single process unless initialize() joined more
    (1, True)
    >>> detected_cluster({"SLURM_NTASKS": "4", "SLURM_PROCID": "1"})
    'slurm'
    >>> detected_cluster({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None
    True
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxrobust.errors import ConfigError, JaxrobustError

#: Default seconds without a heartbeat after which the coordinator declares a process dead.
HEARTBEAT_TIMEOUT_S = 60

# Fragments of the runtime errors a collective raises when a peer process has gone away.
_PEER_GONE = (
    "Connection closed by peer",
    "Connection reset by peer",
    "Broken pipe",
    "heartbeat",
    "Gloo",
    "coordination service",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
)

_state: dict[str, Any] = {"initialized": False}


class PeerProcessError(JaxrobustError, RuntimeError):
    """Another process of a multi-process run stopped (killed, crashed, or preempted).

    Examples:
        >>> issubclass(PeerProcessError, RuntimeError)
        True
    """


def detected_cluster(environ: Mapping[str, str] | None = None) -> str | None:
    """The multi-process launcher whose environment this process runs in, if any.

    ``"slurm"`` (``srun`` with more than one task), ``"mpi"`` (Open MPI's ``mpirun -n N``, N > 1),
    ``"jax"`` (``JAX_COORDINATOR_ADDRESS`` with ``JAX_NUM_PROCESSES`` > 1) or ``"tpu"`` (a
    multi-host TPU slice); None for a plain single process.
    """
    env = os.environ if environ is None else environ

    def more_than_one(name: str) -> bool:
        try:
            return int(env.get(name, "1")) > 1
        except ValueError:
            return False

    if more_than_one("SLURM_NTASKS") and "SLURM_PROCID" in env:
        return "slurm"
    if more_than_one("OMPI_COMM_WORLD_SIZE"):
        return "mpi"
    if env.get("JAX_COORDINATOR_ADDRESS") and more_than_one("JAX_NUM_PROCESSES"):
        return "jax"
    if "," in env.get("TPU_WORKER_HOSTNAMES", ""):
        return "tpu"
    return None


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    heartbeat_timeout_s: int = HEARTBEAT_TIMEOUT_S,
    initialization_timeout_s: int = 300,
) -> int:
    """Join a multi-process run; returns the number of processes (1: nothing to join).

    With explicit arguments (all three, as the ``jaxrobust train`` flags give them) the
    coordinator is ``host:port`` of process 0. Without them, a cluster launcher's environment
    (:func:`detected_cluster`) is read by ``jax.distributed.initialize`` itself. Must run before
    anything touches a JAX device.

    Raises:
      ConfigError: an incomplete or out-of-range set of flags.
    """
    explicit = [coordinator, num_processes, process_id]
    if _state["initialized"]:
        return jax.process_count()
    if all(v is None for v in explicit):
        if detected_cluster() is None:
            return 1
        kwargs: dict[str, Any] = {}
    else:
        if any(v is None for v in explicit):
            raise ConfigError(
                "--coordinator, --num-processes and --process-id go together (got "
                f"coordinator={coordinator!r}, num_processes={num_processes!r}, "
                f"process_id={process_id!r}); give all three, e.g. --coordinator "
                "host0:12345 --num-processes 2 --process-id 0 on the first host."
            )
        if not isinstance(num_processes, int) or num_processes < 1:
            raise ConfigError(f"--num-processes must be >= 1, got {num_processes!r}.")
        if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
            raise ConfigError(
                f"--process-id must be in 0..{num_processes - 1} for --num-processes "
                f"{num_processes}, got {process_id!r}."
            )
        if ":" not in str(coordinator):
            raise ConfigError(
                f"--coordinator must be host:port of process 0, got {coordinator!r} "
                "(e.g. --coordinator 10.0.0.1:12345)."
            )
        if num_processes == 1:
            return 1
        kwargs = {
            "coordinator_address": coordinator,
            "num_processes": num_processes,
            "process_id": process_id,
        }
    # CPU devices talk to other processes through Gloo (the default is none at all); GPUs and
    # TPUs use their own collectives and ignore this.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        **kwargs,
        heartbeat_timeout_seconds=heartbeat_timeout_s,
        initialization_timeout=initialization_timeout_s,
    )
    _state["heartbeat_timeout_s"] = heartbeat_timeout_s
    _state["initialized"] = True
    return jax.process_count()


_BEAT_KEY = "jaxrobust/alive/{}"
_FINISHED = "finished"


class _Watchdog(threading.Thread):
    """Beats into JAX's key-value store and exits the process when a peer falls silent."""

    def __init__(self, grace_s: float, interval_s: float):
        super().__init__(name="jaxrobust-watchdog", daemon=True)
        from jax._src import distributed as jax_distributed

        self.client = jax_distributed.global_state.client
        self.grace_s, self.interval_s = grace_s, interval_s
        self.stopped = threading.Event()
        self.me, self.count = jax.process_index(), jax.process_count()

    def run(self) -> None:
        peers = [p for p in range(self.count) if p != self.me]
        seen = {p: (None, time.monotonic()) for p in peers}
        beat = 0
        while not self.stopped.wait(self.interval_s):
            beat += 1
            try:
                self.client.key_value_set(_BEAT_KEY.format(self.me), str(beat), True)
                values = {p: self._read(p) for p in peers}
            except Exception as err:  # noqa: BLE001 - the coordinator (process 0) is gone
                if self.stopped.is_set():
                    return
                first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                _die(f"the coordinator (process 0) stopped answering ({first})")
                return
            now = time.monotonic()
            for p, value in values.items():
                if value == _FINISHED:
                    continue
                last, since = seen[p]
                if value != last:
                    seen[p] = (value, now)
                elif now - since > self.grace_s and not self.stopped.is_set():
                    _die(f"process {p} has been silent for {now - since:.0f} s")
                    return

    def _read(self, process: int) -> str | None:
        try:
            return self.client.key_value_try_get(_BEAT_KEY.format(process))
        except Exception as err:  # noqa: BLE001
            if "NOT_FOUND" in str(err) or "not found" in str(err).lower():
                return None  # it has not beaten yet
            raise

    def finish(self) -> None:
        self.stopped.set()
        try:
            self.client.key_value_set(_BEAT_KEY.format(self.me), _FINISHED, True)
        except Exception:  # noqa: BLE001 - nobody left to tell
            pass


def _die(reason: str) -> None:
    hint = _state.get("resume_hint") or "training resumes from the last checkpoint"
    message = (
        f"jaxrobust: error: process {jax.process_index()} of {jax.process_count()}: {reason} "
        "(killed, crashed or preempted); this process stops too. Fix: restart all processes "
        f"with the same command; {hint}."
    )
    try:
        sys.stdout.flush()
        print(message, file=sys.stderr, flush=True)
    finally:
        os._exit(1)


def start_watchdog(*, grace_s: float | None = None, interval_s: float = 1.0) -> None:
    """Watch the other processes of this run (see the module docstring); a no-op in a single
    process. ``grace_s`` defaults to half the heartbeat timeout given to :func:`initialize`."""
    if process_count() == 1 or _state.get("watchdog") is not None:
        return
    grace = grace_s if grace_s is not None else _state.get("heartbeat_timeout_s", 60) / 2
    watchdog = _Watchdog(max(grace, 2 * interval_s), interval_s)
    _state["watchdog"] = watchdog
    watchdog.start()


def finish_watchdog() -> None:
    """This process is done: tell the others (so its silence is not a death) and stop watching.
    Call after a final :func:`sync`, so no process stops watching one that still works."""
    watchdog = _state.pop("watchdog", None)
    if watchdog is not None:
        watchdog.finish()


def set_resume_hint(text: str) -> None:
    """What the failure message says about resuming (e.g. the epoch of the last checkpoint)."""
    _state["resume_hint"] = text


def is_initialized() -> bool:
    """Whether :func:`initialize` joined a multi-process run in this process."""
    return bool(_state["initialized"])


def process_count() -> int:
    """The number of processes of this run (1 unless ``jax.distributed`` joined more)."""
    return jax.process_count()


def process_index() -> int:
    """This process's index, 0..N-1 (0 for a single process)."""
    return jax.process_index()


def is_main_process() -> bool:
    """True on process 0: the one that writes logs, metrics and config files."""
    return process_index() == 0


def sync(tag: str) -> None:
    """Wait until every process reaches ``sync(tag)`` (nothing to wait for in one process)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(tag)


def host_value(tree: Any) -> Any:
    """``tree`` as numpy arrays on this host, gathering the shards held by other processes.

    Examples:
        >>> host_value({"a": jax.numpy.arange(3)})["a"].tolist()
        [0, 1, 2]
    """

    def fetch(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            if leaf.is_fully_replicated:
                return np.asarray(leaf.addressable_data(0))
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return jax.tree.map(fetch, tree)


def peer_failure(err: BaseException, *, resume_hint: str = "") -> PeerProcessError | None:
    """A :class:`PeerProcessError` for ``err`` if it is a collective failing because another
    process of this run went away; None otherwise (or in a single process).

    Examples:
        >>> peer_failure(RuntimeError("Gloo AllGather failed: Connection closed by peer")) is None
        True
    """
    if process_count() <= 1:
        return None
    text = str(err)
    if not any(fragment in text for fragment in _PEER_GONE):
        return None
    first = text.strip().splitlines()[0][:300] if text.strip() else type(err).__name__
    return PeerProcessError(
        f"Process {process_index()} of {process_count()}: another process of this run stopped "
        f"(killed, crashed or preempted), so a collective failed ({first}). This process stops "
        "too. Fix: restart all processes with the same command"
        + (f"; {resume_hint}" if resume_hint else "; training resumes from the last checkpoint")
        + "."
    )

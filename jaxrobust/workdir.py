"""What a run writes beside its checkpoints, written so that a kill never leaves it half-done.

Layout of a workdir (``docs/design.md``)::

    config.json  metrics.jsonl  checkpoints/<model>/<epoch>/  posterior/<model>/
    .lock                              held while a run writes (JSON: pid, host, start time)
    evaluations/<n>/                   one evaluation: results.json, results.md, plots/
    evaluations/<n>.tmp/               an evaluation in progress (removed on failure)
    evaluations/current -> <n>         repointed atomically when evaluation <n> is complete
    results.json -> evaluations/current/results.json    (fixed symlinks: users read these)
    results.md   -> evaluations/current/results.md
    plots        -> evaluations/current/plots

- **Atomic files**: :func:`atomic_write_bytes` / :func:`atomic_write_text` /
  :func:`atomic_path` write to a temporary file in the same directory and ``os.replace`` it.
- **JSON lines**: :func:`append_jsonl` appends one row as ONE newline-terminated ``os.write`` on
  an ``O_APPEND`` descriptor, after repairing a partial last line (what a kill mid-write leaves)
  with a :class:`PartialLineWarning`; :func:`read_jsonl` / :func:`read_metrics` skip (and warn
  about) a partial last line; :func:`reconcile_metrics` keeps one row per (model, epoch).
- **The lock**: :class:`WorkdirLock` (``workdir/.lock``): a second writer is refused at once
  with :class:`~jaxrobust.errors.WorkdirLockedError`; a lock left by a killed run is taken over.
- **Generations**: :func:`begin_generation` / :meth:`Generation.commit` commit the result files
  of one evaluation together; the last :data:`KEEP_GENERATIONS` are kept.
- **Errors**: an ``OSError`` where the workdir is created or written becomes a
  :class:`~jaxrobust.errors.WorkdirError` naming the path and the fix
  (:func:`translate_os_errors`, :func:`prepare_workdir`).

Layer 0: imports only :mod:`jaxrobust.errors` and the standard library.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shlex
import shutil
import socket
import sys
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from jaxrobust.errors import JaxrobustError, WorkdirError, WorkdirLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows): the lock falls back on pid checks alone
    fcntl = None

METRICS_FILENAME = "metrics.jsonl"
LOCK_FILENAME = ".lock"
EVALUATIONS_DIRNAME = "evaluations"
CURRENT_LINK = "current"
#: The fixed symlinks ``workdir/<name> -> evaluations/current/<name>``.
RESULT_LINKS = ("results.json", "results.md", "plots")
#: Complete evaluations kept under ``workdir/evaluations`` (the current one and the one before).
KEEP_GENERATIONS = 2


class PartialLineWarning(UserWarning):
    """A JSON-lines file had a partial or damaged line (what a killed writer leaves); it was
    repaired or skipped.

    Examples:
        >>> issubclass(PartialLineWarning, UserWarning)
        True
    """


# ---------------------------------------------------------------------------- errors


def workdir_error(err: OSError, path: str | os.PathLike, action: str) -> WorkdirError:
    """A :class:`WorkdirError` for ``err`` raised while trying to ``action`` at ``path``.

    Examples:
        >>> import errno
        >>> err = workdir_error(OSError(errno.ENOSPC, "No space left"), "/w/results.json", "write")
        >>> isinstance(err, OSError), "free disk space" in str(err)
        (True, True)
    """
    path = Path(path)
    code = getattr(err, "errno", None)
    where = path if path.is_dir() else path.parent
    if code in (errno.ENOSPC, errno.EDQUOT):
        problem = f"no space left on the device holding {path} (disk full or quota exceeded)"
        fix = (
            f"free disk space on the filesystem of {where} (or raise the quota) and run again; "
            "training resumes from its last checkpoint, nothing half-written was kept"
        )
    elif code == errno.EROFS:
        problem = f"{path} is on a read-only filesystem"
        fix = "choose a --workdir on a writable filesystem (copy the workdir there to evaluate it)"
    elif code in (errno.EACCES, errno.EPERM):
        problem = f"permission denied for {path}"
        fix = (
            f"make {where} writable (e.g. chmod u+w {where}) or choose another --workdir "
            "(copy the workdir to a writable place to evaluate it)"
        )
    elif code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        problem = f"{path} (or a folder above it) is a file where a directory is needed"
        fix = "remove or rename that file, or choose another --workdir"
    else:
        problem = f"{path}: {err.strerror or err}"
        fix = "check that the workdir is on a writable, mounted filesystem, or choose another"
    return WorkdirError(f"Cannot {action}: {problem}. Fix: {fix}.")


@contextlib.contextmanager
def translate_os_errors(path: str | os.PathLike, action: str) -> Iterator[None]:
    """Turn an ``OSError`` of the block (not already a jaxrobust error) into a
    :class:`WorkdirError` naming ``path`` and the fix.

    Examples:
        >>> try:
        ...     with translate_os_errors("/w", "write the results"):
        ...         raise PermissionError(13, "Permission denied")
        ... except WorkdirError as err:
        ...     print(str(err).split(":")[0])
        Cannot write the results
    """
    try:
        yield
    except JaxrobustError:
        raise
    except OSError as err:
        raise workdir_error(err, path, action) from err


def prepare_workdir(workdir: str | os.PathLike, *, create: bool = True) -> Path:
    """Check that ``workdir`` is (or, with ``create``, can be made) a writable directory.

    Raises :class:`WorkdirError` (path + fix) for a file in its place, a read-only or full
    filesystem, or missing permissions; it writes and removes a small probe file.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     prepare_workdir(Path(tmp) / "run").is_dir()
        True
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     try:
        ...         prepare_workdir(f.name)
        ...     except WorkdirError as err:
        ...         print("is a file" in str(err))
        True
    """
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise WorkdirError(
            f"The workdir {workdir} is a file, not a directory. Fix: choose another --workdir, "
            "or move that file away."
        )
    if not workdir.exists():
        if not create:
            raise WorkdirError(
                f"The workdir {workdir} does not exist. Fix: train into it first "
                f"(`jaxrobust train --config CONFIG.py --workdir {workdir}`)."
            )
        with translate_os_errors(workdir, "create the workdir"):
            workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with translate_os_errors(workdir, "write to the workdir"):
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, b"x")
            finally:
                os.close(fd)
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
    return workdir


# ---------------------------------------------------------------------------- atomic files


def _temporary_sibling(path: Path) -> Path:
    """A unique temporary name beside ``path``, keeping its suffix (matplotlib reads it)."""
    return path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``: a reader (or a
    kill) sees the old file or the new one, never a part. On failure the temporary file is
    removed and a :class:`WorkdirError` raised.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     atomic_write_bytes(Path(tmp) / "a.bin", b"abc").read_bytes()
        b'abc'
    """
    path = Path(path)
    with translate_os_errors(path, f"write {path.name}"):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary_sibling(path)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                if fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if fsync:
            _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> Path:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     atomic_write_text(Path(tmp) / "a.txt", "hi\\n").read_text()
        'hi\\n'
    """
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix) to write to; when the block ends
    without an error it is renamed to ``path``, otherwise removed. For writers that want a
    file name (``fig.savefig``).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     with atomic_path(Path(tmp) / "plot.png") as tmp_path:
        ...         _ = tmp_path.write_bytes(b"PNG")
        ...     sorted(p.name for p in Path(tmp).iterdir())
        ['plot.png']
    """
    path = Path(path)
    with translate_os_errors(path, f"write {path.name}"):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary_sibling(path)
        try:
            yield tmp
            if fsync:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


# ---------------------------------------------------------------------------- JSON lines


def _last_newline(fd: int, size: int) -> int:
    """Offset just after the last ``\\n`` among the first ``size`` bytes (0 if none)."""
    block = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - block)
        chunk = os.pread(fd, end - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


def repair_jsonl(path: str | os.PathLike) -> int:
    """Truncate a partial last line (no final newline) off ``path``; returns the bytes dropped
    (0 when the file ends with a newline or does not exist), with a :class:`PartialLineWarning`.

    Examples:
        >>> import tempfile, warnings
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "m.jsonl"
        ...     _ = path.write_text('{"epoch": 1}\\n{"epo')
        ...     with warnings.catch_warnings():
        ...         warnings.simplefilter("ignore")
        ...         dropped = repair_jsonl(path)
        ...     dropped, path.read_text()
        (5, '{"epoch": 1}\\n')
    """
    path = Path(path)
    if not path.exists():
        return 0
    with translate_os_errors(path, f"repair {path.name}"):
        fd = os.open(path, os.O_RDWR)
        try:
            return _repair_fd(fd, path)
        finally:
            os.close(fd)


def _repair_fd(fd: int, path: Path) -> int:
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    keep = _last_newline(fd, size)
    tail = os.pread(fd, min(size - keep, 200), keep)
    os.ftruncate(fd, keep)
    warnings.warn(
        f"{path} ended with a partial line ({size - keep} bytes, {tail!r}...), what a run "
        "killed while writing leaves; it was removed (the row is written again when its epoch "
        "is retrained).",
        PartialLineWarning,
        stacklevel=3,
    )
    return size - keep


def append_jsonl(path: str | os.PathLike, row: dict, *, fsync: bool = False) -> None:
    """Append ``row`` to ``path`` as one JSON line, in ONE ``os.write`` of the whole
    newline-terminated bytes on an ``O_APPEND`` descriptor (a kill leaves the row whole or
    absent). A partial last line already there is repaired first (:func:`repair_jsonl`). On a
    write error (a full disk) the file is truncated back and a :class:`WorkdirError` raised.
    ``fsync`` makes the row durable across a power loss (about 4 ms per row on a local disk).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "m.jsonl"
        ...     append_jsonl(path, {"model": "vae", "epoch": 1})
        ...     append_jsonl(path, {"model": "vae", "epoch": 2})
        ...     [row["epoch"] for row in read_jsonl(path)]
        [1, 2]
    """
    path = Path(path)
    data = (json.dumps(row) + "\n").encode("utf-8")
    with translate_os_errors(path, f"append a row to {path.name}"):
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _repair_fd(fd, path)
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
                if fsync:
                    os.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)


def _salvage(line: str) -> dict | None:
    """The whole JSON object at the end of a line that starts with a partial one (a partial row
    with the next row glued to it, as older versions left after a kill)."""
    decoder = json.JSONDecoder()
    start = line.find("{", 1)
    while start >= 0:
        try:
            value, end = decoder.raw_decode(line, start)
        except json.JSONDecodeError:
            value, end = None, -1
        if isinstance(value, dict) and line[end:].strip() == "":
            return value
        start = line.find("{", start + 1)
    return None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The rows of a JSON-lines file. A partial last line (no final newline: a writer was
    killed) is skipped with a :class:`PartialLineWarning`; a damaged line inside the file is
    recovered when it ends with a whole row glued to a partial one, else skipped, with a
    warning naming its line number. A missing file has no rows.

    Examples:
        >>> import tempfile, warnings
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "m.jsonl"
        ...     _ = path.write_text('{"epoch": 1}\\n{"epoch": 2}\\n{"epo')
        ...     with warnings.catch_warnings(record=True) as caught:
        ...         warnings.simplefilter("always")
        ...         rows = read_jsonl(path)
        ...     [r["epoch"] for r in rows], caught[0].category.__name__
        ([1, 2], 'PartialLineWarning')
    """
    path = Path(path)
    if not path.exists():
        return []
    with translate_os_errors(path, f"read {path.name}"):
        data = path.read_bytes()
    lines = data.split(b"\n")
    partial = lines.pop()  # b"" when the file ends with a newline
    rows, damaged = [], []
    for number, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            row = _salvage(text)
            damaged.append(number if row is None else f"{number} (whole row recovered)")
            if row is None:
                continue
        if not isinstance(row, dict):
            damaged.append(number)
            continue
        rows.append(row)
    if partial.strip():
        warnings.warn(
            f"{path}: the last line is partial ({len(partial)} bytes without a newline: a "
            "writer was killed mid-row); it is skipped.",
            PartialLineWarning,
            stacklevel=2,
        )
    if damaged:
        warnings.warn(
            f"{path}: damaged line(s) {damaged} are not JSON objects (a partial row glued to "
            "the next by an older jaxrobust); unrecoverable ones are skipped. Resuming the run "
            "rewrites the file clean.",
            PartialLineWarning,
            stacklevel=2,
        )
    return rows


def read_metrics(workdir: str | os.PathLike, model: str | None = None) -> list[dict]:
    """The rows of ``workdir/metrics.jsonl`` (those of ``model`` only, when given), read with
    :func:`read_jsonl`.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     append_jsonl(Path(tmp) / METRICS_FILENAME, {"model": "vae", "epoch": 1})
        ...     append_jsonl(Path(tmp) / METRICS_FILENAME, {"model": "cnn", "epoch": 1})
        ...     [r["model"] for r in read_metrics(tmp, "cnn")]
        ['cnn']
    """
    rows = read_jsonl(Path(workdir) / METRICS_FILENAME)
    return rows if model is None else [r for r in rows if r.get("model") == model]


def rewrite_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Replace ``path`` by ``rows`` atomically (temporary file + ``os.replace``).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     rewrite_jsonl(Path(tmp) / "m.jsonl", [{"a": 1}])
        ...     (Path(tmp) / "m.jsonl").read_text()
        '{"a": 1}\\n'
    """
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8"))


def reconcile_metrics(workdir: str | os.PathLike, model: str, epoch: int) -> list[dict]:
    """Make ``workdir/metrics.jsonl`` hold one row per epoch <= ``epoch`` of ``model`` and none
    after (``epoch`` is the epoch the model's training resumes from): rows of epochs that were
    logged but not checkpointed before a kill, and duplicates (the last row of an epoch is
    kept), are removed by an atomic rewrite. Returns the removed rows.

    Examples:
        >>> import tempfile, warnings
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     for e in (1, 2, 3):
        ...         append_jsonl(Path(tmp) / METRICS_FILENAME, {"model": "vae", "epoch": e})
        ...     dropped = reconcile_metrics(tmp, "vae", 2)
        ...     [r["epoch"] for r in dropped], [r["epoch"] for r in read_metrics(tmp)]
        ([3], [1, 2])
    """
    path = Path(workdir) / METRICS_FILENAME
    if not path.exists():
        return []
    repair_jsonl(path)
    rows = read_jsonl(path)
    last_of = {}
    for i, row in enumerate(rows):
        if row.get("model") == model and isinstance(row.get("epoch"), int):
            last_of[row["epoch"]] = i
    keep, dropped = [], []
    for i, row in enumerate(rows):
        if row.get("model") == model:
            e = row.get("epoch")
            if not isinstance(e, int) or e > epoch or last_of[e] != i:
                dropped.append(row)
                continue
        keep.append(row)
    if dropped or len(keep) != len(rows):
        rewrite_jsonl(path, keep)
    return dropped


# ---------------------------------------------------------------------------- the lock

_HELD: dict[str, list] = {}  # realpath of the lock -> [fd, depth, info] held by this process
_HELD_GUARD = threading.Lock()


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a live
    process from a new one that reused the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def read_lock(workdir: str | os.PathLike) -> dict | None:
    """The JSON of ``workdir/.lock`` (``pid``, ``host``, ``start_time``, ``command``, ...), or
    None when there is no (readable) lock file.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     with WorkdirLock(tmp, purpose="doc"):
        ...         print(read_lock(tmp)["pid"] == os.getpid())
        ...     print(read_lock(tmp))
        True
        None
    """
    try:
        text = (Path(workdir) / LOCK_FILENAME).read_text()
        info = json.loads(text)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict | None) -> str:
    if not info:
        return "a process that is still writing its lock file"
    return (
        f"pid {info.get('pid')} on host {info.get('host')!r}, started {info.get('start_time')} "
        f"({info.get('purpose', '?')}: {info.get('command', '?')})"
    )


class WorkdirLock:
    """The writer lock of a workdir, ``workdir/.lock``: at most one process trains or evaluates
    into a workdir at a time.

    ``acquire`` takes an exclusive ``flock`` on the lock file (released by the kernel when the
    process dies, so a killed run never blocks the next one) and writes its JSON (``pid``,
    ``host``, ``start_time``, ``command``, ``purpose``); ``release`` deletes the file. A second
    writer is refused at once with :class:`WorkdirLockedError` naming the holder and the fix. A
    lock file left by a killed run on this host is taken over with a warning; one written on
    another host is refused (its process cannot be checked from here). Re-entrant within one
    process (an evaluation from a training hook).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     with WorkdirLock(tmp, purpose="train") as lock:
        ...         print(lock.info["purpose"], (Path(tmp) / ".lock").exists())
        ...     print((Path(tmp) / ".lock").exists())
        train True
        False
    """

    def __init__(
        self, workdir: str | os.PathLike, *, purpose: str = "write", command: str | None = None
    ):
        self.workdir = Path(workdir)
        self.path = self.workdir / LOCK_FILENAME
        self.purpose = purpose
        self.command = command if command is not None else shlex.join(sys.argv)
        self.info: dict | None = None
        self._key: str | None = None

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _new_info(self) -> dict:
        now = datetime.datetime.now(datetime.timezone.utc)
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "start_time": now.isoformat(timespec="seconds"),
            "start_timestamp": now.timestamp(),
            "pid_start": _process_start(os.getpid()),
            "purpose": self.purpose,
            "command": self.command,
            "token": uuid.uuid4().hex,
        }

    def _refuse(self, info: dict | None, other_host: bool = False) -> WorkdirLockedError:
        holder = _describe(info)
        if other_host:
            fix = (
                f"wait for that run to finish, or use another --workdir; delete {self.path} if "
                f"no run is active on {info.get('host')!r}"
            )
        else:
            fix = (
                "wait for that run to finish (or stop it), or use another --workdir; a lock "
                "left by a killed run is taken over automatically"
            )
        return WorkdirLockedError(
            f"{self.workdir} is in use by another jaxrobust run: {holder}. Fix: {fix}."
        )

    def acquire(self) -> WorkdirLock:
        """Take the lock (see the class docstring); returns self."""
        with translate_os_errors(self.path, "take the workdir lock"):
            key = os.path.realpath(self.path)
        with _HELD_GUARD:
            if key in _HELD:
                _HELD[key][1] += 1
                self._key, self.info = key, _HELD[key][2]
                return self
        with translate_os_errors(self.path, "take the workdir lock"):
            for _ in range(10):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    got = self._try_lock(fd)
                except BaseException:
                    os.close(fd)
                    raise
                if got:
                    break
                os.close(fd)  # the file was replaced or removed meanwhile: try again
            else:
                raise WorkdirLockedError(
                    f"{self.path} keeps changing; another process is taking the lock. Fix: "
                    "wait for it, or use another --workdir."
                )
        with _HELD_GUARD:
            _HELD[key] = [fd, 1, self.info]
        self._key = key
        return self

    def _try_lock(self, fd: int) -> bool:
        host = socket.gethostname()
        flocked = fcntl is not None
        try:
            if flocked:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._refuse(self._read_holder(fd)) from None
        except OSError as err:  # a filesystem without flock: fall back on pid checks alone
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            flocked = False
        try:
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                return False
        except FileNotFoundError:
            return False
        old = self._read_holder(fd, wait=False)
        size = os.fstat(fd).st_size
        if old is not None:
            if old.get("host") != host:
                raise self._refuse(old, other_host=True)
            pid = old.get("pid")
            alive = _pid_alive(pid) and pid != os.getpid()
            same_process = alive and old.get("pid_start") in (None, _process_start(pid))
            if not flocked and same_process:
                raise self._refuse(old)
        if old is not None or size:
            warnings.warn(
                f"Taking over the stale lock {self.path} left by {_describe(old)}, which is no "
                "longer running.",
                stacklevel=4,
            )
        self.info = self._new_info()
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(self.info) + "\n").encode(), 0)
        os.fsync(fd)
        return True

    def _read_holder(self, fd: int, wait: bool = True) -> dict | None:
        """The holder's JSON (retried briefly while a starting holder writes it)."""
        for _ in range(20 if wait else 1):
            try:
                info = json.loads(os.pread(fd, 1 << 16, 0) or b"null")
            except (OSError, ValueError):
                info = None
            if isinstance(info, dict):
                return info
            if wait:
                threading.Event().wait(0.01)
        return None

    def release(self) -> None:
        """Release the lock and delete the lock file (a no-op when not held)."""
        key = self._key
        if key is None:
            return
        self._key = None
        with _HELD_GUARD:
            entry = _HELD.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _HELD[key]
        fd = entry[0]
        try:
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    os.unlink(self.path)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------- generations


def generations(workdir: str | os.PathLike) -> list[int]:
    """The complete evaluations under ``workdir/evaluations``, oldest first.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     generations(tmp)
        []
    """
    root = Path(workdir) / EVALUATIONS_DIRNAME
    if not root.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in root.iterdir()
        if p.name.isdigit() and p.is_dir() and not p.is_symlink()
    )


def current_generation(workdir: str | os.PathLike) -> Path | None:
    """The folder of the current evaluation (``workdir/evaluations/<n>``, resolved once so that
    its files are read from one generation), or None before the first evaluation.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     print(current_generation(tmp))
        None
    """
    link = Path(workdir) / EVALUATIONS_DIRNAME / CURRENT_LINK
    if not link.is_symlink():
        return None
    target = link.parent / os.readlink(link)
    return target if target.is_dir() else None


def _symlink(target: str, path: Path) -> None:
    """Point ``path`` at ``target`` atomically (a new link under a temporary name, replaced
    over ``path``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _fsync_tree(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(directory))


class Generation:
    """One evaluation being written: ``path`` (``evaluations/<id>.tmp``) holds its
    ``results.json``, ``results.md`` and ``plots/`` until :meth:`commit` makes it current in
    one step; :meth:`abort` removes it. Made by :func:`begin_generation`."""

    def __init__(self, workdir: Path, id: int):
        self.workdir = workdir
        self.id = id
        self.root = workdir / EVALUATIONS_DIRNAME
        self.path = self.root / f"{id}.tmp"
        self.plots = self.path / "plots"
        self.committed: Path | None = None

    def commit(self) -> Path:
        """Rename the folder to ``evaluations/<id>``, repoint ``evaluations/current`` at it
        (atomic), make sure the fixed links exist and delete all but the last
        :data:`KEEP_GENERATIONS` evaluations; returns the final folder."""
        final = self.root / str(self.id)
        with translate_os_errors(final, "commit the evaluation results"):
            self.plots.mkdir(parents=True, exist_ok=True)
            _fsync_tree(self.path)
            os.rename(self.path, final)
            _fsync_dir(self.root)
            _symlink(str(self.id), self.root / CURRENT_LINK)
            _fsync_dir(self.root)
            _ensure_result_links(self.workdir)
        self.committed = final
        for old in generations(self.workdir)[:-KEEP_GENERATIONS]:
            shutil.rmtree(self.root / str(old), ignore_errors=True)
        return final

    def abort(self) -> None:
        """Remove the unfinished folder (nothing of this evaluation remains)."""
        if self.committed is None:
            shutil.rmtree(self.path, ignore_errors=True)


def _ensure_result_links(workdir: Path) -> None:
    """``workdir/results.json`` etc. as symlinks into ``evaluations/current`` (replacing the
    regular files an older jaxrobust wrote)."""
    for name in RESULT_LINKS:
        path = workdir / name
        target = f"{EVALUATIONS_DIRNAME}/{CURRENT_LINK}/{name}"
        if path.is_symlink() and os.readlink(path) == target:
            continue
        if path.is_dir() and not path.is_symlink():
            aside = workdir / EVALUATIONS_DIRNAME / f".old-{name}-{uuid.uuid4().hex[:8]}"
            os.rename(path, aside)
            _symlink(target, path)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            _symlink(target, path)


def _migrate_legacy(workdir: Path, root: Path) -> None:
    """An older workdir's regular result files become generation 1 (copied), so that the
    switch to symlinks never shows a mix of two evaluations."""
    if (root / CURRENT_LINK).is_symlink():
        return
    legacy = [workdir / n for n in RESULT_LINKS if (workdir / n).exists()]
    legacy = [p for p in legacy if not p.is_symlink()]
    if not legacy:
        return
    number = max(generations(workdir), default=0) + 1
    staging = root / f"{number}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for path in legacy:
        if path.is_dir():
            shutil.copytree(path, staging / path.name)
        else:
            shutil.copy2(path, staging / path.name)
    (staging / "plots").mkdir(exist_ok=True)
    _fsync_tree(staging)
    os.rename(staging, root / str(number))
    _symlink(str(number), root / CURRENT_LINK)
    _ensure_result_links(workdir)


def begin_generation(workdir: str | os.PathLike) -> Generation:
    """Start a new evaluation of ``workdir`` (hold its :class:`WorkdirLock`): removes what a
    killed evaluation left (``evaluations/*.tmp``), turns an older workdir's regular result
    files into a first generation, and creates ``evaluations/<n>.tmp/plots`` for generation n.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     gen = begin_generation(tmp)
        ...     _ = (gen.path / "results.json").write_text("{}")
        ...     _ = gen.commit()
        ...     gen.id, (Path(tmp) / "results.json").read_text(), os.readlink(Path(tmp) / "plots")
        (1, '{}', 'evaluations/current/plots')
    """
    workdir = Path(workdir)
    root = workdir / EVALUATIONS_DIRNAME
    with translate_os_errors(root, "prepare the evaluation folder"):
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.iterdir():
            if stale.name.endswith(".tmp") or stale.name.startswith(".old-"):
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)
        _migrate_legacy(workdir, root)
        ids = generations(workdir)
        current = current_generation(workdir)
        if current is not None and current.name.isdigit():
            ids.append(int(current.name))
        generation = Generation(workdir, max(ids, default=0) + 1)
        generation.plots.mkdir(parents=True)
    return generation


def describe_layout() -> dict[str, Any]:
    """The file names of the workdir layout (for tools and harnesses).

    Examples:
        >>> describe_layout()["lock"]
        '.lock'
    """
    return {
        "metrics": METRICS_FILENAME,
        "lock": LOCK_FILENAME,
        "evaluations": EVALUATIONS_DIRNAME,
        "current": f"{EVALUATIONS_DIRNAME}/{CURRENT_LINK}",
        "result_links": list(RESULT_LINKS),
        "keep_generations": KEEP_GENERATIONS,
    }

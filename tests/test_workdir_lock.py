"""The workdir lock: a second writer (train or evaluate) is refused at once, naming the holder;
a lock left by a killed run is taken over; two racing takers never both win."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import TINY_CONFIG, only_models, subprocess_env

from jaxrobust.config import load_config
from jaxrobust.evaluate import evaluate
from jaxrobust.train import train_and_evaluate

try:  # new in issue 13; the fallback lets these tests run (and fail) on the code before it
    from jaxrobust.errors import WorkdirLockedError
except ImportError:  # pragma: no cover

    class WorkdirLockedError(Exception):
        pass


def tiny_classifier(epochs: int):
    config = only_models(load_config(TINY_CONFIG), "classifier")
    config.models.classifier.training.num_epochs = epochs
    return config


def start(script: str, *args: str) -> subprocess.Popen:
    """A Python process running ``script``; returns once it printed its first line."""
    cmd = [sys.executable, "-c", textwrap.dedent(script), *args]
    proc = subprocess.Popen(
        cmd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(f"the helper process failed: {proc.stderr.read()}")
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=60)


TRAINER = """
    import sys, time
    from conftest import only_models
    import jaxrobust.train.loop as loop
    from jaxrobust.config import load_config
    from jaxrobust.train import train_and_evaluate

    config = only_models(load_config(sys.argv[1]), "classifier")

    def hold(devices=None):  # called once the lock is held and config.json written
        print("training", flush=True)
        time.sleep(600)  # a long training run

    loop.data_mesh = hold
    train_and_evaluate(config, sys.argv[2])
"""


class Interrupted(BaseException):
    pass


def interrupt(*args, **kwargs):
    raise Interrupted


def test_second_trainer_is_refused_and_a_killed_one_is_taken_over(
    synthetic_data, tmp_path, monkeypatch
):
    import jaxrobust.train.loop as loop

    workdir = tmp_path / "run"
    trainer = start(TRAINER, str(TINY_CONFIG), str(workdir))
    try:
        config_json = (workdir / "config.json").read_bytes()
        with pytest.raises(WorkdirLockedError, match=rf"pid {trainer.pid} on host"):
            train_and_evaluate(tiny_classifier(3), workdir)
        with pytest.raises(WorkdirLockedError, match=rf"pid {trainer.pid} on host"):
            evaluate(workdir)
        assert (workdir / "config.json").read_bytes() == config_json
    finally:
        stop(trainer)  # SIGKILL: the lock file stays behind with a dead pid
    assert json.loads((workdir / ".lock").read_text())["pid"] == trainer.pid
    monkeypatch.setattr(loop, "data_mesh", interrupt)  # stop right after taking the lock
    with pytest.warns(UserWarning, match=rf"stale lock .* pid {trainer.pid}"):
        with pytest.raises(Interrupted):
            train_and_evaluate(tiny_classifier(3), workdir)
    assert not (workdir / ".lock").exists()  # released when the run ended


HOLDER = """
    import sys, time
    from jaxrobust.workdir import WorkdirLock

    WorkdirLock(sys.argv[1], purpose="test", command="holder").acquire()
    print("locked", flush=True)
    time.sleep(600)
"""


def test_held_lock_is_refused_within_a_second_naming_holder_and_fix(synthetic_data, tmp_path):
    from jaxrobust.workdir import WorkdirLock

    holder = start(HOLDER, str(tmp_path))
    try:
        tic = time.perf_counter()
        with pytest.raises(WorkdirLockedError) as err:
            WorkdirLock(tmp_path).acquire()
        assert time.perf_counter() - tic < 1.0
        message = str(err.value)
        info = json.loads((tmp_path / ".lock").read_text())
        assert f"pid {holder.pid} on host {socket.gethostname()!r}" in message
        assert info["start_time"] in message and "holder" in message
        assert "Fix: wait for that run to finish" in message and "another --workdir" in message
        with pytest.raises(WorkdirLockedError):  # train refuses before it writes anything
            train_and_evaluate(tiny_classifier(1), tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]
    finally:
        stop(holder)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(workdir: Path, **fields) -> None:
    info = {"pid": dead_pid(), "host": socket.gethostname(), "start_time": "2026-01-01T00:00:00"}
    (workdir / ".lock").write_text(json.dumps({**info, **fields}))


def test_lock_of_a_dead_pid_is_taken_over(tmp_path):
    from jaxrobust.workdir import WorkdirLock, read_lock

    write_lock(tmp_path)
    with pytest.warns(UserWarning, match="stale lock"):
        with WorkdirLock(tmp_path, purpose="train") as lock:
            assert read_lock(tmp_path)["pid"] == os.getpid() == lock.info["pid"]
            with WorkdirLock(tmp_path):  # re-entrant within the process
                pass
            assert read_lock(tmp_path)["pid"] == os.getpid()
    assert read_lock(tmp_path) is None


def test_lock_written_on_another_host_is_refused(tmp_path):
    from jaxrobust.workdir import WorkdirLock

    write_lock(tmp_path, host="node-17", pid=12345)
    expected = rf"node-17.*Fix: .*delete {tmp_path}/\.lock if no run is active on 'node-17'"
    with pytest.raises(WorkdirLockedError, match=expected):
        WorkdirLock(tmp_path).acquire()
    assert json.loads((tmp_path / ".lock").read_text())["host"] == "node-17"


RACER = """
    import sys, time
    from jaxrobust.errors import WorkdirLockedError
    from jaxrobust.workdir import WorkdirLock

    print("ready", flush=True)
    go = float(sys.argv[2])
    time.sleep(max(0.0, go - time.time()))
    try:
        WorkdirLock(sys.argv[1]).acquire()
        print("won", flush=True)
        time.sleep(3)
    except WorkdirLockedError:
        print("refused", flush=True)
"""


def test_racing_takers_of_a_stale_lock_never_both_win(tmp_path):
    write_lock(tmp_path)
    go = time.time() + 4.0
    racers = [start(RACER, str(tmp_path), str(go)) for _ in range(4)]
    outcomes = [r.communicate(timeout=120)[0].strip() for r in racers]
    assert sorted(outcomes) == ["refused", "refused", "refused", "won"], outcomes


def test_evaluate_holds_the_lock_while_it_runs(synthetic_data, tmp_path, monkeypatch):
    """evaluate writes results: it takes the lock, and releases it when done or failed."""
    from jaxrobust.evaluate import run
    from jaxrobust.workdir import read_lock

    seen = {}

    def evaluate_tasks(workdir, config, generation):
        seen["lock"] = read_lock(tmp_path)
        raise Interrupted

    monkeypatch.setattr(run, "_evaluate", evaluate_tasks)
    with pytest.raises(Interrupted):
        evaluate(tmp_path, tiny_classifier(1))
    assert seen["lock"]["pid"] == os.getpid() and seen["lock"]["purpose"] == "evaluate"
    assert not (tmp_path / ".lock").exists()
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "evaluations").iterdir())


def test_lock_of_a_terminated_process_is_taken_over(tmp_path):
    """SIGTERM (pre-emption) also leaves a lock the next run takes over."""
    from jaxrobust.workdir import WorkdirLock

    holder = start(HOLDER, str(tmp_path))
    holder.send_signal(signal.SIGTERM)
    holder.wait(timeout=60)
    with pytest.warns(UserWarning, match="stale lock"):
        WorkdirLock(tmp_path).acquire().release()


def test_without_flock_a_live_holder_is_refused_and_a_dead_one_taken_over(tmp_path, monkeypatch):
    """A filesystem (or platform) without flock: the pid and its start time decide."""
    from jaxrobust import workdir

    monkeypatch.setattr(workdir, "fcntl", None)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        write_lock(tmp_path, pid=sleeper.pid, pid_start=workdir._process_start(sleeper.pid))
        with pytest.raises(WorkdirLockedError, match=rf"pid {sleeper.pid} on host"):
            workdir.WorkdirLock(tmp_path).acquire()
        # The same pid with another start time is a new process that reused the pid.
        write_lock(tmp_path, pid=sleeper.pid, pid_start="1")
        with pytest.warns(UserWarning, match="stale lock"):
            workdir.WorkdirLock(tmp_path).acquire().release()
    finally:
        sleeper.kill()
        sleeper.wait()
    write_lock(tmp_path)
    with pytest.warns(UserWarning, match="stale lock"):
        workdir.WorkdirLock(tmp_path).acquire().release()

"""Training under several processes (jax.distributed, CPU collectives through Gloo).

2 local processes x 2 CPU devices each train the tiny VAE config to the same parameters as
1 process x 4 devices and 1 process x 1 device (rtol 2e-4; atol 1e-5 for entries near zero,
where a relative tolerance means nothing); the multi-process checkpoint restores in a fresh
single process and evaluates like the single-process one. Killing one of the two processes
makes the other stop with a message (not hang), and a restart resumes from the last checkpoint
to the parameters of the uninterrupted run. The host feed that the processes use is also
checked against the device feed inside one process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TESTS, subprocess_env

from jaxrobust.config import load_config, resolve_config
from jaxrobust.distributed import detected_cluster, initialize
from jaxrobust.errors import ConfigError
from jaxrobust.evaluate.restore import restore_model
from jaxrobust.train import train_and_evaluate
from jaxrobust.train.checkpoint import ModelCheckpoints, committed_epochs
from jaxrobust.train.feed import FEEDS, resolve_feed

CONFIG = TESTS / "configs" / "tiny_vae.py"
EPOCHS = 2
RTOL, ATOL = 2e-4, 1e-5
PEER_STOPPED = "stops too. Fix: restart all processes with the same command"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_command(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jaxrobust.cli",
        "train",
        "--config",
        str(CONFIG),
        "--workdir",
        str(workdir),
        f"--config.models.vae.training.num_epochs={EPOCHS}",
        *extra,
    ]


def env_with_devices(count: int) -> dict:
    env = subprocess_env(XLA_FLAGS=f"--xla_force_host_platform_device_count={count}")
    env["JAX_PLATFORMS"] = "cpu"
    return env


def start_processes(workdir: Path, logs: Path, port: int) -> list[subprocess.Popen]:
    """Two `jaxrobust train` processes of 2 CPU devices each, joined through 127.0.0.1:port."""
    procs = []
    for rank in range(2):
        flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
        flags += ["--process-id", str(rank), "--heartbeat-timeout", "10"]
        log = open(logs / f"{workdir.name}.p{rank}.log", "w")  # noqa: SIM115 - closed by the OS
        procs.append(
            subprocess.Popen(
                train_command(workdir, *flags),
                env=env_with_devices(2),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return procs


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"the processes did not finish within {timeout} s (hung?)")
    return codes


def log_text(logs: Path, workdir: Path, rank: int) -> str:
    return (logs / f"{workdir.name}.p{rank}.log").read_text()


def variables(workdir: Path):
    return restore_model(workdir, "vae", "last").variables


def assert_close(a, b, what: str) -> None:
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=RTOL, atol=ATOL, err_msg=what)


def metric_rows(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_data_root):
    """Workdirs of the same config trained as 2 processes x 2 devices, 1 x 4 and 1 x 1."""
    os.environ["JAXROBUST_DATA"] = str(synthetic_data_root)
    root = tmp_path_factory.mktemp("multiprocess")
    two = root / "two_by_two"
    procs = start_processes(two, root, free_port())
    codes = wait_all(procs, timeout=600)
    assert codes == [0, 0], log_text(root, two, 0)[-3000:] + log_text(root, two, 1)[-3000:]
    singles = {}
    for count in (4, 1):
        workdir = root / f"one_by_{count}"
        done = subprocess.run(
            train_command(workdir), env=env_with_devices(count), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        singles[count] = workdir
    return {"root": root, "two": two, "four": singles[4], "one": singles[1]}


@pytest.mark.slow
def test_two_processes_train_the_parameters_of_one(runs):
    two = variables(runs["two"])
    assert_close(two, variables(runs["four"]), "2 processes x 2 devices vs 1 process x 4")
    assert_close(two, variables(runs["one"]), "2 processes x 2 devices vs 1 process x 1")
    # The processes really were two, of 2 devices each, on one mesh of 4.
    rows = metric_rows(runs["two"])
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))  # process 0 logs, once
    assert {r["parallelism"] for r in rows} == {"data over 4 device(s) in 2 processes"}
    assert {r["parallelism"] for r in metric_rows(runs["four"])} == {"data over 4 device(s)"}
    # Progress and the summary come from process 0 only.
    p0, p1 = (log_text(runs["root"], runs["two"], rank) for rank in (0, 1))
    assert f"vae: epoch {EPOCHS}" in p0 and "vae: epoch" not in p1


@pytest.mark.slow
def test_multiprocess_checkpoint_evaluates_in_one_process(runs):
    # verify(): every item read back onto this one device matches the digests recorded by the
    # two processes at save time, bit for bit.
    checkpoints = ModelCheckpoints(runs["two"] / "checkpoints" / "vae")
    try:
        assert checkpoints.verify("last") == EPOCHS
    finally:
        checkpoints.close()
    results = {}
    for name in ("two", "four"):
        done = subprocess.run(
            [sys.executable, "-m", "jaxrobust.cli", "evaluate", "--workdir", str(runs[name])],
            env=env_with_devices(1),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results[name] = json.loads((runs[name] / "results.json").read_text())
    figures = {name: _numbers(r.get("ood", r)) for name, r in results.items()}
    assert figures["two"] and figures["two"].keys() == figures["four"].keys()
    for key, value in figures["two"].items():
        assert value == pytest.approx(figures["four"][key], rel=1e-3, abs=1e-4), key


@pytest.mark.slow
def test_killed_process_stops_the_other_and_a_restart_resumes(runs):
    root, workdir = runs["root"], runs["root"] / "killed"
    procs = start_processes(workdir, root, free_port())
    first = workdir / "checkpoints" / "vae"
    deadline = time.monotonic() + 300
    while not committed_epochs(first) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            pytest.fail(
                "a process ended before the first checkpoint: " + log_text(root, workdir, 0)
            )
        time.sleep(0.2)
    assert committed_epochs(first), "no checkpoint within 300 s"
    procs[1].send_signal(signal.SIGKILL)
    tic = time.monotonic()
    try:
        code = procs[0].wait(timeout=60)  # heartbeat timeout 10 s: a hang would last forever
    except subprocess.TimeoutExpired:
        procs[0].kill()
        pytest.fail("the surviving process hung after its peer was killed")
    waited = time.monotonic() - tic
    survivor = log_text(root, workdir, 0)
    assert code == 1, survivor[-3000:]
    assert PEER_STOPPED in survivor and "resumes from" in survivor, survivor[-3000:]
    assert waited < 30
    kept = max(committed_epochs(first))

    restarted = start_processes(workdir, root, free_port())
    assert wait_all(restarted, timeout=600) == [0, 0], log_text(root, workdir, 0)[-3000:]
    rows = metric_rows(workdir)
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    resumed = [r for r in rows if "resumed_from_epoch" in r]
    assert resumed and resumed[0]["resumed_from_epoch"] == kept
    # Deterministic in seed, name and epoch: the uninterrupted 2-process run's parameters.
    assert_close(variables(workdir), variables(runs["two"]), "resumed vs uninterrupted")


def _numbers(tree, prefix: str = "") -> dict[str, float]:
    """Every number of a results.json subtree, by its path (timings left out)."""
    out = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            if "seconds" not in str(key) and "time" not in str(key):
                out.update(_numbers(value, f"{prefix}{key}/"))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out.update(_numbers(value, f"{prefix}{i}/"))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        out[prefix.rstrip("/")] = float(tree)
    return out


# ------------------------------------------------------------------ in one process, fast


@pytest.mark.parametrize("num_runs", [2])  # None: the 2-process test compares host with device
def test_host_feed_trains_like_device_feed(tmp_path, synthetic_data, num_runs):
    """The batches each process builds on the host are the ones the jitted epoch gathers."""
    results = {}
    for feed in ("device", "host"):
        config = load_config(CONFIG)
        config.data.feed = feed
        config.models.vae.training.num_epochs = 1
        if num_runs:
            config.models.vae.training.num_runs = num_runs
        train_and_evaluate(config, tmp_path / feed)
        results[feed] = restore_model(tmp_path / feed, "vae", "last").variables
    assert_close(results["host"], results["device"], f"host vs device feed, num_runs={num_runs}")


def test_feed_names_are_checked(tiny_config):
    from jaxrobust.config.sections import DATA

    assert DATA["feed"].choices == FEEDS  # the config schema offers what train.feed knows
    assert resolve_feed("auto", 1) == "device" and resolve_feed("auto", 3) == "host"
    tiny_config.data.feed = "disk"
    with pytest.raises(ConfigError, match="feed"):
        resolve_config(tiny_config)
    with pytest.raises(ValueError, match="feed must be one of"):
        resolve_feed("disk", 1)


def test_process_flags_are_checked_before_joining():
    with pytest.raises(ConfigError, match="go together"):
        initialize(None, 2, None)
    with pytest.raises(ConfigError, match="--process-id must be in 0..1"):
        initialize("127.0.0.1:1234", 2, 2)
    with pytest.raises(ConfigError, match="host:port"):
        initialize("localhost", 2, 0)
    assert initialize("127.0.0.1:1234", 1, 0) == 1  # one process: nothing to join


def test_cluster_environments_are_recognised():
    assert detected_cluster({}) is None
    assert detected_cluster({"SLURM_NTASKS": "8", "SLURM_PROCID": "3"}) == "slurm"
    assert detected_cluster({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None
    assert detected_cluster({"OMPI_COMM_WORLD_SIZE": "2"}) == "mpi"
    assert detected_cluster({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "4"}) == "jax"
    assert detected_cluster({"TPU_WORKER_HOSTNAMES": "a,b"}) == "tpu"


def test_cli_refuses_incomplete_process_flags(tmp_path, synthetic_data):
    done = subprocess.run(
        [*train_command(tmp_path / "w"), "--num-processes", "2"],
        env=env_with_devices(1),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "--coordinator, --num-processes and --process-id go together" in done.stderr
    assert not (tmp_path / "w").exists()  # refused before anything was written

"""Fixtures for workflow tests: simulated L1 scenes and a real dask cluster on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def l1_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small simulated KazEOSat-2 scenes in a static catalog."""
    from eo_pipeline.simulation.simulator import simulate

    root = tmp_path_factory.mktemp("l1")
    simulate("kazeosat2", root, scenes=4, size=192, seed=3)
    return root / "catalog.json"


def start_runner(workflow: Path, address: str) -> subprocess.Popen[bytes]:
    """``eo-pipeline run WORKFLOW --scheduler ADDRESS`` in its own process group (to be
    SIGKILLed by fault tests), output discarded."""
    repo = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        [sys.executable, "-m", "eo_pipeline.cli", "run", str(workflow), "--scheduler", address],
        env={**os.environ, "PYTHONPATH": str(repo)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]


def _wait_workers(address: str, n: int, timeout: float = 60.0) -> None:
    from distributed import Client

    with Client(address, timeout=20) as client:
        client.wait_for_workers(n, timeout=timeout)


@pytest.fixture()
def dask_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    bindir = Path(sys.executable).parent
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}
    log = open(tmp_path / "cluster.log", "wb")
    sched = subprocess.Popen(
        [
            str(bindir / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            ":0",
            "--no-show",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    workers = [
        subprocess.Popen(
            [
                str(bindir / "dask"),
                "worker",
                address,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-nanny",
                "--dashboard-address",
                ":0",
                "--local-directory",
                str(tmp_path / f"w{i}"),
                "--name",
                f"w{i}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        for i in range(2)
    ]
    procs = [sched, *workers]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _wait_workers(address, 2, timeout=max(1.0, deadline - time.monotonic()))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield Cluster(address, sched, workers)
    finally:  # workers first (a closing scheduler makes them retry), 2 s in all, then KILL
        for p in [*workers, sched]:
            if p.poll() is None:
                with __import__("contextlib").suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        until = time.monotonic() + 2
        for p in procs:
            try:
                p.wait(timeout=max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                with __import__("contextlib").suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        log.close()

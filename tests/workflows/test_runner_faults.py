"""The runner under attack (issue #16): concurrent runs into one output, refused with the holder.

The audit's attack: two `eo-pipeline run` of one workflow into one output computed every unit
twice, one's start-up clean-up deleted the other's in-flight `.part` file and the manifest
recorded one run. Now the second run is refused at once, naming the first's pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pystac
import pytest

from eo_pipeline.errors import BusyError
from eo_pipeline.lockfile import exclusive, holder
from eo_pipeline.workflows.runner import LOCK, run
from eo_pipeline.workflows.spec import parse_workflow

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = """\
name: t-faults
inputs: {{catalog: {catalog}, ids: [{ids}]}}
steps:
  - calibrate: {{to: toa_reflectance}}
  - indices: {{names: [NDVI]}}
output: {{catalog: {out}, quicklook: false}}
resources: {{chunk_size: 128, retries: 0, workers: 1}}
"""


def _first_ids(catalog: Path, n: int) -> list[str]:
    return sorted(i.id for i in pystac.Catalog.from_file(str(catalog)).get_items(recursive=True))[
        :n
    ]


def _workflow_file(tmp_path: Path, catalog: Path, out: Path, n: int = 1) -> Path:
    f = tmp_path / "wf.yaml"
    f.write_text(WORKFLOW.format(catalog=catalog, out=out, ids=", ".join(_first_ids(catalog, n))))
    return f


def test_run_refused_while_another_holds_the_output(l1_catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    wf = parse_workflow(_workflow_file(tmp_path, l1_catalog, out).read_text(), "wf.yaml")
    with exclusive(out / LOCK, "test"):
        (out / ".x.tif.123.part.tif").write_bytes(b"in flight")  # the holder's temporary
        with pytest.raises(BusyError, match=rf"being written by pid {os.getpid()} on .* since"):
            run(wf, verbose=False)
        assert (out / ".x.tif.123.part.tif").exists()  # not cleaned away from under the holder
        assert not (out / "manifest.json").exists()


@pytest.mark.slow
def test_two_runs_at_once_one_refused_one_complete(l1_catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    wf_file = _workflow_file(tmp_path, l1_catalog, out)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        [sys.executable, "-m", "eo_pipeline.cli", "run", str(wf_file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while holder(out / LOCK).get("pid") != first.pid and time.monotonic() < deadline:
        assert first.poll() is None, first.stdout.read()  # type: ignore[union-attr]
        time.sleep(0.05)
    second = subprocess.run(
        [sys.executable, "-m", "eo_pipeline.cli", "run", str(wf_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode != 0
    assert f"held by pid {first.pid}" in second.stderr or f"by pid {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.wait(timeout=300) == 0, first.stdout.read()  # type: ignore[union-attr]
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["runs"]) == 1 and len(manifest["runs"][0]["done"]) == 1
    assert not list(out.rglob(".*.part*"))


@pytest.mark.server
@pytest.mark.slow
def test_orphans_of_a_killed_runner_finish_nothing(  # type: ignore[no-untyped-def]
    l1_catalog: Path, tmp_path: Path, dask_cluster
) -> None:
    """Issue #16 item 11: the runner is SIGKILLed while a unit writes its products on an
    external cluster. The orphaned task runs on (a Python call cannot be interrupted) but
    must not finish its unit (no manifest will list it); the next run completes everything."""
    import signal

    from eo_pipeline.catalogs.checksum import file_checksum
    from eo_pipeline.workflows.completion import RECORD
    from eo_pipeline.workflows.spec import load_workflow

    out = tmp_path / "out"
    wf_file = _workflow_file(tmp_path, l1_catalog, out, n=3)
    from tests.workflows.conftest import start_runner

    runner = start_runner(wf_file, dask_cluster.address)
    deadline = time.monotonic() + 120
    writing: list[Path] = []
    while not writing:  # a unit past its last cancellation check, writing its products
        assert runner.poll() is None and time.monotonic() < deadline
        writing = list(out.glob(".unit-*.stage/items/*/*"))
        time.sleep(0.005)
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    killed = time.time_ns()
    orphan = writing[0].parent.name
    while list(out.glob(".unit-*.stage")):  # the orphans run on, then discard their stage
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not (out / "items" / orphan / RECORD).exists(), "an orphan finished its unit"
    late = [r for r in out.glob(f"items/*/{RECORD}") if r.stat().st_mtime_ns > killed]
    assert not late, f"units finished after the runner died: {late}"

    resumed = run(load_workflow(wf_file), scheduler=dask_cluster.address, verbose=False)
    assert resumed.ok and len(resumed.done) + len(resumed.skipped) == 3
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["units"].values():  # what the manifest says is what is on disk
        for o in entry["outputs"]:
            assert (out / o["path"]).stat().st_mtime_ns == o["mtime_ns"]
            assert file_checksum(out / o["path"]) == o["checksum"]
    assert not list(out.glob(".unit-*")) and not list(out.rglob(".*.part*"))


@pytest.mark.server
def test_a_new_run_cancels_a_dead_runs_tasks_left_on_the_scheduler(dask_cluster) -> None:  # type: ignore[no-untyped-def]
    """The scheduler drops a dead client's tasks once it notices; until then (a runner frozen
    or cut off, not yet timed out) the next run cancels them by the dead run's id."""
    from distributed import Client

    from eo_pipeline.workflows.runner import _cancel_stale

    previous = "0123456789abcdef0123"
    with Client(dask_cluster.address, timeout=20) as dead, Client(dask_cluster.address) as new:
        stale = dead.submit(time.sleep, 60, key=f"unit-wf-scene-{previous[:12]}")
        other = dead.submit(time.sleep, 0.1, key="unit-wf-scene-ffffffffffff")
        deadline = time.monotonic() + 20
        while stale.key not in {k for keys in dead.processing().values() for k in keys}:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _cancel_stale(new, previous) == 1
        while stale.status != "cancelled":
            assert time.monotonic() < deadline, stale.status
            time.sleep(0.05)
        assert other.result(timeout=20) is None  # another run's task is left alone

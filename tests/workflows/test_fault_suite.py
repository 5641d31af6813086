"""Fault suite (issue #16): kill workers and the runner at random points, compare with a clean run.

A clean run writes the reference products. The faulty run is an `eo-pipeline run` process on
an external cluster; at random moments (seeded: EO_PIPELINE_FAULT_SEED reproduces a failure)
one worker is SIGKILLed and then the runner itself. A resumed run must then give products
byte-identical to the clean run's, a manifest listing every unit once with the same outputs,
nothing half-written, no empty item folders, and leave the files of units that had already
finished untouched (a finished unit is final, whoever finished it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pystac
import pytest

from eo_pipeline.workflows.completion import RECORD
from eo_pipeline.workflows.runner import run
from eo_pipeline.workflows.spec import load_workflow
from tests.workflows.conftest import start_runner

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = """\
name: t-fault
inputs: {{catalog: {catalog}, ids: [{ids}]}}
steps:
  - calibrate: {{to: toa_reflectance}}
  - mask: {{}}
  - indices: {{names: [NDVI, NDWI]}}
output: {{catalog: {out}, quicklook: false}}
resources: {{chunk_size: 128, retries: 2}}
"""


def _workflow(tmp_path: Path, catalog: Path, out: Path, name: str) -> Path:
    ids = sorted(i.id for i in pystac.Catalog.from_file(str(catalog)).get_items(recursive=True))
    f = tmp_path / f"{name}.yaml"
    f.write_text(WORKFLOW.format(catalog=catalog, out=out, ids=", ".join(ids[:3])))
    return f


def _outputs(out: Path) -> dict[str, dict[str, str]]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        key: {o["key"]: o["checksum"] for o in entry["outputs"]}
        for key, entry in manifest["units"].items()
        if entry["status"] == "done"
    }


def _done_units(out: Path) -> dict[Path, int]:
    """Files of units whose completion record exists -> their mtimes."""
    files: dict[Path, int] = {}
    for record in (out / "items").glob(f"*/{RECORD}") if (out / "items").exists() else []:
        for f in json.loads(record.read_text())["result"]["files"]:
            files[out / f["path"]] = (out / f["path"]).stat().st_mtime_ns
    return files


@pytest.mark.server
@pytest.mark.slow
def test_killed_worker_and_runner_resume_to_the_clean_result(  # type: ignore[no-untyped-def]
    l1_catalog: Path, tmp_path: Path, dask_cluster
) -> None:
    seed = int(os.environ.get("EO_PIPELINE_FAULT_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    clean = tmp_path / "clean"
    report = run(load_workflow(_workflow(tmp_path, l1_catalog, clean, "clean")),
                 scheduler=dask_cluster.address, verbose=False)  # fmt: skip
    assert report.ok and len(report.done) == 3
    reference = _outputs(clean)

    faulty = tmp_path / "faulty"
    wf_file = _workflow(tmp_path, l1_catalog, faulty, "faulty")
    runner = start_runner(wf_file, dask_cluster.address)
    started = time.monotonic()
    while not (faulty / "items").exists() and time.monotonic() - started < 120:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 2.0))
    victim = dask_cluster.workers[rng.randrange(2)]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    time.sleep(rng.uniform(0.0, 3.0))
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    time.sleep(3.0)  # orphaned tasks, if any, run on: they may finish units no manifest lists
    finished = _done_units(faulty)

    resumed = run(load_workflow(wf_file), scheduler=dask_cluster.address, verbose=False)
    assert resumed.ok, (seed, resumed.failed)
    assert _outputs(faulty) == reference, f"seed {seed}: products differ from the clean run"
    assert not list(faulty.rglob(".*.part*")), seed
    assert all(any(d.iterdir()) for d in (faulty / "items").iterdir()), seed
    for path, mtime in finished.items():  # a finished unit is final: not rewritten on resume
        assert path.stat().st_mtime_ns == mtime, (seed, path)
    manifest = json.loads((faulty / "manifest.json").read_text())
    assert sorted(manifest["units"]) == sorted(reference)

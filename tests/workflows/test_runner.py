"""The runner on real dask clusters: products, resume, failures, killed workers, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.catalogs.validation import validate
from eo_pipeline.errors import ClusterError, WorkflowError, WriteError
from eo_pipeline.workflows.runner import run
from eo_pipeline.workflows.spec import parse_workflow

WORKFLOW = """\
name: t-indices
inputs: {{catalog: {catalog}}}
steps:
  - calibrate: {{to: toa_reflectance}}
  - mask: {{}}
  - indices: {{names: [NDVI, NDWI]}}
output: {{catalog: {out}, quicklook: {quicklook}}}
resources: {{chunk_size: 128, retries: 1}}
"""


def _wf(catalog: Path, out: Path, quicklook: bool = False, **fmt: str):  # type: ignore[no-untyped-def]
    text = WORKFLOW.format(catalog=catalog, out=out, quicklook=str(quicklook).lower())
    for old, new in fmt.items():
        text = text.replace(old, new)
    return parse_workflow(text, "test.yaml")


def _check_products(out: Path, n_units: int) -> dict[str, dict]:
    manifest = json.loads((out / "manifest.json").read_text())
    done = {k: v for k, v in manifest["units"].items() if v["status"] == "done"}
    assert len(done) == n_units
    item_dirs = sorted(p for p in (out / "items").iterdir())
    assert len(item_dirs) == n_units  # nothing duplicated, nothing lost
    assert not list(out.rglob(".*.part*"))  # nothing half-written
    for entry in done.values():
        for o in entry["outputs"]:
            path = out / o["path"]
            assert file_checksum(path) == o["checksum"]
            if path.suffix == ".tif":
                assert cog_validate(str(path))[0]
    validate(out / "catalog.json")
    return done


@pytest.mark.server
@pytest.mark.slow
def test_run_on_real_cluster_and_resume(l1_catalog: Path, tmp_path: Path, dask_cluster) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "products"
    wf = _wf(l1_catalog, out, quicklook=True)
    report = run(wf, scheduler=dask_cluster.address, verbose=False)
    assert report.ok and len(report.done) == 4 and not report.skipped
    done = _check_products(out, 4)
    # NDVI product equals NDVI computed from the written reflectance product
    entry = next(iter(done.values()))
    path = {o["key"]: out / o["path"] for o in entry["outputs"]}  # one file per band
    with rasterio.open(path["B3"]) as r3, rasterio.open(path["B5"]) as r5:
        red_dn, nir_dn = r3.read(1), r5.read(1)
    with rasterio.open(path["NDVI"]) as n:
        stored = n.read(1)
        got = np.where(stored == n.nodata, np.nan, stored * np.float32(n.scales[0]))
    red = red_dn.astype(np.float32) * np.float32(1e-4)
    nir = nir_dn.astype(np.float32) * np.float32(1e-4)
    ok = (red_dn != -32768) & (nir_dn != -32768) & (red_dn >= 0) & (nir_dn >= 0)
    expected = (nir - red) / (nir + red)
    # NDVI from the int16 packing (+-0.5e-4) of its inputs: <= 1e-4 / (nir + red), plus the
    # packing of NDVI itself (+-0.5e-4)
    bound = np.float32(1.01e-4) / np.abs(nir + red) + np.float32(0.51e-4)
    assert np.isfinite(got[ok]).all() and (np.abs(got - expected)[ok] <= bound[ok]).all()
    collection = pystac.Collection.from_file(
        str(out / "kazeosat2-l1-t-indices" / "collection.json")
    )
    items = list(collection.get_items())
    assert {"B3", "B5", "NDVI", "NDWI", "mask", "quicklook", "thumbnail", "NDVI_map"} <= set(
        items[0].assets
    )
    assert any(link.rel == "derived_from" for link in items[0].links)

    # second run: everything up to date
    again = run(wf, scheduler=dask_cluster.address, verbose=False)
    assert not again.done and len(again.skipped) == 4
    # a damaged product is redone, the rest skipped
    victim = out / entry["outputs"][0]["path"]
    victim.write_bytes(b"broken")
    third = run(wf, scheduler=dask_cluster.address, verbose=False)
    assert len(third.done) == 1 and len(third.skipped) == 3
    _check_products(out, 4)
    # same size, other bytes (mtime changes): caught by re-hashing
    size = victim.stat().st_size
    victim.write_bytes(b"\0" * size)
    again = run(wf, scheduler=dask_cluster.address, verbose=False)
    assert len(again.done) == 1 and len(again.skipped) == 3
    _check_products(out, 4)
    # changed parameters redo everything
    changed = _wf(l1_catalog, out, **{"[NDVI, NDWI]": "[NDVI, EVI]"})
    fourth = run(changed, scheduler=dask_cluster.address, verbose=False)
    assert len(fourth.done) == 4


@pytest.mark.server
@pytest.mark.slow
def test_killed_worker_run_still_completes(l1_catalog: Path, tmp_path: Path, dask_cluster) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "products"
    wf = _wf(l1_catalog, out)
    result: dict[str, object] = {}

    def target() -> None:
        result["report"] = run(wf, scheduler=dask_cluster.address, verbose=False)

    thread = threading.Thread(target=target)
    thread.start()
    victim = dask_cluster.workers[0]
    # kill a worker in the middle of the run: once it has started but before all units are done
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        manifest = out / "manifest.json"
        started = (out / "items").exists() and any((out / "items").iterdir())
        if started and (
            not manifest.exists() or len(json.loads(manifest.read_text())["units"]) < 4
        ):
            break
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    thread.join(timeout=300)
    assert not thread.is_alive()
    report = result["report"]
    assert report.ok, report.failed  # type: ignore[attr-defined]
    _check_products(out, 4)


@pytest.mark.server
@pytest.mark.slow
def test_failing_unit_is_reported_and_others_finish(l1_catalog: Path, tmp_path: Path) -> None:
    # a truncated input COG: that unit fails after its retries, the others complete
    src = l1_catalog.parent
    copy = tmp_path / "l1"
    shutil.copytree(src, copy)
    items = sorted(copy.rglob("kazeosat2_sim_*/*.json"))
    bad = pystac.Item.from_file(str(items[0]))
    band = Path(bad.assets["B3"].get_absolute_href())
    data = band.read_bytes()
    band.unlink()  # break a hard link to the shared fixture before truncating
    band.write_bytes(data[: len(data) // 3])
    out = tmp_path / "products"
    report = run(_wf(copy / "catalog.json", out), verbose=False)
    assert set(report.failed) == {bad.id}
    assert len(report.done) == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["units"][bad.id]["status"] == "failed"
    assert "outputs" not in manifest["units"][bad.id]
    assert len(list((out / "items").iterdir())) >= 3
    assert not list(out.rglob(".*.part*"))


def test_unreachable_scheduler_fails_fast(l1_catalog: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="did not answer"):
        run(_wf(l1_catalog, tmp_path / "o"), scheduler="tcp://127.0.0.1:9", verbose=False)
    assert time.monotonic() - t0 < 30  # "within seconds", generous for a loaded CI machine
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_unwritable_output(l1_catalog: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # even root cannot create a folder inside a file
    with pytest.raises(WriteError, match="not writable"):
        run(_wf(l1_catalog, blocker / "out"), verbose=False)
    assert blocker.read_text() == "not a folder"


def test_dry_run_and_no_items(
    l1_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run(_wf(l1_catalog, tmp_path / "o"), dry_run=True)
    assert len(report.skipped) == 4 and "4 unit(s)" in capsys.readouterr().out
    assert not (tmp_path / "o").exists()
    wf = _wf(l1_catalog, tmp_path / "o", **{"inputs: {": "inputs: {collections: [nope], "})
    with pytest.raises(WorkflowError, match="no input items match"):
        run(wf, dry_run=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"[NDVI, NDWI]": "[NDVI, NBR]"},
            r"test\.yaml:6: indices: 'NBR' is not an index sensor kazeosat2",
        ),
        ({"[NDVI, NDWI]": "[NDVI, NDVY]"}, r"did you mean .*NDVI"),
        (
            {"  - mask: {}": "  - mask: {}\n  - pansharpen: {}"},
            r"test\.yaml:6: pansharpen: sensor kazeosat2 has no pan band",
        ),
        (
            {"names: [NDVI, NDWI]": "names: [NDVI], formulas: {BAD: '(N - R'}"},
            r"test\.yaml:6: indices\.formulas\.BAD: .*line 1",
        ),
    ],
)
def test_unknown_index_or_impossible_step_fails_before_any_work(
    l1_catalog: Path, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    with pytest.raises(WorkflowError, match=message):
        run(_wf(l1_catalog, tmp_path / "o", **change), dry_run=True)
    assert not (tmp_path / "o").exists()

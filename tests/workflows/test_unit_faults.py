"""One unit under bad inputs and a full disk (issue #16 items 5 and 8), run without a cluster.

The audit: a truncated COG read in a run failed as "writing the COG failed" (it was a read)
and left an empty item folder; a run into a full disk said "Write failed. See previous
exception" (or a raw TypeError) and left empty item folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from eo_pipeline.errors import InputDataError, WriteError
from eo_pipeline.io.writing import write
from eo_pipeline.workflows.plan import plan
from eo_pipeline.workflows.process import process_unit
from eo_pipeline.workflows.spec import parse_workflow
from tests.disk import small_disk

WORKFLOW = """\
name: t-unit
inputs: {{catalog: {catalog}, ids: [{ids}]}}
steps:
  - calibrate: {{to: toa_reflectance}}
  - indices: {{names: [NDVI]}}
output: {{catalog: {out}, quicklook: false}}
resources: {{chunk_size: 128, retries: 0}}
"""


def _copy(l1_catalog: Path, tmp_path: Path) -> tuple[Path, pystac.Item]:
    copy = tmp_path / "l1"
    shutil.copytree(l1_catalog.parent, copy, copy_function=shutil.copyfile)
    items = sorted(
        pystac.Catalog.from_file(str(copy / "catalog.json")).get_items(recursive=True),
        key=lambda i: i.id,
    )
    return copy, items[0]


def _unit(catalog: Path, item: pystac.Item, out: Path):  # type: ignore[no-untyped-def]
    wf = parse_workflow(WORKFLOW.format(catalog=catalog, ids=item.id, out=out), "t.yaml")
    (unit,) = plan(wf).units
    return unit, wf


def test_truncated_input_names_the_file_and_leaves_no_folder(
    l1_catalog: Path, tmp_path: Path
) -> None:
    copy, item = _copy(l1_catalog, tmp_path)
    band = Path(item.assets["B3"].get_absolute_href())
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 2])
    out = tmp_path / "out"
    unit, wf = _unit(copy / "catalog.json", item, out)
    with pytest.raises(InputDataError, match=rf"{band.name}.*incomplete or corrupt"):
        process_unit(unit, wf, str(out))
    assert not (out / "items").exists() or not list((out / "items").iterdir())


def test_corrupt_tile_is_a_read_error_not_a_write_error(l1_catalog: Path, tmp_path: Path) -> None:
    copy, item = _copy(l1_catalog, tmp_path)
    band = Path(item.assets["B3"].get_absolute_href())
    with rasterio.open(band) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
        size = int(src.get_tag_item("BLOCK_SIZE_0_0", "TIFF", bidx=1))
    data = bytearray(band.read_bytes())
    data[offset : offset + size] = b"\xff" * size  # the first tile's compressed bytes: garbage
    band.write_bytes(bytes(data))
    out = tmp_path / "out"
    unit, wf = _unit(copy / "catalog.json", item, out)
    with pytest.raises(
        InputDataError, match=rf"an input is corrupt: item .* asset .B3. \(.*{band.name}\)"
    ):
        process_unit(unit, wf, str(out))
    assert not (out / "items").exists() or not list((out / "items").iterdir())
    assert not list(out.rglob(".*.part*"))


def test_full_disk_names_enospc_and_the_folder(l1_catalog: Path, tmp_path: Path) -> None:
    item = sorted(
        pystac.Catalog.from_file(str(l1_catalog)).get_items(recursive=True), key=lambda i: i.id
    )[0]
    with small_disk(tmp_path / "disk", "200k") as disk:
        out = disk / "out"
        unit, wf = _unit(l1_catalog, item, out)
        with pytest.raises(WriteError, match=rf"disk is full \(ENOSPC\): no space left in {out}"):
            process_unit(unit, wf, str(out))
        assert not (out / "items").exists() or not list((out / "items").iterdir())
        assert not list(out.rglob(".*.part*"))


def test_write_on_a_full_disk(tmp_path: Path) -> None:
    """The audit: eo.write on a full disk raised a raw CPLE_AppDefinedError."""
    grid = GeoBox.from_bbox((400000, 5e6, 406000, 5.006e6), "EPSG:32643", resolution=10)
    noise = np.random.default_rng(0).random((600, 600), dtype=np.float32)
    da = xr.DataArray(noise, coords=xr_coords(grid), dims=("y", "x"), name="v")
    with small_disk(tmp_path / "disk", "300k") as disk:
        with pytest.raises(WriteError, match=rf"ENOSPC.*{disk}"):
            write(da, disk / "v.tif")
        assert list(disk.iterdir()) == []


def test_all_nodata_scene_is_noted(l1_catalog: Path, tmp_path: Path) -> None:
    """The audit: an all-nodata scene ran with rc 0 and all-NaN products without a word."""
    from eo_pipeline.workflows.runner import _record

    copy, item = _copy(l1_catalog, tmp_path)
    for asset in item.assets.values():
        path = Path(asset.get_absolute_href())
        if path.suffix != ".tif" or "data" not in (asset.roles or ()):
            continue
        with rasterio.open(path) as src:
            profile, shape = src.profile, (src.count, src.height, src.width)
        path.unlink()
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.zeros(shape, dtype=profile["dtype"]))  # 0 = nodata DN
    out = tmp_path / "out"
    unit, wf = _unit(copy / "catalog.json", item, out)
    result = process_unit(unit, wf, str(out))
    assert result.notes and "nodata" in result.notes[0]
    manifest: dict = {"units": {}}
    _record(manifest, unit, wf.params_hash(), out, result, None)
    assert manifest["units"][unit.key]["notes"] == list(result.notes)


def _first_unit(l1_catalog: Path, out: Path):  # type: ignore[no-untyped-def]
    item = min(pystac.Catalog.from_file(str(l1_catalog)).get_items(recursive=True),
               key=lambda i: i.id)  # fmt: skip
    return _unit(l1_catalog, item, out)


def test_orphaned_unit_discards_its_products(l1_catalog: Path, tmp_path: Path) -> None:
    """Issue #16 item 11: a task whose run no longer owns the output (a newer run holds the
    lock, or its runner died) finishes nothing: no item folder, no stage left."""
    import subprocess

    from eo_pipeline.errors import WorkflowError
    from eo_pipeline.lockfile import exclusive
    from eo_pipeline.workflows.completion import RECORD, RUN_LOCK

    out = tmp_path / "out"
    unit, wf = _first_unit(l1_catalog, out)
    with exclusive(out / RUN_LOCK, "test", info={"run": "new"}):  # a newer run writes now
        with pytest.raises(WorkflowError, match=r"another run \(new\), not by run old.*discarded"):
            process_unit(unit, wf, str(out), scheduler="sync", run="old")
    assert not (out / "items").exists() and not list(out.glob(".unit-*"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    (out / RUN_LOCK).write_text(  # the lock file a SIGKILLed runner leaves (not held)
        f'{{"run": "old", "pid": {dead.pid}, "host": "{__import__("socket").gethostname()}"}}'
    )
    with pytest.raises(WorkflowError, match=rf"its runner \(pid {dead.pid}\) is dead"):
        process_unit(unit, wf, str(out), scheduler="sync", run="old")
    assert not (out / "items").exists() and not list(out.glob(".unit-*"))
    with exclusive(out / RUN_LOCK, "test", info={"run": "mine"}):  # the owner: committed
        result = process_unit(unit, wf, str(out), scheduler="sync", run="mine")
    folder = out / Path(result.item_path).parent
    assert (folder / RECORD).is_file() and all((out / f.path).is_file() for f in result.files)
    assert not list(out.glob(".unit-*")) and not list((out / "items").glob(".*"))

"""Product items and the product catalog: names, lineage, checksums, schema-valid STAC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import xarray as xr
from rasterio.transform import from_origin

from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.catalogs.store import read_items
from eo_pipeline.catalogs.validation import validate
from eo_pipeline.io.cog import write_cog
from eo_pipeline.workflows.plan import Unit
from eo_pipeline.workflows.products import (
    ProductFile,
    build_product_catalog,
    product_collection_id,
    product_item,
    product_name,
)
from eo_pipeline.workflows.spec import parse_workflow

WF = """\
name: toa-ndvi
inputs: {catalog: in}
steps: [{calibrate: {to: toa_reflectance}}, {indices: {names: [NDVI]}}]
output: {catalog: out}
"""


@pytest.fixture()
def inputs(l1_catalog: Path) -> list[pystac.Item]:
    return list(read_items(l1_catalog))[:2]


def _file(
    root: Path, folder: Path, key: str, dtype: str, bands: list[str], role: str = ""
) -> ProductFile:
    data = np.ones((len(bands), 32, 32), dtype)
    out = write_cog(folder / f"{key}.tif", data, crs=32642, transform=from_origin(5e5, 5e6, 30, 30),
                    nodata=-32768 if dtype == "int16" else None, descriptions=bands)  # fmt: skip
    return ProductFile(
        key=key,
        path=str(out.path.relative_to(root)),
        size=out.size,
        checksum=out.multihash,
        media_type="image/tiff; application=geotiff; profile=cloud-optimized",
        roles=("data", role or key),
        raster={"dtype": dtype, "nodata": -32768 if dtype == "int16" else None,
                "scale": 1e-4 if dtype == "int16" else None, "offset": 0.0, "bands": bands,
                "shape": [32, 32], "transform": [30.0, 0.0, 5e5, 0.0, -30.0, 5e6],
                "crs": "EPSG:32642"},
    )  # fmt: skip


def test_names_and_collection_ids() -> None:
    wf = parse_workflow(WF, "wf.yaml")
    scene = Unit("S1", "kazeosat2-l1", ("a.json",), ("S1",), None, "sig")
    period = Unit(
        "kazeosat2-l1_2024-05", "kazeosat2-l1", ("a",), ("S1",), "2024-05", "sig", "N48E066"
    )
    assert product_name(wf, scene, "NDVI") == "kazeosat2-l1_S1_NDVI"
    assert product_name(wf, period, "NDVI") == "kazeosat2-l1_2024-05_N48E066_NDVI"
    assert product_collection_id("KazEOSat2-L1", wf) == "kazeosat2-l1-toa-ndvi"


def test_item_and_catalog_are_valid_stac_with_lineage(
    tmp_path: Path, inputs: list[pystac.Item]
) -> None:
    wf = parse_workflow(WF, "wf.yaml")
    unit = Unit("two", inputs[0].collection_id or "", tuple(i.get_self_href() or "" for i in inputs),
                tuple(i.id for i in inputs), "2024-05", "sig")  # fmt: skip
    folder = tmp_path / "items" / "two"
    folder.mkdir(parents=True)
    files = [  # one single-band file per reflectance band (#12)
        _file(tmp_path, folder, "B1", "int16", ["B1"], "reflectance"),
        _file(tmp_path, folder, "B2", "int16", ["B2"], "reflectance"),
        _file(tmp_path, folder, "NDVI", "float32", ["NDVI"], "index"),
    ]
    ds = xr.Dataset({"B1": ("x", [1]), "B2": ("x", [1])})
    ds["B1"].attrs["common_name"] = "blue"
    item = product_item("two", unit, wf, inputs, files, ds)
    props = item["properties"]
    assert props["datetime"] is None and props["start_datetime"] <= props["end_datetime"]
    assert "calibrate(to=toa_reflectance) -> indices(names=['NDVI'])" in props["processing:lineage"]
    assert props["processing:level"] == "L1-TOA" and props["proj:code"] == "EPSG:32642"
    assert [link["title"] for link in item["links"]] == [i.id for i in inputs]
    refl = item["assets"]["B1"]  # common name from the sensor file (kazeosat2 B1: blue)
    assert refl["raster:bands"][0]["scale"] == 1e-4 and refl["eo:bands"][0]["common_name"] == "blue"
    assert refl["file:checksum"] == file_checksum(folder / "B1.tif")
    assert refl["proj:epsg"] == 32642 and refl["proj:code"] == "EPSG:32642"
    assert item["collection"] == product_collection_id(unit.collection, wf)
    (folder / "two.json").write_text(json.dumps(item))
    catalog = build_product_catalog(tmp_path, ["items/two/two.json"], wf)
    report = validate(catalog, check_assets=True)
    assert report.counts == {"Catalog": 1, "Collection": 1, "Item": 1}
    assert report.checksums_verified == 3

"""Products as a customer gets them: masked, in range, one asset per band, loadable by
eo.load, odc-stac and stackstac with no options (simulated scenes and the real Landsat L2)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio

import eo_pipeline as eo
from eo_pipeline.errors import InputDataError, WorkflowError
from eo_pipeline.kernels import masks as k
from eo_pipeline.workflows.plan import plan
from eo_pipeline.workflows.process import process_unit
from eo_pipeline.workflows.products import VALID_RANGE_FIELD, build_product_catalog
from eo_pipeline.workflows.spec import load_workflow, parse_workflow

EXCLUDED = k.NODATA | k.CLOUD | k.SHADOW | k.CIRRUS | k.SATURATED


def _run(wf: Any, out: Path) -> Path:
    results = [process_unit(u, wf, str(out), threads=1, scheduler="sync") for u in plan(wf).units]
    return build_product_catalog(out, [r.item_path for r in results], wf)


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in toa-indices workflow on two cloudy simulated KazEOSat-2 scenes."""
    root = tmp_path_factory.mktemp("delivery")
    eo.simulate("kazeosat2", root / "l1", scenes=2, size=160, seed=5, revisit=True)
    wf = load_workflow(
        "toa-indices",
        inputs={"catalog": str(root / "l1" / "catalog.json")},
        output={"catalog": str(root / "out")},
        resources={"chunk_size": 128},
    )
    return _run(wf, root / "out")


def _items(catalog: Path) -> list[pystac.Item]:
    return sorted(
        pystac.Catalog.from_file(str(catalog)).get_items(recursive=True), key=lambda i: i.id
    )


def _read(item: pystac.Item, key: str) -> tuple[np.ndarray, dict[str, Any]]:
    asset = item.assets[key]
    with rasterio.open(asset.get_absolute_href()) as src:
        raw = src.read(1)
    rb = asset.extra_fields["raster:bands"][0]
    value = raw.astype(np.float64)
    if "scale" in rb:
        value = value * rb["scale"] + rb["offset"]
    nodata = rb.get("nodata")
    invalid = np.isnan(value) if nodata in (None, "nan") else raw == nodata
    return np.where(invalid, np.nan, value), rb


def _check_item(item: pystac.Item, bands: list[str], indices: list[str]) -> dict[str, float]:
    """Masked, in range, statistics true, fields complete; returns the masked fraction."""
    mask, _ = _read(item, "mask")
    excluded = (mask.astype(np.uint8) & EXCLUDED) != 0
    doc = json.loads(Path(item.get_self_href()).read_text())  # pystac drops proj:epsg
    for key in bands + indices:
        asset = doc["assets"][key]
        value, rb = _read(item, key)
        assert np.isnan(value[excluded]).all(), f"{item.id} {key}: a masked pixel has a value"
        rng = rb[VALID_RANGE_FIELD]
        finite = value[np.isfinite(value)]
        assert finite.size, f"{item.id} {key}: nothing valid"
        assert rng["minimum"] <= finite.min() and finite.max() <= rng["maximum"], (key, rng)
        stats = rb["statistics"]
        assert stats["minimum"] == pytest.approx(finite.min(), abs=1e-9)
        assert stats["maximum"] == pytest.approx(finite.max(), abs=1e-9)
        assert stats["mean"] == pytest.approx(finite.mean(), rel=1e-9, abs=1e-12)
        assert stats["stddev"] == pytest.approx(finite.std(), rel=1e-6)
        assert stats["valid_percent"] == pytest.approx(100 * finite.size / value.size, abs=1e-4)
        assert rb["data_type"] == "int16" and rb["scale"] == 1e-4 and rb["offset"] == 0.0
        assert asset["proj:code"] == f"EPSG:{asset['proj:epsg']}"
        assert asset["proj:shape"] == list(value.shape) and len(asset["proj:transform"]) == 6
    for key in bands:
        (eo_band,) = item.assets[key].extra_fields["eo:bands"]
        assert eo_band["name"] == key and eo_band["common_name"]
    return {"masked": float(excluded.mean())}


def test_products_masked_in_range_one_asset_per_band(products: Path) -> None:
    from eo_pipeline.catalogs.validation import validate

    sensor = eo.sensors.get("kazeosat2")
    for item in _items(products):
        assert {"B1", "B2", "B3", "B4", "B5", "mask"} <= set(item.assets)
        assert "reflectance" not in item.assets
        out = _check_item(item, list(sensor.band_ids), ["NDVI", "NDWI", "EVI", "SAVI", "GNDVI"])
        assert 0.05 < out["masked"] < 0.95, "the simulated scenes have clouds and clear land"
        ndvi = item.assets["NDVI"].extra_fields["raster:bands"][0][VALID_RANGE_FIELD]
        assert (ndvi["minimum"], ndvi["maximum"], ndvi["how"]) == (-1.0, 1.0, "by construction")
    raw = json.loads(Path(_items(products)[0].get_self_href()).read_text())
    assert raw["assets"]["B3"]["proj:epsg"] == 32642  # in the JSON, for stackstac
    validate(products, check_assets=True)


def test_every_loader_reads_products_without_options(products: Path) -> None:
    import odc.stac
    import stackstac

    items = _items(products)
    ds = eo.load(products)
    assert list(ds.data_vars) == ["B1", "B2", "B3", "B4", "B5"]
    assert all(ds[v].dtype == np.float32 and ds[v].attrs["units"] == "1" for v in ds.data_vars)
    for t, item in enumerate(items):
        want, _ = _read(item, "B3")
        got = ds["B3"].isel(time=t).values
        np.testing.assert_allclose(got, want, atol=1e-7, equal_nan=True)
    # round trip: what was written (calibrated, masked) within half the 1e-4 step
    l1 = eo.load(products.parent.parent / "l1" / "catalog.json")
    refl = eo.calibrate(l1, to="toa_reflectance")
    written = ds["B3"].values
    truth = refl["B3"].values
    both = np.isfinite(written)
    assert both.mean() > 0.05
    assert np.abs(written[both] - truth[both]).max() <= 0.5e-4 + 1e-7
    odc = odc.stac.load(items, chunks={})
    assert {"B1", "B5", "NDVI", "mask"} <= set(odc.data_vars)
    raw, _ = _read(items[0], "NDVI")
    stored = odc["NDVI"].isel(time=0).values
    np.testing.assert_allclose(
        np.where(stored == -32768, np.nan, stored * 1e-4), raw, atol=1e-9, equal_nan=True
    )
    dicts = []  # as pystac-client's items_as_dicts() gives them: JSON, absolute hrefs
    for item in items:
        d = json.loads(Path(item.get_self_href()).read_text())
        folder = os.path.dirname(item.get_self_href())
        for a in d["assets"].values():
            a["href"] = os.path.join(folder, a["href"])
        dicts.append(d)
    st = stackstac.stack(dicts, assets=["B3", "NDVI"])
    np.testing.assert_allclose(st.sel(band="B3").values, ds["B3"].values, atol=1e-6, equal_nan=True)
    # a product catalog loaded back is indexed and composited again
    ndvi = eo.compute_indices(ds, ["NDVI"])["NDVI"].values
    sold, _ = _read(items[0], "NDVI")
    np.testing.assert_allclose(ndvi[0], sold, atol=2e-3, equal_nan=True)
    median = eo.composite(ds, "median").compute()
    assert np.isfinite(median["B5"].values).mean() > np.isfinite(ds["B5"].values[0]).mean()


def test_mask_exclude_chooses_bits_and_bad_input_is_refused(products: Path, tmp_path: Path) -> None:
    l1 = products.parent.parent / "l1" / "catalog.json"
    text = f"""\
name: nomask
inputs: {{catalog: {l1}}}
steps:
  - calibrate: {{}}
  - mask: {{exclude: []}}
  - indices: {{names: [NDVI]}}
output: {{catalog: {tmp_path / "out"}, quicklook: false, indices: float32}}
"""
    wf = parse_workflow(text, "nomask.yaml")
    (first, *_) = plan(wf).units
    result = process_unit(first, wf, str(tmp_path / "out"), threads=1, scheduler="sync")
    paths = {f.key: tmp_path / "out" / f.path for f in result.files}
    with rasterio.open(paths["mask"]) as m, rasterio.open(paths["B3"]) as b:
        cloud = (m.read(1) & k.CLOUD) != 0
        assert cloud.any() and (b.read(1)[cloud] != -32768).all()  # clouds kept when asked
    with rasterio.open(paths["NDVI"]) as src:
        assert src.dtypes[0] == "float32"
    for bad, match in (
        (text.replace("indices: float32", "indices: int8"), "unknown encoding 'int8'"),
        (text.replace("exclude: []", "exclude: [clouds]"), "unknown mask flag 'clouds'"),
    ):
        with pytest.raises(WorkflowError, match=match):
            parse_workflow(bad, "bad.yaml")
    # a product catalog with a missing band asset, or a scale without an offset
    copy = tmp_path / "copy"
    shutil.copytree(products.parent, copy)
    item_file = next((copy / "items").glob("*/*toa-indices.json"))
    doc = json.loads(item_file.read_text())
    del doc["assets"]["B2"]
    item_file.write_text(json.dumps(doc))
    with pytest.raises(InputDataError, match="has no asset for band 'B2'"):
        eo.load(copy / "catalog.json")
    doc = json.loads(item_file.read_text())
    del doc["assets"]["B3"]["raster:bands"][0]["offset"]
    item_file.write_text(json.dumps(doc))
    with pytest.raises(InputDataError, match="states scale but no offset"):
        eo.load(copy / "catalog.json", bands=["B3"])


@pytest.mark.realdata
@pytest.mark.slow
def test_real_landsat_l2_products(landsat_dir: Path, tmp_path: Path) -> None:
    """sr-indices on the real Landsat 8 C2 L2 scene: USGS QA clouds masked, negative SR
    flagged, every index within its documented range, loaders agree."""
    from eo_pipeline.io.ingestion import ingest

    ingest(landsat_dir, tmp_path / "catalog")
    wf = load_workflow(
        "sr-indices",
        inputs={"catalog": str(tmp_path / "catalog" / "catalog.json")},
        output={"catalog": str(tmp_path / "out"), "quicklook": False},
    )
    catalog = _run(wf, tmp_path / "out")
    (item,) = _items(catalog)
    bands = ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]
    indices = ["NDVI", "NDWI", "EVI", "SAVI", "NBR", "NDMI"]
    out = _check_item(item, bands, indices)
    qa = rasterio.open(next(landsat_dir.glob("*QA_PIXEL.TIF"))).read(1)
    cloud = ((qa >> 3) & 1).astype(bool) & ~(qa & 1).astype(bool)
    ndvi, _ = _read(item, "NDVI")
    assert cloud.mean() > 0.3 and np.isnan(ndvi[cloud]).all()
    assert out["masked"] >= cloud.mean()
    mask, _ = _read(item, "mask")
    sr = []
    for b in bands:
        with rasterio.open(next(landsat_dir.glob(f"*SR_{b}.TIF"))) as src:
            dn = src.read(1).astype(np.float64)
        sr.append(np.where(dn == 0, np.nan, dn * 2.75e-5 - 0.2))
    # 651 pixels below -0.01 in some band (1380 below 0; bands partly fill are nodata)
    flags = mask.astype(np.uint8)
    outside = np.any([(v < -0.01) | (v > 1.6) for v in sr], axis=0) & (flags != k.NODATA)
    assert outside.sum() > 500, "the real scene has negative surface reflectance"
    assert ((flags[outside] & k.SATURATED) != 0).all()
    assert not (flags[outside] & k.CLEAR).any()
    ds = eo.load(catalog)
    assert list(ds.data_vars) == bands and ds["B4"].dtype == np.float32
    odc = __import__("odc.stac").stac.load([item], bands=["B4"], chunks={})
    assert odc["B4"].dtype == np.int16

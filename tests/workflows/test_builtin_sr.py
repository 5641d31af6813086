"""The built-in sr-indices workflow on the real Landsat 8 Collection 2 Level-2 scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from eo_pipeline.io.ingestion import ingest
from eo_pipeline.workflows.plan import plan
from eo_pipeline.workflows.process import process_unit
from eo_pipeline.workflows.spec import load_workflow
from tests.conftest import LANDSAT_ID

pytestmark = pytest.mark.realdata


def test_sr_indices_on_the_real_landsat_l2_scene(landsat_dir: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ingest(landsat_dir, catalog)
    wf = load_workflow(
        "sr-indices",
        inputs={"catalog": str(catalog / "catalog.json")},
        output={"catalog": str(tmp_path / "out"), "quicklook": False},
    )
    (unit,) = plan(wf).units
    assert unit.item_ids == (LANDSAT_ID,)
    result = process_unit(unit, wf, str(tmp_path / "out"), threads=1, scheduler="sync")
    paths = {f.key: tmp_path / "out" / f.path for f in result.files}
    assert {"B4", "B5", "NDVI", "NBR", "mask"} <= set(paths)  # one asset per band

    def sr(band: str) -> np.ndarray:  # USGS: reflectance = DN * 2.75e-5 - 0.2, 0 is fill
        with rasterio.open(landsat_dir / f"{LANDSAT_ID}_SR_{band}.TIF") as src:
            dn = src.read(1).astype(np.float64)
        return np.where(dn == 0, np.nan, dn * 2.75e-05 - 0.2)

    red, nir, swir22 = sr("B4"), sr("B5"), sr("B7")
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = {"NDVI": (nir - red) / (nir + red), "NBR": (nir - swir22) / (nir + swir22)}
    physical = (red >= 0) & (nir >= 0) & (swir22 >= 0)  # below 0 counts as 0 or is masked
    for name, want in expected.items():
        with rasterio.open(paths[name]) as src:  # int16, scale 1e-4, clouds masked
            raw = src.read(1)
            got = np.where(raw == src.nodata, np.nan, raw * src.scales[0])
        both = np.isfinite(got) & np.isfinite(want) & physical
        assert both.sum() > 20000, f"{name}: too few comparable pixels (clear land)"
        np.testing.assert_allclose(got[both], want[both], rtol=0, atol=0.5e-4 + 1e-6)


def test_sr_indices_takes_level1_scenes(l1_catalog: Path, tmp_path: Path) -> None:
    """Level-1 scenes are corrected for the atmosphere (tests/workflows/test_sr_from_l1.py)."""
    wf = load_workflow(
        "sr-indices", inputs={"catalog": str(l1_catalog)}, output={"catalog": str(tmp_path)}
    )
    planned = plan(wf)
    assert planned.units and not planned.excluded

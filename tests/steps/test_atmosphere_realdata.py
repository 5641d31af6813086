"""Surface reflectance from the real Landsat 8 L1 crop vs USGS's LaSRC L2 of the same scene.

The crops carry no geotags and only some bands: ingest georeferences them from the MTL's
projected corners (warning) and says which bands are missing. The L2 crop starts one column
east of the L1 crop; after georeferencing the two align by coordinates.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from tests.conftest import REAL_DATA

SCENE = REAL_DATA / "landsat8-c2-l1tp-l2sp-017051-20151205"
L1 = SCENE / "LC08_L1TP_017051_20151205_20200908_02_T1"
L2 = SCENE / "LC08_L2SP_017051_20151205_20200908_02_T1"
BANDS = ("B2", "B3", "B4", "B5", "B6", "B7")


def compare(catalog: Path, **atmosphere: Any) -> dict[str, Any]:
    """Ingest both crops, correct L1, compare with L2 on clear land pixels; per-band stats."""
    import eo_pipeline as eo
    from eo_pipeline.steps.masking import clear, flag

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        eo.ingest(L1, catalog)
        eo.ingest(L2, catalog)
    l1 = eo.load(catalog / "landsat8-l1tp" / "collection.json", bands=list(BANDS))
    l2 = eo.load(catalog / "landsat8-l2sp" / "collection.json", bands=list(BANDS))
    ours = eo.calibrate(l1, "surface_reflectance", atmosphere=atmosphere or None)
    usgs = eo.calibrate(l2, "surface_reflectance")
    mask = eo.masks(eo.calibrate(l1, "toa_reflectance"), method="spectral")
    ours, usgs, mask = xr.align(ours, usgs, mask, join="inner", exclude=["time"])
    keep = (clear(mask) & ~flag(mask, "water")).values[0]
    stats: dict[str, Any] = {
        "aot550": ours.attrs["eo_pipeline:aot550"],
        "aot_method": ours.attrs["eo_pipeline:aot_method"],
        "pixels": int(keep.sum()),
        "shape": ours["B4"].shape,
    }
    for b in BANDS:
        a, u = ours[b].values[0], usgs[b].values[0]
        ok = keep & np.isfinite(a) & np.isfinite(u)
        d = np.abs(a[ok] - u[ok])
        within = d <= 0.005 + 0.05 * np.abs(u[ok])
        stats[b] = {
            "median": float(np.median(d)),
            "p90": float(np.percentile(d, 90)),
            "within": float(within.mean()),
            "bias": float(np.median(a[ok] - u[ok])),
        }
    return stats


@pytest.mark.realdata
def test_real_landsat_l1_surface_reflectance_matches_lasrc(tmp_path: Path) -> None:
    if not (L1 / f"{L1.name}_MTL.txt").exists():
        pytest.skip(f"real L1/L2 pair not found at {SCENE}; set EO_PIPELINE_REAL_DATA")
    stats = compare(tmp_path / "catalog", model="desert")
    if os.environ.get("EO_PIPELINE_PRINT_STATS"):
        print(stats)
    assert stats["pixels"] > 10000, stats
    assert stats["aot_method"].startswith("dark-target")
    # Measured (README): the target, |d| <= 0.005 + 0.05 rho for >= 80 % of clear land
    # pixels, in green, red, NIR and SWIR (86, 84, 99, 100, 94 %, retrieved AOT 0.185)
    for b in ("B3", "B4", "B5", "B6", "B7"):
        assert stats[b]["within"] >= 0.8, (b, stats)
    assert 0.1 < stats["aot550"] < 0.25, stats


@pytest.mark.realdata
def test_untagged_crop_ingests_into_georeferenced_cogs_every_loader_reads(tmp_path: Path) -> None:
    """Each untagged band becomes a COG on the MTL's grid inside the item folder (pixels as
    delivered): the catalog holds every byte it reads (``validate --check-assets`` without
    ``allow_outside``), and eo.load, odc-stac and stackstac load it with no options."""
    import odc.stac
    import rasterio
    import stackstac

    import eo_pipeline as eo

    if not (L1 / f"{L1.name}_MTL.txt").exists():
        pytest.skip(f"real L1 crop not found at {L1}; set EO_PIPELINE_REAL_DATA")
    with pytest.warns(UserWarning, match="carry no georeferencing"):
        item = eo.ingest(L1, tmp_path / "catalog")
    folder = Path(item.get_self_href()).parent
    cog = Path(item.assets["B4"].get_absolute_href())
    assert cog.parent == folder and cog.suffix == ".tif"
    assert not [k for k, a in item.assets.items() if "tile" in (a.roles or [])]
    with rasterio.open(cog) as ds, rasterio.open(L1 / f"{L1.name}_B4.TIF") as raw:
        assert ds.crs.to_epsg() == 32616 and ds.profile["tiled"]
        assert np.array_equal(ds.read(1), raw.read(1))
    report = eo.validate(tmp_path / "catalog", check_assets=True)
    assert report.checksums_verified >= len(BANDS)
    ours = eo.load(folder / f"{item.id}.json", bands=["B4"])["B4"].isel(time=0)
    odc = odc.stac.load([item], bands=["B4"])["B4"].isel(time=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the MTL asset has no raster type
        doc = json.loads(Path(item.get_self_href()).read_text())  # as a customer reads it
        for asset in doc["assets"].values():  # stackstac does not resolve relative hrefs
            asset["href"] = os.path.join(folder, asset["href"])
        stk = stackstac.stack([doc], assets=["B4"]).sel(band="B4").isel(time=0)
    assert ours.shape == odc.shape and int(ours.count()) > 0
    assert np.array_equal(ours.values, odc.values)
    # stackstac snaps its grid to multiples of the resolution: Landsat's 30 m grid starts at
    # 15 m offsets, so it adds a row and a column (its documented behaviour)
    assert stk.attrs["crs"] == "epsg:32616"
    assert all(0 <= a - b <= 1 for a, b in zip(stk.shape, ours.shape, strict=True))
    assert int(np.isfinite(stk.values).sum()) > 0.9 * int(ours.count())

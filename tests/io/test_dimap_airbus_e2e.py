"""A real Pléiades 1A DIMAP document, byte for byte, with a simulated image of the size it states:
ingest -> load -> calibrate -> indices, against the reflectance the image was made from.

The real bundle carries no pixels. Its multispectral document (7289 x 10135 pixels, 4 bands,
EPSG:32618, 2 m) is copied unchanged; beside it goes a GeoTIFF of exactly that grid under the
name the document lists (``..._R1C1.JP2``: GDAL opens files by content). The GeoTIFF is sparse:
only a 512 x 1024 window holds pixels, simulated forward from three surfaces' reflectance with
the document's own GAIN, ESUN, sun elevation and date (``DN = rho E cos(sza) GAIN / (pi d^2)``);
every other block is the document's NODATA (0). Only the window is read back.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from eo_pipeline import read_metadata
from eo_pipeline.io.ingestion import ingest
from eo_pipeline.io.loading import load
from eo_pipeline.kernels.solar import earth_sun_distance
from eo_pipeline.steps.calibration import calibrate
from eo_pipeline.steps.indices import compute_indices
from tests.catalogs.test_dimap_airbus import ORT_MS

pytestmark = pytest.mark.realdata

ROW0, COL0, H, W = 1024, 2048, 512, 1024  # the window that holds pixels (block aligned)
# Surface reflectance per band (B0 blue, B1 green, B2 red, B3 NIR) of three surfaces.
SURFACES = {
    "vegetation": {"B0": 0.04, "B1": 0.08, "B2": 0.05, "B3": 0.45},
    "bare soil": {"B0": 0.12, "B1": 0.16, "B2": 0.20, "B3": 0.28},
    "water": {"B0": 0.06, "B1": 0.05, "B2": 0.03, "B3": 0.01},
}


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    if not ORT_MS.is_file():
        pytest.skip(f"real Pléiades document {ORT_MS} not found; set EO_PIPELINE_REAL_DATA")
    folder = tmp_path_factory.mktemp("phr1a") / ORT_MS.parent.name
    folder.mkdir()
    doc = Path(shutil.copy(ORT_MS, folder))
    meta = read_metadata(doc)
    rows, cols = meta.extra["rows"], meta.extra["cols"]
    (tile,) = meta.extra["tiles"]
    # truth: surfaces in bands of columns, a reflectance ramp inside each (no two pixels alike)
    surface = np.repeat(np.arange(3), -(-W // 3))[:W][None, :].repeat(H, axis=0)
    ramp = 1.0 + 0.2 * np.linspace(-1, 1, H)[:, None]
    truth = {}
    for b in ("B0", "B1", "B2", "B3"):
        table = np.array([SURFACES[s][b] for s in SURFACES])
        truth[b] = (table[surface] * ramp).astype(np.float64)
    d = float(earth_sun_distance(meta.datetime))
    cos_sza = math.cos(math.radians(90.0 - meta.sun_elevation))
    geo = meta.extra["geoposition"]
    profile = {
        "driver": "GTiff", "width": cols, "height": rows, "count": 4, "dtype": "uint16",
        "crs": f"EPSG:{meta.epsg}", "nodata": 0, "tiled": True, "blockxsize": 512,
        "blockysize": 512, "compress": "deflate", "sparse_ok": True,
        "transform": Affine(geo["xdim"], 0, geo["ulxmap"], 0, -geo["ydim"], geo["ulymap"]),
    }  # fmt: skip
    window = rasterio.windows.Window(COL0, ROW0, W, H)
    with rasterio.open(folder / tile["file"], "w", **profile) as dst:
        for i, b in enumerate(tile["bands"], start=1):  # file order B2 B1 B0 B3
            cal = meta.bands[b]
            dn = truth[b] * (cal.esun or 0.0) * cos_sza * (cal.gain or 0.0) / (math.pi * d * d)
            dst.write(np.round(dn).astype(np.uint16), i, window=window)
    return doc, truth


def test_ingest_load_calibrate_indices_recover_the_simulated_reflectance(
    delivery: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    doc, truth = delivery
    item = ingest(doc.parent, tmp_path / "catalog")
    assert item.collection_id == "pleiades1a-ort"
    assert item.properties["platform"] == "pleiades-1a"
    assert item.assets["B3"].extra_fields["eo_pipeline:calibration"]["gain"] == 15.24
    ds = load(item, bands=["B0", "B1", "B2", "B3"])
    assert ds.sizes["y"] == 7289 and ds.sizes["x"] == 10135 and ds["B3"].dtype == np.uint16
    win = ds.isel(y=slice(ROW0 - 4, ROW0 + H), x=slice(COL0, COL0 + W))  # 4 nodata rows above
    rho = calibrate(win, "toa_reflectance").compute()
    meta = read_metadata(doc)
    d = float(earth_sun_distance(meta.datetime))
    cos_sza = math.cos(math.radians(90.0 - meta.sun_elevation))
    # one DN in reflectance, from the document's numbers: pi d^2 / (ESUN cos(sza) GAIN)
    step = {
        b: math.pi * d * d / ((c.esun or 0.0) * cos_sza * (c.gain or 0.0))
        for b, c in meta.bands.items()
    }
    for b, t in truth.items():
        got = rho[b].values[0]
        assert np.isnan(got[:4]).all()  # NODATA 0 -> NaN
        err = np.abs(got[4:] - t)
        assert err.max() <= 0.5 * step[b] * 1.001 + 1e-6, (b, err.max(), step[b])
        assert 1.5e-4 < step[b] < 3.0e-4  # 12-bit Pléiades: ~2e-4 reflectance per DN
    ndvi = compute_indices(rho, ["NDVI"])["NDVI"].values[0, 4:]
    nir, red = truth["B3"], truth["B2"]
    expected = (nir - red) / (nir + red)
    # NDVI's error from half a DN step in each band (first-order propagation)
    bound = (nir * step["B2"] + red * step["B3"]) / (nir + red) ** 2
    assert (np.abs(ndvi - expected) <= bound * 1.01 + 1e-6).all()
    cols = {name: k * (-(-W // 3)) + 5 for k, name in enumerate(SURFACES)}
    assert ndvi[:, cols["vegetation"]].mean() > 0.75 > 0.2 > ndvi[:, cols["bare soil"]].mean()
    assert ndvi[:, cols["water"]].mean() < -0.4

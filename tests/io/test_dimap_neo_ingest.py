"""A Pléiades Neo MS-FS delivery: six bands in two files per tile (RGB and NED), tiled 2 x 3.

Made from the real Pléiades 1A multispectral ORT document (7289 x 10135 pixels) rewritten the
way Pléiades Neo 4 documents are written (PNEO_ORTHO, MISSION PNEO 4, BAND_IDs R G B NIR RE DB,
two Data_Files groups with their Raster_Index_List, NTILES_OVERLAP, FWHM edges in nanometres;
RE/DB numbers from a real Neo 4 document). Tiles are sparse GeoTIFFs: pixels only in a window
across the corner of four tiles. Ingest must mosaic each band from the right file and band.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from eo_pipeline import read_metadata
from eo_pipeline.io.ingestion import ingest
from eo_pipeline.io.loading import load
from eo_pipeline.kernels.ephemeris import earth_sun_distance_at
from eo_pipeline.steps.calibration import calibrate
from eo_pipeline.steps.indices import compute_indices
from tests.catalogs.test_dimap_airbus import ORT_MS, _neo

pytestmark = [pytest.mark.realdata, pytest.mark.slow]  # ~25 s: twelve sparse tiles

TILE = 4096
GROUPS = {"RGB": ("R", "G", "B"), "NED": ("NIR", "RE", "DB")}
EXTRA = {"RE": ("9.886", "1349", ("697", "750")), "DB": ("8.57", "1797.1", ("416", "457"))}
Y0, X0, H, W = TILE - 64, TILE - 96, 128, 192  # a window across the corner of tiles R1C1..R2C2


def _ms_fs(root: ET.Element) -> None:
    _neo(root, "4")
    root.find(".//SPECTRAL_PROCESSING").text = "MS-FS"  # type: ignore[union-attr]
    root.find("Raster_Data/Raster_Dimensions/NBANDS").text = "6"  # type: ignore[union-attr]
    bml = root.find(".//Band_Measurement_List")
    assert bml is not None
    for band, (gain, esun, (lo, hi)) in EXTRA.items():
        sr = ET.SubElement(bml, "Band_Spectral_Range")
        ET.SubElement(sr, "BAND_ID").text = band
        ET.SubElement(sr, "MEASURE_UNIT").text = "nanometer"
        fwhm = ET.SubElement(sr, "FWHM")
        ET.SubElement(fwhm, "MIN").text, ET.SubElement(fwhm, "MAX").text = lo, hi
        br = ET.SubElement(bml, "Band_Radiance")
        for tag, text in (("BAND_ID", band), ("GAIN", gain), ("BIAS", "0")):
            ET.SubElement(br, tag).text = text
        bs = ET.SubElement(bml, "Band_Solar_Irradiance")
        ET.SubElement(bs, "BAND_ID").text, ET.SubElement(bs, "VALUE").text = band, esun
    dims = root.find("Raster_Data/Raster_Dimensions")
    tile_set = ET.SubElement(dims, "Tile_Set")  # type: ignore[arg-type]
    reg = ET.SubElement(tile_set, "Regular_Tiling")
    ET.SubElement(reg, "NTILES_SIZE", ncols=str(TILE), nrows=str(TILE))
    ET.SubElement(reg, "NTILES_COUNT", ntiles_C="3", ntiles_R="2")
    ET.SubElement(reg, "NTILES_OVERLAP", ncols="0", nrows="0")
    access = root.find("Raster_Data/Data_Access")
    assert access is not None
    for old in access.findall("Data_Files"):
        access.remove(old)
    for name, bands in GROUPS.items():
        files = ET.SubElement(access, "Data_Files")
        for r in (1, 2):
            for c in (1, 2, 3):
                df = ET.SubElement(files, "Data_File", tile_R=str(r), tile_C=str(c))
                ET.SubElement(df, "DATA_FILE_PATH", href=f"IMG_NEO_{name}_R{r}C{c}.TIF")
        index = ET.SubElement(ET.SubElement(files, "Raster_Display"), "Raster_Index_List")
        for i, b in enumerate(bands, start=1):
            ri = ET.SubElement(index, "Raster_Index")
            ET.SubElement(ri, "BAND_ID").text, ET.SubElement(ri, "BAND_INDEX").text = b, str(i)


def _truth() -> dict[str, np.ndarray]:
    y, x = np.mgrid[0:H, 0:W]
    return {b: (100 * (k + 1) + 3 * y + x).astype(np.uint16) for k, b in enumerate(
        ("R", "G", "B", "NIR", "RE", "DB"))}  # fmt: skip


def test_two_files_per_tile_mosaic_band_by_band(tmp_path: Path) -> None:
    if not ORT_MS.is_file():
        pytest.skip(f"real Pléiades document {ORT_MS} not found; set EO_PIPELINE_REAL_DATA")
    folder = tmp_path / "IMG_01_PNEO4_MS-FS"
    folder.mkdir()
    tree = ET.parse(ORT_MS)
    _ms_fs(tree.getroot())
    doc = folder / "DIM_PNEO4_TEST_MS-FS_ORT.XML"
    tree.write(doc, encoding="UTF-8", xml_declaration=True)
    meta = read_metadata(doc)
    assert meta.sensor == "pleiadesneo4" and meta.extra["band_order"] == [
        "R", "G", "B", "NIR", "RE", "DB",
    ]  # fmt: skip
    assert meta.extra["tile_count"] == (2, 3) and len(meta.extra["tiles"]) == 12
    assert meta.extra["spectral_ranges"]["DB"] == pytest.approx((0.416, 0.457))
    rows, cols = meta.extra["rows"], meta.extra["cols"]
    geo = meta.extra["geoposition"]
    truth = _truth()
    for t in meta.extra["tiles"]:
        y0, x0 = (t["row"] - 1) * TILE, (t["col"] - 1) * TILE
        h, w = min(TILE, rows - y0), min(TILE, cols - x0)
        profile = {
            "driver": "GTiff", "width": w, "height": h, "count": 3, "dtype": "uint16",
            "crs": "EPSG:32618", "nodata": 0, "tiled": True, "blockxsize": 256,
            "blockysize": 256, "sparse_ok": True, "compress": "deflate",
            "transform": Affine(2.0, 0, geo["ulxmap"] + 2.0 * x0, 0, -2.0, geo["ulymap"] - 2.0 * y0),
        }  # fmt: skip
        with rasterio.open(folder / t["file"], "w", **profile) as dst:
            # the part of the window inside this tile
            ys, xs = (
                slice(max(Y0, y0), min(Y0 + H, y0 + h)),
                slice(max(X0, x0), min(X0 + W, x0 + w)),
            )
            if ys.start < ys.stop and xs.start < xs.stop:
                win = rasterio.windows.Window(xs.start - x0, ys.start - y0,
                                              xs.stop - xs.start, ys.stop - ys.start)  # fmt: skip
                for i, b in enumerate(t["bands"], start=1):
                    part = truth[b][ys.start - Y0 : ys.stop - Y0, xs.start - X0 : xs.stop - X0]
                    dst.write(part, i, window=win)
    item = ingest(folder, tmp_path / "catalog")
    assert item.collection_id == "pleiadesneo4-ort"
    assert sorted(k for k in item.assets if k.startswith("IMG_"))[:3] == [
        "IMG_MS_FS_R1C1_1", "IMG_MS_FS_R1C1_2", "IMG_MS_FS_R1C2_1",
    ]  # fmt: skip
    assert item.assets["DB"].extra_fields["eo:bands"][0]["common_name"] == "coastal"
    assert item.assets["RE"].extra_fields["eo_pipeline:calibration"]["gain"] == 9.886
    ds = load(item)
    assert list(ds.data_vars) == ["R", "G", "B", "NIR", "RE", "DB"]
    assert (ds.sizes["y"], ds.sizes["x"]) == (rows, cols)
    window = ds.isel(y=slice(Y0, Y0 + H), x=slice(X0, X0 + W)).compute()
    for b, t in truth.items():
        np.testing.assert_array_equal(window[b].values[0], t, err_msg=b)
    # calibrate and NDVI on the Neo bands, against the formula with the document's numbers
    refl = calibrate(window, "toa_reflectance")
    ndvi = compute_indices(refl, ["NDVI"])["NDVI"].values[0]
    d = earth_sun_distance_at(meta.datetime)
    cos_sza = math.cos(math.radians(90.0 - meta.sun_elevation))

    def rho(b: str) -> np.ndarray:
        cal = meta.bands[b]
        return truth[b] / cal.gain * math.pi * d * d / (cal.esun * cos_sza)

    np.testing.assert_allclose(refl["DB"].values[0], rho("DB"), rtol=1e-5)
    expected = (rho("NIR") - rho("R")) / (rho("NIR") + rho("R"))
    np.testing.assert_allclose(ndvi, expected, rtol=1e-4, atol=1e-6)

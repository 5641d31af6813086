"""Simulated KazEOSat-1 scenes as DIMAP V2 products: GDAL opens them, the pipeline calibrates them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from eo_pipeline.catalogs import sensors
from eo_pipeline.catalogs.validation import validate
from eo_pipeline.errors import InputDataError
from eo_pipeline.simulation.dimap import tile_layout
from eo_pipeline.simulation.simulator import simulate
from tests.simulation.test_simulate import _compare_grid, _read


@pytest.fixture(scope="module")
def dimap_item(tmp_path_factory: pytest.TempPathFactory) -> pystac.Item:
    root = tmp_path_factory.mktemp("dimap")
    (item,) = simulate(
        "kazeosat1", root, size=96, seed=5, noise=False, format="dimap", dimap_tile=256
    )
    return item


def _href(item: pystac.Item, key: str) -> str:
    return item.assets[key].get_absolute_href() or ""


def test_gdal_dimap_driver_reads_the_same_pixels(dimap_item: pystac.Item) -> None:
    sens = sensors.get("kazeosat1")
    for group, bands in (("MS", ["B0", "B1", "B2", "B3"]), ("P", ["P"])):
        with rasterio.open(_href(dimap_item, f"DIM_{group}")) as src:
            assert src.driver == "DIMAP"
            data = src.read()
            assert src.crs.to_epsg() == int(dimap_item.properties["proj:code"].split(":")[1])
            for i, band in enumerate(bands):
                assert float(src.tags(i + 1)["RADIANCE_GAIN"]) == pytest.approx(
                    1 / (sens.band(band).radiance_mult or np.nan)
                )
                assert float(src.tags(i + 1)["SOLAR_IRRADIANCE_VALUE"]) == sens.band(band).esun
                with rasterio.open(_href(dimap_item, band)) as vrt:
                    np.testing.assert_array_equal(vrt.read(1), data[i])
                    assert vrt.transform == src.transform
            assert float(src.tags()["SUN_ELEVATION"]) == pytest.approx(
                dimap_item.properties["view:sun_elevation"], abs=1e-5
            )
    # the PAN product is tiled: 384 px in 256 px tiles -> 2 x 2 tiles
    assert sorted(k for k in dimap_item.assets if k.startswith("IMG_P_")) == [
        "IMG_P_R1C1", "IMG_P_R1C2", "IMG_P_R2C1", "IMG_P_R2C2",
    ]  # fmt: skip
    assert tile_layout(384, 256) == [(0, 256), (256, 128)]


def test_document_carries_the_dimap_elements(dimap_item: pystac.Item) -> None:
    doc = ET.parse(_href(dimap_item, "DIM_MS")).getroot()
    assert doc.find("Metadata_Identification/METADATA_FORMAT").get("version") == "2.0"  # type: ignore[union-attr]
    radiance = doc.findall(".//Band_Measurement_List/Band_Radiance")
    assert [r.findtext("BAND_ID") for r in radiance] == ["B0", "B1", "B2", "B3"]
    special = {
        s.findtext("SPECIAL_VALUE_TEXT"): s.findtext("SPECIAL_VALUE_COUNT")
        for s in doc.iter("Special_Value")
    }
    assert special == {"NODATA": "0", "SATURATED": "4095"}
    assert doc.findtext("Raster_Data/Raster_Encoding/NBITS") == "12"
    assert len(doc.findall("Dataset_Content/Dataset_Extent/Vertex")) == 4
    files = doc.findall("Raster_Data/Data_Access/Data_Files/Data_File")
    assert [(f.get("tile_R"), f.get("tile_C")) for f in files] == [("1", "1")]
    folder = Path(_href(dimap_item, "DIM_MS")).parent
    for f in files:
        assert (folder / f.find("DATA_FILE_PATH").get("href")).is_file()  # type: ignore[union-attr,operator]


def test_catalog_valid_and_round_trip(dimap_item: pystac.Item) -> None:
    catalog = Path(dimap_item.get_self_href() or "").parents[2]
    report = validate(catalog, check_assets=True)
    assert report.counts["Item"] == 1
    assert dimap_item.properties["eo_pipeline:format"] == "dimap"
    truth = _read(dimap_item, "truth_reflectance")
    for i, band in enumerate(sensors.get("kazeosat1").band_ids):
        stats = _compare_grid(dimap_item, i, band, truth, noise=False)
        assert stats["n"] > 100, (band, stats)
        assert stats["worst_in_steps"] <= 0.51, (band, stats)


def test_dimap_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="convention 'mult_add'"):
        simulate("kazeosat2", tmp_path, size=32, format="dimap")
    with pytest.raises(InputDataError, match="dimap_tile must be a positive multiple of 256"):
        simulate("kazeosat1", tmp_path, size=32, format="dimap", dimap_tile=100)
    assert not any(tmp_path.iterdir())

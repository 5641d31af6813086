"""Real Airbus DIMAP V2 deliveries (Pléiades 1A, shared/real-data/pleiades-dimap-v2) and the
variants other real deliveries contain (Pléiades 1B, Pléiades Neo, SPOT 6/7), made from them.

The expected numbers are typed from the documents (read with an XML viewer), not computed by
the reader under test.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import shapely

from eo_pipeline import read_metadata
from eo_pipeline.catalogs import sensors
from eo_pipeline.errors import MetadataError
from eo_pipeline.io.ingest_dimap import dimap_documents
from eo_pipeline.kernels.solar import earth_sun_distance
from tests.conftest import REAL_DATA

PLEIADES = REAL_DATA / "pleiades-dimap-v2"
ORT, SEN = PLEIADES / "PHR1A-ORT-5888578101", PLEIADES / "PHR1A-SEN-5897098101"
ORT_MS = ORT / "IMG_PHR1A_MS_002" / "DIM_PHR1A_MS_202108201553330_ORT_5888578101-2.XML"
ORT_P = ORT / "IMG_PHR1A_P_001" / "DIM_PHR1A_P_202108201553330_ORT_5888578101-1.XML"
SEN_MS = SEN / "IMG_PHR1A_MS_002" / "DIM_PHR1A_MS_202108271549303_SEN_5897098101-2.XML"
SEN_P = SEN / "IMG_PHR1A_P_001" / "DIM_PHR1A_P_202108271549303_SEN_5897098101-1.XML"

# Per document: centre TIME, SUN_ELEVATION, SUN_AZIMUTH, VIEWING_ANGLE, INCIDENCE_ANGLE,
# AZIMUTH_ANGLE, CLOUD_COVERAGE, NROWS, NCOLS, Dataset_Extent Center LON/LAT.
EXPECTED = {
    ORT_MS: ("2021-08-20T15:53:34.031", 72.90977891380352, 108.237106325676, 31.20353132744874,
             35.11860443705005, 179.9455089743216, 68.32, 7289, 10135, -74.02006503789502,
             18.34167363525734),
    ORT_P: ("2021-08-20T15:53:34.031", 72.90977891380352, 108.237106325676, 31.20353132744874,
            35.11860443705005, 179.9455089743216, 66.9, 29155, 40538, -74.0200650251281,
            18.34167589328021),
    SEN_MS: ("2021-08-27T15:49:31.031", 71.76705923747583, 115.2326875432268, 25.5663414336154,
             28.61590497053497, 180.0904341251046, 63.02, 3792, 8207, -73.60791692352382,
             18.36258898671602),
    SEN_P: ("2021-08-27T15:49:31.031", 71.76705923747583, 115.2326875432268, 25.5663414336154,
            28.61590497053497, 180.0904341251046, 61.87, 15169, 32824, -73.60793018816008,
            18.36259139388943),
}  # fmt: skip
# Band_Radiance GAIN (BIAS 0) and Band_Solar_Irradiance VALUE, Band_Spectral_Range MIN/MAX (um),
# identical in the four documents (calibration of 2021-07-01).
RADIOMETRY = {
    "P": (11.45, 1549.0, (0.47, 0.83)),
    "B0": (8.85, 1915.0, (0.43, 0.55)),
    "B1": (8.89, 1831.0, (0.50, 0.62)),
    "B2": (9.95, 1594.0, (0.59, 0.71)),
    "B3": (15.24, 1060.0, (0.74, 0.94)),
}

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module", autouse=True)
def _real_documents() -> None:
    if not ORT_MS.is_file() or not SEN_P.is_file():
        pytest.skip(
            f"real Pléiades DIMAP documents not found under {PLEIADES}; set EO_PIPELINE_REAL_DATA "
            "to the folder holding pleiades-dimap-v2/"
        )


def test_the_folder_holds_exactly_the_documents_tested() -> None:
    """Every DIM_*.XML in the shared folder is in EXPECTED (a new one must be added here)."""
    assert set(PLEIADES.glob("*/*/DIM_*.XML")) == set(EXPECTED)


@pytest.mark.parametrize("doc", list(EXPECTED), ids=lambda p: p.name[:30])
def test_every_real_document_reads_with_its_own_numbers(doc: Path) -> None:
    when, sun_el, sun_az, view, incidence, azimuth, cloud, rows, cols, lon, lat = EXPECTED[doc]
    meta = read_metadata(doc)
    assert meta.sensor == "pleiades1a"
    assert meta.datetime == dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)
    assert (meta.sun_elevation, meta.sun_azimuth) == (sun_el, sun_az)
    assert (meta.view_off_nadir, meta.view_incidence_angle, meta.view_azimuth) == (
        view, incidence, azimuth,
    )  # fmt: skip
    assert meta.cloud_cover == cloud
    assert meta.earth_sun_distance == pytest.approx(float(earth_sun_distance(meta.datetime)))
    assert 1.009 < meta.earth_sun_distance < 1.013  # 20-27 August: 1.0118-1.0103 AU (almanac)
    assert (meta.extra["rows"], meta.extra["cols"]) == (rows, cols)
    assert meta.bit_depth == 12  # PRODUCT_RANGE 12 in a 16-bit container (NBITS 16)
    assert meta.extra["encoding"] == {"nbits": 16, "acquisition_range": 12, "product_range": 12}
    assert shapely.geometry.shape(meta.footprint).contains(shapely.Point(lon, lat))
    is_pan = "_P_" in doc.name
    assert list(meta.bands) == (["P"] if is_pan else ["B2", "B1", "B0", "B3"])
    for b, cal in meta.bands.items():
        gain, esun, edges = RADIOMETRY[b]
        assert (cal.gain, cal.bias, cal.esun) == (gain, 0.0, esun)
        assert cal.radiance_mult == pytest.approx(1.0 / gain, rel=1e-15)
        assert (cal.nodata, cal.saturation) == (0, 4095)
        assert meta.extra["spectral_ranges"][b] == pytest.approx(edges)
    if "_SEN_" in doc.name:  # sensor geometry: metadata only, no map grid
        assert meta.processing_level == "SEN" and meta.epsg is None
        assert not meta.extra["geoposition"]
    else:
        assert meta.processing_level == "ORT" and meta.epsg == 32618
        # Geoposition_Insert: the P grid's corner is a quarter of an MS pixel off the MS one's
        ulx, uly, px = (593406.75, 2035557.75, 0.5) if is_pan else (593407.0, 2035557.0, 2.0)
        assert meta.extra["geoposition"] == {"ulxmap": ulx, "ulymap": uly, "xdim": px, "ydim": px}


def test_sensor_file_agrees_with_the_real_documents() -> None:
    """pleiades1a.yaml was written from these documents: band ids, edges, ESUN, gains, 12 bit."""
    s = sensors.get("pleiades1a")
    assert s.convention == "gain_bias" and not s.nominal
    assert s.band_ids == ("P", "B0", "B1", "B2", "B3")
    for b, (gain, esun, (lo, hi)) in RADIOMETRY.items():
        band = s.band(b)
        assert band.center_wavelength == pytest.approx((lo + hi) / 2)
        assert band.full_width_half_max == pytest.approx(hi - lo)
        assert band.esun == esun and band.radiance_mult == pytest.approx(1 / gain)
        assert (band.nodata, band.saturation, band.dtype) == (0, 4095, "uint16")
    assert (s.band("P").gsd, s.band("B0").gsd) == (0.5, 2.0)


@pytest.mark.parametrize("volume", [ORT / "VOL_PHR.XML", SEN / "VOL_PHR.XML"], ids=["ORT", "SEN"])
def test_volume_files_are_entry_points(volume: Path, tmp_path: Path) -> None:
    docs = dimap_documents(volume)
    assert [d.name[:9] for d in docs] == ["DIM_PHR1A", "DIM_PHR1A"]
    assert {"_P_" in d.name for d in docs} == {True, False}
    copy = tmp_path / "SPOT_VOL.XML"  # SPOT 6/7 name their volume file SPOT_VOL.XML
    shutil.copytree(volume.parent, tmp_path, dirs_exist_ok=True)
    shutil.copy(volume, copy)
    assert [d.name for d in dimap_documents(copy)] == [d.name for d in docs]


def test_reading_the_volume_file_itself_says_what_to_do() -> None:
    with pytest.raises(MetadataError, match=r"METADATA_PROFILE VOLUME.*DIM_PHR1A_P_"):
        read_metadata(ORT / "VOL_PHR.XML")


# ----------------------------------------------------------------- variants of real deliveries


def variant(tmp_path: Path, doc: Path, change: Callable[[ET.Element], None]) -> Path:
    """A copy of a real document with ``change`` applied to its tree."""
    tree = ET.parse(doc)
    change(tree.getroot())
    out = tmp_path / doc.name
    tree.write(out, encoding="UTF-8", xml_declaration=True)
    return out


def _tiling(overlap: str, ntiles: tuple[int, int] = (2, 3), neo: bool = False) -> Callable:
    def change(root: ET.Element) -> None:
        dims = root.find("Raster_Data/Raster_Dimensions")
        assert dims is not None
        tile_set = ET.SubElement(dims, "Tile_Set")
        ET.SubElement(tile_set, "NTILES").text = str(ntiles[0] * ntiles[1])
        reg = ET.SubElement(tile_set, "Regular_Tiling")
        ET.SubElement(reg, "NTILES_SIZE", nrows="4096", ncols="4096")
        ET.SubElement(reg, "NTILES_COUNT", ntiles_R=str(ntiles[0]), ntiles_C=str(ntiles[1]))
        if neo:  # Pléiades Neo: <NTILES_OVERLAP ncols="0" nrows="0"/>
            ET.SubElement(reg, "NTILES_OVERLAP", nrows=overlap, ncols=overlap)
        else:  # Pléiades 1B PMS 1629599101 writes <OVERLAP_ROW>0.0</OVERLAP_ROW>
            ET.SubElement(reg, "OVERLAP_ROW").text = overlap
            ET.SubElement(reg, "OVERLAP_COL").text = overlap
        files = root.find("Raster_Data/Data_Access/Data_Files")
        assert files is not None
        for f in list(files):
            files.remove(f)
        for r in range(1, ntiles[0] + 1):
            for c in range(1, ntiles[1] + 1):
                df = ET.SubElement(files, "Data_File", tile_R=str(r), tile_C=str(c))
                ET.SubElement(df, "DATA_FILE_PATH", href=f"IMG_R{r}C{c}.TIF")

    return change


@pytest.mark.parametrize("overlap", ["0.0", "0"])
@pytest.mark.parametrize("neo", [False, True], ids=["OVERLAP_ROW", "NTILES_OVERLAP"])
def test_multi_tile_regular_tiling_with_zero_written_as_a_float(
    tmp_path: Path, overlap: str, neo: bool
) -> None:
    meta = read_metadata(variant(tmp_path, ORT_MS, _tiling(overlap, neo=neo)))
    ex = meta.extra
    assert (ex["tile_size"], ex["tile_count"], ex["tile_overlap"]) == ((4096, 4096), (2, 3), (0, 0))
    assert [(t["row"], t["col"]) for t in ex["tiles"]][:4] == [(1, 1), (1, 2), (1, 3), (2, 1)]
    assert meta.files["IMG_R2C3"] == "IMG_R2C3.TIF"


def test_a_fractional_overlap_is_an_error_naming_the_element(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"OVERLAP_ROW = '0.5' must be a whole number"):
        read_metadata(variant(tmp_path, ORT_MS, _tiling("0.5")))


def _neo(root: ET.Element, mission_index: str = "4", reflectance16: bool = False) -> None:
    """The ORT MS document rewritten the way Pléiades Neo writes it: PNEO_ORTHO, MISSION PNEO,
    BAND_IDs R, G, B, NIR, a Raster_Index_List in Data_Files, FWHM edges in nanometres."""
    ids = {"B0": "B", "B1": "G", "B2": "R", "B3": "NIR"}
    profile = root.find("Metadata_Identification/METADATA_PROFILE")
    strip = root.find("Dataset_Sources/Source_Identification/Strip_Source")
    assert profile is not None and strip is not None
    profile.text = "PNEO_ORTHO"
    strip.find("MISSION").text, strip.find("MISSION_INDEX").text = "PNEO", mission_index  # type: ignore[union-attr]
    for elem in root.iter("BAND_ID"):
        elem.text = ids.get(elem.text or "", elem.text)
    for ch in root.iter("Band_Display_Order"):
        for c in ch:
            c.text = ids.get(c.text or "", c.text)
    for sr in root.iter("Band_Spectral_Range"):
        lo, hi = sr.find("MIN"), sr.find("MAX")
        assert lo is not None and hi is not None
        fwhm = ET.SubElement(sr, "FWHM")
        for old, tag in ((lo, "MIN"), (hi, "MAX")):
            ET.SubElement(fwhm, tag).text = str(round(float(old.text or "") * 1000))
            sr.remove(old)
        sr.find("MEASURE_UNIT").text = "nanometer"  # type: ignore[union-attr]
    files = root.find("Raster_Data/Data_Access/Data_Files")
    index = ET.SubElement(ET.SubElement(files, "Raster_Display"), "Raster_Index_List")  # type: ignore[arg-type]
    for i, b in enumerate(("R", "G", "B", "NIR"), start=1):
        ri = ET.SubElement(index, "Raster_Index")
        ET.SubElement(ri, "BAND_ID").text = b
        ET.SubElement(ri, "BAND_INDEX").text = str(i)
    if reflectance16:  # a 16-bit reflectance product without SATURATED special value
        root.find(".//Dynamic_Range/PRODUCT_RANGE").text = "16"  # type: ignore[union-attr]
        display = root.find("Raster_Data/Raster_Display")
        assert display is not None
        for sv in display.findall("Special_Value"):
            if sv.findtext("SPECIAL_VALUE_TEXT") == "SATURATED":
                display.remove(sv)


@pytest.mark.parametrize("index", ["3", "4"])
def test_pleiades_neo_band_names(tmp_path: Path, index: str) -> None:
    meta = read_metadata(variant(tmp_path, ORT_MS, lambda r: _neo(r, index)))
    assert meta.sensor == f"pleiadesneo{index}"
    assert meta.extra["band_order"] == ["R", "G", "B", "NIR"]
    assert meta.extra["band_order_source"] == "Raster_Index_List"
    assert meta.bands["NIR"].gain == 15.24 and meta.bands["B"].esun == 1915.0
    assert meta.extra["spectral_ranges"]["NIR"] == pytest.approx((0.74, 0.94))
    assert meta.bit_depth == 12 and meta.bands["R"].saturation == 4095
    sensor = sensors.get(meta.sensor)
    assert set(sensor.band_ids) == {"PAN", "R", "G", "B", "NIR", "RE", "DB"}
    assert sensor.band("DB").common_name == "coastal"
    assert sensor.band("RE").common_name == "rededge"


def test_pleiades_neo_16_bit_encoding(tmp_path: Path) -> None:
    meta = read_metadata(variant(tmp_path, ORT_MS, lambda r: _neo(r, reflectance16=True)))
    assert meta.bit_depth == 16
    assert meta.extra["encoding"]["product_range"] == 16
    assert {c.saturation for c in meta.bands.values()} == {65535}


def test_spot_documents_name_their_mission_spot(tmp_path: Path) -> None:
    def spot7(root: ET.Element) -> None:
        root.find("Metadata_Identification/METADATA_PROFILE").text = "S7_ORTHO"  # type: ignore[union-attr]
        strip = root.find("Dataset_Sources/Source_Identification/Strip_Source")
        strip.find("MISSION").text, strip.find("MISSION_INDEX").text = "SPOT", "7"  # type: ignore[union-attr]

    meta = read_metadata(variant(tmp_path, ORT_MS, spot7))
    assert meta.sensor == "spot7" and meta.extra["mission_family"] == "SPOT 7"


# ------------------------------------------------------------------------ the six sensor files

AIRBUS = ("pleiades1a", "pleiades1b", "pleiadesneo3", "pleiadesneo4", "spot6", "spot7")


@pytest.mark.parametrize("name", AIRBUS)
def test_airbus_sensor_files(name: str) -> None:
    s = sensors.get(name)
    assert s.convention == "gain_bias"
    assert s.nominal == (name == "pleiadesneo3")  # Neo 3 borrows Neo 4's radiometry
    text = Path(s.path).read_text(encoding="utf-8")
    assert "NOMINAL" in text  # what no source states is marked so
    pan = [b for b in s.bands if b.common_name == "pan"]
    ms = [b for b in s.bands if b.common_name != "pan"]
    assert len(pan) == 1 and pan[0].gsd * 4 == ms[0].gsd  # 1:4 PAN/MS for every Airbus VHR
    for b in s.bands:
        assert (b.dtype, b.nodata, b.saturation) == ("uint16", 0, 4095)  # 12 bit in 16
        assert b.radiance_add == 0.0 and 5.0 < 1.0 / (b.radiance_mult or math.inf) < 20.0
        assert b.esun is not None and 1000.0 < b.esun < 2000.0
        lo = b.center_wavelength - b.full_width_half_max / 2
        hi = b.center_wavelength + b.full_width_half_max / 2
        assert 0.40 < lo < hi < 0.96
    if name.startswith("pleiadesneo"):
        assert s.band_ids == ("PAN", "R", "G", "B", "NIR", "RE", "DB")
    else:
        assert s.band_ids == ("P", "B0", "B1", "B2", "B3")

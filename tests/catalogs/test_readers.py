"""read_metadata on the real Landsat C2 L2 and Sentinel-2 L1C metadata, and on broken copies."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
import shapely

import eo_pipeline
from eo_pipeline.catalogs import readers
from eo_pipeline.catalogs.readers import MetadataFormat, read_metadata
from eo_pipeline.catalogs.readers.landsat import parse_mtl
from eo_pipeline.catalogs.scene import SceneMetadata
from eo_pipeline.errors import MetadataError, MetadataWarning, UnknownSensorError

pytestmark = pytest.mark.realdata

LANDSAT_ID = "LC08_L2SP_001070_20190114_20200830_02_T2"


def _mtl(landsat_dir: Path, ext: str = "txt") -> Path:
    return landsat_dir / f"{LANDSAT_ID}_MTL.{ext}"


def _odl_without(text: str, group: str) -> str:
    return re.sub(rf"\n\s*GROUP = {group}\n.*?END_GROUP = {group}", "", text, flags=re.S)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- Landsat, real


@pytest.fixture(scope="module")
def landsat(landsat_dir: Path) -> SceneMetadata:
    return read_metadata(_mtl(landsat_dir))


def test_three_landsat_formats_give_equal_metadata(landsat_dir, landsat):
    others = [read_metadata(_mtl(landsat_dir, ext)) for ext in ("json", "xml")]
    for other in others:
        assert other.source != landsat.source
        assert dataclasses.replace(other, source="") == dataclasses.replace(landsat, source="")


def test_landsat_values_as_printed(landsat):
    assert landsat.sensor == "landsat8"
    assert landsat.datetime == dt.datetime(2019, 1, 14, 14, 34, 30, 439074, tzinfo=dt.UTC)
    assert landsat.sun_elevation == 59.49769288
    assert landsat.sun_azimuth == 107.50935585
    assert landsat.earth_sun_distance == 0.9835616
    assert (landsat.wrs_path, landsat.wrs_row) == (1, 70)
    assert landsat.epsg == 32619  # README: EPSG:32619 (north zone, negative northings)
    assert landsat.cloud_cover == 75.65
    assert landsat.processing_level == "L2SP"
    assert landsat.product_id == LANDSAT_ID
    assert landsat.extra["level1_product_id"] == "LC08_L1TP_001070_20190114_20200830_02_T2"
    b4 = landsat.band("B4")
    assert (b4.radiance_mult, b4.radiance_add) == (1.0328e-02, -51.63757)
    assert (b4.reflectance_mult, b4.reflectance_add) == (2.0e-05, -0.1)
    assert (b4.sr_scale, b4.sr_offset) == (2.75e-05, -0.2)
    assert (b4.radiance_max, b4.reflectance_max, b4.quantize_max) == (625.17603, 1.2107, 65535)
    assert not b4.reflectance_sun_corrected
    assert landsat.band("B1").radiance_mult == 1.2979e-02
    # B8/B9 have Level-1 rescaling but no surface reflectance in an L2 product.
    assert landsat.band("B9").radiance_add == -12.34985 and landsat.band("B9").sr_scale is None
    assert sorted(landsat.bands, key=lambda b: int(b[1:])) == [f"B{n}" for n in range(1, 10)]
    assert landsat.extra["thermal_constants"]["B10"] == {"K1": 774.8853, "K2": 1321.0789}


def test_landsat_files_map_band_ids_to_existing_files(landsat, landsat_dir):
    for key in [f"B{n}" for n in range(1, 8)] + ["QA_PIXEL", "QA_RADSAT", "SR_QA_AEROSOL", "ANG"]:
        assert (landsat_dir / landsat.files[key]).is_file(), key
    assert landsat.files["B4"] == f"{LANDSAT_ID}_SR_B4.TIF"
    assert landsat.files["ST_B10"] == f"{LANDSAT_ID}_ST_B10.TIF"  # listed, not shipped here


def test_landsat_footprint_from_printed_corners(landsat, landsat_dir):
    assert landsat.footprint["type"] == "Polygon"
    assert landsat.bbox == (-68.73860, -15.51856, -66.59689, -13.39718)
    ours = shapely.geometry.shape(landsat.footprint)
    usgs = json.loads((landsat_dir / f"{LANDSAT_ID}_SR_stac.json").read_text())
    # USGS's item geometry is the valid-data outline: inside the product corners.
    assert ours.contains(shapely.geometry.shape(usgs["geometry"]))


def test_folder_reads_the_odl_mtl(landsat_dir, landsat):
    from_folder = read_metadata(landsat_dir)
    assert from_folder.source.endswith("_MTL.txt") and from_folder == landsat
    assert eo_pipeline.read_metadata is read_metadata


def _as_level1(text: str) -> str:
    text = _odl_without(text, "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")
    text = _odl_without(text, "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS")
    text = _odl_without(text, "LEVEL2_PROCESSING_RECORD")
    return text.replace('PROCESSING_LEVEL = "L2SP"', 'PROCESSING_LEVEL = "L1TP"', 1)


def test_level1_mtl(landsat_dir, tmp_path):
    meta = read_metadata(_write(tmp_path, "L1_MTL.txt", _as_level1(_mtl(landsat_dir).read_text())))
    assert meta.processing_level == "L1TP"
    assert all(b.sr_scale is None for b in meta.bands.values())
    assert meta.band("B8").radiance_mult == 1.1688e-02
    assert "level1_product_id" not in meta.extra


def test_landsat9_spacecraft(landsat_dir, tmp_path):
    text = _mtl(landsat_dir).read_text().replace('"LANDSAT_8"', '"LANDSAT_9"')
    assert read_metadata(_write(tmp_path, "L9_MTL.txt", text)).sensor == "landsat9"


# ----------------------------------------------------------------------------- Landsat, broken


@pytest.mark.parametrize("ext", ["txt", "json", "xml"])
def test_truncated_mtl(landsat_dir, tmp_path, ext):
    text = _mtl(landsat_dir, ext).read_text()
    path = _write(tmp_path, f"cut_MTL.{ext}", text[: len(text) // 2])
    with pytest.raises(MetadataError, match="truncated") as err:
        read_metadata(path)
    assert str(path) in str(err.value)


def test_truncated_mtl_at_a_line_end(landsat_dir, tmp_path):
    lines = _mtl(landsat_dir).read_text().splitlines(keepends=True)
    path = _write(tmp_path, "cut_MTL.txt", "".join(lines[: len(lines) // 2]))
    with pytest.raises(MetadataError, match=r"truncated: it stops inside group \w+"):
        read_metadata(path)


def test_mtl_without_trailing_end_is_read_with_a_warning(landsat_dir, tmp_path):
    """USGS tools sometimes drop the final END; the top group closed means nothing is missing."""
    text = _mtl(landsat_dir).read_text().rstrip()
    assert text.endswith("END")
    path = _write(tmp_path, "noend_MTL.txt", text[: -len("END")])
    with pytest.warns(MetadataWarning, match="no closing END"):
        meta = read_metadata(path)
    assert meta.replace(source="") == read_metadata(_mtl(landsat_dir)).replace(source="")


def test_mtl_with_top_group_open_and_no_end_is_truncated(landsat_dir, tmp_path):
    text = _mtl(landsat_dir).read_text().rstrip()
    cut = text[: text.rindex("END_GROUP = LANDSAT_METADATA_FILE")]
    with pytest.raises(
        MetadataError, match="truncated: it stops inside group LANDSAT_METADATA_FILE"
    ):
        read_metadata(_write(tmp_path, "open_MTL.txt", cut))


@pytest.mark.parametrize(
    ("groups", "level1"),
    [
        (["LEVEL1_RADIOMETRIC_RESCALING"], False),
        (["LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"], False),
        (["LEVEL1_RADIOMETRIC_RESCALING"], True),
    ],
)
def test_mtl_without_rescaling_groups(landsat_dir, tmp_path, groups, level1):
    text = _mtl(landsat_dir).read_text()
    text = _as_level1(text) if level1 else text
    for group in groups:
        text = _odl_without(text, group)
    path = _write(tmp_path, "norescale_MTL.txt", text)
    with pytest.raises(MetadataError, match="radiometric rescaling") as err:
        read_metadata(path)
    assert str(path) in str(err.value) and groups[0] in str(err.value)


def test_mtl_json_without_rescaling_group(landsat_dir, tmp_path):
    doc = json.loads(_mtl(landsat_dir, "json").read_text())
    del doc["LANDSAT_METADATA_FILE"]["LEVEL1_RADIOMETRIC_RESCALING"]
    path = _write(tmp_path, "x_MTL.json", json.dumps(doc))
    with pytest.raises(MetadataError, match="LEVEL1_RADIOMETRIC_RESCALING"):
        read_metadata(path)


def test_mtl_missing_key_and_bad_number(landsat_dir, tmp_path):
    text = _mtl(landsat_dir).read_text()
    no_sun = re.sub(r"\n\s*SUN_ELEVATION = .*", "", text)
    with pytest.raises(MetadataError, match=r"IMAGE_ATTRIBUTES\.SUN_ELEVATION is missing"):
        read_metadata(_write(tmp_path, "a_MTL.txt", no_sun))
    bad = text.replace("RADIANCE_MULT_BAND_4 = 1.0328E-02", "RADIANCE_MULT_BAND_4 = lots")
    with pytest.raises(MetadataError, match=r"RADIANCE_MULT_BAND_4 = 'lots' is not a number"):
        read_metadata(_write(tmp_path, "b_MTL.txt", bad))
    half = re.sub(r"\n\s*RADIANCE_ADD_BAND_4 = .*", "", text)
    with pytest.raises(MetadataError, match="band B4: radiance_add is missing"):
        read_metadata(_write(tmp_path, "c_MTL.txt", half))


@pytest.mark.parametrize("spacecraft", ["LANDSAT_7", "SPOT_6"])
def test_unknown_spacecraft(landsat_dir, tmp_path, spacecraft):
    text = _mtl(landsat_dir).read_text().replace('"LANDSAT_8"', f'"{spacecraft}"')
    path = _write(tmp_path, "u_MTL.txt", text)
    with pytest.raises(UnknownSensorError, match=spacecraft) as err:
        read_metadata(path)
    assert str(path) in str(err.value) and "landsat8" in str(err.value)


def test_collection1_mtl_is_refused_clearly(tmp_path):
    path = _write(
        tmp_path, "c1_MTL.txt", "GROUP = L1_METADATA_FILE\n  GROUP = METADATA_FILE_INFO\n"
    )
    with pytest.raises(MetadataError, match="Collection 1"):
        read_metadata(path)


# ----------------------------------------------------------------------------- dispatch


def test_missing_path_names_it(tmp_path):
    with pytest.raises(MetadataError, match="no such file or folder") as err:
        read_metadata(tmp_path / "nothing_MTL.txt")
    assert "nothing_MTL.txt" in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "content",
    [
        bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
        b'{"type": "Feature"}',
        b"<a><b/></a>",
    ],
)
def test_garbage_is_not_recognised(tmp_path, content):
    path = tmp_path / "scene_MTL.txt"
    path.write_bytes(content)
    with pytest.raises(MetadataError, match="not a recognised product metadata file") as err:
        read_metadata(path)
    assert str(path) in str(err.value) and "MTD_MSIL1C.xml" in str(err.value)


def test_empty_file_and_empty_folder(tmp_path):
    (tmp_path / "e_MTL.txt").write_text("")
    with pytest.raises(MetadataError, match="empty"):
        read_metadata(tmp_path / "e_MTL.txt")
    folder = tmp_path / "scene"
    folder.mkdir()
    with pytest.raises(MetadataError, match="no product metadata file found") as err:
        read_metadata(folder)
    assert "*_MTL.txt" in str(err.value)


def test_ambiguous_folder(landsat_dir, tmp_path):
    for name in ("A_MTL.txt", "B_MTL.txt"):
        shutil.copy(_mtl(landsat_dir), tmp_path / name)
    with pytest.raises(MetadataError, match="several metadata files"):
        read_metadata(tmp_path)


def test_a_new_format_plugs_in_with_one_line(monkeypatch, tmp_path):
    calls = []

    def read(path: Path) -> SceneMetadata:
        calls.append(path)
        raise MetadataError(f"{path}: read by the plug-in")

    module = types.ModuleType("eo_test_plugin")
    module.FORMAT = MetadataFormat(  # type: ignore[attr-defined]
        name="Plug-in format",
        patterns=("PLUG_*.XML",),
        sniff=lambda p, head: b"<Plug_Document" in head,
        read=read,
    )
    monkeypatch.setitem(sys.modules, "eo_test_plugin", module)
    monkeypatch.setattr(readers, "READER_MODULES", (*readers.READER_MODULES, "eo_test_plugin"))
    (tmp_path / "PLUG_X.XML").write_text("<Plug_Document/>")
    with pytest.raises(MetadataError, match="read by the plug-in"):
        read_metadata(tmp_path)
    assert calls == [tmp_path / "PLUG_X.XML"]
    assert [f.name for f in readers.formats()][-1] == "Plug-in format"


# ----------------------------------------------------------------------------- Sentinel-2


@pytest.fixture(scope="module")
def s2(s2_dir: Path) -> SceneMetadata:
    return read_metadata(s2_dir)


def test_s2_values_as_printed(s2):
    u = 0.967801407960869
    assert s2.sensor == "sentinel2a"
    assert (s2.u, s2.quantification_value) == (u, 10000.0)
    assert s2.earth_sun_distance == pytest.approx(1.0 / math.sqrt(u), rel=1e-15)
    assert s2.earth_sun_distance == pytest.approx(1.0164988, abs=1e-7)
    assert s2.processing_baseline == "02.09"
    assert s2.processing_level == "L1C"
    assert s2.datetime == dt.datetime(
        2020, 7, 17, 22, 20, 29, 740125, tzinfo=dt.UTC
    )  # SENSING_TIME
    assert s2.sun_elevation == pytest.approx(90.0 - 45.183085206095, abs=1e-12)
    assert s2.sun_azimuth == 36.1960474596642
    assert s2.epsg == 32701 and s2.mgrs_tile == "01LAC"
    assert s2.cloud_cover == 5.4828
    assert s2.extra["relative_orbit"] == 29 and s2.extra["orbit_state"] == "descending"
    assert list(s2.bands) == ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A",
                              "B09", "B10", "B11", "B12"]  # fmt: skip
    b01, b12 = s2.band("B01"), s2.band("B12")
    assert (b01.esun, b12.esun, s2.band("B8A").esun) == (1884.69, 85.25, 955.32)
    assert b01.reflectance_mult == 1e-4 and b01.reflectance_add == 0.0  # no offset before 04.00
    assert b01.reflectance_sun_corrected and (b01.nodata, b01.saturation) == (0, 65535)
    assert s2.view_incidence_angle == pytest.approx(3.08, abs=0.01)
    assert s2.extra["view_incidence_angles"]["B01"]["zenith"] == 3.36687397628323
    assert s2.files["B8A"].endswith("_B8A.jp2") and s2.files["B8A"].startswith("GRANULE/")


def test_s2_footprint_crosses_the_antimeridian(s2):
    assert s2.footprint["type"] == "MultiPolygon"
    west, south, east, north = s2.bbox
    assert west > east
    assert (west, east) == pytest.approx((179.256949189, -179.70343), abs=1e-9)
    assert (south, north) == pytest.approx((-16.351723988, -15.345453706), abs=1e-9)


def _s2_copy(s2_dir: Path, tmp_path: Path, edit=lambda t: t, tile: bool = True) -> Path:
    text = edit((s2_dir / "MTD_MSIL1C.xml").read_text())
    path = _write(tmp_path, "MTD_MSIL1C.xml", text)
    if tile:
        shutil.copy(s2_dir / "MTD_TL.xml", tmp_path / "MTD_TL.xml")
    return path


def test_s2_without_tile_file_computes_sun_angles(s2_dir, s2, tmp_path):
    alone = read_metadata(_s2_copy(s2_dir, tmp_path, tile=False))
    assert alone.epsg is None and alone.view_incidence_angle is None
    assert alone.datetime == dt.datetime(2020, 7, 17, 22, 19, 41, 24000, tzinfo=dt.UTC)
    assert "computed" in alone.extra["sun_angles"]
    # Same sun within the ~50 s and ~50 km that separate datatake start/footprint centre
    # from tile sensing time/tile centre.
    assert alone.sun_elevation == pytest.approx(s2.sun_elevation, abs=0.5)
    assert alone.sun_azimuth == pytest.approx(s2.sun_azimuth, abs=0.5)
    assert alone.bands == s2.bands


_OFFSETS = (
    "<Radiometric_Offset_List>"
    + "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>' for i in range(13))
    + "</Radiometric_Offset_List>"
)


def test_s2_baseline_04_offset(s2_dir, tmp_path):
    def edit(text: str) -> str:
        text = text.replace("<PROCESSING_BASELINE>02.09<", "<PROCESSING_BASELINE>04.00<")
        return text.replace("</QUANTIFICATION_VALUE>", "</QUANTIFICATION_VALUE>" + _OFFSETS)

    meta = read_metadata(_s2_copy(s2_dir, tmp_path, edit))
    assert meta.processing_baseline == "04.00"
    for band in meta.bands.values():
        assert band.reflectance_mult == 1e-4 and band.reflectance_add == pytest.approx(-0.1)
    assert meta.extra["radio_add_offset"]["B8A"] == -1000.0


def test_s2_baseline_04_without_offsets_is_incomplete(s2_dir, tmp_path):
    path = _s2_copy(s2_dir, tmp_path, lambda t: t.replace(">02.09<", ">04.00<", 1))
    with pytest.raises(MetadataError, match="Radiometric_Offset_List"):
        read_metadata(path)


def test_s2b_and_unknown_spacecraft(s2_dir, tmp_path):
    path = _s2_copy(s2_dir, tmp_path, lambda t: t.replace(">Sentinel-2A<", ">Sentinel-2B<"))
    assert read_metadata(path).sensor == "sentinel2b"
    path = _s2_copy(s2_dir, tmp_path, lambda t: t.replace(">Sentinel-2A<", ">Sentinel-2Z<"))
    with pytest.raises(UnknownSensorError, match="Sentinel-2Z") as err:
        read_metadata(path)
    assert str(path) in str(err.value)


def test_s2_truncated_and_incomplete(s2_dir, tmp_path):
    path = _s2_copy(s2_dir, tmp_path, lambda t: t[: len(t) // 2])
    with pytest.raises(MetadataError, match="truncated XML") as err:
        read_metadata(path)
    assert str(path) in str(err.value)
    path = _s2_copy(s2_dir, tmp_path, lambda t: re.sub(r"<U>.*?</U>", "", t))
    with pytest.raises(MetadataError, match=r"Reflectance_Conversion\.U is missing"):
        read_metadata(path)
    tile_cut = (s2_dir / "MTD_TL.xml").read_text()[:5000]
    path = _s2_copy(s2_dir, tmp_path)
    (tmp_path / "MTD_TL.xml").write_text(tile_cut)
    with pytest.raises(MetadataError, match=r"MTD_TL\.xml: malformed or truncated XML"):
        read_metadata(path)


def test_s2_other_levels_are_refused(s2_dir, tmp_path):
    path = _s2_copy(
        s2_dir, tmp_path, lambda t: t.replace("Level-1C_User_Product", "Level-2Ap_User_Product")
    )
    with pytest.raises(MetadataError, match="only Sentinel-2 Level-1C and Level-2A"):
        read_metadata(path)


def test_parse_mtl_formats_agree(landsat_dir):
    groups = [parse_mtl(_mtl(landsat_dir, ext)) for ext in ("txt", "json", "xml")]
    assert groups[0] == groups[1] == groups[2]


def test_s2_tile_file_alone_says_what_to_pass(s2_dir):
    with pytest.raises(MetadataError, match=r"pass the product's MTD_MSIL1C\.xml"):
        read_metadata(s2_dir / "MTD_TL.xml")


@pytest.mark.parametrize(
    ("projection", "epsg"),
    [
        ('MAP_PROJECTION = "UTM"\n    UTM_ZONE = 1', 32601),
        ('MAP_PROJECTION = "UTM"\n    UTM_ZONE = -19', 32719),
        ('MAP_PROJECTION = "PS"\n    TRUE_SCALE_LAT = -71.00000', 3031),
        ('MAP_PROJECTION = "AEA"', None),
    ],
)
def test_landsat_epsg_from_projection(landsat_dir, tmp_path, projection, epsg):
    text = _mtl(landsat_dir).read_text()
    text = text.replace('MAP_PROJECTION = "UTM"\n    DATUM = "WGS84"\n    ELLIPSOID = "WGS84"\n    UTM_ZONE = 19',
                        f'{projection}\n    DATUM = "WGS84"', 1)  # fmt: skip
    assert read_metadata(_write(tmp_path, "p_MTL.txt", text)).epsg == epsg


def test_landsat_bad_utm_zone(landsat_dir, tmp_path):
    text = _mtl(landsat_dir).read_text().replace("UTM_ZONE = 19", "UTM_ZONE = 61", 1)
    with pytest.raises(MetadataError, match="UTM_ZONE = 61 is not a UTM zone"):
        read_metadata(_write(tmp_path, "z_MTL.txt", text))


def test_s2_several_granules_one_metadata_each(s2_dir, tmp_path):
    """A product of two granules (the layout before 2016) -> two SceneMetadata."""
    from eo_pipeline.catalogs.readers.sentinel2 import read_granules

    text = (s2_dir / "MTD_MSIL1C.xml").read_text()
    granule = re.search(r"<Granule .*?</Granule>", text, re.S).group(0)
    other = granule.replace("L1C_T01LAC_A026481", "L1C_T01LAD_A026481")
    (tmp_path / "MTD_MSIL1C.xml").write_text(text.replace(granule, granule + other))
    for name in ("L1C_T01LAC_A026481_20200717T221944", "L1C_T01LAD_A026481_20200717T221944"):
        (tmp_path / "GRANULE" / name).mkdir(parents=True)
        shutil.copy(s2_dir / "MTD_TL.xml", tmp_path / "GRANULE" / name / "MTD_TL.xml")
    metas = read_granules(tmp_path)
    assert [m.mgrs_tile for m in metas] == ["01LAC", "01LAD"]
    assert metas[0].product_id.endswith("_01LAC") and metas[1].product_id.endswith("_01LAD")
    assert metas[1].files["B04"].startswith("GRANULE/L1C_T01LAD_A026481_20200717T221944/")
    with pytest.raises(MetadataError, match="holds 2 granules"):
        read_metadata(tmp_path)

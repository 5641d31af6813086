"""DIMAP V2 documents: what read_metadata takes from them, and the errors on bad ones."""

from __future__ import annotations

import datetime as dt
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer

from eo_pipeline import read_metadata
from eo_pipeline.catalogs import sensors
from eo_pipeline.catalogs.scene import BandCalibration
from eo_pipeline.errors import MetadataError, UnknownSensorError
from eo_pipeline.kernels.solar import earth_sun_distance
from eo_pipeline.simulation.dimap import DimapGroup, DimapProduct, DimapScene, write_dimap

EPSG = 32642  # UTM 42N: Kazakhstan
LEFT, TOP = 500_000.0, 5_700_000.0
WHEN = dt.datetime(2024, 6, 21, 6, 10, 30, 250000, tzinfo=dt.UTC)
SUN = (58.25, 151.5)  # elevation, azimuth
# Not the sensor file's nominal gains (9.5, 9.5, 10, 11, 16): the product's numbers must win.
GAINS = {"P": 8.7, "B0": 9.1, "B1": 10.4, "B2": 12.2, "B3": 15.3}


def dn_field(shape: tuple[int, int], seed: int, lo: int = 50, hi: int = 3900) -> np.ndarray:
    """A smooth uint16 DN field with a nodata corner."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    f = 0.5 + 0.3 * np.sin(x / 17.0 + seed) * np.cos(y / 23.0) + 0.1 * rng.random(shape)
    dn = (lo + (hi - lo) * np.clip(f, 0, 1)).astype(np.uint16)
    dn[:3, :3] = 0
    return dn


def write_product(
    folder: Path,
    *,
    ms_px: int = 75,
    tile: int = 256,
    gains: Mapping[str, float] = GAINS,
    bias: float = 0.0,
    ms: np.ndarray | None = None,
    pan: bool = True,
    dataset: str = "KZ1_TEST",
) -> DimapProduct:
    """A KazEOSat-1 P + MS DIMAP V2 delivery (1 m PAN, 4 m MS) written by our writer."""
    sens = sensors.get("kazeosat1")
    folder.mkdir(parents=True, exist_ok=True)
    if ms is None:
        ms = np.stack([dn_field((ms_px, ms_px), k) for k in range(4)])
    ms_px = ms.shape[1]
    groups = []
    if pan:
        groups.append(
            DimapGroup("P", (sens.band("P"),), (dn_field((4 * ms_px, 4 * ms_px), 9),), 1.0)
        )
    groups.append(DimapGroup("MS", tuple(sens.band(f"B{k}") for k in range(4)), tuple(ms), 4.0))
    extent = 4.0 * ms_px
    xs = [LEFT, LEFT + extent, LEFT + extent, LEFT]
    ys = [TOP, TOP, TOP - extent, TOP - extent]
    lons, lats = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(xs, ys)
    cal = {b: BandCalibration(band=b, gain=g, bias=bias) for b, g in gains.items()}
    scene = DimapScene(
        sensor=sens, dataset=dataset, tile=tile, epsg=EPSG, left=LEFT, top=TOP, when=WHEN,
        sun_elevation=SUN[0], sun_azimuth=SUN[1], cloud_cover=12.5,
        corners=list(zip(lons, lats, strict=True)), calibration=cal,
    )  # fmt: skip
    return write_dimap(folder, scene, groups)


def edit(doc: Path, change: Callable[[ET.Element], None]) -> Path:
    """Rewrite a document after ``change`` mutated its tree."""
    tree = ET.parse(doc)
    change(tree.getroot())
    tree.write(doc, encoding="UTF-8", xml_declaration=True)
    return doc


@pytest.fixture
def product(tmp_path: Path) -> DimapProduct:
    return write_product(tmp_path / "delivery")


# --------------------------------------------------------------------------- what is read


def test_reads_every_field_of_a_kazeosat1_document(product: DimapProduct) -> None:
    meta = read_metadata(product.documents["MS"])
    sens = sensors.get("kazeosat1")
    assert meta.sensor == "kazeosat1"
    assert meta.datetime == WHEN.replace(microsecond=250000)
    assert (meta.sun_elevation, meta.sun_azimuth) == pytest.approx(SUN)
    assert meta.earth_sun_distance == pytest.approx(float(earth_sun_distance(WHEN)), abs=1e-9)
    assert meta.processing_level == "ORT" and meta.epsg == EPSG and meta.bit_depth == 12
    assert meta.cloud_cover == pytest.approx(12.5)
    assert meta.product_id == "KZ1_TEST_MS"
    assert list(meta.bands) == ["B0", "B1", "B2", "B3"]
    for b, cal in meta.bands.items():
        assert cal.gain == GAINS[b] and cal.bias == 0.0
        assert cal.radiance_mult == pytest.approx(1.0 / GAINS[b], rel=1e-15)
        assert cal.radiance_add == 0.0
        assert cal.esun == sens.band(b).esun
        assert (cal.nodata, cal.saturation) == (0, 4095)
    west, south, east, north = meta.bbox
    lon, lat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(LEFT, TOP)
    assert (west, north) == pytest.approx((lon, lat), abs=1e-3)
    assert meta.footprint["type"] == "Polygon" and east > west and north > south
    ex = meta.extra
    assert ex["profile"] == "KZ1_ORTHO" and ex["radiometric_processing"] == "BASIC"
    assert ex["special_values"] == {"NODATA": 0, "SATURATED": 4095}
    assert (ex["rows"], ex["cols"], ex["tile_size"]) == (75, 75, (256, 256))
    assert ex["band_order"] == ["B0", "B1", "B2", "B3"]
    assert ex["geoposition"] == {"ulxmap": LEFT, "ulymap": TOP, "xdim": 4.0, "ydim": 4.0}
    assert meta.view_off_nadir == 0.0 and meta.view_incidence_angle == 0.0


def test_pan_tile_layout(product: DimapProduct) -> None:
    meta = read_metadata(product.documents["P"])
    ex = meta.extra
    assert (ex["rows"], ex["cols"], ex["tile_count"]) == (300, 300, (2, 2))
    assert [(t["row"], t["col"]) for t in ex["tiles"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(t["bands"] == ["P"] for t in ex["tiles"])
    assert sorted(meta.files) == ["IMG_R1C1", "IMG_R1C2", "IMG_R2C1", "IMG_R2C2"]
    assert meta.files["IMG_R2C1"].endswith("_R2C1.TIF")
    assert (Path(meta.source).parent / meta.files["IMG_R2C1"]).is_file()
    assert list(meta.bands) == ["P"] and meta.bands["P"].gain == GAINS["P"]


def test_found_in_its_folder_and_reflectance_products(tmp_path: Path) -> None:
    delivery = write_product(tmp_path / "ms", pan=False)
    assert read_metadata(tmp_path / "ms").source == str(delivery.documents["MS"])

    def to_reflectance(root: ET.Element) -> None:
        root.find(".//Radiometric_Settings/RADIOMETRIC_PROCESSING").text = "REFLECTANCE"  # type: ignore[union-attr]
        bml = root.find(".//Band_Measurement_List")
        for b in ("B0", "B1", "B2", "B3"):
            br = ET.SubElement(bml, "Band_Reflectance")  # type: ignore[arg-type]
            for tag, text in (("BAND_ID", b), ("GAIN", "10000"), ("BIAS", "0.001")):
                ET.SubElement(br, tag).text = text

    meta = read_metadata(edit(delivery.documents["MS"], to_reflectance))
    cal = meta.bands["B2"]
    assert cal.reflectance_mult == 1e-4 and cal.reflectance_add == 0.001
    assert cal.reflectance_sun_corrected and cal.radiance_mult is None


def test_pleiades_conventions_band_order_centre_and_extent(product: DimapProduct) -> None:
    """Full Band_Display_Order gives the file band order (Pléiades stores B2 B1 B0 B3); the
    Center located values are picked among others; a Bounding_Box extent listing its centre
    as a fifth vertex is reduced to its hull; angles are read."""

    def pleiades(root: ET.Element) -> None:
        order = root.find(".//Band_Display_Order")
        ET.SubElement(order, "ALPHA_CHANNEL").text = "B3"  # type: ignore[arg-type]
        area = root.find("Geometric_Data/Use_Area")
        top = ET.Element("Located_Geometric_Values")
        ET.SubElement(top, "LOCATION_TYPE").text = "Top Center"
        sun = ET.SubElement(top, "Solar_Incidences")
        ET.SubElement(sun, "SUN_ELEVATION").text = "10.0"
        ET.SubElement(sun, "SUN_AZIMUTH").text = "10.0"
        area.insert(0, top)  # type: ignore[union-attr]
        angles = root.find(".//Located_Geometric_Values/Acquisition_Angles")
        assert angles is not None
        for tag, text in (("AZIMUTH_ANGLE", "187.5"), ("VIEWING_ANGLE", "14.2")):
            found = angles.find(tag)
            (found if found is not None else ET.SubElement(angles, tag)).text = text
        extent = root.find("Dataset_Content/Dataset_Extent")
        assert extent is not None
        extent.find("EXTENT_TYPE").text = "Bounding_Box"  # type: ignore[union-attr]
        corners = [
            (float(e.findtext("LON") or ""), float(e.findtext("LAT") or ""))
            for e in extent.iter("Vertex")
        ]
        centre = ET.SubElement(extent, "Vertex")
        ET.SubElement(centre, "LON").text = repr(sum(p[0] for p in corners) / 4)
        ET.SubElement(centre, "LAT").text = repr(sum(p[1] for p in corners) / 4)

    before = read_metadata(product.documents["MS"])
    meta = read_metadata(edit(product.documents["MS"], pleiades))
    assert meta.extra["band_order"] == ["B2", "B1", "B0", "B3"]
    assert meta.extra["band_order_source"] == "Band_Display_Order"
    assert meta.extra["tiles"][0]["bands"] == ["B2", "B1", "B0", "B3"]
    assert (meta.sun_elevation, meta.sun_azimuth) == pytest.approx(SUN)
    assert (meta.view_azimuth, meta.view_off_nadir) == (187.5, 14.2)
    assert meta.bbox == pytest.approx(before.bbox)
    assert len(meta.footprint["coordinates"][0]) == 5  # 4 corners + closing point


def add_raster_index(order: list[str]) -> Callable[[ET.Element], None]:
    """A ``Raster_Index_List`` saying the file holds bands in ``order``."""

    def change(root: ET.Element) -> None:
        files = root.find("Raster_Data/Data_Access/Data_Files")
        index = ET.SubElement(ET.SubElement(files, "Raster_Display"), "Raster_Index_List")  # type: ignore[arg-type]
        for i, b in enumerate(order, start=1):
            entry = ET.SubElement(index, "Raster_Index")
            ET.SubElement(entry, "BAND_ID").text = b
            ET.SubElement(entry, "BAND_INDEX").text = str(i)

    return change


def test_raster_index_list_gives_the_file_band_order(product: DimapProduct) -> None:
    meta = read_metadata(edit(product.documents["MS"], add_raster_index(["B3", "B0", "B1", "B2"])))
    assert meta.extra["band_order"] == ["B3", "B0", "B1", "B2"]
    assert meta.extra["band_order_source"] == "Raster_Index_List"
    assert meta.extra["tile_overlap"] == (0, 0) and meta.extra["tile_count"] == (1, 1)


def test_time_falls_back_to_the_strip_imaging_date(product: DimapProduct) -> None:
    def no_time(root: ET.Element) -> None:
        lgv = root.find(".//Located_Geometric_Values")
        lgv.remove(lgv.find("TIME"))  # type: ignore[union-attr, arg-type]

    meta = read_metadata(edit(product.documents["MS"], no_time))
    assert meta.datetime == WHEN.replace(microsecond=250000)


# ------------------------------------------------------------------------------ bad input


def _remove(xpath: str, *, match: str | None = None) -> Callable[[ET.Element], None]:
    def change(root: ET.Element) -> None:
        for parent in root.iter():
            for el in list(parent):
                if el in root.findall(xpath) and (match is None or el.findtext("BAND_ID") == match):
                    parent.remove(el)

    return change


def _set(xpath: str, text: str) -> Callable[[ET.Element], None]:
    def change(root: ET.Element) -> None:
        root.find(xpath).text = text  # type: ignore[union-attr]

    return change


BAD: dict[str, tuple[Callable[[ET.Element], None], str]] = {
    "missing Band_Radiance": (
        _remove(".//Band_Measurement_List/Band_Radiance", match="B2"),
        r"Band_Measurement_List has no Band_Radiance for band\(s\) B2 .*GAIN and BIAS",
    ),
    "GAIN not a number": (
        _set(".//Band_Radiance/GAIN", "GAIN"),
        r"Band_Radiance\[BAND_ID=B0\]\.GAIN = 'GAIN' is not a number",
    ),
    "GAIN zero": (_set(".//Band_Radiance/GAIN", "0"), r"GAIN = 0.0 must be positive"),
    "unknown profile": (
        _set("Metadata_Identification/METADATA_PROFILE", "XYZ_ORTHO"),
        r"METADATA_PROFILE = 'XYZ_ORTHO' is a DIMAP profile this reader does not know; known: "
        r"PHR_",
    ),
    "DIMAP V1": (
        lambda r: r.find("Metadata_Identification/METADATA_FORMAT").set("version", "1.1"),  # type: ignore[union-attr]
        r"version '1.1' is DIMAP V1",
    ),
    "display stretched": (
        _set(".//Radiometric_Settings/RADIOMETRIC_PROCESSING", "LINEAR"),
        r"RADIOMETRIC_PROCESSING = 'LINEAR'.*order the product with radiometric processing BASIC",
    ),
    "no sun": (
        _remove(".//Located_Geometric_Values/Solar_Incidences"),
        r"Located_Geometric_Values\[LOCATION_TYPE=Center\]\.Solar_Incidences\.SUN_ELEVATION is "
        r"missing",
    ),
    "no mission": (
        _remove(".//Strip_Source/MISSION"),
        r"Strip_Source\.MISSION is missing",
    ),
    "no vertices": (
        _remove(".//Dataset_Extent/Vertex"),
        r"Dataset_Extent\.Vertex: 0 vertices",
    ),
    "NBANDS disagrees": (
        _set(".//Raster_Dimensions/NBANDS", "5"),
        r"NBANDS = 5 but the document names 4 band\(s\)",
    ),
    "no files": (
        _remove(".//Data_Files/Data_File"),
        r"Data_Files\.Data_File is missing; the document lists no image file",
    ),
    "bad special value": (
        _set(".//Special_Value/SPECIAL_VALUE_COUNT", "0.5"),
        r"Special_Value NODATA SPECIAL_VALUE_COUNT = '0.5' is not a DN",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_documents_name_the_element_and_the_file(product: DimapProduct, case: str) -> None:
    change, message = BAD[case]
    doc = edit(product.documents["MS"], change)
    with pytest.raises(MetadataError, match=message) as err:
        read_metadata(doc)
    assert str(doc) in str(err.value)


def test_a_known_profile_of_a_mission_without_sensor_file(product: DimapProduct) -> None:
    def neo5(root: ET.Element) -> None:  # Pléiades Neo 5 was lost at launch (Vega C, 2022)
        root.find("Metadata_Identification/METADATA_PROFILE").text = "PNEO_ORTHO"  # type: ignore[union-attr]
        root.find(".//Strip_Source/MISSION").text = "PNEO"  # type: ignore[union-attr]
        root.find(".//Strip_Source/MISSION_INDEX").text = "5"  # type: ignore[union-attr]

    doc = edit(product.documents["MS"], neo5)
    with pytest.raises(UnknownSensorError, match=r"MISSION = 'PNEO', MISSION_INDEX = '5' \(sensor "
                       r"'pleiadesneo5'\) has no sensor file"):  # fmt: skip
        read_metadata(doc)


def test_truncated_and_foreign_documents(product: DimapProduct, tmp_path: Path) -> None:
    doc = product.documents["MS"]
    text = doc.read_text()
    doc.write_text(text[: len(text) // 2])
    with pytest.raises(MetadataError, match=re.escape(f"{doc}: malformed or truncated XML")):
        read_metadata(doc)
    old = tmp_path / "DIM_OLD.XML"
    old.write_text("<PHR_DIMAP_Document><Metadata_Identification/></PHR_DIMAP_Document>")
    with pytest.raises(MetadataError, match="pre-V2 PHR_DIMAP_Document"):
        read_metadata(old)


def test_earth_sun_distance_is_computed_not_nominal(product: DimapProduct) -> None:
    meta = read_metadata(product.documents["P"])
    d = meta.earth_sun_distance
    assert 1.015 < d < 1.017  # near aphelion on 21 June
    assert math.isfinite(d) and "computed" in meta.extra["earth_sun_distance"]

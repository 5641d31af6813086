"""Sentinel-2 Level-1C product metadata: ``MTD_MSIL1C.xml`` (+ its tile ``MTD_TL.xml``).

Reference: Sentinel-2 Products Specification Document (S2-PDGS-TAS-DI-PSD) and ESA's note on
processing baseline 04.00 (the radiometric offset, from 25 January 2022).

What is read
------------
From ``MTD_MSIL1C.xml``: ``SPACECRAFT_NAME`` (-> ``sentinel2a``/``sentinel2b``...),
``PRODUCT_START_TIME``, ``PROCESSING_BASELINE``, ``QUANTIFICATION_VALUE`` (Q), ``U``,
``SOLAR_IRRADIANCE`` per band (-> ``esun``), ``RADIO_ADD_OFFSET`` per band (baseline >= 04.00;
absent -> 0), ``Special_Values`` (NODATA, SATURATED), ``Product_Footprint`` ``EXT_POS_LIST``,
``Cloud_Coverage_Assessment``, ``SENSING_ORBIT_NUMBER``/``DIRECTION`` and the granule's
``IMAGE_FILE`` list. Reflectance is ``rho = (DN + RADIO_ADD_OFFSET) / Q``, so per band
``reflectance_mult = 1 / Q``, ``reflectance_add = RADIO_ADD_OFFSET / Q`` and
``reflectance_sun_corrected = True``; ``earth_sun_distance = 1 / sqrt(U)`` (U is the
``(d0/d)^2`` correction ESA applied).

From ``MTD_TL.xml`` (beside the MTD or in ``GRANULE/*/``): ``SENSING_TIME`` (then used as
``datetime``), ``HORIZONTAL_CS_CODE`` (EPSG), ``Mean_Sun_Angle`` (elevation = 90 - zenith),
``Mean_Viewing_Incidence_Angle_List`` (mean over bands -> ``view_incidence_angle``,
``view_azimuth``; per band in ``extra``) and the tile geocoding. Without a tile file the sun
angles are computed at the footprint centre with :mod:`eo_pipeline.kernels.solar` at
``PRODUCT_START_TIME`` and ``extra["sun_angles"]`` says so.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from eo_pipeline.catalogs import sensors
from eo_pipeline.catalogs.geometry import footprint_from_corners
from eo_pipeline.catalogs.readers._common import (
    MetadataFormat,
    child,
    child_text,
    children,
    local_name,
    need_text,
    parse_number,
    parse_utc,
    parse_xml,
)
from eo_pipeline.catalogs.scene import BandCalibration, SceneMetadata
from eo_pipeline.errors import MetadataError, UnknownSensorError
from eo_pipeline.kernels.ephemeris import sun_position_at

__all__ = ["FORMAT", "read_mtd_msil1c"]

# ESA's bandId order in the MTD; ids as the L1C file names spell them.
BAND_IDS = tuple("B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12".split())
_GENERAL = "General_Info"
_CHARACTERISTICS = f"{_GENERAL}/Product_Image_Characteristics"


def _band_id(physical: str) -> str:
    """``B1`` -> ``B01``, ``B8A`` -> ``B8A`` (the MTD's physicalBand to the file-name id)."""
    match = re.fullmatch(r"B(\d+)(A?)", physical.strip().upper())
    if match is None:
        return physical
    return (
        f"B{int(match.group(1))}{match.group(2)}"
        if match.group(2)
        else f"B{int(match.group(1)):02d}"
    )


def _kids(root: ET.Element, xpath: str, name: str) -> list[ET.Element]:
    """Children named ``name`` of the element at ``xpath`` (empty when that is absent)."""
    parent = child(root, xpath)
    return [] if parent is None else list(children(parent, name))


def _need(path: Path, root: ET.Element, xpath: str) -> str:
    return need_text(
        path, root, xpath, hint="the MTD is incomplete (compare it with the file ESA delivers)"
    )


def _number(path: Path, where: str, text: str) -> float:
    return parse_number(text, where=f"{path}: {where}")


def _per_band(path: Path, elems: list[ET.Element], what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for elem in elems:
        index = elem.get("bandId", elem.get("band_id"))
        if index is None or not index.isdigit() or int(index) >= len(BAND_IDS):
            raise MetadataError(f"{path}: {what} has a bad bandId {index!r}")
        out[BAND_IDS[int(index)]] = _number(path, f"{what}[bandId={index}]", elem.text or "")
    return out


def _find_tile(path: Path) -> Path | None:
    beside = path.with_name("MTD_TL.xml")
    if beside.is_file():
        return beside
    found = sorted(path.parent.glob("GRANULE/*/MTD_TL.xml"))
    return found[0] if len(found) == 1 else None


def _circular_mean(degrees: list[float]) -> float:
    s = sum(math.sin(math.radians(d)) for d in degrees)
    c = sum(math.cos(math.radians(d)) for d in degrees)
    return math.degrees(math.atan2(s, c)) % 360.0


def _read_tile(path: Path) -> dict[str, Any]:
    root = parse_xml(path)
    if not local_name(root.tag).startswith("Level-1C_Tile_ID"):
        raise MetadataError(f"{path}: root element <{local_name(root.tag)}> is not a L1C tile file")
    tile: dict[str, Any] = {"file": path}
    tile["sensing_time"] = parse_utc(
        _need(path, root, f"{_GENERAL}/SENSING_TIME"), where=f"{path}: SENSING_TIME"
    )
    code = _need(path, root, "Geometric_Info/Tile_Geocoding/HORIZONTAL_CS_CODE")
    match = re.fullmatch(r"EPSG:(\d+)", code.strip())
    if match is None:
        raise MetadataError(f"{path}: HORIZONTAL_CS_CODE = {code!r} is not 'EPSG:<code>'")
    tile["epsg"] = int(match.group(1))
    angles = "Geometric_Info/Tile_Angles"
    zen = _need(path, root, f"{angles}/Mean_Sun_Angle/ZENITH_ANGLE")
    azi = _need(path, root, f"{angles}/Mean_Sun_Angle/AZIMUTH_ANGLE")
    tile["sun_zenith"] = _number(path, "Mean_Sun_Angle.ZENITH_ANGLE", zen)
    tile["sun_azimuth"] = _number(path, "Mean_Sun_Angle.AZIMUTH_ANGLE", azi)
    views: dict[str, tuple[float, float]] = {}
    for elem in _kids(
        root, f"{angles}/Mean_Viewing_Incidence_Angle_List", "Mean_Viewing_Incidence_Angle"
    ):
        index = elem.get("bandId", "")
        z, a = child_text(elem, "ZENITH_ANGLE"), child_text(elem, "AZIMUTH_ANGLE")
        if index.isdigit() and int(index) < len(BAND_IDS) and z is not None and a is not None:
            where = f"Mean_Viewing_Incidence_Angle[bandId={index}]"
            views[BAND_IDS[int(index)]] = (_number(path, where, z), _number(path, where, a))
    tile["views"] = {b: views[b] for b in BAND_IDS if b in views}
    geocoding: dict[str, dict[str, float]] = {}
    for pos in _kids(root, "Geometric_Info/Tile_Geocoding", "Geoposition"):
        res = pos.get("resolution", "")
        geocoding[res] = {
            k: _number(path, f"Geoposition[{res}].{k}", child_text(pos, k) or "")
            for k in ("ULX", "ULY", "XDIM", "YDIM")
        }
    for size in _kids(root, "Geometric_Info/Tile_Geocoding", "Size"):
        res = size.get("resolution", "")
        geocoding.setdefault(res, {}).update(
            {
                k: int(_number(path, f"Size[{res}].{k}", child_text(size, k) or ""))
                for k in ("NROWS", "NCOLS")
            }
        )
    tile["geocoding"] = geocoding
    tile["tile_id"] = child_text(root, f"{_GENERAL}/TILE_ID")
    return tile


def _sensor(path: Path, name: str) -> sensors.Sensor:
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    try:
        return sensors.get(key)
    except UnknownSensorError:
        raise UnknownSensorError(
            f"{path}: SPACECRAFT_NAME = {name!r} has no sensor file; known sensors: "
            f"{', '.join(sensors.names())}. Add one (sensors.register_file) or check the file"
        ) from None


def _sun_from_solar(when: Any, bbox: tuple[float, float, float, float]) -> tuple[float, float]:
    west, south, east, north = bbox
    lon = (west + ((east - west) % 360.0) / 2.0 + 180.0) % 360.0 - 180.0
    zenith, azimuth = sun_position_at(when, (south + north) / 2.0, lon)
    return 90.0 - float(zenith), float(azimuth)


def read_mtd_msil1c(path: str | Path) -> SceneMetadata:
    """Read a Sentinel-2 L1C ``MTD_MSIL1C.xml`` (and its ``MTD_TL.xml`` when found).

    Raises
    ------
    MetadataError
        Truncated or malformed XML, a product that is not L1C, or missing elements (named).
    UnknownSensorError
        ``SPACECRAFT_NAME`` without a sensor file.

    Examples
    --------
    >>> import eo_pipeline
    >>> meta = eo_pipeline.read_metadata("S2A_MSIL1C_....SAFE")  # doctest: +SKIP
    >>> meta.earth_sun_distance == 1 / meta.u ** 0.5  # doctest: +SKIP
    True
    >>> _band_id("B8"), _band_id("B8A")
    ('B08', 'B8A')
    """
    p = Path(path)
    root = parse_xml(p)
    kind = local_name(root.tag)
    if kind.endswith("_Tile_ID"):
        raise MetadataError(
            f"{p}: this is the tile metadata ({kind}); pass the product's MTD_MSIL1C.xml "
            "(or the product folder): the tile file is read from beside it"
        )
    if kind != "Level-1C_User_Product":
        raise MetadataError(
            f"{p}: a {kind} file; only Sentinel-2 Level-1C (MTD_MSIL1C.xml) is supported"
        )
    info = f"{_GENERAL}/Product_Info"
    sensor = _sensor(p, _need(p, root, f"{info}/Datatake/SPACECRAFT_NAME"))
    start = parse_utc(
        _need(p, root, f"{info}/PRODUCT_START_TIME"), where=f"{p}: PRODUCT_START_TIME"
    )
    baseline = _need(p, root, f"{info}/PROCESSING_BASELINE")
    q = _number(
        p, "QUANTIFICATION_VALUE", _need(p, root, f"{_CHARACTERISTICS}/QUANTIFICATION_VALUE")
    )
    if q <= 0:
        raise MetadataError(f"{p}: QUANTIFICATION_VALUE = {q} must be positive")
    u = _number(p, "U", _need(p, root, f"{_CHARACTERISTICS}/Reflectance_Conversion/U"))
    if u <= 0:
        raise MetadataError(f"{p}: Reflectance_Conversion.U = {u} must be positive")
    conversion = f"{_CHARACTERISTICS}/Reflectance_Conversion/Solar_Irradiance_List"
    esun = _per_band(p, _kids(root, conversion, "SOLAR_IRRADIANCE"), "SOLAR_IRRADIANCE")
    offsets_elem = child(root, f"{_CHARACTERISTICS}/Radiometric_Offset_List")
    offsets = _per_band(
        p,
        _kids(root, f"{_CHARACTERISTICS}/Radiometric_Offset_List", "RADIO_ADD_OFFSET"),
        "RADIO_ADD_OFFSET",
    )
    if offsets_elem is None and baseline >= "04.00":
        raise MetadataError(
            f"{p}: processing baseline {baseline} (>= 04.00) but no Radiometric_Offset_List; "
            "the MTD is incomplete"
        )
    special: dict[str, int] = {}
    for sv in _kids(root, _CHARACTERISTICS, "Special_Values"):
        name, index = child_text(sv, "SPECIAL_VALUE_TEXT"), child_text(sv, "SPECIAL_VALUE_INDEX")
        if name and index and index.lstrip("-").isdigit():
            special[name.upper()] = int(index)
    bands = {
        band_id: BandCalibration(
            band=band_id,
            reflectance_mult=1.0 / q,
            reflectance_add=offsets.get(band_id, 0.0) / q,
            reflectance_sun_corrected=True,
            esun=esun.get(band_id),
            nodata=special.get("NODATA", 0),
            saturation=special.get("SATURATED"),
        )
        for band_id in BAND_IDS
        if band_id in sensor.band_ids
    }
    pos_list = _need(
        p, root, "Geometric_Info/Product_Footprint/Product_Footprint/Global_Footprint/EXT_POS_LIST"
    )
    values = [_number(p, "EXT_POS_LIST", v) for v in pos_list.split()]
    if len(values) % 2 or len(values) < 6:
        raise MetadataError(f"{p}: EXT_POS_LIST must hold lat/lon pairs, got {len(values)} numbers")
    footprint = footprint_from_corners(
        [(values[i + 1], values[i]) for i in range(0, len(values), 2)], where=f"{p}: EXT_POS_LIST"
    )
    uri = _need(p, root, f"{info}/PRODUCT_URI")
    tile_match = re.search(r"_T(\d{2}[A-Z]{3})_", uri)
    files: dict[str, str] = {}
    for image in root.iter("IMAGE_FILE"):
        name = (image.text or "").strip()
        match = re.search(r"_(B\d\w|TCI)$", name)
        if match:
            files[match.group(1)] = f"{name}.jp2"
    extra: dict[str, Any] = {
        "product_start_time": start.isoformat(),
        "product_type": child_text(root, f"{info}/PRODUCT_TYPE"),
        "radio_add_offset": {b: offsets.get(b, 0.0) for b in bands},
        "physical_gains": _per_band(
            p, _kids(root, _CHARACTERISTICS, "PHYSICAL_GAINS"), "PHYSICAL_GAINS"
        ),
        "special_values": special,
    }
    orbit = child_text(root, f"{info}/Datatake/SENSING_ORBIT_NUMBER")
    if orbit and orbit.isdigit():
        extra["relative_orbit"] = int(orbit)
    direction = child_text(root, f"{info}/Datatake/SENSING_ORBIT_DIRECTION")
    if direction:
        extra["orbit_state"] = direction.lower()
    cloud_text = child_text(root, "Quality_Indicators_Info/Cloud_Coverage_Assessment")
    tile_file = _find_tile(p)
    tile = _read_tile(tile_file) if tile_file is not None else None
    if tile is not None and tile_file is not None:
        when = tile["sensing_time"]
        sun_elevation, sun_azimuth = 90.0 - tile["sun_zenith"], tile["sun_azimuth"]
        views = tile["views"]
        extra.update(
            tile_file=str(tile_file.relative_to(p.parent)),
            tile_id=tile["tile_id"],
            tile_geocoding=tile["geocoding"],
            view_incidence_angles={b: {"zenith": z, "azimuth": a} for b, (z, a) in views.items()},
            sun_angles="MTD_TL Mean_Sun_Angle",
        )
        incidence = sum(z for z, _ in views.values()) / len(views) if views else None
        view_azimuth = _circular_mean([a for _, a in views.values()]) if views else None
    else:
        when = start
        sun_elevation, sun_azimuth = _sun_from_solar(start, footprint.bbox)
        extra["sun_angles"] = (
            "computed (eo_pipeline.kernels.solar) at the footprint centre: no MTD_TL.xml"
        )
        incidence = view_azimuth = None
    return SceneMetadata(
        sensor=sensor.name,
        datetime=when,
        sun_elevation=sun_elevation,
        sun_azimuth=sun_azimuth,
        earth_sun_distance=1.0 / math.sqrt(u),
        footprint=footprint.geometry,
        bbox=footprint.bbox,
        bands=bands,
        product_id=uri.removesuffix(".SAFE"),
        processing_level="L1C",
        processing_baseline=baseline,
        quantification_value=q,
        u=u,
        mgrs_tile=tile_match.group(1) if tile_match else None,
        epsg=tile["epsg"] if tile is not None else None,
        cloud_cover=_number(p, "Cloud_Coverage_Assessment", cloud_text) if cloud_text else None,
        view_incidence_angle=incidence,
        view_azimuth=view_azimuth,
        files=files,
        source=str(p),
        extra=extra,
    )


def _sniff(path: Path, head: bytes) -> bool:
    if b"Level-1C_User_Product" in head:
        return True
    # other Sentinel-2 product or tile files: claimed so that the reader says what to pass
    return (
        b"User_Product" in head or b"_Tile_ID" in head
    ) and b"sentinel2" in head.lower().replace(b"-", b"")


FORMAT = MetadataFormat(
    name="Sentinel-2 L1C MTD_MSIL1C.xml",
    patterns=("MTD_MSIL1C.xml", "*.SAFE/MTD_MSIL1C.xml"),
    sniff=_sniff,
    read=read_mtd_msil1c,
)

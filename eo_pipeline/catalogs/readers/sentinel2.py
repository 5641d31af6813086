"""Sentinel-2 Level-1C and Level-2A products: ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` + tiles.

Reference: Sentinel-2 Products Specification Document (S2-PDGS-TAS-DI-PSD), the L2A product
format specification, and ESA's note on processing baseline 04.00 (the radiometric offsets,
from 25 January 2022).

A product is a SAFE folder, its product metadata file, or the SAFE ``.zip`` (read in place,
see :mod:`.safe`). One :class:`SceneMetadata` per **granule** (tile): products since 2016
hold one; older ones several (:func:`read_granules` returns them all).

What is read
------------
From the product metadata: ``SPACECRAFT_NAME`` (-> ``sentinel2a``/``sentinel2b``...),
``PRODUCT_START_TIME``, ``PROCESSING_BASELINE`` (one of :data:`BASELINES`, else refused),
the quantification value Q (L1C ``QUANTIFICATION_VALUE``; L2A ``BOA_QUANTIFICATION_VALUE``,
with ``AOT_``/``WVP_QUANTIFICATION_VALUE``), ``U``, ``SOLAR_IRRADIANCE`` per band (->
``esun``), the per-band offsets (L1C ``RADIO_ADD_OFFSET``, L2A ``BOA_ADD_OFFSET``; required
from baseline 04.00, absent before -> 0), ``Special_Values``, ``EXT_POS_LIST``,
``Cloud_Coverage_Assessment`` (ESA's cloud cover, -> ``cloud_cover``), the orbit, the L2A
scene classification list and each granule's ``IMAGE_FILE`` list. L2A products of
baselines 02.04-02.06 name their groups ``L2A_Product_Info``... and ``IMAGE_FILE_2A``; they
are read the same way.

- L1C: ``rho_toa = (DN + RADIO_ADD_OFFSET) / Q``: ``reflectance_mult = 1 / Q``,
  ``reflectance_add = RADIO_ADD_OFFSET / Q``, ``reflectance_sun_corrected = True``.
- L2A: ``rho_boa = (DN + BOA_ADD_OFFSET) / Q``: ``sr_scale = 1 / Q``,
  ``sr_offset = BOA_ADD_OFFSET / Q`` (so calibration refuses TOA on L2A bands).

``earth_sun_distance = 1 / sqrt(U)``. From the tile metadata (:mod:`.sentinel2_tile`):
``SENSING_TIME`` (``datetime``), the EPSG code, the mean sun angles (elevation = 90 - zenith)
and viewing angles; without a tile file the sun angles are computed at the footprint centre
(:mod:`eo_pipeline.kernels.ephemeris`) and ``extra["sun_angles"]`` says so.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
import zipfile
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
from eo_pipeline.catalogs.readers.safe import Safe, locate
from eo_pipeline.catalogs.readers.sentinel2_tile import BAND_IDS, TileMetadata, parse_tile
from eo_pipeline.catalogs.scene import BandCalibration, SceneMetadata
from eo_pipeline.errors import MetadataError, UnknownSensorError
from eo_pipeline.kernels.ephemeris import sun_position_at

__all__ = ["BASELINES", "FORMAT", "read_granules", "read_mtd_msil1c", "read_sentinel2"]

BASELINES = ("02.00", "05.99")
"""Processing baselines this reader knows (inclusive range): 02.xx and 03.xx (no offsets),
04.00 on (offsets from 25 January 2022), 05.xx (the 2022-2024 reprocessing and later)."""
_GENERAL = "General_Info"
_CHARACTERISTICS = f"{_GENERAL}/Product_Image_Characteristics"
_INFO = f"{_GENERAL}/Product_Info"
_RENAMED = {
    "L1C_L2A_Quantification_Values_List": "QUANTIFICATION_VALUES_LIST",
    "IMAGE_ID": "IMAGE_FILE",
}
_BAND_FILE = re.compile(r"_(B\d\w|TCI|AOT|WVP|SCL)(?:_(\d+)m)?$")


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


def _normalise(root: ET.Element) -> None:
    """Old L2A names (``L2A_Product_Info``, ``IMAGE_FILE_2A``...) -> the current ones, in place."""
    for elem in root.iter():
        name = local_name(elem.tag)
        new = _RENAMED.get(name, name)
        if new.startswith("L2A_") and not new.startswith("L2A_QUALITY"):
            new = new[4:]
        if new.endswith("_2A"):
            new = new[:-3]
        new = _RENAMED.get(new, new)
        if new != name:
            elem.tag = new


def _kids(root: ET.Element, xpath: str, name: str) -> list[ET.Element]:
    parent = child(root, xpath)
    return [] if parent is None else list(children(parent, name))


def _need(path: str, root: ET.Element, xpath: str) -> str:
    return need_text(
        Path(path),
        root,
        xpath,
        hint="the MTD is incomplete (compare it with the file ESA delivers)",
    )


def _number(path: str, where: str, text: str) -> float:
    return parse_number(text, where=f"{path}: {where}")


def _per_band(path: str, elems: list[ET.Element], what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for elem in elems:
        index = elem.get("bandId", elem.get("band_id"))
        if index is None or not index.isdigit() or int(index) >= len(BAND_IDS):
            raise MetadataError(f"{path}: {what} has a bad bandId {index!r}")
        out[BAND_IDS[int(index)]] = _number(path, f"{what}[bandId={index}]", elem.text or "")
    return out


def _circular_mean(degrees: list[float]) -> float:
    s = sum(math.sin(math.radians(d)) for d in degrees)
    c = sum(math.cos(math.radians(d)) for d in degrees)
    return math.degrees(math.atan2(s, c)) % 360.0


def _sensor(path: str, name: str) -> sensors.Sensor:
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    try:
        return sensors.get(key)
    except UnknownSensorError:
        raise UnknownSensorError(
            f"{path}: SPACECRAFT_NAME = {name!r} has no sensor file; known sensors: "
            f"{', '.join(sensors.names())}; {sensors.HOW_TO_ADD}, or check the file"
        ) from None


def _sun_from_solar(when: Any, bbox: tuple[float, float, float, float]) -> tuple[float, float]:
    west, south, east, north = bbox
    lon = (west + ((east - west) % 360.0) / 2.0 + 180.0) % 360.0 - 180.0
    zenith, azimuth = sun_position_at(when, (south + north) / 2.0, lon)
    return 90.0 - float(zenith), float(azimuth)


def _baseline(path: str, root: ET.Element) -> str:
    text = _need(path, root, f"{_INFO}/PROCESSING_BASELINE").strip()
    if re.fullmatch(r"\d{2}\.\d{2}", text) is None or not BASELINES[0] <= text <= BASELINES[1]:
        raise MetadataError(
            f"{path}: processing baseline {text!r} is not one this reader knows "
            f"({BASELINES[0]} to {BASELINES[1]}); its radiometric conventions (offsets, "
            "quantification) may differ. Check ESA's baseline notes and extend "
            "eo_pipeline.catalogs.readers.sentinel2.BASELINES"
        )
    return text


def _quantification(path: str, root: ET.Element, level: str) -> dict[str, float]:
    if level == "L1C":
        names = {"BOA": f"{_CHARACTERISTICS}/QUANTIFICATION_VALUE"}
    else:
        lst = f"{_CHARACTERISTICS}/QUANTIFICATION_VALUES_LIST"
        names = {k: f"{lst}/{k}_QUANTIFICATION_VALUE" for k in ("BOA", "AOT", "WVP")}
    out = {}
    for key, xpath in names.items():
        value = _number(path, xpath.rsplit("/", 1)[-1], _need(path, root, xpath))
        if value <= 0:
            raise MetadataError(f"{path}: {xpath.rsplit('/', 1)[-1]} = {value} must be positive")
        out[key] = value
    return out


def _offsets(path: str, root: ET.Element, level: str, baseline: str) -> dict[str, float]:
    group, name = (
        ("Radiometric_Offset_List", "RADIO_ADD_OFFSET")
        if level == "L1C"
        else ("BOA_ADD_OFFSET_VALUES_LIST", "BOA_ADD_OFFSET")
    )
    if child(root, f"{_CHARACTERISTICS}/{group}") is None:
        if baseline >= "04.00":
            raise MetadataError(
                f"{path}: processing baseline {baseline} (>= 04.00) but no {group}; "
                "the MTD is incomplete"
            )
        return {}
    return _per_band(path, _kids(root, f"{_CHARACTERISTICS}/{group}", name), name)


def _granules(path: str, root: ET.Element) -> list[tuple[str, list[str]]]:
    """(granule folder relative to the product, [image file paths relative to the product])."""
    out = []
    for granule in (e for e in root.iter() if local_name(e.tag) in ("Granule", "Granules")):
        ident = granule.get("granuleIdentifier", "")
        files = [(f.text or "").strip() for f in children(granule, "IMAGE_FILE")]
        files = [f for f in files if f]
        folder = next((f.split("/")[1] for f in files if f.startswith("GRANULE/")), None)
        if folder is None:  # products before 2016 give bare ids in GRANULE/<granule id>/IMG_DATA
            folder = ident
            files = [f"GRANULE/{ident}/IMG_DATA/{f}" for f in files]
        out.append((f"GRANULE/{folder}", files))
    return out


def _files(files: list[str]) -> dict[str, dict[int | None, str]]:
    """Band or layer id -> resolution (None: native) -> ``.jp2`` path."""
    out: dict[str, dict[int | None, str]] = {}
    for name in files:
        match = _BAND_FILE.search(name)
        if match:
            res = int(match.group(2)) if match.group(2) else None
            out.setdefault(match.group(1), {})[res] = f"{name}.jp2"
    return out


def _find_tile(safe: Safe, folder: str) -> str | None:
    if safe.exists("MTD_TL.xml"):  # a flat copy: the tile file beside the product file
        return "MTD_TL.xml"
    for pattern in ("MTD_TL.xml", "S2?_OPER_MTD_L1C_TL_*.xml", "*MTD*TL*.xml"):
        hits = safe.files(folder, pattern)
        if len(hits) == 1:
            return hits[0]
    return None


def _product(safe: Safe) -> tuple[ET.Element, str]:
    source = safe.href(safe.mtd)
    root = parse_xml(Path(source), safe.text(safe.mtd))
    kind = local_name(root.tag)
    if kind.endswith("_Tile_ID"):
        raise MetadataError(
            f"{source}: this is the tile metadata ({kind}); pass the product's MTD_MSIL1C.xml "
            "or MTD_MSIL2A.xml (or the SAFE folder or zip): the tile file is read from there"
        )
    if kind not in ("Level-1C_User_Product", "Level-2A_User_Product"):
        raise MetadataError(
            f"{source}: a {kind} file; only Sentinel-2 Level-1C and Level-2A user products "
            "(MTD_MSIL1C.xml, MTD_MSIL2A.xml) are supported"
        )
    _normalise(root)
    return root, source


def _special(root: ET.Element) -> dict[str, int]:
    special: dict[str, int] = {}
    for sv in _kids(root, _CHARACTERISTICS, "Special_Values"):
        name, index = child_text(sv, "SPECIAL_VALUE_TEXT"), child_text(sv, "SPECIAL_VALUE_INDEX")
        if name and index and index.lstrip("-").isdigit():
            special[name.upper()] = int(index)
    return special


def _scl_classes(root: ET.Element) -> dict[int, str]:
    out: dict[int, str] = {}
    for elem in (e for e in root.iter() if local_name(e.tag) == "Scene_Classification_ID"):
        text, index = (
            child_text(elem, "SCENE_CLASSIFICATION_TEXT"),
            child_text(elem, "SCENE_CLASSIFICATION_INDEX"),
        )
        if text and index and index.isdigit():
            out[int(index)] = text.removeprefix("SC_").lower()
    return out


def _bands(
    sensor: sensors.Sensor,
    level: str,
    q: float,
    offsets: dict[str, float],
    special: dict[str, int],
    esun: dict[str, float],
    present: set[str],
) -> dict[str, BandCalibration]:
    """Per-band calibration of the bands the product holds (L2A has no B10)."""
    out = {}
    for band_id in BAND_IDS:
        if band_id not in sensor.band_ids or (present and band_id not in present):
            continue
        if not present and level == "L2A" and band_id == "B10":
            continue
        offset = offsets.get(band_id, 0.0)
        numbers: dict[str, Any] = (
            {"reflectance_mult": 1.0 / q, "reflectance_add": offset / q,
             "reflectance_sun_corrected": True}
            if level == "L1C"
            else {"sr_scale": 1.0 / q, "sr_offset": offset / q}
        )  # fmt: skip
        out[band_id] = BandCalibration(
            band=band_id,
            esun=esun.get(band_id),
            nodata=special.get("NODATA", 0),
            saturation=special.get("SATURATED"),
            **numbers,
        )
    return out


def _footprint(path: str, root: ET.Element) -> Any:
    pos_list = _need(
        path,
        root,
        "Geometric_Info/Product_Footprint/Product_Footprint/Global_Footprint/EXT_POS_LIST",
    )
    values = [_number(path, "EXT_POS_LIST", v) for v in pos_list.split()]
    if len(values) % 2 or len(values) < 6:
        raise MetadataError(
            f"{path}: EXT_POS_LIST must hold lat/lon pairs, got {len(values)} numbers"
        )
    return footprint_from_corners(
        [(values[i + 1], values[i]) for i in range(0, len(values), 2)],
        where=f"{path}: EXT_POS_LIST",
    )


def _product_facts(safe: Safe, root: ET.Element, source: str) -> dict[str, Any]:
    """Everything the product file says that every granule shares."""
    level = "L1C" if local_name(root.tag).startswith("Level-1C") else "L2A"
    baseline = _baseline(source, root)
    quant = _quantification(source, root, level)
    u = _number(source, "U", _need(source, root, f"{_CHARACTERISTICS}/Reflectance_Conversion/U"))
    if u <= 0:
        raise MetadataError(f"{source}: Reflectance_Conversion.U = {u} must be positive")
    conversion = f"{_CHARACTERISTICS}/Reflectance_Conversion/Solar_Irradiance_List"
    uri = child_text(root, f"{_INFO}/PRODUCT_URI") or (safe.prefix.rstrip("/") or safe.root.name)
    facts: dict[str, Any] = {
        "level": level,
        "baseline": baseline,
        "quant": quant,
        "u": u,
        "sensor": _sensor(source, _need(source, root, f"{_INFO}/Datatake/SPACECRAFT_NAME")),
        "start": parse_utc(
            _need(source, root, f"{_INFO}/PRODUCT_START_TIME"),
            where=f"{source}: PRODUCT_START_TIME",
        ),
        "esun": _per_band(source, _kids(root, conversion, "SOLAR_IRRADIANCE"), "SOLAR_IRRADIANCE"),
        "offsets": _offsets(source, root, level, baseline),
        "special": _special(root),
        "footprint": _footprint(source, root),
        "uri": uri.removesuffix(".SAFE").removesuffix(".zip"),
    }
    cloud = child_text(root, "Quality_Indicators_Info/Cloud_Coverage_Assessment")
    facts["cloud"] = _number(source, "Cloud_Coverage_Assessment", cloud) if cloud else None
    extra: dict[str, Any] = {
        "product_start_time": facts["start"].isoformat(),
        "product_type": child_text(root, f"{_INFO}/PRODUCT_TYPE"),
        "physical_gains": _per_band(
            source, _kids(root, _CHARACTERISTICS, "PHYSICAL_GAINS"), "PHYSICAL_GAINS"
        ),
        "special_values": facts["special"],
        "quantification": quant,
        "safe_root": str(safe.root),
        "safe_prefix": safe.prefix,
        "safe_mtd": safe.mtd,
    }
    offsets_key = "radio_add_offset" if level == "L1C" else "boa_add_offset"
    extra[offsets_key] = {b: facts["offsets"].get(b, 0.0) for b in BAND_IDS}
    if level == "L2A":
        extra["scl_classes"] = _scl_classes(root)
    orbit = child_text(root, f"{_INFO}/Datatake/SENSING_ORBIT_NUMBER")
    if orbit and orbit.isdigit():
        extra["relative_orbit"] = int(orbit)
    direction = child_text(root, f"{_INFO}/Datatake/SENSING_ORBIT_DIRECTION")
    if direction:
        extra["orbit_state"] = direction.lower()
    facts["extra"] = extra
    return facts


def _granule(
    safe: Safe, facts: dict[str, Any], folder: str, image_files: list[str], several: bool
) -> SceneMetadata:
    source = safe.href(safe.mtd)
    files = _files(image_files)
    present = {b for b in files if b in BAND_IDS}
    q = facts["quant"]["BOA"]
    bands = _bands(
        facts["sensor"], facts["level"], q, facts["offsets"], facts["special"], facts["esun"],
        present,
    )  # fmt: skip
    extra = dict(facts["extra"])
    extra["granule"] = folder
    extra["band_files"] = {k: {str(r): p for r, p in v.items()} for k, v in files.items()}
    tile_rel = _find_tile(safe, folder)
    tile: TileMetadata | None = None
    if tile_rel is not None:
        tile = parse_tile(safe.href(tile_rel), safe.text(tile_rel))
    footprint = facts["footprint"]
    # the granule's own tile first (products before 2016 hold several tiles)
    match = re.search(r"_T(\d{2}[A-Z]{3})(?:_|$)", folder) or re.search(
        r"_T(\d{2}[A-Z]{3})(?:_|$)", facts["uri"]
    )
    mgrs = match.group(1) if match else None
    incidence = view_azimuth = None
    if tile is not None:
        when = tile.sensing_time
        sun_elevation, sun_azimuth = 90.0 - tile.sun_zenith, tile.sun_azimuth
        views = tile.views
        extra.update(
            tile_file=tile_rel,
            tile_id=tile.tile_id,
            tile_geocoding={k: dict(v) for k, v in tile.geocoding.items()},
            view_incidence_angles={b: {"zenith": z, "azimuth": a} for b, (z, a) in views.items()},
            sun_angles="MTD_TL Mean_Sun_Angle",
            quality_indicators=dict(tile.quality),
            qi_masks=[{"type": m.type, "band": m.band, "path": m.path} for m in tile.masks],
        )
        if views:
            incidence = sum(z for z, _ in views.values()) / len(views)
            view_azimuth = _circular_mean([a for _, a in views.values()])
        tile_match = re.search(r"_T(\d{2}[A-Z]{3})_", tile.tile_id or "")
        mgrs = mgrs or (tile_match.group(1) if tile_match else None)
    else:
        when = facts["start"]
        sun_elevation, sun_azimuth = _sun_from_solar(facts["start"], footprint.bbox)
        extra["sun_angles"] = (
            "computed (eo_pipeline.kernels.ephemeris) at the footprint centre: no MTD_TL.xml"
        )
    native = {b: v.get(None) or v[min(k for k in v if k is not None)] for b, v in files.items()}
    product_id = (
        facts["uri"] if not several else f"{facts['uri']}_{mgrs or folder.rsplit('/', 1)[-1]}"
    )
    return SceneMetadata(
        sensor=facts["sensor"].name,
        datetime=when,
        sun_elevation=sun_elevation,
        sun_azimuth=sun_azimuth,
        earth_sun_distance=1.0 / math.sqrt(facts["u"]),
        footprint=footprint.geometry,
        bbox=footprint.bbox,
        bands=bands,
        product_id=product_id,
        processing_level=facts["level"],
        processing_baseline=facts["baseline"],
        quantification_value=q,
        u=facts["u"],
        mgrs_tile=mgrs,
        epsg=tile.epsg if tile is not None else None,
        cloud_cover=facts["cloud"],
        view_incidence_angle=incidence,
        view_azimuth=view_azimuth,
        files=native,
        source=source,
        extra=extra,
    )


def read_granules(path: str | os.PathLike[str]) -> list[SceneMetadata]:
    """One :class:`SceneMetadata` per granule of a Sentinel-2 L1C/L2A product.

    Parameters
    ----------
    path
        The SAFE folder, its ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml``, or the product ``.zip``
        (read in place; ``source`` and the tile file are then ``/vsizip/`` paths).

    Raises
    ------
    MetadataError
        Truncated or malformed XML, a file that is neither L1C nor L2A product metadata, an
        unknown processing baseline, missing elements (named).
    UnknownSensorError
        ``SPACECRAFT_NAME`` without a sensor file.
    """
    safe = locate(path)
    root, source = _product(safe)
    facts = _product_facts(safe, root, source)
    granules = _granules(source, root) or [("", [])]
    return [_granule(safe, facts, folder, files, len(granules) > 1) for folder, files in granules]


def read_sentinel2(path: str | os.PathLike[str]) -> SceneMetadata:
    """Read a single-granule Sentinel-2 L1C/L2A product (folder, MTD file or zip).

    Raises
    ------
    MetadataError
        As :func:`read_granules`, and for a product of several granules (ingest makes one
        item per granule; :func:`read_granules` returns them all).

    Examples
    --------
    >>> import eo_pipeline
    >>> meta = eo_pipeline.read_metadata("S2A_MSIL2A_....SAFE")  # doctest: +SKIP
    >>> meta.band("B04").sr_scale, meta.band("B04").sr_offset  # doctest: +SKIP
    (0.0001, -0.1)
    >>> _band_id("B8"), _band_id("B8A")
    ('B08', 'B8A')
    """
    granules = read_granules(path)
    if len(granules) > 1:
        raise MetadataError(
            f"{path}: the product holds {len(granules)} granules; use "
            "eo_pipeline.catalogs.readers.sentinel2.read_granules (ingest makes one item each)"
        )
    return granules[0]


read_mtd_msil1c = read_sentinel2
"""Former name (Level-1C only), kept for callers."""


def _sniff(path: Path, head: bytes) -> bool:
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                return any("/MTD_MSIL" in n or n.startswith("MTD_MSIL") for n in zf.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
    if b"Level-1C_User_Product" in head or b"Level-2A_User_Product" in head:
        return True
    # other Sentinel-2 product or tile files: claimed so that the reader says what to pass
    return (
        b"User_Product" in head or b"_Tile_ID" in head
    ) and b"sentinel2" in head.lower().replace(b"-", b"")


FORMAT = MetadataFormat(
    name="Sentinel-2 L1C/L2A SAFE (MTD_MSIL1C.xml, MTD_MSIL2A.xml, or the .zip)",
    patterns=("MTD_MSIL1C.xml", "MTD_MSIL2A.xml", "*.SAFE/MTD_MSIL1C.xml", "*.SAFE/MTD_MSIL2A.xml"),
    sniff=_sniff,
    read=read_sentinel2,
)

"""Landsat 8/9 Collection 2 MTL metadata (Level 1 and Level 2) in its three formats.

USGS writes the same metadata as ODL text (``*_MTL.txt``), JSON (``*_MTL.json``) and XML
(``*_MTL.xml``): groups of ``KEY = VALUE`` pairs whose values are the same strings in all three.
Each format is parsed into ``{group: {key: text}}`` and interpreted once, so the three give
equal :class:`~eo_pipeline.SceneMetadata` (apart from ``source``).

Reference: Landsat 8-9 OLI/TIRS Collection 2 Level 1 and Level 2 Data Format Control Books
(USGS LSDS-1822 and LSDS-1328).

What is read
------------
- ``datetime`` = ``DATE_ACQUIRED`` + ``SCENE_CENTER_TIME`` (UTC; the 7th fraction digit dropped);
- ``sensor`` from ``SPACECRAFT_ID`` (``LANDSAT_8`` -> ``landsat8``), checked against the sensor files;
- ``sun_elevation``, ``sun_azimuth``, ``earth_sun_distance`` as printed;
- per band ``B1`` .. ``B9`` (the sensor file's bands): ``LEVEL1_RADIOMETRIC_RESCALING``
  radiance and reflectance MULT/ADD, ``RADIANCE_MAXIMUM``, ``REFLECTANCE_MAXIMUM``,
  ``QUANTIZE_CAL_MAX``, and for L2 products ``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS``
  ``REFLECTANCE_MULT/ADD_BAND_n`` as ``sr_scale``/``sr_offset``. nodata is 0 (C2 fill);
- footprint from ``CORNER_{UL,UR,LR,LL}_{LAT,LON}_PRODUCT``, bbox, ``WRS_PATH``/``WRS_ROW``,
  ``CLOUD_COVER`` (``-1`` -> ``None``), EPSG (C2 UTM grids are always the *north* zone,
  EPSG:326zz, with negative northings south of the equator; polar stereographic -> EPSG:3031);
- ``files``: ``FILE_NAME_BAND_n`` -> ``Bn``; every other product file under the suffix after the
  product id (``QA_PIXEL``, ``QA_RADSAT``, ``SR_QA_AEROSOL``, ``ST_B10``, ``ANG``...).

Examples
--------
>>> FORMAT.patterns
('*_MTL.txt', '*_MTL.json', '*_MTL.xml')
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eo_pipeline.catalogs import sensors
from eo_pipeline.catalogs.geometry import footprint_from_corners
from eo_pipeline.catalogs.readers._common import (
    MetadataFormat,
    local_name,
    parse_number,
    parse_utc,
    parse_xml,
    read_text,
)
from eo_pipeline.catalogs.scene import BandCalibration, SceneMetadata
from eo_pipeline.errors import MetadataError, MetadataWarning, UnknownSensorError

__all__ = ["FORMAT", "parse_mtl", "read_mtl"]

Groups = dict[str, dict[str, str]]
_TOP = "LANDSAT_METADATA_FILE"
_C1_TOP = "L1_METADATA_FILE"
_REQUIRED = ("PRODUCT_CONTENTS", "IMAGE_ATTRIBUTES", "PROJECTION_ATTRIBUTES")
_L1_RESCALING = "LEVEL1_RADIOMETRIC_RESCALING"
_L2_SR = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"


# ----------------------------------------------------------------------------- parsing


def _c1_error(path: Path) -> MetadataError:
    return MetadataError(
        f"{path}: this is a Landsat Collection 1 MTL (L1_METADATA_FILE); only Collection 2 "
        "is supported (USGS retired Collection 1 in 2022): download the Collection 2 product"
    )


def _parse_odl(path: Path, text: str) -> Groups:
    lines = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    groups: Groups = {}
    stack: list[str] = []
    ended = False
    for lineno, line in lines:
        if line == "END":
            ended = True
            break
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep:
            if lineno == lines[-1][0]:
                break  # a cut-off last line: reported as truncation below
            raise MetadataError(f"{path}: line {lineno}: expected 'KEY = VALUE', got {line[:80]!r}")
        if key == "GROUP":
            if value == _C1_TOP:
                raise _c1_error(path)
            stack.append(value)
            groups.setdefault(value, {})
        elif key == "END_GROUP":
            if not stack or stack[-1] != value:
                raise MetadataError(
                    f"{path}: line {lineno}: END_GROUP = {value} does not close the open group "
                    f"{stack[-1] if stack else '(none)'}"
                )
            stack.pop()
        elif not stack:
            raise MetadataError(f"{path}: line {lineno}: {key} outside any GROUP")
        else:
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            groups[stack[-1]][key] = value
    if not stack and not ended and _TOP in groups:
        warnings.warn(
            f"{path}: the MTL has no closing END line after END_GROUP = {_TOP}; every group is "
            "closed, so it was read as complete",
            MetadataWarning,
            stacklevel=4,
        )
    elif stack or not ended:
        inside = f"inside group {stack[-1]} " if stack else ""
        raise MetadataError(
            f"{path}: the MTL is truncated: it stops {inside}after line "
            f"{lines[-1][0] if lines else 0} without the closing END; re-download the file"
        )
    if _TOP not in groups:
        raise MetadataError(f"{path}: no GROUP = {_TOP}; not a Landsat Collection 2 MTL")
    return groups


def _parse_json(path: Path, text: str) -> Groups:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise MetadataError(
            f"{path}: malformed or truncated JSON at line {err.lineno}, column {err.colno} "
            f"({err.msg}); re-download the file"
        ) from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get(_TOP), Mapping):
        if isinstance(doc, Mapping) and _C1_TOP in doc:
            raise _c1_error(path)
        raise MetadataError(f"{path}: no top-level {_TOP!r} object; not a Landsat C2 MTL")
    groups: Groups = {_TOP: {}}
    for name, body in doc[_TOP].items():
        if not isinstance(body, Mapping):
            raise MetadataError(f"{path}: {_TOP}.{name} must be an object of key/values")
        groups[name] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
    return groups


def _parse_xml(path: Path, text: str) -> Groups:
    root = parse_xml(path, text)
    if local_name(root.tag) != _TOP:
        raise MetadataError(f"{path}: root element is <{root.tag}>, not <{_TOP}>")
    groups: Groups = {_TOP: {}}
    for group in root:
        groups[local_name(group.tag)] = {local_name(e.tag): (e.text or "").strip() for e in group}
    return groups


def parse_mtl(path: str | Path) -> dict[str, dict[str, str]]:
    """Raw MTL content ``{group: {key: text}}`` of a ``.txt``, ``.json`` or ``.xml`` MTL.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "X_MTL.txt"
    >>> _ = p.write_text('GROUP = LANDSAT_METADATA_FILE\\n GROUP = A\\n  K = "v"\\n END_GROUP = A\\n'
    ...                  'END_GROUP = LANDSAT_METADATA_FILE\\nEND\\n')
    >>> parse_mtl(p)["A"]
    {'K': 'v'}
    """
    p = Path(path)
    text = read_text(p)
    head = text.lstrip()
    if head.startswith("{"):
        return _parse_json(p, text)
    if head.startswith("<"):
        return _parse_xml(p, text)
    return _parse_odl(p, text)


# ----------------------------------------------------------------------------- interpreting


class _Mtl:
    """Typed access to the parsed groups with errors naming the file, group and key."""

    def __init__(self, path: Path, groups: Groups) -> None:
        self.path, self.groups = path, groups

    def raw(self, group: str, key: str, *, required: bool = True) -> str | None:
        value = self.groups.get(group, {}).get(key)
        if value is None or value == "":
            if required:
                raise MetadataError(
                    f"{self.path}: {group}.{key} is missing; the MTL is incomplete "
                    "(compare it with the file USGS delivers)"
                )
            return None
        return value

    def text(self, group: str, key: str) -> str:
        value = self.raw(group, key)
        assert value is not None
        return value

    def number(self, group: str, key: str, *, required: bool = True) -> float | None:
        value = self.raw(group, key, required=required)
        if value is None:
            return None
        return parse_number(value, where=f"{self.path}: {group}.{key}")

    def integer(self, group: str, key: str, *, required: bool = True) -> int | None:
        value = self.number(group, key, required=required)
        return None if value is None else int(value)


def _epsg(mtl: _Mtl) -> int | None:
    group = "PROJECTION_ATTRIBUTES"
    projection = (mtl.raw(group, "MAP_PROJECTION", required=False) or "").upper()
    datum = (mtl.raw(group, "DATUM", required=False) or "WGS84").upper()
    if datum != "WGS84":
        return None
    if projection == "UTM":
        zone = mtl.integer(group, "UTM_ZONE")
        assert zone is not None
        if not 1 <= abs(zone) <= 60:
            raise MetadataError(f"{mtl.path}: {group}.UTM_ZONE = {zone} is not a UTM zone (1-60)")
        # C2 grids use the northern zone everywhere (negative northings in the south); a
        # negative zone number (older products) means the southern zone.
        return 32600 + zone if zone > 0 else 32700 - zone
    if projection == "PS":
        lat_ts = mtl.number(group, "TRUE_SCALE_LAT", required=False)
        return 3031 if lat_ts is None or lat_ts < 0 else None
    return None


def _sensor(mtl: _Mtl) -> sensors.Sensor:
    spacecraft = mtl.text("IMAGE_ATTRIBUTES", "SPACECRAFT_ID")
    name = spacecraft.lower().replace("_", "").replace("-", "")
    try:
        sensor = sensors.get(name)
    except UnknownSensorError:
        sensor = None
    if sensor is not None and sensor.convention == "mult_add":
        return sensor
    raise UnknownSensorError(
        f"{mtl.path}: IMAGE_ATTRIBUTES.SPACECRAFT_ID = {spacecraft!r} has no sensor file of an "
        "MTL-delivering (convention mult_add) sensor; known sensors: "
        f"{', '.join(sensors.names())}; {sensors.HOW_TO_ADD}, or check the file"
    )


def _band_calibration(mtl: _Mtl, band_id: str, n: int, level2: bool) -> BandCalibration | None:
    l1 = _L1_RESCALING

    def num(group: str, key: str) -> float | None:
        return mtl.number(group, key, required=False)

    values: dict[str, Any] = {
        "radiance_mult": num(l1, f"RADIANCE_MULT_BAND_{n}"),
        "radiance_add": num(l1, f"RADIANCE_ADD_BAND_{n}"),
        "reflectance_mult": num(l1, f"REFLECTANCE_MULT_BAND_{n}"),
        "reflectance_add": num(l1, f"REFLECTANCE_ADD_BAND_{n}"),
        "sr_scale": num(_L2_SR, f"REFLECTANCE_MULT_BAND_{n}") if level2 else None,
        "sr_offset": num(_L2_SR, f"REFLECTANCE_ADD_BAND_{n}") if level2 else None,
    }
    for mult, add in (("radiance_mult", "radiance_add"), ("reflectance_mult", "reflectance_add"),
                      ("sr_scale", "sr_offset")):  # fmt: skip
        if (values[mult] is None) != (values[add] is None):
            missing = mult if values[mult] is None else add
            raise MetadataError(
                f"{mtl.path}: band {band_id}: {missing} is missing while its pair is present; "
                "the rescaling group is incomplete"
            )
    if all(v is None for v in values.values()):
        return None
    qmax = num(_L2_SR, f"QUANTIZE_CAL_MAX_BAND_{n}") if values["sr_scale"] is not None else None
    if qmax is None:
        qmax = num("LEVEL1_MIN_MAX_PIXEL_VALUE", f"QUANTIZE_CAL_MAX_BAND_{n}")
    return BandCalibration(
        band=band_id,
        **values,
        radiance_max=num("LEVEL1_MIN_MAX_RADIANCE", f"RADIANCE_MAXIMUM_BAND_{n}"),
        reflectance_max=num("LEVEL1_MIN_MAX_REFLECTANCE", f"REFLECTANCE_MAXIMUM_BAND_{n}"),
        quantize_max=None if qmax is None else int(qmax),
        nodata=0,
    )


_BAND_FILE = re.compile(r"FILE_NAME_BAND_(\d+)$")
_SKIP_FILES = ("FILE_NAME_METADATA_ODL", "FILE_NAME_METADATA_XML")


def _files(mtl: _Mtl, product_id: str) -> dict[str, str]:
    files: dict[str, str] = {}
    for key, name in mtl.groups.get("PRODUCT_CONTENTS", {}).items():
        if not key.startswith("FILE_NAME_") or key in _SKIP_FILES:
            continue
        match = _BAND_FILE.match(key)
        if match:
            files[f"B{int(match.group(1))}"] = name
            continue
        stem = name.rsplit(".", 1)[0]
        prefix = f"{product_id}_"
        files[stem[len(prefix) :] if stem.startswith(prefix) else key[len("FILE_NAME_") :]] = name
    return files


def _extra(mtl: _Mtl, level2: bool) -> dict[str, Any]:
    def raw(group: str, key: str) -> str | None:
        return mtl.raw(group, key, required=False)

    extra: dict[str, Any] = {
        "collection_number": raw("PRODUCT_CONTENTS", "COLLECTION_NUMBER"),
        "collection_category": raw("PRODUCT_CONTENTS", "COLLECTION_CATEGORY"),
        "landsat_scene_id": raw("LEVEL1_PROCESSING_RECORD", "LANDSAT_SCENE_ID"),
        "instrument_id": raw("IMAGE_ATTRIBUTES", "SENSOR_ID"),
        "station_id": raw("IMAGE_ATTRIBUTES", "STATION_ID"),
        "cloud_cover_land": mtl.number("IMAGE_ATTRIBUTES", "CLOUD_COVER_LAND", required=False),
        "processing_software": raw(
            "LEVEL2_PROCESSING_RECORD" if level2 else "LEVEL1_PROCESSING_RECORD",
            "PROCESSING_SOFTWARE_VERSION",
        ),
        "date_product_generated": raw(
            "LEVEL2_PROCESSING_RECORD" if level2 else "LEVEL1_PROCESSING_RECORD",
            "DATE_PRODUCT_GENERATED",
        ),
    }
    if level2:
        extra["level1_product_id"] = raw("LEVEL1_PROCESSING_RECORD", "LANDSAT_PRODUCT_ID")
        st = mtl.groups.get("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS", {})
        if "TEMPERATURE_MULT_BAND_ST_B10" in st:
            extra["surface_temperature"] = {
                "ST_B10": {
                    "scale": mtl.number(
                        "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS", "TEMPERATURE_MULT_BAND_ST_B10"
                    ),
                    "offset": mtl.number(
                        "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS", "TEMPERATURE_ADD_BAND_ST_B10"
                    ),
                    "units": "K",
                }
            }
    thermal = mtl.groups.get("LEVEL1_THERMAL_CONSTANTS", {})
    constants = {
        f"B{n}": {
            k: mtl.number("LEVEL1_THERMAL_CONSTANTS", f"{k}_CONSTANT_BAND_{n}")
            for k in ("K1", "K2")
        }
        for n in (10, 11)
        if f"K1_CONSTANT_BAND_{n}" in thermal
    }
    if constants:
        extra["thermal_constants"] = constants
    return {k: v for k, v in extra.items() if v is not None}


def read_mtl(path: str | Path) -> SceneMetadata:
    """Read a Landsat Collection 2 MTL (``.txt``, ``.json`` or ``.xml``; L1 or L2).

    Raises
    ------
    MetadataError
        Truncated or malformed file, missing groups (the rescaling groups in particular) or
        keys; the message names the file, the group and the key.
    UnknownSensorError
        ``SPACECRAFT_ID`` names a platform without a sensor file (e.g. ``LANDSAT_7``).

    Examples
    --------
    >>> read_mtl("missing_MTL.txt")
    Traceback (most recent call last):
    ...
    eo_pipeline.errors.MetadataError: missing_MTL.txt: cannot read metadata file: No such file or directory
    """
    p = Path(path)
    mtl = _Mtl(p, parse_mtl(p))
    level = (
        mtl.text("PRODUCT_CONTENTS", "PROCESSING_LEVEL") if "PRODUCT_CONTENTS" in mtl.groups else ""
    )
    level2 = level.upper().startswith("L2")
    needed = [*_REQUIRED, _L1_RESCALING, *([_L2_SR] if level2 else [])]
    missing = [g for g in needed if g not in mtl.groups]
    if missing:
        raise MetadataError(
            f"{p}: group(s) {', '.join(missing)} missing from the MTL"
            + (
                " (the radiometric rescaling needed for calibration)"
                if {_L1_RESCALING, _L2_SR} & set(missing)
                else ""
            )
            + "; the file is incomplete: re-download it from USGS"
        )
    sensor = _sensor(mtl)
    bands = {}
    for band in sensor.bands:
        match = re.fullmatch(r"B(\d+)", band.id)
        if match is None:
            continue
        n = int(match.group(1))
        calibration = _band_calibration(mtl, band.id, n, level2)
        delivered = f"FILE_NAME_BAND_{n}" in mtl.groups.get("PRODUCT_CONTENTS", {})
        if level2 and delivered and (calibration is None or calibration.sr_scale is None):
            raise MetadataError(
                f"{p}: band {band.id}: {_L2_SR} has no REFLECTANCE_MULT_BAND_{n} / "
                f"REFLECTANCE_ADD_BAND_{n} although the Level-2 product delivers the band's "
                "surface reflectance; the file is incomplete: re-download it from USGS"
            )
        if calibration is not None:
            bands[band.id] = calibration
    if not any(b.radiance_mult is not None or b.sr_scale is not None for b in bands.values()):
        raise MetadataError(
            f"{p}: {_L1_RESCALING} holds no RADIANCE_MULT_BAND_n for the bands of "
            f"{sensor.name} ({', '.join(sensor.band_ids)}); the file is incomplete"
        )
    when = parse_utc(
        f"{mtl.text('IMAGE_ATTRIBUTES', 'DATE_ACQUIRED')}T"
        f"{mtl.text('IMAGE_ATTRIBUTES', 'SCENE_CENTER_TIME')}",
        where=f"{p}: IMAGE_ATTRIBUTES.DATE_ACQUIRED/SCENE_CENTER_TIME",
    )
    corners = []
    for corner in ("UL", "UR", "LR", "LL"):
        lat = mtl.number("PROJECTION_ATTRIBUTES", f"CORNER_{corner}_LAT_PRODUCT")
        lon = mtl.number("PROJECTION_ATTRIBUTES", f"CORNER_{corner}_LON_PRODUCT")
        corners.append((lon, lat))
    footprint = footprint_from_corners(corners, where=str(p))  # type: ignore[arg-type]
    product_id = mtl.text("PRODUCT_CONTENTS", "LANDSAT_PRODUCT_ID")
    cloud = mtl.number("IMAGE_ATTRIBUTES", "CLOUD_COVER", required=False)
    roll = mtl.number("IMAGE_ATTRIBUTES", "ROLL_ANGLE", required=False)
    return SceneMetadata(
        sensor=sensor.name,
        datetime=when,
        sun_elevation=mtl.number("IMAGE_ATTRIBUTES", "SUN_ELEVATION"),  # type: ignore[arg-type]
        sun_azimuth=mtl.number("IMAGE_ATTRIBUTES", "SUN_AZIMUTH"),  # type: ignore[arg-type]
        earth_sun_distance=mtl.number("IMAGE_ATTRIBUTES", "EARTH_SUN_DISTANCE"),  # type: ignore[arg-type]
        footprint=footprint.geometry,
        bbox=footprint.bbox,
        bands=bands,
        product_id=product_id,
        processing_level=level,
        wrs_path=mtl.integer("IMAGE_ATTRIBUTES", "WRS_PATH"),
        wrs_row=mtl.integer("IMAGE_ATTRIBUTES", "WRS_ROW"),
        epsg=_epsg(mtl),
        cloud_cover=cloud if cloud is not None and cloud >= 0 else None,
        view_off_nadir=abs(roll) if roll is not None else None,
        files=_files(mtl, product_id),
        source=str(p),
        extra=_extra(mtl, level2),
    )


def _sniff(path: Path, head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"GROUP"):
        first = text.split(b"\n", 1)[0].replace(b" ", b"")
        return first in {b"GROUP=" + _TOP.encode(), b"GROUP=" + _C1_TOP.encode()}
    if text.startswith(b"{"):
        return (
            b'"' + _TOP.encode() + b'"' in text[:200]
            or b'"' + _C1_TOP.encode() + b'"' in text[:200]
        )
    if text.startswith(b"<"):
        return b"<" + _TOP.encode() + b">" in text[:300]
    return False


FORMAT = MetadataFormat(
    name="Landsat Collection 2 MTL (.txt/.json/.xml)",
    patterns=("*_MTL.txt", "*_MTL.json", "*_MTL.xml"),
    sniff=_sniff,
    read=read_mtl,
)

"""Airbus DIMAP V2 product metadata: ``DIM_*.XML`` (Pléiades, SPOT 6/7, Pléiades Neo, KazEOSat-1).

KazEOSat-1 was built by Airbus and its products come as DIMAP V2, like Pléiades and SPOT 6/7:
one ``DIM_*.XML`` document per product (``P`` panchromatic, ``MS`` multispectral...) beside
its image tiles ``IMG_*_R{row}C{col}.TIF`` (or ``.JP2``). References: the Pléiades and
SPOT 6/7 Imagery User Guides (Astrium/Airbus, DIMAP V2 appendix) and the stripped, fake
DIMAP V2 documents of GDAL's test suite (``autotest/gdrivers/data/dimap2``).

What is read
------------
- ``Metadata_Identification``: ``METADATA_FORMAT`` version 2.x and ``METADATA_PROFILE``
  ``{family}_{geometry}``; known families: ``PHR`` (Pléiades 1A/1B), ``S6``/``S7``/``SPOT6``/
  ``SPOT7``, ``PNEO`` (Pléiades Neo) and ``KZ1`` (KazEOSat-1; nominal, the operator's
  profile name is not public); geometries ``SENSOR``, ``PRIMARY``, ``PROJECTED``,
  ``ORTHO``, ``MOSAIC`` (-> ``processing_level`` ``SEN``, ``PRI``, ``PRJ``, ``ORT``, ``MOS``).
  Any other profile, DIMAP V1 and Pléiades' pre-V2 ``PHR_DIMAP_Document`` are refused.
- ``sensor`` from ``Dataset_Sources/.../Strip_Source`` ``MISSION`` + ``MISSION_INDEX``
  (``KAZEOSAT`` ``1`` -> ``kazeosat1``; ``PHR`` ``1A`` -> ``pleiades1a``...), checked against
  the sensor files.
- ``Geometric_Data/Use_Area/Located_Geometric_Values`` with ``LOCATION_TYPE`` Center:
  ``TIME`` (-> ``datetime``; else ``IMAGING_DATE`` + ``IMAGING_TIME``),
  ``Solar_Incidences`` (``SUN_ELEVATION``, ``SUN_AZIMUTH``), ``Acquisition_Angles``
  (``VIEWING_ANGLE`` -> ``view_off_nadir``, ``INCIDENCE_ANGLE`` -> ``view_incidence_angle``,
  ``AZIMUTH_ANGLE`` -> ``view_azimuth``; all of them in ``extra["acquisition_angles"]``).
- ``Dataset_Content/Dataset_Extent/Vertex`` (``LON``, ``LAT``) -> footprint (the convex hull
  when ``EXTENT_TYPE`` is ``Bounding_Box``, which may list the centre as a vertex);
  ``CLOUD_COVERAGE``.
- Radiometry, per ``BAND_ID``, from ``Radiometric_Data/Radiometric_Calibration/
  Instrument_Calibration/Band_Measurement_List``: ``Band_Radiance`` ``GAIN``/``BIAS``
  (``L = DN / GAIN + BIAS``, so ``radiance_mult = 1 / GAIN``, ``radiance_add = BIAS``; the
  printed pair is kept in ``gain``/``bias``), ``Band_Solar_Irradiance`` ``VALUE`` (-> ``esun``).
  ``RADIOMETRIC_PROCESSING`` ``REFLECTANCE`` products use ``Band_Reflectance``
  (``rho = DN / GAIN + BIAS``) instead; ``LINEAR``/``DISPLAY``/``SEAMLESS`` products are
  stretched for display and refused. The Earth-Sun distance is not printed: it is computed
  from ``datetime`` (:func:`eo_pipeline.kernels.ephemeris.earth_sun_distance_at`, no numba).
- ``Raster_Data``: ``NROWS``/``NCOLS``/``NBANDS``; ``Raster_Encoding/NBITS`` is the container
  (16 in every real delivery) and ``Radiometric_Data/Dynamic_Range/PRODUCT_RANGE`` the
  significant bits (12 for BASIC products, 16 for Pléiades Neo reflectance) -> ``bit_depth``
  (``PRODUCT_RANGE``, else ``NBITS``; all three in ``extra["encoding"]``);
  ``Raster_Display/Special_Value`` ``NODATA`` and ``SATURATED`` (``SPECIAL_VALUE_COUNT`` is
  the DN; -> every band's ``nodata``/``saturation``; without ``SATURATED`` the top of the
  product range), ``Tile_Set/Regular_Tiling`` (``OVERLAP_ROW``/``OVERLAP_COL``, written
  ``0.0`` by some Pléiades deliveries, or Pléiades Neo's ``NTILES_OVERLAP``) and
  ``Data_Access/Data_Files/Data_File`` (``tile_R``, ``tile_C``, ``DATA_FILE_PATH href``;
  Pléiades Neo ``MS-FS``/``PMS-FS`` products have two groups per tile, ``RGB`` and ``NED``).
- ``Band_Spectral_Range`` edges (``MIN``/``MAX``, or Pléiades Neo's ``FWHM``; micrometres or
  nanometres) -> ``extra["spectral_ranges"]`` in micrometres.
- CRS: ``Projected_CRS/PROJECTED_CRS_CODE`` (else the geodetic code when the raster is on a
  geographic grid) and ``Geoposition/Geoposition_Insert`` (``ULXMAP``, ``ULYMAP``, ``XDIM``,
  ``YDIM``); sensor-geometry products have neither (``epsg`` is ``None``).

Band order in the image files: the ``Raster_Index_List`` of a ``Data_Files`` group when the
document has one, else ``Band_Display_Order`` when its channels name every band once
(Pléiades/SPOT 6/7 store multispectral images red, green, blue, NIR: ``B2 B1 B0 B3``, as
Orfeo ToolBox reads them; GDAL's driver attaches ``B0``..``B3`` metadata to file bands 1..4
whatever the display order), else the order in which ``Band_Measurement_List`` names the bands
(``Band_Spectral_Range`` first). ``extra["band_order_source"]`` says which.

``extra`` holds the tile layout: ``rows``, ``cols``, ``band_order`` (band ids in file order),
``tile_size``, ``tile_count`` and ``tile_overlap`` (rows, cols) of the regular tiling, ``tiles``
(one dict per image file: ``row``, ``col``, ``part``, ``file``, ``bands``), plus
``special_values``, ``geoposition``, ``profile``, ``spectral_processing`` and
``radiometric_processing``. ``files`` maps ``IMG_R{row}C{col}`` (``..._{part}`` when a tile has
several files) to the file names, relative to the document.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import shapely

from eo_pipeline.catalogs import sensors
from eo_pipeline.catalogs.geometry import Footprint, footprint_from_corners
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
from eo_pipeline.kernels.ephemeris import earth_sun_distance_at

__all__ = ["FORMAT", "PROFILE_FAMILIES", "read_dimap"]

PROFILE_FAMILIES: dict[str, str] = {
    "PHR": "Pléiades 1A/1B",
    "S6": "SPOT 6",
    "S7": "SPOT 7",
    "SPOT6": "SPOT 6",
    "SPOT7": "SPOT 7",
    "PNEO": "Pléiades Neo",
    "KZ1": "KazEOSat-1 (nominal profile name)",
}
"""``METADATA_PROFILE`` prefixes this reader knows -> the mission family."""
_GEOMETRIES = {"SENSOR": "SEN", "PRIMARY": "PRI", "PROJECTED": "PRJ", "ORTHO": "ORT"}
_GEOMETRIES["MOSAIC"] = "MOS"
_MISSION_ALIASES = {"phr": "pleiades", "pneo": "pleiadesneo", "kz": "kazeosat"}
_BML = "Radiometric_Data/Radiometric_Calibration/Instrument_Calibration/Band_Measurement_List"
_STRIP = "Dataset_Sources/Source_Identification/Strip_Source"
_CALIBRATABLE = ("BASIC", "REFLECTANCE")


def _where(path: Path, xpath: str) -> str:
    return f"{path}: {xpath.replace('/', '.')}"


_HINT = (
    "the DIMAP document is incomplete (compare it with the DIM_*.XML the ground segment delivered)"
)


def _need(path: Path, elem: ET.Element, xpath: str, *, prefix: str = "") -> str:
    return need_text(path, elem, xpath, hint=_HINT, prefix=prefix)


def _number(path: Path, xpath: str, text: str) -> float:
    return parse_number(text, where=_where(path, xpath))


def _check_identity(path: Path, root: ET.Element) -> tuple[str, str, str]:
    """(profile, family, processing level) of a DIMAP V2 document; refuses anything else."""
    tag = local_name(root.tag)
    if tag == "PHR_DIMAP_Document":
        raise MetadataError(
            f"{path}: a Pléiades pre-V2 PHR_DIMAP_Document; only DIMAP V2 (Dimap_Document, "
            "METADATA_FORMAT version 2.x) is supported"
        )
    if tag != "Dimap_Document":
        raise MetadataError(f"{path}: root element <{tag}> is not a DIMAP <Dimap_Document>")
    fmt = child(root, "Metadata_Identification/METADATA_FORMAT")
    version = fmt.get("version", "") if fmt is not None else ""
    if fmt is None or (fmt.text or "").strip().upper() != "DIMAP":
        raise MetadataError(
            f"{_where(path, 'Metadata_Identification/METADATA_FORMAT')} is missing or not DIMAP"
        )
    if not version.startswith("2"):
        raise MetadataError(
            f"{path}: METADATA_FORMAT version {version!r} is DIMAP V1 (SPOT 1-5); only DIMAP V2 "
            "(Pléiades, SPOT 6/7, KazEOSat-1) is supported"
        )
    profile = _need(path, root, "Metadata_Identification/METADATA_PROFILE")
    if profile.upper() == "VOLUME":
        listed = [c.get("href", "") for c in root.iter() if local_name(c.tag) == "COMPONENT_PATH"]
        raise MetadataError(
            f"{path}: a DIMAP volume file (METADATA_PROFILE VOLUME) listing "
            f"{', '.join(listed) or 'no product'}; read one product's DIM_*.XML, or ingest the "
            "volume file or bundle folder (one item for all its products)"
        )
    family, _, geometry = profile.upper().rpartition("_")
    if family not in PROFILE_FAMILIES or geometry not in _GEOMETRIES:
        known = ", ".join(f"{f}_{{{','.join(_GEOMETRIES)}}}" for f in PROFILE_FAMILIES)
        raise MetadataError(
            f"{_where(path, 'Metadata_Identification/METADATA_PROFILE')} = {profile!r} is a "
            f"DIMAP profile this reader does not know; known: {known}. Add the family to "
            "eo_pipeline.catalogs.readers.dimap.PROFILE_FAMILIES once its layout is checked"
        )
    return profile, family, _GEOMETRIES[geometry]


def _sensor(path: Path, root: ET.Element) -> sensors.Sensor:
    mission = _need(path, root, f"{_STRIP}/MISSION")
    index = child_text(root, f"{_STRIP}/MISSION_INDEX") or ""
    key = re.sub(r"[^a-z0-9]", "", f"{mission}{index}".lower())
    for short, long in _MISSION_ALIASES.items():
        if re.fullmatch(rf"{short}\d\w*", key):
            key = long + key[len(short) :]
    try:
        return sensors.get(key)
    except UnknownSensorError:
        raise UnknownSensorError(
            f"{path}: Strip_Source MISSION = {mission!r}, MISSION_INDEX = {index!r} "
            f"(sensor {key!r}) has no sensor file; known sensors: {', '.join(sensors.names())}; "
            f"{sensors.HOW_TO_ADD}, or check the document"
        ) from None


def _center_values(root: ET.Element) -> ET.Element | None:
    area = child(root, "Geometric_Data/Use_Area")
    if area is None:
        return None
    for lgv in children(area, "Located_Geometric_Values"):
        if (child_text(lgv, "LOCATION_TYPE") or "").lower() == "center":
            return lgv
    return None


def _footprint(path: Path, root: ET.Element) -> Footprint:
    extent = child(root, "Dataset_Content/Dataset_Extent")
    xpath = "Dataset_Content/Dataset_Extent/Vertex"
    vertices = list(children(extent, "Vertex")) if extent is not None else []
    if len(vertices) < 3:
        raise MetadataError(
            f"{_where(path, xpath)}: {len(vertices)} vertices; the footprint needs at least 3 "
            "(LON, LAT) vertices"
        )
    points = [
        (
            _number(path, f"{xpath}/LON", _need(path, v, "LON", prefix=f"{xpath}/")),
            _number(path, f"{xpath}/LAT", _need(path, v, "LAT", prefix=f"{xpath}/")),
        )
        for v in vertices
    ]
    if (child_text(extent, "EXTENT_TYPE") or "").lower() == "bounding_box":  # type: ignore[arg-type]
        lon0 = points[0][0]
        points = [(lon0 + ((lon - lon0 + 180.0) % 360.0 - 180.0), lat) for lon, lat in points]
        hull = shapely.MultiPoint(points).convex_hull
        if isinstance(hull, shapely.Polygon):
            points = list(hull.exterior.coords)[:-1]
    return footprint_from_corners(points, where=_where(path, xpath))


def _special_values(path: Path, root: ET.Element) -> dict[str, int]:
    out: dict[str, int] = {}
    for sv in root.iter():
        if local_name(sv.tag) != "Special_Value":
            continue
        name, count = child_text(sv, "SPECIAL_VALUE_TEXT"), child_text(sv, "SPECIAL_VALUE_COUNT")
        if name and count is not None:
            value = _number(path, f"Special_Value[{name}]/SPECIAL_VALUE_COUNT", count)
            if not value.is_integer():
                raise MetadataError(
                    f"{path}: Special_Value {name} SPECIAL_VALUE_COUNT = {count!r} is not a DN"
                )
            out.setdefault(name.upper(), int(value))
    return out


def _measurements(path: Path, root: ET.Element, kind: str) -> dict[str, ET.Element]:
    """``Band_Radiance`` (or another kind) elements by ``BAND_ID``."""
    bml = child(root, _BML)
    out: dict[str, ET.Element] = {}
    for elem in children(bml, kind) if bml is not None else ():
        out[_need(path, elem, "BAND_ID", prefix=f"{_BML}/{kind}/")] = elem
    return out


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _band_order(root: ET.Element, nbands: int, documented: list[str]) -> tuple[list[str], str]:
    display = child(root, "Raster_Data/Raster_Display/Band_Display_Order")
    channels = [(c.text or "").strip() for c in display] if display is not None else []
    channels = [c for c in channels if c]
    if len(channels) == nbands and len(set(channels)) == nbands:
        return channels, "Band_Display_Order"
    return documented[:nbands], "Band_Measurement_List order"


def _tiles(
    path: Path, root: ET.Element, nbands: int, documented: list[str]
) -> tuple[list[dict[str, Any]], list[str], str]:
    """One dict per image file (row, col, part, file, bands) and the band order."""
    access = child(root, "Raster_Data/Data_Access")
    groups = list(children(access, "Data_Files")) if access is not None else []
    xpath = "Raster_Data/Data_Access/Data_Files/Data_File"
    if not groups or not any(True for g in groups for _ in children(g, "Data_File")):
        raise MetadataError(f"{_where(path, xpath)} is missing; the document lists no image file")
    tiles: list[dict[str, Any]] = []
    order: list[str] = []
    source = ""
    for part, group in enumerate(groups, start=1):
        index = child(group, "Raster_Display/Raster_Index_List")
        entries = list(children(index, "Raster_Index")) if index is not None else []
        listed = [child_text(r, "BAND_ID") or "" for r in entries]
        if listed:
            bands, source = listed, "Raster_Index_List"
        elif len(groups) == 1:
            bands, source = _band_order(root, nbands, documented)
        else:
            raise MetadataError(
                f"{_where(path, 'Raster_Data/Data_Access/Data_Files')}: {len(groups)} groups of "
                "files but no Raster_Index_List saying which bands each holds"
            )
        order += bands
        for f in children(group, "Data_File"):
            href_elem = child(f, "DATA_FILE_PATH")
            href = href_elem.get("href") if href_elem is not None else None
            r, c = f.get("tile_R", "1"), f.get("tile_C", "1")
            if not href or not r.isdigit() or not c.isdigit():
                raise MetadataError(
                    f"{_where(path, xpath)}: a Data_File needs tile_R/tile_C numbers and a "
                    f"DATA_FILE_PATH href (got tile_R={r!r}, tile_C={c!r}, href={href!r})"
                )
            tiles.append({"row": int(r), "col": int(c), "part": part, "file": href, "bands": bands})
    seen: set[tuple[int, int, int]] = set()
    for t in tiles:
        key = (t["row"], t["col"], t["part"])
        if key in seen:
            raise MetadataError(f"{_where(path, xpath)}: tile R{key[0]}C{key[1]} is listed twice")
        seen.add(key)
    if len(groups) > 1:
        source = "Raster_Index_List"
    return tiles, _unique(order), source


def _calibration(
    path: Path, root: ET.Element, bands: list[str], processing: str, special: dict[str, int]
) -> dict[str, BandCalibration]:
    radiance = _measurements(path, root, "Band_Radiance")
    irradiance = _measurements(path, root, "Band_Solar_Irradiance")
    reflectance = _measurements(path, root, "Band_Reflectance")
    needed = reflectance if processing == "REFLECTANCE" else radiance
    kind = "Band_Reflectance" if processing == "REFLECTANCE" else "Band_Radiance"
    missing = [b for b in bands if b not in needed]
    if missing:
        raise MetadataError(
            f"{_where(path, _BML)} has no {kind} for band(s) {', '.join(missing)} (of "
            f"{', '.join(bands)}); GAIN and BIAS are needed to calibrate "
            f"(RADIOMETRIC_PROCESSING {processing}); the document is incomplete, ask the "
            "ground segment for the full DIM_*.XML"
        )
    out: dict[str, BandCalibration] = {}
    for b in bands:
        where = f"{_BML}/{kind}[BAND_ID={b}]"
        gain = _number(path, f"{where}/GAIN", _need(path, needed[b], "GAIN", prefix=f"{where}/"))
        bias = _number(path, f"{where}/BIAS", _need(path, needed[b], "BIAS", prefix=f"{where}/"))
        if gain <= 0.0:
            raise MetadataError(f"{_where(path, where)}/GAIN = {gain} must be positive")
        esun = None
        if b in irradiance:
            text = child_text(irradiance[b], "VALUE")
            if text is not None:
                esun = _number(path, f"{_BML}/Band_Solar_Irradiance[BAND_ID={b}]/VALUE", text)
        cal = BandCalibration(
            band=b,
            esun=esun,
            gain=gain,
            bias=bias,
            nodata=special.get("NODATA"),
            saturation=special.get("SATURATED"),
        )
        if processing == "REFLECTANCE":  # rho = DN / GAIN + BIAS
            cal = replace(
                cal, reflectance_mult=1.0 / gain, reflectance_add=bias,
                reflectance_sun_corrected=True,
            )  # fmt: skip
        else:  # L = DN / GAIN + BIAS
            cal = replace(cal, radiance_mult=1.0 / gain, radiance_add=bias)
        out[b] = cal
    return out


def _angles(path: Path, lgv: ET.Element | None) -> dict[str, float]:
    angles = child(lgv, "Acquisition_Angles") if lgv is not None else None
    out: dict[str, float] = {}
    for elem in angles if angles is not None else ():
        if elem.text and elem.text.strip():
            name = local_name(elem.tag)
            out[name] = _number(path, f"Acquisition_Angles/{name}", elem.text.strip())
    return out


def _crs(path: Path, root: ET.Element) -> tuple[int | None, dict[str, float]]:
    insert = child(root, "Geoposition/Geoposition_Insert")
    if insert is None:
        return None, {}
    geo = {
        k.lower(): _number(path, f"Geoposition_Insert/{k}", _need(path, insert, k))
        for k in ("ULXMAP", "ULYMAP", "XDIM", "YDIM")
    }
    code = child_text(root, "Coordinate_Reference_System/Projected_CRS/PROJECTED_CRS_CODE")
    code = code or child_text(root, "Coordinate_Reference_System/Geodetic_CRS/GEODETIC_CRS_CODE")
    match = re.search(r"EPSG:+(\d+)$", code or "")
    if match is None:
        raise MetadataError(
            f"{path}: Geoposition_Insert is given but Coordinate_Reference_System has no EPSG "
            f"PROJECTED_CRS_CODE (got {code!r}); the map grid cannot be placed"
        )
    return int(match.group(1)), geo


def _dimensions(path: Path, root: ET.Element) -> tuple[int, int, int]:
    dims = "Raster_Data/Raster_Dimensions"
    values = []
    for k in ("NROWS", "NCOLS", "NBANDS"):
        v = _number(path, f"{dims}/{k}", _need(path, root, f"{dims}/{k}"))
        if not v.is_integer() or v < 1:
            raise MetadataError(f"{_where(path, dims)}/{k} = {v} must be a positive integer")
        values.append(int(v))
    return values[0], values[1], values[2]


def _whole(path: Path, what: str, text: str | None) -> int | None:
    """An integer that real documents may write as ``0.0``; ``None`` when absent."""
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value.is_integer():
        raise MetadataError(
            f"{path}: Raster_Data.Raster_Dimensions.Tile_Set.Regular_Tiling {what} = {text!r} "
            "must be a whole number of pixels or tiles"
        )
    return int(value)


def _tiling(path: Path, root: ET.Element, rows: int, cols: int) -> dict[str, Any]:
    """Regular tiling: Pléiades/SPOT write ``OVERLAP_ROW``/``OVERLAP_COL`` elements (sometimes
    as ``0.0``), Pléiades Neo an ``NTILES_OVERLAP nrows ncols`` element."""
    reg = child(root, "Raster_Data/Raster_Dimensions/Tile_Set/Regular_Tiling")
    size = child(reg, "NTILES_SIZE") if reg is not None else None
    count = child(reg, "NTILES_COUNT") if reg is not None else None
    if reg is None or size is None:  # a single file (GDAL then takes its size)
        return {"tile_size": (rows, cols), "tile_count": (1, 1), "tile_overlap": (0, 0)}
    nrows = _whole(path, "NTILES_SIZE nrows", size.get("nrows"))
    ncols = _whole(path, "NTILES_SIZE ncols", size.get("ncols"))
    if nrows is None or ncols is None or min(nrows, ncols) < 1:
        raise MetadataError(
            f"{path}: Regular_Tiling NTILES_SIZE nrows/ncols = {nrows}/{ncols} must be positive "
            "integers"
        )
    tile = (nrows, ncols)
    n = None
    if count is not None:
        n = (
            _whole(path, "NTILES_COUNT ntiles_R", count.get("ntiles_R")),
            _whole(path, "NTILES_COUNT ntiles_C", count.get("ntiles_C")),
        )
    if n is None or None in n:
        n = (-(-rows // tile[0]), -(-cols // tile[1]))
    ntiles_overlap = child(reg, "NTILES_OVERLAP")
    if ntiles_overlap is not None:
        overlap = (
            _whole(path, "NTILES_OVERLAP nrows", ntiles_overlap.get("nrows")) or 0,
            _whole(path, "NTILES_OVERLAP ncols", ntiles_overlap.get("ncols")) or 0,
        )
    else:
        overlap = (
            _whole(path, "OVERLAP_ROW", child_text(reg, "OVERLAP_ROW")) or 0,
            _whole(path, "OVERLAP_COL", child_text(reg, "OVERLAP_COL")) or 0,
        )
    return {"tile_size": tile, "tile_count": n, "tile_overlap": overlap}


def _spectral_ranges(path: Path, root: ET.Element) -> dict[str, tuple[float, float]]:
    """``Band_Spectral_Range`` edges in micrometres by band: ``MIN``/``MAX`` (Pléiades) or
    ``FWHM/MIN``/``FWHM/MAX`` (Pléiades Neo), in the document's ``MEASURE_UNIT``
    (micrometers, or nanometers for SPOT 6/7 and Pléiades Neo)."""
    out: dict[str, tuple[float, float]] = {}
    for b, elem in _measurements(path, root, "Band_Spectral_Range").items():
        lo = child_text(elem, "MIN") or child_text(elem, "FWHM/MIN")
        hi = child_text(elem, "MAX") or child_text(elem, "FWHM/MAX")
        if lo is None or hi is None:
            continue
        where = f"{_BML}/Band_Spectral_Range[BAND_ID={b}]"
        scale = 1e-3 if "nano" in (child_text(elem, "MEASURE_UNIT") or "").lower() else 1.0
        out[b] = (
            _number(path, f"{where}/MIN", lo) * scale,
            _number(path, f"{where}/MAX", hi) * scale,
        )
    return out


def _encoding(path: Path, root: ET.Element) -> dict[str, int | None]:
    """Container bits (``NBITS``, 16 for every real product we know) and significant bits
    (``Dynamic_Range/PRODUCT_RANGE``: 12 for BASIC products, 16 for Pléiades Neo reflectance)."""
    out: dict[str, int | None] = {}
    for key, xpath in (
        ("nbits", "Raster_Data/Raster_Encoding/NBITS"),
        ("acquisition_range", "Radiometric_Data/Dynamic_Range/ACQUISITION_RANGE"),
        ("product_range", "Radiometric_Data/Dynamic_Range/PRODUCT_RANGE"),
    ):
        text = child_text(root, xpath)
        value = _number(path, xpath, text) if text else None
        if value is not None and (not value.is_integer() or not 1 <= value <= 64):
            raise MetadataError(f"{_where(path, xpath)} = {text!r} is not a number of bits")
        out[key] = int(value) if value is not None else None
    return out


def read_dimap(path: str | Path) -> SceneMetadata:
    """Read one DIMAP V2 product document (``DIM_*.XML``) into :class:`SceneMetadata`.

    Raises
    ------
    MetadataError
        Malformed XML, not DIMAP V2, an unknown ``METADATA_PROFILE``, a display-stretched
        product, a band without ``Band_Radiance`` (or its ``GAIN``/``BIAS``), missing sun
        angles, extent vertices or image files (the message names the element and the file).
    UnknownSensorError
        ``Strip_Source`` ``MISSION``/``MISSION_INDEX`` without a sensor file.

    Examples
    --------
    >>> meta = read_dimap("IMG_KZ1_MS_001/DIM_KZ1_MS_....XML")  # doctest: +SKIP
    >>> meta.bands["B2"].radiance_mult == 1 / meta.bands["B2"].gain  # doctest: +SKIP
    True
    """
    p = Path(path)
    root = parse_xml(p)
    profile, family, level = _check_identity(p, root)
    sensor = _sensor(p, root)
    lgv = _center_values(root)
    lgv_path = "Geometric_Data/Use_Area/Located_Geometric_Values[LOCATION_TYPE=Center]/"
    if lgv is not None and child_text(lgv, "TIME"):
        when = parse_utc(child_text(lgv, "TIME") or "", where=_where(p, f"{lgv_path}TIME"))
    else:
        date = _need(p, root, f"{_STRIP}/IMAGING_DATE")
        time = _need(p, root, f"{_STRIP}/IMAGING_TIME")
        when = parse_utc(f"{date}T{time}", where=_where(p, f"{_STRIP}/IMAGING_DATE+TIME"))
    if lgv is None:
        raise MetadataError(
            f"{_where(p, lgv_path.rstrip('/'))} is missing; the sun angles at the scene centre "
            "are needed"
        )
    sun = {}
    for k in ("SUN_ELEVATION", "SUN_AZIMUTH"):
        text = _need(p, lgv, f"Solar_Incidences/{k}", prefix=lgv_path)
        sun[k] = _number(p, f"{lgv_path}Solar_Incidences/{k}", text)
    angles = _angles(p, lgv)
    rows, cols, nbands = _dimensions(p, root)
    documented = _unique(
        list(_measurements(p, root, "Band_Spectral_Range"))
        + list(_measurements(p, root, "Band_Radiance"))
        + list(_measurements(p, root, "Band_Solar_Irradiance"))
    )
    tiles, order, order_source = _tiles(p, root, nbands, documented)
    if len(order) != nbands:
        raise MetadataError(
            f"{_where(p, 'Raster_Data/Raster_Dimensions/NBANDS')} = {nbands} but the document "
            f"names {len(order)} band(s) ({', '.join(order) or 'none'}) in Raster_Index_List, "
            "Band_Display_Order or Band_Measurement_List; the document is incomplete"
        )
    unknown = [b for b in order if b not in sensor.band_ids]
    if unknown:
        raise MetadataError(
            f"{p}: BAND_ID {', '.join(unknown)} not in sensor {sensor.name} "
            f"({', '.join(sensor.band_ids)}); the document and the sensor file disagree"
        )
    processing = (
        child_text(root, "Processing_Information/Product_Settings/Radiometric_Settings/"
                   "RADIOMETRIC_PROCESSING")
        or child_text(root, "Radiometric_Data/RADIOMETRIC_PROCESSING")
        or "BASIC"
    ).upper()  # fmt: skip
    if processing not in _CALIBRATABLE:
        raise MetadataError(
            f"{p}: RADIOMETRIC_PROCESSING = {processing!r}: the DN were stretched for display "
            "and cannot be calibrated; order the product with radiometric processing BASIC "
            "(or REFLECTANCE)"
        )
    special = _special_values(p, root)
    encoding = _encoding(p, root)
    bits = encoding["product_range"] or encoding["nbits"]
    if "SATURATED" not in special and bits is not None and bits < 32:
        special["SATURATED"] = 2**bits - 1  # no Special_Value: the top of the product range
    bands = _calibration(p, root, order, processing, special)
    epsg, geo = _crs(p, root)
    footprint = _footprint(p, root)
    cloud = child_text(root, "Dataset_Content/CLOUD_COVERAGE")
    multipart = any(t["part"] > 1 for t in tiles)
    files = {
        f"IMG_R{t['row']}C{t['col']}" + (f"_{t['part']}" if multipart else ""): t["file"]
        for t in tiles
    }
    extra: dict[str, Any] = {
        "format": "dimap",
        "profile": profile,
        "mission_family": PROFILE_FAMILIES[family],
        "dimap_version": child(root, "Metadata_Identification/METADATA_FORMAT").get("version"),  # type: ignore[union-attr]
        "spectral_processing": child_text(
            root, "Processing_Information/Product_Settings/SPECTRAL_PROCESSING"
        ),
        "radiometric_processing": processing,
        "rows": rows,
        "cols": cols,
        "band_order": order,
        "band_order_source": order_source,
        **_tiling(p, root, rows, cols),
        "tiles": tiles,
        "special_values": special,
        "encoding": encoding,
        "spectral_ranges": _spectral_ranges(p, root),
        "geoposition": geo,
        "acquisition_angles": angles,
        "earth_sun_distance": "computed from the acquisition time (DIMAP does not state it)",
    }
    name = child_text(root, "Dataset_Identification/DATASET_NAME")
    return SceneMetadata(
        sensor=sensor.name,
        datetime=when,
        sun_elevation=sun["SUN_ELEVATION"],
        sun_azimuth=sun["SUN_AZIMUTH"],
        earth_sun_distance=earth_sun_distance_at(when),
        footprint=footprint.geometry,
        bbox=footprint.bbox,
        bands=bands,
        product_id=name or p.stem.removeprefix("DIM_"),
        processing_level=level,
        epsg=epsg,
        cloud_cover=_number(p, "Dataset_Content/CLOUD_COVERAGE", cloud) if cloud else None,
        view_off_nadir=angles.get("VIEWING_ANGLE"),
        view_incidence_angle=angles.get("INCIDENCE_ANGLE"),
        view_azimuth=angles.get("AZIMUTH_ANGLE"),
        bit_depth=bits,
        files=files,
        source=str(p),
        extra=extra,
    )


def _sniff(path: Path, head: bytes) -> bool:
    return b"<Dimap_Document" in head or b"<PHR_DIMAP_Document" in head


FORMAT = MetadataFormat(
    name="DIMAP V2 DIM_*.XML",
    patterns=("DIM_*.XML", "DIM_*.xml"),
    sniff=_sniff,
    read=read_dimap,
)

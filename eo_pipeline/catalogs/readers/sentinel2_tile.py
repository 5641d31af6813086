"""Sentinel-2 tile (granule) metadata: ``MTD_TL.xml`` of Level-1C and Level-2A products.

Reference: Sentinel-2 Products Specification Document (S2-PDGS-TAS-DI-PSD), "Tile metadata".

What is read: ``SENSING_TIME``, ``TILE_ID``, the tile geocoding (``HORIZONTAL_CS_CODE``, per
resolution ``Size`` and ``Geoposition``), the sun angle grid (``Sun_Angles_Grid``: zenith and
azimuth every ``COL_STEP``/``ROW_STEP`` metres from the tile's upper-left corner, usually
23 x 23 values at 5 km), the viewing angle grids per band **and detector**
(``Viewing_Incidence_Angles_Grids bandId detectorId``; NaN outside the detector's swath),
their means, the image-content quality indicators and the pixel-level QI mask file names.
Old products (before PSD 14) name the tile file ``S2A_OPER_MTD_L1C_TL_*.xml``; the content is
read the same way.

Examples
--------
>>> tile = read_tile("GRANULE/L2A_T29UNU_A038058_20221005T115407/MTD_TL.xml")  # doctest: +SKIP
>>> tile.sun_zenith_grid.shape, tile.grid_step  # doctest: +SKIP
((23, 23), (5000.0, 5000.0))
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eo_pipeline.catalogs.readers._common import (
    child,
    child_text,
    children,
    local_name,
    need_text,
    parse_number,
    parse_utc,
    parse_xml,
)
from eo_pipeline.errors import MetadataError

__all__ = ["BAND_IDS", "MaskFile", "TileMetadata", "parse_tile"]

BAND_IDS = tuple("B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12".split())
"""ESA's ``bandId`` order (0..12) with ids as the file names spell them."""


@dataclass(frozen=True)
class MaskFile:
    """One pixel-level QI mask the tile metadata lists."""

    type: str
    """``MSK_DETFOO``, ``MSK_QUALIT``, ``MSK_CLASSI``, ``MSK_CLDPRB``, ``MSK_SNWPRB``,
    ``MSK_CLOUDS`` (GML before baseline 04.00)..."""
    band: str | None
    """Band id for per-band masks (``B01``), else ``None``."""
    path: str
    """Path relative to the product root, as printed."""


@dataclass(frozen=True)
class TileMetadata:
    """What ``MTD_TL.xml`` says about one granule."""

    source: str
    """The file read (a path or a ``/vsizip/`` href)."""
    level: str
    """``L1C`` or ``L2A``."""
    tile_id: str | None
    sensing_time: dt.datetime
    epsg: int
    geocoding: Mapping[str, Mapping[str, float]]
    """Resolution (``"10"``, ``"20"``, ``"60"``) -> ``ULX``, ``ULY``, ``XDIM``, ``YDIM``,
    ``NROWS``, ``NCOLS``."""
    sun_zenith: float
    """Mean sun zenith (degrees)."""
    sun_azimuth: float
    views: Mapping[str, tuple[float, float]]
    """Band id -> mean viewing (zenith, azimuth) in degrees."""
    grid_step: tuple[float, float] | None = None
    """(row step, column step) of the angle grids in metres (``None`` without grids)."""
    sun_zenith_grid: np.ndarray | None = None
    sun_azimuth_grid: np.ndarray | None = None
    view_grids: Mapping[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )
    """(band id, detector id) -> (zenith grid, azimuth grid), NaN outside the detector."""
    masks: tuple[MaskFile, ...] = ()
    quality: Mapping[str, float] = field(default_factory=dict)
    """``Image_Content_QI`` numbers (``CLOUDY_PIXEL_PERCENTAGE``...)."""

    def origin(self) -> tuple[float, float]:
        """(ULX, ULY) of the tile in its CRS (metres), from the finest geoposition."""
        for res in sorted(self.geocoding, key=float):
            g = self.geocoding[res]
            if "ULX" in g and "ULY" in g:
                return float(g["ULX"]), float(g["ULY"])
        raise MetadataError(f"{self.source}: no Geoposition in Tile_Geocoding")


def _grid(where: str, elem: ET.Element) -> tuple[np.ndarray, tuple[float, float]]:
    """A ``Zenith``/``Azimuth`` element -> (2-D float64 array, (row step, col step))."""
    step_r = parse_number(child_text(elem, "ROW_STEP") or "", where=f"{where}.ROW_STEP")
    step_c = parse_number(child_text(elem, "COL_STEP") or "", where=f"{where}.COL_STEP")
    rows = []
    values = child(elem, "Values_List")
    for v in [] if values is None else children(values, "VALUES"):
        try:
            rows.append([float(x) for x in (v.text or "").split()])
        except ValueError:
            raise MetadataError(f"{where}.Values_List: {v.text!r} holds a non-number") from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise MetadataError(f"{where}.Values_List: rows missing or of unequal length")
    return np.asarray(rows, dtype=np.float64), (step_r, step_c)


def _sub(elem: ET.Element, name: str, where: str) -> ET.Element:
    found = child(elem, name)
    if found is None:
        raise MetadataError(f"{where}.{name} is missing; the tile metadata is incomplete")
    return found


def _band(index: str | None, where: str) -> str:
    if index is None or not index.isdigit() or int(index) >= len(BAND_IDS):
        raise MetadataError(f"{where}: bad bandId {index!r} (0..12 expected)")
    return BAND_IDS[int(index)]


def _angles(path: str, root: ET.Element) -> dict[str, object]:
    angles = child(root, "Geometric_Info/Tile_Angles")
    if angles is None:
        raise MetadataError(
            f"{path}: Geometric_Info.Tile_Angles is missing; the file is incomplete"
        )
    out: dict[str, object] = {}
    hint = "the tile metadata is incomplete; re-download the product"
    prefix = "Geometric_Info.Tile_Angles."
    zen = need_text(Path(path), angles, "Mean_Sun_Angle/ZENITH_ANGLE", hint=hint, prefix=prefix)
    azi = need_text(Path(path), angles, "Mean_Sun_Angle/AZIMUTH_ANGLE", hint=hint, prefix=prefix)
    out["sun_zenith"] = parse_number(zen, where=f"{path}: Mean_Sun_Angle.ZENITH_ANGLE")
    out["sun_azimuth"] = parse_number(azi, where=f"{path}: Mean_Sun_Angle.AZIMUTH_ANGLE")
    sun = child(angles, "Sun_Angles_Grid")
    if sun is not None:
        where = f"{path}: Sun_Angles_Grid"
        z, step = _grid(f"{where}.Zenith", _sub(sun, "Zenith", where))
        a, _ = _grid(f"{where}.Azimuth", _sub(sun, "Azimuth", where))
        out.update(sun_zenith_grid=z, sun_azimuth_grid=a, grid_step=step)
    grids: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    for elem in children(angles, "Viewing_Incidence_Angles_Grids"):
        where = f"{path}: Viewing_Incidence_Angles_Grids[bandId={elem.get('bandId')}]"
        band = _band(elem.get("bandId"), where)
        det = elem.get("detectorId", "")
        if not det.isdigit():
            raise MetadataError(f"{where}: bad detectorId {det!r}")
        vz, _ = _grid(f"{where}.Zenith", _sub(elem, "Zenith", where))
        va, _ = _grid(f"{where}.Azimuth", _sub(elem, "Azimuth", where))
        grids[(band, int(det))] = (vz, va)
    out["view_grids"] = grids
    views: dict[str, tuple[float, float]] = {}
    means = child(angles, "Mean_Viewing_Incidence_Angle_List")
    for elem in [] if means is None else children(means, "Mean_Viewing_Incidence_Angle"):
        index = elem.get("bandId", "")
        zt, at = child_text(elem, "ZENITH_ANGLE"), child_text(elem, "AZIMUTH_ANGLE")
        if index.isdigit() and int(index) < len(BAND_IDS) and zt is not None and at is not None:
            where = f"{path}: Mean_Viewing_Incidence_Angle[bandId={index}]"
            views[BAND_IDS[int(index)]] = (
                parse_number(zt, where=where),
                parse_number(at, where=where),
            )
    out["views"] = {b: views[b] for b in BAND_IDS if b in views}
    return out


def _geocoding(path: str, root: ET.Element) -> tuple[int, dict[str, dict[str, float]]]:
    hint = "the tile metadata is incomplete; re-download the product"
    code = need_text(
        Path(path), root, "Geometric_Info/Tile_Geocoding/HORIZONTAL_CS_CODE", hint=hint
    )
    match = re.fullmatch(r"EPSG:(\d+)", code.strip())
    if match is None:
        raise MetadataError(f"{path}: HORIZONTAL_CS_CODE = {code!r} is not 'EPSG:<code>'")
    geo = child(root, "Geometric_Info/Tile_Geocoding")
    out: dict[str, dict[str, float]] = {}
    for pos in children(geo, "Geoposition") if geo is not None else []:
        res = pos.get("resolution", "")
        out.setdefault(res, {}).update(
            {
                k: parse_number(child_text(pos, k) or "", where=f"{path}: Geoposition[{res}].{k}")
                for k in ("ULX", "ULY", "XDIM", "YDIM")
            }
        )
    for size in children(geo, "Size") if geo is not None else []:
        res = size.get("resolution", "")
        out.setdefault(res, {}).update(
            {
                k: int(parse_number(child_text(size, k) or "", where=f"{path}: Size[{res}].{k}"))
                for k in ("NROWS", "NCOLS")
            }
        )
    return int(match.group(1)), out


def _masks(root: ET.Element) -> tuple[MaskFile, ...]:
    qi = child(root, "Quality_Indicators_Info/Pixel_Level_QI")
    found = []
    for elem in children(qi, "MASK_FILENAME") if qi is not None else []:
        name = (elem.text or "").strip()
        if not name:
            continue
        index = elem.get("bandId")
        band = BAND_IDS[int(index)] if index and index.isdigit() and int(index) < 13 else None
        found.append(MaskFile(elem.get("type", Path(name).stem), band, name))
    return tuple(found)


def parse_tile(path: str, text: str) -> TileMetadata:
    """Parse the text of a tile metadata file (``path`` names it in messages).

    Raises
    ------
    MetadataError
        Malformed or truncated XML, a file that is not Sentinel-2 tile metadata, or missing
        elements (named).
    """
    root = parse_xml(Path(path), text)
    kind = local_name(root.tag)
    match = re.fullmatch(r"Level-(1C|2A)_Tile_ID", kind)
    if match is None:
        raise MetadataError(f"{path}: root element <{kind}> is not a Sentinel-2 L1C/L2A tile file")
    hint = "the tile metadata is incomplete; re-download the product"
    sensing = parse_utc(
        need_text(Path(path), root, "General_Info/SENSING_TIME", hint=hint),
        where=f"{path}: SENSING_TIME",
    )
    epsg, geocoding = _geocoding(path, root)
    quality: dict[str, float] = {}
    content = child(root, "Quality_Indicators_Info/Image_Content_QI")
    for elem in list(content) if content is not None else []:
        try:
            quality[local_name(elem.tag)] = float((elem.text or "").strip())
        except ValueError:
            continue
    angles = _angles(path, root)
    return TileMetadata(
        source=path,
        level=f"L{match.group(1)}",
        tile_id=child_text(root, "General_Info/TILE_ID"),
        sensing_time=sensing,
        epsg=epsg,
        geocoding=geocoding,
        masks=_masks(root),
        quality=quality,
        **angles,  # type: ignore[arg-type]
    )

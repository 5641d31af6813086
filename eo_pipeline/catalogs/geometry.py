"""Scene footprints in EPSG:4326 that survive the antimeridian.

A footprint is built from a ring of (longitude, latitude) points: the corners a product
prints (Landsat ``CORNER_*_LAT/LON_PRODUCT``, Sentinel-2 ``EXT_POS_LIST``, DIMAP
``Dataset_Frame``) or the densified edges of a projected grid (:func:`footprint_from_bounds`).

Longitudes are first unwrapped along the ring (each step is taken the short way round, so
``179.9 -> -179.9`` is a 0.2 degree step east). A ring that then reaches beyond +-180 degrees
crosses the antimeridian: it is cut at 180 degrees into a GeoJSON ``MultiPolygon`` whose
parts lie on either side, and its bbox has ``west > east``, as RFC 7946 section 3.1.9 and the
STAC item spec ask. Exterior rings are counter-clockwise (RFC 7946 section 3.1.6).

Rings that enclose a pole (their unwrapped longitudes do not close) are refused with a clear
:class:`~eo_pipeline.errors.MetadataError`; polar scenes are not supported yet.

Examples
--------
>>> fp = footprint_from_corners([(179.5, -15.0), (-179.5, -15.0), (-179.5, -16.0), (179.5, -16.0)])
>>> fp.geometry["type"], fp.bbox, fp.crosses_antimeridian
('MultiPolygon', (179.5, -16.0, -179.5, -15.0), True)
>>> footprint_from_corners([(10, 1), (11, 1), (11, 0), (10, 0)]).geometry["type"]
'Polygon'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
import shapely.affinity
import shapely.geometry
from shapely.geometry.polygon import orient

from eo_pipeline.errors import MetadataError

__all__ = ["Footprint", "footprint_from_bounds", "footprint_from_corners"]


@dataclass(frozen=True)
class Footprint:
    """A scene footprint in EPSG:4326 with its STAC bbox."""

    geometry: dict[str, Any]
    """GeoJSON ``Polygon``, or ``MultiPolygon`` split at the antimeridian (lists, not tuples)."""
    bbox: tuple[float, float, float, float]
    """West, south, east, north in degrees; ``west > east`` when crossing the antimeridian."""
    crosses_antimeridian: bool
    """True when the footprint was split at 180 degrees."""


def _unwrap(lons: Sequence[float]) -> list[float]:
    out = [float(lons[0])]
    for lon in lons[1:]:
        step = float(lon) - out[-1]
        step -= 360.0 * round(step / 360.0)
        out.append(out[-1] + step)
    return out


def _r(value: float) -> float:
    """Round to 1e-9 degree (0.1 mm): hides the float noise of the +-360 shifts."""
    return round(float(value), 9) + 0.0


def _rings(geom: shapely.Geometry) -> list[list[list[list[float]]]]:
    polys = list(geom.geoms) if isinstance(geom, shapely.MultiPolygon) else [geom]
    out = []
    for poly in polys:
        poly = orient(poly, sign=1.0)
        rings = [poly.exterior, *poly.interiors]
        out.append([[[_r(x), _r(y)] for x, y in ring.coords] for ring in rings])
    return out


def footprint_from_corners(
    points: Sequence[tuple[float, float]], *, where: str = "footprint"
) -> Footprint:
    """Footprint of a ring of ``(lon, lat)`` points, split at the antimeridian when it crosses.

    Parameters
    ----------
    points
        At least three ``(longitude, latitude)`` pairs in degrees, in ring order (clockwise or
        counter-clockwise; a closing point equal to the first is allowed). Longitudes may be
        given in ``[-180, 180]`` or ``[0, 360]``.
    where
        What the points come from (a file name), for error messages.

    Returns
    -------
    Footprint
        Geometry (``Polygon`` or, across 180 degrees, ``MultiPolygon``) and bbox.

    Raises
    ------
    MetadataError
        Fewer than three distinct points, latitudes outside [-90, 90], non-finite numbers,
        a ring that encloses a pole, or a degenerate (zero-area) ring.

    Examples
    --------
    >>> fp = footprint_from_corners([(-68.74, -13.41), (-66.62, -13.40), (-66.60, -15.51), (-68.74, -15.52)])
    >>> fp.bbox
    (-68.74, -15.52, -66.6, -13.4)
    """
    pts = [(float(lon), float(lat)) for lon, lat in points]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    if len(pts) < 3:
        raise MetadataError(f"{where}: a footprint needs at least 3 corner points, got {len(pts)}")
    for lon, lat in pts:
        if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 90.0:
            raise MetadataError(
                f"{where}: corner ({lon}, {lat}) is not a valid longitude/latitude in degrees"
            )
    lons = _unwrap([p[0] for p in pts])
    closing = lons[0] - lons[-1]
    closing -= 360.0 * round(closing / 360.0)
    if abs(lons[-1] + closing - lons[0]) > 1e-9:
        raise MetadataError(
            f"{where}: the footprint encloses a pole; polar scenes are not supported"
        )
    # Bring the unwrapped ring into [-180, 540) so that at most the line lon=180 cuts it.
    shift = 360.0 * math.floor((min(lons) + 180.0) / 360.0)
    lons = [lon - shift for lon in lons]
    ring = shapely.Polygon(list(zip(lons, [p[1] for p in pts], strict=True)))
    if not ring.is_valid:
        ring = shapely.make_valid(ring)
    if ring.area <= 0.0:
        raise MetadataError(f"{where}: the corner points enclose no area: {pts}")
    west, south, east, north = ring.bounds
    if east <= 180.0:
        geom = ring
        bbox = (west, south, east, north)
        crosses = False
    else:
        left = ring.intersection(shapely.box(-180.0, -90.0, 180.0, 90.0))
        right = shapely.affinity.translate(
            ring.intersection(shapely.box(180.0, -90.0, 540.0, 90.0)), xoff=-360.0
        )
        parts = [
            g
            for part in (left, right)
            for g in getattr(part, "geoms", [part])
            if isinstance(g, shapely.Polygon) and g.area > 0.0
        ]
        geom = shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0]
        crosses = len(parts) > 1
        bbox = (west, south, east - 360.0, north) if crosses else geom.bounds
    rings = _rings(geom)
    if isinstance(geom, shapely.MultiPolygon):
        geometry: dict[str, Any] = {"type": "MultiPolygon", "coordinates": rings}
    else:
        geometry = {"type": "Polygon", "coordinates": rings[0]}
    return Footprint(geometry, tuple(_r(v) for v in bbox), crosses)  # type: ignore[arg-type]


def footprint_from_bounds(
    bounds: tuple[float, float, float, float], crs: Any, *, densify: int = 21
) -> Footprint:
    """Footprint in EPSG:4326 of a projected grid's bounds, edges densified before reprojection.

    Parameters
    ----------
    bounds
        ``(minx, miny, maxx, maxy)`` in the units of ``crs``.
    crs
        Anything :class:`pyproj.CRS` accepts (``32619``, ``"EPSG:32701"``, a WKT string, a
        rasterio ``CRS``).
    densify
        Points per edge (corners included); curved edges (UTM far from its central meridian,
        polar grids) need more.

    Returns
    -------
    Footprint
        As :func:`footprint_from_corners`, split at the antimeridian when the grid crosses it.

    Examples
    --------
    >>> fp = footprint_from_bounds((528300.0, -1715700.0, 757800.0, -1482300.0), 32619)
    >>> [round(v, 2) for v in fp.bbox]
    [-68.74, -15.52, -66.6, -13.4]
    """
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    try:
        src = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    except CRSError as err:
        raise MetadataError(f"footprint_from_bounds: unknown CRS {crs!r}: {err}") from None
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    if not (maxx > minx and maxy > miny):
        raise MetadataError(
            f"footprint_from_bounds: empty bounds {bounds!r} (need minx<maxx, miny<maxy)"
        )
    n = max(int(densify), 2)
    xs: list[float] = []
    ys: list[float] = []
    edges = (((minx, maxy), (maxx, maxy)), ((maxx, maxy), (maxx, miny)),
             ((maxx, miny), (minx, miny)), ((minx, miny), (minx, maxy)))  # fmt: skip
    for (x0, y0), (x1, y1) in edges:
        for i in range(n - 1):
            t = i / (n - 1)
            xs.append(x0 + (x1 - x0) * t)
            ys.append(y0 + (y1 - y0) * t)
    if src.is_geographic:
        lons, lats = xs, ys
    else:
        transformer = Transformer.from_crs(src, 4326, always_xy=True)
        lons, lats = transformer.transform(xs, ys)
    return footprint_from_corners(
        list(zip(lons, lats, strict=True)), where=f"grid {bounds} in {src.to_string()}"
    )

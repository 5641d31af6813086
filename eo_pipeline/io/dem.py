"""Digital elevation models for orthorectification: heights above the ellipsoid over a scene.

RPC models expect heights above the WGS84 **ellipsoid**; DEMs give heights above a geoid
(SRTM and most national DEMs: EGM96; Copernicus GLO-30: EGM2008) or, more rarely, the
ellipsoid. :func:`prepare_dem` turns any of the accepted sources into one small float32
GeoTIFF in EPSG:4326 of **ellipsoidal** heights over the scene (plus a margin), which GDAL's
RPC transformer reads as ``RPC_DEM`` (geographic, so it looks heights up without a coordinate
transformation per point; on the finest source's own grid when that one is geographic, so
its heights are copied, not smoothed by resampling):

- sources: a GeoTIFF/COG (or any GDAL raster), SRTM ``.hgt`` tiles (one file, a list, or a
  folder of them), or STAC items of DEM tiles (their ``data``/``elevation``/``dem`` asset);
- vertical datum: from :class:`DEMSpec.vertical_datum`, else from the file (``.hgt`` is
  EGM96 by definition of SRTM; a compound or 3-D CRS says it), else
  :class:`~eo_pipeline.errors.DEMError` (a guessed datum would shift the whole product by
  ``N * tan(view angle)``, N up to 100 m);
- geoid undulation ``N`` from a geoid grid (GDAL-readable: ``egm96_15.gtx``...), bilinear,
  wrapping at the antimeridian: ``h_ellipsoid = H_geoid + N``;
- voids (the source's nodata inside its extent): ``"fill"`` (GDAL's inverse-distance fill,
  then the result is smooth across the hole) or ``"flag"`` (left as nodata: GDAL's RPC
  transformer then fails there and the orthoimage holds nodata); counted either way;
- coverage: a scene part outside every source raises :class:`DEMError` naming that part.

Examples
--------
>>> DEMSpec("N44E005.hgt").vertical_datum is None
True
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eo_pipeline.errors import DEMError

__all__ = ["DATUMS", "DEMSpec", "PreparedDEM", "find_geoid_grid", "geoid_undulation", "prepare_dem"]

DATUMS = ("ellipsoid", "egm96", "egm2008")
"""Vertical datums a DEM may be in (the two geoids need their grid)."""
_GEOID_FILES = {
    "egm96": ("egm96_15.gtx", "us_nga_egm96_15.tif"),
    "egm2008": ("egm08_25.gtx", "us_nga_egm08_25.tif"),
}
_NODATA = -32768.0


@dataclass(frozen=True)
class DEMSpec:
    """A DEM to orthorectify with, and how to read it."""

    source: Any
    """A raster path, a folder or list of ``.hgt``/GeoTIFF tiles, or STAC item(s) of tiles."""
    vertical_datum: str | None = None
    """``"ellipsoid"``, ``"egm96"`` or ``"egm2008"``; ``None``: from the file (``.hgt``: EGM96)."""
    geoid: str | os.PathLike[str] | None = None
    """Geoid grid (``egm96_15.gtx``...); ``None``: :func:`find_geoid_grid`."""
    voids: str = "fill"
    """``"fill"`` (interpolate across voids) or ``"flag"`` (nodata -> nodata in the ortho)."""


@dataclass(frozen=True)
class PreparedDEM:
    """The ellipsoidal DEM written for one scene."""

    path: Path
    """Float32 GeoTIFF, EPSG:4326, heights above the WGS84 ellipsoid, nodata -32768."""
    min_height: float
    """Lowest ellipsoidal height over the area (metres)."""
    max_height: float
    """Highest ellipsoidal height over the area (metres)."""
    void_fraction: float
    """Share of the area's DEM cells that were voids in the source."""
    lineage: str
    """What was used: sources, datum, geoid grid, void handling (for ``processing:lineage``)."""


def find_geoid_grid(datum: str, given: str | os.PathLike[str] | None = None) -> Path:
    """The geoid grid file of ``datum``: ``given``, ``$EO_PIPELINE_GEOID_<DATUM>``, PROJ's data dirs.

    Raises
    ------
    DEMError
        No grid found (the message says where it was looked for and how to give one).
    """
    if given is not None:
        p = Path(given)
        if not p.is_file():
            raise DEMError(f"geoid grid {p} does not exist; give the {datum.upper()} grid file")
        return p
    env = os.environ.get(f"EO_PIPELINE_GEOID_{datum.upper()}")
    places: list[Path] = [Path(env)] if env else []
    try:
        import pyproj.datadir

        dirs = [pyproj.datadir.get_data_dir(), *os.environ.get("PROJ_DATA", "").split(os.pathsep)]
        places += [Path(d) / f for d in dirs if d for f in _GEOID_FILES[datum]]
    except ImportError:  # pragma: no cover - pyproj is a dependency
        pass
    for p in places:
        if p.is_file():
            return p
    raise DEMError(
        f"the DEM's heights are above the {datum.upper()} geoid but no geoid grid was found "
        f"(looked at {', '.join(str(p) for p in places) or 'nothing'}); pass geoid= "
        f"(e.g. {_GEOID_FILES[datum][0]}) or set EO_PIPELINE_GEOID_{datum.upper()}"
    )


def geoid_undulation(grid: str | os.PathLike[str], lon: Any, lat: Any) -> np.ndarray:
    """Geoid height N (metres above the ellipsoid) at (lon, lat), bilinear, antimeridian-safe.

    The whole grid is read once (EGM96 15': 4 MB).
    """
    import rasterio

    with rasterio.open(grid) as ds:
        values = ds.read(1).astype(np.float64)
        t = ds.transform
        nodata = ds.nodata
    if nodata is not None:
        values[values == nodata] = np.nan
    ncols = values.shape[1]
    wraps = abs(ncols * t.a - 360.0) < 1e-6
    fc = (np.asarray(lon, np.float64) - t.c) / t.a - 0.5
    fr = (np.asarray(lat, np.float64) - t.f) / t.e - 0.5
    if wraps:
        fc = np.mod(fc, ncols)
    c0 = np.floor(fc).astype(np.int64)
    r0 = np.clip(np.floor(fr).astype(np.int64), 0, values.shape[0] - 2)
    wc, wr = fc - c0, fr - r0
    c1 = (c0 + 1) % ncols if wraps else np.clip(c0 + 1, 0, ncols - 1)
    c0 = c0 % ncols if wraps else np.clip(c0, 0, ncols - 1)
    top = values[r0, c0] * (1 - wc) + values[r0, c1] * wc
    bottom = values[r0 + 1, c0] * (1 - wc) + values[r0 + 1, c1] * wc
    return np.asarray(top * (1 - wr) + bottom * wr)


def _asset_hrefs(items: Sequence[Any], source: Any = None) -> list[str]:
    """The DEM asset of each item; a local file outside the items' catalog folder is refused
    unless marked as read in place (:mod:`eo_pipeline.catalogs.hrefs`)."""
    from eo_pipeline.io.asset_checks import catalog_roots, check_href

    roots = catalog_roots(source, items)
    out = []
    for item, root in zip(items, roots, strict=True):
        assets = item.assets
        key = next((k for k in ("data", "elevation", "dem", "DEM") if k in assets), None)
        key = key or next((k for k, a in assets.items() if "data" in (a.roles or [])), None)
        if key is None:
            raise DEMError(
                f"STAC item {item.id}: no DEM asset (looked for keys data/elevation/dem or role "
                "data); give the DEM tiles' items or their files"
            )
        check_href(item, key, root)
        out.append(assets[key].get_absolute_href() or assets[key].href)
    return out


def _sources(source: Any) -> list[str]:
    """File names (or GDAL names) of the DEM's tiles."""
    try:
        import pystac
    except ImportError:  # pragma: no cover
        pystac = None  # type: ignore[assignment]
    if pystac is not None:
        if isinstance(source, pystac.Item):
            return _asset_hrefs([source])
        if isinstance(source, pystac.ItemCollection | pystac.Collection | pystac.Catalog):
            items = list(
                source.items
                if isinstance(source, pystac.ItemCollection)
                else source.get_items(recursive=True)
            )
            return _asset_hrefs(items)
        if isinstance(source, list | tuple) and source and isinstance(source[0], pystac.Item):
            return _asset_hrefs(source)
    if isinstance(source, list | tuple):
        return [str(s) for s in source]
    p = Path(source)
    if p.is_dir():
        found = sorted(
            q for q in p.iterdir() if q.suffix.lower() in (".hgt", ".tif", ".tiff", ".vrt")
        )
        if not found:
            raise DEMError(f"{p}: a folder without DEM tiles (.hgt, .tif); give the DEM files")
        return [str(q) for q in found]
    if p.suffix.lower() == ".json":
        from eo_pipeline.catalogs.store import read_items

        return _asset_hrefs(list(read_items(p)), p)
    if not p.exists() and "://" not in str(source):
        raise DEMError(f"DEM {p} does not exist; give a GeoTIFF/COG, .hgt tiles or STAC DEM items")
    return [str(source)]


def _datum_of(name: str, crs: Any) -> str | None:
    if name.lower().endswith(".hgt") or name.lower().endswith(".hgt.zip"):
        return "egm96"  # SRTM heights are above EGM96 by specification
    if crs is None:
        return None
    wkt = crs.to_wkt().upper()
    if "EGM96" in wkt or 'EPSG","5773' in wkt:
        return "egm96"
    if "EGM2008" in wkt or "EGM08" in wkt or 'EPSG","3855' in wkt:
        return "egm2008"
    if crs.to_epsg() in (4979, 4978) or "ELLIPSOIDAL HEIGHT" in wkt:
        return "ellipsoid"
    return None


@dataclass
class _Source:
    name: str
    bounds: tuple[float, float, float, float]  # lon/lat
    res: float  # degrees
    datum: str | None
    origin: tuple[float, float] | None = None
    """(west, north) of the source's pixel grid when it is geographic with square cells."""


def _inspect(names: Sequence[str]) -> list[_Source]:
    import rasterio
    from rasterio.warp import transform_bounds

    out = []
    for name in names:
        try:
            with rasterio.open(name) as ds:
                if ds.crs is None:
                    raise DEMError(f"DEM {name} has no CRS; georeference it (gdal_edit -a_srs)")
                b = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
                t = ds.transform
                res = abs(t.a)
                if ds.crs.is_projected:
                    res = res / 111_320.0
                tag = (ds.tags().get("VERTICAL_DATUM") or "").lower() or None
                datum = tag if tag in DATUMS else _datum_of(name, ds.crs)
                square = t.b == t.d == 0 and abs(t.a) == abs(t.e) and t.e < 0
                origin = (t.c, t.f) if ds.crs.is_geographic and square else None
                out.append(_Source(name, b, res, datum, origin))
        except rasterio.errors.RasterioIOError as err:
            raise DEMError(f"DEM {name} is not a readable raster ({err})") from None
    return out


def _uncovered(covered: np.ndarray, bounds: tuple[float, float, float, float], res: float) -> str:
    """Words for the part of ``bounds`` that no source covers."""
    rows, cols = np.nonzero(~covered)
    x0, y0 = bounds[0], bounds[3]
    box = (
        x0 + cols.min() * res,
        y0 - (rows.max() + 1) * res,
        x0 + (cols.max() + 1) * res,
        y0 - rows.min() * res,
    )
    h, w = covered.shape
    north, south = rows.min() == 0, rows.max() == h - 1
    west_edge, east_edge = cols.min() == 0, cols.max() == w - 1
    sides = [
        name
        for name, touch, across in (
            ("north", north, south), ("south", south, north),
            ("east", east_edge, west_edge), ("west", west_edge, east_edge),
        )
        if touch and not across
    ]  # fmt: skip
    share = 100.0 * (~covered).mean()
    return (
        f"{share:.0f} % of the scene area, its {'-'.join(sides) or 'central'} part "
        f"(lon {box[0]:.4f}..{box[2]:.4f}, lat {box[1]:.4f}..{box[3]:.4f})"
    )


def _datum(spec: DEMSpec, sources: list[_Source]) -> str:
    if spec.vertical_datum is not None:
        if spec.vertical_datum.lower() not in DATUMS:
            raise DEMError(
                f"vertical_datum={spec.vertical_datum!r} is unknown; use one of {', '.join(DATUMS)}"
            )
        return spec.vertical_datum.lower()
    found = {s.datum for s in sources}
    if None in found:
        unknown = [s.name for s in sources if s.datum is None][:3]
        raise DEMError(
            f"DEM {', '.join(unknown)}: vertical datum unknown (no vertical CRS in the file); "
            "pass vertical_datum='egm96' (SRTM, most national DEMs), 'egm2008' (Copernicus "
            "GLO-30) or 'ellipsoid'; RPC models need heights above the ellipsoid"
        )
    if len(found) > 1:
        raise DEMError(
            f"DEM tiles in different vertical datums ({', '.join(sorted(str(f) for f in found))}); use one DEM"
        )
    return found.pop()  # type: ignore[return-value]


def prepare_dem(
    spec: DEMSpec | Any,
    bounds: tuple[float, float, float, float],
    out_path: str | os.PathLike[str],
    *,
    margin: float | None = None,
) -> PreparedDEM:
    """Write the ellipsoidal DEM over ``bounds`` (lon/lat, plus ``margin`` degrees; default
    two cells of the finest source).

    Raises
    ------
    DEMError
        A source unreadable or without CRS, an unknown vertical datum, no geoid grid, or a
        part of the area that no source covers (named in the message).

    Examples
    --------
    >>> prepare_dem(DEMSpec("/no/dem.tif"), (5, 44, 5.1, 44.1), "x.tif")
    Traceback (most recent call last):
    ...
    eo_pipeline.errors.DEMError: DEM /no/dem.tif does not exist; give a GeoTIFF/COG, .hgt tiles or STAC DEM items
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.fill import fillnodata
    from rasterio.transform import from_origin
    from rasterio.warp import reproject

    spec = spec if isinstance(spec, DEMSpec) else DEMSpec(spec)
    if spec.voids not in ("fill", "flag"):
        raise DEMError(f"voids={spec.voids!r}: use 'fill' or 'flag'")
    sources = _inspect(_sources(spec.source))
    datum = _datum(spec, sources)
    finest = min(sources, key=lambda s: s.res)
    res = finest.res
    margin = 2 * res if margin is None else margin
    west, south = bounds[0] - margin, bounds[1] - margin
    east, north = bounds[2] + margin, bounds[3] + margin
    if finest.origin is not None:  # on the source's own grid: its heights copied, not resampled
        x0, y0 = finest.origin
        west = x0 + math.floor((west - x0) / res) * res
        north = y0 - math.floor((y0 - north) / res) * res
    width, height = max(2, math.ceil((east - west) / res)), max(2, math.ceil((north - south) / res))
    transform = from_origin(west, north, res, res)
    lon = west + (np.arange(width) + 0.5) * res
    lat = north - (np.arange(height) + 0.5) * res
    covered = np.zeros((height, width), bool)
    for s in sources:
        covered |= (
            (lat[:, None] >= s.bounds[1]) & (lat[:, None] <= s.bounds[3])
            & (lon[None, :] >= s.bounds[0]) & (lon[None, :] <= s.bounds[2])
        )  # fmt: skip
    if not covered.all():
        raise DEMError(
            f"the DEM ({', '.join(Path(s.name).name for s in sources[:4])}) does not cover "
            f"{_uncovered(covered, (west, south, east, north), res)}; add the DEM tiles there"
        )
    heights = np.full((height, width), np.nan, np.float32)
    for s in sources:
        with rasterio.open(s.name) as ds:
            part = np.full((height, width), np.nan, np.float32)
            reproject(
                rasterio.band(ds, 1), part, src_nodata=ds.nodata, dst_nodata=np.nan,
                dst_transform=transform, dst_crs="EPSG:4326", resampling=Resampling.bilinear,
            )  # fmt: skip
            heights = np.where(np.isnan(heights), part, heights)
    voids = np.isnan(heights)
    void_fraction = float(voids.mean())
    if voids.all():
        raise DEMError(
            f"the DEM holds only voids over lon {west:.4f}..{east:.4f}, lat {south:.4f}..{north:.4f}"
        )
    if voids.any() and spec.voids == "fill":
        heights = fillnodata(
            np.nan_to_num(heights, nan=0.0),
            mask=(~voids).astype(np.uint8),
            max_search_distance=max(width, height),
        )
    geoid_name = None
    if datum != "ellipsoid":
        grid = find_geoid_grid(datum, spec.geoid)
        geoid_name = grid.name
        undulation = geoid_undulation(grid, lon[None, :], lat[:, None])
        heights = (heights + undulation).astype(np.float32)
    out = np.where(np.isnan(heights), _NODATA, heights).astype(np.float32)
    if spec.voids == "flag" and voids.any():
        out[voids] = _NODATA
    valid = out[out != _NODATA]
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
        crs="EPSG:4326", transform=transform, nodata=_NODATA, tiled=True, compress="deflate",
    ) as dst:  # fmt: skip
        dst.write(out, 1)
    if void_fraction > 0:
        warnings.warn(
            f"DEM voids over {100 * void_fraction:.2f} % of the scene area were "
            f"{'filled by interpolation' if spec.voids == 'fill' else 'flagged (nodata in the orthoimage)'}",
            RuntimeWarning,
            stacklevel=2,
        )
    names = ", ".join(Path(s.name).name for s in sources)
    lineage = (
        f"DEM {names} ({datum.upper() if datum != 'ellipsoid' else 'ellipsoidal'} heights"
        + (
            f", converted to ellipsoidal heights with the geoid grid {geoid_name}"
            if geoid_name
            else ""
        )
        + f"; voids {100 * void_fraction:.2f} % {'filled' if spec.voids == 'fill' else 'flagged'})"
    )
    return PreparedDEM(path, float(valid.min()), float(valid.max()), void_fraction, lineage)

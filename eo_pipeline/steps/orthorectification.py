"""Orthorectification: sensor-geometry (Primary) products onto a map grid with RPC + DEM.

The engine is GDAL's RPC transformer (what ``gdalwarp -rpc -to RPC_DEM=...`` uses), called
per **output tile** through :func:`rasterio.warp.reproject`: for each tile the source window
that can reach it is found with our :class:`~eo_pipeline.catalogs.rpc.RPCModel` at the DEM's
lowest and highest heights, only that window is read (a dask slice of the lazy input), and
the tile is warped with the window's RPC (offsets shifted) and the scene's ellipsoidal DEM
(:func:`eo_pipeline.io.dem.prepare_dem`, ``RPC_DEM``). Peak memory is a few tiles and their
windows, whatever the scene size; every tile is one dask task.

Without a DEM the scene is warped at one height (``height=``, default the RPC's height
offset) and a ``RuntimeWarning`` states how far that can displace the image:
``height error x tan(viewing angle)``, with the RPC's height range as the height error.

Examples
--------
>>> from eo_pipeline.steps.orthorectification import utm_epsg
>>> utm_epsg(76.9, 43.2)  # Almaty
32643
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from eo_pipeline.catalogs.rpc import RPCModel
from eo_pipeline.errors import OrthorectificationError

__all__ = ["OrthoGrid", "orthorectify", "output_grid", "utm_epsg"]

_RESAMPLING = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average")
_TOLERANCES = (0.0, 0.125)
"""Transformer error thresholds (pixels): exact, or GDAL's approximation as rasterio fixes it."""
_MARGIN_PX = 6
"""Extra source pixels around a tile's window (the widest kernel, lanczos, needs 3)."""


@dataclass(frozen=True)
class OrthoGrid:
    """The output map grid."""

    crs: str
    """``EPSG:nnnn``."""
    transform: tuple[float, float, float, float, float, float]
    """Affine (a, b, c, d, e, f) of the pixel corners, north up."""
    shape: tuple[int, int]
    """(rows, cols)."""

    @property
    def resolution(self) -> float:
        """Pixel size (CRS units)."""
        return self.transform[0]


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone holding (lon, lat)."""
    zone = min(60, max(1, math.floor((lon + 180.0) / 6.0) + 1))
    return (32600 if lat >= 0 else 32700) + zone


def _gsd(rpc: RPCModel, rows: int, cols: int) -> float:
    """Ground sampling distance (metres) at the image centre, mean of both directions."""
    r, c = rows / 2.0, cols / 2.0
    lon, lat = rpc.localize(np.array([r, r + 1, r]), np.array([c, c, c + 1]), rpc.height_off)
    k = math.cos(math.radians(float(lat[0])))
    d = [
        math.hypot((lon[i] - lon[0]) * 111_319.49 * k, (lat[i] - lat[0]) * 111_132.954)
        for i in (1, 2)
    ]
    return float(np.mean(d))


def _nice(value: float) -> float:
    """``value`` rounded to two significant digits."""
    p = 10.0 ** (math.floor(math.log10(value)) - 1)
    return round(value / p) * p


def output_grid(
    rpc: RPCModel,
    shape: tuple[int, int],
    heights: tuple[float, float],
    *,
    crs: str | int | None = None,
    resolution: float | None = None,
    bounds: tuple[float, float, float, float] | None = None,
) -> OrthoGrid:
    """The map grid covering the scene seen at ``heights`` (low, high), or ``bounds``
    (west, south, east, north in the output CRS) when given.

    Raises
    ------
    OrthorectificationError
        An output CRS whose area of use does not hold the scene, or which is geographic
        without an explicit ``resolution``.
    """
    from pyproj import CRS, Transformer

    ring = np.array(rpc.footprint(shape[0], shape[1], heights))
    lon_c, lat_c = float(ring[:, 0].mean()), float(ring[:, 1].mean())
    target = CRS.from_user_input(crs) if crs is not None else CRS.from_epsg(utm_epsg(lon_c, lat_c))
    area = target.area_of_use
    if area is not None:
        w, s, e, n = area.bounds
        lo, la = ring[:, 0], ring[:, 1]
        inside = (
            (lo >= w - 1e-9) & (lo <= e + 1e-9) & (la >= s - 1e-9) & (la <= n + 1e-9)
            if w <= e
            else (la >= s) & (la <= n)
        )
        if not inside.all():
            raise OrthorectificationError(
                f"output CRS {target.to_string()} ({target.name}) cannot hold the scene: its area "
                f"of use is lon {w:g}..{e:g}, lat {s:g}..{n:g}, the scene spans lon "
                f"{lo.min():.4f}..{lo.max():.4f}, lat {la.min():.4f}..{la.max():.4f}; leave "
                "crs=None for the scene's UTM zone"
            )
    if target.is_geographic and resolution is None:
        raise OrthorectificationError(
            f"output CRS {target.to_string()} is geographic: give resolution= in degrees"
        )
    res = float(resolution) if resolution is not None else _nice(_gsd(rpc, *shape))
    if not res > 0:
        raise OrthorectificationError(f"resolution={resolution!r} must be positive")
    x, y = Transformer.from_crs("EPSG:4326", target, always_xy=True).transform(
        ring[:, 0], ring[:, 1]
    )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise OrthorectificationError(
            f"output CRS {target.to_string()} cannot project the scene's footprint"
        )
    if bounds is not None:
        x = np.array([bounds[0], bounds[2]])
        y = np.array([bounds[1], bounds[3]])
    x0, x1 = math.floor(x.min() / res) * res, math.ceil(x.max() / res) * res
    y0, y1 = math.floor(y.min() / res) * res, math.ceil(y.max() / res) * res
    code = target.to_epsg()
    name = f"EPSG:{code}" if code else target.to_wkt()
    return OrthoGrid(
        name, (res, 0.0, x0, 0.0, -res, y1), (round((y1 - y0) / res), round((x1 - x0) / res))
    )


@functools.lru_cache(maxsize=8)
def _to_lonlat(crs: str) -> Any:
    """The (cached: one per scene, not one per tile) transformer from ``crs`` to lon/lat."""
    from pyproj import Transformer

    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def _source_window(
    rpc: RPCModel,
    grid: OrthoGrid,
    rows: slice,
    cols: slice,
    heights: tuple[float, float],
    src_shape: tuple[int, int],
) -> tuple[int, int, int, int] | None:
    """(r0, r1, c0, c1) of the source pixels that can reach the tile, or ``None``."""

    a, _, c, _, e, f = grid.transform
    n = 9
    jj, ii = np.meshgrid(
        np.linspace(cols.start, cols.stop, n), np.linspace(rows.start, rows.stop, n)
    )
    x, y = c + jj * a, f + ii * e
    lon, lat = _to_lonlat(grid.crs).transform(x, y)
    lines, samps = [], []
    for h in heights:
        ln, sp = rpc.project(lon, lat, h)
        lines.append(ln)
        samps.append(sp)
    ln, sp = np.concatenate(lines).ravel(), np.concatenate(samps).ravel()
    # the tile edges are sampled every tile/8 pixels: allow for the curvature in between
    pad = _MARGIN_PX + 0.02 * max(np.ptp(ln), np.ptp(sp))
    r0 = max(0, math.floor(np.nanmin(ln) - pad))
    r1 = min(src_shape[0], math.ceil(np.nanmax(ln) + pad) + 1)
    c0 = max(0, math.floor(np.nanmin(sp) - pad))
    c1 = min(src_shape[1], math.ceil(np.nanmax(sp) + pad) + 1)
    if r1 <= r0 or c1 <= c0:
        return None
    return r0, r1, c0, c1


def _reprojection_approx(resolution: float) -> dict[str, str]:
    """GDAL transformer options approximating only the map projection step (output CRS ->
    longitude/latitude) to 1e-3 of a pixel, the RPC + DEM step staying exact per pixel.

    That is GDAL's documented use of ``REPROJECTION_APPROX_ERROR_IN_*`` for RPC with a DEM
    (the DEM's kinks are what a global approximation would miss; the projection is smooth).
    It halves the warp time: PROJ's inverse projection of every output pixel was half of it.
    """
    return {
        "REPROJECTION_APPROX_ERROR_IN_SRC_SRS_UNIT": repr(1e-8),  # degrees: ~1 mm
        "REPROJECTION_APPROX_ERROR_IN_DST_SRS_UNIT": repr(1e-3 * abs(resolution)),
    }


def _warp_tile(
    src: np.ndarray, rpc_gdal: dict[str, str], shape: tuple[int, int], transform: tuple[float, ...],
    crs: str, resampling: str, src_nodata: float | None, dst_nodata: float, options: dict[str, str],
    tolerance: float = 0.0,
) -> np.ndarray:  # fmt: skip
    """Warp one source window onto one output tile with GDAL's RPC transformer.

    ``tolerance == 0``: the RPC + DEM transform of every output pixel (rasterio's
    ``rpcs=`` path, which turns GDAL's approximation off when ``RPC_DEM`` is given), only
    the map projection approximated (:func:`_reprojection_approx`). ``tolerance > 0``: the
    window goes to GDAL as an in-memory GeoTIFF carrying the RPC, so rasterio keeps GDAL's
    approximate transformer (its threshold, 0.125 px) over the whole RPC + DEM chain.
    """
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.rpc import RPC
    from rasterio.warp import reproject

    out = np.full(shape, dst_nodata, dtype=src.dtype)
    common: dict[str, Any] = {
        "src_nodata": src_nodata, "dst_transform": Affine(*transform), "dst_crs": crs,
        "dst_nodata": dst_nodata, "resampling": Resampling[resampling], "num_threads": 1,
    }  # fmt: skip
    if tolerance == 0.0:
        reproject(
            np.ascontiguousarray(src), out, rpcs=RPC.from_gdal(rpc_gdal), src_crs="EPSG:4326",
            **common, **_reprojection_approx(transform[0]), **options,
        )  # fmt: skip
        return out
    import rasterio
    from rasterio.io import MemoryFile

    with MemoryFile() as mem:
        with mem.open(
            driver="GTiff", width=src.shape[1], height=src.shape[0], count=1, dtype=src.dtype,
            rpcs=RPC.from_gdal(rpc_gdal),
        ) as tmp:  # fmt: skip
            tmp.write(src, 1)
        with mem.open() as tmp:
            reproject(rasterio.band(tmp, 1), out, SRC_METHOD="RPC", **common, **options)
    return out


def _dem_cache_path(dem: Any, bounds: tuple[float, ...]) -> Path:
    root = Path(
        os.environ.get("EO_PIPELINE_DEM_CACHE", Path.home() / ".cache" / "eo-pipeline" / "dem")
    )
    key = hashlib.sha256(
        json.dumps([repr(dem), [round(b, 6) for b in bounds]]).encode()
    ).hexdigest()[:16]
    return root / f"dem_{key}.tif"


def _heights(
    rpc: RPCModel, shape: tuple[int, int], dem: Any, height: float | None
) -> tuple[tuple[float, float], dict[str, str], str]:
    """(low, high) heights, GDAL transformer options, lineage text."""
    from eo_pipeline.io.dem import DEMSpec, prepare_dem

    if dem is None:
        h = float(rpc.height_off if height is None else height)
        tan = rpc.view_tan()
        bound = rpc.height_scale * tan
        gsd = _gsd(rpc, *shape)
        warnings.warn(
            f"orthorectify: no DEM; the scene is placed at a constant {h:.0f} m above the "
            f"ellipsoid. Terrain dh metres off that height is displaced by dh x tan(view angle) "
            f"= dh x {tan:.3f} (view angle {math.degrees(math.atan(tan)):.1f} deg): over the "
            f"RPC's height range (+-{rpc.height_scale:.0f} m) up to {bound:.1f} m "
            f"({bound / gsd:.1f} pixels). Give dem= for an accurate product",
            RuntimeWarning,
            stacklevel=3,
        )
        return (
            (h, h),
            {"RPC_HEIGHT": repr(h)},
            f"constant height {h:.1f} m above the ellipsoid (no DEM)",
        )
    spec = dem if isinstance(dem, DEMSpec) else DEMSpec(dem)
    lo, hi = rpc.height_off - rpc.height_scale, rpc.height_off + rpc.height_scale
    ring = np.array(rpc.footprint(shape[0], shape[1], (lo, hi)))
    bounds = (
        float(ring[:, 0].min()),
        float(ring[:, 1].min()),
        float(ring[:, 0].max()),
        float(ring[:, 1].max()),
    )
    prepared = prepare_dem(spec, bounds, _dem_cache_path(spec, bounds))
    options = {
        "RPC_DEM": str(prepared.path),
        "RPC_DEMINTERPOLATION": "bilinear",
        "RPC_DEM_APPLY_VDATUM_SHIFT": "FALSE",
    }
    if spec.voids == "fill":
        options["RPC_DEM_MISSING_VALUE"] = repr(rpc.height_off)
    return (prepared.min_height - 1.0, prepared.max_height + 1.0), options, prepared.lineage


def _ortho_variable(
    var: xr.DataArray, name: str, rpc: RPCModel, grid: OrthoGrid, windows: dict[Any, Any],
    tile_size: int, resampling: str, options: dict[str, str], tolerance: float,
) -> xr.DataArray:  # fmt: skip
    """One band on the map grid: a dask block per output tile (nodata where no source)."""
    import dask
    import dask.array as da

    if var.ndim != 2:
        raise OrthorectificationError(
            f"orthorectify: variable {name} has dims {var.dims}; expected (y, x)"
        )
    nodata = var.attrs.get("nodata")
    dst_nodata = (
        float(nodata) if nodata is not None else (0.0 if var.dtype.kind in "ui" else float("nan"))
    )
    a, b, x0, d, e, y0 = grid.transform
    rows, cols = grid.shape
    blocks = []
    for r in range(0, rows, tile_size):
        line = []
        for c in range(0, cols, tile_size):
            rs, cs, win = windows[(r, c)]
            shape = (rs.stop - rs.start, cs.stop - cs.start)
            if win is None:
                line.append(da.full(shape, dst_nodata, dtype=var.dtype))
                continue
            r0, r1, c0, c1 = win
            transform = (a, b, x0 + cs.start * a, d, e, y0 + rs.start * e)
            task = dask.delayed(_warp_tile, pure=True)(
                var.data[r0:r1, c0:c1], rpc.shifted(r0, c0).to_gdal(), shape, transform, grid.crs,
                resampling, nodata, dst_nodata, options, tolerance,
            )  # fmt: skip
            line.append(da.from_delayed(task, shape, dtype=var.dtype))
        blocks.append(line)
    return xr.DataArray(
        da.block(blocks), dims=("y", "x"), attrs={**var.attrs, "nodata": dst_nodata}
    )


def orthorectify(
    data: Any,
    dem: Any = None,
    *,
    crs: str | int | None = None,
    resolution: float | None = None,
    resampling: str = "cubic",
    height: float | None = None,
    bands: list[str] | None = None,
    tile_size: int = 2048,
    tolerance: float = 0.0,
    bounds: tuple[float, float, float, float] | None = None,
) -> xr.Dataset:
    """Orthorectify a sensor-geometry product onto a map grid, lazily, tile by tile.

    Parameters
    ----------
    data
        A Dataset from :func:`eo_pipeline.io.sensor_geometry.open_sensor` (``attrs["rpc"]``),
        a Primary STAC item (or its JSON path), or an image with RPC tags.
    dem
        A DEM (:class:`eo_pipeline.io.dem.DEMSpec`, or what it accepts: a GeoTIFF/COG, ``.hgt``
        tiles, STAC DEM items); ``None``: a constant height and a warning with the error bound.
    crs, resolution
        Output CRS (default: the scene's UTM zone) and pixel size (default: the scene's ground
        sampling distance at its centre, two significant digits).
    resampling
        ``nearest``, ``bilinear``, ``cubic`` (default), ``cubic_spline``, ``lanczos``, ``average``.
    height
        The constant height (metres above the ellipsoid) used without a DEM.
    bands
        Band asset keys, for an item holding several products.
    tile_size
        Output tile edge (pixels): one dask task each.
    bounds
        Output extent (west, south, east, north in the output CRS), e.g. to share one grid
        between the PAN and MS products; default the scene's footprint.
    tolerance
        ``0`` (default, what ``gdalwarp -rpc -to RPC_DEM=...`` does by default): the RPC and
        DEM of every output pixel, exactly (only the smooth map projection is approximated,
        to 1e-3 pixel). ``0.125``: GDAL's approximate transformer over the whole chain
        (``gdalwarp -et 0.125``; rasterio fixes that threshold), faster but it interpolates
        across the DEM's kinks. Without a DEM GDAL always approximates (a smooth transform).

    Returns
    -------
    xarray.Dataset
        The bands on the map grid (native dtype, nodata where no image), dims ``(y, x)``, CRS
        via odc-geo, attrs ``orthorectification`` (JSON: engine, DEM, geoid, resampling).

    Raises
    ------
    OrthorectificationError
        No RPC, an unknown resampling, an output CRS that cannot hold the scene.
    DEMError
        A DEM not covering the scene (the part missing named), of unknown vertical datum.
    """
    from affine import Affine
    from odc.geo.geobox import GeoBox
    from odc.geo.xr import xr_coords

    if tolerance not in _TOLERANCES:
        raise OrthorectificationError(
            f"tolerance={tolerance!r}; use 0 (exact RPC + DEM per pixel) or 0.125 (GDAL's "
            "approximate transformer, the only threshold rasterio offers)"
        )
    if resampling not in _RESAMPLING:
        raise OrthorectificationError(
            f"resampling={resampling!r}; use one of {', '.join(_RESAMPLING)}"
        )
    if not isinstance(data, xr.Dataset):
        from eo_pipeline.io.sensor_geometry import open_sensor

        data = open_sensor(data, bands=bands)
    if "rpc" not in data.attrs:
        raise OrthorectificationError(
            "orthorectify: the Dataset has no attrs['rpc']; open the product with "
            "eo_pipeline.io.sensor_geometry.open_sensor (sensor-geometry products only)"
        )
    rpc = RPCModel.from_dict(data.attrs["rpc"], source=str(data.attrs.get("rpc_source", "")))
    names = [str(n) for n, v in data.data_vars.items() if v.dims[-2:] == ("y", "x")]
    src_shape = tuple(int(s) for s in data[names[0]].shape[-2:])
    heights, options, dem_lineage = _heights(rpc, src_shape, dem, height)  # type: ignore[arg-type]
    grid = output_grid(rpc, src_shape, heights, crs=crs, resolution=resolution, bounds=bounds)  # type: ignore[arg-type]
    rows, cols = grid.shape
    out_vars = {}
    gbox = GeoBox(grid.shape, Affine(*grid.transform), grid.crs)
    windows = {}
    for r in range(0, rows, tile_size):
        for c in range(0, cols, tile_size):
            rs, cs = slice(r, min(rows, r + tile_size)), slice(c, min(cols, c + tile_size))
            windows[(r, c)] = (rs, cs, _source_window(rpc, grid, rs, cs, heights, src_shape))  # type: ignore[arg-type]
    for name in names:
        out_vars[name] = _ortho_variable(
            data[name], name, rpc, grid, windows, tile_size, resampling, options, tolerance
        ).assign_coords(xr_coords(gbox))
    lineage = {
        "engine": "GDAL RPC transformer (rasterio.warp.reproject, rpcs + RPC_DEM), per output tile"
        + (", exact per pixel" if tolerance == 0.0 else f", approximated to {tolerance} px"),
        "rpc": str(data.attrs.get("rpc_source", "")),
        "dem": dem_lineage,
        "resampling": resampling,
        "tolerance": tolerance,
        "crs": grid.crs,
        "resolution": grid.resolution,
    }
    attrs = {k: v for k, v in data.attrs.items() if k not in ("rpc",)}
    attrs |= {"orthorectification": json.dumps(lineage), "processing_level": "ORT"}
    return xr.Dataset(out_vars, attrs=attrs)

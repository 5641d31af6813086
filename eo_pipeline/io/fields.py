"""Small georeferenced fields given as files (an AOT raster for the atmospheric correction).

A field is a coarse, smooth raster that a step samples at every pixel of a scene on its own
grid (bilinearly): it is read whole, once, and brought into the scene's CRS when it is in
another one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from eo_pipeline.errors import InputDataError

__all__ = ["mean_over_scene", "read_field"]

MAX_FIELD_PIXELS = 4096 * 4096
"""A field file larger than this is refused (a per-scene field is coarse; resample it)."""


def _scene_crs(like: xr.Dataset | xr.DataArray) -> Any:
    """The scene's CRS from its ``spatial_ref`` coordinate (as :func:`eo_pipeline.load`
    sets it), else ``None``."""
    from rasterio.crs import CRS

    ref = like.coords.get("spatial_ref")
    if ref is None:
        return None
    wkt = ref.attrs.get("crs_wkt") or ref.attrs.get("spatial_ref")
    if wkt:
        return CRS.from_wkt(str(wkt))
    code = int(ref.values)
    return CRS.from_epsg(code) if code > 0 else None


def read_field(path: str | Path, *, like: xr.Dataset | xr.DataArray, what: str) -> xr.DataArray:
    """Read a one-band raster file as a ``(y, x)`` float32 DataArray in ``like``'s CRS.

    Pixel-centre ``x``/``y`` coordinates; nodata becomes NaN. A file in another CRS is
    reprojected (bilinear) onto a grid of the same resolution in the scene's CRS.

    Raises
    ------
    InputDataError
        The file is missing, unreadable, not one band, has no CRS or geotransform, or is
        larger than :data:`MAX_FIELD_PIXELS` (the file and ``what`` are named).

    Examples
    --------
    >>> import tempfile, numpy as np, rasterio, xarray as xr
    >>> from rasterio.transform import from_origin
    >>> path = tempfile.mkdtemp() + "/aot.tif"
    >>> with rasterio.open(path, "w", driver="GTiff", width=2, height=2, count=1,
    ...         dtype="float32", crs="EPSG:32643", transform=from_origin(0, 20, 10, 10)) as dst:
    ...     dst.write(np.full((1, 2, 2), 0.2, np.float32))
    >>> scene = xr.Dataset(coords={"spatial_ref": 32643})
    >>> f = read_field(path, like=scene, what="AOT raster")
    >>> f.dims, f.x.values.tolist(), f.y.values.tolist()
    (('y', 'x'), [5.0, 15.0], [15.0, 5.0])
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{what} {path} does not exist (give a GeoTIFF path or a number)")
    try:
        with rasterio.open(path) as src:
            if src.count != 1:
                raise InputDataError(f"{what} {path} has {src.count} bands; give a one-band file")
            if src.crs is None or src.transform.is_identity:
                raise InputDataError(f"{what} {path} has no CRS or geotransform; georeference it")
            if src.width * src.height > MAX_FIELD_PIXELS:
                raise InputDataError(
                    f"{what} {path} is {src.width}x{src.height} pixels; a per-scene field is "
                    f"coarse - resample it to at most {MAX_FIELD_PIXELS} pixels"
                )
            values = src.read(1, masked=True).astype(np.float32).filled(np.nan)
            crs, transform = src.crs, src.transform
    except RasterioIOError as err:
        raise InputDataError(f"{what} {path} cannot be read: {err}") from None
    target = _scene_crs(like)
    if target is not None and crs != target:
        values, transform = _reproject(values, crs, transform, target)
    ny, nx = values.shape
    x = transform.c + transform.a * (np.arange(nx) + 0.5)
    y = transform.f + transform.e * (np.arange(ny) + 0.5)
    return xr.DataArray(values, dims=("y", "x"), coords={"y": y, "x": x}, name=path.stem)


def _reproject(values: np.ndarray, crs: Any, transform: Any, target: Any) -> tuple[np.ndarray, Any]:
    from rasterio.transform import array_bounds
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    ny, nx = values.shape
    dst_t, w, h = calculate_default_transform(crs, target, nx, ny, *array_bounds(ny, nx, transform))
    out = np.full((h, w), np.nan, np.float32)
    reproject(values, out, src_transform=transform, src_crs=crs, dst_transform=dst_t,
              dst_crs=target, src_nodata=np.nan, dst_nodata=np.nan,
              resampling=Resampling.bilinear)  # fmt: skip
    return out, dst_t


def mean_over_scene(
    path: str | Path,
    *,
    like: xr.Dataset | xr.DataArray,
    what: str,
    dims: tuple[str, str] = ("y", "x"),
    max_side: int = 1024,
) -> float:
    """Mean of a one-band raster (a DEM of any size and CRS) over ``like``'s extent.

    Only the window of the file that covers the scene is read, decimated (area average) to at
    most ``max_side`` pixels a side, so a national DEM costs no more than a tile. NaN when
    the file has no valid value there. ``dims``: ``like``'s (y, x) dimension names.

    Raises
    ------
    InputDataError
        The file is missing, unreadable, not one band, or has no CRS (the file is named).
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{what} {path} does not exist (give a GeoTIFF path or a number)")
    ydim, xdim = dims
    ys, xs = np.asarray(like[ydim].values), np.asarray(like[xdim].values)
    try:
        with rasterio.open(path) as src:
            if src.count != 1 or src.crs is None:
                raise InputDataError(
                    f"{what} {path}: needs one band and a CRS ({src.count} band(s), CRS {src.crs})"
                )
            scene = _scene_crs(like) or src.crs
            bounds = transform_bounds(scene, src.crs, xs.min(), ys.min(), xs.max(), ys.max())
            full = rasterio.windows.Window(0, 0, src.width, src.height)
            try:
                win = from_bounds(*bounds, src.transform).intersection(full)
            except rasterio.errors.WindowError:  # no overlap
                return math.nan
            scale = max(1.0, max(win.width, win.height) / max_side)
            shape = (max(1, round(win.height / scale)), max(1, round(win.width / scale)))
            data = src.read(1, window=win, out_shape=shape, masked=True,
                            resampling=Resampling.average)  # fmt: skip
    except RasterioIOError as err:
        raise InputDataError(f"{what} {path} cannot be read: {err}") from None
    valid = data.compressed().astype(np.float64)
    valid = valid[np.isfinite(valid)]
    return float(valid.mean()) if valid.size else math.nan

"""Sun and CRS geometry of a loaded scene (xarray), shared by the steps.

What :func:`eo_pipeline.steps.calibration.calibrate` (and the mask's shadow search, and the
atmospheric correction) need to know about where and when a scene is: its CRS, the time and
sun coordinates that ``eo_pipeline.io.loading`` attaches, the Earth-Sun distance, pixel
centres in lon/lat and a lazy per-pixel sun zenith (NOAA solar position at exact lattice
nodes every :data:`ZENITH_LATTICE` pixels, bilinear in between, the same for a pixel
whatever the chunking). The per-pixel arithmetic is :mod:`eo_pipeline.kernels.solar`.

Examples
--------
>>> import numpy as np, xarray as xr
>>> ds = xr.Dataset(coords={"time": [np.datetime64("2019-01-14T14:34:30")],
...                         "sun_elevation": ("time", [59.5])})
>>> coord(ds, "sun_elevation").tolist(), np.round(earth_sun(ds)[0], 4).tolist()
([59.5], [0.9836])
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import xarray as xr

from eo_pipeline.errors import CalibrationError, InputDataError
from eo_pipeline.kernels import solar
from eo_pipeline.steps.dispatch import apply_kernel

__all__ = [
    "ZENITH_LATTICE",
    "coord",
    "crs",
    "earth_sun",
    "lonlat",
    "pixel_zenith",
    "scene_sun",
    "times",
]


def coord(ds: xr.Dataset, name: str) -> Any:
    """A scalar/along-time coordinate as float or float64 vector, or ``None``."""
    if name not in ds.coords:
        return None
    values = np.asarray(ds.coords[name].values, dtype=np.float64)
    return float(values) if values.ndim == 0 else values


def times(ds: xr.Dataset) -> np.ndarray | None:
    if "time" not in ds.coords:
        return None
    return np.atleast_1d(np.asarray(ds.coords["time"].values))


def earth_sun(ds: xr.Dataset) -> tuple[Any, str]:
    d = coord(ds, "earth_sun_distance")
    if d is not None:
        return d, "earth_sun_distance coordinate (scene metadata)"
    when = times(ds)
    if when is None:
        return None, "missing"
    dist = solar.earth_sun_distance(when.astype("datetime64[ns]"))
    value = float(dist[0]) if "time" not in ds.dims else np.asarray(dist)
    return value, "computed from time (NOAA / Meeus ch. 25)"


def crs(ds: xr.Dataset) -> Any:
    """The pyproj CRS of a dataset (odc-geo accessor, else the ``spatial_ref`` coordinate)."""
    import pyproj

    try:
        import odc.geo.xr  # noqa: F401  (registers the .odc accessor)

        crs = ds.odc.crs
        if crs is not None:
            return pyproj.CRS.from_user_input(crs.to_wkt())
    except (ImportError, AttributeError, ValueError):
        pass
    ref = ds.coords.get("spatial_ref")
    if ref is not None:
        for key in ("crs_wkt", "spatial_ref"):
            if key in ref.attrs:
                return pyproj.CRS.from_user_input(ref.attrs[key])
    return None


ZENITH_LATTICE = 16
"""Pixels between exact solar positions in per-pixel mode (bilinear in between; see
:func:`eo_pipeline.kernels.solar.zenith_grid`)."""


def _zenith_block(
    jd: np.ndarray,
    gy: np.ndarray,
    gx: np.ndarray,
    *,
    crs_wkt: str,
    nodes: tuple[np.ndarray, np.ndarray],
    node_coords: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Per-pixel sun zenith (float32 degrees) of one block.

    ``jd`` (t,1,1) Julian days; ``gy`` (1,y,1), ``gx`` (1,1,x) the block's global row and
    column numbers. Exact positions on the scene-wide lattice ``nodes`` (row and column
    numbers, with their coordinates ``node_coords``), bilinear in between: the same value
    for a pixel whatever the chunking.
    """
    rows_g, cols_g = gy.reshape(-1), gx.reshape(-1)
    picked = []
    for g, axis_nodes in ((rows_g, nodes[0]), (cols_g, nodes[1])):
        lo = max(0, int(np.searchsorted(axis_nodes, g[0], side="right")) - 1)
        hi = int(np.searchsorted(axis_nodes, g[-1], side="left"))
        picked.append(np.arange(lo, min(hi, axis_nodes.size - 1) + 1))
    ri, ci = picked
    lon, lat = lonlat(crs_wkt, node_coords[1][ci], node_coords[0][ri])
    rows, cols = nodes[0][ri] - rows_g[0], nodes[1][ci] - cols_g[0]
    jd_v = np.asarray(jd, dtype=np.float64).reshape(-1)
    out = np.empty((jd_v.size, rows_g.size, cols_g.size), dtype=np.float32)
    for t, day in enumerate(jd_v):
        out[t] = solar.zenith_grid(float(day), lat, lon, rows, cols, out.shape[1:])
    return out.reshape(np.broadcast_shapes(jd.shape, gy.shape, gx.shape))


@functools.lru_cache(maxsize=8)
def _to_lonlat(crs_wkt: str) -> Any:
    """Transformer from ``crs_wkt`` to lon/lat (``None`` when geographic), built once per CRS
    rather than once per dask block (pyproj >= 3.1 transformers are thread-safe)."""
    import pyproj

    crs = pyproj.CRS.from_user_input(crs_wkt)
    if crs.is_geographic:
        return None
    return pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def lonlat(crs_wkt: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) grids in degrees (float64) of pixel centres ``x`` (cols) and ``y`` (rows)."""
    xg, yg = np.meshgrid(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    tr = _to_lonlat(crs_wkt)
    if tr is None:
        return xg, yg
    lon, lat = tr.transform(xg, yg)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def pixel_zenith(ds: xr.Dataset, template: xr.DataArray, max_zenith: float) -> xr.DataArray:
    """Lazy per-pixel sun zenith over ``template``'s (time, y, x), chunked like it."""
    scene_crs = crs(ds)
    when = times(ds)
    if scene_crs is None or when is None:
        raise CalibrationError(
            "per_pixel_sun=True needs a CRS (odc-geo / 'spatial_ref' coordinate) and a 'time' "
            f"coordinate; found crs={'yes' if scene_crs is not None else 'no'}, "
            f"time={'yes' if when is not None else 'no'}"
        )
    ydim, xdim = template.dims[-2:]
    jd = np.atleast_1d(solar.julian_day(when.astype("datetime64[ns]")))
    parts = [
        xr.DataArray(
            jd if "time" in template.dims else jd[0],
            dims=[d for d in ("time",) if d in template.dims],
        ),
        xr.DataArray(np.arange(template.sizes[ydim], dtype=np.int64), dims=[ydim]),
        xr.DataArray(np.arange(template.sizes[xdim], dtype=np.int64), dims=[xdim]),
    ]
    yv = np.asarray(template[ydim].values, dtype=np.float64)
    xv = np.asarray(template[xdim].values, dtype=np.float64)
    nodes = (solar.lattice(yv.size, ZENITH_LATTICE), solar.lattice(xv.size, ZENITH_LATTICE))
    if template.chunks is not None:
        sizes = dict(zip(template.dims, template.chunks, strict=True))
        parts = [p.chunk({d: sizes[d] for d in p.dims}) for p in parts]
    # Warn now (cheap: corners only) rather than from inside dask tasks.
    crs_wkt = scene_crs.to_wkt()
    lon, lat = lonlat(crs_wkt, np.array([xv[0], xv[-1]]), np.array([yv[0], yv[-1]]))
    worst = max(
        float(np.nanmax(solar.solar_position(t, lat, lon)[0]))
        for t in when.astype("datetime64[ns]")
    )
    if worst > max_zenith:
        warnings.warn(
            f"sun zenith reaches {worst:.1f} degrees at the scene corners (> {max_zenith}); "
            "those pixels become NaN",
            RuntimeWarning,
            stacklevel=4,
        )
    return apply_kernel(
        _zenith_block,
        *parts,
        output_dtypes=[np.float32],
        kwargs={
            "crs_wkt": crs_wkt,
            "nodes": nodes,
            "node_coords": (yv[nodes[0]], xv[nodes[1]]),
        },
        name="sun_zenith",
    )


def scene_sun(ds: xr.Dataset, key: str) -> float:
    """One scene's sun angle ``key`` (``sun_elevation`` / ``sun_azimuth``, degrees) from its
    coordinate or attr.

    Raises
    ------
    InputDataError
        Neither a coordinate nor an attr ``key``.
    """
    if key in ds.coords:
        value = ds.coords[key].values
    elif key in ds.attrs:
        value = ds.attrs[key]
    else:
        raise InputDataError(
            f"shadow projection needs the coord {key!r} (degrees) per time step; load through "
            "eo_pipeline.io.loading or pass shadow=ShadowSearch(enabled=False)"
        )
    return float(np.asarray(value, dtype=np.float64).reshape(()))

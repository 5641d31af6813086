"""Solar geometry in numba: Earth-Sun distance and sun zenith/azimuth, scalar or per pixel.

Algorithm
---------
The NOAA Solar Calculator equations (NOAA Global Monitoring Laboratory, "General Solar
Position Calculations" and the spreadsheet ``NOAA_Solar_Calculations_day.xls``), which are
the low-accuracy solar formulas of J. Meeus, *Astronomical Algorithms*, 2nd ed. (1998),
chapter 25 (Sun position, Earth radius vector) and chapter 28 (equation of time, Smart's
formula).

Measured accuracy (against NREL's Solar Position Algorithm, Reda & Andreas 2004, as
implemented by pvlib ``spa_python`` with Delta-T = 69 s; 1,466 random daytime samples,
years 1990-2040, latitudes +-70 degrees; ``tests/kernels/test_solar.py`` re-measures it):

- zenith: max 0.014 degree (99th percentile 0.011 degree);
- azimuth: max 0.09 degree, reached only with the sun near the zenith, where azimuth is
  ill-conditioned; the position error on the sky, azimuth error x sin(zenith), is at most
  0.015 degree;
- Earth-Sun distance: max 8e-5 AU (7.7e-5 measured; the formula ignores the Moon's and planets'
  perturbations), i.e. a relative error of at most 1.6e-4 in a TOA reflectance (d^2).

These are the errors of the NOAA/Meeus low-accuracy formulas; they are far below what
matters for reflectance (a 0.014 degree zenith error changes cos(zenith) by < 4e-4 relative
at 60 degrees). Two deliberate simplifications, documented here:

- time is taken as UT; the ~69 s of Delta-T (TT - UT) move the sun by < 0.001 degree;
- angles are geometric (no atmospheric refraction). Satellite products (USGS Landsat MTL,
  ESA Sentinel-2 MTD) print geometric angles too; refraction is < 0.02 degree above
  40 degrees elevation.

Layers
------
The jitted cores take Julian days (float64, UT). The Python wrappers accept
:class:`datetime.datetime` (naive means UTC), :class:`numpy.datetime64`, ISO strings or
arrays of ``datetime64``. Scalar inputs give Python floats; per-pixel latitude/longitude
arrays give arrays of the same shape in the inputs' floating dtype (float32 in -> float32
out, computed per pixel in float64 scalars; integer inputs give float64).

Examples
--------
>>> import datetime as dt
>>> round(earth_sun_distance(dt.datetime(2019, 1, 14, 14, 34, 30)), 4)  # USGS MTL: 0.9835616
0.9836
>>> zen, az = solar_position("2019-01-14T14:34:30", -14.457, -67.673)
>>> round(90 - zen, 1), round(az, 1)
(59.5, 107.5)
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from numba import prange

from eo_pipeline.kernels.ephemeris import ephemeris, julian_day, zenith_azimuth

__all__ = [
    "earth_sun_distance",
    "julian_day",
    "lattice",
    "solar_position",
    "sun_ephemeris",
    "zenith_grid",
]

# the scalar cores are plain Python in kernels/ephemeris.py (metadata readers use them
# without numba); compiled here for the per-pixel loops
_ephemeris = numba.njit(cache=True, nogil=True, fastmath=False)(ephemeris)
_zenith_azimuth = numba.njit(cache=True, nogil=True, fastmath=False)(zenith_azimuth)


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _position_fixed_time(
    jd: float, lat: np.ndarray, lon: np.ndarray, zen: np.ndarray, az: np.ndarray
) -> None:
    """Per-pixel zenith/azimuth at one time; 1-D contiguous inputs/outputs of equal length."""
    decl, eqt, _ = _ephemeris(jd)
    for i in prange(lat.shape[0]):
        z, a = _zenith_azimuth(jd, decl, eqt, lat[i], lon[i])
        zen[i] = z
        az[i] = a


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _position_per_time(
    jd: np.ndarray, lat: np.ndarray, lon: np.ndarray, zen: np.ndarray, az: np.ndarray
) -> None:
    """Per-pixel zenith/azimuth with a Julian day per pixel; 1-D arrays of equal length."""
    for i in prange(lat.shape[0]):
        decl, eqt, _ = _ephemeris(jd[i])
        z, a = _zenith_azimuth(jd[i], decl, eqt, lat[i], lon[i])
        zen[i] = z
        az[i] = a


@numba.njit(cache=True, nogil=True, fastmath=False)
def _distance_many(jd: np.ndarray, out: np.ndarray) -> None:
    for i in range(jd.shape[0]):
        out[i] = _ephemeris(jd[i])[2]


def sun_ephemeris(when: Any) -> tuple[float, float, float]:
    """Apparent declination (degrees), equation of time (minutes), Earth-Sun distance (AU).

    Examples
    --------
    >>> decl, eqt, r = sun_ephemeris("1992-10-13T00:00:00")  # Meeus examples 25.a, 28.b
    >>> round(decl, 2), round(eqt, 1), round(r, 5)
    (-7.79, 13.7, 0.99766)
    """
    decl, eqt, radius = _ephemeris(float(julian_day(when)))
    return math.degrees(decl), eqt, radius


def earth_sun_distance(when: Any) -> Any:
    """Earth-Sun distance in astronomical units (NOAA / Meeus ch. 25 radius vector).

    Parameters
    ----------
    when
        A time (see :func:`julian_day`) or an array of ``datetime64``.

    Returns
    -------
    float, or float64 array of ``when``'s shape.

    Examples
    --------
    >>> round(earth_sun_distance("2020-07-04T12:00"), 4)  # near aphelion
    1.0167
    """
    jd = julian_day(when)
    if isinstance(jd, float):
        return _ephemeris(jd)[2]
    flat = np.ascontiguousarray(jd, dtype=np.float64).ravel()
    out = np.empty_like(flat)
    _distance_many(flat, out)
    return out.reshape(np.shape(jd))


def solar_position(when: Any, lat: Any, lon: Any) -> tuple[Any, Any]:
    """Sun zenith and azimuth in degrees (azimuth clockwise from north), geometric.

    Parameters
    ----------
    when
        One time (see :func:`julian_day`), or an array of ``datetime64`` broadcastable
        against ``lat``/``lon`` (per-pixel acquisition times).
    lat, lon
        Degrees (north, east positive); scalars or arrays (broadcast against each other).
        Latitudes outside [-90, 90] or NaN give NaN.

    Returns
    -------
    (zenith, azimuth)
        Python floats for scalar inputs; else arrays of the broadcast shape, float32 when
        every array input is float32, float64 otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> lat = np.array([[-14.0, -15.0]], dtype=np.float32)
    >>> zen, az = solar_position("2019-01-14T14:34:30", lat, np.float32(-67.7))
    >>> zen.dtype, zen.shape
    (dtype('float32'), (1, 2))
    """
    jd = julian_day(when)
    if isinstance(jd, float) and np.ndim(lat) == 0 and np.ndim(lon) == 0:
        decl, eqt, _ = _ephemeris(jd)
        return _zenith_azimuth(jd, decl, eqt, float(lat), float(lon))
    lat_a, lon_a = np.asarray(lat), np.asarray(lon)
    floats = [a.dtype for a in (lat_a, lon_a) if a.ndim > 0]
    out_dtype = (
        np.dtype(np.float32)
        if floats and all(d == np.float32 for d in floats)
        else np.dtype(np.float64)
    )
    shape = np.broadcast_shapes(lat_a.shape, lon_a.shape, np.shape(jd))
    lat_f = np.ascontiguousarray(np.broadcast_to(lat_a, shape)).ravel()
    lon_f = np.ascontiguousarray(np.broadcast_to(lon_a, shape)).ravel()
    zen = np.empty(lat_f.shape, dtype=out_dtype)
    az = np.empty(lat_f.shape, dtype=out_dtype)
    if isinstance(jd, float):
        _position_fixed_time(jd, lat_f, lon_f, zen, az)
    else:
        jd_f = np.ascontiguousarray(np.broadcast_to(jd, shape), dtype=np.float64).ravel()
        _position_per_time(jd_f, lat_f, lon_f, zen, az)
    return zen.reshape(shape), az.reshape(shape)


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _bilinear(coarse, rows, cols, out):
    """Upsample ``coarse[len(rows), len(cols)]`` (values at pixel ``rows`` x ``cols``) to ``out``."""
    ny, nx = out.shape
    nr = rows.shape[0]
    nc = cols.shape[0]
    seg_x = np.empty(nx, dtype=np.int64)
    w_x = np.empty(nx, dtype=np.float64)
    k = 0
    for j in range(nx):
        while k < nc - 2 and cols[k + 1] <= j:
            k += 1
        seg_x[j] = k
        span = cols[k + 1] - cols[k] if nc > 1 else 1
        w_x[j] = (j - cols[k]) / span if nc > 1 else 0.0
    for i in prange(ny):
        r = 0
        while r < nr - 2 and rows[r + 1] <= i:
            r += 1
        wy = (i - rows[r]) / (rows[r + 1] - rows[r]) if nr > 1 else 0.0
        r1 = r + 1 if nr > 1 else r
        for j in range(nx):
            c = seg_x[j]
            c1 = c + 1 if nc > 1 else c
            wx = w_x[j]
            top = coarse[r, c] * (1.0 - wx) + coarse[r, c1] * wx
            bottom = coarse[r1, c] * (1.0 - wx) + coarse[r1, c1] * wx
            out[i, j] = top * (1.0 - wy) + bottom * wy


def lattice(n: int, step: int) -> np.ndarray:
    """Pixel indices ``0, step, 2*step, ..., n-1`` (the last pixel always included).

    Examples
    --------
    >>> lattice(10, 4).tolist()
    [0, 4, 8, 9]
    """
    idx = np.arange(0, n, max(1, step), dtype=np.int64)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def zenith_grid(
    when: Any,
    lat: np.ndarray,
    lon: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    shape: tuple[int, int],
    dtype: Any = np.float32,
) -> np.ndarray:
    """Sun zenith on a full ``shape`` grid from exact values on a coarse lattice.

    ``lat``/``lon`` (degrees, shape ``(len(rows), len(cols))``) are the pixel centres at
    rows ``rows`` and columns ``cols`` (increasing, first 0, last ``shape - 1``; see
    :func:`lattice`); the zenith is exact there and bilinear in between. The zenith field
    is smooth (about 1 degree per 111 km), so a 16-pixel lattice of even 500 m pixels is
    within 1e-4 degree of the exact per-pixel value, at a fraction of the cost.

    Examples
    --------
    >>> import numpy as np
    >>> rows, cols = lattice(5, 4), lattice(3, 4)  # [0, 4] and [0, 2]
    >>> lat = np.array([[50.0, 50.0], [49.9, 49.9]])
    >>> lon = np.array([[70.0, 70.1], [70.0, 70.1]])
    >>> zen = zenith_grid("2021-06-21T06:00", lat, lon, rows, cols, (5, 3))
    >>> zen.shape, zen.dtype
    ((5, 3), dtype('float32'))
    """
    zen, _ = solar_position(when, np.asarray(lat, dtype=np.float64), np.asarray(lon, np.float64))
    out = np.empty(shape, dtype=dtype)
    _bilinear(
        np.ascontiguousarray(zen, dtype=np.float64),
        np.asarray(rows, dtype=np.int64),
        np.asarray(cols, dtype=np.int64),
        out,
    )
    return out

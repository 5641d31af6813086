"""Solar ephemeris for one place and time in plain Python (``math`` only; numpy for times).

The scalar cores of :mod:`eo_pipeline.kernels.solar` (NOAA Solar Calculator = Meeus'
low-accuracy formulas; see there for the algorithm, accuracy and simplifications). They
live here, free of numba, so metadata readers (:mod:`eo_pipeline.catalogs.readers`) can work
out a scene's sun angles and Earth-Sun distance without paying for numba's start-up;
:mod:`eo_pipeline.kernels.solar` compiles the very same functions with ``numba.njit`` for
per-pixel use, so both give the same numbers.

Examples
--------
>>> round(earth_sun_distance_at("2019-01-14T14:34:30"), 4)  # USGS MTL: 0.9835616
0.9836
>>> zen, az = sun_position_at("2019-01-14T14:34:30", -14.457, -67.673)
>>> round(90 - zen, 1), round(az, 1)
(59.5, 107.5)
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

__all__ = ["earth_sun_distance_at", "ephemeris", "julian_day", "sun_position_at", "zenith_azimuth"]

_JD_UNIX_EPOCH = 2440587.5
_JD_J2000 = 2451545.0
_DEG = math.pi / 180.0


def ephemeris(jd: float) -> tuple[float, float, float]:
    """Declination (rad), equation of time (minutes) and radius vector (AU) at Julian day ``jd``."""
    t = (jd - _JD_J2000) / 36525.0
    l0 = (280.46646 + t * (36000.76983 + t * 0.0003032)) % 360.0
    m = 357.52911 + t * (35999.05029 - 0.0001537 * t)
    e = 0.016708634 - t * (0.000042037 + 0.0000001267 * t)
    mr = m * _DEG
    c = (
        math.sin(mr) * (1.914602 - t * (0.004817 + 0.000014 * t))
        + math.sin(2.0 * mr) * (0.019993 - 0.000101 * t)
        + math.sin(3.0 * mr) * 0.000289
    )
    true_long = l0 + c
    true_anom = (m + c) * _DEG
    radius = 1.000001018 * (1.0 - e * e) / (1.0 + e * math.cos(true_anom))
    omega = (125.04 - 1934.136 * t) * _DEG
    app_long = (true_long - 0.00569 - 0.00478 * math.sin(omega)) * _DEG
    eps0 = 23.0 + (26.0 + (21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))) / 60.0) / 60.0
    eps = (eps0 + 0.00256 * math.cos(omega)) * _DEG
    decl = math.asin(math.sin(eps) * math.sin(app_long))
    y = math.tan(eps / 2.0) ** 2
    l0r = l0 * _DEG
    eqt = (
        4.0
        * (
            y * math.sin(2.0 * l0r)
            - 2.0 * e * math.sin(mr)
            + 4.0 * e * y * math.sin(mr) * math.cos(2.0 * l0r)
            - 0.5 * y * y * math.sin(4.0 * l0r)
            - 1.25 * e * e * math.sin(2.0 * mr)
        )
        / _DEG
    )
    return decl, eqt, radius


def zenith_azimuth(
    jd: float, decl: float, eqt: float, lat: float, lon: float
) -> tuple[float, float]:
    """Zenith and azimuth (degrees, azimuth clockwise from north) for one place and time."""
    if math.isnan(lat) or math.isnan(lon) or abs(lat) > 90.0:
        return math.nan, math.nan
    minutes = ((jd + 0.5) % 1.0) * 1440.0
    tst = (minutes + eqt + 4.0 * lon) % 1440.0
    hour_angle = (tst / 4.0 - 180.0) * _DEG
    phi = lat * _DEG
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    cos_zen = min(1.0, max(-1.0, cos_zen))
    zenith = math.acos(cos_zen) / _DEG
    # Meeus eq. 13.5 (azimuth from south, westward) with the tangent removed, + 180 -> from north.
    az = math.atan2(
        math.sin(hour_angle) * math.cos(decl),
        math.cos(hour_angle) * math.cos(decl) * math.sin(phi) - math.sin(decl) * math.cos(phi),
    )
    azimuth = (az / _DEG + 180.0) % 360.0
    return zenith, azimuth


def julian_day(when: Any) -> Any:
    """Julian day (UT, float64) of a time or an array of times.

    Parameters
    ----------
    when
        :class:`datetime.datetime` (naive = UTC; aware is converted to UTC),
        :class:`datetime.date`, :class:`numpy.datetime64`, an ISO 8601 string, an
        array-like of ``datetime64``, or Julian days already (floats, returned as they are).

    Returns
    -------
    float or numpy.ndarray of float64

    Examples
    --------
    >>> julian_day("2000-01-01T12:00:00")
    2451545.0
    """
    if isinstance(when, dt.datetime) and when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    arr = np.asarray(when) if not isinstance(when, str) else np.datetime64(when)
    if arr.dtype.kind in "US":
        arr = arr.astype("datetime64[ns]")
    if arr.dtype.kind == "O":
        arr = arr.astype("datetime64[ns]")
    if arr.dtype.kind == "f":  # already Julian days
        return float(arr) if arr.ndim == 0 else np.asarray(arr, dtype=np.float64)
    if arr.dtype.kind != "M":
        raise TypeError(
            f"julian_day: expected a datetime, datetime64 or Julian day, got {arr.dtype}"
        )
    seconds = arr.astype("datetime64[us]").astype(np.int64) / 1e6
    jd = seconds / 86400.0 + _JD_UNIX_EPOCH
    return float(jd) if np.ndim(jd) == 0 else np.asarray(jd, dtype=np.float64)


def earth_sun_distance_at(when: Any) -> float:
    """Earth-Sun distance (AU) at one time (see :func:`julian_day` for accepted times)."""
    return ephemeris(float(julian_day(when)))[2]


def sun_position_at(when: Any, lat: float, lon: float) -> tuple[float, float]:
    """Sun zenith and azimuth (degrees, azimuth clockwise from north) at one place and time."""
    jd = float(julian_day(when))
    decl, eqt, _ = ephemeris(jd)
    return zenith_azimuth(jd, decl, eqt, float(lat), float(lon))

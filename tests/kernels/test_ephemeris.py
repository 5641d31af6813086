"""The numba-free solar cores equal the compiled per-pixel kernels (metadata readers use them)."""

from __future__ import annotations

import numpy as np
import pytest

from eo_pipeline.kernels.ephemeris import earth_sun_distance_at, julian_day, sun_position_at
from eo_pipeline.kernels.solar import earth_sun_distance, solar_position


def test_plain_python_equals_compiled_kernel() -> None:
    rng = np.random.default_rng(3)
    times = np.datetime64("1990-01-01") + rng.integers(0, 40 * 365 * 86400, 40).astype(
        "timedelta64[s]"
    )
    lat = rng.uniform(-89, 89, 40)
    lon = rng.uniform(-180, 180, 40)
    zen, az = solar_position(times, lat, lon)
    for i in range(40):
        z, a = sun_position_at(times[i], lat[i], lon[i])
        assert z == pytest.approx(zen[i], abs=1e-12)
        assert a == pytest.approx(az[i], abs=1e-12)
        assert earth_sun_distance_at(times[i]) == pytest.approx(
            float(earth_sun_distance(times[i])), abs=1e-15
        )


def test_published_values() -> None:
    # USGS MTL of LC08_L2SP_001070_20190114: EARTH_SUN_DISTANCE 0.9835616, SUN_ELEVATION 59.4977
    assert earth_sun_distance_at("2019-01-14T14:34:30") == pytest.approx(0.9835616, abs=5e-5)
    zen, _ = sun_position_at("2019-01-14T14:34:30", -14.457, -67.673)
    assert 90 - zen == pytest.approx(59.4977, abs=0.05)
    assert julian_day("2000-01-01T12:00:00") == 2451545.0
    assert np.isnan(sun_position_at("2019-01-14", 95.0, 0.0)[0])  # latitude out of range

"""Scene placement, sun geometry and nested grids of the simulator."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from eo_pipeline.catalogs import sensors
from eo_pipeline.errors import InputDataError
from eo_pipeline.kernels.solar import solar_position
from eo_pipeline.simulation.geometry import (
    KAZAKHSTAN,
    MIN_SUN_ELEVATION,
    cos_zenith_grid,
    on_date,
    place_scene,
    scene_grid,
)


def test_scenes_fall_inside_kazakhstan_in_daylight() -> None:
    s = sensors.get("kazeosat2")
    for seed in range(3):
        p = place_scene(np.random.default_rng(seed), s, extent_m=20000.0, snap=30.0)
        assert p.left % 30 == 0 and p.top % 30 == 0
        to_geo = Transformer.from_crs(p.epsg, 4326, always_xy=True)
        xs = [p.left, p.left + p.extent_m, p.left + p.extent_m, p.left]
        ys = [p.top, p.top, p.top - p.extent_m, p.top - p.extent_m]
        assert KAZAKHSTAN.contains(shapely.Polygon(zip(*to_geo.transform(xs, ys), strict=True)))
        assert p.sun_elevation >= MIN_SUN_ELEVATION
        lon, lat = p.center_lonlat
        zen, az = solar_position(p.datetime.replace(tzinfo=None), lat, lon)
        assert p.sun_elevation == pytest.approx(90 - zen) and p.sun_azimuth == pytest.approx(az)


def test_on_date_and_per_pixel_sun() -> None:
    s = sensors.get("kazeosat2")
    p = place_scene(np.random.default_rng(1), s, extent_m=30000.0, snap=30.0)
    june = on_date(p, dt.date(2024, 6, 21))
    assert june.datetime.time() == p.datetime.time() and june.earth_sun_distance > 1.01
    grid = cos_zenith_grid(june, 300.0, 100, 100)
    assert grid.dtype == np.float32 and grid.shape == (100, 100)
    centre = np.cos(np.radians(90 - june.sun_elevation))
    assert grid[49:51, 49:51].mean() == pytest.approx(centre, abs=2e-3)
    assert grid[-1].mean() > grid[0].mean()  # the south of a northern scene is sunnier
    north = dataclasses.replace(p, center_lonlat=(p.center_lonlat[0], 54.0))
    with pytest.raises(InputDataError, match="sun is"):  # noon sun at 54N on Dec 21: 12.6 deg
        on_date(north, dt.date(2024, 12, 21))


def test_nested_grids() -> None:
    g = scene_grid(sensors.get("kazeosat1"), 100)
    assert g.fine == 4 and g.band_pixels("P") == g.size * 4 and g.band_pixels("B0") == g.size
    assert g.band_pixel_size("P") * 4 == pytest.approx(g.band_pixel_size("B0"))
    l8 = scene_grid(sensors.get("landsat8"), 101)
    assert l8.size % 1 == 0 and l8.band_pixels("B8") == 2 * l8.size

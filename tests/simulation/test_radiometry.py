"""Reflectance -> DN in the simulator inverts the calibration the readers apply."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eo_pipeline.catalogs import sensors
from eo_pipeline.simulation.radiometry import (
    block_mean,
    inverse_calibration,
    surface_reflectance,
    to_dn,
)


@pytest.mark.parametrize(
    ("sensor", "band"), [("kazeosat2", "B3"), ("landsat8", "B4"), ("sentinel2a", "B04")]
)
def test_dn_calibrates_back_to_the_reflectance(sensor: str, band: str) -> None:
    s = sensors.get(sensor)
    b = s.band(band)
    inv = inverse_calibration(s, b, earth_sun_distance=0.99)
    rho = np.linspace(0.02, 0.6, 64, dtype=np.float32).reshape(8, 8)
    cosz = np.full((8, 8), math.cos(math.radians(40.0)), np.float32)
    dn = to_dn(rho, cosz, inv, b, outside=np.zeros((8, 8), bool), normal=None)
    assert dn.dtype == np.dtype(b.dtype)
    cal = inv.calibration
    if cal.reflectance_mult is not None:  # the products' own reflectance rescaling
        back = cal.reflectance_mult * dn + (cal.reflectance_add or 0.0)
        if not cal.reflectance_sun_corrected:
            back = back / cosz
    else:  # radiance and ESUN: rho = pi L d^2 / (ESUN cos z)
        radiance = cal.radiance_mult * dn + (cal.radiance_add or 0.0)
        back = math.pi * radiance * 0.99**2 / (cal.esun * cosz)
    step = inv.step / (cosz if inv.use_zenith else 1.0)
    assert np.abs(back - rho).max() <= 0.5 * float(np.max(step)) * 1.001  # quantisation only


def test_nodata_saturation_and_noise() -> None:
    s = sensors.get("kazeosat2")
    b = s.band("B3")
    inv = inverse_calibration(s, b, earth_sun_distance=1.0)
    rho = np.array([[0.2, 5.0], [0.2, np.nan]], np.float32)
    cosz = np.ones((2, 2), np.float32)
    outside = np.array([[False, False], [True, False]])
    dn = to_dn(rho, cosz, inv, b, outside=outside, normal=None)
    assert dn[0, 1] == b.saturation and dn[1, 0] == b.nodata and dn[1, 1] == b.nodata
    assert dn[0, 0] > b.nodata
    flat = np.full((64, 64), 0.2, np.float32)
    normal = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    noisy = to_dn(flat, np.ones_like(flat), inv, b, outside=np.zeros((64, 64), bool), normal=normal)
    expected = math.sqrt(b.noise_dn**2 + b.shot_noise * float(0.2 * inv.a + inv.b))
    assert noisy.astype(float).std() == pytest.approx(expected, rel=0.1)


def test_surface_mixing_and_block_mean() -> None:
    cls = np.array([[1, 2]], np.uint8)
    primary = np.array([0, 0.05, 0.40], np.float32)
    secondary = np.array([0, 0.10, 0.20], np.float32)
    ones, zeros = np.ones((1, 2), np.float32), np.zeros((1, 2), np.float32)
    half = np.full((1, 2), 0.5, np.float32)
    out = surface_reflectance(cls, half, ones, zeros, zeros, primary=primary,
                              secondary=secondary, cloud=0.8, shadow_strength=0.5)  # fmt: skip
    np.testing.assert_allclose(out, [[0.075, 0.30]], rtol=1e-6)
    cloudy = surface_reflectance(cls, half, ones, ones, ones, primary=primary,
                                 secondary=secondary, cloud=0.8, shadow_strength=0.5)  # fmt: skip
    np.testing.assert_allclose(cloudy, [[0.8, 0.8]], rtol=1e-6)  # opaque cloud hides it all
    shaded = surface_reflectance(cls, half, ones, zeros, ones, primary=primary,
                                 secondary=secondary, cloud=0.8, shadow_strength=0.5)  # fmt: skip
    np.testing.assert_allclose(shaded, out * 0.5, rtol=1e-6)
    src = np.arange(36, dtype=np.float32).reshape(6, 6)
    np.testing.assert_allclose(block_mean(src, 3), src.reshape(2, 3, 2, 3).mean(axis=(1, 3)))
    assert block_mean(src, 1) is src

"""Fused calibration kernels against numpy references; nodata, saturation, extreme sun."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eo_pipeline.kernels.radiometry import (
    Linear,
    apply_linear,
    calibrate_block,
    sentinel2_offset,
    toa_ndvi_fused,
)

DN = hnp.arrays(
    np.uint16,
    hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=9),
    elements=st.integers(0, 65535),
)


def assert_float32_close(got: np.ndarray, want64: np.ndarray, maxulp: int = 1) -> None:
    """``got`` (float32) equals ``want64`` rounded to float32 within ``maxulp``; NaN where NaN."""
    want = np.asarray(want64).astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert not np.isinf(got).any()
    ok = ~np.isnan(want)
    np.testing.assert_array_max_ulp(got[ok], want[ok], maxulp=maxulp)


def test_radiance_and_surface_reflectance_equal_numpy_exactly() -> None:
    dn = np.arange(0, 65536, 7, dtype=np.uint16).reshape(1, -1)
    rad = apply_linear(dn, Linear.radiance(1.0328e-02, -51.63757))
    want = (1.0328e-02 * dn.astype(np.float64) - 51.63757).astype(np.float32)
    want[dn == 0] = np.nan
    np.testing.assert_array_equal(rad, want)
    sr = apply_linear(dn, Linear.surface_reflectance(2.75e-05, -0.2, saturation=65535))
    want = (dn * 2.75e-05 - 0.2).astype(np.float32)
    want[(dn == 0) | (dn == 65535)] = np.nan
    np.testing.assert_array_equal(sr, want)


def test_toa_reflectance_from_radiance_matches_formula() -> None:
    rng = np.random.default_rng(1)
    dn = rng.integers(1, 4096, (2, 5, 7), dtype=np.uint16)
    mult, add, esun, d = 0.2, -1.5, 1850.0, np.array([0.9836, 1.0166])
    zen = np.array([30.0, 60.0])
    got = apply_linear(dn, Linear.toa_reflectance(mult, add, esun, d, zen))
    rad = mult * dn.astype(np.float64) + add
    want = np.pi * rad * (d**2)[:, None, None] / (esun * np.cos(np.radians(zen))[:, None, None])
    assert_float32_close(got, want)


def test_landsat_reflectance_divides_by_sin_elevation() -> None:
    dn = np.array([[0, 1, 7273, 20000, 43636, 65535]], dtype=np.uint16)
    got = apply_linear(dn, Linear.landsat_reflectance(2e-05, -0.1, 59.49769288, saturation=65535))
    want = (2e-05 * dn.astype(np.float64) - 0.1) / np.sin(np.radians(59.49769288))
    want[0, [0, -1]] = np.nan
    assert_float32_close(got, want)


def test_sentinel2_rule_depends_on_baseline() -> None:
    dn = np.array([[0, 1000, 1500, 12000]], dtype=np.uint16)
    for baseline, offset in (("02.09", 0.0), ("04.00", -1000.0)):
        assert sentinel2_offset(baseline) == offset
        got = apply_linear(dn, Linear.sentinel2_reflectance(10000.0, offset))
        want = (dn.astype(np.float64) + offset) / 10000.0
        want[0, 0] = np.nan
        assert_float32_close(got, want)
    assert sentinel2_offset(None) == 0.0


def test_saturation_is_nan_and_flagged_not_clipped() -> None:
    dn = np.array([[0, 100, 4094, 4095, 65535]], dtype=np.uint16)
    out, mask = calibrate_block(dn, 1.0, 0.0, nodata=0, saturation=4095, flag=4, mask=True)
    np.testing.assert_array_equal(mask, [[0, 0, 0, 4, 4]])
    assert np.isnan(out[0, [0, 3, 4]]).all()
    np.testing.assert_array_equal(out[0, 1:3], [100.0, 4094.0])


def test_nodata_wins_over_saturation_and_none_disables() -> None:
    dn = np.array([[65535, 0]], dtype=np.uint16)
    out, mask = calibrate_block(dn, 1.0, 0.0, nodata=65535, saturation=65535, mask=True)
    assert np.isnan(out[0, 0]) and mask[0, 0] == 0
    assert out[0, 1] == 0.0
    out = calibrate_block(dn, 1.0, 0.0, nodata=None, saturation=None)
    np.testing.assert_array_equal(out, [[65535.0, 0.0]])


@pytest.mark.parametrize("zenith", [85.0001, 89.999, 90.0, 120.0, 180.0, np.nan])
def test_scene_zenith_beyond_85_is_nan_never_inf(zenith: float) -> None:
    dn = np.full((3, 3), 5000, dtype=np.uint16)
    out = apply_linear(dn, Linear.landsat_reflectance(2e-05, -0.1, 90.0 - zenith))
    assert np.isnan(out).all()


def test_per_pixel_zenith_matches_numpy_and_masks_horizon() -> None:
    dn = np.full((2, 3, 4), 30000, dtype=np.uint16)
    zen = np.array([[0, 10, 45, 84.9], [85.0, 85.01, 89.99, 90], [91, 180, np.nan, 60]], np.float32)
    got = apply_linear(dn, Linear.toa_reflectance(0.01, -5.0, 1500.0, 1.01, zen))
    want = (
        np.pi
        * (0.01 * 30000.0 - 5.0)
        * 1.01**2
        / (1500.0 * np.cos(np.radians(zen.astype(np.float64))))
    )
    want = np.where(zen.astype(np.float64) <= 85.0, want, np.nan)
    # cos is taken in the zenith's float32 precision: within 2 float32 ulp of float64.
    assert_float32_close(got[0], want, maxulp=2)
    assert_float32_close(got[1], want, maxulp=2)


def test_zero_esun_or_quantification_gives_nan_not_inf() -> None:
    dn = np.full((2, 2), 100, dtype=np.uint16)
    assert np.isnan(apply_linear(dn, Linear.toa_reflectance(1.0, 0.0, 0.0, 1.0, 30.0))).all()
    assert np.isnan(apply_linear(dn, Linear.sentinel2_reflectance(0.0))).all()


def test_per_time_numbers_and_apply_ufunc_style_shapes() -> None:
    dn = np.full((3, 2, 2), 1000, dtype=np.uint16)
    mult = np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1)  # as xarray.apply_ufunc passes them
    out = calibrate_block(dn, mult, 0.0)
    np.testing.assert_array_equal(out[:, 0, 0], [1000.0, 2000.0, 3000.0])
    with pytest.raises(ValueError, match="leading dims"):
        calibrate_block(dn, np.ones(2), 0.0)
    with pytest.raises(ValueError, match="float32"):
        calibrate_block(dn, 1.0, 0.0, out=np.empty(dn.shape, np.float64))


def test_toa_ndvi_fused_matches_two_step() -> None:
    rng = np.random.default_rng(3)
    red = rng.integers(0, 65536, (2, 6, 5), dtype=np.uint16)
    nir = rng.integers(0, 65536, (2, 6, 5), dtype=np.uint16)
    red_cal = Linear.landsat_reflectance(2e-05, -0.1, np.array([50.0, 3.0]), saturation=60000)
    nir_cal = Linear.landsat_reflectance(2e-05, -0.1, np.array([50.0, 3.0]), saturation=60000)
    ndvi = toa_ndvi_fused(red, nir, red_cal, nir_cal)
    r = apply_linear(red, red_cal).astype(np.float64)
    n = apply_linear(nir, nir_cal).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = (n - r) / (n + r)
    np.testing.assert_array_equal(np.isnan(ndvi), np.isnan(want) | np.isinf(want))
    assert np.isnan(ndvi[1]).all()  # sun elevation 3 degrees: zenith 87 -> NaN
    ok = ~np.isnan(ndvi)
    np.testing.assert_allclose(ndvi[ok], want[ok], rtol=0, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(
    dn=DN,
    nodata=st.integers(0, 65535),
    saturation=st.integers(1, 65535),
    elevation=st.floats(-10.0, 90.0),
)
def test_any_dn_any_sun_matches_numpy(
    dn: np.ndarray, nodata: int, saturation: int, elevation: float
) -> None:
    cal = Linear.landsat_reflectance(2e-05, -0.1, elevation, nodata=nodata, saturation=saturation)
    out, mask = apply_linear(dn, cal, mask=True)
    x = dn.astype(np.float64)
    want = (2e-05 * x - 0.1) / np.cos(np.radians(90.0 - elevation))
    sat = (dn >= saturation) & (dn != nodata)
    want[(dn == nodata) | sat] = np.nan
    if 90.0 - elevation > 85.0:
        want[...] = np.nan
    assert_float32_close(out, want)
    np.testing.assert_array_equal(mask, sat.astype(np.uint8))


@settings(max_examples=100, deadline=None)
@given(
    dn=hnp.arrays(np.uint16, (2, 3, 4), elements=st.integers(0, 65535)),
    zen=hnp.arrays(
        np.float32,
        (3, 4),
        elements=st.floats(0.0, 180.0, width=32) | st.just(np.float32(np.nan)),
    ),
)
def test_per_pixel_zenith_never_inf(dn: np.ndarray, zen: np.ndarray) -> None:
    out = apply_linear(dn, Linear.toa_reflectance(0.01, -60.0, 1536.0, 0.98, zen))
    assert not np.isinf(out).any()
    with np.errstate(invalid="ignore"):
        beyond = ~(zen <= 85.0)
    assert np.isnan(out[:, beyond]).all()
    x = dn.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = (
            np.pi
            * (0.01 * x - 60.0)
            * 0.98**2
            / (1536.0 * np.cos(np.radians(zen.astype(np.float64))))
        )
    want[:, beyond] = np.nan
    want[dn == 0] = np.nan
    assert_float32_close(out, want, maxulp=2)


@settings(max_examples=60, deadline=None)
@given(dn=DN, scale=st.floats(1e-6, 1e-3), offset=st.floats(-1.0, 1.0))
def test_surface_reflectance_is_exactly_float32_of_float64_expression(
    dn: np.ndarray, scale: float, offset: float
) -> None:
    out = apply_linear(dn, Linear.surface_reflectance(scale, offset, nodata=0, saturation=None))
    want = (dn * scale + offset).astype(np.float32)
    want[dn == 0] = np.nan
    np.testing.assert_array_equal(out, want)


@settings(max_examples=60, deadline=None)
@given(red=DN, seed=st.integers(0, 2**32 - 1), elevation=st.floats(-5.0, 90.0))
def test_ndvi_fused_is_bounded_or_nan(red: np.ndarray, seed: int, elevation: float) -> None:
    nir = np.random.default_rng(seed).integers(0, 65536, red.shape, dtype=np.uint16)
    cal = Linear.landsat_reflectance(2e-05, 0.0, elevation, saturation=65535)
    ndvi = toa_ndvi_fused(red, nir, cal, cal)
    assert ndvi.dtype == np.float32 and not np.isinf(ndvi).any()
    finite = ndvi[~np.isnan(ndvi)]
    assert ((finite >= -1.0) & (finite <= 1.0)).all()
    if 90.0 - elevation > 85.0:
        assert np.isnan(ndvi).all()

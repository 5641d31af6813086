"""Kernel runners fuzzed with any byte order, memory order, shape and extreme value (issue #16)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eo_pipeline.kernels.quantize import quantize_int16
from eo_pipeline.kernels.radiometry import Linear, calibrate_block, toa_ndvi_fused
from tests.strategies import any_layout, dn_arrays, float_arrays, layouts, shapes

FUZZ = settings(max_examples=60, deadline=None)


def _quantize_reference(x: np.ndarray, scale: float, offset: float, nodata: int) -> np.ndarray:
    lo = -32767 if nodata == -32768 else -32768
    hi = 32767 if nodata != 32767 else 32766
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.clip(np.rint((x.astype(np.float64) - offset) / scale), lo, hi)
    return np.where(np.isnan(x), nodata, np.nan_to_num(q)).astype(np.int16)


@FUZZ
@given(
    float_arrays(shape=shapes(min_dims=0, max_dims=3)),
    layouts(),
    st.sampled_from([1e-4, 2.75e-5, 1.0]),
    st.sampled_from([-32768, 32767]),
)
def test_quantize_int16_saturates_whatever_the_input(
    x: np.ndarray, layout: str, scale: float, nodata: int
) -> None:
    got = quantize_int16(any_layout(x, layout), scale=scale, nodata=nodata)
    assert got.shape == x.shape and got.dtype == np.int16
    np.testing.assert_array_equal(got, _quantize_reference(x, scale, 0.0, nodata))
    finite_big = np.isfinite(x) & (x > 0)
    assert (got[finite_big] >= 0).all(), "a positive value packed as a negative one"


def test_quantize_int16_the_audit_case() -> None:
    """The audit's attack: +inf and 1e15 became -32767 (reflectance -3.2767)."""
    got = quantize_int16(np.array([[np.inf, 1e15, 3.0]], np.float32))
    np.testing.assert_array_equal(got, [[32767, 32767, 30000]])


@pytest.mark.parametrize("bad", [{"scale": 0.0}, {"scale": np.nan}, {"nodata": 40000}])
def test_quantize_int16_refuses_nonsense_parameters(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        quantize_int16(np.zeros((2, 2), np.float32), **bad)


def _calibrate_reference(dn: np.ndarray, mult: float, add: float, sat: int) -> np.ndarray:
    want = (mult * dn.astype(np.float64) + add).astype(np.float32)
    return np.where((dn == 0) | (dn == sat), np.float32(np.nan), want)


@FUZZ
@given(dn_arrays(), layouts(), st.sampled_from([2.75e-5, 0.01, 7.5]))
def test_calibrate_block_any_layout_equals_reference(
    dn: np.ndarray, layout: str, mult: float
) -> None:
    sat = int(np.iinfo(dn.dtype).max)
    got = calibrate_block(any_layout(dn, layout), mult, -0.2, saturation=sat)
    assert isinstance(got, np.ndarray) and got.shape == dn.shape and got.dtype == np.float32
    want = _calibrate_reference(dn, mult, -0.2, sat)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_max_ulp(got[~np.isnan(got)], want[~np.isnan(want)], maxulp=1)


@FUZZ
@given(dn_arrays(("u2",)), layouts())
def test_toa_ndvi_fused_any_layout_equals_native(dn: np.ndarray, layout: str) -> None:
    cal = Linear.surface_reflectance(1e-4, 0.0, saturation=65535)
    nir = dn[..., ::-1, :].copy()
    want = toa_ndvi_fused(dn, nir, cal, cal)
    got = toa_ndvi_fused(any_layout(dn, layout), any_layout(nir, layout), cal, cal)
    assert got.shape == dn.shape
    np.testing.assert_array_equal(got, want)
    assert not np.isinf(got).any()

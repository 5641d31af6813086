"""Masking of products, the physical reflectance range and index valid ranges."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from eo_pipeline.errors import WorkflowError
from eo_pipeline.kernels import masks as k
from eo_pipeline.kernels.indices import FusedKernel
from eo_pipeline.steps.indices import compute_indices
from eo_pipeline.steps.validity import (
    VALID_REFLECTANCE,
    apply_mask,
    flag_out_of_range,
    guard_index,
    index_inputs,
    index_range,
    mask_bits,
    ranges_of,
)


def _bands(red: list[float], nir: list[float]) -> xr.Dataset:
    dims = ("time", "y", "x")
    return xr.Dataset(
        {
            "B4": (dims, np.float32(red).reshape(1, 1, -1), {"common_name": "red"}),
            "B5": (dims, np.float32(nir).reshape(1, 1, -1), {"common_name": "nir"}),
        }
    )


def test_out_of_range_flagged_and_products_masked() -> None:
    ds = _bands([0.1, -0.02, 0.1, 0.1, np.nan], [0.3, 0.3, 1.7, -0.005, np.nan])
    mask = xr.DataArray(
        np.uint8([k.CLEAR, k.CLEAR, k.CLEAR | k.WATER, k.CLEAR, k.NODATA]).reshape(1, 1, -1),
        dims=("time", "y", "x"),
        attrs={"flag_meanings": "x"},
    )
    out = flag_out_of_range(mask, ds)
    assert out.values.ravel().tolist() == [
        k.CLEAR,
        k.SATURATED,  # red below -0.01: unusable, no longer clear
        k.SATURATED | k.WATER,  # NIR above 1.6; surface flags kept
        k.CLEAR,  # -0.005 is within the noise tolerance
        k.NODATA,  # nodata keeps no other bit
    ]
    assert out.attrs["valid_reflectance"] == list(VALID_REFLECTANCE)
    masked = apply_mask(ds, out, ["nodata", "cloud", "saturated"])
    assert np.isnan(masked["B4"].values.ravel()).tolist() == [False, True, True, False, True]
    kept = apply_mask(ds, out, [])  # only nodata
    assert np.isnan(kept["B4"].values.ravel()).tolist() == [False, False, False, False, True]
    assert kept["B4"].attrs["common_name"] == "red" and kept["B4"].dtype == np.float32
    with pytest.raises(WorkflowError, match="unknown mask flag 'clouds'"):
        mask_bits(["clouds"])


def test_normalized_differences_in_range_by_construction() -> None:
    rng = np.random.default_rng(7)
    # noise around zero, dark targets, bright ones, out-of-range values
    red = rng.uniform(-0.05, 1.8, 20000)
    nir = rng.uniform(-0.05, 1.8, 20000)
    red[:50] = -0.004
    nir[:50] = 0.2
    inputs = index_inputs(_bands(list(red), list(nir)))
    assert float(inputs["B4"].min()) == 0.0  # -0.004 counts as 0; -0.05 is NaN
    ndvi = compute_indices(inputs, ["NDVI"])["NDVI"].values.ravel()
    finite = ndvi[np.isfinite(ndvi)]
    assert finite.size > 10000
    assert finite.min() >= -1.0 and finite.max() <= 1.0  # no clipping anywhere
    assert np.all(ndvi[:50] == 1.0)  # (0.2 - 0) / (0.2 + 0)
    outside = (red < -0.01) | (red > 1.6) | (nir < -0.01) | (nir > 1.6)
    assert np.isnan(ndvi[outside]).all()


def test_index_ranges_derived_or_documented() -> None:
    nd = index_range("(N - R)/(N + R)", ["N", "R"], {})
    assert nd is not None and (nd.minimum, nd.maximum, nd.guarded) == (-1.0, 1.0, False)
    savi = index_range("(1.0 + L) * (N - R) / (N + R + L)", ["N", "R"], {"L": 0.5})
    assert savi is not None and savi.maximum == pytest.approx(1.5 * 1.6 / 2.1, abs=1e-4)
    evi = index_range(
        "g * (N - R) / (N + C1 * R - C2 * B + L)",
        ["N", "R", "B"],
        {"g": 2.5, "C1": 6, "C2": 7.5, "L": 1},
        "EVI",
    )
    assert evi is not None and evi.guarded and (evi.minimum, evi.maximum) == (-1.0, 1.0)
    # an unbounded custom formula claims no range
    assert index_range("N / (N - R)", ["N", "R"], {}, "MY") is None
    da = xr.DataArray(np.float32([-5.0, 0.5, 3.0]))
    assert np.isnan(guard_index(da, evi).values).tolist() == [True, False, True]
    assert guard_index(da, nd) is da
    idx = compute_indices(_bands([0.1], [0.4]), ["NDVI"])
    assert ranges_of(idx)["NDVI"] == nd


def test_near_zero_denominator_is_nan() -> None:
    kernel = FusedKernel.from_formulas(["(N - R) / (N + R)"], ["N", "R"])
    (out,) = kernel(np.float32([0.3, 4e-7, 0.0, 1e-4]), np.float32([0.1, 0.0, 0.0, 0.0]))
    assert out[0] == pytest.approx(0.5)
    assert np.isnan(out[1]) and np.isnan(out[2])
    assert out[3] == 1.0  # one quantisation step is a real measurement

"""eo_pipeline.steps.compositing on xarray objects: numpy/dask parity, method semantics, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from eo_pipeline.errors import BandError, EOPipelineError, InputDataError
from eo_pipeline.steps.compositing import BAPParams, composite, invalid_bits

NT, NY, NX = 6, 12, 10


def _cube(seed: int = 0, nan_share: float = 0.2) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    t = pd.date_range("2024-05-01", periods=NT, freq="7D")
    coords = {
        "time": t,
        "y": np.arange(NY) * -10.0,
        "x": np.arange(NX) * 10.0,
        "spatial_ref": 0,
        "sun_elevation": ("time", np.linspace(40, 60, NT)),
    }
    bands = {}
    for name, common in (("B2", "blue"), ("B4", "red"), ("B5", "nir")):
        data = rng.random((NT, NY, NX), dtype=np.float32)
        data[rng.random(data.shape) < nan_share] = np.nan
        bands[name] = xr.DataArray(
            data,
            dims=("time", "y", "x"),
            coords=coords,
            attrs={"common_name": common, "units": "1"},
        )
    return xr.Dataset(bands, attrs={"sensor": "landsat8"})


def _assert_parity(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for key in a.data_vars:
        assert a[key].dtype == b[key].dtype
        np.testing.assert_array_equal(a[key].values, b[key].values)


@pytest.mark.parametrize("method", ["median", "max_ndvi", "bap"])
def test_numpy_dask_parity(method: str) -> None:
    ds = _cube()
    mask = xr.DataArray(
        (np.random.default_rng(5).random((NT, NY, NX)) < 0.15).astype(np.uint8) * np.uint8(2),
        dims=("time", "y", "x"),
        coords={"time": ds.time},
    )
    ds["mask"] = mask
    params = BAPParams(cloud_distance_max=6)
    eager = composite(ds, method, params=params)
    lazy = composite(ds.chunk({"time": 2, "y": 5, "x": 4}), method, params=params)
    assert lazy["B4"].chunks is not None  # still lazy
    assert lazy["B4"].chunks[0] == (5, 5, 2)
    _assert_parity(eager, lazy.compute())


def test_median_equals_nanmedian_and_keeps_coords_attrs() -> None:
    ds = _cube()
    out = composite(ds, "median")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(ds["B4"].values, axis=0)
    np.testing.assert_allclose(out["B4"].values, expected, rtol=1e-6, equal_nan=True)
    assert out["B4"].dtype == np.float32
    assert "time" not in out.dims and "sun_elevation" not in out.coords
    assert "spatial_ref" in out.coords
    assert out["B4"].attrs["common_name"] == "red"
    assert out.attrs["sensor"] == "landsat8" and out.attrs["composite"] == "median"
    assert "source_time" not in out


def test_uint8_bit_mask_and_bool_mask_are_honoured() -> None:
    ds = _cube(nan_share=0.0)
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 256, size=(NT, NY, NX), dtype=np.uint8)
    bits[rng.random(bits.shape) < 0.5] = 0
    mask = xr.DataArray(bits, dims=("time", "y", "x"), coords={"time": ds.time})
    bad = (bits & invalid_bits()) != 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(np.where(bad, np.nan, ds["B4"].values), axis=0)
    got = composite(ds, "median", mask=mask)["B4"].values
    np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)
    got_bool = composite(ds, "median", mask=mask.copy(data=bad))["B4"].values
    np.testing.assert_allclose(got_bool, expected, rtol=1e-6, equal_nan=True)
    # the Dataset's own "mask" variable is used by default and not composited itself
    with_var = composite(ds.assign(mask=mask), "median")
    assert "mask" not in with_var
    np.testing.assert_allclose(with_var["B4"].values, expected, rtol=1e-6, equal_nan=True)
    # an explicit mask that is one of the Dataset's variables is not composited either
    with_qa = ds.assign(qa=mask)
    as_qa = composite(with_qa, "median", mask=with_qa["qa"])
    assert "qa" not in as_qa
    np.testing.assert_allclose(as_qa["B4"].values, expected, rtol=1e-6, equal_nan=True)


def test_max_ndvi_takes_all_bands_from_the_greenest_date() -> None:
    ds = _cube(nan_share=0.0)
    red, nir = ds["B4"].values, ds["B5"].values
    best = np.argmax((nir - red) / (nir + red), axis=0)
    out = composite(ds, "max_ndvi")
    np.testing.assert_array_equal(out["source_time"].values, best)
    assert out["source_time"].dtype == np.uint16
    yy, xx = np.meshgrid(np.arange(NY), np.arange(NX), indexing="ij")
    for key in ("B2", "B4", "B5"):
        np.testing.assert_array_equal(out[key].values, ds[key].values[best, yy, xx])


def test_max_ndvi_skips_masked_dates_and_uses_ndvi_variable() -> None:
    ds = _cube(nan_share=0.0)
    ndvi = ((ds["B5"] - ds["B4"]) / (ds["B5"] + ds["B4"])).astype(np.float32)
    best = ndvi.argmax("time").values
    mask = xr.zeros_like(ds["B4"], dtype=bool)
    mask[{"time": 0}] = True
    mask.values[best, np.arange(NY)[:, None], np.arange(NX)[None, :]] = True
    out = composite(ds, "max_ndvi", mask=mask)
    assert (out["source_time"].values != best).all()
    assert (out["source_time"].values != 0).all()
    only_ndvi = composite(xr.Dataset({"NDVI": ndvi}), "max_ndvi")
    np.testing.assert_array_equal(only_ndvi["source_time"].values, best)


def _bap_case() -> xr.Dataset:
    t = pd.to_datetime(["2024-06-01", "2024-06-15", "2024-07-01"])
    coords = {"time": t, "y": np.arange(20.0), "x": np.arange(20.0)}
    data = np.stack([np.full((20, 20), i + 1, np.float32) for i in range(3)])
    ds = xr.Dataset({"B4": (("time", "y", "x"), data)}, coords=coords)
    return ds.assign_coords(sun_elevation=("time", [50.0, 50.0, 50.0]))


def test_bap_prefers_far_from_cloud() -> None:
    ds = _bap_case()
    clouds = np.zeros((3, 20, 20), bool)
    clouds[0, 8:12, 8:12] = True  # a cloud right next to the centre on date 0
    clouds[2, :, :3] = True  # far from the centre on date 2
    params = BAPParams(target_doy=None, cloud_distance_max=10, weight_doy=0.0, weight_zenith=0.0)
    out = composite(ds, "bap", mask=ds["B4"].copy(data=clouds), params=params)
    st = out["source_time"].values
    assert st[10, 6] == 1 or st[10, 6] == 2  # near the date-0 cloud: not date 0
    assert st[10, 6] != 0
    assert st[10, 1] != 2  # near the date-2 cloud: not date 2
    assert st[9, 9] != 0  # under the cloud: never date 0


def test_bap_prefers_low_zenith_and_near_target() -> None:
    ds = _bap_case().assign_coords(sun_elevation=("time", [30.0, 60.0, 45.0]))
    zen = composite(ds, "bap", params=BAPParams(weight_doy=0.0, weight_cloud=0.0))
    assert (zen["source_time"].values == 1).all()
    doy_target = pd.Timestamp("2024-07-01").day_of_year
    near = composite(
        ds, "bap", params=BAPParams(target_doy=doy_target, weight_zenith=0.05, weight_cloud=0.0)
    )
    assert (near["source_time"].values == 2).all()
    assert (near["B4"].values == 3.0).all()


def test_period_composites_and_absolute_source_time() -> None:
    t = pd.to_datetime(["2024-01-03", "2024-01-20", "2024-02-02", "2024-02-10", "2024-02-25"])
    red = np.float32([0.1, 0.1, 0.1, 0.1, 0.1])[:, None, None] * np.ones((1, 2, 2), np.float32)
    nir = np.float32([0.2, 0.5, 0.3, 0.9, 0.4])[:, None, None] * np.ones((1, 2, 2), np.float32)
    ds = xr.Dataset(
        {"red": (("time", "y", "x"), red), "nir": (("time", "y", "x"), nir)}, coords={"time": t}
    )
    out = composite(ds, "max_ndvi", period="1MS")
    assert list(pd.DatetimeIndex(out.time.values)) == list(
        pd.to_datetime(["2024-01-01", "2024-02-01"])
    )
    assert out["source_time"].sel(time="2024-01-01").values.tolist() == [[1, 1], [1, 1]]
    assert out["source_time"].sel(time="2024-02-01").values.tolist() == [[3, 3], [3, 3]]
    med = composite(ds, "median", period="1MS")
    np.testing.assert_allclose(med["nir"].values[:, 0, 0], [0.35, 0.4], rtol=1e-6)
    lazy = composite(ds.chunk({"time": 1, "y": 1}), "max_ndvi", period="1MS")
    assert lazy["source_time"].chunks is not None
    xr.testing.assert_identical(lazy.compute(), out)
    # unsorted input: source_time indexes the input's own time axis
    shuffled = ds.isel(time=[4, 1, 3, 0, 2])
    for backed in (shuffled, shuffled.chunk({"y": 1})):
        got = composite(backed, "max_ndvi", period="1MS")["source_time"].values
        assert got[:, 0, 0].tolist() == [1, 2]  # 2024-01-20 and 2024-02-10 in the input


def test_dataarray_in_dataarray_out() -> None:
    ds = _cube()
    da = ds["B4"].chunk({"y": 6})
    out = composite(da, "median")
    assert isinstance(out, xr.DataArray) and out.name == "B4" and out.chunks is not None
    bap = composite(ds["B4"], "bap", params=BAPParams(cloud_distance_max=3))
    assert "source_time" in bap.coords and bap.dtype == np.float32


def test_errors() -> None:
    ds = _cube()
    with pytest.raises(InputDataError, match="1 date"):
        composite(ds.isel(time=[0]), "median")
    with pytest.raises(BandError, match="red and a nir"):
        composite(ds[["B2"]], "max_ndvi")
    with pytest.raises(InputDataError, match="unknown method"):
        composite(ds, "mean")  # type: ignore[arg-type]
    with pytest.raises(InputDataError, match="dtype float32"):
        composite(ds, "median", mask=ds["B2"])
    with pytest.raises(InputDataError, match="period"):
        composite(ds, "median", period="fortnight")
    with pytest.raises(EOPipelineError, match="weights"):
        BAPParams(weight_doy=-1)
    with pytest.raises(InputDataError, match="no 'time' dim"):
        composite(ds.isel(time=0), "median")


def test_apply_kernel_reduces_core_dims_of_dask_blocks() -> None:
    from eo_pipeline.kernels.composite import median_block
    from eo_pipeline.steps.dispatch import apply_kernel

    ds = _cube()
    lazy = ds["B4"].chunk({"time": -1, "y": 5})
    kw = {"output_dtypes": [np.float32], "input_core_dims": [["time"]]}
    kw["kwargs"] = {"bits": 0, "nodata": np.nan}
    out = apply_kernel(median_block, lazy, **kw)
    assert out.chunks == ((5, 5, 2), (NX,))
    np.testing.assert_array_equal(out.values, apply_kernel(median_block, ds["B4"], **kw).values)
    with pytest.raises(ValueError, match="single chunk"):
        apply_kernel(median_block, ds["B4"].chunk({"time": 2}), **kw)

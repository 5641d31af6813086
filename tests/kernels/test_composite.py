"""Composite kernels against numpy/scipy references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from eo_pipeline.kernels import composite as kc

NO_MASK = np.zeros((0, 0, 0), np.uint8)


def _median(cube_tyx: np.ndarray, **kw: object) -> np.ndarray:
    """Run the kernel on a (t, y, x) cube through the (y, x, t) view apply_ufunc hands over."""
    out = np.empty(cube_tyx.shape[1:], np.float32)
    mask = kw.pop("mask", None)
    m = NO_MASK if mask is None else np.asarray(mask).transpose(1, 2, 0)
    kc.nanmedian_time(
        cube_tyx.transpose(1, 2, 0),
        m,
        int(kw.get("bits", 0)),
        mask is not None,
        float(kw.get("nodata", np.nan)),
        out,
    )
    return out


finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
cubes = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 17), st.integers(1, 4), st.integers(1, 5)),
    elements=st.one_of(finite, st.just(np.float32(np.nan))),
)


@settings(max_examples=200, deadline=None)
@given(cubes)
def test_median_matches_numpy_nanmedian(cube: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        expected = np.nanmedian(cube, axis=0)
    got = _median(cube)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-30, equal_nan=True)


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(np.float32, st.tuples(st.integers(2, 12), st.just(3), st.just(3)), elements=finite),
    st.data(),
)
def test_median_mask_bits_equal_nan(cube: np.ndarray, data: st.DataObject) -> None:
    mask = data.draw(hnp.arrays(np.uint8, cube.shape))
    bits = 0b0010_0110
    masked = np.where((mask & bits) != 0, np.float32(np.nan), cube)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(masked, axis=0)
    got = _median(cube, mask=mask, bits=bits)
    np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("n", range(1, 15))
def test_batcher_network_sorts_every_zero_one_input(n: int) -> None:
    """0-1 principle (Knuth 5.3.4): a network that sorts every 0/1 input sorts everything."""
    x = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.int8)
    for i, j in kc.batcher_pairs(n):
        assert 0 <= i < j < n
        lo, hi = np.minimum(x[:, i], x[:, j]), np.maximum(x[:, i], x[:, j])
        x[:, i], x[:, j] = lo, hi
    assert (np.diff(x, axis=1) >= 0).all()


@pytest.mark.parametrize("dates", [1, 2, 20, kc.NETWORK_MAX_DATES, kc.NETWORK_MAX_DATES + 1, 90])
def test_median_network_and_quickselect_agree_with_numpy(dates: int) -> None:
    """Both paths (sorting network up to 64 dates, quickselect beyond), partial pixel
    blocks (x not a multiple of 256), masks, nodata, infinities and all-invalid pixels."""
    rng = np.random.default_rng(dates)
    cube = (rng.random((dates, 3, 600), dtype=np.float32) * 100).astype(np.float32)
    cube[rng.random(cube.shape) < 0.25] = np.nan
    cube[rng.random(cube.shape) < 0.02] = np.float32(np.inf)
    cube[rng.random(cube.shape) < 0.02] = np.float32(-np.inf)
    cube[rng.random(cube.shape) < 0.05] = np.float32(-1.0)  # nodata
    cube[:, 1, 17] = np.nan
    mask = (rng.random(cube.shape) < 0.1).astype(np.uint8) * np.uint8(4)
    invalid = np.isnan(cube) | (cube == -1.0) | (mask != 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(np.where(invalid, np.float32(np.nan), cube), axis=0)
    got = _median(cube, mask=mask, bits=4, nodata=-1.0)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(got[1, 17])


def test_median_all_nan_and_nodata_uint16() -> None:
    cube = np.array([[[0]], [[7]], [[0]], [[3]]], dtype=np.uint16)  # nodata 0
    assert _median(cube, nodata=0.0)[0, 0] == 5.0
    assert np.isnan(_median(np.zeros((3, 1, 1), np.uint16), nodata=0.0)[0, 0])
    assert np.isnan(_median(np.full((3, 2, 2), np.nan, np.float32))).all()


def test_median_even_count_averages_middle_values() -> None:
    cube = np.float32([4, 1, 3, 2]).reshape(4, 1, 1)
    assert _median(cube)[0, 0] == 2.5


def _argmax_ndvi(red: np.ndarray, nir: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    out = np.empty(red.shape[1:], np.uint16)
    m = NO_MASK if mask is None else mask.transpose(1, 2, 0)
    kc.argmax_ndvi(
        red.transpose(1, 2, 0), nir.transpose(1, 2, 0), m, 1, mask is not None, np.nan, np.nan, out
    )
    return out


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(np.float32, (6, 2, 3), elements=st.floats(0.125, 1, width=32)),
    hnp.arrays(np.float32, (6, 2, 3), elements=st.floats(0.125, 1, width=32)),
)
def test_argmax_ndvi_matches_numpy(red: np.ndarray, nir: np.ndarray) -> None:
    ndvi = (nir - red) / (nir + red)
    np.testing.assert_array_equal(_argmax_ndvi(red, nir), np.argmax(ndvi, axis=0))


def test_argmax_ndvi_masks_and_no_date() -> None:
    red = np.float32([0.1, 0.1, 0.1]).reshape(3, 1, 1)
    nir = np.float32([0.2, 0.9, 0.5]).reshape(3, 1, 1)
    assert _argmax_ndvi(red, nir)[0, 0] == 1
    mask = np.uint8([0, 1, 0]).reshape(3, 1, 1)
    assert _argmax_ndvi(red, nir, mask)[0, 0] == 2
    zeros = np.zeros((3, 1, 1), np.float32)  # 0 / 0 is no NDVI
    assert _argmax_ndvi(zeros, zeros)[0, 0] == kc.NO_DATE


def test_take_time_gathers_and_fills() -> None:
    data = np.arange(12, dtype=np.uint16).reshape(3, 2, 2)  # (t, y, x)
    index = np.array([[0, 2], [kc.NO_DATE, 1]], np.uint16)
    out = np.empty((2, 2), np.float32)
    kc.take_time(data.transpose(1, 2, 0), index, 7.0, out)  # 7 is nodata
    np.testing.assert_array_equal(out, np.float32([[0, 9], [np.nan, np.nan]]))


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(np.bool_, st.tuples(st.integers(1, 3), st.integers(1, 25), st.integers(1, 25))),
    st.integers(1, 30),
)
def test_cloud_distance_matches_scipy_edt(clouds: np.ndarray, cap: int) -> None:
    out = np.empty(clouds.shape, np.float32)
    kc.cloud_distance(clouds.astype(np.uint8) * np.uint8(4), 4, cap, out)
    for t in range(clouds.shape[0]):
        if clouds[t].any():
            ref = np.minimum(ndimage.distance_transform_edt(~clouds[t]), cap)
        else:
            ref = np.full(clouds.shape[1:], cap)
        np.testing.assert_allclose(out[t], ref, rtol=1e-6)


def test_bap_select_weighs_cloud_distance_and_static_score() -> None:
    # two dates, one pixel; date 0 is next to a cloud, date 1 far from clouds
    mask = np.zeros((1, 1, 2), np.uint8)
    distance = np.float32([1, 50]).reshape(1, 1, 2)
    ref = np.ones((1, 1, 2), np.float32)
    out = np.empty((1, 1), np.uint16)
    static = np.float32([0.5, 0.5])
    kc.bap_select(mask, distance, ref, 1, np.nan, static, 0.3, 50.0, 0.2, out)
    assert out[0, 0] == 1
    # a much better static score (e.g. the target date) outweighs the cloud distance
    kc.bap_select(mask, distance, ref, 1, np.nan, np.float32([1.5, 0.5]), 0.3, 50.0, 0.2, out)
    assert out[0, 0] == 0
    # invalid dates never win
    mask[0, 0, 0] = 1
    kc.bap_select(mask, distance, ref, 1, np.nan, np.float32([1.5, 0.5]), 0.3, 50.0, 0.2, out)
    assert out[0, 0] == 1
    mask[0, 0, 1] = 1
    kc.bap_select(mask, distance, ref, 1, np.nan, static, 0.3, 50.0, 0.2, out)
    assert out[0, 0] == kc.NO_DATE


@pytest.mark.parametrize("shape", [(5, 3), (2, 5, 3), (2, 2, 5, 3)])
def test_median_block_any_leading_dims(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    data = rng.random(shape, dtype=np.float32)
    got = kc.median_block(data, bits=0, nodata=np.nan)
    np.testing.assert_allclose(got, np.median(data, axis=-1), rtol=1e-6)

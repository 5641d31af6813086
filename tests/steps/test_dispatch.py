"""apply_kernel: the one xarray/dask dispatch of numpy kernels (lazy, halo-correct, capped)."""

from __future__ import annotations

import os

import dask
import numba
import numpy as np
import pytest
import xarray as xr

from eo_pipeline.errors import InputDataError
from eo_pipeline.steps.dispatch import apply_kernel, numba_threads, task_threads


def _da(chunks: dict[str, int] | None = None) -> xr.DataArray:
    data = np.arange(6 * 40 * 50, dtype=np.float32).reshape(6, 40, 50) % 97
    da = xr.DataArray(
        data,
        dims=("time", "y", "x"),
        coords={"y": np.arange(40) * 10.0, "x": np.arange(50) * 10.0, "sun": ("time", np.ones(6))},
        attrs={"units": "1"},
        name="B1",
    )
    return da.chunk(chunks) if chunks else da


def _box3(a: np.ndarray) -> np.ndarray:
    """3x3 box sum over the last two axes, zeros outside (a neighbourhood kernel)."""
    p = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)])
    out = np.zeros_like(a)
    for dy in range(3):
        for dx in range(3):
            out += p[..., dy : dy + a.shape[-2], dx : dx + a.shape[-1]]
    return out


def test_lazy_dask_equals_numpy_and_keeps_coords() -> None:
    eager = apply_kernel(lambda v: v * np.float32(2), _da(), output_dtypes=[np.float32],
                         name="twice", attrs={"units": "1"})  # fmt: skip
    lazy = apply_kernel(lambda v: v * np.float32(2), _da({"y": 16, "x": 16}),
                        output_dtypes=[np.float32], name="twice", attrs={"units": "1"})  # fmt: skip
    assert lazy.chunks is not None and eager.chunks is None  # nothing computed yet
    xr.testing.assert_identical(lazy.compute(), eager)
    assert eager.name == "twice" and eager.attrs == {"units": "1"} and "sun" in eager.coords


def test_two_outputs_with_explicit_dtypes() -> None:
    hi, flag = apply_kernel(
        lambda v: (v.astype(np.float32) / 2, (v > 50).astype(np.uint8)),
        _da({"y": 20}),
        output_dtypes=[np.float32, np.uint8],
    )
    assert hi.dtype == np.float32 and flag.dtype == np.uint8
    np.testing.assert_array_equal(flag.values, (_da().values > 50).astype(np.uint8))


def test_halo_makes_chunk_borders_invisible() -> None:
    expected = _box3(_da().values)
    chunked = _da({"y": 13, "x": 17})
    out = apply_kernel(
        _box3,
        chunked,
        output_dtypes=[np.float32],
        input_core_dims=[["y", "x"]],
        output_core_dims=[["y", "x"]],
        depth={"y": 1, "x": 1},
    )
    assert out.chunks == chunked.chunks  # the chunks stay, each one sees its neighbours
    np.testing.assert_array_equal(out.values, expected)


def test_empty_input_and_big_endian() -> None:
    with pytest.raises(InputDataError, match="no pixels"):
        apply_kernel(lambda v: v, _da().isel(x=slice(0, 0)), output_dtypes=[np.float32])
    big = _da().astype(">f4")
    seen = []

    def kernel(v: np.ndarray) -> np.ndarray:
        seen.append(v.dtype.isnative)
        return v.astype(np.float32)

    out = apply_kernel(kernel, big, output_dtypes=[np.float32])
    assert all(seen) and np.array_equal(out.values, _da().values)


def test_numba_threads_capped_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    before = numba.get_num_threads()
    monkeypatch.setenv("EO_PIPELINE_NUMBA_THREADS", "1")
    assert task_threads() == 1
    with numba_threads():
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    monkeypatch.delenv("EO_PIPELINE_NUMBA_THREADS")
    with dask.config.set(scheduler="threads"):
        assert task_threads() == 1  # dask's threads already use the cores
    with dask.config.set(scheduler="sync"):
        assert task_threads() == (os.cpu_count() or 1)


def test_after_compute_outside_a_task_every_core_inside_one_its_share() -> None:
    """A COG copy after the compute (eo.write in the caller's thread) uses every core even
    when dask's threaded scheduler is configured; inside a threaded task it gets one."""
    import dask.array as da

    cores = os.cpu_count() or 1
    with dask.config.set(scheduler="threads"):
        assert task_threads() == 1
        assert task_threads(after_compute=True) == cores
        inside = da.from_array(np.zeros(4), chunks=2).map_blocks(
            lambda b: np.full(b.shape, task_threads(after_compute=True))
        )
        assert set(inside.compute().tolist()) == {1}

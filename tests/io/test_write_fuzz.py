"""write() fuzzed at its public boundary: byte order, memory order, odd dtypes and options (#16)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from eo_pipeline.errors import InputDataError
from eo_pipeline.io.writing import write
from eo_pipeline.kernels.quantize import quantize_int16
from tests.strategies import any_layout, float_arrays, layouts

PLANES = float_arrays(("f4",), shape=st.tuples(st.integers(1, 5), st.integers(1, 5)))


def _da(values: np.ndarray) -> xr.DataArray:
    h, w = values.shape
    grid = GeoBox.from_bbox(
        (400000, 5e6, 400000 + 10 * w, 5e6 + 10 * h), "EPSG:32643", resolution=10
    )
    return xr.DataArray(values, coords=xr_coords(grid), dims=("y", "x"), name="v")


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


@settings(max_examples=15, deadline=None)
@given(PLANES, layouts(), st.booleans())
def test_write_round_trips_any_layout(values: np.ndarray, layout: str, packed: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.tif"
        out = write(_da(any_layout(values, layout)), path, dtype="int16" if packed else None)
        got = _read(path)
    want = quantize_int16(values) if packed else values
    assert out.dtype == ("int16" if packed else "float32")
    np.testing.assert_array_equal(got, want)


def test_write_bool_is_stored_as_bytes(tmp_path: Path) -> None:
    """The audit's attack: bool data gave a raw TypeError from rasterio."""
    mask = np.array([[True, False], [False, True]])
    out = write(_da(mask), tmp_path / "m.tif")
    assert out.dtype == "uint8"
    np.testing.assert_array_equal(_read(out.path), mask.astype(np.uint8))


def test_write_big_endian_packed(tmp_path: Path) -> None:
    """The audit's attack: write(dtype="int16") of ">f4" data raised a numba TypingError."""
    out = write(_da(np.array([[0.1, np.nan]], ">f4")), tmp_path / "b.tif", dtype="int16")
    np.testing.assert_array_equal(_read(out.path), [[1000, -32768]])


@pytest.mark.parametrize(
    "options",
    [
        {"level": 99},
        {"level": 0},
        {"compress": "zstd", "level": 23},
        {"compress": "lzw"},
        {"blocksize": 100},
        {"scale": 0.0},
        {"offset": float("nan")},
        {"dtype": "no-such-type"},
        {"levle": 3},
    ],
)
def test_write_refuses_bad_options_before_touching_disk(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    with pytest.raises(InputDataError):
        write(_da(np.ones((2, 2), np.float32)), tmp_path / "o.tif", **options)
    assert list(tmp_path.iterdir()) == []

"""write(): COGs from numpy and dask, valid, exact georeferencing, packed int16, nothing partial."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from unittest import mock

import dask.array as dsa
import numpy as np
import pytest
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from rio_cogeo.cogeo import cog_validate

from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.errors import InputDataError, WriteError
from eo_pipeline.io.writing import WriteOptions, write


def _grid(h: int, w: int) -> GeoBox:
    return GeoBox.from_bbox(
        (400000, 5000000, 400000 + w * 10, 5000000 + h * 10), "EPSG:32643", resolution=10
    )


def _da(h: int = 700, w: int = 900, chunks: int | None = 256, name: str = "NDVI") -> xr.DataArray:
    rng = np.random.default_rng(0)
    data = rng.random((h, w), dtype=np.float32) * 2 - 1
    data[:5, :5] = np.nan
    arr = dsa.from_array(data, chunks=chunks) if chunks else data
    return xr.DataArray(
        arr, coords=xr_coords(_grid(h, w)), dims=("y", "x"), name=name, attrs={"units": "1"}
    )


@pytest.mark.parametrize("chunks", [None, 256])
def test_float32_cog_round_trip(tmp_path: Path, chunks: int | None) -> None:
    da = _da(chunks=chunks)
    out = write(da, tmp_path / "ndvi.tif")
    valid, errors, _ = cog_validate(str(out.path))
    assert valid, errors
    assert os.listdir(tmp_path) == ["ndvi.tif"]
    with rasterio.open(out.path) as src:
        assert src.dtypes[0] == "float32"
        assert src.crs.to_epsg() == 32643
        assert tuple(src.transform)[:6] == tuple(da.odc.geobox.affine)[:6]
        assert src.descriptions == ("NDVI",)
        assert src.profile["compress"] == "deflate"
        assert src.overviews(1)
        np.testing.assert_array_equal(src.read(1), np.asarray(da.values), strict=False)
    assert out.checksum == file_checksum(out.path)
    assert out.size == out.path.stat().st_size


def test_dataset_packed_int16(tmp_path: Path) -> None:
    a, b = _da(name="B1"), _da(name="B2")
    ds = xr.Dataset({"B1": a, "B2": b * np.float32(0.5)})
    out = write(ds, tmp_path / "refl.tif", WriteOptions(dtype="int16", compress="zstd"))
    assert cog_validate(str(out.path))[0]
    with rasterio.open(out.path) as src:
        assert src.count == 2 and src.dtypes == ("int16", "int16")
        assert src.nodata == -32768 and src.scales == (1e-4, 1e-4)
        assert src.descriptions == ("B1", "B2")
        got = src.read(2).astype(np.float32) * np.float32(1e-4)
        ref = np.asarray(b.values) * np.float32(0.5)
        ok = np.isfinite(ref)
        assert np.abs(got[ok] - ref[ok]).max() <= 0.5e-4 + 1e-7
        assert (src.read(2)[~ok] == -32768).all()


def test_uint16_keeps_dtype_and_predictor(tmp_path: Path) -> None:
    data = (np.arange(300 * 300, dtype=np.uint32) % 4096).astype(np.uint16).reshape(300, 300)
    da = xr.DataArray(
        data, coords=xr_coords(_grid(300, 300)), dims=("y", "x"), name="B1", attrs={"nodata": 0}
    )
    out = write(da, tmp_path / "dn.tif")
    with rasterio.open(out.path) as src:
        assert src.dtypes[0] == "uint16" and src.nodata == 0
        assert src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "2"
        np.testing.assert_array_equal(src.read(1), data)


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    da = _da()
    with mock.patch(
        "rasterio.shutil.copy", side_effect=rasterio.errors.RasterioIOError("disk full")
    ):
        with pytest.raises(WriteError, match="disk full"):
            write(da, tmp_path / "x.tif")
    assert os.listdir(tmp_path) == []


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="does not exist"):
        write(_da(), tmp_path / "missing" / "x.tif")
    bare = xr.DataArray(np.zeros((4, 4), np.float32), dims=("y", "x"))
    with pytest.raises(InputDataError, match="CRS"):
        write(bare, tmp_path / "x.tif")
    with pytest.raises(InputDataError, match="time steps"):
        write(_da().expand_dims(time=2), tmp_path / "x.tif")
    assert os.listdir(tmp_path) == []


def test_disk_full_mid_store_leaves_nothing(tmp_path: Path) -> None:
    """ENOSPC after a few chunk windows were written: WriteError, no temporaries, no product."""
    import errno

    from eo_pipeline.io import writing as write_module

    real = write_module._WindowWriter.__setitem__
    calls = {"n": 0}

    def filling_up(self, key, value):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, key, value)

    with mock.patch.object(write_module._WindowWriter, "__setitem__", filling_up):
        with pytest.raises(WriteError, match="No space left"):
            write(_da(chunks=128), tmp_path / "full.tif")
    assert calls["n"] > 3
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("h", "w", "factors"),
    [
        (700, 900, [2]),
        (2100, 1200, [2, 4, 8]),
        (512, 300, []),
        (1025, 1025, [2]),
        (2049, 100, [2, 4]),
        (513, 2, [2]),
    ],
)
def test_overview_levels_as_gdal_auto(tmp_path: Path, h: int, w: int, factors: list[int]) -> None:
    """Our factors are those GDAL's own COG driver picks with OVERVIEWS=AUTO."""
    import rasterio.shutil

    from eo_pipeline.io.writing import _overview_factors

    assert _overview_factors(h, w, 512) == factors
    src = tmp_path / "src.tif"
    with rasterio.open(src, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8") as dst:
        dst.write(np.zeros((1, h, w), np.uint8))
    rasterio.shutil.copy(str(src), str(tmp_path / "cog.tif"), driver="COG", OVERVIEWS="AUTO")
    with rasterio.open(tmp_path / "cog.tif") as cog:
        assert cog.overviews(1) == factors


def test_overviews_are_block_means_with_nodata_honoured(tmp_path: Path) -> None:
    """Overviews of a multi-band packed product: nodata-aware 2x2 means at every level."""
    h, w = 1200, 1100
    rng = np.random.default_rng(1)
    bands = []
    for name in ("B1", "B2", "B3"):
        data = rng.random((h, w), dtype=np.float32) * np.float32(0.6)
        data[100:300, 200:260] = np.nan  # a nodata patch
        bands.append(
            xr.DataArray(
                dsa.from_array(data, chunks=400),
                coords=xr_coords(_grid(h, w)),
                dims=("y", "x"),
                name=name,
            )
        )
    ds = xr.Dataset({b.name: b for b in bands})
    out = write(ds, tmp_path / "refl.tif", WriteOptions(dtype="int16"))
    assert cog_validate(str(out.path))[0]
    with rasterio.open(out.path) as src:
        assert src.overviews(1) == [2, 4] and src.overviews(3) == [2, 4]
        full = src.read().astype(np.float64)
    full[full == -32768] = np.nan
    for level, f in enumerate((2, 4)):
        with rasterio.open(out.path, overview_level=level) as ovr:
            got = ovr.read().astype(np.float64)
        got[got == -32768] = np.nan
        blocks = full[:, : h // f * f, : w // f * f].reshape(3, h // f, f, w // f, f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nodata blocks: NaN
            want = np.nanmean(blocks, axis=(2, 4))  # NaN only where the whole block is nodata
        inner = got[:, : h // f, : w // f]
        np.testing.assert_array_equal(np.isnan(inner), np.isnan(want))
        ok = np.isfinite(want)
        # each level is averaged from the one before in stored integers: rounding adds up
        assert np.abs(inner[ok] - want[ok]).max() <= 0.5 * level + 0.5 + 1e-9


def test_the_cog_copy_bounds_gdal_cache_in_bytes() -> None:
    """rasterio passes an integer GDAL_CACHEMAX to GDALSetCacheMax64 (bytes): the old value
    64 meant a 64-byte block cache, process-wide, and left behind by concurrent writers it
    made every later JPEG 2000 read ~100x slower."""
    import ctypes
    import glob

    from eo_pipeline.io.writing import _GDAL_CACHE_BYTES

    libs = glob.glob(os.path.join(os.path.dirname(rasterio.__file__) + ".libs", "libgdal*"))
    if not libs:
        pytest.skip("rasterio without its bundled libgdal: cannot ask GDAL its cache size")
    gdal = ctypes.CDLL(libs[0])
    gdal.GDALGetCacheMax64.restype = ctypes.c_int64
    with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_BYTES):
        assert gdal.GDALGetCacheMax64() == _GDAL_CACHE_BYTES >= 16 * 2**20

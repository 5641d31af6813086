"""The ``.eo`` accessor: registration on import, wiring to the public functions, the chain."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import eo_pipeline
from eo_pipeline.errors import InputDataError
from eo_pipeline.steps.compositing import composite
from eo_pipeline.steps.pansharpening import pansharpen


def _series() -> xr.Dataset:
    rng = np.random.default_rng(0)
    t = pd.date_range("2024-06-01", periods=4, freq="8D")
    coords = {"time": t, "y": 100.0 - np.arange(8) * 4 - 2, "x": np.arange(8) * 4.0 + 2}
    bands = {
        b: (("time", "y", "x"), rng.random((4, 8, 8), dtype=np.float32), {"common_name": c})
        for b, c in (("B1", "green"), ("B2", "red"), ("B3", "nir"))
    }
    mask = (rng.random((4, 8, 8)) < 0.3).astype(np.uint8) * np.uint8(2)  # cloud bit
    return xr.Dataset({**bands, "mask": (("time", "y", "x"), mask)}, coords=coords)


def test_import_eo_pipeline_registers_the_accessor() -> None:
    code = "import eo_pipeline, xarray as xr; print(type(xr.Dataset().eo).__name__, type(xr.DataArray(1).eo).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["EOAccessor", "EOAccessor"]


def test_composite_and_pansharpen_methods_call_the_public_functions() -> None:
    ds = _series().chunk({"y": 4})
    via = ds.eo.composite("max_ndvi")
    direct = composite(ds, "max_ndvi")
    xr.testing.assert_identical(via.compute(), direct.compute())
    assert via["B2"].chunks is not None  # still lazy
    da = ds["B2"].eo.composite("median", mask=ds["mask"] > 0)
    assert isinstance(da, xr.DataArray) and da.name == "B2"

    ms = ds.isel(time=0, drop=True)[["B1", "B2", "B3"]]
    pan = xr.DataArray(
        np.full((32, 32), 0.5, np.float32),
        dims=("y", "x"),
        coords={"y": 100.0 - np.arange(32) - 0.5, "x": np.arange(32) + 0.5},
    )
    xr.testing.assert_identical(
        ms.eo.pansharpen(pan, "ihs").compute(), pansharpen(ms, pan, "ihs").compute()
    )


def test_mask_travels_through_compute_indices_into_composite() -> None:
    ds = _series()
    idx = ds.eo.compute_indices(["NDVI"])
    assert set(idx.data_vars) == {"NDVI", "mask"}
    xr.testing.assert_identical(idx["mask"], ds["mask"])
    out = idx.eo.composite("median")
    assert "mask" not in out
    expected = composite(idx[["NDVI"]], "median", mask=ds["mask"] > 0)
    xr.testing.assert_identical(out["NDVI"], expected["NDVI"])


def test_mask_on_a_dataarray_is_a_clear_error() -> None:
    with pytest.raises(InputDataError, match="Dataset of bands"):
        _series()["B2"].eo.mask()


def test_write_writes_a_cog(tmp_path: Path) -> None:
    import odc.geo.xr  # noqa: F401

    ds = _series().isel(time=0, drop=True)[["B2"]].odc.assign_crs("EPSG:32642")
    written = ds["B2"].eo.write(tmp_path / "b2.tif")
    assert Path(written.path).exists() and written.checksum.startswith("1220")


def _multi_date_catalog(root: Path, dates: int = 3) -> list:
    """One simulated KazEOSat-2 scene repeated at several dates (same place, same files)."""
    from eo_pipeline.simulation.simulator import simulate

    (item,) = simulate("kazeosat2", root, size=64, seed=1)
    clones = []
    for k in range(dates):
        clone = item.clone()
        clone.id = f"{item.id}_d{k}"
        clone.datetime = item.datetime + dt.timedelta(days=16 * k)
        for key, asset in clone.assets.items():
            asset.href = item.assets[key].get_absolute_href() or asset.href
        clones.append(clone)
    return clones


@pytest.mark.slow
def test_the_scientists_chain(tmp_path: Path) -> None:
    items = _multi_date_catalog(tmp_path)
    loaded = eo_pipeline.load(items, chunks=32)
    chain = (
        loaded.eo.calibrate().eo.mask().eo.compute_indices(["NDVI", "NDWI"]).eo.composite("median")
    )
    assert chain["NDVI"].chunks is not None  # nothing computed yet
    assert set(chain.data_vars) == {"NDVI", "NDWI"} and "time" not in chain.dims
    result = chain.compute()
    # every date is the same scene: the median is that scene's index where the mask is clear
    single = loaded.isel(time=[0]).eo.calibrate().eo.mask().eo.compute_indices(["NDVI", "NDWI"])
    from eo_pipeline.steps.compositing import invalid_bits

    valid = (single["mask"].values[0] & invalid_bits()) == 0
    for name in ("NDVI", "NDWI"):
        got = result[name].values
        np.testing.assert_array_equal(np.isfinite(got), valid & np.isfinite(single[name].values[0]))
        np.testing.assert_allclose(got[valid], single[name].values[0][valid], rtol=1e-6)

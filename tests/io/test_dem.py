"""DEM preparation: geoid -> ellipsoid (vs PROJ), SRTM tile sets, STAC DEM items, voids, coverage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from eo_pipeline.errors import DEMError
from eo_pipeline.io.dem import DEMSpec, geoid_undulation, prepare_dem
from tests.conftest import REAL_DATA

VENTOUX = REAL_DATA / "pleiades-rpc-srtm" / "shareloc_phr_ventoux"
GEOID = VENTOUX / "egm96_15.gtx"


@pytest.fixture(scope="module")
def geoid() -> Path:
    if not GEOID.is_file():
        pytest.skip(f"EGM96 grid not found at {GEOID}; set EO_PIPELINE_REAL_DATA")
    return GEOID


def _hgt(folder: Path, name: str, value: float, void: slice | None = None) -> Path:
    """An SRTM3 tile (1201 x 1201 big-endian int16) of a constant height."""
    data = np.full((1201, 1201), value, ">i2")
    if void is not None:
        data[void, void] = -32768
    path = folder / name
    data.tofile(path)
    return path


@pytest.mark.realdata
def test_geoid_undulation_matches_proj_vgridshift(geoid: Path) -> None:
    import pyproj

    lon = np.array([5.28, 0.0, -3.0094, 179.9, -179.9, 10.0, 76.9])
    lat = np.array([44.13, 0.0, 16.7758, 10.0, 10.0, -80.0, 43.2])
    ours = geoid_undulation(geoid, lon, lat)
    proj = pyproj.Transformer.from_pipeline(f"+proj=vgridshift +grids={geoid} +multiplier=1")
    _, _, theirs = proj.transform(lon, lat, np.zeros_like(lon))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    # GeographicLib's GeoidEval example (Timbuktu, EGM96): 28.7068 m
    assert ours[2] == pytest.approx(28.7068, abs=0.05)


@pytest.mark.realdata
def test_srtm_tile_set_and_stac_items_become_ellipsoidal_heights(
    tmp_path: Path, geoid: Path
) -> None:
    import pystac

    a = _hgt(tmp_path, "N44E005.hgt", 1000)
    b = _hgt(tmp_path, "N44E006.hgt", 2000)
    bounds = (5.9, 44.4, 6.1, 44.5)  # across the tiles' boundary at 6 E
    for source in (tmp_path, [a, b], [_item(a), _item(b)]):
        out = prepare_dem(DEMSpec(source, geoid=geoid), bounds, tmp_path / "out" / "dem.tif")
        with rasterio.open(out.path) as ds:
            h = ds.read(1)
            lon = ds.transform.c + (np.arange(ds.width) + 0.5) * ds.transform.a
            lat = ds.transform.f + (np.arange(ds.height) + 0.5) * ds.transform.e
        n = geoid_undulation(geoid, lon[None, :], lat[:, None])
        west, east = lon < 5.99, lon > 6.01
        np.testing.assert_allclose(h[:, west], 1000 + n[:, west], atol=1e-3)
        np.testing.assert_allclose(h[:, east], 2000 + n[:, east], atol=1e-3)
        assert "EGM96" in out.lineage and "egm96_15.gtx" in out.lineage
    assert isinstance(_item(a), pystac.Item)


def _item(path: Path) -> object:
    import datetime as dt

    import pystac

    item = pystac.Item(path.stem, None, None, dt.datetime(2000, 2, 11, tzinfo=dt.UTC), {})
    item.add_asset("data", pystac.Asset(str(path), roles=["data"]))
    return item


@pytest.mark.realdata
def test_voids_filled_or_flagged(tmp_path: Path, geoid: Path) -> None:
    _hgt(tmp_path, "N44E005.hgt", 500, void=slice(500, 700))
    bounds = (5.4, 44.4, 5.6, 44.6)  # the void is cells 500..700: 5.416..5.583 E
    with pytest.warns(RuntimeWarning, match="filled by interpolation"):
        filled = prepare_dem(DEMSpec(tmp_path, geoid=geoid), bounds, tmp_path / "out" / "f.tif")
    with rasterio.open(filled.path) as ds:
        assert (ds.read(1) != ds.nodata).all()
    assert filled.void_fraction > 0.3
    assert filled.max_height - filled.min_height < 5  # a constant DEM stays (nearly) flat
    with pytest.warns(RuntimeWarning, match="flagged"):
        flagged = prepare_dem(
            DEMSpec(tmp_path, geoid=geoid, voids="flag"), bounds, tmp_path / "out" / "g.tif"
        )
    with rasterio.open(flagged.path) as ds:
        assert (ds.read(1) == ds.nodata).mean() == pytest.approx(flagged.void_fraction, abs=0.02)


def _geotiff(path: Path, crs: str, west: float = 5.0, north: float = 45.0) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", width=100, height=100, count=1, dtype="float32",
        crs=crs, transform=from_origin(west, north, 0.01, 0.01),
    ) as ds:  # fmt: skip
        ds.write(np.full((1, 100, 100), 321.0, np.float32))
    return path


def test_unknown_vertical_datum_and_coverage_are_clear_errors(tmp_path: Path) -> None:
    tif = _geotiff(tmp_path / "dem.tif", "EPSG:4326")
    with pytest.raises(DEMError, match="vertical datum unknown"):
        prepare_dem(DEMSpec(tif), (5.2, 44.2, 5.4, 44.4), tmp_path / "o.tif")
    with pytest.raises(DEMError, match="vertical_datum='wgs'"):
        prepare_dem(DEMSpec(tif, vertical_datum="wgs"), (5.2, 44.2, 5.4, 44.4), tmp_path / "o.tif")
    ok = prepare_dem(
        DEMSpec(tif, vertical_datum="ellipsoid"), (5.2, 44.2, 5.4, 44.4), tmp_path / "o.tif"
    )
    assert (ok.min_height, ok.max_height) == (321.0, 321.0)
    with pytest.raises(DEMError, match=r"its east part \(lon 6\.00"):
        prepare_dem(
            DEMSpec(tif, vertical_datum="ellipsoid"), (5.8, 44.2, 6.3, 44.4), tmp_path / "p.tif"
        )
    assert not (tmp_path / "p.tif").exists()
    with pytest.raises(DEMError, match=r"geoid grid /no/grid\.gtx does not exist"):
        prepare_dem(
            DEMSpec(tif, vertical_datum="egm96", geoid="/no/grid.gtx"),
            (5.2, 44.2, 5.4, 44.4),
            tmp_path / "q.tif",
        )


def test_dem_item_file_pointing_outside_its_folder_is_refused(tmp_path: Path) -> None:
    """Issue #16 item 2's sibling: a DEM STAC item on disk is a catalog like any other."""
    import json

    from eo_pipeline.errors import InputDataError

    tile = _hgt(tmp_path, "N44E005.hgt", 1000)
    item = _item(tile)
    (tmp_path / "dem").mkdir()
    doc = item.to_dict(include_self_link=False)  # type: ignore[attr-defined]
    (tmp_path / "dem" / "tile.json").write_text(json.dumps(doc))
    with pytest.raises(InputDataError, match=r"item 'N44E005' asset 'data': .* points outside"):
        prepare_dem(DEMSpec(tmp_path / "dem" / "tile.json"), (5.4, 44.4, 5.6, 44.6),
                    tmp_path / "out.tif")  # fmt: skip
    assert not (tmp_path / "out.tif").exists()


def test_a_geographic_dem_is_copied_on_its_own_grid_not_resampled(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    heights = rng.uniform(800, 1600, (100, 100)).astype(np.float32)  # rough: resampling shows
    path = tmp_path / "dem.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=100, height=100, count=1, dtype="float32",
        crs="EPSG:4326", transform=from_origin(5.0, 45.0, 0.01, 0.01),
    ) as ds:  # fmt: skip
        ds.write(heights, 1)
    out = prepare_dem(
        DEMSpec(path, vertical_datum="ellipsoid"),
        (5.2137, 44.2071, 5.4033, 44.4),
        tmp_path / "o.tif",
    )
    with rasterio.open(out.path) as ds:
        t, got = ds.transform, ds.read(1)
    col, row = round((t.c - 5.0) / 0.01), round((45.0 - t.f) / 0.01)
    assert (t.c - 5.0) / 0.01 == pytest.approx(col, abs=1e-6)  # snapped to the source grid
    assert (45.0 - t.f) / 0.01 == pytest.approx(row, abs=1e-6)
    np.testing.assert_array_equal(got, heights[row : row + got.shape[0], col : col + got.shape[1]])

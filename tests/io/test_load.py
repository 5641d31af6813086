"""eo_pipeline.io.loading: lazy, native dtype, tile-aligned chunks, attrs and coords for later steps."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import dask.array as da
import numpy as np
import pystac
import pytest
import rasterio

from eo_pipeline.catalogs.stac import AssetSpec, build_item
from eo_pipeline.catalogs.store import add_items, read_items
from eo_pipeline.errors import BandError, CatalogError, InputDataError
from eo_pipeline.io.ingestion import ingest
from eo_pipeline.io.loading import _default_chunks, load
from tests.catalogs.stac_helpers import toy_item, toy_meta, write_band
from tests.conftest import LANDSAT_ID

LATER = dt.datetime(2024, 6, 1, 6, 0, tzinfo=dt.UTC)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """Two Landsat-8-like L1 scenes of one place; the second with other radiance_mult."""
    first = toy_item(tmp_path / "a")
    meta = toy_meta(LATER, "TOY_0002")
    cal = {b: dataclasses.replace(c, radiance_mult=0.02) for b, c in meta.bands.items()}
    meta = meta.replace(bands=cal, sun_elevation=60.0)
    folder = tmp_path / "b"
    folder.mkdir()
    specs = [
        AssetSpec(b, write_band(folder / f"TOY_0002_{b}.TIF", 2000), bands=(b,))
        for b in ("B4", "B5")
    ]
    add_items(tmp_path / "cat", [first, build_item(meta, specs)])
    return tmp_path / "cat"


def test_lazy_native_dtype_attrs_and_coords(catalog: Path) -> None:
    ds = load(catalog, bands=["red", "B5"], chunks=32)
    assert list(ds.data_vars) == ["B4", "B5"]
    assert ds.B4.dims == ("time", "y", "x") and ds.B4.dtype == np.uint16
    assert isinstance(ds.B4.data, da.Array) and ds.B4.chunks == ((1, 1), (32, 32), (32, 32))
    assert ds.sun_elevation.values.tolist() == [55.0, 60.0]
    assert ds.earth_sun_distance.dtype == np.float64
    attrs = ds.B4.attrs
    assert attrs["band"] == "B4" and attrs["common_name"] == "red" and attrs["units"] == "DN"
    assert (attrs["nodata"], attrs["saturation"]) == (0, 65535)
    assert attrs["center_wavelength"] == 0.655
    np.testing.assert_array_equal(attrs["radiance_mult"], [0.01, 0.02])  # differs per time
    assert attrs["radiance_add"] == -50.0  # equal for both: a scalar
    assert ds.attrs == {"sensor": "landsat8", "processing_level": "L1TP"}
    assert ds.odc.crs.epsg == 32642
    values = ds.B4.values
    assert values.dtype == np.uint16 and values[0, 5, 5] == 1000 and values[1, 5, 5] == 2000


def test_default_bands_and_sources(catalog: Path) -> None:
    items = list(read_items(catalog))
    for source in (catalog / "catalog.json", pystac.ItemCollection(items), iter(items)):
        ds = load(source)
        assert list(ds.data_vars) == ["B4", "B5"] and ds.sizes["time"] == 2
    one = load(catalog / "landsat8-l1tp" / "TOY_0001")
    assert one.sizes["time"] == 1


def test_default_chunks_follow_tiles() -> None:
    assert _default_chunks((512, 512)) == {"y": 2048, "x": 2048}
    assert _default_chunks((256, 1024)) == {"y": 2048, "x": 2048}
    assert _default_chunks((0, 0)) == {"y": 2048, "x": 2048}  # striped file: 4 x 512
    assert _default_chunks((4096, 4096)) == {"y": 4096, "x": 4096}


def test_errors(catalog: Path, tmp_path: Path) -> None:
    with pytest.raises(BandError, match=r"no band 'B99'.*B4 \(red\)"):
        load(catalog, bands=["B99"])
    with pytest.raises(InputDataError, match=r"item 'TOY_0001' has no asset for band 'B9'"):
        load(catalog, bands=["cirrus"])
    empty = tmp_path / "empty"
    pystac.Catalog("empty", "nothing").normalize_and_save(
        str(empty), pystac.CatalogType.SELF_CONTAINED
    )
    with pytest.raises(CatalogError, match="no STAC items"):
        load(empty)
    b5 = catalog / "landsat8-l1tp" / "TOY_0002" / "TOY_0002_B5.TIF"
    b5.unlink()
    b5.write_bytes(b"not a tiff" * 10)
    with pytest.raises(InputDataError, match=r"item 'TOY_0002' band 'B5'.*not a readable raster"):
        load(catalog)
    b5.unlink()
    with pytest.raises(InputDataError, match=r"item 'TOY_0002' band 'B5'.*does not exist"):
        load(catalog)


def test_mixed_sensors(catalog: Path, tmp_path: Path) -> None:
    items = list(read_items(catalog))
    items[1].properties["eo_pipeline:sensor"] = "landsat9"
    with pytest.raises(CatalogError, match="several sensors"):
        load(items)


@pytest.mark.realdata
def test_real_scene_round_trip(landsat_dir: Path, tmp_path: Path) -> None:
    ingest(landsat_dir, tmp_path / "cat")
    ds = load(tmp_path / "cat", bands=["red", "QA_PIXEL"])
    assert ds.B4.dtype == np.uint16 and ds.QA_PIXEL.dtype == np.uint16
    assert ds.B4.chunks == ((1,), (512,), (512,))
    assert ds.B4.attrs["sr_scale"] == 2.75e-05 and ds.B4.attrs["sr_offset"] == -0.2
    assert ds.B4.attrs["radiance_mult"] == pytest.approx(0.010328)
    assert ds.QA_PIXEL.attrs["nodata"] == 1 and ds.QA_PIXEL.attrs["roles"] == ["cloud"]
    assert float(ds.sun_elevation[0]) == pytest.approx(59.49769288)
    assert float(ds.earth_sun_distance[0]) == pytest.approx(0.9835616)
    assert ds.attrs["processing_level"] == "L2SP"
    with rasterio.open(landsat_dir / f"{LANDSAT_ID}_SR_B4.TIF") as src:
        np.testing.assert_array_equal(ds.B4.values[0], src.read(1))  # native grid, no resampling


def test_multiband_asset_gets_a_band_dimension(tmp_path: Path) -> None:
    """A multi-band asset (the simulator's truth_reflectance) loads as one (time, band, y, x) variable."""
    folder = tmp_path / "a"
    folder.mkdir()
    truth = np.random.default_rng(0).random((2, 64, 64), dtype=np.float32)
    with rasterio.open(write_band(folder / "B4.tif")) as ref:
        profile = ref.profile | {"count": 2, "dtype": "float32", "nodata": float("nan")}
    with rasterio.open(folder / "truth.tif", "w", **profile) as dst:
        dst.write(truth)
    specs = [
        AssetSpec("B4", folder / "B4.tif", bands=("B4",)),
        AssetSpec(
            "truth_reflectance",
            folder / "truth.tif",
            roles=("truth",),
            bands=("B4", "B5"),
            unit="1",
        ),
    ]
    add_items(tmp_path / "cat", [build_item(toy_meta(), specs)])
    ds = load(tmp_path / "cat", bands=["red", "truth_reflectance"])
    t = ds.truth_reflectance
    assert t.dims == ("time", "band", "y", "x") and t.dtype == np.float32
    assert t.band.values.tolist() == ["B4", "B5"] and t.attrs["roles"] == ["truth"]
    np.testing.assert_array_equal(t.sel(band="B5").values[0], truth[1])
    assert ds.B4.dims == ("time", "y", "x")


def test_groupby_merges_or_keeps_items(tmp_path: Path) -> None:
    """Two scenes at one time stamp: grouped by time they are one step (first item's numbers),
    grouped by id two steps, each with its own calibration."""
    first = toy_item(tmp_path / "a", "TOY_A")
    meta = toy_meta(product_id="TOY_B")
    meta = meta.replace(
        bands={b: dataclasses.replace(c, radiance_mult=0.02) for b, c in meta.bands.items()}
    )
    folder = tmp_path / "b"
    folder.mkdir()
    specs = [
        AssetSpec(b, write_band(folder / f"TOY_B_{b}.TIF", 2000), bands=(b,)) for b in ("B4", "B5")
    ]
    add_items(tmp_path / "cat", [first, build_item(meta, specs)])
    merged = load(tmp_path / "cat")
    assert merged.sizes["time"] == 1 and merged.B4.attrs["radiance_mult"] == 0.01
    apart = load(tmp_path / "cat", groupby="id")
    assert apart.sizes["time"] == 2
    np.testing.assert_array_equal(apart.B4.attrs["radiance_mult"], [0.01, 0.02])
    assert apart.B4.values[1, 5, 5] == 2000


def test_package_attribute_stays_callable(catalog: Path) -> None:
    """Importing the module that defines ``load`` leaves ``eo_pipeline.load`` the function."""
    import eo_pipeline
    import eo_pipeline.io.loading as module

    assert module.DEFAULT_CHUNK == 2048
    assert list(eo_pipeline.load(catalog, bands="red").data_vars) == ["B4"]

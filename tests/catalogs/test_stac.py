"""STAC item builder and the self-contained catalog store."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pystac
import pytest

from eo_pipeline import __version__
from eo_pipeline.catalogs.stac import EXTENSION_URIS, AssetSpec, build_item
from eo_pipeline.catalogs.store import add_items, read_items
from eo_pipeline.catalogs.validation import schemas_dir
from eo_pipeline.errors import BandError, CatalogError, InputDataError
from tests.catalogs.stac_helpers import toy_item, toy_meta, write_band


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_item_properties_and_assets(tmp_path: Path) -> None:
    item = toy_item(tmp_path)
    p = item.properties
    assert item.collection_id == "landsat8-l1tp" and item.id == "TOY_0001"
    assert p["platform"] == "landsat-8" and p["instruments"] == ["oli"]
    assert p["view:sun_elevation"] == 55.0 and p["view:sun_azimuth"] == 150.0
    assert p["processing:level"] == "L1TP"
    assert p["processing:software"] == {"eo-pipeline": __version__}
    assert p["proj:code"] == "EPSG:32642"
    assert p["eo:cloud_cover"] == 12.5 and p["eo_pipeline:sensor"] == "landsat8"
    assert p["sat:relative_orbit"] == 153 and p["sat:orbit_state"] == "descending"
    assert p["eo_pipeline:earth_sun_distance"] == 1.0075
    assert set(item.stac_extensions) == set(EXTENSION_URIS.values())

    b4 = item.assets["B4"].to_dict()
    assert b4["roles"] == ["data"] and b4["type"] == pystac.MediaType.COG
    assert b4["eo:bands"][0] == {
        "name": "B4",
        "common_name": "red",
        "center_wavelength": 0.655,
        "full_width_half_max": 0.037,
        "solar_illumination": 1569.4,
    }
    assert b4["raster:bands"][0]["data_type"] == "uint16" and b4["raster:bands"][0]["nodata"] == 0
    assert b4["proj:shape"] == [64, 64]
    assert b4["proj:transform"] == [30.0, 0.0, 500000.0, 0.0, -30.0, 5000000.0]
    assert b4["proj:bbox"] == [500000.0, 5000000.0 - 64 * 30, 500000.0 + 64 * 30, 5000000.0]
    assert b4["eo_pipeline:calibration"]["radiance_mult"] == 0.01
    data = (tmp_path / "TOY_0001_B4.TIF").read_bytes()
    assert b4["file:size"] == len(data)
    assert b4["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()
    mtl = item.assets["MTL_json"].to_dict()
    assert mtl["type"] == "application/json" and mtl["roles"] == ["metadata"]
    assert "raster:bands" not in mtl


def test_declared_extension_schemas_exist_locally() -> None:
    root = schemas_dir()
    if root is None:
        pytest.skip("no local STAC schemas")
    for uri in EXTENSION_URIS.values():
        ext, version = uri.split("/")[3:5]
        assert (root / ext / version / "schema.json").is_file(), uri


def test_overrides_scale_offset_nodata(tmp_path: Path) -> None:
    path = write_band(tmp_path / "b.tif", nodata=None, driver="GTiff")
    spec = AssetSpec("B4", path, bands=("B4",), scale=2.75e-05, offset=-0.2, unit="1")
    rb = build_item(toy_meta(), [spec]).assets["B4"].extra_fields["raster:bands"][0]
    assert rb["scale"] == 2.75e-05 and rb["offset"] == -0.2 and rb["unit"] == "1"
    assert rb["nodata"] == 0  # the sensor band's nodata when the file declares none
    asset = build_item(toy_meta(), [spec]).assets["B4"]
    assert asset.media_type == pystac.MediaType.GEOTIFF  # striped GeoTIFF is not a COG


def test_bad_assets(tmp_path: Path) -> None:
    good = write_band(tmp_path / "b.tif")
    with pytest.raises(BandError, match="B99"):
        build_item(toy_meta(), [AssetSpec("B99", good, bands=("B99",))])
    with pytest.raises(BandError, match="common name"):
        build_item(toy_meta(), [AssetSpec("red", good, bands=("red",))])
    with pytest.raises(InputDataError, match=r"1 band.*declares 2"):
        build_item(toy_meta(), [AssetSpec("x", good, bands=("B4", "B5"))])
    garbage = tmp_path / "g.TIF"
    garbage.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(InputDataError, match=r"g\.TIF is not a readable raster"):
        build_item(toy_meta(), [AssetSpec("B4", garbage, bands=("B4",))])
    with pytest.raises(InputDataError, match="does not exist"):
        build_item(toy_meta(), [AssetSpec("B4", tmp_path / "none.tif", bands=("B4",))])
    with pytest.raises(CatalogError, match="duplicate asset keys"):
        build_item(toy_meta(), [AssetSpec("B4", good, bands=("B4",))] * 2)


def test_add_items_layout_relative_and_merge(tmp_path: Path) -> None:
    cat = tmp_path / "cat"
    (written,) = add_items(cat, [toy_item(tmp_path / "a")])
    folder = cat / "landsat8-l1tp" / "TOY_0001"
    assert written.get_self_href() == str(folder / "TOY_0001.json")
    raw = json.loads((folder / "TOY_0001.json").read_text())
    assert raw["assets"]["B4"]["href"] == "./TOY_0001_B4.TIF"
    assert {link["rel"]: link["href"] for link in raw["links"]} == {
        "root": "../../catalog.json",
        "parent": "../collection.json",
        "collection": "../collection.json",
    }
    assert (folder / "TOY_0001_B4.TIF").read_bytes() == (
        tmp_path / "a" / "TOY_0001_B4.TIF"
    ).read_bytes()

    later = dt.datetime(2024, 8, 2, 6, 0, tzinfo=dt.UTC)
    add_items(cat, [toy_item(tmp_path / "b", "TOY_0002", later)], asset_mode="copy")
    coll = json.loads((cat / "landsat8-l1tp" / "collection.json").read_text())
    assert coll["extent"]["temporal"]["interval"] == [
        ["2024-05-01T06:00:00Z", "2024-08-02T06:00:00Z"]
    ]
    assert sorted(link["href"] for link in coll["links"] if link["rel"] == "item") == [
        "./TOY_0001/TOY_0001.json",
        "./TOY_0002/TOY_0002.json",
    ]
    catalog = pystac.Catalog.from_file(str(cat / "catalog.json"))
    assert catalog.catalog_type == pystac.CatalogType.SELF_CONTAINED
    assert sorted(i.id for i in catalog.get_items(recursive=True)) == ["TOY_0001", "TOY_0002"]
    assert sorted(i.id for i in read_items(cat)) == ["TOY_0001", "TOY_0002"]


def test_add_items_refuses_duplicates_and_leaves_catalog_unchanged(tmp_path: Path) -> None:
    cat = tmp_path / "cat"
    add_items(cat, [toy_item(tmp_path / "a")])
    before = _tree(cat)
    with pytest.raises(CatalogError, match=r"already in.*overwrite=True"):
        add_items(cat, [toy_item(tmp_path / "b")])
    broken = toy_item(tmp_path / "c", "TOY_0003")
    (tmp_path / "c" / "TOY_0003_B5.TIF").unlink()  # vanishes between build and write
    with pytest.raises(InputDataError, match="B5"):
        add_items(cat, [broken])
    assert _tree(cat) == before
    add_items(cat, [toy_item(tmp_path / "d")], overwrite=True)
    assert len(list(read_items(cat))) == 1

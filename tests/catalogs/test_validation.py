"""Offline validation against the official schemas, and the checks schemas cannot make."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eo_pipeline.catalogs.store import add_items
from eo_pipeline.catalogs.validation import schemas_dir, validate
from eo_pipeline.errors import CatalogError, StacValidationError
from tests.catalogs.stac_helpers import toy_item

pytestmark = pytest.mark.skipif(
    schemas_dir() is None, reason="no local STAC schemas (shared/stac-schemas)"
)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    add_items(tmp_path / "cat", [toy_item(tmp_path / "src")])
    return tmp_path / "cat"


def _item_file(catalog: Path) -> Path:
    return catalog / "landsat8-l1tp" / "TOY_0001" / "TOY_0001.json"


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_valid_catalog_offline_with_every_extension(catalog: Path) -> None:
    report = validate(catalog, check_assets=True)
    assert report.counts == {"Catalog": 1, "Collection": 1, "Item": 1}
    exts = {u.split("/")[3] for u in report.schemas if "stac-extensions" in u}
    assert exts == {"eo", "raster", "projection", "view", "sat", "processing", "file"}
    assert report.extra["fetched"] == []  # nothing came from the network
    assert report.assets_checked == 3 and report.checksums_verified == 3
    assert "1 Item" in str(report)


def test_item_and_collection_alone(catalog: Path) -> None:
    assert validate(_item_file(catalog)).counts == {"Item": 1}
    assert validate(catalog / "landsat8-l1tp").counts == {"Collection": 1, "Item": 1}


def test_schema_error_names_file_json_path_and_rule(catalog: Path) -> None:
    item = _item_file(catalog)
    _edit(item, lambda d: d["properties"].update({"eo:cloud_cover": 150}))
    with pytest.raises(StacValidationError) as err:
        validate(catalog)
    msg = str(err.value)
    assert str(item) in msg
    assert "$.properties['eo:cloud_cover']" in msg
    assert "maximum" in msg and "eo/v1.1.0" in msg


def test_core_schema_error(catalog: Path) -> None:
    _edit(_item_file(catalog), lambda d: d["properties"].pop("datetime"))
    with pytest.raises(StacValidationError, match=r"\$\.properties: 'datetime' is a required"):
        validate(catalog)


def test_asset_schema_error_path(catalog: Path) -> None:
    _edit(_item_file(catalog), lambda d: d["assets"]["B4"].update({"proj:shape": [64]}))
    with pytest.raises(StacValidationError, match=r"\$\.assets\.B4\['proj:shape'\].*minItems"):
        validate(catalog)


def test_broken_link(catalog: Path) -> None:
    (catalog / "landsat8-l1tp" / "TOY_0001" / "TOY_0001.json").rename(catalog / "moved.json")
    with pytest.raises(
        StacValidationError, match=r"collection\.json: \$\.links\[2\]\.href: item link"
    ):
        validate(catalog)


def test_missing_asset_and_bad_checksum(catalog: Path) -> None:
    asset = catalog / "landsat8-l1tp" / "TOY_0001" / "TOY_0001_MTL.json"
    asset.unlink()
    asset.write_text('{"LANDSAT_METADATA_FILE": []}')  # same size, other bytes
    validate(catalog)  # sizes match, checksums not asked for
    with pytest.raises(StacValidationError, match=r"\$\.assets\.MTL_json\.file:checksum"):
        validate(catalog, check_assets=True)
    asset.unlink()
    with pytest.raises(StacValidationError, match=r"\$\.assets\.MTL_json\.href: asset file"):
        validate(catalog)


def test_not_json_and_not_stac(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{nope")
    with pytest.raises(StacValidationError, match="not valid JSON"):
        validate(bad)
    with pytest.raises(CatalogError, match=r"no catalog\.json"):
        validate(tmp_path)


def test_schemas_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EO_PIPELINE_STAC_SCHEMAS", str(tmp_path))
    assert schemas_dir() == tmp_path

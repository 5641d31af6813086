"""The static catalog store: asset modes, all-or-nothing adds, reading back, atomic JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eo_pipeline.catalogs.store import add_items, find_stac_file, read_items, write_json_atomic
from eo_pipeline.errors import CatalogError, InputDataError
from tests.catalogs.stac_helpers import toy_item


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("mode", ["link", "copy", "move"])
def test_asset_modes(tmp_path: Path, mode: str) -> None:
    item = toy_item(tmp_path / "src", "TOY_1")
    src = tmp_path / "src" / "TOY_1_B4.TIF"
    before = src.stat()
    (written,) = add_items(tmp_path / "cat", [item], asset_mode=mode)  # type: ignore[arg-type]
    dst = Path(written.assets["B4"].get_absolute_href() or "")
    assert dst.parent == tmp_path / "cat" / written.collection_id / "TOY_1"
    assert written.assets["B4"].href == "./TOY_1_B4.TIF"
    if mode == "link":
        assert dst.stat().st_ino == before.st_ino  # a hard link: no copy of the pixels
    elif mode == "copy":
        assert dst.stat().st_ino != before.st_ino and src.exists()
    else:
        assert not src.exists() and dst.stat().st_size == before.st_size


def test_a_failing_add_leaves_the_catalog_as_it_was(tmp_path: Path) -> None:
    cat = tmp_path / "cat"
    add_items(cat, [toy_item(tmp_path / "a", "TOY_A")])
    before = {p: (cat / p).read_bytes() for p in _files(cat) if (cat / p).is_file()}
    good = toy_item(tmp_path / "b", "TOY_B")
    bad = toy_item(tmp_path / "c", "TOY_C")
    (tmp_path / "c" / "TOY_C_B5.TIF").unlink()  # an asset file gone before the add
    with pytest.raises(InputDataError, match="TOY_C_B5"):
        add_items(cat, [good, bad])
    after = {p: (cat / p).read_bytes() for p in _files(cat) if (cat / p).is_file()}
    assert after == before  # neither TOY_B nor a staging folder nor a changed collection


def test_overwrite_and_read_back(tmp_path: Path) -> None:
    cat = tmp_path / "cat"
    add_items(cat, [toy_item(tmp_path / "a", "TOY_A"), toy_item(tmp_path / "b", "TOY_B")])
    with pytest.raises(CatalogError, match="overwrite=True"):
        add_items(cat, [toy_item(tmp_path / "a2", "TOY_A")])
    add_items(cat, [toy_item(tmp_path / "a2", "TOY_A")], overwrite=True)
    ids = sorted(i.id for i in read_items(cat))
    assert ids == ["TOY_A", "TOY_B"]
    coll = next(p for p in cat.iterdir() if p.is_dir())
    assert sorted(i.id for i in read_items(coll / "collection.json")) == ids
    assert [i.id for i in read_items(coll / "TOY_B")] == ["TOY_B"]
    doc = json.loads((cat / "catalog.json").read_text())
    assert all(not link["href"].startswith("/") for link in doc["links"])  # relative links
    assert not list(cat.rglob(".*"))  # no hidden staging or temporary left


def test_find_and_write_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no such file"):
        find_stac_file(tmp_path / "missing")
    with pytest.raises(CatalogError, match=r"no catalog\.json"):
        find_stac_file(tmp_path)
    (tmp_path / "x.json").write_text('{"type": "FeatureCollection"}')
    with pytest.raises(CatalogError, match="not a STAC"):
        list(read_items(tmp_path / "x.json"))
    with pytest.raises(CatalogError, match="nowhere"):
        write_json_atomic(tmp_path / "nowhere" / "a.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]

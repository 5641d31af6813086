"""The SQLite + R*Tree index: rebuild from the static catalog, search, entitlements, paging."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pystac
import pytest
import shapely

from eo_pipeline.errors import CatalogError
from eo_pipeline.export.api.customers import Entitlement
from eo_pipeline.export.api.index import SearchQuery, SQLiteIndex, open_index
from eo_pipeline.export.api.signing import state_dir
from tests.export.api.conftest import BOB_BBOX, PUBLIC, Published

ALL = frozenset({"kazeosat1-l2", "kazeosat2-l2", PUBLIC})


def _ts(day: str) -> float:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()


@pytest.fixture(scope="module")
def index(published: Published) -> SQLiteIndex:
    return open_index(published.root)


def _ids(index: SQLiteIndex, **kw: object) -> list[str]:
    kw.setdefault("entitlement", Entitlement(ALL))
    kw.setdefault("limit", 100)
    return [d["id"] for d in index.search(SearchQuery(**kw)).items]  # type: ignore[arg-type]


def test_rebuild_indexes_collections_items_and_assets(
    published: Published, tmp_path: object
) -> None:
    index = SQLiteIndex(state_dir(published.root) / "index.sqlite")
    assert index.rebuild(published.root) == 6
    assert [c["id"] for c in index.collections()] == sorted(ALL)
    assert index.public_collections() == {PUBLIC}
    doc = index.item("kazeosat2-l2", "kazeosat2-l2-aktau-20250301", Entitlement(ALL))
    assert doc is not None
    # hierarchy links are the API's business; lineage to inputs outside the catalog is kept by id
    assert [link["rel"] for link in doc["links"]] == ["derived_from"]
    assert (
        doc["links"][0]["href"] == "urn:eo-pipeline:item:kazeosat2-l1/kazeosat2-l1-aktau-20250301"
    )
    assert "/tmp" not in str(doc)  # no server path leaks into the API
    href = doc["assets"]["B1"]["href"]
    assert href == "kazeosat2-l2/kazeosat2-l2-aktau-20250301/kazeosat2-l2-aktau-20250301_B1.tif"
    assert index.asset_owner(href) == ("kazeosat2-l2", "kazeosat2-l2-aktau-20250301")
    assert index.asset_owner(".eo-pipeline/signing.key") is None
    assert index.asset_owner("catalog.json") is None


def test_default_order_is_newest_first(index: SQLiteIndex) -> None:
    ids = _ids(index)
    assert len(ids) == 6 and ids[0] == "kazeosat2-l2-aktau-20250301"
    assert ids[-1] == "landsat8-ndvi-astana-20240501"


def test_filters(index: SQLiteIndex) -> None:
    astana = [
        "kazeosat1-l2-astana-20240801",
        "kazeosat2-l2-astana-20240610",
        "landsat8-ndvi-astana-20240501",
    ]
    assert _ids(index, bbox=(71.3, 51.0, 71.4, 51.2)) == astana
    assert _ids(
        index, collections=("kazeosat2-l2",), start=_ts("2024-07-01"), end=_ts("2024-12-31")
    ) == ["kazeosat2-l2-almaty-20240715"]
    assert _ids(index, ids=("kazeosat1-l2-shymkent-20240901", "nope")) == [
        "kazeosat1-l2-shymkent-20240901"
    ]
    assert _ids(index, intersects=shapely.Point(69.6, 42.32)) == ["kazeosat1-l2-shymkent-20240901"]
    # a bbox crossing the antimeridian covers none of Kazakhstan
    assert _ids(index, bbox=(170.0, 40.0, -170.0, 55.0)) == []
    assert len(_ids(index, bbox=(60.0, 40.0, 59.0, 55.0))) == 6  # 60E eastwards round to 59E


def test_entitlement_area_time_and_collections(index: SQLiteIndex) -> None:
    bob = Entitlement(
        frozenset({"kazeosat1-l2", "kazeosat2-l2"}),
        bbox=BOB_BBOX,
        start=_ts("2024-01-01"),
        end=_ts("2024-12-31"),
    )
    assert sorted(_ids(index, entitlement=bob)) == [
        "kazeosat1-l2-shymkent-20240901",
        "kazeosat2-l2-almaty-20240715",
    ]
    assert _ids(index, entitlement=bob, collections=(PUBLIC,)) == []
    assert index.item("kazeosat2-l2", "kazeosat2-l2-aktau-20250301", bob) is None
    assert index.item("kazeosat2-l2", "kazeosat2-l2-almaty-20240715", bob) is not None
    assert _ids(index, entitlement=Entitlement(frozenset())) == []


def test_paging_is_complete_and_disjoint(index: SQLiteIndex) -> None:
    for ent in (
        Entitlement(ALL),
        Entitlement(ALL, bbox=(40.0, 40.0, 80.0, 55.0)),
    ):  # SQL / exact path
        seen: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = index.search(SearchQuery(ent, limit=4, offset=offset, sortby=(("id", True),)))
            seen += [d["id"] for d in page.items]
            offset = page.next_offset
        assert seen == sorted(seen) and len(seen) == len(set(seen)) == 6


def test_sortby_property_and_bad_field(index: SQLiteIndex) -> None:
    ids = _ids(index, sortby=(("properties.eo:cloud_cover", False),))
    docs = [index.item(i.split("-")[0] + "-" + i.split("-")[1], i, Entitlement(ALL)) for i in ids]
    covers = [d["properties"]["eo:cloud_cover"] for d in docs if d]
    assert covers == sorted(covers, reverse=True)
    with pytest.raises(CatalogError, match="sortby"):
        _ids(index, sortby=(("x'); DROP TABLE items; --", True),))


def test_missing_catalog_is_an_error(tmp_path: object) -> None:
    with pytest.raises(CatalogError, match=r"catalog\.json"):
        open_index(str(tmp_path), rebuild=True)


def test_bbox_search_tests_footprints_not_just_bboxes(tmp_path: Path) -> None:
    """A triangle's bbox covers its empty corner; a search there must not return it."""
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    tri = {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [0, 10], [0, 0]]]}
    item = pystac.Item("tri", tri, [0, 0, 10, 10], when, {}, collection="c")
    coll = pystac.Collection("c", "d", pystac.Extent.from_items([item]))
    coll.add_item(item)
    cat = pystac.Catalog("root", "d")
    cat.add_child(coll)
    cat.normalize_and_save(str(tmp_path), pystac.CatalogType.SELF_CONTAINED)
    index = open_index(tmp_path, rebuild=True)
    ent = Entitlement(frozenset({"c"}))
    assert _ids(index, entitlement=ent, bbox=(8.0, 8.0, 9.0, 9.0)) == []
    assert _ids(index, entitlement=ent, bbox=(1.0, 1.0, 2.0, 2.0)) == ["tri"]
    assert _ids(index, entitlement=Entitlement(frozenset({"c"}), bbox=(8.0, 8.0, 9.0, 9.0))) == []


def test_an_item_across_the_antimeridian_is_indexed_and_found(tmp_path: Path) -> None:
    """Its bbox has west > east (STAC): two R*Tree boxes, found from either side; before,
    the rebuild failed with a raw rtree constraint error and the catalog could not be served."""
    import json

    geom = {"type": "MultiPolygon", "coordinates": [
        [[[179.5, 60], [180, 60], [180, 61], [179.5, 61], [179.5, 60]]],
        [[[-180, 60], [-179.5, 60], [-179.5, 61], [-180, 61], [-180, 60]]]]}  # fmt: skip
    item = {"type": "Feature", "stac_version": "1.1.0", "id": "a", "collection": "c",
            "geometry": geom, "bbox": [179.5, 60, -179.5, 61], "links": [], "assets": {},
            "properties": {"datetime": "2024-01-01T00:00:00Z"}}  # fmt: skip
    (tmp_path / "c" / "a").mkdir(parents=True)
    (tmp_path / "c" / "a" / "a.json").write_text(json.dumps(item))
    (tmp_path / "c" / "collection.json").write_text(json.dumps({
        "type": "Collection", "id": "c", "stac_version": "1.1.0", "description": "d",
        "license": "other", "links": [{"rel": "item", "href": "./a/a.json"}],
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                   "temporal": {"interval": [[None, None]]}}}))  # fmt: skip
    (tmp_path / "catalog.json").write_text(json.dumps({
        "type": "Catalog", "id": "x", "stac_version": "1.1.0", "description": "d",
        "links": [{"rel": "child", "href": "./c/collection.json"}]}))  # fmt: skip
    index = SQLiteIndex(tmp_path / "index.sqlite")
    assert index.rebuild(tmp_path) == 1
    ent = Entitlement(frozenset({"c"}))
    assert _ids(index, entitlement=ent, bbox=(179.6, 60.2, 179.9, 60.8)) == ["a"]
    assert _ids(index, entitlement=ent, bbox=(-179.9, 60.2, -179.6, 60.8)) == ["a"]
    assert _ids(index, entitlement=ent, bbox=(179.0, 59.0, -179.0, 62.0)) == ["a"]
    assert _ids(index, entitlement=ent, bbox=(0.0, 60.0, 1.0, 61.0)) == []


def test_one_item_store_for_the_catalog_index_and_the_api(
    published: Published, tmp_path: Path
) -> None:
    """Issue #18: one index implementation. The export API's index and the catalog index of
    the same catalog hold the same item rows (the same schema, filled by the same reading)
    and answer the same CQL2 filter over the same queryables with the same items."""
    import shutil
    import sqlite3

    from eo_pipeline.catalogs.index import CatalogIndex, IndexQuery

    root = tmp_path / "export"
    shutil.copytree(published.root, root)
    api = open_index(root, rebuild=True)
    catalog = CatalogIndex(root)
    catalog.rebuild()
    cols = "collection, id, href, start_ts, end_ts, cloud, props, geometry"

    def rows(path: Path) -> list[tuple[object, ...]]:
        with sqlite3.connect(path) as con:
            return sorted(con.execute(f"SELECT {cols} FROM items"))

    assert rows(api.path) == rows(catalog.path) and len(rows(api.path)) == 6
    cql2 = "eo:cloud_cover < 50 AND platform = 'kazeosat-2'"
    from eo_pipeline.catalogs.cql2_sql import parse_cql2

    ours = {
        d["id"]
        for d in api.search(SearchQuery(Entitlement(ALL), filter=parse_cql2(cql2), limit=100)).items
    }
    theirs = {p.stem for p in catalog.search(IndexQuery(filter=cql2))}
    assert ours == theirs and ours


def test_an_index_of_the_older_layout_is_rebuilt_on_opening(
    published: Published, tmp_path: Path
) -> None:
    import shutil
    import sqlite3

    root = tmp_path / "export"
    shutil.copytree(published.root, root)
    old = state_dir(root) / "index.sqlite"
    with sqlite3.connect(old) as con:  # the layout before the shared item store
        con.executescript(
            "CREATE TABLE collections (id TEXT PRIMARY KEY, public INTEGER, json TEXT);"
            "CREATE TABLE items (pk INTEGER PRIMARY KEY, collection TEXT, id TEXT, json TEXT);"
        )
    index = open_index(root)
    assert index.current() and len(_ids(index)) == 6


def _tiny_catalog(folder: Path, points: dict[str, tuple[float, float]]) -> Path:
    """A pystac catalog (absolute published hrefs) with one point item per name."""
    coll = pystac.Collection(
        "c", "d", pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]),
                                pystac.TemporalExtent([[None, None]])),
    )  # fmt: skip
    cat = pystac.Catalog("x", "d")
    cat.add_child(coll)
    for name, (lon, lat) in points.items():
        point = {"type": "Point", "coordinates": [lon, lat]}
        when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        coll.add_item(pystac.Item(name, point, [lon, lat, lon, lat], when, {}))
    cat.normalize_hrefs(str(folder))
    cat.save(pystac.CatalogType.ABSOLUTE_PUBLISHED)
    return folder


def test_entitled_area_across_the_antimeridian_is_that_area_only(tmp_path: Path) -> None:
    """Audit find: an entitlement bbox with west > east was turned into the box between
    them (the rest of the world) by item() and downloads, while search used the right one."""
    root = _tiny_catalog(tmp_path / "cat", {"fiji": (178.0, -17.0), "asia": (98.0, 10.0),
                                            "samoa": (-172.0, -13.0)})  # fmt: skip
    index = SQLiteIndex(tmp_path / "index.sqlite")
    index.rebuild(root)
    ent = Entitlement(frozenset({"c"}), bbox=(170.0, -60.0, -170.0, 60.0))
    assert sorted(_ids(index, entitlement=ent)) == ["fiji", "samoa"]
    assert index.item("c", "fiji", ent) is not None and index.item("c", "samoa", ent) is not None
    assert index.item("c", "asia", ent) is None


def test_items_reached_through_a_link_or_kept_elsewhere_are_indexed(tmp_path: Path) -> None:
    """Audit find: a catalog opened through a symlinked folder (absolute hrefs through the
    link) made the rebuild fail with a raw ValueError."""
    real = _tiny_catalog(tmp_path / "real" / "cat", {"a": (60.0, 45.0)}).parent
    (tmp_path / "link").symlink_to(real)
    _tiny_catalog(tmp_path / "link" / "cat", {"a": (60.0, 45.0)})  # hrefs through the link
    index = SQLiteIndex(tmp_path / "index.sqlite")
    assert index.rebuild(tmp_path / "link" / "cat") == 1
    assert _ids(index, entitlement=Entitlement(frozenset({"c"}))) == ["a"]


def test_nan_and_huge_integers_in_items_neither_break_the_rebuild_nor_sorting(
    tmp_path: Path,
) -> None:
    """Audit finds: a property of 2**70 made the rebuild fail (orjson's 64-bit limit) and a
    NaN (which Python's json writes) made every search sorted on a property a 500."""
    import json

    root = _tiny_catalog(tmp_path / "cat", {"a": (60.0, 45.0), "b": (61.0, 45.0)})
    for name, value in (("a", float("nan")), ("b", 2**70)):
        path = next(root.rglob(f"{name}.json"))
        doc = json.loads(path.read_text())
        doc["properties"]["custom:score"] = value
        doc["properties"]["sat:absolute_orbit"] = value
        path.write_text(json.dumps(doc))  # NaN written as Python does
    index = SQLiteIndex(tmp_path / "index.sqlite")
    assert index.rebuild(root) == 2
    ent = Entitlement(frozenset({"c"}))
    for field in ("custom:score", "sat:absolute_orbit"):
        page = index.search(SearchQuery(ent, sortby=((field, False),), limit=10))
        assert sorted(d["id"] for d in page.items) == ["a", "b"]

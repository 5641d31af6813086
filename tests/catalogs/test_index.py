"""The catalog index: planning and eo.load read only the matching items."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

import eo_pipeline as eo
from eo_pipeline.catalogs.index import INDEX_FILE, CatalogIndex, IndexQuery
from eo_pipeline.cli import main
from eo_pipeline.errors import CatalogError, FilterError


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("idx") / "cat"
    eo.simulate("kazeosat2", root, scenes=3, size=48, seed=2, revisit=True, date="2026-05-02")
    eo.simulate("kazeosat1", root, scenes=1, size=32, seed=3, date="2026-06-15")
    return root


def _ids(files: list[Path]) -> list[str]:
    return [f.stem for f in files]


def test_simulate_keeps_the_index_current_and_queries_select(catalog: Path) -> None:
    index = CatalogIndex.open(catalog)
    all_items = index.search()
    assert len(all_items) == 4 and index.count() == 4
    k2 = index.search(IndexQuery(collections=("kazeosat2-l1",)))
    assert len(k2) == 3
    first = json.loads(k2[0].read_text())
    day = first["properties"]["datetime"][:10]
    assert _ids(index.search(IndexQuery(datetime=day))) == [first["id"]]
    assert index.search(IndexQuery(datetime="2030-01-01/..")) == []
    w, s, e, n = first["bbox"]
    assert first["id"] in _ids(index.search(IndexQuery(bbox=(w, s, e, n))))
    assert index.search(IndexQuery(bbox=(-10.0, -10.0, -9.0, -9.0))) == []
    k1 = index.search(IndexQuery(query={"platform": {"eq": "kazeosat-1"}}))
    assert [json.loads(f.read_text())["collection"] for f in k1] == ["kazeosat1-l1"]
    with pytest.raises(FilterError, match="not a queryable property"):
        index.search(IndexQuery(query={"secret": {"eq": 1}}))
    with pytest.raises(FilterError, match="operator 'like'"):
        index.search(IndexQuery(query={"platform": {"like": "x"}}))


def test_load_selects_through_the_index(catalog: Path) -> None:
    ds = eo.load(
        catalog / "catalog.json", collections=["kazeosat2-l1"], datetime="2026-05-01/2026-05-06"
    )
    assert ds.sizes["time"] == 2 and ds.attrs["sensor"] == "kazeosat2"
    with pytest.raises(CatalogError, match="no item matches"):
        eo.load(catalog, collections=["kazeosat2-l1"], datetime="2031-01-01")


def test_changes_behind_its_back_are_noticed(catalog: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(catalog, root)
    index = CatalogIndex.open(root)
    before = index.count()
    # an item edited in place: re-indexed when matched
    f = index.search(IndexQuery(collections=("kazeosat1-l1",)))[0]
    doc = json.loads(f.read_text())
    doc["properties"]["platform"] = "kazeosat-1b"
    f.write_text(json.dumps(doc))
    os.utime(f, ns=(1, 1))
    assert index.search(IndexQuery(query={"platform": {"eq": "kazeosat-1b"}})) == []
    assert main(["index", "check", str(root)]) == 0  # the sweep finds edits queries cannot
    assert index.search(IndexQuery(query={"platform": {"eq": "kazeosat-1b"}})) == [f]
    doc["properties"]["platform"] = "kazeosat-1c"
    f.write_text(json.dumps(doc))
    os.utime(f, ns=(2, 2))
    # a matched item changed in place: re-indexed and the query asked again
    assert index.search(IndexQuery(collections=("kazeosat1-l1",))) == [f]
    assert index.search(IndexQuery(query={"platform": {"eq": "kazeosat-1c"}})) == [f]
    # an item unlinked from its collection by another tool: dropped at the next query
    coll = f.parent.parent / "collection.json"
    cdoc = json.loads(coll.read_text())
    cdoc["links"] = [ln for ln in cdoc["links"] if ln.get("rel") != "item"]
    coll.write_text(json.dumps(cdoc))
    assert index.search(IndexQuery(collections=("kazeosat1-l1",))) == []
    assert index.count() == before - 1


def test_corrupt_index_names_the_rebuild_command_and_rebuild_fixes_it(
    catalog: Path, tmp_path: Path, capsys
) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(catalog, root)
    (root / INDEX_FILE).write_bytes(b"not a database at all" * 10)
    with pytest.raises(CatalogError, match=r"corrupt.*eo-pipeline index rebuild"):
        CatalogIndex.open(root)
    # an item file that does not parse: named, skipped, counted
    bad = next(root.glob("kazeosat1-l1/*/*.json"))
    bad.write_text("{broken")
    assert main(["index", "rebuild", str(root)]) == 0
    out = capsys.readouterr()
    assert "indexed 3 item(s)" in out.out and "1 unreadable item file(s) skipped" in out.out
    assert str(bad) in out.err
    assert CatalogIndex.open(root).count() == 3
    con = sqlite3.connect(root / INDEX_FILE)
    assert con.execute("SELECT count(*) FROM boxes").fetchone()[0] >= 3


def test_failed_update_drops_the_index_so_the_next_query_rebuilds(
    catalog: Path, tmp_path: Path
) -> None:
    import shutil

    from eo_pipeline.catalogs.index import update_index

    root = tmp_path / "copy"
    shutil.copytree(catalog, root)
    CatalogIndex.open(root)
    update_index(root, [root / "nope" / "nope.json"])  # cannot be indexed
    assert not (root / INDEX_FILE).exists()
    assert CatalogIndex.open(root).count() == 4


def test_planning_reads_only_matches(catalog: Path, tmp_path: Path, monkeypatch) -> None:
    """Planning one period opens only the matching item files (counted at the reader's door)."""
    from eo_pipeline.workflows.plan import find_items
    from eo_pipeline.workflows.spec import load_workflow

    wf_file = tmp_path / "wf.yaml"
    wf_file.write_text(
        f"name: one-day\ninputs:\n  catalog: {catalog}/catalog.json\n"
        "  datetime: 2026-06-15\nsteps:\n  - calibrate: {to: toa_reflectance}\n"
        f"output:\n  catalog: {tmp_path}/out\n"
    )
    from eo_pipeline.workflows import plan

    opened: list[str] = []
    real = plan.read_item

    def counting(href):  # type: ignore[no-untyped-def]
        opened.append(str(href))
        return real(href)

    monkeypatch.setattr(plan, "read_item", counting)  # the one door items are read through
    items = find_items(load_workflow(wf_file))
    assert [it.collection_id for it in items] == ["kazeosat1-l1"]
    assert len(opened) == 1


def test_geoparquet_round_trip_loads_like_the_catalog(catalog: Path, tmp_path: Path) -> None:
    pytest.importorskip("stac_geoparquet")
    from eo_pipeline.catalogs.geoparquet import read_geoparquet

    out = tmp_path / "k2.parquet"
    argv = ["catalog", "export", str(catalog), "--out", str(out), "--collections", "kazeosat2-l1"]
    assert main(argv) == 0
    items = list(read_geoparquet(out))
    assert len(items) == 3 and {it.collection_id for it in items} == {"kazeosat2-l1"}
    assert all(Path(a.href).is_absolute() for it in items for a in it.assets.values())
    a = eo.load(out, bands=["B2"]).B2.values
    b = eo.load(catalog, collections=["kazeosat2-l1"], bands=["B2"]).B2.values
    assert a.dtype == b.dtype and (a == b).all()
    first = min(items, key=lambda it: it.datetime).datetime.isoformat()  # type: ignore[union-attr]
    flt = f"T_AFTER(datetime, TIMESTAMP('{first}'))"
    argv = [*argv, "--filter", flt]
    assert main(argv) == 0
    assert len(list(read_geoparquet(out))) == 2  # the three revisits but the first


def test_a_parquet_of_another_schema_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("stac_geoparquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from eo_pipeline.catalogs.geoparquet import read_geoparquet

    pq.write_table(pa.table({"name": ["a"], "value": [1]}), tmp_path / "x.parquet")
    with pytest.raises(
        CatalogError, match=r"not stac-geoparquet: no column\(s\) id, geometry, assets"
    ):
        list(read_geoparquet(tmp_path / "x.parquet"))
    (tmp_path / "y.parquet").write_text("not parquet")
    with pytest.raises(CatalogError, match="not a readable Parquet file"):
        eo.load(tmp_path / "y.parquet")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bbox": ["a", "b", "c", "d"]},
        {"bbox": [1, 2, 3]},
        {"bbox": [0, 60, 1, 50]},
        {"bbox": [0, 0, float("nan"), 1]},
        {"datetime": 20260615},
        {"datetime": "yesterday"},
        {"collections": [1, 2]},
        {"query": ["platform"]},
        {"query": {"platform": {"regex": ".*"}}},
        {"filter": "eo:cloud_cover <"},
        {"filter": "secret = 1"},
        {"filter": {"op": "=", "args": [{"property": "gsd"}, "ten"]}},
        {"filter": 42},
    ],
)
def test_malformed_selection_is_a_catalog_error(catalog: Path, kwargs) -> None:
    with pytest.raises((CatalogError, FilterError)):  # a filter's own error names the filter
        eo.load(catalog, **kwargs)


def test_non_utf8_and_huge_nesting_item_files_are_named_and_skipped(
    catalog: Path, tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(catalog, root)
    files = sorted(root.glob("kazeosat2-l1/*/*.json"))
    files[0].write_bytes(b'{"type": "Feature", "id": "\xff\xfe"}')
    files[1].write_text("[" * 100_000)
    report = CatalogIndex(root.resolve()).rebuild()
    assert report.items == 2 and len(report.skipped) == 2
    assert {s.split(":")[0] for s in report.skipped} == {str(files[0]), str(files[1])}


def test_a_locked_or_clobbered_index_is_a_catalog_error(catalog: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(catalog, root)
    index = CatalogIndex.open(root)
    (root / INDEX_FILE).write_bytes(b"\0" * 4096)  # replaced behind an open index object
    with pytest.raises(CatalogError, match="eo-pipeline index rebuild"):
        index.search()


def test_cql2_filter_selects_like_the_export_api(catalog: Path) -> None:
    """CQL2 text and JSON over the shared queryables: property, temporal and spatial terms,
    checked against the items' own JSON (the truth)."""
    index = CatalogIndex.open(catalog)
    docs = [json.loads(f.read_text()) for f in index.search()]
    by_platform = sorted(d["id"] for d in docs if d["properties"]["platform"] == "kazeosat-2")
    got = index.search(IndexQuery(filter="platform = 'kazeosat-2'"))
    assert _ids(got) == by_platform
    elev = sorted(d["properties"]["view:sun_elevation"] for d in docs)
    cut = (elev[0] + elev[-1]) / 2
    want = sorted(d["id"] for d in docs if d["properties"]["view:sun_elevation"] > cut)
    as_json = {"op": ">", "args": [{"property": "view:sun_elevation"}, cut]}
    assert sorted(_ids(index.search(IndexQuery(filter=as_json)))) == want
    k1 = next(d for d in docs if d["properties"]["platform"] == "kazeosat-1")
    lon, lat = k1["geometry"]["coordinates"][0][0]
    spatial = f"S_INTERSECTS(geometry, POINT({lon} {lat})) AND T_AFTER(datetime, TIMESTAMP('2026-06-01T00:00:00Z'))"
    assert _ids(index.search(IndexQuery(filter=spatial))) == [k1["id"]]
    loaded = eo.load(catalog, filter="platform = 'kazeosat-2'", bands=["B4"])
    assert loaded.sizes["time"] == len(by_platform)


def test_filter_items_matches_the_index(catalog: Path) -> None:
    """The in-memory evaluation (geoparquet, walked folders) agrees with the index's."""
    from eo_pipeline.catalogs.index_rows import filter_items

    index = CatalogIndex.open(catalog)
    docs = [json.loads(f.read_text()) for f in index.search()]
    text = "platform = 'kazeosat-2' AND gsd < 10"
    assert [d["id"] for d, ok in zip(docs, filter_items(docs, text), strict=True) if ok] == _ids(
        index.search(IndexQuery(filter=text))
    )


def test_item_added_behind_the_index_is_not_lost_by_a_later_add(
    catalog: Path, tmp_path: Path
) -> None:
    """A tool that adds an item file and its collection link without updating the index,
    then an ``add_items``: the index must not record the collection as current (the first
    item would be missed by every query until a rebuild)."""
    import shutil

    import pystac

    from eo_pipeline.catalogs.store import add_items

    root = tmp_path / "copy"
    shutil.copytree(catalog, root)
    CatalogIndex.open(root)
    coll = root / "kazeosat2-l1" / "collection.json"
    src = next((root / "kazeosat2-l1").glob("*/*.json"))
    doc = json.loads(src.read_text())
    for new_id in ("behind_the_back", "added_properly"):
        folder = src.parent.parent / new_id
        folder.mkdir()
        for asset in doc["assets"].values():  # keep the assets where they are
            asset["href"] = str((src.parent / asset["href"]).resolve())
        doc = dict(doc, id=new_id)
        if new_id == "behind_the_back":
            (folder / f"{new_id}.json").write_text(json.dumps(doc))
            c = json.loads(coll.read_text())
            c["links"].append({"rel": "item", "href": f"./{new_id}/{new_id}.json"})
            coll.write_text(json.dumps(c))
        else:
            folder.rmdir()
            item = pystac.Item.from_dict({**doc, "links": []})
            add_items(root, [item], asset_mode="reference")
    found = _ids(CatalogIndex.open(root).search(IndexQuery(collections=("kazeosat2-l1",))))
    assert {"behind_the_back", "added_properly"} <= set(found)


def test_rebuild_names_a_duplicated_item_id_and_keeps_the_first(
    catalog: Path, tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(catalog, root)
    coll = root / "kazeosat2-l1" / "collection.json"
    src = sorted((root / "kazeosat2-l1").glob("*/*.json"))[0]
    twin = root / "kazeosat2-l1" / "twin" / "twin.json"
    twin.parent.mkdir()
    twin.write_text(src.read_text())  # another file, the same item id
    c = json.loads(coll.read_text())
    c["links"].append({"rel": "item", "href": "./twin/twin.json"})
    coll.write_text(json.dumps(c))
    report = CatalogIndex(root.resolve()).rebuild()
    assert report.items == 4 and len(report.skipped) == 1
    assert "appears twice" in report.skipped[0]


def test_an_item_the_store_reads_is_indexed_too(catalog: Path, tmp_path: Path) -> None:
    """Review find: the store and the index had two JSON readers; an item holding a NaN (as
    Python's json writes it) loaded through the store but was skipped by the index, so a
    query left it out. One reader now: the index holds it and a query finds it."""
    import json
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(catalog, root)
    path = sorted(root.glob("kazeosat2-l1/*/*.json"))[0]
    doc = json.loads(path.read_text())
    doc["properties"]["eo_pipeline:score"] = float("nan")
    path.write_text(json.dumps(doc))
    report = CatalogIndex(root.resolve()).rebuild()
    assert not report.skipped and report.items == 4
    found = CatalogIndex(root.resolve()).search(IndexQuery(ids=(doc["id"],)))
    assert _ids(found) == [doc["id"]]
    assert eo.load(found[0])  # the store reads it as well

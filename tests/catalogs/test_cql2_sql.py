"""CQL2 -> SQLite SQL, checked against the cql2 library's own evaluator (``Expr.matches``).

Eighty synthetic items (random cloud cover, platform, gsd, time, footprint, instruments) go
through the export index; for each filter, the ids our SQL returns must equal the ids the
``cql2`` package (a separate Rust implementation of the standard) says match.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac
import pytest

from eo_pipeline.catalogs.cql2_sql import Queryable, cql2_to_sql, parse_cql2
from eo_pipeline.errors import FilterError
from eo_pipeline.export.api.customers import Entitlement
from eo_pipeline.export.api.index import SearchQuery, SQLiteIndex

cql2 = pytest.importorskip("cql2")

PLATFORMS = ["kazeosat-1", "kazeosat-2", "landsat-8", "sentinel-2a"]
FILTERS = [
    "eo:cloud_cover < 10",
    "eo:cloud_cover >= 5 AND eo:cloud_cover < 10",
    "eo:cloud_cover > 50 OR eo:cloud_cover < 10",
    "eo:cloud_cover BETWEEN 20 AND 40",
    "NOT eo:cloud_cover BETWEEN 20 AND 40",
    "eo:cloud_cover IS NULL",
    "eo:cloud_cover IS NOT NULL AND gsd <= 10",
    "platform = 'kazeosat-2'",
    "platform <> 'kazeosat-2'",
    "platform IN ('landsat-8', 'sentinel-2a')",
    "platform NOT IN ('landsat-8', 'sentinel-2a')",
    "platform LIKE 'kaz%'",
    "platform LIKE '%-_'",
    "platform NOT LIKE 'kaz%'",
    "CASEI(platform) = casei('KAZEOSAT-1')",
    "id LIKE '%1_'",
    "collection = 'synthetic'",
    "datetime > TIMESTAMP('2024-06-01T00:00:00Z')",
    "datetime <= TIMESTAMP('2024-03-15T12:00:00Z')",
    "T_INTERSECTS(datetime, INTERVAL('2024-02-01T00:00:00Z', '2024-04-01T00:00:00Z'))",
    "T_BEFORE(datetime, TIMESTAMP('2024-05-01T00:00:00Z'))",
    "T_AFTER(datetime, INTERVAL('2024-01-01T00:00:00Z', '2024-09-01T00:00:00Z'))",
    "T_DURING(datetime, INTERVAL('2024-03-01T00:00:00Z', '..'))",
    "T_DISJOINT(datetime, INTERVAL('2024-03-01T00:00:00Z', '2024-10-01T00:00:00Z'))",
    "S_INTERSECTS(geometry, POLYGON((60 40, 70 40, 70 48, 60 48, 60 40)))",
    "S_INTERSECTS(geometry, POINT(65.0 45.0))",
    "S_WITHIN(geometry, BBOX(55, 38, 75, 50))",
    "S_DISJOINT(geometry, BBOX(55, 38, 75, 50))",
    "S_INTERSECTS(geometry, BBOX(60, 40, 70, 48)) AND eo:cloud_cover < 30",
    "A_OVERLAPS(instruments, ('oli', 'tirs'))",
    "A_CONTAINS(instruments, ('oli', 'tirs'))",
    "A_CONTAINEDBY(instruments, ('msi', 'oli'))",
    "gsd > eo:cloud_cover",
    "(platform = 'landsat-8' OR platform = 'kazeosat-1') AND NOT (eo:cloud_cover > 50)",
]


def _item(i: int, rng: np.random.Generator) -> pystac.Item:
    lon, lat = float(rng.uniform(50, 85)), float(rng.uniform(40, 55))
    w, s, e, n = lon - 0.5, lat - 0.4, lon + 0.5, lat + 0.4
    platform = PLATFORMS[i % 4]
    props: dict = {
        "platform": platform,
        "gsd": [1.0, 6.5, 30.0, 10.0][i % 4],
        "instruments": [["naomi"], ["keis"], ["oli", "tirs"], ["msi"]][i % 4],
    }
    if i % 7:
        props["eo:cloud_cover"] = float(np.round(rng.uniform(0, 100), 1))
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=int(rng.integers(0, 8000)))
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    return pystac.Item(
        f"item-{i:02d}", {"type": "Polygon", "coordinates": [ring]}, [w, s, e, n], when, props
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[SQLiteIndex, list[dict]]:
    root = tmp_path_factory.mktemp("cql2")
    rng = np.random.default_rng(42)
    catalog = pystac.Catalog("cat", "synthetic items")
    collection = pystac.Collection(
        "synthetic",
        "synthetic items",
        pystac.Extent(
            pystac.SpatialExtent([[50.0, 39.0, 86.0, 56.0]]),
            pystac.TemporalExtent([[dt.datetime(2024, 1, 1, tzinfo=dt.UTC), None]]),
        ),
    )
    catalog.add_child(collection)
    for i in range(80):
        collection.add_item(_item(i, rng))
    catalog.normalize_and_save(str(root / "cat"), pystac.CatalogType.SELF_CONTAINED)
    index = SQLiteIndex(root / "index.sqlite")
    index.rebuild(root / "cat")
    docs = [json.loads(p.read_text()) for p in (root / "cat" / "synthetic").glob("*/*.json")]
    return index, docs


def _reference(text: str, doc: dict) -> bool:
    """cql2's verdict; a predicate on a missing property is unknown, i.e. not selected (SQL's
    three-valued logic; cql2 raises "could not reduce" there)."""
    try:
        return bool(cql2.parse_text(text).matches(doc))
    except Exception as err:
        assert "reduce" in str(err), err
        return False


def _ours(index: SQLiteIndex, expr: dict) -> set[str]:
    query = SearchQuery(Entitlement(frozenset({"synthetic"})), filter=expr, limit=1000)
    return {d["id"] for d in index.search(query).items}


@pytest.mark.parametrize("text", FILTERS)
def test_sql_matches_the_cql2_reference_evaluator(
    synthetic: tuple[SQLiteIndex, list[dict]], text: str
) -> None:
    index, docs = synthetic
    expected = {d["id"] for d in docs if _reference(text, d)}
    assert _ours(index, parse_cql2(text)) == expected
    as_json = parse_cql2(json.dumps(cql2.parse_text(text).to_json()), "cql2-json")
    assert _ours(index, as_json) == expected
    assert 0 < len(docs)


def test_every_literal_is_a_parameter() -> None:
    q = {"platform": Queryable("p", "string"), "id": Queryable("i", "string")}
    hostile = "x'); DROP TABLE items; --"
    quoted = hostile.replace("'", "''")
    sql, params = cql2_to_sql(parse_cql2(f"platform = '{quoted}' OR id LIKE '%;%'"), q)
    assert "DROP" not in sql and ";" not in sql and hostile in params


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("nope = 1", "not a queryable"),
        ("platform = 1", "compares a string with a number"),
        ("platform + 1 = 2", "not a supported operand"),
        ("S_INTERSECTS(platform, POINT(0 0))", "not a geometry"),
        ("T_AFTER(platform, TIMESTAMP('2024-01-01T00:00:00Z'))", "not a temporal"),
        ("ACCENTI(platform) = 'x'", "not a supported operand"),
        ("platform = ", "not valid cql2-text"),
        ("(" * 100 + "platform = 'a'" + ")" * 100, "nested deeper"),
        ("x" * 30_000, "characters long"),
    ],
)
def test_refusals_name_the_problem(text: str, words: str) -> None:
    q = {
        "platform": Queryable("p", "string"),
        "geometry": Queryable("g", "geometry"),
        "datetime": Queryable("s", "interval", end_sql="e"),
    }
    with pytest.raises(FilterError, match=words):
        cql2_to_sql(parse_cql2(text), q)


def test_parse_guesses_the_language(tmp_path: Path) -> None:
    text = parse_cql2("gsd < 10")
    assert parse_cql2(json.dumps(text)) == text == parse_cql2(text)
    with pytest.raises(FilterError, match="filter-lang"):
        parse_cql2("gsd < 10", "cql-text")

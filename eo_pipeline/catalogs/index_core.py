"""The one item store both indexes are built on: SQLite tables, bulk insert, search predicates.

Two indexes answer spatial-temporal questions about STAC items: the catalog index beside a
static catalog (:mod:`eo_pipeline.catalogs.index`, what ``eo.load`` and workflow planning
query) and the export API's search index (:mod:`eo_pipeline.export.api.index`, what
customers query). Both keep their items in the tables defined here, filled from the same
reading of an item (:func:`eo_pipeline.catalogs.index_rows.doc_values`) and searched with
the same SQL (:func:`item_clauses`, :data:`QUERYABLES` for CQL2); each adds only what its
own job needs beside them (the catalog index: the collection files' states; the export
index: the API-ready item JSON, free text, the servable asset paths).

- ``items(pk, collection, id, href, start_ts, end_ts, cloud, props, geometry, mtime_ns,
  size)``: the item's file (relative to the catalog root), its time interval (POSIX
  seconds), ``eo:cloud_cover``, the queryable properties as JSON, the footprint as GeoJSON
  and the file's ``mtime_ns``/size when indexed. Queries name the table ``i``.
- ``boxes``: an R*Tree over the item bboxes (WGS84; an item across the antimeridian has two
  boxes), so a bbox query touches only candidate rows.

Examples
--------
>>> import sqlite3
>>> con = sqlite3.connect(":memory:")
>>> con.executescript(ITEM_SCHEMA + ITEM_INDEXES) is not None
True
>>> insert_items(con, [(1, "c", "a", "c/a/a.json", 0.0, 0.0, None, "{}", None, 0, 2)],
...              [(10.0, 20.0, 40.0, 50.0, 1)])
>>> where, params = item_clauses(bbox=(15, 45, 16, 46))
>>> con.execute(f"SELECT i.id FROM items i WHERE {' AND '.join(where)}", params).fetchall()
[('a',)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eo_pipeline.catalogs.queryables import item_queryables

__all__ = [
    "ITEM_INDEXES",
    "ITEM_SCHEMA",
    "QUERYABLES",
    "bbox_clause",
    "insert_items",
    "item_clauses",
]

ITEM_SCHEMA = """
CREATE TABLE items (
    pk INTEGER PRIMARY KEY, collection TEXT NOT NULL, id TEXT NOT NULL, href TEXT NOT NULL,
    start_ts REAL, end_ts REAL, cloud REAL, props TEXT NOT NULL, geometry TEXT,
    mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL
);
CREATE VIRTUAL TABLE boxes USING rtree (bid, minx, maxx, miny, maxy, +pk INTEGER);
"""
"""The item tables (create them, bulk-insert, then create :data:`ITEM_INDEXES`)."""

ITEM_INDEXES = """
CREATE UNIQUE INDEX items_key ON items (collection, id);
CREATE INDEX items_time ON items (start_ts, end_ts);
CREATE INDEX items_href ON items (href);
"""
"""Created after a bulk insert (faster than maintaining them row by row)."""

QUERYABLES = item_queryables(lambda name: f"json_extract(i.props, '$.\"{name}\"')")
"""The CQL2 queryables over ``items i`` (the same names and meaning in both indexes and the
export API: :mod:`eo_pipeline.catalogs.queryables`)."""

_BOX = "(b.maxx >= ? AND b.minx <= ? AND b.maxy >= ? AND b.miny <= ?)"


def insert_items(
    con: Any, rows: Sequence[tuple[Any, ...]], boxes: Sequence[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (``pk`` first, then the :data:`ITEM_SCHEMA` columns in order) and their
    ``boxes`` (``minx, maxx, miny, maxy, pk``) in one statement per table."""
    con.executemany(
        "INSERT INTO items (pk, collection, id, href, start_ts, end_ts, cloud, props, "
        "geometry, mtime_ns, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    con.executemany("INSERT INTO boxes (minx, maxx, miny, maxy, pk) VALUES (?, ?, ?, ?, ?)", boxes)


def bbox_clause(bbox: Sequence[float]) -> tuple[str, list[Any]]:
    """``i.pk IN (candidates of the R*Tree)`` for a (west, south, east, north) box; west >
    east crosses the antimeridian (two ranges of longitude)."""
    w, s, e, n = (float(v) for v in bbox)
    ranges = [(w, e)] if w <= e else [(w, 180.0), (-180.0, e)]
    params: list[Any] = []
    for lo, hi in ranges:
        params += [lo, hi, s, n]
    ors = " OR ".join([_BOX] * len(ranges))
    return f"i.pk IN (SELECT b.pk FROM boxes b WHERE {ors})", params


def item_clauses(
    *,
    collections: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    start: float | None = None,
    end: float | None = None,
    bbox: Sequence[float] | None = None,
) -> tuple[list[str], list[Any]]:
    """SQL conditions on ``items i`` (to be joined with AND) and their parameters: any of
    ``collections``, any of ``ids``, a time span touching ``start``..``end`` (POSIX
    seconds), a bbox touching ``bbox``; ``None`` leaves a criterion out."""
    where: list[str] = []
    params: list[Any] = []
    if collections is not None:
        where.append(f"i.collection IN ({','.join('?' * len(collections))})")
        params += list(collections)
    if ids is not None:
        where.append(f"i.id IN ({','.join('?' * len(ids))})")
        params += list(ids)
    if start is not None:
        where.append("i.end_ts >= ?")
        params.append(start)
    if end is not None:
        where.append("i.start_ts <= ?")
        params.append(end)
    if bbox is not None:
        sql, extra = bbox_clause(bbox)
        where.append(sql)
        params += extra
    return where, params

"""The search index of the export API: one interface, an embedded SQLite + R*Tree backend.

The API server never walks the static catalog per request: :func:`SQLiteIndex.rebuild` reads
``catalog.json -> collections -> items`` once (at server start and after every publish) into
``<catalog>/.eo-pipeline/index.sqlite``:

- ``collections(id, public, json)``; ``items(pk, collection, id, start_ts, end_ts, geometry,
  json)`` with a unique ``(collection, id)``;
- ``items_rtree``: an R*Tree virtual table over the item bboxes (WGS84; two boxes for an item
  across the antimeridian, as in the catalog index, whose item reading it shares), so a bbox search
  touches only candidate rows; ``intersects`` and entitlement areas are then refined exactly
  with shapely on the candidates;
- ``assets(path, collection, item)``: every file an item references inside the catalog (POSIX
  path relative to the root). The download route serves these paths and nothing else.

Stored JSON is API-ready: hierarchical links (self, root, parent, collection, item, child)
are dropped (the API writes its own), local links to other indexed items become
``collections/<c>/items/<id>`` (relative to the API root), other local links are dropped so no
server path leaks, and asset hrefs inside the catalog become catalog-relative paths (the API
turns them into signed links).

Rebuilding writes a new database file and renames it over the old one, so a running server
keeps answering from a consistent snapshot (each request opens its own read-only connection).

Scale path
----------
Everything the server needs goes through :class:`CatalogIndex`. SQLite comfortably serves
catalogs of up to about a million items on one host (R*Tree bbox filtering, paging by offset
over the entitled, sorted result). Beyond that, or with several API hosts, implement
:class:`CatalogIndex` over PostgreSQL with pgstac (``pgstac.search`` does bbox/intersects/
datetime/sortby/fields and keyset paging in the database; entitlements become an extra CQL2
filter on ``collection``, ``geometry`` and ``datetime``; ``rebuild`` becomes
``pypgstac load --method upsert``), point the server at it, and keep assets on object storage
with the same signed-link scheme.

Examples
--------
>>> import tempfile
>>> index = SQLiteIndex(tempfile.mkdtemp() + "/index.sqlite")
>>> index.collections()
[]
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import shapely
import shapely.geometry

from eo_pipeline.atomic import atomic_path
from eo_pipeline.catalogs.cql2_sql import cql2_to_sql, register_functions
from eo_pipeline.catalogs.index_rows import doc_values
from eo_pipeline.catalogs.index_rows import rfc3339_timestamp as _timestamp
from eo_pipeline.errors import CatalogError
from eo_pipeline.export.api.customers import Entitlement
from eo_pipeline.export.api.queryables import (
    ALWAYS_QUERYABLE,
    ITEM_QUERYABLES,
    free_text,
    free_text_sql,
)
from eo_pipeline.export.api.signing import STATE_DIRNAME, state_dir

__all__ = ["CatalogIndex", "SQLiteIndex", "SearchPage", "SearchQuery", "open_index"]

PUBLIC_FIELD = "eo_pipeline:public"
"""Collection field: ``true`` makes the collection visible to anonymous users."""

_HIERARCHY = frozenset({"self", "root", "parent", "collection", "item", "child", "items"})
_SORT_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_:.\-]*$")
_SCHEMA = """
CREATE TABLE collections (id TEXT PRIMARY KEY, public INTEGER NOT NULL, json TEXT NOT NULL);
CREATE TABLE items (
    pk INTEGER PRIMARY KEY, collection TEXT NOT NULL, id TEXT NOT NULL,
    start_ts REAL NOT NULL, end_ts REAL NOT NULL, dt_ts REAL, geometry TEXT, text TEXT NOT NULL,
    json TEXT NOT NULL,
    UNIQUE (collection, id)
);
CREATE INDEX items_time ON items (start_ts, end_ts);
CREATE INDEX items_id ON items (id);
CREATE VIRTUAL TABLE items_rtree USING rtree (bid, minx, maxx, miny, maxy, +pk INTEGER);
CREATE TABLE assets (path TEXT PRIMARY KEY, collection TEXT NOT NULL, item TEXT NOT NULL);
"""


@dataclass(frozen=True)
class SearchQuery:
    """One item search, already validated, with the caller's entitlement."""

    entitlement: Entitlement
    """What the caller may see; results never leave it."""
    collections: tuple[str, ...] | None = None
    """Collection ids to search, ``None`` for every entitled collection."""
    ids: tuple[str, ...] | None = None
    """Item ids, ``None`` for any."""
    bbox: tuple[float, float, float, float] | None = None
    """``(west, south, east, north)`` in degrees; west > east crosses the antimeridian."""
    intersects: shapely.Geometry | None = None
    """Exact geometry filter (WGS84)."""
    start: float | None = None
    """Interval start (Unix seconds, inclusive), ``None`` for open."""
    end: float | None = None
    """Interval end (Unix seconds, inclusive), ``None`` for open."""
    limit: int = 10
    """Page size (the server caps it)."""
    offset: int = 0
    """Matches to skip (the paging token)."""
    sortby: tuple[tuple[str, bool], ...] = ()
    """``(field, ascending)`` pairs; default ``datetime`` descending, then collection and id."""
    filter: Mapping[str, Any] | None = None
    """A CQL2-JSON filter over :data:`~eo_pipeline.export.api.queryables.ITEM_QUERYABLES`."""
    text: tuple[str, ...] = ()
    """Free-text terms (any of them in the title, description or keywords)."""
    count: bool = True
    """Also count every match (``numberMatched``)."""


@dataclass(frozen=True)
class SearchPage:
    """One page of results."""

    items: list[dict[str, Any]]
    """Item JSON as stored (API-ready, hrefs not yet signed)."""
    next_offset: int | None
    """Offset of the next page, ``None`` on the last page."""
    matched: int | None = field(default=None)
    """Total matches where known cheaply, else ``None``."""


class CatalogIndex(Protocol):
    """What the API server needs from a search backend (SQLite now, pgstac later)."""

    def rebuild(self, catalog_dir: str | os.PathLike[str]) -> int:
        """Re-read the static catalog; returns the number of items indexed."""
        ...

    def collections(self) -> list[dict[str, Any]]:
        """Every collection's JSON, by id."""
        ...

    def collection(self, collection_id: str) -> dict[str, Any] | None:
        """One collection's JSON, ``None`` when unknown."""
        ...

    def public_collections(self) -> frozenset[str]:
        """Ids of the collections anonymous users may see."""
        ...

    def item(
        self, collection_id: str, item_id: str, entitlement: Entitlement
    ) -> dict[str, Any] | None:
        """One item's JSON when it exists and the entitlement allows it, else ``None``."""
        ...

    def search(self, query: SearchQuery) -> SearchPage:
        """Entitled items matching ``query``, sorted and paged."""
        ...

    def asset_owner(self, path: str) -> tuple[str, str] | None:
        """``(collection, item id)`` of the item referencing catalog file ``path``."""
        ...

    def queryables(self, collection_id: str | None = None) -> list[str]:
        """Names a filter may use (for one collection: those its items have)."""
        ...


def _is_url(href: str) -> bool:
    return urlparse(href).scheme in ("http", "https", "s3", "gs", "urn")


def _local_path(href: str, base: Path) -> Path:
    parsed = urlparse(href)
    raw = unquote(parsed.path) if parsed.scheme == "file" else href
    return Path(os.path.normpath(base / raw))


def _children(path: Path, rel: str, doc: dict[str, Any] | None = None) -> Iterator[Path]:
    """Local targets of the ``rel`` links of the JSON at ``path`` (``doc``: its content, if read)."""
    if doc is None:
        doc = json.loads(path.read_text())
    for link in doc.get("links", []):
        if link.get("rel") == rel and not _is_url(link["href"]):
            yield _local_path(link["href"], path.parent)


_EXTERNAL = "\x00external"


def _lineage_target(link: dict[str, Any], path: Path) -> tuple[str, str] | None:
    """``derived_from`` to an item outside the catalog (an L1 input): keep it by id only."""
    if link.get("rel") != "derived_from":
        return None
    try:
        doc = json.loads(path.read_text())
        return (_EXTERNAL, f"{doc.get('collection', '')}/{doc['id']}")
    except (OSError, ValueError, KeyError):
        return (_EXTERNAL, str(link["title"])) if link.get("title") else None


class SQLiteIndex:
    """:class:`CatalogIndex` on one SQLite file (R*Tree for bboxes, json1 for sorting).

    Parameters
    ----------
    path
        The database file (``<catalog>/.eo-pipeline/index.sqlite`` by convention); an empty
        database is created when missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            self._write_db(self.path, [], [], [])

    # -- building ---------------------------------------------------------------------------
    @staticmethod
    def _write_db(path: Path, collections: list, items: list, assets: list) -> None:
        with atomic_path(path) as tmp:
            con = sqlite3.connect(tmp)
            with con:
                con.executescript(_SCHEMA)
                con.executemany("INSERT INTO collections VALUES (?, ?, ?)", collections)
                for pk, (cid, iid, start, end, when, geom, boxes, text, doc) in enumerate(
                    items, start=1
                ):
                    con.execute(
                        "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (pk, cid, iid, start, end, when, geom, text, doc),
                    )
                    con.executemany(  # two boxes for an item across the antimeridian
                        "INSERT INTO items_rtree (minx, maxx, miny, maxy, pk) VALUES (?, ?, ?, ?, ?)",
                        [(*box, pk) for box in boxes],
                    )
                con.executemany("INSERT OR IGNORE INTO assets VALUES (?, ?, ?)", assets)
            con.close()
            os.chmod(tmp, 0o600)

    def rebuild(self, catalog_dir: str | os.PathLike[str]) -> int:
        """Index ``catalog.json -> collections -> items`` of a static catalog (atomically).

        Raises
        ------
        CatalogError
            When ``catalog.json`` is missing or an item has no usable datetime.
        """
        root = Path(catalog_dir).resolve()
        catalog = root / "catalog.json"
        if not catalog.exists():
            raise CatalogError(f"{catalog} not found; publish a catalog there first")
        private = root / STATE_DIRNAME
        loaded: list[tuple[Path, dict[str, Any]]] = []
        collections: list[tuple[Path, dict[str, Any]]] = []
        for cpath in _children(catalog, "child"):
            cdoc = json.loads(cpath.read_text())
            if cdoc.get("type") != "Collection":
                continue
            collections.append((cpath, cdoc))
            for ipath in _children(cpath, "item", cdoc):
                loaded.append((ipath, json.loads(ipath.read_text())))
        by_path = {p: (d.get("collection", ""), d["id"]) for p, d in loaded}

        def api_links(links: list[dict[str, Any]], base: Path) -> list[dict[str, Any]]:
            out = []
            for link in links:
                if link.get("rel") in _HIERARCHY:
                    continue
                href = link["href"]
                if not _is_url(href):
                    path = _local_path(href, base)
                    target = by_path.get(path) or _lineage_target(link, path)
                    if target is None:
                        continue  # a local file the API does not serve: do not leak its path
                    if target[0] == _EXTERNAL:  # an input outside the catalog: name it only
                        href = f"urn:eo-pipeline:item:{target[1]}"
                    else:
                        href = f"collections/{target[0]}/items/{target[1]}"
                out.append({**link, "href": href})
            return out

        rows_c = []
        for cpath, cdoc in collections:
            doc = {**cdoc, "links": api_links(cdoc.get("links", []), cpath.parent)}
            rows_c.append((cdoc["id"], int(bool(cdoc.get(PUBLIC_FIELD))), json.dumps(doc)))
        rows_i, rows_a = [], []
        for ipath, doc in loaded:
            where = f"{ipath} properties.datetime"
            props = doc.get("properties", {})
            # the catalog index's reading of an item: time span, geometry, R*Tree boxes
            (_, start, end, _, _, geom_json), boxes = doc_values(doc, str(ipath))
            if start is None or end is None:
                raise CatalogError(f"{where}: item has neither datetime nor start/end_datetime")
            assets = {}
            for key, asset in doc.get("assets", {}).items():
                href = asset["href"]
                if _is_url(href):
                    assets[key] = asset
                    continue
                path = _local_path(href, ipath.parent)
                if not path.is_relative_to(root) or path.is_relative_to(private):
                    continue  # outside the catalog: not served, not shown
                rel = path.relative_to(root).as_posix()
                assets[key] = {**asset, "href": rel}
                rows_a.append((rel, doc.get("collection", ""), doc["id"]))
            api_doc = {
                **doc,
                "assets": assets,
                "links": api_links(doc.get("links", []), ipath.parent),
            }
            geom = doc.get("geometry")
            if not boxes and geom is not None:  # no bbox: the footprint's bounds
                w, s, e, n = shapely.geometry.shape(geom).bounds
                boxes = [(w, e, s, n)]
            rows_i.append(
                (
                    doc.get("collection", ""),
                    doc["id"],
                    start,
                    end,
                    _timestamp(props.get("datetime"), where),
                    geom_json,
                    boxes,
                    free_text(props),
                    json.dumps(api_doc),
                )
            )
        state_dir(root)
        self._write_db(self.path, rows_c, rows_i, rows_a)
        return len(rows_i)

    # -- reading ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        register_functions(con)
        try:
            yield con
        finally:
            con.close()

    def collections(self) -> list[dict[str, Any]]:
        with self._read() as con:
            return [
                json.loads(r[0]) for r in con.execute("SELECT json FROM collections ORDER BY id")
            ]

    def collection(self, collection_id: str) -> dict[str, Any] | None:
        with self._read() as con:
            row = con.execute(
                "SELECT json FROM collections WHERE id = ?", (collection_id,)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def public_collections(self) -> frozenset[str]:
        with self._read() as con:
            return frozenset(r[0] for r in con.execute("SELECT id FROM collections WHERE public"))

    def item(
        self, collection_id: str, item_id: str, entitlement: Entitlement
    ) -> dict[str, Any] | None:
        with self._read() as con:
            row = con.execute(
                "SELECT start_ts, end_ts, geometry, json FROM items WHERE collection = ? AND id = ?",
                (collection_id, item_id),
            ).fetchone()
        if row is None:
            return None
        start, end, geom, doc = row
        shape = shapely.geometry.shape(json.loads(geom)) if geom else None
        if not entitlement.allows(collection_id, shape, start, end):
            return None
        return json.loads(doc)

    def asset_owner(self, path: str) -> tuple[str, str] | None:
        with self._read() as con:
            row = con.execute(
                "SELECT collection, item FROM assets WHERE path = ?", (path,)
            ).fetchone()
        return None if row is None else (row[0], row[1])

    @staticmethod
    def _order(sortby: tuple[tuple[str, bool], ...]) -> str:
        terms = []
        for name, ascending in sortby:
            if not _SORT_FIELD.match(name):
                raise CatalogError(
                    f"sortby field {name!r}: use letters, digits, '_', ':', '.', '-'"
                )
            prop = name.removeprefix("properties.")
            column = {
                "id": "i.id",
                "collection": "i.collection",
                "datetime": "i.start_ts",
                "start_datetime": "i.start_ts",
                "end_datetime": "i.end_ts",
            }.get(prop, f"json_extract(i.json, '$.properties.\"{prop}\"')")
            terms.append(f"{column} {'ASC' if ascending else 'DESC'}")
        if not sortby:
            terms.append("i.start_ts DESC")
        terms += ["i.collection ASC", "i.id ASC"]
        return ", ".join(terms)

    def search(self, query: SearchQuery) -> SearchPage:
        """Entitled items matching ``query``; every condition runs in SQL (bound parameters).

        Raises
        ------
        FilterError
            When the CQL2 filter uses an unknown queryable or an unsupported operator.
        """
        ent = query.entitlement
        allowed = set(ent.visible)
        if query.collections is not None:
            allowed &= set(query.collections)
        if not allowed or query.limit <= 0:
            return SearchPage([], None, 0)
        where, params = self._where(query, sorted(allowed))
        sql_where = " AND ".join(where)
        order = self._order(query.sortby)
        with self._read() as con:
            rows = con.execute(
                f"SELECT i.json FROM items i WHERE {sql_where} ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, query.limit + 1, query.offset],
            ).fetchall()
            matched = None
            if query.count:
                matched = con.execute(
                    f"SELECT count(*) FROM items i WHERE {sql_where}", params
                ).fetchone()[0]
        docs = [json.loads(r[0]) for r in rows]
        more = len(docs) > query.limit
        return SearchPage(
            docs[: query.limit], query.offset + query.limit if more else None, matched
        )

    @staticmethod
    def _boxes(
        query: SearchQuery,
    ) -> tuple[list[tuple[float, float, float, float]], list[bytes]]:
        """R*Tree boxes every match must touch, and geometries it must intersect (WKB)."""
        boxes: list[tuple[float, float, float, float]] = []
        exact: list[bytes] = []
        if query.bbox is not None:
            w, s, e, n = query.bbox
            if w > e:  # crosses the antimeridian: latitude pre-filter, exact test in SQL
                boxes.append((-180.0, s, 180.0, n))
                area = shapely.union(shapely.box(w, s, 180, n), shapely.box(-180, s, e, n))
            else:
                boxes.append((w, s, e, n))
                area = shapely.box(w, s, e, n)
            exact.append(shapely.to_wkb(area))
        if query.intersects is not None:
            boxes.append(tuple(query.intersects.bounds))
            exact.append(shapely.to_wkb(query.intersects))
        return boxes, exact

    def _where(self, query: SearchQuery, collections: list[str]) -> tuple[list[str], list[Any]]:
        ent = query.entitlement
        where = [f"i.collection IN ({','.join('?' * len(collections))})"]
        params: list[Any] = list(collections)
        if query.ids is not None:
            where.append(f"i.id IN ({','.join('?' * len(query.ids))})")
            params += list(query.ids)
        if query.start is not None:
            where.append("i.end_ts >= ?")
            params.append(query.start)
        if query.end is not None:
            where.append("i.start_ts <= ?")
            params.append(query.end)
        boxes, exact = self._boxes(query)
        for w, s, e, n in boxes:
            where.append(_RTREE)
            params += [e, w, n, s]
        for wkb in exact:
            where.append("eo_spatial('s_intersects', i.geometry, ?) = 1")
            params.append(wkb)
        limited = sorted(set(collections) & (ent.collections - ent.public))
        if ent.restricted and limited:
            terms, extra = _entitlement_sql(ent)
            where.append(
                f"(i.collection NOT IN ({','.join('?' * len(limited))}) OR ({' AND '.join(terms)}))"
            )
            params += [*limited, *extra]
        if query.filter is not None:
            sql, extra = cql2_to_sql(query.filter, ITEM_QUERYABLES)
            where.append(sql)
            params += extra
        if query.text:
            sql, extra = free_text_sql("i.text", query.text)
            where.append(sql)
            params += extra
        return where, params

    def queryables(self, collection_id: str | None = None) -> list[str]:
        """Queryable names: all of them, or those some item of ``collection_id`` has."""
        if collection_id is None:
            return list(ITEM_QUERYABLES)
        names = list(ALWAYS_QUERYABLE)
        with self._read() as con:
            for name, q in ITEM_QUERYABLES.items():
                if name in names:
                    continue
                row = con.execute(
                    f"SELECT 1 FROM items i WHERE i.collection = ? AND {q.sql} IS NOT NULL LIMIT 1",
                    (collection_id,),
                ).fetchone()
                if row is not None:
                    names.append(name)
        return names


_RTREE = (
    "i.pk IN (SELECT pk FROM items_rtree WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)"
)


def _entitlement_sql(ent: Entitlement) -> tuple[list[str], list[Any]]:
    terms: list[str] = []
    params: list[Any] = []
    if ent.start is not None:
        terms.append("i.end_ts >= ?")
        params.append(ent.start)
    if ent.end is not None:
        terms.append("i.start_ts <= ?")
        params.append(ent.end)
    if ent.bbox is not None:
        w, s, e, n = ent.bbox
        terms += [_RTREE, "eo_spatial('s_intersects', i.geometry, ?) = 1"]
        params += [e, w, n, s, shapely.to_wkb(shapely.box(w, s, e, n))]
    return terms, params


def open_index(catalog_dir: str | os.PathLike[str], *, rebuild: bool = False) -> SQLiteIndex:
    """The index of an export catalog (``<catalog>/.eo-pipeline/index.sqlite``).

    Parameters
    ----------
    catalog_dir
        The export catalog folder.
    rebuild
        Re-read the static catalog first (what ``serve`` and ``publish`` do).
    """
    index = SQLiteIndex(state_dir(catalog_dir) / "index.sqlite")
    if rebuild:
        index.rebuild(catalog_dir)
    return index

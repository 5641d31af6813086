"""The search index of the export API: one interface, an embedded SQLite + R*Tree backend.

The API server never walks the static catalog per request: :func:`SQLiteIndex.rebuild` reads
``catalog.json -> collections -> items`` once (at server start and after every publish) into
``<catalog>/.eo-pipeline/index.sqlite``:

- ``items`` and ``boxes``: the catalog index's item store (:mod:`eo_pipeline.catalogs.index_core`:
  one schema, one bulk insert, one set of search predicates and CQL2 queryables for both
  indexes), filled by the same reading of each item (time span, queryable properties,
  footprint, an R*Tree box - two across the antimeridian), so a bbox search touches only
  candidate rows; ``intersects`` and entitlement areas are then refined exactly on the
  candidates;
- ``api_items(pk, dt_ts, text, json)``: beside each item row, what only the API needs: the
  ``datetime``, the free text and the API-ready item JSON;
- ``collections(id, public, json)``: the API-ready collections;
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
from eo_pipeline.catalogs.index_core import (
    ITEM_INDEXES,
    ITEM_SCHEMA,
    bbox_clause,
    insert_items,
    item_clauses,
)
from eo_pipeline.catalogs.index_rows import doc_values, dumps_json
from eo_pipeline.catalogs.index_rows import rfc3339_timestamp as _timestamp
from eo_pipeline.errors import CatalogError
from eo_pipeline.export.api.customers import Entitlement, bbox_area
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
_SCHEMA = (
    ITEM_SCHEMA  # the item store of the catalog index (one implementation for both)
    + ITEM_INDEXES
    + """
CREATE TABLE collections (id TEXT PRIMARY KEY, public INTEGER NOT NULL, json TEXT NOT NULL);
CREATE TABLE api_items (pk INTEGER PRIMARY KEY, dt_ts REAL, text TEXT NOT NULL, json TEXT NOT NULL);
CREATE TABLE assets (path TEXT PRIMARY KEY, collection TEXT NOT NULL, item TEXT NOT NULL);
"""
)
_ITEMS = "items i JOIN api_items a ON a.pk = i.pk"
"""The items with their API documents: the catalog index's ``items i`` beside ``api_items a``."""


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
        """``items``: (core row without pk, boxes, (dt_ts, text, json)) per item."""
        rows, boxes, api = [], [], []
        for pk, (core, item_boxes, extra) in enumerate(items, start=1):
            rows.append((pk, *core))
            boxes += [(*box, pk) for box in item_boxes]  # two across the antimeridian
            api.append((pk, *extra))
        with atomic_path(path) as tmp:
            con = sqlite3.connect(tmp)
            with con:
                con.executescript(_SCHEMA)
                con.executemany("INSERT INTO collections VALUES (?, ?, ?)", collections)
                insert_items(con, rows, boxes)
                con.executemany("INSERT INTO api_items VALUES (?, ?, ?, ?)", api)
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
            rows_c.append((cdoc["id"], int(bool(cdoc.get(PUBLIC_FIELD))), dumps_json(doc)))
        rows_i, rows_a = [], []
        for ipath, doc in loaded:
            where = f"{ipath} properties.datetime"
            props = doc.get("properties", {})
            # the catalog index's reading of an item: time span, geometry, R*Tree boxes
            (_, start, end, cloud, props_json, geom_json), boxes = doc_values(doc, str(ipath))
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
            st = ipath.stat()
            real = ipath.resolve()  # an item reached through a link, or kept elsewhere
            href = real.relative_to(root).as_posix() if real.is_relative_to(root) else str(real)
            core = (
                doc.get("collection", ""), doc["id"], href, start,
                end, cloud, props_json, geom_json, st.st_mtime_ns, st.st_size,
            )  # fmt: skip
            api = (_timestamp(props.get("datetime"), where), free_text(props), dumps_json(api_doc))
            rows_i.append((core, boxes, api))
        state_dir(root)
        self._write_db(self.path, rows_c, rows_i, rows_a)
        return len(rows_i)

    def current(self) -> bool:
        """Whether the file has this version's tables (an index written by an older version,
        before the item store was shared with the catalog index, is rebuilt on opening)."""
        try:
            with self._read() as con:
                row = con.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'api_items'"
                ).fetchone()
        except sqlite3.Error:
            return False
        return row is not None

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
                f"SELECT i.start_ts, i.end_ts, i.geometry, a.json FROM {_ITEMS} "
                "WHERE i.collection = ? AND i.id = ?",
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
            }.get(prop, f"json_extract(a.json, '$.properties.\"{prop}\"')")
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
                f"SELECT a.json FROM {_ITEMS} WHERE {sql_where} ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, query.limit + 1, query.offset],
            ).fetchall()
            matched = None
            if query.count:
                matched = con.execute(
                    f"SELECT count(*) FROM {_ITEMS} WHERE {sql_where}", params
                ).fetchone()[0]
        docs = [json.loads(r[0]) for r in rows]
        more = len(docs) > query.limit
        return SearchPage(
            docs[: query.limit], query.offset + query.limit if more else None, matched
        )

    @staticmethod
    def _areas(query: SearchQuery) -> tuple[list[tuple[float, ...]], list[bytes]]:
        """Boxes every match must touch (R*Tree candidates) and geometries it must intersect
        (WKB, tested exactly)."""
        boxes: list[tuple[float, ...]] = []
        exact: list[bytes] = []
        if query.bbox is not None:
            w, s, e, n = query.bbox
            boxes.append((w, s, e, n))  # west > east: two ranges (index_core.bbox_clause)
            exact.append(shapely.to_wkb(bbox_area((w, s, e, n))))
        if query.intersects is not None:
            boxes.append(tuple(query.intersects.bounds))
            exact.append(shapely.to_wkb(query.intersects))
        return boxes, exact

    def _where(self, query: SearchQuery, collections: list[str]) -> tuple[list[str], list[Any]]:
        ent = query.entitlement
        # what every index asks of an item (index_core): collections, ids, time span, boxes
        where, params = item_clauses(
            collections=collections, ids=query.ids, start=query.start, end=query.end
        )
        boxes, exact = self._areas(query)
        for box in boxes:
            sql, extra = bbox_clause(box)
            where.append(sql)
            params += extra
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
            sql, extra = free_text_sql("a.text", query.text)
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
        box_sql, box_params = bbox_clause(ent.bbox)
        terms += [box_sql, "eo_spatial('s_intersects', i.geometry, ?) = 1"]
        params += [*box_params, shapely.to_wkb(bbox_area(ent.bbox))]
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
    if rebuild or not index.current():
        index.rebuild(catalog_dir)
    return index

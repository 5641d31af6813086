"""The search index of the export API: one interface, an embedded SQLite + R*Tree backend.

The API server never walks the static catalog per request: :func:`SQLiteIndex.rebuild` reads
``catalog.json -> collections -> items`` once (at server start and after every publish) into
``<catalog>/.eo-pipeline/index.sqlite``:

- ``collections(id, public, json)``; ``items(pk, collection, id, start_ts, end_ts, geometry,
  json)`` with a unique ``(collection, id)``;
- ``items_rtree``: an R*Tree virtual table over the item bboxes (WGS84), so a bbox search
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
import datetime as dt
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import shapely
import shapely.geometry

from eo_pipeline.atomic import atomic_path
from eo_pipeline.errors import CatalogError
from eo_pipeline.export.api.customers import Entitlement
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
    start_ts REAL NOT NULL, end_ts REAL NOT NULL, geometry TEXT, json TEXT NOT NULL,
    UNIQUE (collection, id)
);
CREATE INDEX items_time ON items (start_ts, end_ts);
CREATE INDEX items_id ON items (id);
CREATE VIRTUAL TABLE items_rtree USING rtree (pk, minx, maxx, miny, maxy);
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


def _timestamp(text: str | None, where: str) -> float | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CatalogError(f"{where}: {text!r} is not an RFC 3339 date-time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


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
                for pk, (cid, iid, start, end, geom, bbox, doc) in enumerate(items, start=1):
                    con.execute(
                        "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (pk, cid, iid, start, end, geom, doc),
                    )
                    if bbox is not None:
                        w, s, e, n = bbox
                        con.execute(
                            "INSERT INTO items_rtree VALUES (?, ?, ?, ?, ?)", (pk, w, e, s, n)
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
            start = _timestamp(props.get("start_datetime") or props.get("datetime"), where)
            end = _timestamp(props.get("end_datetime") or props.get("datetime"), where)
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
            bbox = doc.get("bbox")
            if bbox is not None and len(bbox) == 6:
                bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
            if bbox is None and geom is not None:
                bbox = list(shapely.geometry.shape(geom).bounds)
            rows_i.append(
                (
                    doc.get("collection", ""),
                    doc["id"],
                    start,
                    end,
                    json.dumps(geom) if geom is not None else None,
                    bbox,
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
        ent = query.entitlement
        allowed = set(ent.collections)
        if query.collections is not None:
            allowed &= set(query.collections)
        if not allowed or query.limit <= 0:
            return SearchPage([], None, 0)
        where = [f"i.collection IN ({','.join('?' * len(allowed))})"]
        params: list[Any] = sorted(allowed)
        if query.ids is not None:
            where.append(f"i.id IN ({','.join('?' * len(query.ids))})")
            params += list(query.ids)
        starts = [t for t in (query.start, ent.start) if t is not None]
        ends = [t for t in (query.end, ent.end) if t is not None]
        if starts:
            where.append("i.end_ts >= ?")
            params.append(max(starts))
        if ends:
            where.append("i.start_ts <= ?")
            params.append(min(ends))
        # Bbox pre-filter through the R*Tree: every box that must be intersected.
        refine: list[shapely.Geometry] = []
        boxes: list[tuple[float, float, float, float]] = []
        if query.bbox is not None:
            w, s, e, n = query.bbox
            if w > e:  # crosses the antimeridian: latitude pre-filter, exact test below
                boxes.append((-180.0, s, 180.0, n))
                refine.append(shapely.union(shapely.box(w, s, 180, n), shapely.box(-180, s, e, n)))
            else:  # the R*Tree compares bboxes; footprints are tested exactly below
                boxes.append((w, s, e, n))
                refine.append(shapely.box(w, s, e, n))
        if query.intersects is not None:
            w0, s0, e0, n0 = query.intersects.bounds
            boxes.append((w0, s0, e0, n0))
            refine.append(query.intersects)
        if ent.bbox is not None:
            boxes.append(ent.bbox)
        join = ""
        if boxes:
            w = max(b[0] for b in boxes)
            s = max(b[1] for b in boxes)
            e = min(b[2] for b in boxes)
            n = min(b[3] for b in boxes)
            if w > e or s > n:
                return SearchPage([], None, 0)
            join = (
                "JOIN items_rtree r ON r.pk = i.pk AND r.minx <= ? AND r.maxx >= ? "
                "AND r.miny <= ? AND r.maxy >= ?"
            )
            params = [e, w, n, s, *params]
        exact = bool(refine) or ent.bbox is not None
        sql = (
            f"SELECT i.collection, i.geometry, i.start_ts, i.end_ts, i.json FROM items i {join} "
            f"WHERE {' AND '.join(where)} ORDER BY {self._order(query.sortby)}"
        )
        with self._read() as con:
            if not exact:  # the database does it all
                rows = con.execute(
                    f"{sql} LIMIT ? OFFSET ?", [*params, query.limit + 1, query.offset]
                ).fetchall()
                docs = [json.loads(r[4]) for r in rows]
                more = len(docs) > query.limit
                nxt = query.offset + query.limit if more else None
                return SearchPage(docs[: query.limit], nxt)
            docs, seen, more = [], 0, False
            for cid, geom, start, end, doc in con.execute(sql, params):
                shape = shapely.geometry.shape(json.loads(geom)) if geom else None
                if shape is None or not all(g.intersects(shape) for g in refine):
                    continue
                if not ent.allows(cid, shape, start, end):
                    continue
                seen += 1
                if seen <= query.offset:
                    continue
                if len(docs) == query.limit:
                    more = True
                    break
                docs.append(json.loads(doc))
        return SearchPage(docs, query.offset + query.limit if more else None)


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

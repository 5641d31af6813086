"""A spatial-temporal index beside a static STAC catalog, so that a query reads only its matches.

Walking a static catalog means opening every item JSON: 47 s and 1.1 GB for 20,000 items
with pystac. The index keeps what a search needs in one embedded SQLite file,
``<catalog root>/.eo-pipeline-index.sqlite`` (derived from the public items; not the export
service's private state, which lives outside the published tree):

- ``items`` and ``boxes``: each item's file, time span, cloud cover, queryable properties,
  footprint and file state, and an R*Tree over the bboxes - the item store the export API's
  search index is built on too (:mod:`eo_pipeline.catalogs.index_core`: one schema, one bulk
  insert, one set of search predicates and CQL2 queryables for both);
- ``collections(id, href, mtime_ns, size)``: each collection file as last indexed.

Every query first compares each collection file's ``mtime_ns``/size with the recorded ones
(one ``stat`` per collection): a collection changed behind the index's back (items added or
removed by a tool that did not update it) is re-read, its new item links indexed and its
removed ones dropped, before the query runs. Matched item files whose ``mtime_ns``/size
changed since indexing are re-indexed and the query repeated. So the cost of a query grows
with the collections and the matches, never with the archive. An in-place edit that makes
an item match a query it did not match before is found by :meth:`CatalogIndex.sweep`
(``eo-pipeline index check``: one ``stat`` per item).

Writers that go through :func:`eo_pipeline.catalogs.store.add_items` (ingest, simulate,
publish) update the index in the same call; one that fails drops the index file, which the
next query rebuilds. ``eo-pipeline index rebuild CATALOG`` rebuilds it on demand.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "catalog.json").write_text('{"type": "Catalog", "id": "c", "links": []}')
>>> index = CatalogIndex.open(root)
>>> index.search(IndexQuery(bbox=(50, 40, 90, 56)))
[]
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eo_pipeline.atomic import atomic_path
from eo_pipeline.catalogs.cql2_sql import Queryable, cql2_to_sql, parse_cql2, register_functions
from eo_pipeline.catalogs.index_core import (
    ITEM_INDEXES,
    ITEM_SCHEMA,
    QUERYABLES,
    insert_items,
    item_clauses,
)
from eo_pipeline.catalogs.index_rows import (
    QUERYABLE_PREFIXES,
    filter_items,
    interval_bounds,
    links_of,
    read_json,
    rfc3339_timestamp,
    row_of_file,
)
from eo_pipeline.catalogs.queryables import query_to_cql2
from eo_pipeline.errors import CatalogError, FilterError

__all__ = [
    "INDEX_FILE",
    "QUERYABLES",
    "CatalogIndex",
    "IndexQuery",
    "RebuildReport",
    "filter_items",
    "rfc3339_timestamp",
]

INDEX_FILE = Path(".eo-pipeline-index.sqlite")
"""Where the index lives, relative to the catalog root (the folder of ``catalog.json``)."""
_VERSION = "3"
_SCHEMA = (
    ITEM_SCHEMA
    + """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE collections (id TEXT PRIMARY KEY, href TEXT NOT NULL, mtime_ns INTEGER, size INTEGER);
"""
)


@dataclass(frozen=True)
class IndexQuery:
    """What to find; every field left at its default matches everything."""

    collections: tuple[str, ...] = ()
    """Collection ids (any of)."""
    ids: tuple[str, ...] = ()
    """Item ids (any of)."""
    bbox: tuple[float, float, float, float] | None = None
    """West, south, east, north (degrees; west > east crosses the antimeridian)."""
    datetime: str | None = None
    """An RFC 3339 instant or ``start/end`` interval (``..`` or empty for an open end)."""
    max_cloud_cover: float | None = None
    """Items whose ``eo:cloud_cover`` is larger are left out (items without one are kept)."""
    query: Mapping[str, Mapping[str, Any]] | None = None
    """STAC query-extension filters on queryable properties, e.g.
    ``{"platform": {"eq": "kazeosat-2"}, "view:sun_elevation": {"gt": 30}}``."""
    filter: str | Mapping[str, Any] | None = None
    """A CQL2 filter (text or JSON) over :data:`QUERYABLES`, as the export API takes it, e.g.
    ``"eo:cloud_cover < 10 AND platform = 'kazeosat-2'"``."""


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild read."""

    items: int
    collections: int
    skipped: tuple[str, ...]
    """Item files that could not be read (path: reason); they are not in the index."""
    seconds: float

    def __str__(self) -> str:
        rate = self.items / max(self.seconds, 1e-9)
        skipped = f", {len(self.skipped)} unreadable item file(s) skipped" if self.skipped else ""
        return (
            f"indexed {self.items} item(s) of {self.collections} collection(s) in "
            f"{self.seconds:.1f} s ({rate:,.0f} items/s){skipped}"
        )


# ----------------------------------------------------------------------------- the index


class CatalogIndex:
    """The index of one static catalog (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / INDEX_FILE
        self._prefix = str(root).rstrip(os.sep) + os.sep

    def _rel(self, path: str | Path) -> str:
        return str(path)[len(self._prefix) :].replace(os.sep, "/")

    # -- opening and building

    @classmethod
    def open(cls, catalog: str | os.PathLike[str], *, build: bool = True) -> CatalogIndex:
        """The index of the catalog at ``catalog`` (``catalog.json`` or its folder).

        Built on first use when missing (``build=True``); a corrupt file raises a
        :class:`CatalogError` that names the rebuild command.
        """
        p = Path(catalog)
        root = p.parent if p.is_file() else p
        if not (root / "catalog.json").is_file():
            raise CatalogError(f"{p}: no catalog.json; the index serves static STAC catalogs")
        index = cls(root.resolve())
        if not index.path.exists():
            if not build:
                raise CatalogError(
                    f"{root}: no catalog index; run: eo-pipeline index rebuild {root}"
                )
            index.rebuild()
        elif build and index._version() not in (None, _VERSION):  # an older layout: rebuilt
            index.rebuild()
        index._check_version()
        return index

    def _version(self) -> str | None:
        try:
            with self._connect() as con:
                row = con.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        except CatalogError:
            return None  # corrupt: _check_version says so
        return str(row[0]) if row else None

    def _check_version(self) -> None:
        with self._connect() as con:  # a file that is no database: CatalogError from _connect
            row = con.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        if not row or row[0] != _VERSION:
            raise CatalogError(
                f"{self.path}: catalog index of another version; rebuild it: "
                f"eo-pipeline index rebuild {self.root}"
            )

    @contextlib.contextmanager
    def _connect(self, path: Path | None = None) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(path or self.path, timeout=30.0)
        except sqlite3.Error as err:
            raise CatalogError(f"{self.path}: cannot open the catalog index ({err})") from None
        register_functions(con)
        try:
            with con:
                yield con
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise CatalogError(
                    f"{self.path}: the catalog index stayed locked by another writer for 30 s; "
                    "try again when that ingest/simulate/publish has finished"
                ) from None
            raise CatalogError(self._corrupt(err)) from None
        except sqlite3.DatabaseError as err:
            raise CatalogError(self._corrupt(err)) from None
        finally:
            con.close()

    def _corrupt(self, err: Exception) -> str:
        return (
            f"{self.path}: the catalog index is corrupt ({err}); rebuild it: "
            f"eo-pipeline index rebuild {self.root}"
        )

    def rebuild(self) -> RebuildReport:
        """Read every collection and item of the catalog into a new index file (atomically)."""
        import time

        t = time.perf_counter()
        catalog = read_json(self.root / "catalog.json")
        skipped: list[str] = []
        n_items = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            with self._connect(tmp) as con:
                # a temporary file renamed into place when complete: no journal needed
                con.execute("PRAGMA journal_mode = OFF")
                con.execute("PRAGMA synchronous = OFF")
                con.executescript(_SCHEMA)
                con.execute("INSERT INTO meta VALUES ('version', ?)", (_VERSION,))
                colls = list(links_of(catalog, "child", self.root))
                for coll_path in colls:
                    n_items += self._index_collection(con, Path(coll_path), skipped, fresh=True)
                con.executescript(ITEM_INDEXES)
        return RebuildReport(n_items, len(colls), tuple(skipped), time.perf_counter() - t)

    def _index_collection(
        self,
        con: sqlite3.Connection,
        coll_path: Path,
        skipped: list[str],
        known: set[str] | None = None,
        *,
        fresh: bool = False,
    ) -> int:
        doc = read_json(coll_path)
        cid = str(doc.get("id") or coll_path.parent.name)
        st = coll_path.stat()
        con.execute(
            "INSERT OR REPLACE INTO collections VALUES (?, ?, ?, ?)",
            (cid, self._rel(coll_path), st.st_mtime_ns, st.st_size),
        )
        paths = list(links_of(doc, "item", coll_path.parent))
        if known is not None:
            hrefs = {self._rel(p) for p in paths}
            for href in known - hrefs:
                self._delete(con, "href = ?", href)
            paths = [p for p in paths if self._rel(p) not in known]
        return self._insert(con, paths, cid, skipped, fresh=fresh)

    def _insert(
        self,
        con: sqlite3.Connection,
        paths: Iterable[str],
        cid: str,
        skipped: list[str],
        *,
        fresh: bool = False,
    ) -> int:
        """Index item files; a fresh (rebuilding) index inserts in batches with its own keys
        (one statement per table per 2,000 items instead of two per item)."""
        if not fresh:
            return self._insert_one_by_one(con, paths, cid, skipped)
        pk = int(con.execute("SELECT coalesce(max(pk), 0) FROM items").fetchone()[0])
        seen = {(c, i) for c, i in con.execute("SELECT collection, id FROM items")}
        rows: list[tuple[Any, ...]] = []
        boxes: list[tuple[Any, ...]] = []
        n = 0
        for path, (values, item_boxes) in self._rows(paths, cid, skipped):
            if (values[0], values[1]) in seen:
                skipped.append(f"{path}: item id {values[1]!r} appears twice in {values[0]}")
                continue
            seen.add((values[0], values[1]))
            pk += 1
            rows.append((pk, *values))
            boxes += [(*box, pk) for box in item_boxes]
            n += 1
            if len(rows) >= 2000:
                self._flush(con, rows, boxes)
        self._flush(con, rows, boxes)
        return n

    def _rows(
        self, paths: Iterable[str], cid: str, skipped: list[str]
    ) -> Iterator[tuple[str, tuple[tuple[Any, ...], list[tuple[float, ...]]]]]:
        """(path, items-table values and boxes) of each readable item file; the others are
        named in ``skipped``."""
        for path in paths:
            try:
                yield path, row_of_file(path, self._prefix, cid)
            except (CatalogError, OSError) as err:
                skipped.append(f"{path}: {err}")

    @staticmethod
    def _flush(
        con: sqlite3.Connection, rows: list[tuple[Any, ...]], boxes: list[tuple[Any, ...]]
    ) -> None:
        insert_items(con, rows, boxes)
        rows.clear()
        boxes.clear()

    def _insert_one_by_one(
        self, con: sqlite3.Connection, paths: Iterable[str], cid: str, skipped: list[str]
    ) -> int:
        n = 0
        for _, (values, boxes) in self._rows(paths, cid, skipped):
            self._delete(con, "href = ?", values[2])
            self._delete(con, "collection = ? AND id = ?", values[0], values[1])
            pk = int(con.execute("SELECT coalesce(max(pk), 0) + 1 FROM items").fetchone()[0])
            insert_items(con, [(pk, *values)], [(*box, pk) for box in boxes])
            n += 1
        return n

    @staticmethod
    def _delete(con: sqlite3.Connection, where: str, *params: Any) -> None:
        for (pk,) in con.execute(f"SELECT pk FROM items WHERE {where}", params).fetchall():
            con.execute("DELETE FROM boxes WHERE pk = ?", (pk,))
            con.execute("DELETE FROM items WHERE pk = ?", (pk,))

    # -- keeping it current

    def add(
        self,
        item_files: Iterable[str | os.PathLike[str]],
        current: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        """Index (or re-index) these item files.

        ``current``: collection ids whose recorded state matched their file *before* the
        caller rewrote them (:meth:`collection_states` then), so that the rewrite is all that
        changed: their new state is recorded and the next query need not re-read them. Any
        other changed collection is re-read by :meth:`refresh` (what a writer we did not
        see added is found there).
        """
        files = [Path(f).resolve() for f in item_files]
        skipped: list[str] = []
        current = current or {}
        with self._connect() as con:
            for f in files:
                cid = f.parent.parent.name
                self._insert(con, [str(f)], cid, skipped)
                coll = f.parent.parent / "collection.json"
                recorded = con.execute(
                    "SELECT mtime_ns, size FROM collections WHERE id = ?", (cid,)
                ).fetchone()
                if coll.is_file() and recorded is not None and tuple(recorded) == current.get(cid):
                    st = coll.stat()
                    con.execute(
                        "INSERT OR REPLACE INTO collections VALUES (?, ?, ?, ?)",
                        (cid, self._rel(coll), st.st_mtime_ns, st.st_size),
                    )
        if skipped:
            raise CatalogError("; ".join(skipped))

    def collection_states(self, ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        """``{collection id: (mtime_ns, size)}`` of those whose file is as indexed now."""
        out: dict[str, tuple[int, int]] = {}
        with self._connect() as con:
            for cid in ids:
                row = con.execute(
                    "SELECT href, mtime_ns, size FROM collections WHERE id = ?", (cid,)
                ).fetchone()
                if row is None:
                    continue
                try:
                    st = (self.root / row[0]).stat()
                except OSError:
                    continue
                if (st.st_mtime_ns, st.st_size) == (row[1], row[2]):
                    out[cid] = (row[1], row[2])
        return out

    def sweep(self) -> int:
        """Stat every indexed item file and re-index those changed in place (O(items) stats).

        Queries notice in-place edits of the items they match; an edit that makes an item
        match a query it did not match before is found by this sweep
        (``eo-pipeline index check``). Returns the number of items re-indexed.
        """
        with self._connect() as con:
            rows = con.execute("SELECT href, mtime_ns, size FROM items").fetchall()
        changed = []
        for href, mtime, size in rows:
            try:
                st = (self.root / href).stat()
            except FileNotFoundError:
                with self._connect() as con:
                    self._delete(con, "href = ?", href)
                continue
            if (st.st_mtime_ns, st.st_size) != (mtime, size):
                changed.append(self.root / href)
        if changed:
            self.add(changed)
        return len(changed) + self.refresh()

    def refresh(self) -> int:
        """Bring changed or new collections up to date; the number of item rows changed."""
        catalog = read_json(self.root / "catalog.json")
        changed = 0
        skipped: list[str] = []
        with self._connect() as con:
            recorded = {
                href: (m, s)
                for href, m, s in con.execute("SELECT href, mtime_ns, size FROM collections")
            }
            for coll_file in links_of(catalog, "child", self.root):
                coll_path = Path(coll_file)
                href = self._rel(coll_path)
                try:
                    st = coll_path.stat()
                except FileNotFoundError:
                    raise CatalogError(
                        f"{coll_path}: the catalog links a collection that does not exist"
                    ) from None
                if recorded.get(href) == (st.st_mtime_ns, st.st_size):
                    continue
                prefix = href.rsplit("/", 1)[0] + "/" if "/" in href else ""
                known = {
                    h
                    for (h,) in con.execute(
                        "SELECT href FROM items WHERE href LIKE ? ESCAPE '\\'",
                        (prefix.replace("%", "\\%").replace("_", "\\_") + "%",),
                    )
                }
                changed += self._index_collection(con, coll_path, skipped, known)
        return changed

    # -- searching

    def _where(self, q: IndexQuery) -> tuple[str, list[Any]]:
        lo, hi = interval_bounds(q.datetime)
        clauses, params = item_clauses(
            collections=q.collections or None, ids=q.ids or None, start=lo, end=hi, bbox=q.bbox
        )
        if q.max_cloud_cover is not None:
            clauses.append("(i.cloud IS NULL OR i.cloud <= ?)")
            params.append(float(q.max_cloud_cover))
        if q.query:
            sql, values = _query_sql(q.query)
            clauses.append(sql)
            params += values
        if q.filter is not None:
            sql, values = cql2_to_sql(parse_cql2(q.filter), QUERYABLES)
            clauses.append(sql)
            params += values
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def search(self, query: IndexQuery = IndexQuery(), *, refresh: bool = True) -> list[Path]:
        """Item files matching ``query``, sorted by collection, start time and id."""
        if refresh:
            self.refresh()
        where, params = self._where(query)
        sql = (
            "SELECT i.href, i.mtime_ns, i.size FROM items i"
            + where
            + " ORDER BY i.collection, i.start_ts, i.id"
        )
        with self._connect() as con:
            rows = con.execute(sql, params).fetchall()
        stale = []
        for href, mtime, size in rows:
            path = self.root / href
            try:
                st = path.stat()
            except FileNotFoundError:
                raise CatalogError(
                    f"{path}: indexed item file is gone; rebuild the index: "
                    f"eo-pipeline index rebuild {self.root}"
                ) from None
            if (st.st_mtime_ns, st.st_size) != (mtime, size):
                stale.append(path)
        if stale:  # changed in place since indexing: re-index them and ask again
            self.add(stale)
            return self.search(query, refresh=False)
        return [self.root / href for href, _, _ in rows]

    def count(self) -> int:
        """Items in the index."""
        with self._connect() as con:
            return int(con.execute("SELECT count(*) FROM items").fetchone()[0])


def _query_sql(query: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """STAC query-extension filters as SQL through the CQL2 translator: the listed
    queryables, and any other stored property (``view:*``, ``eo_pipeline:*``...) typed by the
    value it is compared with."""
    if not isinstance(query, Mapping):
        raise FilterError(f"query must map properties to operators, got {query!r}")
    queryables = dict(QUERYABLES)
    for name, ops in query.items():
        if name in queryables:
            continue
        if not (isinstance(name, str) and name.startswith(QUERYABLE_PREFIXES)):
            raise FilterError(
                f"query: {name!r} is not a queryable property; queryable: "
                f"{', '.join(sorted(QUERYABLES))} and {', '.join(p + '*' for p in QUERYABLE_PREFIXES)}"
            )
        values = [v for v in (ops.values() if isinstance(ops, Mapping) else ())]
        flat = [x for v in values for x in (v if isinstance(v, list) else [v])]
        kind = ("boolean" if flat and all(isinstance(x, bool) for x in flat) else
                "number" if flat and all(isinstance(x, int | float) for x in flat) else "string")  # fmt: skip
        queryables[name] = Queryable(
            f"json_extract(i.props, '$.\"{name.replace(chr(34), '')}\"')", kind
        )
    return cql2_to_sql(query_to_cql2(query), queryables)


def collections_as_indexed(
    catalog_root: str | os.PathLike[str], ids: Iterable[str]
) -> dict[str, tuple[int, int]]:
    """Before a writer rewrites collections: which of ``ids`` the index holds as they are
    (pass the result to :func:`update_index`); empty when there is no usable index."""
    index = CatalogIndex(Path(catalog_root).resolve())
    if not index.path.exists():
        return {}
    try:
        return index.collection_states(ids)
    except (CatalogError, sqlite3.Error, OSError):
        return {}


def update_index(
    catalog_root: str | os.PathLike[str],
    item_files: Sequence[str | os.PathLike[str]],
    current: Mapping[str, tuple[int, int]] | None = None,
) -> None:
    """After a writer added items: update the index when it exists; drop it when that fails.

    ``current``: :func:`collections_as_indexed` before the write (collections the writer's
    change is the only change to); others are re-read."""
    index = CatalogIndex(Path(catalog_root).resolve())
    if not index.path.exists():
        return
    try:
        index._check_version()
        index.add(item_files, current)
        index.refresh()
    except (CatalogError, sqlite3.Error, OSError):
        with contextlib.suppress(OSError):
            index.path.unlink()  # the next query rebuilds it: never a wrong index

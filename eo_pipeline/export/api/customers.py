"""Export customers: hashed API keys and entitlements (collections, area, time range).

Customers live in ``<catalog>/.eo-pipeline/customers.sqlite`` (see
:mod:`eo_pipeline.export.api.signing`). An API key is ``eok_`` + 43 URL-safe characters
(256 random bits); only its SHA-256 is stored (a fast hash is enough for a key of that entropy:
nothing can be guessed from it), and the key is shown once, when the customer is added.
Clients send it as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``.

Each customer is entitled to a set of collections and optionally to an area (a bbox in
WGS84 degrees) and a time range: an item is visible when its collection is in the set, its
geometry intersects the area and its time span meets the range.

Examples
--------
>>> import tempfile
>>> store = CustomerStore(tempfile.mkdtemp())
>>> key = store.add("acme", Entitlement(collections=frozenset({"kazeosat2-l2"})))
>>> store.authenticate(key).name
'acme'
>>> store.revoke("acme")
>>> store.authenticate(key) is None
True
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import shapely
import shapely.geometry

from eo_pipeline.errors import CustomerError
from eo_pipeline.export.api.signing import state_dir

__all__ = [
    "ANONYMOUS",
    "Customer",
    "CustomerStore",
    "Entitlement",
    "bbox_area",
    "customers_cli",
    "parse_bbox",
    "parse_interval",
]

ANONYMOUS = "anonymous"
"""Reserved principal name of requests without an API key (public collections only)."""

KEY_PREFIX = "eok_"
_DB = "customers.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    name TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL UNIQUE,
    key_hint TEXT NOT NULL,
    collections TEXT NOT NULL,
    bbox TEXT,
    start_ts REAL,
    end_ts REAL,
    created TEXT NOT NULL,
    revoked TEXT
);
"""


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _iso(ts: float | None) -> str:
    if ts is None:
        return ".."
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Entitlement:
    """What a customer may see: collections, and optionally an area and a time range."""

    collections: frozenset[str]
    """Collection ids the customer bought (or, for anonymous users, the public ones)."""
    bbox: tuple[float, float, float, float] | None = None
    """Area ``(west, south, east, north)`` in WGS84 degrees; ``None`` for anywhere."""
    start: float | None = None
    """Start of the entitled time range (Unix seconds, inclusive); ``None`` for open."""
    end: float | None = None
    """End of the entitled time range (Unix seconds, inclusive); ``None`` for open."""
    public: frozenset[str] = frozenset()
    """Collections open to everyone: visible whole, whatever the area and time range say."""
    _area: shapely.Geometry | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.bbox is not None:
            object.__setattr__(self, "_area", bbox_area(self.bbox))

    @property
    def visible(self) -> frozenset[str]:
        """Every collection the holder may see: the bought ones and the public ones."""
        return self.collections | self.public

    @property
    def restricted(self) -> bool:
        """True when an area or a time range limits the bought collections."""
        return self.bbox is not None or self.start is not None or self.end is not None

    def allows(
        self,
        collection: str,
        geometry: shapely.Geometry | None,
        start: float | None,
        end: float | None,
    ) -> bool:
        """True when an item of ``collection`` with this geometry and time span is visible.

        Examples
        --------
        >>> e = Entitlement(frozenset({"a"}), bbox=(0, 0, 1, 1))
        >>> e.allows("a", shapely.Point(0.5, 0.5), 0.0, 0.0), e.allows("b", None, 0.0, 0.0)
        (True, False)
        """
        if collection in self.public:
            return True
        if collection not in self.collections:
            return False
        if self._area is not None and (geometry is None or not self._area.intersects(geometry)):
            return False
        if self.start is not None and (end if end is not None else start or 0.0) < self.start:
            return False
        return not (self.end is not None and (start if start is not None else 0.0) > self.end)


@dataclass(frozen=True)
class Customer:
    """One export customer (or the anonymous principal)."""

    name: str
    """Unique name (``anonymous`` is reserved)."""
    entitlement: Entitlement
    """What the customer may see."""
    created: str = ""
    """When the customer was added (RFC 3339, UTC)."""
    revoked: str | None = None
    """When the key was revoked (RFC 3339, UTC), ``None`` while active."""
    key_hint: str = ""
    """The first characters of the key, to tell keys apart in listings."""
    key_id: str = ""
    """Identifies the current key without revealing it (16 hex digits of its SHA-256);
    signed links carry it, so a re-issued key does not revive links of the old one."""

    @property
    def active(self) -> bool:
        """True unless revoked."""
        return self.revoked is None


def bbox_area(bbox: tuple[float, float, float, float]) -> shapely.Geometry:
    """The area of a (west, south, east, north) box; west > east crosses the antimeridian
    (two boxes, not the rest of the world between them).

    >>> bbox_area((170, -10, -170, 10)).bounds
    (-180.0, -10.0, 180.0, 10.0)
    >>> round(bbox_area((170, -10, -170, 10)).area)
    400
    """
    w, s, e, n = bbox
    if w > e:
        return shapely.union(shapely.box(w, s, 180.0, n), shapely.box(-180.0, s, e, n))
    return shapely.box(w, s, e, n)


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``"west,south,east,north"`` -> a checked tuple (``None`` passes through).

    Examples
    --------
    >>> parse_bbox("50,40,60,45")
    (50.0, 40.0, 60.0, 45.0)
    """
    if text is None or text == "":
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise CustomerError(f"--bbox {text!r}: give four numbers west,south,east,north") from None
    if len(values) != 4:
        raise CustomerError(f"--bbox {text!r}: give four numbers west,south,east,north")
    w, s, e, n = values
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise CustomerError(
            f"--bbox {text!r}: need -180 <= west < east <= 180 and -90 <= south < north <= 90"
        )
    return (w, s, e, n)


def _parse_instant(text: str, what: str) -> float | None:
    if text in ("", ".."):
        return None
    try:
        return _utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00"))).timestamp()
    except ValueError:
        raise CustomerError(f"--datetime: {what} {text!r} is not an RFC 3339 date-time") from None


def parse_interval(text: str | None) -> tuple[float | None, float | None]:
    """``"start/end"`` (RFC 3339, ``..`` for open) -> Unix seconds ``(start, end)``.

    Examples
    --------
    >>> parse_interval("2024-01-01T00:00:00Z/..")
    (1704067200.0, None)
    """
    if text is None or text == "":
        return (None, None)
    parts = text.split("/")
    if len(parts) != 2:
        raise CustomerError(f"--datetime {text!r}: give START/END (use '..' for an open end)")
    start, end = _parse_instant(parts[0], "start"), _parse_instant(parts[1], "end")
    if start is not None and end is not None and start > end:
        raise CustomerError(f"--datetime {text!r}: start is after end")
    return (start, end)


class CustomerStore:
    """Customers of one export catalog (SQLite in the catalog's private state folder).

    Parameters
    ----------
    catalog_dir
        The export catalog folder; the database is ``<catalog>/.eo-pipeline/customers.sqlite``.
    """

    def __init__(self, catalog_dir: str | os.PathLike[str]) -> None:
        self.path = state_dir(catalog_dir) / _DB
        with self._connect() as con:
            con.executescript(_SCHEMA)
        os.chmod(self.path, 0o600)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=10)
        try:
            with con:
                yield con
        finally:
            con.close()

    @staticmethod
    def _row(row: tuple) -> Customer:
        name, key_sha, hint, collections, bbox, start, end, created, revoked = row
        ent = Entitlement(
            collections=frozenset(json.loads(collections)),
            bbox=tuple(json.loads(bbox)) if bbox else None,
            start=start,
            end=end,
        )
        return Customer(
            name, ent, created=created, revoked=revoked, key_hint=hint, key_id=key_sha[:16]
        )

    _COLUMNS = "name, key_sha256, key_hint, collections, bbox, start_ts, end_ts, created, revoked"

    def add(self, name: str, entitlement: Entitlement) -> str:
        """Add a customer and return its new API key (shown once, stored hashed).

        A revoked customer may be added again (it gets a new key); an active one may not.

        Raises
        ------
        CustomerError
            When the name is empty, reserved, or an active customer already has it.
        """
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise CustomerError(
                f"customer name {name!r}: use letters, digits, '-', '_' or '.' only"
            )
        if name == ANONYMOUS:
            raise CustomerError(
                f"customer name {ANONYMOUS!r} is reserved for requests without a key"
            )
        existing = self.get(name)
        if existing is not None and existing.active:
            raise CustomerError(
                f"customer {name!r} already exists with an active key; "
                f"`eo-pipeline customers revoke {name}` first to issue a new key"
            )
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ent = entitlement
        with self._connect() as con:
            con.execute("DELETE FROM customers WHERE name = ?", (name,))
            con.execute(
                "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    name,
                    _hash_key(key),
                    key[: len(KEY_PREFIX) + 6] + "...",
                    json.dumps(sorted(ent.collections)),
                    json.dumps(list(ent.bbox)) if ent.bbox else None,
                    ent.start,
                    ent.end,
                    created,
                ),
            )
        return key

    def get(self, name: str) -> Customer | None:
        """The customer called ``name`` (active or revoked), ``None`` when unknown."""
        with self._connect() as con:
            row = con.execute(
                f"SELECT {self._COLUMNS} FROM customers WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else self._row(row)

    def authenticate(self, key: str) -> Customer | None:
        """The active customer owning ``key``; ``None`` for unknown, malformed or revoked keys."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        with self._connect() as con:
            row = con.execute(
                f"SELECT {self._COLUMNS} FROM customers WHERE key_sha256 = ?", (_hash_key(key),)
            ).fetchone()
        if row is None:
            return None
        customer = self._row(row)
        return customer if customer.active else None

    def list(self) -> list[Customer]:
        """All customers, active and revoked, by name."""
        with self._connect() as con:
            rows = con.execute(f"SELECT {self._COLUMNS} FROM customers ORDER BY name").fetchall()
        return [self._row(r) for r in rows]

    def revoke(self, name: str) -> None:
        """Revoke the customer's key at once (its signed links stop working too, for good).

        Raises
        ------
        CustomerError
            When no customer has that name.
        """
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._connect() as con:
            cur = con.execute(
                "UPDATE customers SET revoked = ? WHERE name = ? AND revoked IS NULL", (now, name)
            )
            if cur.rowcount == 0 and self.get(name) is None:
                raise CustomerError(
                    f"no customer {name!r}; `eo-pipeline customers list` shows them"
                )


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _catalog_collections(catalog_dir: Path) -> set[str]:
    root = catalog_dir / "catalog.json"
    if not root.exists():
        raise CustomerError(
            f"{root} not found; publish products first (`eo-pipeline publish SRC --catalog "
            f"{catalog_dir}`)"
        )
    ids: set[str] = set()
    for link in json.loads(root.read_text()).get("links", []):
        if link.get("rel") == "child":
            child = json.loads((root.parent / link["href"]).read_text())
            if child.get("type") == "Collection":
                ids.add(child["id"])
    return ids


def _format(customers: Iterable[Customer]) -> str:
    lines = [f"{'name':<20} {'status':<8} {'key':<14} {'collections':<40} bbox / datetime"]
    for c in customers:
        e = c.entitlement
        where = ",".join(f"{v:g}" for v in e.bbox) if e.bbox else "anywhere"
        when = f"{_iso(e.start)}/{_iso(e.end)}" if (e.start or e.end) else "any time"
        status = "active" if c.active else "revoked"
        lines.append(
            f"{c.name:<20} {status:<8} {c.key_hint:<14} {','.join(sorted(e.collections)):<40} "
            f"{where} {when}"
        )
    return "\n".join(lines)


def customers_cli(args: argparse.Namespace) -> int:
    """``eo-pipeline customers add|list|revoke`` (see ``eo-pipeline customers --help``).

    ``add NAME --collections a,b [--bbox W,S,E,N] [--datetime START/END]`` prints the new key
    once; ``list`` prints every customer (never a key); ``revoke NAME`` disables the key.
    """
    catalog = Path(args.catalog)
    store = CustomerStore(catalog)
    if args.action == "list":
        print(_format(store.list()))
        return 0
    if not args.name:
        raise CustomerError(f"`eo-pipeline customers {args.action}` needs a customer NAME")
    if args.action == "revoke":
        store.revoke(args.name)
        print(f"revoked {args.name}")
        return 0
    collections = frozenset(c.strip() for c in args.collections.split(",") if c.strip())
    if not collections:
        raise CustomerError("--collections: name at least one collection the customer bought")
    known = _catalog_collections(catalog)
    unknown = sorted(collections - known)
    if unknown:
        raise CustomerError(
            f"--collections: {', '.join(unknown)} not in {catalog}; known: {', '.join(sorted(known))}"
        )
    start, end = parse_interval(args.datetime)
    ent = Entitlement(collections, bbox=parse_bbox(args.bbox), start=start, end=end)
    key = store.add(args.name, ent)
    print(f"added customer {args.name}; API key (shown once, store it safely):\n{key}")
    return 0

"""What the catalog index stores of an item, read from its JSON; CQL2 over such rows.

:func:`row_of_file` / :func:`doc_values` turn an item (file or document) into the values of
the index's ``items`` table (:mod:`eo_pipeline.catalogs.index`); :func:`filter_items`
evaluates a CQL2 filter over item documents with the same SQL, for items that come from no
indexed catalog. :data:`QUERYABLES` (from :mod:`eo_pipeline.catalogs.index_core`) are the CQL2 queryables (the export API's names,
:mod:`eo_pipeline.catalogs.queryables`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from eo_pipeline.catalogs.cql2_sql import cql2_to_sql, parse_cql2, register_functions
from eo_pipeline.catalogs.index_core import QUERYABLES
from eo_pipeline.catalogs.queryables import PROPERTY_QUERYABLES
from eo_pipeline.errors import CatalogError, FilterError

__all__ = [
    "QUERYABLES",
    "doc_values",
    "dumps_json",
    "filter_items",
    "read_json",
    "rfc3339_timestamp",
    "row_of_file",
]

QUERYABLE_PREFIXES = ("view:", "sat:", "eo_pipeline:", "processing:", "proj:", "sar:", "eo:")
_QUERYABLE = frozenset(name for name, *_ in PROPERTY_QUERYABLES)


def rfc3339_timestamp(text: Any, where: str) -> float | None:
    """POSIX seconds of an RFC 3339 date-time (naive = UTC); ``None`` stays ``None``."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise CatalogError(f"{where}: a datetime must be an RFC 3339 string, got {text!r}")
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CatalogError(f"{where}: {text!r} is not an RFC 3339 datetime") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def interval_bounds(text: str | None) -> tuple[float | None, float | None]:
    if not text:
        return None, None
    parts = text.split("/")
    if len(parts) == 1:
        if len(parts[0]) == 10:  # a date: the whole day
            parts = [parts[0], parts[0]]
        else:
            t = rfc3339_timestamp(parts[0], "datetime")
            return t, t
    if len(parts) != 2:
        raise CatalogError(f"datetime {text!r}: give one instant or start/end")
    lo, hi = (None if p in ("", "..") else p for p in parts)
    if lo and len(lo) == 10:
        lo += "T00:00:00Z"
    if hi and len(hi) == 10:
        hi += "T23:59:59.999999Z"
    return rfc3339_timestamp(lo, "datetime start"), rfc3339_timestamp(hi, "datetime end")


try:  # orjson parses item JSON 3-5x faster (index builds are parse-bound)
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _orjson_dumps: Callable[[Any], bytes] | None = orjson.dumps
except ImportError:  # pragma: no cover - orjson comes with the dependencies
    _loads = json.loads
    _orjson_dumps = None


def dumps_json(obj: Any) -> str:
    """Strict, compact JSON for the index's columns: NaN and infinities become ``null``
    (SQLite's JSON functions refuse them), integers beyond 64 bits stay exact.

    >>> dumps_json({"a": float("nan"), "b": 2**70})
    '{"a":null,"b":1180591620717411303424}'
    """
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(obj).decode()  # NaN -> null
        except TypeError:  # an integer beyond 64 bits
            pass
    return json.dumps(_finite(obj), separators=(",", ":"))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def read_json(path: Path | str) -> dict[str, Any]:
    """A STAC JSON document (a JSON object), the one reader of the catalog store and both
    indexes: orjson first (index builds are parse-bound), Python's json for what it refuses
    but Python writes (NaN/Infinity literals), so the store and the index agree on which
    files are items.

    Raises
    ------
    CatalogError
        Missing, unreadable, not JSON (also non-UTF-8) or not an object; the file is named.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
        try:
            data = _loads(raw)
        except ValueError:  # orjson refuses NaN literals: Python's json reads them
            data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{path}: no such file") from None
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: absurd nesting
        raise CatalogError(
            f"{path}: cannot read STAC JSON ({err}); fix or remove the file"
        ) from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: not a STAC object (top level is not a JSON object)")
    return data


def links_of(doc: Mapping[str, Any], rel: str, base: Path | str) -> Iterator[str]:
    for link in doc.get("links") or ():
        if isinstance(link, dict) and link.get("rel") == rel and isinstance(link.get("href"), str):
            href = link["href"]
            if "://" not in href:
                yield os.path.normpath(os.path.join(base, href))


def doc_values(
    doc: Mapping[str, Any], where: str
) -> tuple[tuple[Any, ...], list[tuple[float, ...]]]:
    """``(id, start_ts, end_ts, cloud, props JSON, geometry JSON)`` and the bboxes of an item
    document (``where`` names it in errors)."""
    if doc.get("type") != "Feature" or not isinstance(doc.get("id"), str):
        raise CatalogError(f"{where}: not a STAC item (type Feature with a string id)")
    props = doc.get("properties")
    if not isinstance(props, dict):
        raise CatalogError(f"{where}: item {doc['id']!r} has no properties object")
    start = rfc3339_timestamp(
        props.get("start_datetime") or props.get("datetime"), f"{where}: datetime"
    )
    end = rfc3339_timestamp(
        props.get("end_datetime") or props.get("datetime"), f"{where}: datetime"
    )
    cloud = props.get("eo:cloud_cover")
    queryable = {  # scalars and lists only: objects such as the sensor definition stay out
        k: v
        for k, v in props.items()
        if (k in _QUERYABLE or k.startswith(QUERYABLE_PREFIXES)) and not isinstance(v, dict)
    }
    boxes: list[tuple[float, ...]] = []
    bbox = doc.get("bbox")
    if (
        isinstance(bbox, list)
        and len(bbox) in (4, 6)
        and all(isinstance(v, int | float) for v in bbox)
    ):
        w, s, e, n = (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else bbox
        boxes = [(w, e, s, n)] if w <= e else [(w, 180.0, s, n), (-180.0, e, s, n)]
    geometry = doc.get("geometry")
    values = (
        doc["id"],
        start,
        end,
        float(cloud) if isinstance(cloud, int | float) else None,
        dumps_json(queryable),
        dumps_json(geometry) if isinstance(geometry, dict) else None,
    )
    return values, boxes


def row_of_file(
    path: str, root: str, collection: str
) -> tuple[tuple[Any, ...], list[tuple[float, ...]]]:
    """The items-table values and the bboxes of one item file (``root`` ends with a separator)."""
    st = os.stat(path)
    doc = read_json(path)
    (iid, start, end, cloud, props, geometry), boxes = doc_values(doc, path)
    if not path.startswith(root):
        raise CatalogError(f"{path}: item file outside the catalog root {root}")
    rel = path[len(root) :].replace(os.sep, "/")
    coll = str(doc.get("collection") or collection)
    values = (coll, iid, rel, start, end, cloud, props, geometry, st.st_mtime_ns, st.st_size)
    return values, boxes


def filter_items(docs: Sequence[Mapping[str, Any]], cql2: str | Mapping[str, Any]) -> list[bool]:
    """Which item documents match a CQL2 filter, evaluated by the same SQL as the index's
    (an in-memory table of ``docs``): for items that come from no indexed catalog (a
    geoparquet file, a walked folder).

    Raises
    ------
    FilterError
        A filter that does not parse or names an unknown queryable.

    Examples
    --------
    >>> doc = {"type": "Feature", "id": "a", "properties": {"datetime": "2024-01-01T00:00:00Z",
    ...        "eo:cloud_cover": 5}, "geometry": None}
    >>> filter_items([doc], "eo:cloud_cover < 10"), filter_items([doc], "eo:cloud_cover > 10")
    ([True], [False])
    """
    sql, params = cql2_to_sql(parse_cql2(cql2), QUERYABLES)
    con = sqlite3.connect(":memory:")
    try:
        register_functions(con)
        con.execute(
            "CREATE TABLE items (pk INTEGER PRIMARY KEY, collection TEXT, id TEXT, start_ts REAL, "
            "end_ts REAL, cloud REAL, props TEXT, geometry TEXT)"
        )
        for pk, doc in enumerate(docs):
            values, _ = doc_values(doc, f"item {doc.get('id')!r}")
            con.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (pk, str(doc.get("collection") or ""), *values))  # fmt: skip
        hits = {r[0] for r in con.execute(f"SELECT i.pk FROM items i WHERE {sql}", params)}
    except sqlite3.Error as err:
        raise FilterError(f"filter: cannot be evaluated ({err})") from None
    finally:
        con.close()
    return [pk in hits for pk in range(len(docs))]

"""What customers can filter on: queryables, free text (``q``) and the query extension.

- :data:`ITEM_QUERYABLES`: every property the filter extension (CQL2) and the query extension
  accept, as SQL over the index's ``items i`` table (see :mod:`~eo_pipeline.export.api.index`);
  ``datetime`` is the item's time span (its start in plain comparisons), ``geometry`` its
  footprint; other properties are read from the stored item JSON;
- :func:`queryables_document`: the ``/queryables`` JSON schema (API-wide or per collection);
- :func:`parse_free_text` / :func:`free_text_sql`: the free-text extension's ``q`` (terms and
  quoted phrases, comma or space separated, any of them matching, case-insensitive) over
  titles, descriptions and keywords;
- :func:`query_to_cql2`: the STAC query extension (``{"eo:cloud_cover": {"lt": 10}}``) as CQL2
  JSON, so both go through one translator (:func:`eo_pipeline.catalogs.cql2_sql.cql2_to_sql`).

Examples
--------
>>> parse_free_text('landsat, "surface reflectance" ndvi')
('landsat', 'surface reflectance', 'ndvi')
>>> query_to_cql2({"eo:cloud_cover": {"lt": 10}})
{'op': '<', 'args': [{'property': 'eo:cloud_cover'}, 10]}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from eo_pipeline.catalogs.cql2_sql import Queryable
from eo_pipeline.errors import FilterError

__all__ = [
    "ITEM_QUERYABLES",
    "free_text",
    "free_text_sql",
    "parse_free_text",
    "query_to_cql2",
    "queryables_document",
]


def _prop(name: str, kind: str, title: str, **schema: Any) -> Queryable:
    sql = f"json_extract(i.json, '$.properties.\"{name}\"')"
    if kind == "timestamp":
        sql = f"eo_ts({sql})"
    return Queryable(sql, kind, title=title, schema={"type": kind, **schema} if schema else None)


_PERCENT = {"minimum": 0, "maximum": 100}
_ANGLE = {"minimum": -360, "maximum": 360}

ITEM_QUERYABLES: dict[str, Queryable] = {
    "id": Queryable("i.id", "string", title="Item id"),
    "collection": Queryable("i.collection", "string", title="Collection id"),
    "geometry": Queryable("i.geometry", "geometry", title="Footprint"),
    "datetime": Queryable("i.start_ts", "interval", end_sql="i.end_ts", title="Acquisition time"),
    "start_datetime": Queryable("i.start_ts", "timestamp", title="Start of the time span"),
    "end_datetime": Queryable("i.end_ts", "timestamp", title="End of the time span"),
    "created": _prop("created", "timestamp", "Created"),
    "updated": _prop("updated", "timestamp", "Updated"),
    "published": _prop("published", "timestamp", "Published (put on sale)"),
    "expires": _prop("expires", "timestamp", "Licence expiry"),
    "platform": _prop("platform", "string", "Platform (satellite)"),
    "constellation": _prop("constellation", "string", "Constellation"),
    "mission": _prop("mission", "string", "Mission"),
    "instruments": Queryable(
        "json_extract(i.json, '$.properties.instruments')", "array", title="Instruments"
    ),
    "gsd": _prop("gsd", "number", "Ground sample distance (m)", exclusiveMinimum=0),
    "eo:cloud_cover": _prop("eo:cloud_cover", "number", "Cloud cover (%)", **_PERCENT),
    "eo:snow_cover": _prop("eo:snow_cover", "number", "Snow cover (%)", **_PERCENT),
    "view:sun_elevation": _prop("view:sun_elevation", "number", "Sun elevation (deg)", **_ANGLE),
    "view:sun_azimuth": _prop("view:sun_azimuth", "number", "Sun azimuth (deg)", **_ANGLE),
    "view:off_nadir": _prop("view:off_nadir", "number", "Off-nadir angle (deg)", **_ANGLE),
    "view:incidence_angle": _prop("view:incidence_angle", "number", "Incidence angle (deg)"),
    "view:azimuth": _prop("view:azimuth", "number", "View azimuth (deg)", **_ANGLE),
    "processing:level": _prop("processing:level", "string", "Processing level"),
    "proj:code": _prop("proj:code", "string", "Projection code (e.g. EPSG:32642)"),
    "proj:epsg": _prop("proj:epsg", "integer", "EPSG code"),
    "sat:orbit_state": _prop("sat:orbit_state", "string", "Orbit state"),
    "sat:relative_orbit": _prop("sat:relative_orbit", "integer", "Relative orbit"),
    "order:status": _prop("order:status", "string", "Order status"),
    "eo_pipeline:sensor": _prop("eo_pipeline:sensor", "string", "eo-pipeline sensor file"),
    "eo_pipeline:format": _prop("eo_pipeline:format", "string", "Delivery format"),
    "eo_pipeline:simulated": _prop("eo_pipeline:simulated", "boolean", "Simulated scene"),
    **{
        f"eo_pipeline:{k}_percent": _prop(
            f"eo_pipeline:{k}_percent",
            "number",
            f"{k.capitalize()} (% of valid pixels)",
            **_PERCENT,
        )
        for k in ("cloud", "shadow", "cirrus", "snow", "clear", "water")
    },
}
"""Item properties a filter may use (name -> SQL over ``items i``)."""

ALWAYS_QUERYABLE = ("id", "collection", "geometry", "datetime")
"""Listed for every collection; the others only where some item of it has a value."""


def queryables_document(
    url: str, names: Iterable[str], title: str = "Queryables"
) -> dict[str, Any]:
    """The JSON schema served at ``/queryables`` (``$id`` is its own URL).

    Examples
    --------
    >>> doc = queryables_document("http://x/queryables", ["eo:cloud_cover"])
    >>> doc["properties"]["eo:cloud_cover"]["maximum"], doc["additionalProperties"]
    (100, False)
    """
    props = {name: ITEM_QUERYABLES[name].json_schema() for name in names}
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": url,
        "type": "object",
        "title": title,
        "description": "Properties usable in `filter` (CQL2 text or JSON) and `query`.",
        "properties": props,
        "additionalProperties": False,
    }


def free_text(properties: Mapping[str, Any]) -> str:
    """The searchable text of an item or collection: title, description and keywords."""
    parts = [properties.get("title"), properties.get("description")]
    keywords = properties.get("keywords")
    if isinstance(keywords, list):
        parts += [str(k) for k in keywords]
    return " ".join(str(p) for p in parts if p).lower()


_TERM = re.compile(r'"([^"]*)"|([^\s,"]+)')
MAX_TERMS = 20


def parse_free_text(q: str | Iterable[str] | None) -> tuple[str, ...]:
    """``q`` as search terms: quoted phrases kept whole, other words split on commas/spaces.

    Raises
    ------
    FilterError
        For more than 20 terms or a term longer than 200 characters.
    """
    if q is None:
        return ()
    texts = [q] if isinstance(q, str) else [str(x) for x in q]
    terms: list[str] = []
    for text in texts:
        for phrase, word in _TERM.findall(text):
            term = (phrase or word).strip()
            if term and term.upper() not in ("OR",):
                terms.append(term)
    if len(terms) > MAX_TERMS:
        raise FilterError(f"q: {len(terms)} terms; at most {MAX_TERMS}")
    if any(len(t) > 200 for t in terms):
        raise FilterError("q: a term is longer than 200 characters")
    return tuple(dict.fromkeys(terms))


def free_text_sql(column: str, terms: Iterable[str]) -> tuple[str, list[Any]]:
    """A ``WHERE`` term matching any of ``terms`` inside ``column`` (lower-case text)."""
    params = []
    for term in terms:
        escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(f"%{escaped}%")
    sql = " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for _ in params)
    return f"({sql})", params


_QUERY_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_QUERY_STR = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}


def _like_literal(value: Any) -> str:
    if not isinstance(value, str):
        raise FilterError(f"query: startsWith/endsWith/contains need a string, got {value!r}")
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _coerce(name: str, value: Any) -> Any:
    """A numeric string for a numeric queryable becomes the number (``{"eq": "2"}``)."""
    q = ITEM_QUERYABLES.get(name)
    if q is not None and q.type in ("number", "integer") and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise FilterError(f"query.{name}: {value!r} is not a number") from None
    if isinstance(value, list):
        return [_coerce(name, v) for v in value]
    return value


def query_to_cql2(query: Mapping[str, Any]) -> dict[str, Any]:
    """The query extension's object as one CQL2-JSON ``and`` expression.

    Operators: ``eq``, ``neq``, ``lt``, ``lte``, ``gt``, ``gte``, ``startsWith``,
    ``endsWith``, ``contains``, ``in``. Numeric strings given for numeric queryables are read
    as numbers (query-extension clients often send ``"2"``).

    Raises
    ------
    FilterError
        For an operator outside that list or a value of the wrong shape.
    """
    if not isinstance(query, Mapping):
        raise FilterError("query must be an object: {property: {operator: value}}")
    terms: list[Any] = []
    for name, ops in query.items():
        if not isinstance(ops, Mapping) or not ops:
            raise FilterError(f"query.{name}: give an object of operators, e.g. {{'lt': 10}}")
        prop = {"property": str(name).removeprefix("properties.")}
        for op, raw in ops.items():
            value = _coerce(prop["property"], raw) if op in (*_QUERY_OPS, "in") else raw
            if op in _QUERY_OPS:
                terms.append({"op": _QUERY_OPS[op], "args": [prop, value]})
            elif op in _QUERY_STR:
                pattern = _QUERY_STR[op].format(_like_literal(value))
                terms.append({"op": "like", "args": [prop, pattern]})
            elif op == "in":
                if not isinstance(value, list) or not value:
                    raise FilterError(f"query.{name}.in: give a non-empty list")
                q = ITEM_QUERYABLES.get(prop["property"])
                kind = "a_overlaps" if q is not None and q.type == "array" else "in"
                terms.append({"op": kind, "args": [prop, value]})  # arrays: any value in
            else:
                known = ", ".join([*_QUERY_OPS, *_QUERY_STR, "in"])
                raise FilterError(f"query.{name}: operator {op!r} unknown; use {known}")
    if not terms:
        raise FilterError("query is empty")
    return terms[0] if len(terms) == 1 else {"op": "and", "args": terms}

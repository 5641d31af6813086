"""The properties a search may filter on, for both indexes: one list, one filter language.

The library's catalog index (:mod:`eo_pipeline.catalogs.index`, beside any static catalog)
and the export API's index (:mod:`eo_pipeline.export.api.index`) store items differently,
but a filter means the same on both: :func:`item_queryables` builds the queryables (name ->
SQL over the caller's ``items i`` table) from :data:`PROPERTY_QUERYABLES` and the caller's
columns; CQL2 (text or JSON, :func:`eo_pipeline.catalogs.cql2_sql.parse_cql2`) and the STAC
query extension (:func:`query_to_cql2`) both become SQL through
:func:`eo_pipeline.catalogs.cql2_sql.cql2_to_sql`.

Examples
--------
>>> q = item_queryables(lambda n: f"json_extract(i.props, '$.\\"{n}\\"')")
>>> q["eo:cloud_cover"].sql, q["datetime"].end_sql
('json_extract(i.props, \\'$."eo:cloud_cover"\\')', 'i.end_ts')
>>> query_to_cql2({"eo:cloud_cover": {"lt": 10}})
{'op': '<', 'args': [{'property': 'eo:cloud_cover'}, 10]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eo_pipeline.catalogs.cql2_sql import Queryable
from eo_pipeline.errors import FilterError

__all__ = ["PROPERTY_QUERYABLES", "item_queryables", "query_to_cql2"]

_PERCENT = {"minimum": 0, "maximum": 100}
_ANGLE = {"minimum": -360, "maximum": 360}

PROPERTY_QUERYABLES: tuple[tuple[str, str, str, Mapping[str, Any]], ...] = (
    ("created", "timestamp", "Created", {}),
    ("updated", "timestamp", "Updated", {}),
    ("published", "timestamp", "Published (put on sale)", {}),
    ("expires", "timestamp", "Licence expiry", {}),
    ("platform", "string", "Platform (satellite)", {}),
    ("constellation", "string", "Constellation", {}),
    ("mission", "string", "Mission", {}),
    ("instruments", "array", "Instruments", {}),
    ("gsd", "number", "Ground sample distance (m)", {"exclusiveMinimum": 0}),
    ("eo:cloud_cover", "number", "Cloud cover (%)", _PERCENT),
    ("eo:snow_cover", "number", "Snow cover (%)", _PERCENT),
    ("view:sun_elevation", "number", "Sun elevation (deg)", _ANGLE),
    ("view:sun_azimuth", "number", "Sun azimuth (deg)", _ANGLE),
    ("view:off_nadir", "number", "Off-nadir angle (deg)", _ANGLE),
    ("view:incidence_angle", "number", "Incidence angle (deg)", {}),
    ("view:azimuth", "number", "View azimuth (deg)", _ANGLE),
    ("processing:level", "string", "Processing level", {}),
    ("proj:code", "string", "Projection code (e.g. EPSG:32642)", {}),
    ("proj:epsg", "integer", "EPSG code", {}),
    ("sat:orbit_state", "string", "Orbit state", {}),
    ("sat:relative_orbit", "integer", "Relative orbit", {}),
    ("order:status", "string", "Order status", {}),
    ("eo_pipeline:sensor", "string", "eo-pipeline sensor file", {}),
    ("eo_pipeline:format", "string", "Delivery format", {}),
    ("eo_pipeline:simulated", "boolean", "Simulated scene", {}),
    ("eo_pipeline:geometry", "string", "Sensor or map geometry", {}),
    ("eo_pipeline:aot550", "number", "Aerosol optical thickness at 550 nm used", {}),
    *(
        (f"eo_pipeline:{k}_percent", "number", f"{k.capitalize()} (% of valid pixels)", _PERCENT)
        for k in ("cloud", "shadow", "cirrus", "snow", "clear", "water")
    ),
)
"""Item properties a filter may use: ``(name, type, title, JSON-schema bounds)``."""


def item_queryables(
    prop_sql: Callable[[str], str],
    *,
    id_sql: str = "i.id",
    collection_sql: str = "i.collection",
    geometry_sql: str = "i.geometry",
    start_sql: str = "i.start_ts",
    end_sql: str = "i.end_ts",
) -> dict[str, Queryable]:
    """The queryables over one index's columns: ``prop_sql(name)`` is the SQL expression
    that yields property ``name`` (JSON scalar or array); the core fields are columns."""
    out = {
        "id": Queryable(id_sql, "string", title="Item id"),
        "collection": Queryable(collection_sql, "string", title="Collection id"),
        "geometry": Queryable(geometry_sql, "geometry", title="Footprint"),
        "datetime": Queryable(start_sql, "interval", end_sql=end_sql, title="Acquisition time"),
        "start_datetime": Queryable(start_sql, "timestamp", title="Start of the time span"),
        "end_datetime": Queryable(end_sql, "timestamp", title="End of the time span"),
    }
    for name, kind, title, bounds in PROPERTY_QUERYABLES:
        sql = prop_sql(name)
        if kind == "timestamp":
            sql = f"eo_ts({sql})"
        schema = {"type": kind, **bounds} if bounds else None
        out[name] = Queryable(sql, kind, title=title, schema=schema)
    return out


_QUERY_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_QUERY_STR = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}
_TYPES = {name: kind for name, kind, _, _ in PROPERTY_QUERYABLES}


def _like_literal(value: Any) -> str:
    if not isinstance(value, str):
        raise FilterError(f"query: startsWith/endsWith/contains need a string, got {value!r}")
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _coerce(name: str, value: Any) -> Any:
    """A numeric string for a numeric queryable becomes the number (``{"eq": "2"}``); an
    RFC 3339 string for a timestamp queryable becomes a CQL2 timestamp literal."""
    if isinstance(value, str) and (
        _TYPES.get(name) == "timestamp" or name in ("datetime", "start_datetime", "end_datetime")
    ):
        return {"timestamp": value}
    if _TYPES.get(name) in ("number", "integer") and isinstance(value, str):
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
    as numbers (query-extension clients often send ``"2"``), date-time strings for timestamp
    queryables as timestamps (``{"created": {"gt": "2024-06-01T00:00:00Z"}}``).

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
                kind = "a_overlaps" if _TYPES.get(prop["property"]) == "array" else "in"
                terms.append({"op": kind, "args": [prop, value]})  # arrays: any value in
            else:
                known = ", ".join([*_QUERY_OPS, *_QUERY_STR, "in"])
                raise FilterError(f"query.{name}: operator {op!r} unknown; use {known}")
    if not terms:
        raise FilterError("query is empty")
    return terms[0] if len(terms) == 1 else {"op": "and", "args": terms}

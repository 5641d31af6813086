"""CQL2 filters (text or JSON) to SQLite SQL with bound parameters, over declared queryables.

Parsing is the ``cql2`` library's (the OGC CQL2 grammar, text and JSON); this module only
walks the canonical CQL2-JSON tree it returns and writes SQL. Every literal becomes a ``?``
parameter and every property must be one of the caller's :class:`Queryable` objects, whose
SQL expressions the caller wrote: nothing a client sends is ever spliced into the SQL text.

Supported (the conformance classes a server using this may declare): basic CQL2 (``and``,
``or``, ``not``, ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``, ``isNull``), advanced comparison
operators (``like``, ``between``, ``in``), case-insensitive comparison (``casei``),
property-property comparisons, basic and full spatial functions (``s_intersects``,
``s_equals``, ``s_disjoint``, ``s_touches``, ``s_within``, ``s_overlaps``, ``s_crosses``,
``s_contains``; evaluated by shapely in a SQLite function, see :func:`register_functions`) and
temporal functions (``t_after`` ... ``t_intersects``, Allen's interval algebra over
``(start, end)`` pairs in Unix seconds) and, on array properties, ``a_overlaps``,
``a_contains`` and ``a_containedby`` (set semantics, SQLite ``json_each``). Arithmetic,
``a_equals`` and accent-insensitive comparison are refused with a
:class:`~eo_pipeline.errors.FilterError` naming them.

Examples
--------
>>> q = {"eo:cloud_cover": Queryable("json_extract(doc, '$.properties.\\"eo:cloud_cover\\"')",
...                                  "number")}
>>> sql, params = cql2_to_sql(parse_cql2("eo:cloud_cover < 10", "cql2-text"), q)
>>> sql, params
('(json_extract(doc, \\'$.properties."eo:cloud_cover"\\') < ?)', [10.0])
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import shapely
import shapely.geometry

from eo_pipeline.errors import FilterError

__all__ = [
    "CONFORMANCE",
    "Queryable",
    "cql2_to_sql",
    "parse_cql2",
    "register_functions",
]

CONFORMANCE = (
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-operators",
)
"""CQL2 conformance classes this translator implements."""

MAX_TEXT = 20_000
"""Longest CQL2 text accepted (characters)."""
MAX_DEPTH = 40
"""Deepest nesting accepted (parentheses, ``NOT`` chains, JSON levels): the parser recurses."""

_OPEN = -1.0e300
_CLOSE = 1.0e300


@dataclass(frozen=True)
class Queryable:
    """One filterable property: the SQL expression that yields it and its JSON-schema type."""

    sql: str
    """SQL expression over the caller's tables (trusted: written by the server, not a client)."""
    type: str
    """``string``, ``number``, ``integer``, ``boolean``, ``timestamp``, ``interval``,
    ``geometry`` or ``array``. ``timestamp`` expressions yield Unix seconds; ``geometry`` ones
    GeoJSON text; ``array`` ones a JSON array (text)."""
    end_sql: str | None = None
    """For ``interval`` (e.g. an item's ``datetime`` span): the end; :attr:`sql` is the start."""
    title: str = ""
    """Human title for the ``/queryables`` document."""
    schema: Mapping[str, Any] | None = None
    """JSON schema of the values for ``/queryables`` (derived from :attr:`type` when ``None``)."""

    def json_schema(self) -> dict[str, Any]:
        """The property's schema for a queryables document."""
        if self.schema is not None:
            out = dict(self.schema)
        elif self.type in ("timestamp", "interval"):
            out = {"type": "string", "format": "date-time"}
        elif self.type == "geometry":
            out = {"$ref": "https://geojson.org/schema/Geometry.json"}
        elif self.type == "array":
            out = {"type": "array", "items": {"type": "string"}}
        else:
            out = {"type": self.type}
        if self.title:
            out["title"] = self.title
        return out


def _depth_of_text(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    nots = len(re.findall(r"(?i)\bnot\b", text))
    signs = max(
        (len(re.sub(r"\s", "", m)) for m in re.findall(r"(?:[-+]\s*){2,}", text)), default=0
    )
    return max(deepest, nots, signs)


def _depth_of_json(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


def parse_cql2(value: str | Mapping[str, Any], lang: str | None = None) -> dict[str, Any]:
    """A CQL2 filter (text, or JSON as text or object) as canonical CQL2-JSON.

    Parameters
    ----------
    value
        The filter: CQL2 text, a CQL2-JSON string, or an already-decoded CQL2-JSON object.
    lang
        ``cql2-text`` or ``cql2-json``; ``None`` guesses (objects and text starting with
        ``{`` are JSON).

    Raises
    ------
    FilterError
        On a syntax error, an unknown language, or a filter too long or too deeply nested.

    Examples
    --------
    >>> parse_cql2("platform = 'kazeosat-2'")
    {'op': '=', 'args': [{'property': 'platform'}, 'kazeosat-2']}
    """
    try:
        import cql2
    except ImportError:  # pragma: no cover - a core dependency
        raise FilterError("CQL2 filters need the `cql2` package: pip install cql2") from None
    if lang not in (None, "cql2-text", "cql2-json"):
        raise FilterError(f"filter-lang {lang!r}: use 'cql2-text' or 'cql2-json'")
    if not isinstance(value, str):
        if _depth_of_json(value) > MAX_DEPTH:
            raise FilterError(f"filter: nested deeper than {MAX_DEPTH} levels")
        text, lang = json.dumps(value), "cql2-json"
    else:
        text = value
        if lang is None:
            lang = "cql2-json" if text.lstrip().startswith("{") else "cql2-text"
    if not text.strip():
        raise FilterError("filter is empty")
    if len(text) > MAX_TEXT:
        raise FilterError(f"filter is {len(text)} characters long; at most {MAX_TEXT}")
    if lang == "cql2-text" and _depth_of_text(text) > MAX_DEPTH:
        raise FilterError(f"filter: nested deeper than {MAX_DEPTH} levels")
    if lang == "cql2-json" and isinstance(value, str):
        try:
            if _depth_of_json(json.loads(text)) > MAX_DEPTH:
                raise FilterError(f"filter: nested deeper than {MAX_DEPTH} levels")
        except (ValueError, RecursionError):
            raise FilterError("filter is not valid JSON (filter-lang cql2-json)") from None
    try:
        expr = cql2.parse_json(text) if lang == "cql2-json" else cql2.parse_text(text)
        out = expr.to_json()
    except Exception as err:  # cql2 raises ParseError / ValidationError / ValueError
        message = " ".join(str(err).split())[:300]
        raise FilterError(f"filter is not valid {lang}: {message}") from None
    if not isinstance(out, dict):
        raise FilterError(f"filter is not a CQL2 expression ({lang}): {str(out)[:100]}")
    return out


def _timestamp(text: Any) -> float:
    if not isinstance(text, str):
        raise FilterError(f"filter: {text!r} is not a timestamp string")
    if text == "..":
        raise FilterError("filter: '..' is only allowed as an interval end")
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FilterError(f"filter: {text!r} is not an RFC 3339 timestamp or date") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _geometry(value: Mapping[str, Any]) -> bytes:
    try:
        if "bbox" in value:
            box = [float(v) for v in value["bbox"]]
            if len(box) == 6:
                box = [box[0], box[1], box[3], box[4]]
            if len(box) != 4:
                raise ValueError("bbox needs 4 or 6 numbers")
            geom = shapely.box(*box)
        else:
            geom = shapely.geometry.shape(value)
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        IndexError,
        shapely.errors.ShapelyError,
    ):
        raise FilterError(f"filter: {json.dumps(value)[:120]} is not a valid geometry") from None
    if geom.is_empty:
        raise FilterError("filter: empty geometry")
    return bytes(shapely.to_wkb(geom))


class _Translator:
    """Walks CQL2-JSON and collects SQL text and parameters."""

    def __init__(self, queryables: Mapping[str, Queryable]) -> None:
        self.queryables = queryables
        self.params: list[Any] = []

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def property(self, name: Any) -> Queryable:
        found = self.queryables.get(str(name)) or self.queryables.get(
            str(name).removeprefix("properties.")
        )
        if found is None:
            known = ", ".join(sorted(self.queryables))
            raise FilterError(f"filter: {name!r} is not a queryable; use one of: {known}")
        return found

    # -- scalar operands --------------------------------------------------------------------
    def scalar(self, node: Any) -> tuple[str, str]:
        """``(sql, type)`` of a comparison operand."""
        if isinstance(node, bool):
            return self.bind(int(node)), "boolean"
        if isinstance(node, int | float):
            return self.bind(float(node)), "number"
        if isinstance(node, str):
            return self.bind(node), "string"
        if isinstance(node, dict):
            if "property" in node:
                q = self.property(node["property"])
                if q.type == "geometry":
                    raise FilterError(
                        f"filter: {node['property']!r} is a geometry; use S_* functions"
                    )
                kind = "timestamp" if q.type == "interval" else q.type
                return q.sql, kind
            if "timestamp" in node:
                return self.bind(_timestamp(node["timestamp"])), "timestamp"
            if "date" in node:
                return self.bind(_timestamp(node["date"])), "timestamp"
            if node.get("op") == "casei":
                args = node.get("args") or []
                if len(args) != 1:
                    raise FilterError("filter: CASEI takes one argument")
                sql, kind = self.scalar(args[0])
                return f"lower({sql})", kind
        raise FilterError(f"filter: {json.dumps(node)[:120]} is not a supported operand")

    # -- predicates -------------------------------------------------------------------------
    def predicate(self, node: Any) -> str:
        if isinstance(node, bool):
            return "1" if node else "0"
        if not isinstance(node, dict) or "op" not in node:
            raise FilterError(f"filter: {json.dumps(node)[:120]} is not a predicate")
        op = str(node["op"]).lower()
        args = node.get("args")
        if not isinstance(args, list):
            raise FilterError(f"filter: operator {op!r} needs an 'args' list")
        handler = _HANDLERS.get(op) or (_spatial if op in _SPATIAL else None)
        handler = handler or (_array if op in _ARRAY else None)
        handler = handler or (_temporal if op in _TEMPORAL else None)
        if handler is None:
            raise FilterError(
                f"filter: operator {op!r} is not supported (arithmetic, A_EQUALS and ACCENTI "
                "are not)"
            )
        return handler(self, op, args)


def _logic(t: _Translator, op: str, args: list[Any]) -> str:
    if op == "not":
        if len(args) != 1:
            raise FilterError("filter: NOT takes one argument")
        return f"(NOT {t.predicate(args[0])})"
    if len(args) < 2:
        raise FilterError(f"filter: {op.upper()} takes two or more arguments")
    return "(" + f" {op.upper()} ".join(t.predicate(a) for a in args) + ")"


def _compare(t: _Translator, op: str, args: list[Any]) -> str:
    if len(args) != 2:
        raise FilterError(f"filter: {op!r} takes two arguments")
    (left, lt), (right, rt) = t.scalar(args[0]), t.scalar(args[1])
    _check_types(lt, rt, op)
    return f"({left} {'<>' if op == '<>' else op} {right})"


def _check_types(lt: str, rt: str, op: str) -> None:
    numeric = {"number", "integer"}
    if lt == rt or (lt in numeric and rt in numeric):
        return
    raise FilterError(f"filter: {op!r} compares a {lt} with a {rt}")


def _is_null(t: _Translator, op: str, args: list[Any]) -> str:
    if len(args) != 1:
        raise FilterError("filter: IS NULL takes one argument")
    if isinstance(args[0], dict) and "property" in args[0]:
        q = t.property(args[0]["property"])
        return f"({q.sql} IS NULL)"
    sql, _ = t.scalar(args[0])
    return f"({sql} IS NULL)"


def _glob_of_like(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(f"[{nxt}]" if nxt in "*?[" else nxt)
            i += 2
            continue
        out.append({"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}.get(ch, ch))
        i += 1
    return "".join(out)


def _like(t: _Translator, op: str, args: list[Any]) -> str:
    if len(args) != 2:
        raise FilterError("filter: LIKE takes two arguments")
    left, lt = t.scalar(args[0])
    pattern = args[1]
    lowered = False
    if isinstance(pattern, dict) and pattern.get("op") == "casei":
        inner = pattern.get("args") or [None]
        pattern, lowered = inner[0], True
    if not isinstance(pattern, str) or lt != "string":
        raise FilterError("filter: LIKE compares a string property with a string pattern")
    if lowered:
        pattern = pattern.lower()
    return f"({left} GLOB {t.bind(_glob_of_like(pattern))})"  # CQL2 LIKE is case-sensitive


def _between(t: _Translator, op: str, args: list[Any]) -> str:
    if len(args) == 2 and isinstance(args[1], list) and len(args[1]) == 2:
        args = [args[0], *args[1]]
    if len(args) != 3:
        raise FilterError("filter: BETWEEN takes a value, a lower and an upper bound")
    value, vt = t.scalar(args[0])
    low, lt = t.scalar(args[1])
    high, ht = t.scalar(args[2])
    _check_types(vt, lt, "between")
    _check_types(vt, ht, "between")
    return f"({value} BETWEEN {low} AND {high})"


def _in(t: _Translator, op: str, args: list[Any]) -> str:
    if len(args) != 2 or not isinstance(args[1], list) or not args[1]:
        raise FilterError("filter: IN takes a value and a non-empty list")
    value, vt = t.scalar(args[0])
    items = []
    for item in args[1]:
        sql, kind = t.scalar(item)
        _check_types(vt, kind, "in")
        items.append(sql)
    return f"({value} IN ({', '.join(items)}))"


_SPATIAL = frozenset(
    {"s_intersects", "s_equals", "s_disjoint", "s_touches", "s_within", "s_overlaps",
     "s_crosses", "s_contains"}
)  # fmt: skip


def _spatial_operand(t: _Translator, node: Any) -> str:
    if isinstance(node, dict) and "property" in node:
        q = t.property(node["property"])
        if q.type != "geometry":
            raise FilterError(f"filter: {node['property']!r} is not a geometry queryable")
        return q.sql
    if isinstance(node, dict):
        return t.bind(_geometry(node))
    raise FilterError(f"filter: {json.dumps(node)[:120]} is not a geometry")


def _spatial(t: _Translator, op: str, args: list[Any]) -> str:
    if len(args) != 2:
        raise FilterError(f"filter: {op.upper()} takes two geometries")
    name = t.bind(op)  # parameters are bound in the order their ``?`` appear
    a = _spatial_operand(t, args[0])
    b = _spatial_operand(t, args[1])
    return f"(eo_spatial({name}, {a}, {b}) = 1)"


_TEMPORAL: dict[str, str] = {
    "t_after": "{as} > {be}",
    "t_before": "{ae} < {bs}",
    "t_contains": "{as} < {bs} AND {ae} > {be}",
    "t_disjoint": "NOT ({as} <= {be} AND {ae} >= {bs})",
    "t_during": "{as} > {bs} AND {ae} < {be}",
    "t_equals": "{as} = {bs} AND {ae} = {be}",
    "t_finishedby": "{as} < {bs} AND {ae} = {be}",
    "t_finishes": "{as} > {bs} AND {ae} = {be}",
    "t_intersects": "{as} <= {be} AND {ae} >= {bs}",
    "t_meets": "{ae} = {bs}",
    "t_metby": "{as} = {be}",
    "t_overlappedby": "{as} > {bs} AND {as} < {be} AND {ae} > {be}",
    "t_overlaps": "{as} < {bs} AND {ae} > {bs} AND {ae} < {be}",
    "t_startedby": "{as} = {bs} AND {ae} > {be}",
    "t_starts": "{as} = {bs} AND {ae} < {be}",
}


_Operand = tuple[str | None, float | None]
"""``(sql, None)`` for a column expression, ``(None, value)`` for a literal to bind."""


def _temporal_operand(t: _Translator, node: Any) -> tuple[_Operand, _Operand]:
    if isinstance(node, dict) and "property" in node:
        q = t.property(node["property"])
        if q.type == "interval":
            return (q.sql, None), (q.end_sql or q.sql, None)
        if q.type == "timestamp":
            return (q.sql, None), (q.sql, None)
        raise FilterError(f"filter: {node['property']!r} is not a temporal queryable")
    if isinstance(node, dict) and "interval" in node:
        ends = node["interval"]
        if not isinstance(ends, list) or len(ends) != 2:
            raise FilterError("filter: INTERVAL takes two instants")
        values = []
        for end, open_value in zip(ends, (_OPEN, _CLOSE), strict=True):
            if end == "..":
                values.append(open_value)
            elif isinstance(end, dict) and ("timestamp" in end or "date" in end):
                values.append(_timestamp(end.get("timestamp", end.get("date"))))
            else:
                values.append(_timestamp(end))
        if values[0] > values[1]:
            raise FilterError("filter: INTERVAL start is after its end")
        return (None, values[0]), (None, values[1])
    if isinstance(node, dict) and ("timestamp" in node or "date" in node):
        value = _timestamp(node.get("timestamp", node.get("date")))
        return (None, value), (None, value)
    raise FilterError(f"filter: {json.dumps(node)[:120]} is not a timestamp, date or interval")


def _temporal(t: _Translator, op: str, args: list[Any]) -> str:
    if len(args) != 2:
        raise FilterError(f"filter: {op.upper()} takes two temporal arguments")
    a_start, a_end = _temporal_operand(t, args[0])
    b_start, b_end = _temporal_operand(t, args[1])
    ends = {"as": a_start, "ae": a_end, "bs": b_start, "be": b_end}
    out = []
    for token in re.split(r"(\{[a-z]{2}\})", _TEMPORAL[op]):
        if token.startswith("{"):
            sql, value = ends[token[1:-1]]
            out.append(sql if sql is not None else t.bind(value))  # literals bound per use
        else:
            out.append(token)
    return "(" + "".join(out) + ")"


_ARRAY = {
    "a_overlaps": "EXISTS (SELECT 1 FROM json_each({p}) WHERE value IN ({v}))",
    "a_containedby": "NOT EXISTS (SELECT 1 FROM json_each({p}) WHERE value NOT IN ({v}))",
    "a_contains": "(SELECT count(DISTINCT value) FROM json_each({p}) WHERE value IN ({v})) = {n}",
}


def _array(t: _Translator, op: str, args: list[Any]) -> str:
    if (
        len(args) != 2
        or not isinstance(args[0], dict)
        or "property" not in args[0]
        or not isinstance(args[1], list)
        or not args[1]
    ):
        raise FilterError(f"filter: {op.upper()} takes an array property and a non-empty list")
    q = t.property(args[0]["property"])
    if q.type != "array":
        raise FilterError(f"filter: {args[0]['property']!r} is not an array queryable")
    if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in args[1]):
        raise FilterError(f"filter: {op.upper()} takes a list of strings or numbers")
    values = list(dict.fromkeys(args[1]))
    marks = ", ".join(t.bind(v) for v in values)
    return "(" + _ARRAY[op].format(p=q.sql, v=marks, n=len(values)) + ")"


_HANDLERS: dict[str, Callable[[_Translator, str, list[Any]], str]] = {
    "and": _logic,
    "or": _logic,
    "not": _logic,
    "=": _compare,
    "<>": _compare,
    "<": _compare,
    "<=": _compare,
    ">": _compare,
    ">=": _compare,
    "isnull": _is_null,
    "like": _like,
    "between": _between,
    "in": _in,
}


def cql2_to_sql(
    expr: Mapping[str, Any], queryables: Mapping[str, Queryable]
) -> tuple[str, list[Any]]:
    """Translate canonical CQL2-JSON (see :func:`parse_cql2`) into a SQLite ``WHERE`` term.

    Parameters
    ----------
    expr
        The filter as CQL2-JSON.
    queryables
        Property name -> :class:`Queryable`; any other property is an error. Names may be
        given with or without a ``properties.`` prefix.

    Returns
    -------
    tuple
        ``(sql, params)``: a parenthesised boolean SQL expression with ``?`` placeholders and
        the values to bind, in order. Spatial operators call ``eo_spatial``: register it on
        the connection with :func:`register_functions`.

    Raises
    ------
    FilterError
        When the filter names an unknown property, compares mismatched types or uses an
        operator outside the supported classes (the message says which).

    Examples
    --------
    >>> q = {"platform": Queryable("platform", "string")}
    >>> cql2_to_sql({"op": "in", "args": [{"property": "platform"}, ["a", "b"]]}, q)
    ('(platform IN (?, ?))', ['a', 'b'])
    """
    t = _Translator(queryables)
    return t.predicate(dict(expr)), t.params


@functools.lru_cache(maxsize=256)
def _prepared(wkb: bytes) -> shapely.Geometry:
    geom = shapely.from_wkb(wkb)
    shapely.prepare(geom)
    return geom


def _as_geometry(value: Any) -> shapely.Geometry | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return _prepared(value)
    return shapely.from_geojson(value)


def _eo_spatial(op: str, a: Any, b: Any) -> int | None:
    ga, gb = _as_geometry(a), _as_geometry(b)
    if ga is None or gb is None:
        return None
    func = getattr(shapely, op.removeprefix("s_"))
    return int(bool(func(ga, gb)))


def register_functions(con: sqlite3.Connection) -> None:
    """Give a SQLite connection the functions :func:`cql2_to_sql`'s SQL calls.

    ``eo_spatial(op, a, b)``: ``a`` and ``b`` are GeoJSON text (a geometry column) or WKB
    (a bound literal); ``op`` one of ``s_intersects`` ... ``s_contains``. ``eo_ts(text)``:
    an RFC 3339 string as POSIX seconds (timestamp queryables stored as JSON text).
    """
    con.create_function("eo_spatial", 3, _eo_spatial, deterministic=True)
    con.create_function("eo_ts", 1, _sql_timestamp, deterministic=True)


def _sql_timestamp(text: Any) -> float | None:
    """``eo_ts(text)``: a stored RFC 3339 property as POSIX seconds (``NULL`` if not one)."""
    if not isinstance(text, str):
        return None
    try:
        return _timestamp(text)
    except FilterError:
        return None

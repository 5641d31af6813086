"""Search parameters shared by the export API's endpoints: paging tokens, bbox, datetime,
sortby, and the refusal of parameters an endpoint does not support (never silently ignored).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from stac_fastapi.types.errors import InvalidQueryParameter
from stac_fastapi.types.rfc3339 import str_to_interval

__all__ = [
    "check_bbox",
    "decode_token",
    "encode_token",
    "interval",
    "next_get_link",
    "reject_unknown",
    "sort_get",
]


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


MAX_OFFSET = 2**62
"""The largest paging offset a token may carry (SQLite integers are 64-bit: a larger one
was an OverflowError, a 500, instead of a client error)."""


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, value = text.split(":")
        offset = int(value)
        if kind != "offset" or not 0 <= offset <= MAX_OFFSET:
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise InvalidQueryParameter(f"token {token!r} is not a paging token of this API") from None
    return offset


def check_bbox(bbox: Any) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    values = [float(v) for v in bbox]
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4:
        raise InvalidQueryParameter(f"bbox {bbox}: give 4 (or 6) numbers west,south,east,north")
    w, s, e, n = values
    if not (-180 <= w <= 180 and -180 <= e <= 180):
        raise InvalidQueryParameter(f"bbox {bbox}: longitudes must lie in [-180, 180]")
    if not (-90 <= s <= n <= 90):
        raise InvalidQueryParameter(
            f"bbox {bbox}: need -90 <= south <= north <= 90 (order is west,south,east,north)"
        )
    return (w, s, e, n)


def interval(datetime: str | None) -> tuple[float | None, float | None]:
    parsed = str_to_interval(datetime)  # raises a 400 for malformed or inverted intervals
    if parsed is None:
        return (None, None)
    if isinstance(parsed, tuple):
        start, end = parsed
        return (start.timestamp() if start else None, end.timestamp() if end else None)
    return (parsed.timestamp(), parsed.timestamp())


def sort_get(sortby: list[str] | None) -> tuple[tuple[str, bool], ...]:
    out = []
    for term in sortby or []:
        term = term.strip()
        if not term:
            continue
        out.append((term.lstrip("+-"), not term.startswith("-")))
    return tuple(out)


def next_get_link(request: Request, token: str, media_type: str) -> dict[str, Any]:
    qs = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    qs.append(("token", token))
    return {
        "rel": "next",
        "type": media_type,
        "method": "GET",
        "href": f"{str(request.url).split('?')[0]}?{urlencode(qs)}",
    }


_KNOWN_PARAMS = {
    "search": frozenset(
        {"collections", "ids", "bbox", "intersects", "datetime", "limit", "token", "sortby",
         "fields", "filter", "filter-lang", "filter-crs", "query", "q"}
    ),
    "items": frozenset(
        {"bbox", "datetime", "limit", "token", "sortby", "fields", "filter", "filter-lang",
         "filter-crs", "query", "q"}
    ),
    "collections": frozenset({"bbox", "datetime", "limit", "token", "q"}),
}  # fmt: skip


def reject_unknown(request: Request, endpoint: str) -> None:
    """A 400 naming every query parameter the endpoint does not support (none is ignored)."""
    unknown = sorted(set(request.query_params) - _KNOWN_PARAMS[endpoint])
    if unknown:
        known = ", ".join(sorted(_KNOWN_PARAMS[endpoint]))
        raise InvalidQueryParameter(
            f"unsupported parameter(s): {', '.join(unknown)}; this endpoint takes {known}"
        )
    crs = request.query_params.get("filter-crs")
    if crs not in (None, "", "http://www.opengis.net/def/crs/OGC/1.3/CRS84"):
        raise InvalidQueryParameter(
            f"filter-crs {crs!r}: only http://www.opengis.net/def/crs/OGC/1.3/CRS84 is supported"
        )

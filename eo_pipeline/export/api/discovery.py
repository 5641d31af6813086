"""Collection discovery: what a customer's collections look like to it, and collection search.

- :func:`entitled_extent`: a collection's extent cut to the caller's entitled area and time
  range (a customer who bought one region sees that region, not the whole collection);
- :func:`search_collections`: the collection-search extension (``bbox``, ``datetime`` and free
  text ``q`` over titles, descriptions and keywords) on the caller's collections.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import shapely
from stac_fastapi.types.errors import InvalidQueryParameter

from eo_pipeline.errors import FilterError
from eo_pipeline.export.api.customers import Entitlement, bbox_area
from eo_pipeline.export.api.params import check_bbox, interval
from eo_pipeline.export.api.queryables import free_text, parse_free_text

__all__ = ["entitled_extent", "search_collections"]


def entitled_extent(doc: dict[str, Any], ent: Entitlement) -> dict[str, Any]:
    """A collection's ``extent`` cut to what ``ent`` may see (area and time range).

    Examples
    --------
    >>> doc = {"id": "c", "extent": {"spatial": {"bbox": [[0, 0, 10, 10]]},
    ...        "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]}}}
    >>> ent = Entitlement(frozenset({"c"}), bbox=(5, 5, 20, 20), start=1577836800.0 * 1.01)
    >>> out = entitled_extent(doc, ent)
    >>> out["spatial"]["bbox"], out["temporal"]["interval"][0][0]
    ([[5, 5, 10, 10]], '2020-07-01T14:52:48Z')
    """
    extent = copy.deepcopy(doc.get("extent") or {})
    if doc.get("id") in ent.public or not ent.restricted:
        return extent
    if ent.bbox is not None:
        w, s, e, n = ent.bbox
        boxes = []
        for box in extent.get("spatial", {}).get("bbox", []) or [[w, s, e, n]]:
            bw, bs, be, bn = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
            cut = [max(bw, w), max(bs, s), min(be, e), min(bn, n)]
            if cut[0] <= cut[2] and cut[1] <= cut[3]:
                boxes.append(cut)
        extent.setdefault("spatial", {})["bbox"] = boxes or [list(ent.bbox)]
    intervals = []
    for start, end in extent.get("temporal", {}).get("interval", []) or [[None, None]]:
        lo, hi = _ts(start), _ts(end)
        if ent.start is not None:
            lo = ent.start if lo is None else max(lo, ent.start)
        if ent.end is not None:
            hi = ent.end if hi is None else min(hi, ent.end)
        intervals.append([_iso(lo), _iso(hi)])
    extent.setdefault("temporal", {})["interval"] = intervals
    return extent


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_collections(
    docs: list[dict[str, Any]], bbox: Any, datetime: Any, q: Any
) -> list[dict[str, Any]]:
    """Collection search: the collections whose (entitled) extent meets ``bbox`` and
    ``datetime`` and whose title, description or keywords match ``q``."""
    try:
        terms = parse_free_text(q)
    except FilterError as err:
        raise InvalidQueryParameter(str(err)) from None
    area = None
    if bbox is not None:
        area = bbox_area(check_bbox(bbox) or (-180.0, -90.0, 180.0, 90.0))
    start, end = interval(datetime if isinstance(datetime, str) or datetime is None else None)
    out = []
    for doc in docs:
        extent = doc.get("extent") or {}
        if area is not None:
            boxes = extent.get("spatial", {}).get("bbox") or []
            shapes = [
                shapely.box(b[0], b[1], b[3], b[4]) if len(b) == 6 else shapely.box(*b)
                for b in boxes
            ]
            if not any(area.intersects(g) for g in shapes):
                continue
        if start is not None or end is not None:
            spans = extent.get("temporal", {}).get("interval") or [[None, None]]
            if not any(
                (end is None or (_ts(lo) or -1e300) <= end)
                and (start is None or (_ts(hi) or 1e300) >= start)
                for lo, hi in spans
            ):
                continue
        if terms and not any(t.lower() in free_text(doc) for t in terms):
            continue
        out.append(doc)
    return out

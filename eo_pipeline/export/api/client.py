"""The stac-fastapi core client of the export API: entitlement-aware reads over an index.

Every method reads the caller from ``request.state.principal`` (a
:class:`~eo_pipeline.export.api.customers.Customer`, set by the server's auth middleware)
and answers only with what that principal may see:

- collection lists hold only entitled collections; an unentitled collection or item is a 404,
  exactly like one that does not exist, so its existence is not revealed;
- searches naming a collection the caller cannot see are a 400 "unknown collection";
- asset hrefs become signed, expiring download links for this caller;
- ``limit`` is capped at the server's ``max_limit``; paging is by an opaque ``token``
  (``next`` links for GET and POST); ``sortby`` and ``fields`` follow the STAC API
  extensions.

The client is synchronous (stac-fastapi runs it in its thread pool); the index opens one
read-only SQLite connection per call, so concurrent requests never share a connection.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any, cast
from urllib.parse import quote, urlencode

import attr
import shapely
import shapely.geometry
from fastapi import Request
from stac_fastapi.types import stac
from stac_fastapi.types.core import BaseCoreClient
from stac_fastapi.types.errors import InvalidQueryParameter, NotFoundError
from stac_fastapi.types.requests import get_base_url
from stac_fastapi.types.rfc3339 import str_to_interval
from stac_fastapi.types.search import BaseSearchPostRequest

from eo_pipeline.errors import CatalogError
from eo_pipeline.export.api.customers import Customer
from eo_pipeline.export.api.index import CatalogIndex, SearchQuery
from eo_pipeline.export.api.signing import LinkSigner

__all__ = ["EntitledClient", "apply_fields"]

_ALWAYS = ("type", "stac_version", "id", "collection", "links")


def _principal(request: Request) -> Customer:
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Customer):  # pragma: no cover - the middleware always sets it
        raise NotFoundError("no principal on the request")
    return principal


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, value = text.split(":")
        offset = int(value)
        if kind != "offset" or offset < 0:
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise InvalidQueryParameter(f"token {token!r} is not a paging token of this API") from None
    return offset


def _check_bbox(bbox: Any) -> tuple[float, float, float, float] | None:
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


def _interval(datetime: str | None) -> tuple[float | None, float | None]:
    parsed = str_to_interval(datetime)  # raises a 400 for malformed or inverted intervals
    if parsed is None:
        return (None, None)
    if isinstance(parsed, tuple):
        start, end = parsed
        return (start.timestamp() if start else None, end.timestamp() if end else None)
    return (parsed.timestamp(), parsed.timestamp())


def _sort_get(sortby: list[str] | None) -> tuple[tuple[str, bool], ...]:
    out = []
    for term in sortby or []:
        term = term.strip()
        if not term:
            continue
        out.append((term.lstrip("+-"), not term.startswith("-")))
    return tuple(out)


def _set_path(target: dict[str, Any], source: dict[str, Any], path: str) -> None:
    head, _, rest = path.partition(".")
    if head not in source:
        return
    if rest and isinstance(source[head], dict):
        sub = target.setdefault(head, {})
        if isinstance(sub, dict):
            _set_path(sub, source[head], rest)
    else:
        target[head] = copy.deepcopy(source[head])


def _del_path(target: dict[str, Any], path: str) -> None:
    head, _, rest = path.partition(".")
    if rest:
        if isinstance(target.get(head), dict):
            _del_path(target[head], rest)
    elif head not in _ALWAYS:
        target.pop(head, None)


def apply_fields(
    doc: dict[str, Any], include: Collection[str], exclude: Collection[str]
) -> dict[str, Any]:
    """The fields extension on one item: keep ``include`` paths, then drop ``exclude`` paths.

    ``type``, ``stac_version``, ``id``, ``collection`` and ``links`` are always kept.

    Examples
    --------
    >>> apply_fields({"id": "a", "properties": {"x": 1, "y": 2}}, {"properties.x"}, set())
    {'id': 'a', 'properties': {'x': 1}}
    """
    if include:
        out: dict[str, Any] = {k: doc[k] for k in _ALWAYS if k in doc}
        for path in sorted(include):
            _set_path(out, doc, path)
    else:
        out = copy.deepcopy(doc)
    for path in exclude:
        _del_path(out, path)
    return out


def _fields_get(fields: list[str] | None) -> tuple[set[str], set[str]]:
    include, exclude = set(), set()
    for term in fields or []:
        term = term.strip()
        if term.startswith("-"):
            exclude.add(term[1:])
        elif term:
            include.add(term.lstrip("+"))
    return include, exclude


@dataclass(frozen=True)
class _Params:
    """One search as the endpoints received it (before validation)."""

    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    bbox: Any = None
    intersects: dict[str, Any] | None = None
    datetime: str | None = None
    limit: int | None = 10
    token: str | None = None
    sortby: tuple[tuple[str, bool], ...] = ()
    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()


@attr.s
class EntitledClient(BaseCoreClient):
    """stac-fastapi ``BaseCoreClient`` over a :class:`CatalogIndex`, filtered per principal."""

    index: CatalogIndex = attr.ib(default=None)
    signer: LinkSigner = attr.ib(default=None)
    link_ttl: int = attr.ib(default=3600)
    max_limit: int = attr.ib(default=1000)

    # -- rendering --------------------------------------------------------------------------
    def _visible(self, principal: Customer) -> list[dict[str, Any]]:
        allowed = principal.entitlement.collections
        return [c for c in self.index.collections() if c["id"] in allowed]

    def _collection_doc(self, principal: Customer, collection_id: str) -> dict[str, Any]:
        doc = None
        if collection_id in principal.entitlement.collections:
            doc = self.index.collection(collection_id)
        if doc is None:
            raise NotFoundError(f"collection {collection_id!r} not found")
        return doc

    def _render_collection(self, doc: dict[str, Any], base: str) -> dict[str, Any]:
        cid = quote(doc["id"], safe="")
        own = [
            {"rel": "self", "type": "application/json", "href": f"{base}collections/{cid}"},
            {"rel": "parent", "type": "application/json", "href": base},
            {"rel": "root", "type": "application/json", "href": base},
            {
                "rel": "items",
                "type": "application/geo+json",
                "href": f"{base}collections/{cid}/items",
            },
        ]
        return {**doc, "links": own + self._absolute(doc.get("links", []), base)}

    @staticmethod
    def _absolute(links: list[dict[str, Any]], base: str) -> list[dict[str, Any]]:
        out = []
        for link in links:
            href = link["href"]
            if "://" not in href and not href.startswith("urn:"):
                href = base + href
            out.append({**link, "href": href})
        return out

    def _render_item(self, doc: dict[str, Any], base: str, principal: Customer) -> dict[str, Any]:
        cid, iid = quote(doc["collection"], safe=""), quote(doc["id"], safe="")
        expires = int(time.time()) + self.link_ttl
        assets = {}
        for key, asset in doc.get("assets", {}).items():
            href = asset["href"]
            if "://" not in href:
                params = self.signer.sign(href, principal.name, expires)
                href = f"{base}download/{quote(href)}?{urlencode(params)}"
            assets[key] = {**asset, "href": href}
        own = [
            {
                "rel": "self",
                "type": "application/geo+json",
                "href": f"{base}collections/{cid}/items/{iid}",
            },
            {"rel": "parent", "type": "application/json", "href": f"{base}collections/{cid}"},
            {"rel": "collection", "type": "application/json", "href": f"{base}collections/{cid}"},
            {"rel": "root", "type": "application/json", "href": base},
        ]
        return {**doc, "assets": assets, "links": own + self._absolute(doc.get("links", []), base)}

    # -- the core endpoints -----------------------------------------------------------------
    # stac-fastapi passes the request as the keyword ``request``, the query parameters of its
    # request models (with the fields, sort and token extensions) as keywords.
    def all_collections(self, **kwargs: Any) -> stac.Collections:
        request: Request = kwargs["request"]
        base = get_base_url(request)
        principal = _principal(request)
        collections = [self._render_collection(c, base) for c in self._visible(principal)]
        return cast(
            stac.Collections,
            {
                "collections": collections,
                "links": [
                    {"rel": "root", "type": "application/json", "href": base},
                    {"rel": "parent", "type": "application/json", "href": base},
                    {"rel": "self", "type": "application/json", "href": f"{base}collections"},
                ],
                "numberMatched": len(collections),
                "numberReturned": len(collections),
            },
        )

    def get_collection(self, collection_id: str, **kwargs: Any) -> stac.Collection:
        request: Request = kwargs["request"]
        doc = self._collection_doc(_principal(request), collection_id)
        return cast(stac.Collection, self._render_collection(doc, get_base_url(request)))

    def get_item(self, item_id: str, collection_id: str, **kwargs: Any) -> stac.Item:
        request: Request = kwargs["request"]
        principal = _principal(request)
        doc = None
        if collection_id in principal.entitlement.collections:
            doc = self.index.item(collection_id, item_id, principal.entitlement)
        if doc is None:
            raise NotFoundError(f"item {item_id!r} not found in collection {collection_id!r}")
        return cast(stac.Item, self._render_item(doc, get_base_url(request), principal))

    def item_collection(
        self,
        collection_id: str,
        bbox: Any = None,
        datetime: str | None = None,
        limit: int | None = 10,
        token: str | None = None,
        **kwargs: Any,
    ) -> stac.ItemCollection:
        request: Request = kwargs["request"]
        self._collection_doc(_principal(request), collection_id)  # 404 when not visible
        params = _Params(collections=(collection_id,), bbox=bbox, datetime=datetime)
        return self._get(request, params, limit, token, kwargs)

    def get_search(
        self,
        collections: list[str] | None = None,
        ids: list[str] | None = None,
        bbox: Any = None,
        intersects: Any = None,
        datetime: str | None = None,
        limit: int | None = 10,
        **kwargs: Any,
    ) -> stac.ItemCollection:
        geometry = None
        if intersects:
            try:
                geometry = json.loads(intersects)
            except ValueError:
                raise InvalidQueryParameter(
                    "intersects is not a GeoJSON geometry (bad JSON)"
                ) from None
        params = _Params(
            collections=tuple(collections) if collections else None,
            ids=tuple(ids) if ids else None,
            bbox=bbox,
            intersects=geometry,
            datetime=datetime,
        )
        return self._get(kwargs["request"], params, limit, kwargs.get("token"), kwargs)

    def _get(
        self,
        request: Request,
        params: _Params,
        limit: int | None,
        token: str | None,
        extra: dict[str, Any],
    ) -> stac.ItemCollection:
        include, exclude = _fields_get(extra.get("fields"))
        params = replace(
            params,
            limit=limit,
            token=token,
            sortby=_sort_get(extra.get("sortby")),
            include=frozenset(include),
            exclude=frozenset(exclude),
        )
        return self._search(request, _principal(request), params, post_body=None)

    def post_search(
        self, search_request: BaseSearchPostRequest, **kwargs: Any
    ) -> stac.ItemCollection:
        request: Request = kwargs["request"]
        body = search_request.model_dump(mode="json", exclude_none=True, by_alias=True)
        sortby = tuple(
            (s.field, str(getattr(s.direction, "value", s.direction)) != "desc")
            for s in getattr(search_request, "sortby", None) or []
        )
        fields = getattr(search_request, "fields", None)
        params = _Params(
            collections=tuple(search_request.collections) if search_request.collections else None,
            ids=tuple(search_request.ids) if search_request.ids else None,
            bbox=search_request.bbox,
            intersects=body.get("intersects"),
            datetime=search_request.datetime,
            limit=search_request.limit,
            token=getattr(search_request, "token", None),
            sortby=sortby,
            include=frozenset(fields.include or ()) if fields is not None else frozenset(),
            exclude=frozenset(fields.exclude or ()) if fields is not None else frozenset(),
        )
        return self._search(request, _principal(request), params, post_body=body)

    def _search(
        self,
        request: Request,
        principal: Customer,
        params: _Params,
        *,
        post_body: dict[str, Any] | None,
    ) -> stac.ItemCollection:
        bbox, intersects, collections = params.bbox, params.intersects, params.collections
        datetime, limit, token = params.datetime, params.limit, params.token
        sortby, include, exclude = params.sortby, params.include, params.exclude
        if bbox is not None and intersects is not None:
            raise InvalidQueryParameter("bbox and intersects are mutually exclusive; give one")
        if collections is not None:
            unknown = sorted(set(collections) - principal.entitlement.collections)
            if unknown:
                raise InvalidQueryParameter(
                    f"unknown collection(s): {', '.join(unknown)}; GET /collections lists yours"
                )
        geometry = None
        if intersects is not None:
            try:
                geometry = shapely.geometry.shape(intersects)
            except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.GEOSException):
                raise InvalidQueryParameter("intersects is not a valid GeoJSON geometry") from None
            if not geometry.is_valid:
                raise InvalidQueryParameter(
                    f"intersects geometry is invalid ({shapely.is_valid_reason(geometry)})"
                )
        start, end = _interval(datetime)
        size = max(1, min(int(limit or 10), self.max_limit))
        offset = _decode_token(token)
        query = SearchQuery(
            entitlement=principal.entitlement,
            collections=collections,
            ids=params.ids,
            bbox=_check_bbox(bbox),
            intersects=geometry,
            start=start,
            end=end,
            limit=size,
            offset=offset,
            sortby=sortby,
        )
        try:
            page = self.index.search(query)
        except CatalogError as err:
            raise InvalidQueryParameter(str(err)) from None
        base = get_base_url(request)
        features = [
            apply_fields(self._render_item(d, base, principal), include, exclude)
            if include or exclude
            else self._render_item(d, base, principal)
            for d in page.items
        ]
        links: list[dict[str, Any]] = [{"rel": "root", "type": "application/json", "href": base}]
        if page.next_offset is not None:
            nxt = _encode_token(page.next_offset)
            if post_body is None:
                qs = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                qs.append(("token", nxt))
                links.append(
                    {
                        "rel": "next",
                        "type": "application/geo+json",
                        "method": "GET",
                        "href": f"{str(request.url).split('?')[0]}?{urlencode(qs)}",
                    }
                )
            else:
                links.append(
                    {
                        "rel": "next",
                        "type": "application/geo+json",
                        "method": "POST",
                        "href": str(request.url),
                        "body": {**post_body, "limit": size, "token": nxt},
                        "merge": False,
                    }
                )
        return cast(
            stac.ItemCollection,
            {
                "type": "FeatureCollection",
                "features": features,
                "links": links,
                "numberReturned": len(features),
            },
        )

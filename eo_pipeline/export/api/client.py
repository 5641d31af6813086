"""The stac-fastapi core client of the export API: entitlement-aware reads over an index.

Every method reads the caller from ``request.state.principal`` (a
:class:`~eo_pipeline.export.api.customers.Customer`, set by the server's auth middleware)
and answers only with what that principal may see:

- collection lists hold the entitled and the public collections, extents cut to the caller's
  area and time range (:mod:`~eo_pipeline.export.api.discovery`), searchable by ``bbox``,
  ``datetime`` and ``q``; an unentitled collection or item is a 404, exactly like one that
  does not exist, so its existence is not revealed;
- searches naming a collection the caller cannot see are a 400 "unknown collection";
- ``filter`` (CQL2 text or JSON), ``query`` and ``q`` become SQL in the index (never
  ignored); any other unknown parameter or body field is a 400 naming it;
- asset hrefs become signed, expiring download links for this caller's current key;
- ``limit`` is capped at the server's ``max_limit``; paging is by an opaque ``token``
  (``next`` links for GET and POST), with ``numberMatched``; ``sortby`` and ``fields``
  follow the STAC API extensions (:mod:`~eo_pipeline.export.api.fields`).

The client is synchronous (stac-fastapi runs it in its thread pool); the index opens one
read-only SQLite connection per call, so concurrent requests never share a connection.
"""

from __future__ import annotations

import json
import time
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
from stac_fastapi.types.search import BaseSearchPostRequest

from eo_pipeline.catalogs.cql2_sql import parse_cql2
from eo_pipeline.errors import CatalogError, FilterError
from eo_pipeline.export.api.customers import Customer
from eo_pipeline.export.api.discovery import entitled_extent, search_collections
from eo_pipeline.export.api.fields import (
    FieldSelection,
    apply_fields,
    fields_of_get,
    fields_of_post,
)
from eo_pipeline.export.api.index import CatalogIndex, SearchQuery
from eo_pipeline.export.api.params import (
    check_bbox,
    decode_token,
    encode_token,
    interval,
    next_get_link,
    reject_unknown,
    sort_get,
)
from eo_pipeline.export.api.queryables import parse_free_text, query_to_cql2
from eo_pipeline.export.api.signing import LinkSigner

__all__ = ["EntitledClient"]


def _principal(request: Request) -> Customer:
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Customer):  # pragma: no cover - the middleware always sets it
        raise NotFoundError("no principal on the request")
    return principal


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
    fields: FieldSelection | None = None
    filter: Any = None
    filter_lang: str | None = None
    query: Any = None
    q: Any = None


def _filter_of(params: _Params) -> dict[str, Any] | None:
    """The CQL2 filter and the query extension as one CQL2-JSON expression."""
    terms = []
    try:
        if params.filter is not None and params.filter != "":
            terms.append(parse_cql2(params.filter, params.filter_lang))
        if params.query is not None:
            query = params.query
            if isinstance(query, str):
                try:
                    query = json.loads(query)
                except (ValueError, RecursionError):
                    raise FilterError("query is not valid JSON") from None
            terms.append(query_to_cql2(query))
    except FilterError as err:
        raise InvalidQueryParameter(str(err)) from None
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else {"op": "and", "args": terms}


def _geometry(intersects: Any) -> shapely.Geometry | None:
    if intersects is None:
        return None
    if isinstance(intersects, str):
        if len(intersects) > _MAX_GEOJSON:
            raise InvalidQueryParameter(f"intersects is longer than {_MAX_GEOJSON} characters")
        try:
            intersects = json.loads(intersects)
        except (ValueError, RecursionError):
            raise InvalidQueryParameter("intersects is not a GeoJSON geometry (bad JSON)") from None
    if not isinstance(intersects, dict):
        raise InvalidQueryParameter("intersects must be a GeoJSON geometry object")
    try:
        geometry = shapely.geometry.shape(intersects)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError,
            shapely.errors.ShapelyError):  # fmt: skip
        raise InvalidQueryParameter("intersects is not a valid GeoJSON geometry") from None
    if geometry.is_empty or not geometry.is_valid:
        reason = "empty" if geometry.is_empty else shapely.is_valid_reason(geometry)
        raise InvalidQueryParameter(f"intersects geometry is invalid ({reason})")
    return geometry


_MAX_GEOJSON = 1_000_000


_QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"


@attr.s
class EntitledClient(BaseCoreClient):
    """stac-fastapi ``BaseCoreClient`` over a :class:`CatalogIndex`, filtered per principal."""

    index: CatalogIndex = attr.ib(default=None)
    signer: LinkSigner = attr.ib(default=None)
    link_ttl: int = attr.ib(default=3600)
    max_limit: int = attr.ib(default=1000)

    # -- rendering --------------------------------------------------------------------------
    def _visible(self, principal: Customer) -> list[dict[str, Any]]:
        allowed = principal.entitlement.visible
        return [c for c in self.index.collections() if c["id"] in allowed]

    def _collection_doc(self, principal: Customer, collection_id: str) -> dict[str, Any]:
        doc = None
        if collection_id in principal.entitlement.visible:
            doc = self.index.collection(collection_id)
        if doc is None:
            raise NotFoundError(f"collection {collection_id!r} not found")
        return doc

    def _render_collection(
        self, doc: dict[str, Any], base: str, principal: Customer
    ) -> dict[str, Any]:
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
            {
                "rel": _QUERYABLES_REL,
                "type": "application/schema+json",
                "href": f"{base}collections/{cid}/queryables",
            },
        ]
        return {
            **doc,
            "extent": entitled_extent(doc, principal.entitlement),
            "links": own + self._absolute(doc.get("links", []), base),
        }

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
        key_id = principal.key_id or "-"
        assets = {}
        for key, asset in doc.get("assets", {}).items():
            href = asset["href"]
            if "://" not in href:
                params = self.signer.sign(href, principal.name, key_id, expires)
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
    # request models (with the fields, sort, filter, query, free-text and token extensions)
    # as keywords.
    def all_collections(self, **kwargs: Any) -> stac.Collections:
        """``GET /collections``: the caller's collections, searchable by bbox/datetime/q."""
        request: Request = kwargs["request"]
        reject_unknown(request, "collections")
        base = get_base_url(request)
        principal = _principal(request)
        docs = [self._render_collection(c, base, principal) for c in self._visible(principal)]
        docs = search_collections(docs, kwargs.get("bbox"), kwargs.get("datetime"), kwargs.get("q"))
        size = max(1, min(int(kwargs.get("limit") or 10), self.max_limit))
        offset = decode_token(kwargs.get("token"))
        page = docs[offset : offset + size]
        links: list[dict[str, Any]] = [
            {"rel": "root", "type": "application/json", "href": base},
            {"rel": "parent", "type": "application/json", "href": base},
            {"rel": "self", "type": "application/json", "href": str(request.url)},
        ]
        if offset + size < len(docs):
            links.append(next_get_link(request, encode_token(offset + size), "application/json"))
        return cast(
            stac.Collections,
            {
                "collections": page,
                "links": links,
                "numberMatched": len(docs),
                "numberReturned": len(page),
            },
        )

    def get_collection(self, collection_id: str, **kwargs: Any) -> stac.Collection:
        request: Request = kwargs["request"]
        principal = _principal(request)
        doc = self._collection_doc(principal, collection_id)
        return cast(stac.Collection, self._render_collection(doc, get_base_url(request), principal))

    def get_item(self, item_id: str, collection_id: str, **kwargs: Any) -> stac.Item:
        request: Request = kwargs["request"]
        principal = _principal(request)
        doc = None
        if collection_id in principal.entitlement.visible:
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
        reject_unknown(request, "items")
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
        request: Request = kwargs["request"]
        reject_unknown(request, "search")
        params = _Params(
            collections=tuple(collections) if collections else None,
            ids=tuple(ids) if ids else None,
            bbox=bbox,
            intersects=intersects if intersects else None,
            datetime=datetime,
        )
        return self._get(request, params, limit, kwargs.get("token"), kwargs)

    def _get(
        self,
        request: Request,
        params: _Params,
        limit: int | None,
        token: str | None,
        extra: dict[str, Any],
    ) -> stac.ItemCollection:
        params = replace(
            params,
            limit=limit,
            token=token,
            sortby=sort_get(extra.get("sortby")),
            fields=fields_of_get(request),
            filter=extra.get("filter_expr"),
            filter_lang=extra.get("filter_lang") if extra.get("filter_expr") else None,
            query=extra.get("query"),
            q=extra.get("q"),
        )
        return self._search(request, _principal(request), params, post_body=None)

    def post_search(
        self, search_request: BaseSearchPostRequest, **kwargs: Any
    ) -> stac.ItemCollection:
        request: Request = kwargs["request"]
        body = search_request.model_dump(mode="json", exclude_unset=True, by_alias=True)
        known = {f.alias or name for name, f in type(search_request).model_fields.items()}
        unknown = sorted(set(getattr(request.state, "body_keys", ())) - known)
        if unknown:
            raise InvalidQueryParameter(
                f"unsupported search field(s): {', '.join(unknown)}; see /api for the body"
            )
        sortby = tuple(
            (s.field, str(getattr(s.direction, "value", s.direction)) != "desc")
            for s in getattr(search_request, "sortby", None) or []
        )
        params = _Params(
            collections=tuple(search_request.collections) if search_request.collections else None,
            ids=tuple(search_request.ids) if search_request.ids else None,
            bbox=search_request.bbox,
            intersects=body.get("intersects"),
            datetime=search_request.datetime,
            limit=search_request.limit,
            token=getattr(search_request, "token", None),
            sortby=sortby,
            fields=fields_of_post(search_request),
            filter=getattr(search_request, "filter_expr", None),
            filter_lang=getattr(search_request, "filter_lang", None),
            query=getattr(search_request, "query", None),
            q=getattr(search_request, "q", None),
        )
        return self._search(request, _principal(request), params, post_body=body)

    def _query(self, principal: Customer, params: _Params) -> SearchQuery:
        if params.bbox is not None and params.intersects is not None:
            raise InvalidQueryParameter("bbox and intersects are mutually exclusive; give one")
        if params.collections is not None:
            unknown = sorted(set(params.collections) - principal.entitlement.visible)
            if unknown:
                raise InvalidQueryParameter(
                    f"unknown collection(s): {', '.join(unknown)}; GET /collections lists yours"
                )
        start, end = interval(params.datetime)
        try:
            text = parse_free_text(params.q)
        except FilterError as err:
            raise InvalidQueryParameter(str(err)) from None
        return SearchQuery(
            entitlement=principal.entitlement,
            collections=params.collections,
            ids=params.ids,
            bbox=check_bbox(params.bbox),
            intersects=_geometry(params.intersects),
            start=start,
            end=end,
            limit=max(1, min(int(params.limit or 10), self.max_limit)),
            offset=decode_token(params.token),
            sortby=params.sortby,
            filter=_filter_of(params),
            text=text,
        )

    def _search(
        self,
        request: Request,
        principal: Customer,
        params: _Params,
        *,
        post_body: dict[str, Any] | None,
    ) -> stac.ItemCollection:
        query = self._query(principal, params)
        try:
            page = self.index.search(query)
        except (CatalogError, FilterError) as err:
            raise InvalidQueryParameter(str(err)) from None
        base = get_base_url(request)
        features = [self._render_item(d, base, principal) for d in page.items]
        if params.fields is not None:
            features = [apply_fields(f, params.fields) for f in features]
        links: list[dict[str, Any]] = [
            {"rel": "root", "type": "application/json", "href": base},
            {"rel": "self", "type": "application/geo+json", "href": str(request.url)},
        ]
        if page.next_offset is not None:
            nxt = encode_token(page.next_offset)
            if post_body is None:
                links.append(next_get_link(request, nxt, "application/geo+json"))
            else:
                links.append(
                    {
                        "rel": "next",
                        "type": "application/geo+json",
                        "method": "POST",
                        "href": str(request.url),
                        "body": {**post_body, "limit": query.limit, "token": nxt},
                        "merge": False,
                    }
                )
        out: dict[str, Any] = {
            "type": "FeatureCollection",
            "features": features,
            "links": links,
            "numberReturned": len(features),
        }
        if page.matched is not None:
            out["numberMatched"] = page.matched
        return cast(stac.ItemCollection, out)

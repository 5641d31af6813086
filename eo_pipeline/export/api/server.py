"""The export STAC API server: stac-fastapi routes, API keys, signed downloads, access log.

Endpoints (all JSON; errors are STAC-API style ``{"code": ..., "description": ...}``):

=========================================  ==================================================
``GET /``                                  landing page (stac-fastapi)
``GET /conformance``                       conformance classes
``GET /collections``                       the caller's collections; collection search by
                                           ``bbox``/``datetime``/``q``, ``limit``/``token``
``GET /collections/{c}``                   404 when not entitled (as when absent); the extent
                                           is cut to the caller's entitled area and time
``GET /collections/{c}/items``             items: ``bbox``/``datetime``/``limit``/``token``/
                                           ``sortby``/``fields``/``filter``/``query``/``q``
``GET /collections/{c}/items/{i}``         404 when not entitled
``GET|POST /search``                       ``bbox``/``intersects``/``datetime``/``ids``/
                                           ``collections``/``limit``/``token``/``sortby``/
                                           ``fields``/``filter`` (CQL2 text or JSON)/
                                           ``query``/``q``; ``numberMatched``; ``next`` links
``GET /queryables``, ``/collections/{c}/queryables``  what ``filter`` and ``query`` accept
``GET /sortables``, ``/collections/{c}/sortables``    the sortable fields
``GET|HEAD /download/{path}``              signed asset download with HTTP Range support
``GET /_mgmt/ping``                        readiness probe
``GET /api``, ``/api.html``                OpenAPI document and its HTML view
=========================================  ==================================================

Any query parameter or body field an endpoint does not support is a 400 that names it: nothing
is silently ignored.

Authentication: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (see
:mod:`~eo_pipeline.export.api.customers`). An unknown or revoked key is a 401. Without a key
the caller is *anonymous* and sees only collections flagged public (``eo_pipeline:public``);
when there are none, data endpoints answer 401 (the landing page, conformance, OpenAPI and the
ping stay open). Customers see the public collections too, whole. Downloads need no key but a
valid signed link (see :mod:`~eo_pipeline.export.api.downloads`).

Links are built from the request's ``Host``; ``Forwarded``/``X-Forwarded-*`` headers count
only from ``--trusted-proxy`` addresses, and ``--public-url`` pins every link to one base URL
(see :class:`~eo_pipeline.export.api.middleware.TrustedProxies`).

Every request is logged to ``access.log`` in the private state folder (JSON lines: time,
customer, key id, method, path, query without signatures, status, range); a download is
logged under the customer and key whose link it is.

Examples
--------
>>> from eo_pipeline.export.api.server import pystac_client_example
>>> print(pystac_client_example("http://127.0.0.1:8080/", "eok_x").splitlines()[0])
from pystac_client import Client
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pystac
import uvicorn
from brotli_asgi import BrotliMiddleware
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import field_validator
from stac_fastapi.api.app import StacApi
from stac_fastapi.api.models import (
    ItemCollectionUri,
    create_get_request_model,
    create_post_request_model,
    create_request_model,
)
from stac_fastapi.extensions import (
    FieldsExtension,
    FilterExtension,
    FreeTextExtension,
    QueryExtension,
    TokenPaginationExtension,
)
from stac_fastapi.extensions.collection_search import CollectionSearchExtension
from stac_fastapi.extensions.fields.fields import FieldsConformanceClasses
from stac_fastapi.extensions.filter.client import BaseFiltersClient
from stac_fastapi.extensions.filter.filter import FilterConformanceClasses
from stac_fastapi.extensions.free_text.free_text import FreeTextConformanceClasses
from stac_fastapi.extensions.query.query import QueryConformanceClasses
from stac_fastapi.extensions.sort.client import BaseSortablesClient
from stac_fastapi.extensions.sort.sort import (
    ItemCollectionSortExtension,
    SearchSortExtension,
    SortConformanceClasses,
)
from stac_fastapi.types.config import ApiSettings
from stac_fastapi.types.errors import InvalidQueryParameter, NotFoundError
from stac_fastapi.types.requests import get_base_url
from stac_fastapi.types.search import APIRequest, BaseSearchPostRequest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from eo_pipeline.catalogs.cql2_sql import CONFORMANCE as CQL2_CONFORMANCE
from eo_pipeline.errors import CatalogError
from eo_pipeline.export.api.client import EntitledClient
from eo_pipeline.export.api.customers import Customer, CustomerStore, Entitlement
from eo_pipeline.export.api.downloads import download_route
from eo_pipeline.export.api.index import CatalogIndex, open_index
from eo_pipeline.export.api.middleware import (
    AccessLog,
    AuthMiddleware,
    BodyGuard,
    TrustedProxies,
    error_response,
)
from eo_pipeline.export.api.openapi import document_errors
from eo_pipeline.export.api.queryables import queryables_document
from eo_pipeline.export.api.signing import LinkSigner, load_secret, state_dir

__all__ = ["create_app", "demo_serve", "pystac_client_example", "serve_cli"]

_SORTABLE = {
    "id": {"type": "string", "title": "Item id"},
    "collection": {"type": "string", "title": "Collection id"},
    "datetime": {"type": "string", "format": "date-time", "title": "Acquisition time"},
    "start_datetime": {"type": "string", "format": "date-time"},
    "end_datetime": {"type": "string", "format": "date-time"},
    "eo:cloud_cover": {"type": "number", "title": "Cloud cover (%)"},
    "gsd": {"type": "number", "title": "Ground sample distance (m)"},
    "published": {"type": "string", "format": "date-time"},
    "platform": {"type": "string"},
}


class _SearchPost(BaseSearchPostRequest):
    """The POST /search body; ``collections`` and ``ids`` also accepted as one id string."""

    @field_validator("collections", "ids", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v for v in value.split(",") if v]
        return value


def _visible_collection(index: CatalogIndex, request: Request | None, collection_id: str) -> None:
    principal = getattr(request.state, "principal", None) if request is not None else None
    if not isinstance(principal, Customer) or collection_id not in principal.entitlement.visible:
        raise NotFoundError(f"collection {collection_id!r} not found")
    if index.collection(collection_id) is None:
        raise NotFoundError(f"collection {collection_id!r} not found")


class _Sortables(BaseSortablesClient):
    def __init__(self, index: CatalogIndex) -> None:
        self.index = index

    def get_sortables(self, request: Request | None = None, **kwargs: Any) -> dict[str, Any]:
        base = get_base_url(request) if request is not None else ""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{base}sortables",
            "type": "object",
            "title": "Sortables",
            "properties": _SORTABLE,
        }

    def get_collection_sortables(
        self, collection_id: str, request: Request | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        _visible_collection(self.index, request, collection_id)
        base = get_base_url(request) if request is not None else ""
        return {
            **self.get_sortables(request),
            "$id": f"{base}collections/{collection_id}/sortables",
        }


class _Queryables(BaseFiltersClient):
    def __init__(self, index: CatalogIndex) -> None:
        self.index = index

    def get_queryables(self, collection_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
        request: Request | None = kwargs.get("request")
        base = get_base_url(request) if request is not None else ""
        if collection_id is None:
            return queryables_document(f"{base}queryables", self.index.queryables())
        _visible_collection(self.index, request, collection_id)
        return queryables_document(
            f"{base}collections/{collection_id}/queryables",
            self.index.queryables(collection_id),
            f"Queryables of {collection_id}",
        )


def _extensions(index: CatalogIndex) -> dict[str, Any]:
    fields = FieldsExtension(
        conformance_classes=[FieldsConformanceClasses.SEARCH, FieldsConformanceClasses.ITEMS]
    )
    # Sort v1.1.0 as stac-fastapi declares it, plus the v1.0.0 URIs pystac-client looks for.
    search_sort = SearchSortExtension(
        client=_Sortables(index),
        conformance_classes=[
            SortConformanceClasses.ITEM_SEARCH_SORT,
            SortConformanceClasses.ITEM_SEARCH_SORTABLES,
            "https://api.stacspec.org/v1.0.0/item-search#sort",
        ],
    )
    items_sort = ItemCollectionSortExtension(
        client=_Sortables(index),
        conformance_classes=[
            SortConformanceClasses.FEATURES_SORT,
            SortConformanceClasses.FEATURES_SORTABLES,
            "https://api.stacspec.org/v1.0.0/ogcapi-features#sort",
        ],
    )
    filtering = FilterExtension(
        client=_Queryables(index),
        conformance_classes=[
            FilterConformanceClasses.FILTER,
            FilterConformanceClasses.SEARCH,
            FilterConformanceClasses.ITEMS,
            "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
            *CQL2_CONFORMANCE,
        ],
    )
    query = QueryExtension(
        conformance_classes=[QueryConformanceClasses.SEARCH, QueryConformanceClasses.ITEMS]
    )
    text = FreeTextExtension(
        conformance_classes=[FreeTextConformanceClasses.SEARCH, FreeTextConformanceClasses.ITEMS]
    )
    paging = TokenPaginationExtension()
    collection_text = FreeTextExtension(
        conformance_classes=[FreeTextConformanceClasses.COLLECTIONS]
    )
    collection_search = CollectionSearchExtension.from_extensions([collection_text, paging])
    return {
        "fields": fields,
        "search_sort": search_sort,
        "items_sort": items_sort,
        "filter": filtering,
        "query": query,
        "text": text,
        "paging": paging,
        "collection_search": collection_search,
    }


def _middlewares(
    customers: CustomerStore,
    index: CatalogIndex,
    log: AccessLog,
    trusted_proxies: Sequence[str],
    public_url: str | None,
) -> list[Middleware]:
    return [
        Middleware(AuthMiddleware, customers=customers, index=index, log=log),
        Middleware(BodyGuard),
        Middleware(BrotliMiddleware, excluded_handlers=[r"^/download/"]),
        Middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["OPTIONS", "POST", "GET", "HEAD"],
            allow_headers=["Content-Type", "Authorization", "X-API-Key", "Range"],
            expose_headers=["Content-Range", "Accept-Ranges", "Content-Length"],
            max_age=600,
        ),
        Middleware(TrustedProxies, trusted=trusted_proxies, public_url=public_url),
    ]


def _error_handlers(app: FastAPI) -> None:
    def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
        return error_response(400, "; ".join(parts)[:2000] or "invalid request", "BadRequest")

    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    def client_error(status: int) -> Callable[[Request, Exception], JSONResponse]:
        def handler(request: Request, exc: Exception) -> JSONResponse:
            return error_response(status, str(exc), type(exc).__name__)  # no traceback

        return handler

    def server_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "internal error; the access log has the request")

    app.add_exception_handler(NotFoundError, client_error(404))
    app.add_exception_handler(InvalidQueryParameter, client_error(400))
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, server_error)


def create_app(
    catalog_dir: str | os.PathLike[str],
    *,
    link_ttl: int = 3600,
    max_limit: int = 1000,
    rebuild_index: bool = True,
    trusted_proxies: Sequence[str] = (),
    public_url: str | None = None,
) -> FastAPI:
    """The export API as a FastAPI app over an export catalog folder.

    Parameters
    ----------
    catalog_dir
        The export catalog (``catalog.json`` at its root; private state beside it, see
        :func:`~eo_pipeline.export.api.signing.state_dir`).
    link_ttl
        Lifetime of signed asset links in seconds.
    max_limit
        Largest page size; larger ``limit`` values are capped to it.
    rebuild_index
        Re-read the static catalog into the index first.
    trusted_proxies
        Proxy addresses/networks whose ``Forwarded``/``X-Forwarded-*`` headers count.
    public_url
        Base URL every link is built on (``https://data.example.com/stac/``), whatever the
        request's ``Host``.

    Examples
    --------
    >>> import tempfile, pystac
    >>> d = tempfile.mkdtemp()
    >>> pystac.Catalog("c", "demo").normalize_and_save(d, pystac.CatalogType.SELF_CONTAINED)
    >>> app = create_app(d)
    >>> app.title
    'eo-pipeline export catalogue'
    """
    catalog = Path(catalog_dir)
    if not (catalog / "catalog.json").exists():
        raise CatalogError(f"{catalog / 'catalog.json'} not found; `eo-pipeline publish` first")
    index = open_index(catalog, rebuild=rebuild_index)
    customers = CustomerStore(catalog)
    signer = LinkSigner(load_secret(catalog))
    log = AccessLog(state_dir(catalog) / "access.log")
    root_doc = json.loads((catalog / "catalog.json").read_text())
    settings = ApiSettings(
        stac_fastapi_title=root_doc.get("title") or "eo-pipeline export catalogue",
        stac_fastapi_description=root_doc.get("description") or "Earth-observation products",
        stac_fastapi_landing_id=root_doc.get("id", "eo-pipeline"),
        stac_fastapi_version=_version(),
    )
    ext = _extensions(index)
    search_ext = [ext[k] for k in ("fields", "search_sort", "filter", "query", "text", "paging")]
    items_ext = [ext[k] for k in ("fields", "items_sort", "filter", "query", "text", "paging")]
    client = EntitledClient(index=index, signer=signer, link_ttl=link_ttl, max_limit=max_limit)
    # the landing page is the service's own (stac-fastapi's client defaults say "stac-fastapi")
    # and speaks the STAC version of the catalog it serves (pystac writes 1.1.0)
    client.landing_page_id = settings.stac_fastapi_landing_id
    client.title = settings.stac_fastapi_title
    client.description = settings.stac_fastapi_description
    stac_version = str(root_doc.get("stac_version") or pystac.get_stac_version())
    api = StacApi(
        settings=settings,
        client=client,
        stac_version=stac_version,
        extensions=list(ext.values()),
        search_get_request_model=create_get_request_model(search_ext),
        search_post_request_model=create_post_request_model(search_ext, base_model=_SearchPost),
        items_get_request_model=cast(
            type[APIRequest],
            create_request_model(
                "ItemCollectionUri",
                base_model=ItemCollectionUri,
                extensions=items_ext,
                request_type="GET",
            ),
        ),
        collections_get_request_model=ext["collection_search"].GET,
        middlewares=_middlewares(customers, index, log, trusted_proxies, public_url),
    )
    app = api.app
    _error_handlers(app)
    download = download_route(catalog, index, customers, signer)
    app.add_api_route(
        "/download/{path:path}", download, methods=["GET"], name="Download asset",
        operation_id="download_asset",
    )  # fmt: skip
    app.add_api_route(
        "/download/{path:path}", download, methods=["HEAD"], name="Download asset (headers)",
        operation_id="download_asset_head",
    )  # fmt: skip
    document_errors(app)
    return app


def _version() -> str:
    from eo_pipeline._version import __version__

    return __version__


_APP_ENV = "EO_PIPELINE_SERVE_CONFIG"


def app_from_env() -> FastAPI:
    """The app of one ``serve --workers N`` worker process (uvicorn's factory).

    The parent process rebuilt the index and created the signing secret before starting the
    workers; each worker only opens them (settings come in ``$EO_PIPELINE_SERVE_CONFIG``).
    """
    cfg = json.loads(os.environ[_APP_ENV])
    return create_app(
        cfg["catalog"],
        link_ttl=cfg["link_ttl"],
        rebuild_index=False,
        trusted_proxies=cfg["trusted_proxies"],
        public_url=cfg["public_url"],
    )


def serve_cli(args: argparse.Namespace) -> int:
    """``eo-pipeline serve --catalog DIR [--host H] [--port P] [--workers N] [--public-url URL]
    [--trusted-proxy IP ...]``.

    Rebuilds the index from the static catalog, creates the signing secret if needed, then
    serves until interrupted; with ``--workers N`` uvicorn runs N processes sharing the port,
    the index (read-only SQLite snapshots), the customers database and the secret.
    ``EO_PIPELINE_LINK_TTL`` (seconds, default 3600) sets the lifetime of signed links.
    """
    ttl = int(os.environ.get("EO_PIPELINE_LINK_TTL", "3600"))
    workers = int(getattr(args, "workers", 1) or 1)
    trusted = list(getattr(args, "trusted_proxy", None) or [])
    public_url = getattr(args, "public_url", None)
    app = create_app(args.catalog, link_ttl=ttl, trusted_proxies=trusted, public_url=public_url)
    print(
        f"serving {args.catalog} at http://{args.host}:{args.port}/ with {workers} worker(s) "
        f"(Ctrl-C to stop); private state in {state_dir(args.catalog)}; add customers with "
        f"`eo-pipeline customers --catalog {args.catalog} add NAME --collections ID,...`",
        flush=True,
    )
    if workers <= 1:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0
    os.environ[_APP_ENV] = json.dumps(
        {
            "catalog": str(Path(args.catalog).resolve()),
            "link_ttl": ttl,
            "trusted_proxies": trusted,
            "public_url": public_url,
        }
    )
    uvicorn.run(
        "eo_pipeline.export.api.server:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=workers,
        log_level="warning",
    )
    return 0


def pystac_client_example(url: str, key: str) -> str:
    """A ready-to-paste pystac-client snippet for ``url`` with API key ``key``."""
    return (
        "from pystac_client import Client\n"
        f'client = Client.open("{url}", headers={{"X-API-Key": "{key}"}})\n'
        "for collection in client.get_collections():\n"
        "    print(collection.id, collection.title)\n"
        "items = list(client.search(max_items=10).items())\n"
        "print(len(items), 'items;', 'first asset link:', next(iter(items[0].assets.values())).href if items else None)\n"
    )


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def demo_serve(
    catalog_dir: str | os.PathLike[str],
    *,
    customer: str = "demo",
    collections: list[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> tuple[str, str, Callable[[], None]]:
    """Serve a catalog in a background thread with a fresh demo customer key.

    The customer (entitled to ``collections``, default all of them) is (re)created with a new
    key each call. Returns ``(url, key, stop)``; call ``stop()`` to shut the server down.
    :func:`pystac_client_example` turns ``url`` and ``key`` into a snippet to print.

    Examples
    --------
    >>> import tempfile, pystac
    >>> d = tempfile.mkdtemp()
    >>> pystac.Catalog("c", "demo").normalize_and_save(d, pystac.CatalogType.SELF_CONTAINED)
    >>> url, key, stop = demo_serve(d, collections=[])
    >>> import httpx; httpx.get(url + "collections", headers={"X-API-Key": key}).status_code
    200
    >>> stop()
    """
    app = create_app(catalog_dir)
    index = open_index(catalog_dir)
    wanted = frozenset(collections) if collections is not None else None
    if wanted is None:
        wanted = frozenset(c["id"] for c in index.collections())
    store = CustomerStore(catalog_dir)
    existing = store.get(customer)
    if existing is not None and existing.active:
        store.revoke(customer)
    key = store.add(customer, Entitlement(wanted))
    port = port or _free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="eo-pipeline-demo-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise CatalogError(f"the demo API did not start on {host}:{port}")
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://{host}:{port}/", key, stop

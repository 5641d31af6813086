"""The export STAC API server: stac-fastapi routes, API keys, signed downloads, access log.

Endpoints (all JSON; errors are STAC-API style ``{"code": ..., "description": ...}``):

=========================================  ==================================================
``GET /``                                  landing page (stac-fastapi)
``GET /conformance``                       conformance classes
``GET /collections``                       the caller's collections only
``GET /collections/{c}``                   404 when not entitled (as when absent)
``GET /collections/{c}/items``             items, ``bbox``/``datetime``/``limit``/``token``/
                                           ``sortby``/``fields``
``GET /collections/{c}/items/{i}``         404 when not entitled
``GET|POST /search``                       ``bbox``/``intersects``/``datetime``/``ids``/
                                           ``collections``/``limit``/``token``/``sortby``/
                                           ``fields``; ``next`` links for paging
``GET /sortables``                         the sortable fields
``GET|HEAD /download/{path}``              signed asset download with HTTP Range support
``GET /_mgmt/ping``                        readiness probe
``GET /api``, ``/api.html``                OpenAPI document and its HTML view
=========================================  ==================================================

Authentication: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (see
:mod:`~eo_pipeline.export.api.customers`). An unknown or revoked key is a 401. Without a key
the caller is *anonymous* and sees only collections flagged public (``eo_pipeline:public``);
when there are none, data endpoints answer 401 (the landing page, conformance, OpenAPI and the
ping stay open). Downloads need no key but a valid signed link (see
:mod:`~eo_pipeline.export.api.signing`); at download time the customer must still be active
and entitled, the path must be an asset of an indexed item, and it must resolve inside the
catalog and outside the private state folder (so ``../`` and ``%2e%2e`` tricks get nowhere).

Every request is logged to ``<catalog>/.eo-pipeline/access.log`` (JSON lines: time, customer,
method, path, query without signatures, status, range).

Examples
--------
>>> from eo_pipeline.export.api.server import pystac_client_example
>>> print(pystac_client_example("http://127.0.0.1:8080/", "eok_x").splitlines()[0])
from pystac_client import Client
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast

import uvicorn
from brotli_asgi import BrotliMiddleware
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from stac_fastapi.api.app import StacApi
from stac_fastapi.api.middleware import ProxyHeaderMiddleware
from stac_fastapi.api.models import (
    ItemCollectionUri,
    create_get_request_model,
    create_post_request_model,
    create_request_model,
)
from stac_fastapi.extensions import FieldsExtension, TokenPaginationExtension
from stac_fastapi.extensions.fields.fields import FieldsConformanceClasses
from stac_fastapi.extensions.sort.client import BaseSortablesClient
from stac_fastapi.extensions.sort.sort import (
    ItemCollectionSortExtension,
    SearchSortExtension,
    SortConformanceClasses,
)
from stac_fastapi.types.config import ApiSettings
from stac_fastapi.types.errors import InvalidQueryParameter, NotFoundError
from stac_fastapi.types.search import APIRequest
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eo_pipeline.errors import CatalogError
from eo_pipeline.export.api.client import EntitledClient
from eo_pipeline.export.api.customers import ANONYMOUS, Customer, CustomerStore, Entitlement
from eo_pipeline.export.api.index import CatalogIndex, open_index
from eo_pipeline.export.api.signing import STATE_DIRNAME, LinkSigner, load_secret, state_dir

__all__ = ["create_app", "demo_serve", "pystac_client_example", "serve_cli"]

_OPEN_PATHS = frozenset({"/", "/conformance", "/api", "/api.html", "/_mgmt/ping", "/_mgmt/health"})
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


def _error(status: int, description: str, code: str | None = None) -> JSONResponse:
    code = code or HTTPStatus(status).phrase.replace(" ", "")
    return JSONResponse({"code": code, "description": description}, status_code=status)


class AccessLog:
    """Appends one JSON line per request to ``<state>/access.log`` (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)

    def write(self, **entry: Any) -> None:
        entry = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), **entry}
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)


class AuthMiddleware:
    """Resolves the caller (API key or anonymous), refuses bad keys, logs every request."""

    def __init__(
        self, app: ASGIApp, *, customers: CustomerStore, index: CatalogIndex, log: AccessLog
    ) -> None:
        self.app, self.customers, self.index, self.log = app, customers, index, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if key is None and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        path: str = scope["path"]
        status = {"code": 0}
        principal: Customer | None = None
        if key:
            principal = await run_in_threadpool(self.customers.authenticate, key)
            refusal = None if principal is not None else "API key unknown or revoked"
        else:
            public = await run_in_threadpool(self.index.public_collections)
            principal = Customer(ANONYMOUS, Entitlement(public))
            needs_key = not (public or path in _OPEN_PATHS or path.startswith("/download/"))
            refusal = "this catalog needs an API key (X-API-Key header)" if needs_key else None
        if refusal is not None or principal is None:
            response = _error(401, refusal or "unauthorized", "Unauthorized")
            response.headers["WWW-Authenticate"] = 'Bearer realm="eo-pipeline"'
            await response(scope, receive, send)
            self._log(scope, headers, "?" if principal is None else principal.name, 401)
            return
        scope.setdefault("state", {})["principal"] = principal

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self._log(scope, headers, principal.name, status["code"] or 500)

    def _log(self, scope: Scope, headers: Headers, who: str, status: int) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        query = "&".join(p for p in query.split("&") if not p.startswith("signature="))
        self.log.write(
            customer=who,
            method=scope["method"],
            path=scope["path"],
            query=query,
            status=status,
            range=headers.get("range"),
            client=(scope.get("client") or ("", 0))[0],
        )


class _Sortables(BaseSortablesClient):
    def get_sortables(self, request: Request | None = None, **kwargs: Any) -> dict[str, Any]:
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{request.base_url if request else ''}sortables",
            "type": "object",
            "title": "Sortables",
            "properties": _SORTABLE,
        }

    def get_collection_sortables(
        self, collection_id: str, request: Request | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return {**self.get_sortables(request), "$id": f"collections/{collection_id}/sortables"}


def _download_route(
    catalog_dir: Path, index: CatalogIndex, customers: CustomerStore, signer: LinkSigner
) -> Callable[..., Any]:
    root = catalog_dir.resolve()
    private = root / STATE_DIRNAME

    def download(
        path: str, request: Request, customer: str = "", expires: str = "", signature: str = ""
    ) -> Any:
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\\" in path or "\x00" in path:
            return _error(400, f"asset path {path!r} must be a plain catalog-relative path")
        if not (customer and expires and signature):
            return _error(403, "a signed link is needed: take asset hrefs from the API's items")
        if not signer.verify(path, customer, expires, signature, now=0):
            return _error(403, "link signature does not match (tampered or foreign link)")
        if int(expires) <= time.time():
            return _error(403, "link expired; fetch the item again for fresh links")
        owner = index.asset_owner(path)
        target = (root / path).resolve()
        if owner is None or not target.is_relative_to(root) or target.is_relative_to(private):
            return _error(404, f"no asset {path!r}")
        if customer == ANONYMOUS:
            entitlement = Entitlement(index.public_collections())
        else:
            found = customers.get(customer)
            if found is None or not found.active:
                return _error(403, f"customer {customer!r} is revoked or unknown")
            entitlement = found.entitlement
        if index.item(owner[0], owner[1], entitlement) is None:
            return _error(404, f"no asset {path!r}")
        if not target.is_file():
            return _error(404, f"asset {path!r} is indexed but its file is missing on the server")
        media = (
            "image/tiff; application=geotiff; profile=cloud-optimized"
            if target.suffix.lower() in (".tif", ".tiff")
            else None
        )
        return FileResponse(target, media_type=media, headers={"Cache-Control": "private"})

    return download


def create_app(
    catalog_dir: str | os.PathLike[str],
    *,
    link_ttl: int = 3600,
    max_limit: int = 1000,
    rebuild_index: bool = True,
) -> FastAPI:
    """The export API as a FastAPI app over an export catalog folder.

    Parameters
    ----------
    catalog_dir
        The export catalog (``catalog.json`` at its root, private state in ``.eo-pipeline/``).
    link_ttl
        Lifetime of signed asset links in seconds.
    max_limit
        Largest page size; larger ``limit`` values are capped to it.
    rebuild_index
        Re-read the static catalog into the index first.

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
    fields = FieldsExtension(
        conformance_classes=[FieldsConformanceClasses.SEARCH, FieldsConformanceClasses.ITEMS]
    )
    # Sort v1.1.0 as stac-fastapi declares it, plus the v1.0.0 URIs pystac-client looks for.
    search_sort = SearchSortExtension(
        client=_Sortables(),
        conformance_classes=[
            SortConformanceClasses.ITEM_SEARCH_SORT,
            SortConformanceClasses.ITEM_SEARCH_SORTABLES,
            "https://api.stacspec.org/v1.0.0/item-search#sort",
        ],
    )
    items_sort = ItemCollectionSortExtension(
        client=_Sortables(),
        conformance_classes=[
            SortConformanceClasses.FEATURES_SORT,
            SortConformanceClasses.FEATURES_SORTABLES,
            "https://api.stacspec.org/v1.0.0/ogcapi-features#sort",
        ],
    )
    paging = TokenPaginationExtension()
    client = EntitledClient(index=index, signer=signer, link_ttl=link_ttl, max_limit=max_limit)
    api = StacApi(
        settings=settings,
        client=client,
        extensions=[fields, search_sort, items_sort, paging],
        search_get_request_model=create_get_request_model([fields, search_sort, paging]),
        search_post_request_model=create_post_request_model([fields, search_sort, paging]),
        items_get_request_model=cast(
            type[APIRequest],
            create_request_model(
                "ItemCollectionUri",
                base_model=ItemCollectionUri,
                extensions=[fields, items_sort, paging],
                request_type="GET",
            ),
        ),
        middlewares=[
            Middleware(AuthMiddleware, customers=customers, index=index, log=log),
            Middleware(BrotliMiddleware, excluded_handlers=[r"^/download/"]),
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["OPTIONS", "POST", "GET", "HEAD"],
                allow_headers=["Content-Type", "Authorization", "X-API-Key", "Range"],
                expose_headers=["Content-Range", "Accept-Ranges", "Content-Length"],
                max_age=600,
            ),
            Middleware(ProxyHeaderMiddleware),
        ],
    )
    app = api.app

    def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
        return _error(400, "; ".join(parts) or "invalid request", "BadRequest")

    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    def client_error(status: int) -> Callable[[Request, Exception], JSONResponse]:
        def handler(request: Request, exc: Exception) -> JSONResponse:
            return _error(status, str(exc), type(exc).__name__)  # a client error: no traceback

        return handler

    app.add_exception_handler(NotFoundError, client_error(404))
    app.add_exception_handler(InvalidQueryParameter, client_error(400))
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_api_route(
        "/download/{path:path}",
        _download_route(catalog, index, customers, signer),
        methods=["GET", "HEAD"],
        name="Download asset",
        include_in_schema=True,
    )
    return app


def _version() -> str:
    from eo_pipeline._version import __version__

    return __version__


def serve_cli(args: argparse.Namespace) -> int:
    """``eo-pipeline serve --catalog DIR [--host 127.0.0.1] [--port 8080]``.

    Rebuilds the index from the static catalog, then serves until interrupted.
    ``EO_PIPELINE_LINK_TTL`` (seconds, default 3600) sets the lifetime of signed links.
    """
    ttl = int(os.environ.get("EO_PIPELINE_LINK_TTL", "3600"))
    app = create_app(args.catalog, link_ttl=ttl)
    print(
        f"serving {args.catalog} at http://{args.host}:{args.port}/ (Ctrl-C to stop); add "
        f"customers with `eo-pipeline customers --catalog {args.catalog} add NAME --collections "
        "ID,...`",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
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

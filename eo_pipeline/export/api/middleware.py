"""ASGI middleware of the export API: callers, request bodies, proxies, the access log.

- :class:`AuthMiddleware` resolves the caller (API key or anonymous), refuses bad keys,
  marks every answer ``Cache-Control: private`` and ``Vary`` on the credential headers (they
  differ per customer), and logs each request to the access log;
- :class:`BodyGuard` refuses request bodies that are too large (413), not JSON, or not a JSON
  object (400) before any model sees them;
- :class:`TrustedProxies` honours ``Forwarded`` / ``X-Forwarded-*`` only from configured
  proxy addresses, or pins every link to a configured public URL; anyone else's forwarded
  headers are ignored, so a client cannot point the links (signed ones included) elsewhere.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from stac_fastapi.api.middleware import ProxyHeaderMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eo_pipeline.errors import ConfigError
from eo_pipeline.export.api.customers import ANONYMOUS, Customer, CustomerStore, Entitlement
from eo_pipeline.export.api.index import CatalogIndex

__all__ = ["AccessLog", "AuthMiddleware", "BodyGuard", "TrustedProxies", "error_response"]

OPEN_PATHS = frozenset({"/", "/conformance", "/api", "/api.html", "/_mgmt/ping", "/_mgmt/health"})
"""Paths answered without a key even when no collection is public."""
MAX_BODY = 1 << 20
"""Largest request body accepted (bytes)."""
MAX_DEPTH = 100
"""Deepest JSON nesting accepted in a request body (a MultiPolygon needs 6, CQL2 ~2 per level)."""


def error_response(status: int, description: str, code: str | None = None) -> JSONResponse:
    """The STAC API error body ``{"code": ..., "description": ...}``."""
    code = code or HTTPStatus(status).phrase.replace(" ", "")
    return JSONResponse({"code": code, "description": description}, status_code=status)


class AccessLog:
    """Appends one JSON line per request to the access log (one ``write`` per line, O_APPEND,
    so the worker processes of ``serve --workers N`` never interleave lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)

    def write(self, **entry: Any) -> None:
        """Append ``entry`` (plus the time) as one JSON line."""
        entry = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), **entry}
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


def _vary(message: Message) -> None:
    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"vary"]
    old = [v for k, v in message.get("headers", []) if k.lower() == b"vary"]
    values = {p.strip() for v in old for p in v.decode("latin-1").split(",") if p.strip()}
    values |= {"Authorization", "X-API-Key"}
    headers.append((b"vary", ", ".join(sorted(values)).encode()))
    if not any(k.lower() == b"cache-control" for k, _ in headers):
        headers.append((b"cache-control", b"private"))
    message["headers"] = headers


class AuthMiddleware:
    """Resolves the caller (API key or anonymous), refuses bad keys, logs every request."""

    def __init__(
        self, app: ASGIApp, *, customers: CustomerStore, index: CatalogIndex, log: AccessLog
    ) -> None:
        self.app, self.customers, self.index, self.log = app, customers, index, log

    async def _principal(self, key: str | None, path: str) -> tuple[Customer | None, str | None]:
        public = await run_in_threadpool(self.index.public_collections)
        if key:
            found = await run_in_threadpool(self.customers.authenticate, key)
            if found is None:
                return None, "API key unknown or revoked"
            ent = replace(found.entitlement, public=public)
            return replace(found, entitlement=ent), None
        principal = Customer(ANONYMOUS, Entitlement(frozenset(), public=public))
        needs_key = not (public or path in OPEN_PATHS or path.startswith("/download/"))
        return principal, "this catalog needs an API key (X-API-Key header)" if needs_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if key is None and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        principal, refusal = await self._principal(key, scope["path"])
        if refusal is not None or principal is None:
            response = error_response(401, refusal or "unauthorized", "Unauthorized")
            response.headers["WWW-Authenticate"] = 'Bearer realm="eo-pipeline"'
            await response(scope, receive, send)
            self._log(scope, headers, "?" if principal is None else principal.name, "", 401)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        status = {"code": 0}
        download = scope["path"].startswith("/download/")

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if not download:
                    _vary(message)
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            # a download is the sale of the link's owner (set by the download route)
            who, key_id = state.get("sale", (principal.name, principal.key_id))
            self._log(scope, headers, who, key_id, status["code"] or 500)

    def _log(self, scope: Scope, headers: Headers, who: str, key_id: str, status: int) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        query = "&".join(p for p in query.split("&") if not p.startswith("signature="))
        self.log.write(
            customer=who,
            key=key_id or None,
            method=scope["method"],
            path=scope["path"],
            query=query,
            status=status,
            range=headers.get("range"),
            client=(scope.get("client") or ("", 0))[0],
        )


class BodyGuard:
    """Refuses oversized, non-JSON and non-object request bodies with STAC API errors."""

    def __init__(self, app: ASGIApp, *, max_body: int = MAX_BODY) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await error_response(413, f"request body over {self.max_body} bytes")(
                    scope, receive, send
                )
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        problem, keys = _json_object_problem(body)
        if problem is not None:
            await error_response(400, problem, "BadRequest")(scope, receive, send)
            return
        scope.setdefault("state", {})["body_keys"] = keys  # endpoints refuse unknown fields
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _json_object_problem(body: bytes) -> tuple[str | None, tuple[str, ...]]:
    try:
        value = json.loads(body)
    except RecursionError:
        return "request body is nested too deeply", ()
    except ValueError:
        return "request body is not valid JSON (UTF-8)", ()
    if not isinstance(value, dict):
        return f"request body must be a JSON object, not {type(value).__name__}", ()
    if _depth(value) > MAX_DEPTH:
        return f"request body is nested deeper than {MAX_DEPTH} levels", ()
    return None, tuple(value)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_DEPTH:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


class TrustedProxies:
    """Forwarded headers from trusted proxies only, or every link pinned to a public URL.

    Parameters
    ----------
    app
        The application.
    trusted
        Addresses or networks (``10.0.0.5``, ``10.0.0.0/8``) whose ``Forwarded`` /
        ``X-Forwarded-Host/-Proto/-Port/-Prefix`` headers are honoured.
    public_url
        When given, every link is built on it (scheme, host, port, path prefix), whatever the
        request says.
    """

    def __init__(
        self, app: ASGIApp, *, trusted: Iterable[str] = (), public_url: str | None = None
    ) -> None:
        self.app = app
        self.proxied = ProxyHeaderMiddleware(app)
        try:
            self.trusted = tuple(ipaddress.ip_network(t, strict=False) for t in trusted)
        except ValueError as err:
            raise ConfigError(f"trusted proxy: {err}; give IP addresses or networks") from None
        self.public = urlsplit(public_url) if public_url else None
        if self.public is not None and (
            self.public.scheme not in ("http", "https") or not self.public.hostname
        ):
            raise ConfigError(f"public URL {public_url!r}: give http(s)://host[:port][/prefix]")

    def _is_trusted(self, scope: Scope) -> bool:
        client = (scope.get("client") or ("", 0))[0]
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in net for net in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.public is not None:
            u = self.public
            port = u.port or (443 if u.scheme == "https" else 80)
            host = u.netloc.encode("latin-1")
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
            scope = {
                **scope,
                "scheme": u.scheme,
                "server": (u.hostname, port),
                "root_path": u.path.rstrip("/"),
                "headers": [(b"host", host), *headers],
            }
            await self.app(scope, receive, send)
        elif self.trusted and self._is_trusted(scope):
            await self.proxied(scope, receive, send)
        else:
            await self.app(scope, receive, send)

"""The export API's OpenAPI document, made to say what the server really answers.

stac-fastapi documents each route with a 200 and FastAPI's 422; this server answers client
mistakes with 400 (never 422), missing or bad keys with 401, refused links with 403, unknown or
unentitled things with 404, oversized bodies with 413, and partial items when the fields
extension trims them. :func:`document_errors` rewrites the generated document accordingly
(STAC API error body schema, the API-key security schemes, item collections whose features may
be trimmed) so that a client generated from it, or schemathesis, finds no contradiction.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

__all__ = ["document_errors"]

_ERROR = {
    "type": "object",
    "required": ["code", "description"],
    "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
}
_OPEN = frozenset({"/", "/conformance", "/api", "/api.html", "/_mgmt/ping", "/_mgmt/health"})
_ITEM_LISTS = frozenset({"/search", "/collections/{collection_id}/items"})
_FEATURE = {
    "type": "object",
    "required": ["type", "id"],
    "properties": {
        "type": {"type": "string", "enum": ["Feature"]},
        "id": {"type": "string"},
        "stac_version": {"type": "string"},
        "collection": {"type": "string"},
        "geometry": {"type": ["object", "null"]},
        "bbox": {"type": "array", "items": {"type": "number"}},
        "properties": {"type": "object"},
        "links": {"type": "array", "items": {"type": "object"}},
        "assets": {"type": "object"},
    },
    "description": "A STAC Item; with `fields`, only the requested parts of it.",
}
_ITEM_COLLECTION = {
    "type": "object",
    "required": ["type", "features", "links"],
    "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {"type": "array", "items": _FEATURE},
        "links": {"type": "array", "items": {"type": "object"}},
        "numberMatched": {"type": "integer", "minimum": 0},
        "numberReturned": {"type": "integer", "minimum": 0},
    },
}
_WHY = {
    "400": "Bad request: a malformed or unsupported parameter or body field (named)",
    "401": "API key missing (when nothing is public), unknown or revoked",
    "403": "Download link unsigned, tampered, expired, or its key revoked or replaced",
    "404": "Not found, or not entitled (the two are indistinguishable)",
    "413": "Request body too large",
    "416": "Range not satisfiable",
}


def _error_response(status: str) -> dict[str, Any]:
    return {
        "description": _WHY[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    download = path.startswith("/download/")
    out = ["400"] if operation.get("parameters") or operation.get("requestBody") else []
    if download:
        out += ["403", "404"] + (["416"] if method == "get" else [])
        return out
    if path not in _OPEN:
        out.append("401")
    if "{" in path:
        out.append("404")
    if method == "post":
        out.append("413")
    return out


def _rewrite(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = _ERROR
    components["securitySchemes"] = {
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "bearer": {"type": "http", "scheme": "bearer"},
    }
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            if method not in ("get", "post", "head"):
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in _statuses(path, method, operation):
                responses[status] = _error_response(status)
            if path.startswith("/download/"):
                responses["200"] = {"description": "The asset file"}
                if method == "get":
                    responses["206"] = {"description": "The requested byte range of the asset"}
                continue
            if path not in _OPEN:
                operation["security"] = [{"apiKey": []}, {"bearer": []}, {}]
            if path in _ITEM_LISTS:
                responses["200"] = {
                    "description": "Matching items (trimmed when `fields` is given)",
                    "content": {"application/geo+json": {"schema": _ITEM_COLLECTION}},
                }
    return schema


def document_errors(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document list the statuses and bodies the server answers."""
    generate = app.openapi
    done: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not done:
            done.append(_rewrite(generate()))
            app.openapi_schema = done[0]
        return done[0]

    app.openapi = openapi  # type: ignore[method-assign]

"""Signed asset downloads of the export API (``GET|HEAD /download/{path}``, HTTP Range).

A link works only while all of this holds (see :mod:`~eo_pipeline.export.api.signing`): the
signature matches the path, customer, key id and expiry; the expiry is in the future; the
key id is the customer's *current, active* key (so revoking or re-issuing a key kills every
link issued under the old one, for good); the customer is still entitled to the item; the
path is an asset of an indexed item, resolving inside the catalog. The sale is logged under
the link's customer and key id.

Range requests follow RFC 9110: a syntactically invalid ``Range`` header (``bytes=5-1``,
``bytes=x``) is ignored (200 with the whole file); a valid but unsatisfiable one is a 416.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import FileResponse
from starlette.types import Receive, Scope, Send

from eo_pipeline.export.api.customers import ANONYMOUS, CustomerStore, Entitlement
from eo_pipeline.export.api.index import CatalogIndex
from eo_pipeline.export.api.middleware import error_response
from eo_pipeline.export.api.signing import STATE_DIRNAME, LinkSigner

__all__ = ["download_route", "valid_range"]

_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")
_COG = "image/tiff; application=geotiff; profile=cloud-optimized"


def valid_range(header: str) -> bool:
    """True when a ``Range`` header is well-formed ``bytes=`` ranges (RFC 9110 section 14.1.1).

    Examples
    --------
    >>> valid_range("bytes=0-99"), valid_range("bytes=-5"), valid_range("bytes=5-1")
    (True, True, False)
    """
    unit, _, ranges = header.partition("=")
    if unit.strip().lower() != "bytes" or not ranges.strip():
        return False
    for part in ranges.split(","):
        match = _RANGE.match(part)
        if match is None:
            return False
        first, last = match.groups()
        if not first and not last:
            return False
        if first and last and int(last) < int(first):
            return False
    return True


class _File(FileResponse):
    """A FileResponse that ignores a malformed ``Range`` header instead of answering 400."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope.get("headers", [])
        ranges = [v for k, v in headers if k.lower() == b"range"]
        if ranges and not all(valid_range(v.decode("latin-1")) for v in ranges):
            scope = {**scope, "headers": [(k, v) for k, v in headers if k.lower() != b"range"]}
        await super().__call__(scope, receive, send)


def _entitlement(
    index: CatalogIndex, customers: CustomerStore, customer: str, key_id: str
) -> Entitlement | None:
    """What the link's owner may see now; ``None`` when the key is revoked or replaced."""
    public = index.public_collections()
    if customer == ANONYMOUS:
        return Entitlement(frozenset(), public=public) if key_id == "-" else None
    found = customers.get(customer)
    if found is None or not found.active or found.key_id != key_id:
        return None
    return Entitlement(
        found.entitlement.collections,
        bbox=found.entitlement.bbox,
        start=found.entitlement.start,
        end=found.entitlement.end,
        public=public,
    )


def download_route(
    catalog_dir: Path, index: CatalogIndex, customers: CustomerStore, signer: LinkSigner
) -> Callable[..., Any]:
    """The ``/download/{path}`` endpoint over ``catalog_dir``."""
    root = catalog_dir.resolve()
    private = root / STATE_DIRNAME

    def download(
        path: str,
        request: Request,
        customer: str = "",
        key: str = "",
        expires: str = "",
        signature: str = "",
    ) -> Any:
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\\" in path or "\x00" in path:
            return error_response(400, f"asset path {path!r} must be a plain catalog-relative path")
        if not (customer and key and expires and signature):
            return error_response(403, "a signed link is needed: take asset hrefs from the items")
        if not signer.verify(path, customer, key, expires, signature, now=0):
            return error_response(403, "link signature does not match (tampered or foreign link)")
        if not signer.verify(path, customer, key, expires, signature):
            return error_response(403, "link expired; fetch the item again for fresh links")
        request.state.sale = (customer, key)  # the access log records the link's owner
        entitlement = _entitlement(index, customers, customer, key)
        if entitlement is None:
            return error_response(
                403, f"the key this link was issued under ({customer}) is revoked or replaced"
            )
        owner = index.asset_owner(path)
        target = (root / path).resolve()
        if owner is None or not target.is_relative_to(root) or target.is_relative_to(private):
            return error_response(404, f"no asset {path!r}")
        if index.item(owner[0], owner[1], entitlement) is None:
            return error_response(404, f"no asset {path!r}")
        if not target.is_file():
            return error_response(404, f"asset {path!r} is indexed but its file is missing")
        media = _COG if target.suffix.lower() in (".tif", ".tiff") else None
        return _File(target, media_type=media, headers={"Cache-Control": "private"})

    return download

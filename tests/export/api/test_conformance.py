"""The STAC community's conformance suite (stac-api-validator) against a real server, offline.

Schemas come from pystac's bundled core copies and ``../shared/stac-schemas`` (see
:func:`eo_pipeline.catalogs.validation.schemas_dir`); every connection to a non-loopback
address is refused, so a schema the suite cannot find locally shows up as an error rather
than a silent download. (Link checks of the collections' external links, e.g. the licence
URL, fail to connect; stac-api-validator counts those as neither warnings nor errors.)

Validated classes: core, collections, features, item-search, item-search#fields,
item-search#sort, item-search#query, item-search#filter (CQL2 text and JSON, basic CQL2,
advanced comparison, basic spatial, temporal) and features#filter. stac-api-validator has no
checks for features#fields/#sort/#query, free text or collection search; those are covered by
tests/export/api/test_search.py.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pystac
import pytest

from eo_pipeline.catalogs.validation import _local_resources, schemas_dir
from eo_pipeline.export.api.signing import state_dir
from tests.export.api.conftest import Server

pytestmark = [pytest.mark.server, pytest.mark.slow]

CLASSES = [
    "core",
    "collections",
    "features",
    "item-search",
    "item-search#fields",
    "item-search#sort",
    "item-search#query",
    "item-search#filter",
    "features#filter",
]


# query extension: comparisons on eo:cloud_cover (the almaty item has 2), substring on
# platform, "in" on the instruments array
QUERY: tuple[str, ...] = ("eo:cloud_cover", "2", "2", "3", "3", "1", "1", "platform", "kaz")
QUERY += ("-2", "sat", "instruments", "msi,oli")


def _loopback(host: Any) -> bool:
    return str(host).startswith("127.") or str(host) in ("::1", "localhost")


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Schemas from disk, no connection beyond loopback; returns the refused addresses."""
    validator_utils = pytest.importorskip("stac_validator.utilities")
    local = _local_resources(str(schemas_dir()) if schemas_dir() else None)
    refused: list[str] = []
    fetch = validator_utils.fetch_and_parse_file

    def fetch_local(path: str, headers: dict | None = None) -> dict:
        return local[path] if path in local else fetch(path, headers)

    class LocalSchemasIO(pystac.stac_io.DefaultStacIO):
        def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
            href = str(source)
            if href in local:
                return json.dumps(local[href])
            return str(super().read_text(source, *args, **kwargs))

    connect = socket.socket.connect
    getaddrinfo = socket.getaddrinfo

    def guarded_connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            refused.append(str(address))
            raise ConnectionRefusedError(f"offline test: no connection to {address}")
        return connect(sock, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _loopback(host):
            refused.append(str(host))
            raise socket.gaierror(f"offline test: {host} not resolved")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(validator_utils, "fetch_and_parse_file", fetch_local)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    previous = pystac.StacIO._default_io
    pystac.StacIO.set_default(LocalSchemasIO)
    yield refused
    pystac.StacIO._default_io = previous


def test_stac_api_validator_finds_no_error(server: Server, offline: list[str]) -> None:
    validations = pytest.importorskip("stac_api_validator.validations")
    _warnings, errors = validations.validate_api(
        root_url=server.url,
        ccs_to_validate=CLASSES,
        collection="kazeosat2-l2",
        geometry=json.dumps({"type": "Point", "coordinates": [76.9, 43.22]}),
        auth_bearer_token=None,
        auth_query_parameter=None,
        fields_nested_property="properties.eo:cloud_cover",
        validate_pagination=True,
        query_config=validations.QueryConfig(*QUERY),
        transaction_collection=None,
        headers={"X-API-Key": server.catalog.keys["alice"]},
        open_assets_urls=True,
    )
    assert errors.as_list() == [], "\n".join(map(str, errors))
    assert not [s for s in map(str, offline) if "schema" in s or "stacspec" in s], offline
    # the suite really exercised the extensions (not skipped for want of a conformance class)
    log = (state_dir(server.catalog.root) / "access.log").read_text()
    for marker in ("filter-lang=cql2-text", "/queryables", "fields=", "sortby=", "query="):
        assert marker in log, marker

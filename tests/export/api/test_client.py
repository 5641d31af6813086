"""The core client on its own (no server): what each customer sees, signed links, 404s."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from stac_fastapi.types.errors import NotFoundError
from starlette.requests import Request

from eo_pipeline.export.api.client import EntitledClient
from eo_pipeline.export.api.customers import CustomerStore
from eo_pipeline.export.api.index import open_index
from eo_pipeline.export.api.signing import LinkSigner
from tests.export.api.conftest import PUBLIC, Published

SECRET = b"s" * 32


def _request(principal: Any, path: str = "/collections", query: str = "") -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": ("testserver", 80),
        "root_path": "",
        "path": path,
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver")],
        "state": {"principal": principal},
        "app": SimpleNamespace(state=SimpleNamespace(router_prefix="")),
    }
    return Request(scope)


@pytest.fixture(scope="module")
def client(published: Published) -> EntitledClient:
    return EntitledClient(index=open_index(published.root), signer=LinkSigner(SECRET))


def _customer(published: Published, name: str) -> Any:
    """The customer as the server's middleware hands it over: public collections added."""
    c = CustomerStore(published.root).authenticate(published.keys[name])
    assert c is not None
    return replace(c, entitlement=replace(c.entitlement, public=frozenset({PUBLIC})))


def test_each_customer_sees_their_collections(client: EntitledClient, published: Published) -> None:
    alice = _customer(published, "alice")
    seen = {c["id"] for c in client.all_collections(request=_request(alice))["collections"]}
    assert seen == {"kazeosat2-l2", PUBLIC}
    bob = _customer(published, "bob")
    seen = {c["id"] for c in client.all_collections(request=_request(bob))["collections"]}
    assert seen == {"kazeosat1-l2", "kazeosat2-l2", PUBLIC}
    with pytest.raises(NotFoundError):
        client.get_collection("kazeosat1-l2", request=_request(alice))


def test_items_carry_links_the_signer_verifies(
    client: EntitledClient, published: Published
) -> None:
    alice = _customer(published, "alice")
    found = client.get_search(collections=["kazeosat2-l2"], request=_request(alice, "/search"))
    assert found["numberReturned"] == 3
    item = found["features"][0]
    href = next(a["href"] for a in item["assets"].values() if "/download/" in a["href"])
    url = urlparse(href)
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    path = url.path.split("/download/", 1)[1]
    signer = LinkSigner(SECRET)
    assert q["customer"] == "alice"
    assert signer.verify(path, q["customer"], q["key"], q["expires"], q["signature"])
    assert not LinkSigner(b"t" * 32).verify(
        path, q["customer"], q["key"], q["expires"], q["signature"]
    )
    got = client.get_item(item["id"], "kazeosat2-l2", request=_request(alice, "/x"))
    assert got["id"] == item["id"]
    with pytest.raises(NotFoundError):
        client.get_item(item["id"], "kazeosat1-l2", request=_request(alice, "/x"))


def test_bob_is_limited_to_his_area_and_year(client: EntitledClient, published: Published) -> None:
    bob = _customer(published, "bob")
    found = client.get_search(collections=["kazeosat2-l2"], request=_request(bob, "/search"))
    # of astana 2024-06, almaty 2024-07 and aktau 2025-03 only almaty is inside his bbox and year
    assert [f["properties"]["datetime"][:7] for f in found["features"]] == ["2024-07"]

"""Every hole of the export API audit (issue #13), written as the attack: request -> status.

In-process (TestClient over the real app and a real published catalog): no server process.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eo_pipeline.export.api.customers import CustomerStore, Entitlement
from eo_pipeline.export.api.server import create_app
from eo_pipeline.export.api.signing import state_dir
from tests.export.api.conftest import BOB_BBOX, PUBLIC, Published, key_id

ITEM = "kazeosat2-l2-almaty-20240715"
ITEM_URL = f"/collections/kazeosat2-l2/items/{ITEM}"


@pytest.fixture(scope="module")
def app(published: Published) -> FastAPI:
    return create_app(published.root)


@pytest.fixture()
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _h(published: Published, who: str = "alice") -> dict[str, str]:
    return {"X-API-Key": published.keys[who]}


def _link(client: TestClient, headers: dict[str, str], band: str = "B1") -> str:
    r = client.get(ITEM_URL, headers=headers)
    assert r.status_code == 200, r.text
    return str(r.json()["assets"][band]["href"]).removeprefix("http://testserver")


def _stac_error(r: httpx.Response, status: int) -> dict[str, str]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"code", "description"}, body
    return body


# -- 1. revocation is final --------------------------------------------------------------------
def test_old_link_stays_dead_after_revoke_and_re_add(client: TestClient, published: Published):
    store = CustomerStore(published.root)
    key = store.add("mallory", Entitlement(frozenset({"kazeosat2-l2"})))
    link = _link(client, {"X-API-Key": key})
    assert client.get(link, headers={"Range": "bytes=0-99"}).status_code == 206
    store.revoke("mallory")
    assert client.get(link).status_code == 403
    new_key = store.add("mallory", Entitlement(frozenset({"kazeosat2-l2"})))  # same name again
    _stac_error(client.get(link), 403)  # the old link is bound to the old key: dead for good
    assert client.get(_link(client, {"X-API-Key": new_key})).status_code == 200
    # a link forged for the new key id without the secret is still refused
    q = parse_qs(urlparse(link).query)
    forged = link.replace(q["key"][0], key_id(new_key))
    assert client.get(forged).status_code == 403


# -- 2. no 500 on client input -----------------------------------------------------------------
@pytest.mark.parametrize("body", ["[]", "1", '"x"', "null", "[null,null]", "{", "\xff", "[" * 5000])
def test_search_body_not_an_object_is_400(client: TestClient, published: Published, body: str):
    r = client.post(
        "/search",
        content=body.encode("latin-1"),
        headers={**_h(published), "content-type": "application/json"},
    )
    _stac_error(r, 400)


@pytest.mark.parametrize(
    "intersects",
    [
        "[" * 5000,
        '{"type":"Circle","coordinates":[0,0]}',
        '{"type":"Polygon","coordinates":"x"}',
        '{"type":"Point","coordinates":[]}',
        '{"type":"GeometryCollection","geometries":[{"type":"Circle"}]}',
        "null",
        "1e999",
    ],
)
def test_bad_intersects_is_400(client: TestClient, published: Published, intersects: str):
    _stac_error(
        client.get("/search", params={"intersects": intersects}, headers=_h(published)), 400
    )
    try:
        geometry = json.loads(intersects)
    except (ValueError, RecursionError):
        return
    if isinstance(geometry, dict):
        r = client.post("/search", json={"intersects": geometry}, headers=_h(published))
        _stac_error(r, 400)


@pytest.mark.parametrize(
    "params",
    [
        {"customer": "alice", "key": "x", "expires": "99999999999", "signature": "éééé"},
        {"customer": "alice", "key": "x", "expires": "9" * 5000, "signature": "0" * 64},
        {"customer": "é", "key": "é", "expires": "-1", "signature": "é" * 64},
    ],
)
def test_junk_signature_without_key_is_403(
    client: TestClient, published: Published, params: dict[str, str]
) -> None:
    path = urlparse(_link(client, _h(published))).path
    _stac_error(client.get(path, params=params), 403)


def test_filter_text_that_would_crash_the_parser_is_400(client: TestClient, published: Published):
    h = _h(published)
    for text in ["(" * 5000 + "id='a'" + ")" * 5000, "NOT " * 5000 + "id='a'", "-" * 5000 + "1=id"]:
        _stac_error(client.get("/search", params={"filter": text}, headers=h), 400)
    deep: dict = {"op": "=", "args": [{"property": "id"}, "a"]}
    for _ in range(300):
        deep = {"op": "not", "args": [deep]}
    _stac_error(client.post("/search", json={"filter": deep}, headers=h), 400)


# -- 3. client-controlled host -----------------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [
        {"X-Forwarded-Host": "evil.example"},
        {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
        {"Forwarded": "host=evil.example;proto=https"},
        {"X-Forwarded-Prefix": "/evil"},
    ],
)
def test_forwarded_headers_from_strangers_do_not_move_links(
    client: TestClient, published: Published, header: dict[str, str]
) -> None:
    r = client.get(ITEM_URL, headers={**_h(published), **header})
    text = r.text
    assert r.status_code == 200 and "evil" not in text
    assert r.json()["assets"]["B1"]["href"].startswith("http://testserver/download/")
    assert r.headers["cache-control"] == "private"
    assert {"Authorization", "X-API-Key"} <= {v.strip() for v in r.headers["vary"].split(",")}


def test_trusted_proxy_and_public_url(published: Published) -> None:
    proxied = create_app(published.root, rebuild_index=False, trusted_proxies=["10.0.0.0/8"])
    with TestClient(proxied, client=("10.1.2.3", 5555)) as c:
        r = c.get(ITEM_URL, headers={**_h(published), "X-Forwarded-Host": "data.example.com"})
        assert r.json()["assets"]["B1"]["href"].startswith("http://data.example.com/download/")
    with TestClient(proxied, client=("192.0.2.9", 5555)) as c:  # not a trusted proxy
        r = c.get(ITEM_URL, headers={**_h(published), "X-Forwarded-Host": "data.example.com"})
        assert "data.example.com" not in r.text
    pinned = create_app(published.root, rebuild_index=False, public_url="https://stac.example.org")
    with TestClient(pinned) as c:
        r = c.get(ITEM_URL, headers={**_h(published), "X-Forwarded-Host": "evil.example"})
        href = r.json()["assets"]["B1"]["href"]
        assert href.startswith("https://stac.example.org/download/") and "evil" not in r.text


# -- 4. nothing silently ignored ---------------------------------------------------------------
def test_query_filter_and_q_are_applied(client: TestClient, published: Published) -> None:
    h = _h(published)
    r = client.post("/search", json={"query": {"eo:cloud_cover": {"lt": -1}}}, headers=h)
    assert r.status_code == 200 and r.json()["features"] == [] and r.json()["numberMatched"] == 0
    r = client.get("/search", params={"filter": "eo:cloud_cover < -1"}, headers=h)
    assert r.status_code == 200 and r.json()["features"] == []
    r = client.get("/search", params={"q": "no-such-word-anywhere"}, headers=h)
    assert r.status_code == 200 and r.json()["features"] == []


@pytest.mark.parametrize(
    ("method", "where", "named"),
    [
        ("GET", {"foo": "1"}, "foo"),
        ("GET", {"intersect": "{}"}, "intersect"),
        ("GET", {"filter": "nosuchproperty = 1"}, "nosuchproperty"),
        ("GET", {"filter": "id = 1 +"}, "filter"),
        ("GET", {"filter-lang": "cql2-text", "filter": "A_EQUALS(instruments, ('x'))"}, "a_equals"),
        ("GET", {"query": '{"eo:cloud_cover": {"near": 1}}'}, "near"),
        ("GET", {"filter-crs": "EPSG:3857", "filter": "id = 'a'"}, "filter-crs"),
        ("POST", {"foo": 1}, "foo"),
        ("POST", {"query": {"eo:cloud_cover": {"lt": -1}}, "filterx": {}}, "filterx"),
        ("POST", {"filter": {"op": "like", "args": [{"property": "gsd"}, "x%"]}}, "like"),
        ("POST", {"fields": None}, "fields"),
    ],
)
def test_unsupported_parameters_are_400_naming_them(
    client: TestClient, published: Published, method: str, where: dict, named: str
) -> None:
    h = _h(published)
    if method == "GET":
        r = client.get("/search", params=where, headers=h)
    else:
        r = client.post("/search", json=where, headers=h)
    assert named.lower() in _stac_error(r, 400)["description"].lower()
    if method == "GET" and "filter" not in where:
        r = client.get("/collections/kazeosat2-l2/items", params=where, headers=h)
        assert named.lower() in _stac_error(r, 400)["description"].lower()


# -- 5. conformance ----------------------------------------------------------------------------
def test_items_page_has_self_link(client: TestClient, published: Published) -> None:
    r = client.get("/collections/kazeosat2-l2/items", params={"limit": 1}, headers=_h(published))
    rels = {link["rel"]: link["href"] for link in r.json()["links"]}
    assert rels["self"] == "http://testserver/collections/kazeosat2-l2/items?limit=1"
    assert "next" in rels and r.json()["numberMatched"] == 3


@pytest.mark.parametrize(
    ("fields", "present", "absent"),
    [
        ("-properties,+properties.platform", ["properties.platform"], ["geometry", "assets"]),
        ("+geometry,-geometry", ["geometry"], ["assets"]),
        ("", ["geometry", "bbox", "assets", "links", "properties.datetime"], ["properties.gsd"]),
        ("-geometry", ["assets", "properties.gsd"], ["geometry"]),
        ("properties,-properties.gsd", ["properties.platform"], ["properties.gsd", "assets"]),
    ],
)
def test_fields_extension_semantics(
    client: TestClient, published: Published, fields: str, present: list, absent: list
) -> None:
    r = client.get("/search", params={"fields": fields, "limit": 1}, headers=_h(published))
    feature = r.json()["features"][0]

    def has(path: str) -> bool:
        node = feature
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    assert all(has(p) for p in present), (fields, feature)
    assert not any(has(p) for p in absent), (fields, feature)


def test_fields_post_exclude_with_empty_include_is_default_set(
    client: TestClient, published: Published
) -> None:
    h = _h(published)
    empty: tuple[list[str] | None, ...] = ([], None)  # explicitly empty or null
    for include in empty:
        body: dict[str, object] = {
            "fields": {"exclude": ["geometry"], "include": include},
            "limit": 1,
        }
        feature = client.post("/search", json=body, headers=h).json()["features"][0]
        assert "geometry" not in feature and "gsd" not in feature["properties"]
        assert feature["assets"] and feature["id"]
    body = {"fields": {"exclude": ["geometry"]}, "limit": 1}
    feature = client.post("/search", json=body, headers=h).json()["features"][0]
    assert "geometry" not in feature and "gsd" in feature["properties"]


def test_openapi_lists_the_statuses_served_and_unique_operation_ids(
    published: Published,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI's "Duplicate Operation ID" is a UserWarning
        app = create_app(published.root, rebuild_index=False)
        doc = TestClient(app).get("/api").json()
    search = doc["paths"]["/search"]
    assert {"200", "400", "401"} <= set(search["get"]["responses"]) and "422" not in str(search)
    assert "404" in doc["paths"]["/collections/{collection_id}"]["get"]["responses"]
    download = doc["paths"]["/download/{path}"]
    assert {"206", "403", "404", "416"} <= set(download["get"]["responses"])
    ids = [op["operationId"] for p in doc["paths"].values() for op in p.values()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("path", ["sortables", "queryables", "items", ""])
def test_unentitled_collection_subresources_are_404(
    client: TestClient, published: Published, path: str
) -> None:
    url = "/collections/kazeosat1-l2" + (f"/{path}" if path else "")
    _stac_error(client.get(url, headers=_h(published)), 404)  # alice did not buy kazeosat1-l2
    assert client.get(url, headers=_h(published, "bob")).status_code == 200


def test_customer_sees_its_entitled_extent(client: TestClient, published: Published) -> None:
    doc = client.get("/collections/kazeosat2-l2", headers=_h(published, "bob")).json()
    w, s, e, n = doc["extent"]["spatial"]["bbox"][0]
    assert BOB_BBOX[0] <= w <= e <= BOB_BBOX[2] and BOB_BBOX[1] <= s <= n <= BOB_BBOX[3]
    start, end = doc["extent"]["temporal"]["interval"][0]
    assert start >= "2024-01-01" and end <= "2024-12-31T23:59:59Z"
    full = client.get("/collections/kazeosat2-l2", headers=_h(published)).json()["extent"]
    assert full["spatial"]["bbox"][0][0] < 52 and full["temporal"]["interval"][0][1] > "2025"


def test_public_collection_visible_with_a_key(client: TestClient, published: Published) -> None:
    r = client.get(f"/collections/{PUBLIC}", headers=_h(published))
    assert r.status_code == 200
    found = client.get("/search", params={"collections": PUBLIC}, headers=_h(published, "bob"))
    assert [f["id"] for f in found.json()["features"]] == ["landsat8-ndvi-astana-20240501"]
    link = found.json()["features"][0]["assets"]["B1"]["href"]
    assert client.get(link.removeprefix("http://testserver")).status_code == 200


@pytest.mark.parametrize(
    ("range_header", "status"),
    [("bytes=5-1", 200), ("bytes=x-y", 200), ("items=0-1", 200), ("bytes=0-9", 206),
     ("bytes=-10", 206), ("bytes=99999999-", 416)],
)  # fmt: skip
def test_range_headers(
    client: TestClient, published: Published, range_header: str, status: int
) -> None:
    link = _link(client, _h(published))
    r = client.get(link, headers={"Range": range_header})
    assert r.status_code == status, r.text[:200]
    if status == 206:
        assert len(r.content) == 10


# -- 6. sales log and private state ------------------------------------------------------------
def test_download_is_logged_as_the_links_customer_and_key(
    client: TestClient, published: Published
) -> None:
    link = _link(client, _h(published, "carol"))
    assert client.get(link).status_code == 200  # no key sent: the link is the credential
    lines = (state_dir(published.root) / "access.log").read_text().splitlines()
    entry = json.loads(next(x for x in reversed(lines) if '"path":"/download/' in x))
    assert entry["customer"] == "carol" and entry["key"] == key_id(published.keys["carol"])
    assert "signature=" not in entry["query"]


def test_private_state_is_outside_the_published_tree(published: Published) -> None:
    state = state_dir(published.root)
    assert not state.is_relative_to(published.root)
    assert {"signing.key", "customers.sqlite", "index.sqlite", "access.log"} <= {
        p.name for p in state.iterdir()
    }
    assert not list(published.root.rglob(".eo-pipeline"))
    assert not list(published.root.rglob("*.sqlite")) and not list(published.root.rglob("*.key"))


def test_legacy_state_inside_the_catalog_is_moved_out(tmp_path: Path) -> None:
    catalog = tmp_path / "export"
    (catalog / ".eo-pipeline").mkdir(parents=True)
    (catalog / ".eo-pipeline" / "marker").write_text("x")
    state = state_dir(catalog)
    assert (state / "marker").read_text() == "x" and not (catalog / ".eo-pipeline").exists()


def test_a_paging_token_beyond_any_offset_is_a_client_error(
    client: TestClient, published: Published
) -> None:
    """Audit find: a forged token of offset 10^22 overflowed SQLite's integers (a 500)."""
    import base64

    huge = base64.urlsafe_b64encode(b"offset:" + b"9" * 22).decode().rstrip("=")
    for r in (
        client.get(f"/search?token={huge}", headers=_h(published)),
        client.post("/search", json={"token": huge}, headers=_h(published)),
    ):
        body = _stac_error(r, 400)
        assert "paging token" in body["description"]

"""The export API as a real process: pystac-client, GDAL /vsicurl/, refusals, a burst."""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor, wait
from urllib.parse import parse_qs, quote, urlencode, urlparse

import httpx
import numpy as np
import pytest
import rasterio
from pystac_client import Client
from rasterio.windows import Window

from eo_pipeline.cli import main
from eo_pipeline.export.api.signing import LinkSigner, load_secret, state_dir
from tests.export.api.conftest import PUBLIC, Server, key_id

pytestmark = pytest.mark.server

ALICE_ITEMS = {
    "kazeosat2-l2-astana-20240610",
    "kazeosat2-l2-almaty-20240715",
    "kazeosat2-l2-aktau-20250301",
}
BOB_ITEMS = {"kazeosat2-l2-almaty-20240715", "kazeosat1-l2-shymkent-20240901"}
PUBLIC_ITEM = "landsat8-ndvi-astana-20240501"


def _client(server: Server, who: str | None) -> Client:
    headers = {"X-API-Key": server.catalog.keys[who]} if who else {}
    return Client.open(server.url, headers=headers)


def _asset_link(server: Server, who: str, collection: str, item: str, key: str = "B1") -> str:
    r = httpx.get(
        f"{server.url}collections/{collection}/items/{item}",
        headers={"X-API-Key": server.catalog.keys[who]},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["assets"][key]["href"])


def _raw_get(server: Server, target: str) -> int:
    """GET with the path sent byte for byte (no client-side dot-segment normalisation)."""
    u = urlparse(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("GET", target)
        return conn.getresponse().status
    finally:
        conn.close()


def test_landing_page_and_conformance_open_to_all(server: Server) -> None:
    landing = httpx.get(server.url).json()
    assert {"search", "data", "conformance"} <= {link["rel"] for link in landing["links"]}
    conforms = httpx.get(server.url + "conformance").json()["conformsTo"]
    assert "https://api.stacspec.org/v1.0.0/item-search" in conforms
    assert "https://api.stacspec.org/v1.1.0/item-search#sort" in conforms
    assert "https://api.stacspec.org/v1.0.0/item-search#fields" in conforms


def test_customers_see_only_their_entitlements(server: Server) -> None:
    alice, bob, anon = (_client(server, w) for w in ("alice", "bob", None))
    # customers see what they bought plus the public collection (whole: their area and time
    # range limit only what they bought)
    assert {c.id for c in alice.get_collections()} == {"kazeosat2-l2", PUBLIC}
    assert {c.id for c in bob.get_collections()} == {"kazeosat1-l2", "kazeosat2-l2", PUBLIC}
    assert {c.id for c in anon.get_collections()} == {PUBLIC}
    assert {i.id for i in alice.search(max_items=50).items()} == ALICE_ITEMS | {PUBLIC_ITEM}
    # bob: two collections, but only inside his area and within 2024
    assert {i.id for i in bob.search(max_items=50).items()} == BOB_ITEMS | {PUBLIC_ITEM}
    assert {i.id for i in anon.search(max_items=50).items()} == {PUBLIC_ITEM}
    # the same search narrowed by bbox and datetime
    found = alice.search(bbox=[76, 43, 78, 44], datetime="2024-07-01/2024-07-31", max_items=10)
    assert [i.id for i in found.items()] == ["kazeosat2-l2-almaty-20240715"]
    # intersects is refined exactly: a triangle whose bbox covers Astana but not its footprint
    triangle = {
        "type": "Polygon",
        "coordinates": [[[71.0, 50.5], [72.5, 50.5], [71.0, 51.0], [71.0, 50.5]]],
    }
    assert list(alice.search(intersects=triangle, max_items=10).items()) == []
    near = {"type": "Point", "coordinates": [71.35, 51.10]}
    assert {i.id for i in alice.search(intersects=near).items()} == {
        "kazeosat2-l2-astana-20240610",
        PUBLIC_ITEM,
    }
    assert [i.id for i in alice.search(ids=["kazeosat2-l2-aktau-20250301"]).items()] == [
        "kazeosat2-l2-aktau-20250301"
    ]


def test_unentitled_collection_and_item_are_404(server: Server) -> None:
    alice = _client(server, "alice")
    assert alice.get_collection("kazeosat1-l2") is None  # pystac-client's answer to a 404
    assert alice.get_collection("kazeosat2-l2") is not None
    h = {"X-API-Key": server.catalog.keys["bob"]}
    # exists, but outside bob's area: 404 exactly like an item that does not exist
    r1 = httpx.get(
        f"{server.url}collections/kazeosat2-l2/items/kazeosat2-l2-astana-20240610", headers=h
    )
    r2 = httpx.get(f"{server.url}collections/kazeosat2-l2/items/no-such-item", headers=h)
    assert r1.status_code == r2.status_code == 404
    assert r1.json()["code"] == r2.json()["code"] == "NotFoundError"
    anon = httpx.get(f"{server.url}collections/kazeosat2-l2/items/kazeosat2-l2-astana-20240610")
    assert anon.status_code == 404


def test_paging_sortby_and_fields(server: Server) -> None:
    alice = _client(server, "alice")
    search = alice.search(
        collections=["kazeosat2-l2"], limit=1, sortby="-properties.eo:cloud_cover", max_items=10
    )
    pages = list(search.pages_as_dicts())
    assert len(pages) == 3 and all(len(p["features"]) == 1 for p in pages)
    covers = [p["features"][0]["properties"]["eo:cloud_cover"] for p in pages]
    assert covers == sorted(covers, reverse=True)
    h = {"X-API-Key": server.catalog.keys["alice"]}
    body = {
        "collections": ["kazeosat2-l2"],
        "limit": 1,
        "sortby": [{"field": "datetime", "direction": "asc"}],
    }
    first = httpx.post(server.url + "search", json=body, headers=h).json()
    nxt = next(link for link in first["links"] if link["rel"] == "next")
    assert nxt["method"] == "POST"
    second = httpx.post(nxt["href"], json=nxt["body"], headers=h).json()
    assert first["features"][0]["id"] == "kazeosat2-l2-astana-20240610"
    assert second["features"][0]["id"] == "kazeosat2-l2-almaty-20240715"
    r = httpx.get(server.url + "search", params={"fields": "properties.gsd,-assets"}, headers=h)
    feature = r.json()["features"][0]
    assert feature["properties"] == {"gsd": 6.5} and "assets" not in feature
    items = httpx.get(
        server.url + "collections/kazeosat2-l2/items", params={"limit": 2}, headers=h
    ).json()
    assert len(items["features"]) == 2 and any(x["rel"] == "next" for x in items["links"])


def test_oversized_limit_is_capped(server: Server) -> None:
    h = {"X-API-Key": server.catalog.keys["alice"]}
    r = httpx.get(server.url + "search", params={"limit": 10**9}, headers=h)
    assert r.status_code == 200 and r.json()["numberReturned"] == 4
    r = httpx.post(server.url + "search", json={"limit": 10**9}, headers=h)
    assert r.status_code == 200 and r.json()["numberReturned"] == 4


@pytest.mark.parametrize(
    ("method", "query", "words"),
    [
        ("GET", {"bbox": "76,45,78,44"}, "south"),
        ("POST", {"bbox": [76, 45, 78, 44]}, "latitude"),
        ("GET", {"bbox": "1,2,3"}, "4 or 6"),
        ("GET", {"bbox": "a,b,c,d"}, "bbox"),
        ("POST", {"bbox": [0, 0, 1]}, "bbox"),
        ("GET", {"datetime": "2025-01-01T00:00:00Z/2024-01-01T00:00:00Z"}, "datetime"),
        ("POST", {"datetime": "2025-01-01T00:00:00Z/2024-01-01T00:00:00Z"}, "after"),
        ("GET", {"datetime": "yesterday"}, "RFC3339"),
        ("GET", {"collections": "kazeosat1-l2"}, "unknown collection"),
        ("POST", {"collections": ["no-such-collection"]}, "unknown collection"),
        ("GET", {"intersects": "{not json"}, "intersects"),
        (
            "POST",
            {"intersects": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}},
            "intersects",
        ),
        ("GET", {"token": "bogus!"}, "token"),
        ("GET", {"sortby": "properties.x;drop"}, "sortby"),
        ("POST", {"limit": "many"}, "limit"),
    ],
)
def test_malformed_searches_are_stac_400s(
    server: Server, method: str, query: dict[str, object], words: str
) -> None:
    h = {"X-API-Key": server.catalog.keys["alice"]}
    if method == "GET":
        r = httpx.get(server.url + "search", params=query, headers=h)  # type: ignore[arg-type]
    else:
        r = httpx.post(server.url + "search", json=query, headers=h)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"code", "description"}
    assert words.lower() in body["description"].lower(), body


def test_signed_cog_read_remotely_with_gdal(server: Server) -> None:
    item = "kazeosat2-l2-almaty-20240715"
    href = _asset_link(server, "alice", "kazeosat2-l2", item, "B2")
    local = server.catalog.root / "kazeosat2-l2" / item / f"{item}_B2.tif"
    window = Window(16, 8, 32, 40)
    env = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif",
        "GDAL_HTTP_MAX_RETRY": "0",
        "VSI_CACHE": "FALSE",
    }
    with rasterio.Env(**env), rasterio.open(f"/vsicurl/{href}") as remote:
        assert remote.driver == "GTiff" and remote.block_shapes[0] == (32, 32)
        got = remote.read(1, window=window)
    with rasterio.open(local) as src:
        expected = src.read(1, window=window)
    np.testing.assert_array_equal(got, expected)
    r = httpx.get(href, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == local.read_bytes()[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{local.stat().st_size}"


def test_tampered_expired_and_unsigned_links_refused(server: Server) -> None:
    href = _asset_link(server, "alice", "kazeosat2-l2", "kazeosat2-l2-astana-20240610")
    assert httpx.get(href).status_code == 200
    u = urlparse(href)
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    base = f"{u.scheme}://{u.netloc}{u.path}"
    other_path = u.path.replace("_B1.tif", "_B2.tif")
    cases = {
        "signature": {
            **q,
            "signature": q["signature"][:-1] + ("0" if q["signature"][-1] != "0" else "1"),
        },
        "customer": {**q, "customer": "bob"},
        "expiry": {**q, "expires": str(int(q["expires"]) + 3600)},
        "unsigned": {},
    }
    for name, params in cases.items():
        r = httpx.get(f"{base}?{urlencode(params)}")
        assert r.status_code == 403, (name, r.text)
    assert httpx.get(f"{u.scheme}://{u.netloc}{other_path}?{u.query}").status_code == 403
    # a correctly signed but expired link
    signer = LinkSigner(load_secret(server.catalog.root))
    path = u.path.removeprefix("/download/")
    expired = signer.sign(path, "alice", q["key"], int(time.time()) - 5)
    r = httpx.get(f"{base}?{urlencode(expired)}")
    assert r.status_code == 403 and "expired" in r.json()["description"]


def test_path_traversal_refused_even_when_signed(server: Server) -> None:
    signer = LinkSigner(load_secret(server.catalog.root))
    kid = key_id(server.catalog.keys["alice"])
    exp = int(time.time()) + 600
    targets = [
        "../.eo-pipeline/signing.key",
        "kazeosat2-l2/../.eo-pipeline/customers.sqlite",
        ".eo-pipeline/signing.key",
        ".eo-pipeline/customers.sqlite",
        "catalog.json",
        "kazeosat2-l2/collection.json",
    ]
    for target in targets:
        q = urlencode(signer.sign(target, "alice", kid, exp))
        status = _raw_get(server, f"/download/{target}?{q}")
        assert status in (400, 404), (target, status)
        encoded = target.replace("..", "%2e%2e").replace(".eo", "%2eeo")
        assert _raw_get(server, f"/download/{encoded}?{q}") in (400, 404), encoded
    q = urlencode(signer.sign("/etc/passwd", "alice", kid, exp))
    assert _raw_get(server, f"/download//etc/passwd?{q}") in (400, 404)
    # double-encoded dots reach the route as a literal "%2e%2e" segment: not an asset
    q = urlencode(signer.sign("%2e%2e/%2e%2e/etc/passwd", "alice", kid, exp))
    assert _raw_get(server, f"/download/{quote('%2e%2e/%2e%2e/etc/passwd')}?{q}") == 404


def test_bad_missing_and_revoked_keys(server: Server) -> None:
    r = httpx.get(server.url + "search", headers={"X-API-Key": "eok_not-a-real-key"})
    assert r.status_code == 401 and r.json()["code"] == "Unauthorized"
    r = httpx.get(server.url + "search", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401
    # missing key: anonymous, sees only the public collection
    r = httpx.get(server.url + "search", params={"collections": "kazeosat2-l2"})
    assert r.status_code == 400
    key = server.catalog.keys["carol"]
    href = _asset_link(server, "carol", "kazeosat2-l2", "kazeosat2-l2-aktau-20250301")
    assert httpx.get(href).status_code == 200
    assert main(["customers", "--catalog", str(server.catalog.root), "revoke", "carol"]) == 0
    r = httpx.get(server.url + "collections", headers={"X-API-Key": key})
    assert r.status_code == 401
    assert httpx.get(href).status_code == 403  # links issued before the revocation die too


def test_public_asset_download_for_anonymous(server: Server) -> None:
    item = httpx.get(f"{server.url}collections/{PUBLIC}/items/landsat8-ndvi-astana-20240501").json()
    href = item["assets"]["B1"]["href"]
    assert "customer=anonymous" in href and httpx.get(href).status_code == 200


def test_access_is_logged(server: Server) -> None:
    httpx.get(server.url + "collections", headers={"X-API-Key": server.catalog.keys["alice"]})
    log = (state_dir(server.catalog.root) / "access.log").read_text()
    kid = key_id(server.catalog.keys["alice"])
    assert f'"customer":"alice","key":"{kid}","method":"GET","path":"/collections"' in log
    assert "signature=" not in log


def test_burst_of_concurrent_searches(server: Server) -> None:
    keys = [server.catalog.keys["alice"], server.catalog.keys["bob"]]

    def one(i: int) -> tuple[int, int]:
        body = {"limit": 2, "bbox": [50, 40, 80, 52]} if i % 2 else {"limit": 5}
        with httpx.Client(timeout=30) as c:
            r = c.post(server.url + "search", json=body, headers={"X-API-Key": keys[i % 2]})
        return r.status_code, len(r.json().get("features", []))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(one, i) for i in range(50)]
        done, pending = wait(futures, timeout=120)
    assert not pending, f"{len(pending)} searches still running after 120 s"
    results = [f.result() for f in done]
    assert all(status == 200 and n >= 1 for status, n in results), results
    print(f"\n50 concurrent searches (8 threads): {time.perf_counter() - t0:.2f} s")

"""Search extensions through the API: filter (CQL2 text/JSON), query, q, collection search,
queryables, numberMatched, all bounded by entitlements."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from eo_pipeline.export.api.server import create_app
from tests.export.api.conftest import PUBLIC, Published


@pytest.fixture(scope="module")
def client(published: Published) -> Iterator[TestClient]:
    with TestClient(create_app(published.root, rebuild_index=False)) as c:
        yield c


def _ids(r: httpx.Response) -> set[str]:
    assert r.status_code == 200, r.text
    return {f["id"] for f in r.json()["features"]}


def test_filter_text_json_and_query_agree(client: TestClient, published: Published) -> None:
    h = {"X-API-Key": published.keys["alice"]}
    text = "platform = 'kazeosat-2' AND eo:cloud_cover < 3"
    json_filter = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "platform"}, "kazeosat-2"]},
            {"op": "<", "args": [{"property": "eo:cloud_cover"}, 3]},
        ],
    }
    by_text = _ids(client.get("/search", params={"filter": text}, headers=h))
    by_json = _ids(client.post("/search", json={"filter": json_filter}, headers=h))
    by_json_get = _ids(
        client.get(
            "/search",
            params={"filter": str(json_filter).replace("'", '"'), "filter-lang": "cql2-json"},
            headers=h,
        )
    )
    query = {"platform": {"eq": "kazeosat-2"}, "eo:cloud_cover": {"lt": 3}}
    by_query = _ids(client.post("/search", json={"query": query}, headers=h))
    assert by_text == by_json == by_json_get == by_query
    assert by_text == {"kazeosat2-l2-astana-20240610", "kazeosat2-l2-almaty-20240715"}
    items = client.get("/collections/kazeosat2-l2/items", params={"filter": text}, headers=h)
    assert _ids(items) == by_text


def test_query_takes_date_time_strings_for_timestamps(
    client: TestClient, published: Published
) -> None:
    """Audit find: the query extension refused ``{"datetime": {"gte": "2025-..."}}`` with a
    400 (a timestamp compared with a string); query-extension clients send strings."""
    h = {"X-API-Key": published.keys["alice"]}
    query = {"datetime": {"gte": "2025-01-01T00:00:00Z"}}
    by_query = _ids(client.post("/search", json={"query": query}, headers=h))
    after = "datetime >= TIMESTAMP('2025-01-01T00:00:00Z')"
    by_filter = _ids(client.get("/search", params={"filter": after}, headers=h))
    assert by_query == by_filter and by_query


def test_filter_never_reaches_beyond_the_entitlement(
    client: TestClient, published: Published
) -> None:
    h = {"X-API-Key": published.keys["bob"]}  # bob: his area and 2024 only
    everything = "collection = 'kazeosat2-l2' OR collection = 'kazeosat1-l2'"
    found = _ids(client.get("/search", params={"filter": everything}, headers=h))
    assert found == {"kazeosat2-l2-almaty-20240715", "kazeosat1-l2-shymkent-20240901"}
    r = client.get("/search", params={"filter": "id = 'kazeosat2-l2-aktau-20250301'"}, headers=h)
    assert _ids(r) == set() and r.json()["numberMatched"] == 0


def test_number_matched_counts_every_page(client: TestClient, published: Published) -> None:
    h = {"X-API-Key": published.keys["alice"]}
    r = client.get("/search", params={"limit": 1}, headers=h).json()
    assert r["numberReturned"] == 1 and r["numberMatched"] == 4


def test_free_text_over_titles_descriptions_keywords(
    client: TestClient, published: Published
) -> None:
    h = {"X-API-Key": published.keys["bob"]}
    r = client.get("/collections", params={"q": "NAOMI"}, headers=h).json()
    assert [c["id"] for c in r["collections"]] == ["kazeosat1-l2"]
    r = client.get("/collections", params={"q": "naomi,landsat-8"}, headers=h).json()
    assert {c["id"] for c in r["collections"]} == {"kazeosat1-l2", PUBLIC}
    r = client.get("/collections", params={"q": "sentinel"}, headers=h).json()
    assert r["collections"] == [] and r["numberMatched"] == 0


def test_collection_search_by_bbox_and_datetime(client: TestClient, published: Published) -> None:
    h = {"X-API-Key": published.keys["bob"]}

    def ids(**params: str) -> set[str]:
        r = client.get("/collections", params=params, headers=h)
        assert r.status_code == 200, r.text
        return {c["id"] for c in r.json()["collections"]}

    # bob's kazeosat collections are cut to his area (south Kazakhstan): Astana is outside
    assert ids(bbox="71,50.9,71.6,51.3") == {PUBLIC}
    assert ids(bbox="69,42,70,43.5") == {"kazeosat1-l2", "kazeosat2-l2"}
    assert ids(datetime="2024-05-01T00:00:00Z/2024-05-02T00:00:00Z") == {PUBLIC}
    assert ids(datetime="2025-01-01T00:00:00Z/..") == set()  # bob's range ends with 2024
    r = client.get("/collections", params={"limit": 1}, headers=h).json()
    assert len(r["collections"]) == 1 and r["numberMatched"] == 3
    nxt = next(link["href"] for link in r["links"] if link["rel"] == "next")
    page2 = client.get(nxt.removeprefix("http://testserver"), headers=h).json()
    assert page2["collections"][0]["id"] != r["collections"][0]["id"]


def test_queryables_documents(client: TestClient, published: Published) -> None:
    h = {"X-API-Key": published.keys["alice"]}
    r = client.get("/queryables", headers=h)
    assert r.headers["content-type"].startswith("application/schema+json")
    doc = r.json()
    assert doc["$id"] == "http://testserver/queryables"
    assert {"eo:cloud_cover", "datetime", "geometry", "platform", "proj:code"} <= set(
        doc["properties"]
    )
    own = client.get("/collections/kazeosat2-l2/queryables", headers=h).json()
    assert own["$id"] == "http://testserver/collections/kazeosat2-l2/queryables"
    assert "eo:cloud_cover" in own["properties"] and "proj:code" not in own["properties"]
    landing = client.get("/", headers=h).json()
    assert any(link["rel"].endswith("/queryables") for link in landing["links"])
    conforms = client.get("/conformance").json()["conformsTo"]
    for uri in (
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
        "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
        "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
        "https://api.stacspec.org/v1.0.0-rc.1/item-search#free-text",
        "https://api.stacspec.org/v1.0.0-rc.1/collection-search",
        "https://api.stacspec.org/v1.0.0/item-search#query",
    ):
        assert uri in conforms, uri
    # queryables as plain query parameters (?platform=...) are refused (400), so not declared
    assert not [c for c in conforms if c.endswith("queryables-query-parameters")]
    r = client.get("/search", params={"platform": "kazeosat-2"}, headers=h)
    assert r.status_code == 400 and "platform" in r.json()["description"]

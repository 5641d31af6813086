"""The app in-process: a catalog with no public collection, live index updates, the demo."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from eo_pipeline.export.api.customers import CustomerStore, Entitlement
from eo_pipeline.export.api.server import create_app, demo_serve, pystac_client_example
from eo_pipeline.export.publishing import PublishConfig, publish
from tests.export.api.conftest import Published


@pytest.fixture()
def private_export(published: Published, tmp_path: Path) -> Path:
    """Only kazeosat2-l2 published, no public collection."""
    publish(published.source, tmp_path / "export", PublishConfig(only=("kazeosat2-l2",)))
    return tmp_path / "export"


def test_no_public_collection_means_anonymous_is_refused(private_export: Path) -> None:
    client = TestClient(create_app(private_export))
    for path in ("/collections", "/search", "/collections/kazeosat2-l2/items"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.json()["code"] == "Unauthorized" and "WWW-Authenticate" in r.headers
    assert client.get("/").status_code == 200
    assert client.get("/conformance").status_code == 200
    assert client.get("/_mgmt/ping").status_code == 200


def test_publish_updates_a_running_server(published: Published, private_export: Path) -> None:
    key = CustomerStore(private_export).add(
        "acme", Entitlement(frozenset({"kazeosat1-l2", "kazeosat2-l2"}))
    )
    client = TestClient(create_app(private_export))
    h = {"X-API-Key": key}
    assert [c["id"] for c in client.get("/collections", headers=h).json()["collections"]] == [
        "kazeosat2-l2"
    ]
    publish(published.source, private_export, PublishConfig(only=("kazeosat1-l2",)))
    ids = [c["id"] for c in client.get("/collections", headers=h).json()["collections"]]
    assert ids == ["kazeosat1-l2", "kazeosat2-l2"]
    found = client.get("/search", params={"collections": "kazeosat1-l2"}, headers=h).json()
    assert len(found["features"]) == 2
    href = found["features"][0]["assets"]["B1"]["href"].removeprefix("http://testserver")
    assert client.get(href).status_code == 200  # the moved files are served


@pytest.mark.server
def test_demo_serve_and_pasteable_example(private_export: Path) -> None:
    url, key, stop = demo_serve(private_export)
    try:
        r = httpx.get(url + "search", headers={"X-API-Key": key})
        assert r.status_code == 200 and r.json()["numberReturned"] == 3
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(pystac_client_example(url, key), {})  # what the demo prints must just work
        text = out.getvalue()
        assert "kazeosat2-l2" in text and "3 items" in text and "/download/" in text
        _, key2, stop2 = demo_serve(private_export)  # a second call re-keys the demo customer
        stop2()
        assert httpx.get(url + "search", headers={"X-API-Key": key}).status_code == 401
        assert key2 != key
    finally:
        stop()


def test_landing_page_is_the_services_own(published: Published, tmp_path: Path) -> None:
    """#12: the landing page's id and title are the export catalog's (from the sales config),
    not stac-fastapi's defaults, and it speaks STAC 1.1.0 like every document it serves."""
    cfg = PublishConfig(
        catalog_id="acme-export", catalog_title="ACME products", only=("kazeosat2-l2",)
    )
    publish(published.source, tmp_path / "export", cfg)
    landing = TestClient(create_app(tmp_path / "export")).get("/").json()
    assert (landing["id"], landing["title"], landing["stac_version"]) == (
        "acme-export",
        "ACME products",
        "1.1.0",
    )

"""Fixtures of the export API tests: a published catalog, customers, a real server process."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from eo_pipeline.export.api.customers import CustomerStore, Entitlement, parse_interval
from eo_pipeline.export.publishing import Offer, PublishConfig, publish
from tests.export.api.factory import make_product_catalog

PUBLIC = "landsat8-ndvi"
BOB_BBOX = (68.0, 42.0, 78.0, 44.5)
BOB_TIME = "2024-01-01T00:00:00Z/2024-12-31T23:59:59Z"


def publish_config() -> PublishConfig:
    """Default offers, plus the Landsat NDVI sample as a public, CC0 collection."""
    return PublishConfig(
        collections={
            PUBLIC: Offer(
                public=True,
                license="CC0-1.0",
                license_href="https://spdx.org/licenses/CC0-1.0.html",
                licence_days=None,
            )
        }
    )


@dataclass(frozen=True)
class Published:
    """A published export catalog with its customers' keys."""

    root: Path
    """The export catalog folder."""
    source: Path
    """The product catalog it was published from."""
    keys: dict[str, str]
    """Customer name -> API key (alice, bob, carol)."""


def _customers(root: Path) -> dict[str, str]:
    store = CustomerStore(root)
    start, end = parse_interval(BOB_TIME)
    return {
        "alice": store.add("alice", Entitlement(frozenset({"kazeosat2-l2"}))),
        "bob": store.add(
            "bob",
            Entitlement(
                frozenset({"kazeosat1-l2", "kazeosat2-l2"}), bbox=BOB_BBOX, start=start, end=end
            ),
        ),
        "carol": store.add("carol", Entitlement(frozenset({"kazeosat2-l2"}))),
    }


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """Three product collections published with ``publish_config()`` and three customers."""
    tmp = tmp_path_factory.mktemp("export-api")
    source = make_product_catalog(tmp)
    publish(source, tmp / "export", publish_config())
    return Published(tmp / "export", source, _customers(tmp / "export"))


def key_id(key: str) -> str:
    """The key id signed links carry for ``key`` (16 hex digits of its SHA-256)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    """A running ``eo-pipeline serve`` process."""

    url: str
    """Base URL with a trailing slash."""
    catalog: Published
    """What it serves."""


@pytest.fixture(scope="module")
def server(published: Published) -> Iterator[Server]:
    """``python -m eo_pipeline.cli serve`` on a free loopback port, always terminated."""
    port = free_port()
    env = {**os.environ, "EO_PIPELINE_LINK_TTL": "600"}
    env.pop("EO_PIPELINE_SIGNING_SECRET", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eo_pipeline.cli",
            "serve",
            "--catalog",
            str(published.root),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"server exited with {proc.returncode}:\n{out}")
            try:
                if httpx.get(url + "_mgmt/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not answer /_mgmt/ping within 60 s")
            time.sleep(0.1)
        yield Server(url, published)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()

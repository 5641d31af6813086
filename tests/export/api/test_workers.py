"""``serve --workers N``: several processes share the secret, the index and the customers."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from eo_pipeline.export.api.customers import CustomerStore, Entitlement
from eo_pipeline.export.api.index import open_index
from eo_pipeline.export.api.signing import SECRET_ENV, load_secret, state_dir
from eo_pipeline.export.publishing import PublishConfig, publish
from tests.export.api.conftest import Published, free_port


def _secret(catalog: str) -> bytes:
    os.environ.pop(SECRET_ENV, None)
    return load_secret(catalog)


def test_concurrent_first_start_agrees_on_one_secret(tmp_path: Path) -> None:
    catalog = str(tmp_path / "export")
    ctx = multiprocessing.get_context("fork")  # no re-import: the race is the point
    with ctx.Pool(4) as pool:
        secrets = pool.map(_secret, [catalog] * 8, chunksize=1)
    assert len(set(secrets)) == 1 and len(secrets[0]) == 64
    assert (state_dir(catalog) / "signing.key").read_bytes().strip() == secrets[0]


@pytest.mark.server
@pytest.mark.slow
def test_workers_share_links_index_and_revocations(published: Published, tmp_path: Path) -> None:
    export = tmp_path / "export"
    publish(published.source, export, PublishConfig(only=("kazeosat2-l2",)))
    key = CustomerStore(export).add("acme", Entitlement(frozenset({"kazeosat2-l2"})))
    assert not (state_dir(export) / "signing.key").exists()  # the workers' start creates it
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    proc = subprocess.Popen(
        [sys.executable, "-m", "eo_pipeline.cli", "serve", "--catalog", str(export),
         "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url, h = f"http://127.0.0.1:{port}/", {"X-API-Key": key}
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(url + "_mgmt/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "2 workers did not answer within 90 s"
            time.sleep(0.2)

        def search_and_read(i: int) -> tuple[int, int]:
            with httpx.Client(timeout=30) as c:  # a new connection: any worker may answer
                r = c.get(url + "search", params={"limit": 1 + i % 3}, headers=h)
                href = r.json()["features"][0]["assets"]["B1"]["href"]
            with httpx.Client(timeout=30) as c:  # the link, on whichever worker
                d = c.get(href, headers={"Range": "bytes=0-65535"})
            return r.status_code, d.status_code

        index = open_index(export)
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(search_and_read, i) for i in range(24)]
            for _ in range(2):  # a publish rebuilds the index while the workers read it
                index.rebuild(export)
            results = [f.result(timeout=120) for f in futures]
        assert all(r == (200, 206) for r in results), results
        CustomerStore(export).revoke("acme")
        for _ in range(6):
            with httpx.Client(timeout=30) as c:
                assert c.get(url + "search", headers=h).status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()

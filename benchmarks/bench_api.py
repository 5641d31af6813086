"""Load on the export STAC API: N concurrent clients searching and reading 64 KiB ranges.

One run: a synthetic export catalog (default 1000 items in 2 collections over Kazakhstan,
eight 1024x1024 uint16 COGs shared by their assets) is served by ``eo-pipeline serve
--workers W`` on loopback; ``--clients`` asyncio clients (httpx, keep-alive) then loop for
``--seconds``: a search (``POST /search`` with a random bbox, a CQL2 filter on cloud cover and
``limit=10``, ``numberMatched`` counted), then a 64 KiB ``Range`` read of a random asset
link of the results (a signed link, verified by the server against the customer's key).

Printed: requests per second (all, search, range), p50/p99 latency per kind, errors
(non-2xx answers and transport errors), and the server's peak resident memory (every worker
process summed, sampled every 0.2 s), and the machine's load average (other work on the same
cores lowers every number). The client runs in this process on the same machine, so on 2
cores the numbers are a floor of what the server can do.

Run: ``.venv/bin/python benchmarks/bench_api.py [--clients 16 --seconds 20 --workers 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pystac
import rasterio
from rasterio.transform import from_bounds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, write_json

from eo_pipeline.export.api.customers import CustomerStore, Entitlement

RANGE = 64 * 1024
COLLECTIONS = ("kazeosat2-l2-bench", "kazeosat1-l2-bench")


def _cog(path: Path, seed: int) -> None:
    data = np.random.default_rng(seed).integers(1, 60000, (1024, 1024), dtype=np.uint16)
    profile = {
        "driver": "COG", "width": 1024, "height": 1024, "count": 1, "dtype": "uint16",
        "crs": "EPSG:4326", "transform": from_bounds(60, 40, 61, 41, 1024, 1024),
        "nodata": 0, "blocksize": 256, "compress": "deflate",
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def make_catalog(root: Path, items: int, seed: int = 0) -> Path:
    """A static export catalog with ``items`` items; returns its folder."""
    rng = random.Random(seed)
    files = [root / "cat" / "data" / f"scene-{k}.tif" for k in range(8)]
    for k, f in enumerate(files):
        _cog(f, k)
    catalog = pystac.Catalog("bench", "API benchmark catalog", title="bench")
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for cid in COLLECTIONS:
        extent = pystac.Extent(
            pystac.SpatialExtent([[46.0, 40.0, 87.0, 55.0]]),
            pystac.TemporalExtent([[start, None]]),
        )
        collection = pystac.Collection(cid, f"{cid} scenes", extent, title=cid)
        catalog.add_child(collection)
        for i in range(items // len(COLLECTIONS)):
            lon, lat = rng.uniform(47, 86), rng.uniform(41, 54)
            box = [lon - 0.3, lat - 0.2, lon + 0.3, lat + 0.2]
            ring = [[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]]
            item = pystac.Item(
                f"{cid}-{i:05d}",
                {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
                box,
                start + dt.timedelta(hours=rng.randrange(0, 17000)),
                {"eo:cloud_cover": round(rng.uniform(0, 100), 1), "gsd": 6.5,
                 "platform": cid.split("-")[0]},
            )  # fmt: skip
            collection.add_item(item)
            item.add_asset("B1", pystac.Asset(str(rng.choice(files)), media_type="image/tiff"))
    catalog.normalize_and_save(str(root / "cat"), pystac.CatalogType.SELF_CONTAINED)
    return root / "cat"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(catalog: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "eo_pipeline.cli", "serve", "--catalog", str(catalog),
         "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "_mgmt/ping", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start within 120 s")


class RssSampler(threading.Thread):
    """Peak summed RSS of a process and its children."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass


async def _client(url: str, key: str, until: float, seed: int, stats: dict[str, list[Any]]) -> None:
    rng = random.Random(seed)
    headers = {"X-API-Key": key}
    async with httpx.AsyncClient(timeout=30) as c:
        while time.monotonic() < until:
            lon, lat = rng.uniform(47, 84), rng.uniform(41, 52)
            body = {
                "bbox": [lon, lat, lon + 3, lat + 2],
                "filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, rng.randint(20, 100)]},
                "limit": 10,
            }  # fmt: skip
            t0 = time.perf_counter()
            try:
                r = await c.post(url + "search", json=body, headers=headers)
                ok = r.status_code == 200
                features = r.json().get("features", []) if ok else []
            except httpx.HTTPError:
                ok, features = False, []
            stats["search"].append(time.perf_counter() - t0)
            stats["errors"].append(0 if ok else 1)
            if not features:
                continue
            href = rng.choice(features)["assets"]["B1"]["href"]
            offset = rng.randrange(0, 1_500_000)
            t0 = time.perf_counter()
            try:
                r = await c.get(href, headers={"Range": f"bytes={offset}-{offset + RANGE - 1}"})
                ok = r.status_code == 206 and len(r.content) == RANGE
            except httpx.HTTPError:
                ok = False
            stats["range"].append(time.perf_counter() - t0)
            stats["errors"].append(0 if ok else 1)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        catalog = make_catalog(Path(tmp), args.items)
        key = CustomerStore(catalog).add("bench", Entitlement(frozenset(COLLECTIONS)))
        os.environ.pop("EO_PIPELINE_SIGNING_SECRET", None)
        proc, url = _start(catalog, args.workers)
        sampler = RssSampler(proc.pid)
        sampler.start()
        stats: dict[str, list[Any]] = {"search": [], "range": [], "errors": []}
        try:
            until = time.monotonic() + args.seconds
            t0 = time.perf_counter()

            async def run() -> None:
                await asyncio.gather(
                    *(_client(url, key, until, i, stats) for i in range(args.clients))
                )

            asyncio.run(run())
            elapsed = time.perf_counter() - t0
        finally:
            sampler.stop.set()
            proc.terminate()
            proc.wait(timeout=30)
    n_search, n_range = len(stats["search"]), len(stats["range"])
    result = {
        "clients": args.clients, "workers": args.workers, "items": args.items,
        "seconds": round(elapsed, 1),
        "requests_per_s": round((n_search + n_range) / elapsed, 1),
        "search_per_s": round(n_search / elapsed, 1),
        "range_per_s": round(n_range / elapsed, 1),
        "search_p50_ms": round(_pct(stats["search"], 50), 1),
        "search_p99_ms": round(_pct(stats["search"], 99), 1),
        "range_p50_ms": round(_pct(stats["range"], 50), 1),
        "range_p99_ms": round(_pct(stats["range"], 99), 1),
        "errors": int(sum(stats["errors"])),
        "server_peak_rss_mb": round(sampler.peak / 2**20, 1),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }  # fmt: skip
    print(f"export API under load: {args.clients} clients, {args.workers} workers, "
          f"{args.items} items, {result['seconds']} s")  # fmt: skip
    for name in ("requests_per_s", "search_per_s", "range_per_s", "search_p50_ms",
                 "search_p99_ms", "range_p50_ms", "range_p99_ms", "errors",
                 "server_peak_rss_mb", "load_average_1min"):  # fmt: skip
        print(f"  {name:<20} {result[name]}")
    write_json("bench_api", {"result": result, "machine": machine_info()})


if __name__ == "__main__":
    main()

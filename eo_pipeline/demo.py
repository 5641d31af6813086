"""The main job on an embedded default: what ``make demo`` runs (``eo-pipeline demo``).

0. compile (first run) or load the numba kernels on tiny scenes, so that nothing after it
   times JIT compilation;
1. simulate a day of the constellation over Kazakhstan (KazEOSat-1 and KazEOSat-2 scenes, and a
   short KazEOSat-2 revisit series for a composite) into ``<out>/catalog``, and ingest the real
   Landsat 8 scene and the real Sentinel-2 L2A tile (in place) from ``shared/real-data``
   beside it when they are there;
2. validate that L1 catalog against the official STAC schemas (offline);
3. on a local dask cluster with a progress bar: the built-in TOA + indices workflow per scene,
   the KazEOSat-1 pan-sharpened true colour, and a median composite of the revisit series;
4. publish the products as sellable collections into ``<out>/export`` and validate them;
5. print a summary table, then serve the export catalog through the STAC API with a demo
   customer key and print a ready-to-paste pystac-client example.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["DEMO_SALES_CONFIG", "run_demo"]

DEMO_SALES_CONFIG = """\
# eo-pipeline DEMO sales config, written by `make demo` / `eo-pipeline demo`.
# THIS IS A DEMO: simulated scenes and the public-domain Landsat sample, placeholder
# organisations, licence links under the reserved .invalid domain and made-up prices.
# Nothing published with it is for sale. Copy it and replace every value for real use;
# every key is described in docs/sales-config.md.
catalog_id: eo-pipeline-demo-export
catalog_title: "eo-pipeline DEMO export catalogue (simulated scenes; not a real offer)"
catalog_description: >
  DEMO of the eo-pipeline export catalogue: products of simulated KazEOSat scenes (and the
  public-domain Landsat sample when present), made by `make demo`. Prices, licence and
  providers are placeholders; nothing here is for sale.
license: other
license_href: https://demo-licence.invalid/eo-pipeline-demo
terms_href: https://demo-terms.invalid/eo-pipeline-demo
currency: USD
per_km2: 10.0
per_collection: 20000
minimum_km2: 25
price_notes: "DEMO prices for illustration only; not an offer."
licence_days: 365
providers:
  - name: "KazEOSat operator (DEMO placeholder)"
    roles: [producer, licensor]
    description: "Placeholder: the demo's scenes are simulated, no operator acquired them."
  - name: "eo-pipeline processing centre (DEMO)"
    roles: [processor]
    description: "The eo-pipeline run of `make demo` on this machine."
  - name: "eo-pipeline export service (DEMO)"
    roles: [host]
    description: "The demo STAC API started at the end of `make demo`."
"""
"""The publish config of the demo (written to ``<out>/demo-sales.yaml`` and used from there)."""


def _say(msg: str) -> None:
    print(msg, flush=True)


def _stage(n: int, title: str) -> float:
    _say(f"\n== {n}. {title}")
    return time.perf_counter()


def _size_mb(folder: Path, pattern: str = "*.tif") -> float:
    return sum(p.stat().st_size for p in folder.rglob(pattern)) / 1e6


def warm_kernels() -> float:
    """Compile (first run) or load every numba kernel the demo's workflows use; seconds taken.

    Runs the steps once on tiny simulated scenes in a temporary folder, so that the timed
    stages after it measure processing, not JIT compilation.
    """
    import tempfile

    import eo_pipeline as eo

    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eo-pipeline-warm-") as tmp:
        k2, k1 = Path(tmp) / "k2", Path(tmp) / "k1"
        eo.simulate("kazeosat2", k2, scenes=2, size=64, seed=1, revisit=True)
        eo.simulate("kazeosat1", k1, scenes=1, size=64, seed=1)
        steps = eo.load(k2).eo.calibrate().eo.mask()
        idx = steps.eo.compute_indices(["NDVI", "NDWI", "EVI", "SAVI", "GNDVI"])
        eo.write(idx[["NDVI"]].isel(time=0), Path(tmp) / "ndvi.tif")
        idx.eo.composite("median").compute()
        ms = eo.calibrate(eo.load(k1, bands=["B0", "B1", "B2", "B3"]))
        pan = eo.calibrate(eo.load(k1, bands=["P"], resolution=1.0))
        eo.pansharpen(ms, pan["P"]).compute()
    return time.perf_counter() - t


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo into ``args.out``; serve the result unless ``args.no_serve``."""
    import eo_pipeline as eo
    from eo_pipeline.catalogs.validation import validate
    from eo_pipeline.errors import InputDataError
    from eo_pipeline.workflows.runner import connect, run

    out = Path(args.out).resolve()
    l1 = out / "catalog"
    for sub in ("catalog", "products", "composites", "pansharpened", "export"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    rows: list[tuple[str, str, str]] = []

    t = _stage(0, "Compile the numba kernels (first run only; cached afterwards)")
    _say(f"  kernels ready in {warm_kernels():.1f} s")

    t = _stage(1, "Simulate a day of the constellation over Kazakhstan")
    day = "2026-06-15"
    k2 = eo.simulate("kazeosat2", l1, scenes=3, size=768, seed=7, date=day)
    k1 = eo.simulate("kazeosat1", l1, scenes=1, size=256, seed=7, date=day)
    # a KazEOSat-2 revisit series over one place in May, for the monthly composite
    series = eo.simulate(
        "kazeosat2", l1, scenes=4, size=512, seed=11, revisit=True, date="2026-05-02"
    )
    for it in (*k2, *k1, *series):
        _say(
            f"  simulated {it.id}  ({it.properties.get('platform')}, {it.datetime:%Y-%m-%d %H:%M} UTC)"
        )
    n_scenes = len(k2) + len(k1) + len(series)
    real: list[Any] = []
    try:
        item, _ = __import__(
            "eo_pipeline.io.ingestion", fromlist=["ingest_demo_scene"]
        ).ingest_demo_scene(out)
        _say(f"  ingested the real Landsat 8 scene {item.id}")
        n_scenes += 1
        real.append(item)
    except InputDataError as err:
        _say(f"  (real Landsat scene skipped: {err})")
    from eo_pipeline.io.ingest_sentinel2 import DEMO_TILE, demo_tile

    tile = demo_tile()
    if tile is not None:  # referenced in place: nothing is copied
        s2 = eo.ingest(tile, l1, overwrite=True)
        _say(f"  ingested the real Sentinel-2 L2A tile {s2.id} in place")
        n_scenes += 1
        real.append(s2)
    else:
        _say(f"  (real Sentinel-2 tile skipped: {DEMO_TILE} is not in the real-data folder)")
    rows.append(("L1 scenes", str(n_scenes), f"{time.perf_counter() - t:.1f} s"))

    t = _stage(2, "Validate the L1 catalog against the official STAC schemas (offline)")
    _say("  " + str(validate(l1 / "catalog.json", check_assets=True)).replace("\n", "\n  "))

    t = _stage(3, "Run workflows on a local dask cluster")
    jobs = [  # built-in workflow, the scenes it takes, its output folder
        ("toa-indices", k2, "products"),
        ("kazeosat1-pansharpened", k1, "pansharpened"),
        ("monthly-median", series, "composites"),
    ]
    # surface reflectance (L2A): KazEOSat-2 Level-1 corrected for the atmosphere (6S LUT,
    # AOT over dark targets), the real Level-2 scenes (Landsat L2SP, Sentinel-2 L2A) scaled
    jobs.append(("sr-indices", [*k2, *real], "sr-products"))
    reports = []
    with connect(None) as client:
        _say(f"  dashboard: {client.dashboard_link}")
        for name, items, folder in jobs:
            inputs = {"catalog": str(l1 / "catalog.json"), "ids": [i.id for i in items]}
            reports.append(
                run(name, client=client, inputs=inputs, output={"catalog": str(out / folder)})
            )
    for rep in reports:
        mb = rep.bytes_written / 1e6
        rows.append(
            (
                f"workflow {rep.workflow}",
                f"{len(rep.done)} unit(s), {rep.products} files, {mb:.1f} MB",
                f"{rep.seconds:.1f} s ({mb / max(rep.seconds, 1e-9):.1f} MB/s)",
            )
        )
        for key, cause in rep.failed.items():
            _say(f"  FAILED {rep.workflow}/{key}: {cause}")
    if any(rep.failed for rep in reports):
        return 1

    t = _stage(4, "Publish sellable collections and validate the export catalog")
    export = out / "export"
    from eo_pipeline.atomic import atomic_write
    from eo_pipeline.export.sales import PublishConfig

    sales = out / "demo-sales.yaml"
    atomic_write(sales, DEMO_SALES_CONFIG)
    config = PublishConfig.from_yaml(sales)
    _say(f"  sales config: {sales} (a DEMO config: placeholder providers, licence and prices)")
    for rep in reports:
        pub = eo.publish(rep.output, export, config)
        _say(f"  {pub}")
    _say("  " + str(validate(export / "catalog.json", check_assets=True)).replace("\n", "\n  "))
    rows.append(("export catalog", str(export), f"{time.perf_counter() - t:.1f} s"))

    total = time.perf_counter() - t_all
    _say("\n== Summary")
    width = max(len(r[0]) for r in rows)
    for a, b, c in rows:
        _say(f"  {a:<{width}}  {b:<45}  {c}")
    _say(f"  {'total':<{width}}  {_size_mb(out):.1f} MB of COGs under {out}  {total:.1f} s")
    _say(
        f"  look at: {out / 'products'}/items/*/*quicklook.png, *_NDVI_map.png; "
        f"{out / 'composites'}; {out / 'pansharpened'}"
        + f"; {out / 'sr-products'} (surface reflectance: KazEOSat-2 L2A"
        + (", the real Level-2 scenes)" if real else ")")
        + "; manifests in each folder"
    )
    return _serve(export, interactive=not args.no_serve and sys.stdin.isatty())


DEMO_PORT = 8080
"""Port of the demo's STAC API: the one the README's examples and ``eo-pipeline serve`` use."""


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _serve(export: Path, *, interactive: bool) -> int:
    from eo_pipeline.errors import DependencyError
    from eo_pipeline.export.api import require_web_stack

    _say("\n== 5. STAC API for export customers")
    try:
        require_web_stack("serving the export catalog")
    except DependencyError as err:
        _say(f"  skipped: {err}")
        return 0
    from eo_pipeline.export.api.server import demo_serve, pystac_client_example

    # the port the README's examples use (and `eo-pipeline serve`'s default), unless taken
    port = DEMO_PORT if _port_free("127.0.0.1", DEMO_PORT) else 0
    url, key, stop = demo_serve(export, port=port)
    if port == 0:
        _say(f"  (port {DEMO_PORT} is taken: serving on {url} instead; use it in the examples)")
    try:
        import pystac_client

        client = pystac_client.Client.open(url, headers={"X-API-Key": key})
        found: Any = list(client.search(max_items=1000).items())
        _say(
            f"  {url} is up; the demo customer sees {len(found)} item(s) in "
            f"{len(list(client.get_collections()))} collection(s)"
        )
        _say("  paste this into Python:\n")
        _say(pystac_client_example(url, key))
        if interactive:
            _say("\n  serving until Ctrl-C ...")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    if not interactive:
        _say(
            "\n  (not a terminal: the server was stopped; `eo-pipeline serve --catalog "
            f"{export}` serves it again, `eo-pipeline customers --catalog {export} add NAME` makes keys)"
        )
    return 0

"""Small real product catalogs for the publish and API tests: tiny COGs, real STAC.

``make_product_catalog(tmp)`` writes an L1 catalog (the inputs) and a product catalog whose
items have ``derived_from`` links to them, with three collections over Kazakhstan:

=================  ==========================================  ==============================
collection         items (centre, date)                        used for
=================  ==========================================  ==============================
kazeosat2-l2       astana 2024-06, almaty 2024-07, aktau 2025  customer alice (all of it)
kazeosat1-l2       astana 2024-08, shymkent 2024-09            customer bob (area + 2024)
landsat8-ndvi      sample 2024-05                              public (anonymous)
=================  ==========================================  ==============================
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac
import rasterio
from rasterio.transform import from_bounds

from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.catalogs.store import add_items

SIZE = 64
PLACES = {
    "astana": (71.35, 51.10),
    "almaty": (76.90, 43.22),
    "aktau": (51.20, 43.65),
    "shymkent": (69.60, 42.32),
}
PRODUCTS = {
    "kazeosat2-l2": [("astana", "2024-06-10"), ("almaty", "2024-07-15"), ("aktau", "2025-03-01")],
    "kazeosat1-l2": [("astana", "2024-08-01"), ("shymkent", "2024-09-01")],
    "landsat8-ndvi": [("astana", "2024-05-01")],
}
PLATFORM = {
    "kazeosat2-l2": "kazeosat-2",
    "kazeosat1-l2": "kazeosat-1",
    "landsat8-ndvi": "landsat-8",
}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"


def write_cog(path: Path, bounds: tuple[float, float, float, float], seed: int) -> Path:
    """A 64x64 uint16 COG (EPSG:4326, 32x32 tiles) with reproducible random values."""
    data = np.random.default_rng(seed).integers(1, 60000, (SIZE, SIZE), dtype=np.uint16)
    profile = {
        "driver": "COG",
        "width": SIZE,
        "height": SIZE,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:4326",
        "transform": from_bounds(*bounds, SIZE, SIZE),
        "nodata": 0,
        "blocksize": 32,
        "compress": "deflate",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def _item(cid: str, place: str, day: str, work: Path, seed: int) -> pystac.Item:
    lon, lat = PLACES[place]
    bounds = (lon - 0.1, lat - 0.08, lon + 0.1, lat + 0.08)
    item_id = f"{cid}-{place}-{day.replace('-', '')}"
    when = dt.datetime.fromisoformat(day).replace(hour=6, tzinfo=dt.UTC)
    item = pystac.Item(
        id=item_id,
        geometry={
            "type": "Polygon",
            "coordinates": [
                [
                    [bounds[0], bounds[1]],
                    [bounds[2], bounds[1]],
                    [bounds[2], bounds[3]],
                    [bounds[0], bounds[3]],
                    [bounds[0], bounds[1]],
                ]
            ],
        },
        bbox=list(bounds),
        datetime=when,
        properties={
            "platform": PLATFORM.get(cid, PLATFORM.get(cid.replace("-l1", "-l2"), "landsat-8")),
            "instruments": ["msi"],
            "gsd": 6.5,
            "eo_pipeline:sensor": cid.split("-")[0],
            "eo:cloud_cover": float(seed % 40),
            "processing:level": cid.rsplit("-", 1)[-1].upper() if "-l" in cid else "L3",
            "processing:software": {"eo-pipeline": "0.1.0"},
        },
        collection=cid,
        stac_extensions=[
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
            "https://stac-extensions.github.io/file/v2.1.0/schema.json",
        ],
    )
    for band, k in (("B1", 0), ("B2", 1)):
        path = write_cog(work / item_id / f"{item_id}_{band}.tif", bounds, seed * 10 + k)
        item.add_asset(
            band,
            pystac.Asset(
                href=str(path),
                media_type=COG,
                roles=["data"],
                title=f"Band {band}",
                extra_fields={
                    "file:size": path.stat().st_size,
                    "file:checksum": file_checksum(path),
                },
            ),
        )
    return item


def make_product_catalog(tmp: Path) -> Path:
    """Write ``tmp/l1`` and ``tmp/products``; returns ``tmp/products/catalog.json``."""
    work = tmp / "work"
    l1_items, products = [], []
    seed = 1
    for cid, entries in PRODUCTS.items():
        for place, day in entries:
            l1 = _item(cid.split("-")[0] + "-l1", place, day, work / "l1", seed + 500)
            l1.properties["processing:level"] = "L1"
            l1_items.append(l1)
            products.append((_item(cid, place, day, work / "p", seed), l1.id))
            seed += 1
    written = {i.id: i for i in add_items(tmp / "l1", l1_items, asset_mode="move")}
    lineage = {item.id: l1_id for item, l1_id in products}
    # add_items writes hierarchy links only: add the lineage as the product writer does.
    for item in add_items(tmp / "products", [p for p, _ in products], asset_mode="move"):
        path = Path(str(item.get_self_href()))
        doc = json.loads(path.read_text())
        l1_id = lineage[item.id]
        doc["links"].append(
            {
                "rel": "derived_from",
                "href": str(written[l1_id].get_self_href()),
                "type": "application/json",
                "title": l1_id,
            }
        )
        path.write_text(json.dumps(doc, indent=2))
    return tmp / "products" / "catalog.json"

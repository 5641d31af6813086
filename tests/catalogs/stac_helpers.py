"""Small generated scenes for the STAC builder, store and validator tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from eo_pipeline.catalogs.scene import BandCalibration, SceneMetadata
from eo_pipeline.catalogs.stac import AssetSpec, build_item

SIZE = 64
ORIGIN = (500_000.0, 5_000_000.0)


def write_band(
    path: Path, value: int = 1000, *, nodata: int | None = 0, driver: str = "COG"
) -> Path:
    """A SIZE x SIZE uint16 raster (EPSG:32642, 30 m) with a nodata border column."""
    data = np.full((1, SIZE, SIZE), value, dtype="uint16")
    data[0, :, 0] = 0
    profile = {
        "driver": driver,
        "width": SIZE,
        "height": SIZE,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32642",
        "transform": Affine(30.0, 0.0, ORIGIN[0], 0.0, -30.0, ORIGIN[1]),
        "nodata": nodata,
    }
    if driver == "COG":
        profile["blocksize"] = 32
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


def toy_meta(when: dt.datetime | None = None, product_id: str = "TOY_0001") -> SceneMetadata:
    """Landsat 8 L1 metadata of a small scene in Kazakhstan."""
    return SceneMetadata(
        sensor="landsat8",
        datetime=when or dt.datetime(2024, 5, 1, 6, 0, tzinfo=dt.UTC),
        sun_elevation=55.0,
        sun_azimuth=150.0,
        earth_sun_distance=1.0075,
        footprint={
            "type": "Polygon",
            "coordinates": [
                [[69.0, 45.1], [69.03, 45.1], [69.03, 45.12], [69.0, 45.12], [69.0, 45.1]]
            ],
        },
        bbox=(69.0, 45.1, 69.03, 45.12),
        bands={
            b: BandCalibration(
                b,
                radiance_mult=0.01,
                radiance_add=-50.0,
                reflectance_mult=2e-5,
                reflectance_add=-0.1,
            )
            for b in ("B4", "B5")
        },
        product_id=product_id,
        processing_level="L1TP",
        wrs_path=153,
        wrs_row=28,
        cloud_cover=12.5,
    )


def toy_item(folder: Path, product_id: str = "TOY_0001", when: dt.datetime | None = None):
    """A built (not yet catalogued) item with bands B4, B5 and a JSON metadata asset."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = [
        AssetSpec(b, write_band(folder / f"{product_id}_{b}.TIF", 1000 + i), bands=(b,))
        for i, b in enumerate(("B4", "B5"))
    ]
    mtl = folder / f"{product_id}_MTL.json"
    mtl.write_text('{"LANDSAT_METADATA_FILE": {}}')
    specs.append(AssetSpec("MTL_json", mtl, roles=("metadata",)))
    return build_item(toy_meta(when, product_id), specs)

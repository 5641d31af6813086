"""Items in different CRSs in one load (issue #16 item 10): said, not silently reprojected.

The audit: two items in different UTM zones loaded onto the first one's grid without a word
(the grid grew 256 -> 260 px).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pystac
import pytest
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from eo_pipeline.errors import EOPipelineWarning
from eo_pipeline.io.loading import load
from eo_pipeline.simulation.simulator import simulate


def _to_crs(item: pystac.Item, crs: str) -> None:
    """Reproject every raster asset of ``item`` to ``crs`` in place, and say so in the item."""
    for asset in item.assets.values():
        path = Path(asset.get_absolute_href())
        if path.suffix != ".tif":
            continue
        with rasterio.open(path) as src:
            transform, w, h = calculate_default_transform(
                src.crs, crs, src.width, src.height, *src.bounds
            )
            profile = {**src.profile, "crs": crs, "transform": transform, "width": w, "height": h}
            data = src.read()
        path.unlink()
        with rasterio.open(path, "w", **profile) as dst:
            for b in range(data.shape[0]):
                reproject(data[b], rasterio.band(dst, b + 1), src_transform=src.transform,
                          src_crs=src.crs, dst_transform=transform, dst_crs=crs,
                          resampling=Resampling.nearest)  # fmt: skip
        asset.extra_fields.update(
            {"proj:code": crs, "proj:shape": [h, w], "proj:transform": list(transform)[:6]}
        )
    item.properties["proj:code"] = crs


def test_mixed_crs_load_warns_naming_both(tmp_path: Path) -> None:
    simulate("kazeosat2", tmp_path / "sim", scenes=2, size=64, seed=5)
    items = sorted(
        pystac.Catalog.from_file(str(tmp_path / "sim" / "catalog.json")).get_items(recursive=True),
        key=lambda i: i.id,
    )
    first_crs = items[0].properties["proj:code"]
    other = "EPSG:32641" if first_crs != "EPSG:32641" else "EPSG:32642"
    _to_crs(items[1], other)
    with pytest.warns(EOPipelineWarning, match=rf"{first_crs}.*{other}|{other}.*{first_crs}"):
        load(items, bands=["B3"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", EOPipelineWarning)
        ds = load(items, bands=["B3"], crs=first_crs, resolution=6.5)  # chosen: no warning
    assert ds.odc.crs == first_crs

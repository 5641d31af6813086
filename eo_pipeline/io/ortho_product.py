"""Ortho products of Primary items: one COG per band and a STAC item (``processing:level ORT``).

:func:`orthorectify_item` takes a sensor-geometry (Primary) item from ingest or the simulator,
orthorectifies each of its products (PAN and MS have their own RPC and pixel size) with
:func:`eo_pipeline.steps.orthorectification.orthorectify`, writes one COG per band (chunk by
chunk, temp name then rename) and stores an item in the collection ``{sensor}-ort`` whose
assets are keyed by band id, with proj fields read from the COGs and a
``processing:lineage`` naming the RPC files, the DEM, the geoid grid and the engine. Such
items load with :func:`eo_pipeline.io.loading.load` and pan-sharpen like delivered Ortho
products.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pystac

from eo_pipeline.catalogs.stac import AssetSpec, build_item
from eo_pipeline.errors import OrthorectificationError

__all__ = ["orthorectify_item"]


def _href(item: pystac.Item, key: str) -> Path:
    return Path(item.assets[key].get_absolute_href() or item.assets[key].href)


def _scene(item: pystac.Item, groups: dict[str, list[str]]) -> Any:
    """The item's SceneMetadata, re-read from its DIMAP documents (one per RPC group)."""
    from eo_pipeline.catalogs.readers.dimap import read_dimap
    from eo_pipeline.io.ingest_dimap import _merge

    docs = [
        _href(item, "DIM_" + ref.removeprefix("RPC_"))
        for ref in groups
        if "DIM_" + ref.removeprefix("RPC_") in item.assets
    ]
    if not docs:
        raise OrthorectificationError(
            f"item {item.id}: no DIM_* document asset; re-ingest the Primary delivery"
        )
    metas = [read_dimap(d) for d in docs]
    return _merge(docs, metas) if len(metas) > 1 else metas[0]


def orthorectify_item(
    item: pystac.Item | str | os.PathLike[str],
    catalog_dir: str | os.PathLike[str],
    dem: Any = None,
    *,
    crs: str | int | None = None,
    resampling: str = "cubic",
    height: float | None = None,
    overwrite: bool = False,
) -> pystac.Item:
    """Orthorectify every product of a Primary item into COGs and an ``ORT`` item.

    Parameters
    ----------
    item
        A sensor-geometry item (or its JSON path) whose band assets name their RPC asset.
    catalog_dir
        The static catalog the ortho item goes to (collection ``{sensor}-ort``).
    dem, crs, resampling, height
        As :func:`eo_pipeline.steps.orthorectification.orthorectify`; every product gets its
        own native pixel size and the first product's CRS (the scene's UTM zone by default).
    overwrite
        Replace an ortho item already in the catalog.

    Raises
    ------
    OrthorectificationError, DEMError, MetadataError
        As :func:`~eo_pipeline.steps.orthorectification.orthorectify`; nothing is stored then.
    """
    from eo_pipeline.catalogs.store import add_items
    from eo_pipeline.io.sensor_geometry import rpc_groups
    from eo_pipeline.io.writing import write
    from eo_pipeline.steps.orthorectification import orthorectify

    if not isinstance(item, pystac.Item):
        item = pystac.Item.from_file(str(item))
    groups = rpc_groups(item)
    if not groups:
        raise OrthorectificationError(
            f"item {item.id}: no band asset in sensor geometry with an RPC (eo_pipeline:rpc); "
            "only Primary items with image tiles can be orthorectified"
        )
    meta = _scene(item, groups)
    specs: list[AssetSpec] = []
    lineage: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="eo-pipeline-ortho-") as tmp:
        datasets = {
            ref: orthorectify(item, dem, crs=crs, resampling=resampling, height=height, bands=bands)
            for ref, bands in groups.items()
        }
        if len(datasets) > 1:  # one extent for all: PAN pixels nest in MS pixels (pansharpening)
            boxes = [ds.odc.geobox for ds in datasets.values()]
            coarse = max(abs(b.resolution.x) for b in boxes)
            west = math.floor(min(b.extent.boundingbox.left for b in boxes) / coarse) * coarse
            south = math.floor(min(b.extent.boundingbox.bottom for b in boxes) / coarse) * coarse
            east = math.ceil(max(b.extent.boundingbox.right for b in boxes) / coarse) * coarse
            north = math.ceil(max(b.extent.boundingbox.top for b in boxes) / coarse) * coarse
            crs = crs or f"EPSG:{boxes[0].crs.epsg}"
            datasets = {
                ref: orthorectify(
                    item, dem, crs=crs, resampling=resampling, height=height, bands=bands,
                    bounds=(west, south, east, north),
                )
                for ref, bands in groups.items()
            }  # fmt: skip
        for ref, bands in groups.items():
            ds = datasets[ref]
            info = json.loads(ds.attrs["orthorectification"])
            crs = crs or info["crs"]
            lineage.append({"product": ref.removeprefix("RPC_"), **info})
            for b in bands:
                path = Path(tmp) / f"{item.id}_ORT_{b}.tif"
                write(ds[[b]], path)
                cal = item.assets[b].extra_fields.get("eo_pipeline:calibration")
                specs.append(
                    AssetSpec(
                        b,
                        path,
                        bands=(b,),
                        extra_fields={"eo_pipeline:calibration": cal} if cal else {},
                    )
                )
            specs.append(
                AssetSpec(
                    ref, _href(item, ref), roles=("metadata", "rpc"), media_type="application/xml"
                )
            )
        epsg = int(str(crs).split(":")[1]) if str(crs).upper().startswith("EPSG:") else None
        scene = replace(meta, processing_level="ORT", epsg=epsg, product_id=f"{item.id}_ORT")
        dem_text = "; ".join(f"{x['product']}: {x['dem']}" for x in lineage)
        text = (
            f"orthorectified from the Primary item {item.id} with {lineage[0]['engine']}; "
            f"RPC {', '.join(Path(x['rpc']).name for x in lineage)}; {dem_text}; resampling "
            f"{resampling}; output {lineage[0]['crs']}"
        )
        props = {
            "processing:lineage": text,
            "eo_pipeline:format": "dimap",
            "eo_pipeline:orthorectification": lineage,
            "eo_pipeline:source_item": item.id,
        }
        out = build_item(scene, specs, properties=props)
        (written,) = add_items(catalog_dir, [out], overwrite=overwrite)
    return written

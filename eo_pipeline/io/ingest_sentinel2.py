"""Sentinel-2 SAFE products (Level-1C and Level-2A, folder or zip) as STAC items, in place.

One item per granule. Every file stays where it is: assets reference the SAFE folder's files
by absolute path, or the zip's members by GDAL ``/vsizip/`` path (nothing is unpacked or
copied); with ``to_cog`` the band rasters (and AOT, WVP, SCL) are converted to Cloud
Optimized GeoTIFFs that move into the item's folder, the rest stays referenced.

Assets (keys):

- ``B01`` ... ``B12``: each band at the finest resolution present (L1C: its native one; L2A:
  ``R10m`` < ``R20m`` < ``R60m``), ``raster:bands`` scale ``1/Q`` and offset
  ``RADIO_ADD_OFFSET/Q`` (L1C, TOA reflectance) or ``BOA_ADD_OFFSET/Q`` (L2A, surface
  reflectance); coarser copies as ``B02_20m``, ``B02_60m``...;
- L2A: ``AOT`` (scale ``1/AOT_QUANTIFICATION_VALUE``), ``WVP`` (cm), ``SCL`` (scene
  classification, role ``cloud``, classes in ``eo_pipeline:classes``); ``visual`` (TCI);
- the pixel-level QI masks the tile lists and the product holds, keyed by file stem
  (``MSK_DETFOO_B01``, ``MSK_CLDPRB_60m``, ``MSK_SNWPRB_60m``, ``MSK_CLASSI_B00``,
  ``MSK_QUALIT_B01``; GML masks of baselines before 04.00 as vector files);
- ``MTD_MSIL1C``/``MTD_MSIL2A`` and ``MTD_TL`` (role ``metadata``).

Checks before anything is written: every band the metadata lists at a resolution that is
present exists (missing ones are named), every JPEG 2000 file is complete (its box structure
adds up to the file size and the codestream ends with the EOC marker: a truncated download
fails here, not at the first read), each raster sits exactly on the tile grid its resolution's
``Geoposition``/``Size`` describes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from eo_pipeline.catalogs.readers.safe import Safe
from eo_pipeline.catalogs.scene import SceneMetadata
from eo_pipeline.catalogs.stac import AssetSpec
from eo_pipeline.catalogs.store import AssetMode
from eo_pipeline.errors import InputDataError

__all__ = ["DEMO_TILE", "check_jp2", "demo_tile", "safe_of", "sentinel2_assets", "to_cog"]

DEMO_TILE = (
    "sentinel2-l2a-T29UNU-20221005-60m/"
    "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
)
"""The real Sentinel-2 L2A tile in ``shared/real-data`` that ``make demo`` ingests in place."""


def demo_tile() -> Path | None:
    """The real demo tile's SAFE folder when it is there (``$EO_PIPELINE_REAL_DATA``)."""
    from eo_pipeline.io.ingestion import real_data_dir

    safe = real_data_dir() / DEMO_TILE
    return safe if (safe / "MTD_MSIL2A.xml").is_file() else None


_RES = re.compile(r"_(\d+)m\.jp2$")
_QI_ROLES = {
    "MSK_DETFOO": ("detector-footprint",),
    "MSK_QUALIT": ("quality",),
    "MSK_CLASSI": ("cloud",),
    "MSK_CLDPRB": ("cloud", "probability"),
    "MSK_SNWPRB": ("snow-ice", "probability"),
}


def safe_of(meta: SceneMetadata) -> Safe:
    """The SAFE container a Sentinel-2 :class:`SceneMetadata` was read from."""
    extra = meta.extra
    if "safe_root" not in extra:
        raise InputDataError(f"{meta.source}: not read from a SAFE product (no safe_root)")
    return Safe(Path(extra["safe_root"]), extra.get("safe_prefix", ""), extra["safe_mtd"])


def check_jp2(href: str) -> None:
    """Raise :class:`InputDataError` unless ``href`` is a complete JPEG 2000 file.

    The JP2 boxes must add up to the file size exactly and the codestream's tile-parts
    must follow one another up to its EOC marker (:func:`eo_pipeline.catalogs.jp2.jp2_problem`;
    a few bytes per box and tile-part, not the image).
    """
    from eo_pipeline.catalogs.jp2 import jp2_problem

    problem = jp2_problem(href, require=True)
    if problem is not None:
        raise InputDataError(
            f"{href}: truncated or corrupt JPEG 2000 ({problem}); re-download the product"
        )


def _present(safe: Safe, meta: SceneMetadata) -> dict[str, dict[int, str]]:
    """Layer id -> resolution (m) -> file, for the files present; missing ones raise."""
    from eo_pipeline.catalogs import sensors

    sensor = sensors.get(meta.sensor)
    listed: dict[str, dict[str, str]] = meta.extra.get("band_files", {})
    by_res: dict[int, list[tuple[str, str]]] = {}
    for layer, files in listed.items():
        for res, rel in files.items():
            if res != "None":
                gsd = int(res)
            else:  # L1C: each band at its native resolution (TCI at 10 m)
                gsd = int(sensor.band(layer).gsd) if layer in sensor.band_ids else 10
            by_res.setdefault(gsd, []).append((layer, rel))
    found: dict[str, dict[int, str]] = {}
    missing: list[str] = []
    for gsd, pairs in sorted(by_res.items()):
        here = [(layer, rel) for layer, rel in pairs if safe.exists(rel)]
        if not here:
            continue  # this resolution is not in the product (e.g. a 60 m only copy)
        missing += [  # TCI is a derived preview: optional
            f"{layer} ({rel})" for layer, rel in pairs if layer != "TCI" and not safe.exists(rel)
        ]
        for layer, rel in here:
            found.setdefault(layer, {})[gsd] = rel
    if not found:
        raise InputDataError(
            f"{meta.source}: no band images of the files the metadata lists are in the product; "
            "this Sentinel-2 product is metadata only and cannot be ingested; download the "
            "full SAFE folder"
        )
    if missing:
        raise InputDataError(
            f"{meta.source}: band file(s) listed in {safe.mtd} are missing from the product: "
            f"{', '.join(missing)}; re-download the SAFE product"
        )
    return found


def _band_specs(
    safe: Safe, meta: SceneMetadata, found: dict[str, dict[int, str]]
) -> list[AssetSpec]:
    specs = []
    quant = meta.extra.get("quantification", {})
    for layer, files in found.items():
        for i, (gsd, rel) in enumerate(sorted(files.items())):
            key = layer if i == 0 else f"{layer}_{gsd}m"
            href = safe.href(rel)
            cal = meta.bands.get(layer)
            if cal is not None:
                scale = cal.sr_scale if cal.sr_scale is not None else cal.reflectance_mult
                offset = cal.sr_offset if cal.sr_scale is not None else cal.reflectance_add
                specs.append(AssetSpec(key, href, bands=(layer,), scale=scale, offset=offset))
            elif layer in ("AOT", "WVP"):
                q = quant.get(layer)
                unit = "cm" if layer == "WVP" else None
                desc = "aerosol optical thickness at 550 nm" if layer == "AOT" else "water vapour"
                specs.append(
                    AssetSpec(key, href, scale=1.0 / q if q else None, unit=unit, description=desc)
                )
            elif layer == "SCL":
                classes = {str(k): v for k, v in meta.extra.get("scl_classes", {}).items()}
                specs.append(
                    AssetSpec(
                        key, href, roles=("cloud",), nodata=0,
                        description="Sen2Cor scene classification",
                        extra_fields={"eo_pipeline:classes": classes},
                    )
                )  # fmt: skip
            elif layer == "TCI":
                specs.append(
                    AssetSpec("visual" if i == 0 else f"visual_{gsd}m", href, roles=("visual",))
                )
    return specs


def _qi_specs(safe: Safe, meta: SceneMetadata) -> list[AssetSpec]:
    specs = []
    seen = set()
    for mask in meta.extra.get("qi_masks", []):
        rel = mask["path"]
        stem = Path(rel).stem
        if stem in seen or not safe.exists(rel):
            continue  # listed but not delivered (e.g. the 20 m probabilities of a 60 m copy)
        seen.add(stem)
        roles = _QI_ROLES.get(mask["type"], ("quality",))
        gml = rel.lower().endswith(".gml")
        specs.append(
            AssetSpec(
                stem,
                safe.href(rel),
                roles=roles if not gml else (*roles, "metadata"),
                media_type="application/gml+xml" if gml else None,
                raster=not gml,
                unit="%" if mask["type"] in ("MSK_CLDPRB", "MSK_SNWPRB") else None,
            )
        )
    return specs


def sentinel2_assets(meta: SceneMetadata) -> list[AssetSpec]:
    """Asset specs of one granule of a Sentinel-2 L1C/L2A SAFE product (module docstring),
    after checking the files (missing bands named, truncated JPEG 2000, grids)."""
    safe = safe_of(meta)
    found = _present(safe, meta)
    specs = _band_specs(safe, meta, found) + _qi_specs(safe, meta)
    for spec in specs:
        if str(spec.path).lower().endswith(".jp2"):
            check_jp2(str(spec.path))
    _check_grids(meta, specs)
    specs.append(AssetSpec(Path(safe.mtd).stem, safe.href(safe.mtd), roles=("metadata",)))
    tile = meta.extra.get("tile_file")
    if tile:
        specs.append(AssetSpec("MTD_TL", safe.href(tile), roles=("metadata",)))
    return specs


def _check_grids(meta: SceneMetadata, specs: list[AssetSpec]) -> None:
    """Each raster opens and lies on the tile grid of its resolution (MTD_TL geocoding)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    geocoding: dict[str, dict[str, float]] = meta.extra.get("tile_geocoding", {})
    for spec in specs:
        if not spec.is_raster():
            continue
        what = f"scene {meta.product_id} asset {spec.key}"
        try:
            with rasterio.open(spec.path) as ds:
                crs, t, shape = ds.crs, ds.transform, (ds.height, ds.width)
                dtype = ds.dtypes[0]
        except RasterioIOError as err:
            raise InputDataError(
                f"{what}: {spec.path} is not a readable raster ({err}); re-download the product"
            ) from None
        if meta.epsg is not None and (crs is None or crs.to_epsg() != meta.epsg):
            raise InputDataError(f"{what}: {spec.path} is in {crs}, the tile in EPSG:{meta.epsg}")
        if spec.bands and dtype != "uint16":
            raise InputDataError(f"{what}: {spec.path} is {dtype}; Sentinel-2 bands are uint16")
        g = geocoding.get(f"{abs(t.a):g}")
        if g is None:
            continue
        expected = (g.get("ULX"), g.get("ULY"), g.get("NROWS"), g.get("NCOLS"))
        if (t.c, t.f, *shape) != expected:
            raise InputDataError(
                f"{what}: {Path(spec.path).name} has origin ({t.c}, {t.f}) and shape {shape} "
                f"but MTD_TL's {abs(t.a):g} m grid is {expected}; the file is of another tile "
                "or cut"
            )


def to_cog(specs: list[AssetSpec], workdir: Path) -> tuple[list[AssetSpec], dict[str, AssetMode]]:
    """Convert the band rasters (and AOT, WVP, SCL) to COGs in ``workdir``.

    Returns the new specs and the asset modes for :func:`eo_pipeline.catalogs.store.add_items`
    (converted files are moved into the catalog, the rest stays referenced). GDAL's COG
    driver streams the conversion (DEFLATE level 1, predictor 2, 512-pixel tiles, overviews;
    the JPEG 2000 files' ``NBITS=15`` widened to the full 16 bits), so no band is held in
    memory whole. Pixel values are unchanged (tested).
    """
    import dataclasses

    import numpy as np
    import rasterio.shutil

    out: list[AssetSpec] = []
    modes: dict[str, AssetMode] = {}
    for spec in specs:
        convert = spec.bands or spec.key in ("AOT", "WVP", "SCL")
        if not convert or not spec.is_raster():
            out.append(spec)
            continue
        dest = workdir / f"{Path(str(spec.path)).stem}.tif"
        resampling = "NEAREST" if spec.key == "SCL" else "AVERAGE"
        with rasterio.open(str(spec.path)) as src:  # JP2 bands declare NBITS=15: widen
            nbits = np.dtype(src.dtypes[0]).itemsize * 8
        try:
            rasterio.shutil.copy(
                str(spec.path), dest, driver="COG", COMPRESS="DEFLATE", LEVEL=1, PREDICTOR=2,
                BLOCKSIZE=512, OVERVIEW_RESAMPLING=resampling, NBITS=nbits,
            )  # fmt: skip
        except rasterio.errors.RasterioError as err:
            raise InputDataError(f"{spec.path}: conversion to COG failed ({err})") from None
        out.append(dataclasses.replace(spec, path=dest, media_type=None))
        modes[spec.key] = "move"
    return out, modes


def item_properties(meta: SceneMetadata, specs: list[AssetSpec]) -> dict[str, Any]:
    """Item properties beyond :func:`eo_pipeline.catalogs.stac.build_item`'s: the gsd of the
    band files delivered, the format, ESA's quality indicators."""
    import rasterio

    gsds = []
    for spec in specs:
        if spec.bands and "data" in spec.roles:
            with rasterio.open(spec.path) as ds:
                gsds.append(float(abs(ds.transform.a)))
    props: dict[str, Any] = {"eo_pipeline:format": "safe"}
    absent = [b for b in meta.bands if b not in {s.key for s in specs}]
    if absent:  # e.g. B08 (10 m only in L2A) of a product delivered at 20/60 m
        props["eo_pipeline:bands_not_delivered"] = absent
    if gsds:
        props["gsd"] = min(gsds)
    quality = meta.extra.get("quality_indicators", {})
    for key in ("NODATA_PIXEL_PERCENTAGE", "CLOUD_SHADOW_PERCENTAGE", "SNOW_ICE_PERCENTAGE"):
        if key in quality:
            props[f"eo_pipeline:{key.lower()}"] = quality[key]
    return props

"""Georeference Landsat band files that carry no geotags, from their MTL's projected corners.

Crops and some re-encoded copies drop the GeoTIFF tags. The MTL still states the grid:
``CORNER_UL_PROJECTION_X/Y_PRODUCT`` (the upper-left pixel's centre), the cell sizes
(``GRID_CELL_SIZE_REFLECTIVE``/``PANCHROMATIC``/``THERMAL``) and the UTM zone (or polar
stereographic EPSG the reader derives). Each untagged file is copied, through a one-band
VRT with that CRS and geotransform, to a COG that becomes the band's asset (so the catalog
holds georeferenced files that every loader reads, odc-stac and stackstac included); the scene's
footprint and bbox come from the projected corners (the MTL's latitude/longitude corners may
describe the full scene a crop came from). A :class:`UserWarning` says it was done.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from eo_pipeline.atomic import atomic_write
from eo_pipeline.catalogs.geometry import footprint_from_corners
from eo_pipeline.catalogs.readers.landsat import parse_mtl
from eo_pipeline.catalogs.scene import SceneMetadata
from eo_pipeline.catalogs.stac import AssetSpec
from eo_pipeline.errors import InputDataError
from eo_pipeline.io.vrt import TileSource, mosaic_vrt

__all__ = ["georeference_from_mtl"]

_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}


def _number(groups: dict[str, dict[str, str]], key: str, where: str) -> float:
    raw = groups.get("PROJECTION_ATTRIBUTES", {}).get(key)
    if raw is None:
        raise InputDataError(
            f"{where}: the band files have no georeferencing and the MTL lacks "
            f"PROJECTION_ATTRIBUTES/{key} to rebuild it; use the original GeoTIFFs"
        )
    return float(str(raw).strip('"'))


def _to_cog(vrt: Path, dest: Path, dtype: str) -> Path:
    """The georeferencing VRT copied to a COG (GDAL's COG driver streams it; pixel values
    unchanged); reading every block also proves the delivered file whole."""
    import rasterio.shutil
    from rasterio.errors import RasterioError

    from eo_pipeline.io.cog import cog_options

    try:
        rasterio.shutil.copy(str(vrt), str(dest), driver="COG", **cog_options(dtype, level=1))
    except RasterioError as err:
        raise InputDataError(f"{vrt.name}: cannot copy the georeferenced band ({err})") from None
    return dest


def georeference_from_mtl(
    meta: SceneMetadata, specs: Sequence[AssetSpec], workdir: Path
) -> tuple[SceneMetadata, list[AssetSpec]]:
    """(metadata, specs) with every untagged raster replaced by a georeferenced VRT.

    Returns the inputs unchanged when every raster has a CRS.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    untagged: dict[str, tuple[int, int, str, float | None]] = {}
    for s in specs:
        if not s.is_raster():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            try:
                with rasterio.open(s.path) as ds:
                    if ds.crs is None:
                        untagged[s.key] = (ds.height, ds.width, ds.dtypes[0], ds.nodata)
            except RasterioIOError:
                continue  # the raster checks of ingest name the broken file
    if not untagged:
        return meta, list(specs)
    where = Path(meta.source).name
    if meta.epsg is None:
        raise InputDataError(f"{where}: no CRS in the MTL to georeference untagged band files")
    groups = parse_mtl(meta.source)
    ul_x = _number(groups, "CORNER_UL_PROJECTION_X_PRODUCT", where)
    ul_y = _number(groups, "CORNER_UL_PROJECTION_Y_PRODUCT", where)
    lr_x = _number(groups, "CORNER_LR_PROJECTION_X_PRODUCT", where)
    lr_y = _number(groups, "CORNER_LR_PROJECTION_Y_PRODUCT", where)
    refl = _number(groups, "GRID_CELL_SIZE_REFLECTIVE", where)
    edge_x, edge_y = ul_x - refl / 2, ul_y + refl / 2  # outer edge of the upper-left pixel
    out = []
    for s in specs:
        if s.key not in untagged:
            out.append(s)
            continue
        rows, cols, dtype, nodata = untagged[s.key]
        kind = (
            "PANCHROMATIC"
            if s.key == "B8"
            else "THERMAL"
            if s.key in ("B10", "B11")
            else "REFLECTIVE"
        )
        cell = _number(groups, f"GRID_CELL_SIZE_{kind}", where)
        xml = mosaic_vrt(
            rows=rows, cols=cols, crs_wkt=f"EPSG:{meta.epsg}",
            transform=(edge_x, cell, 0.0, edge_y, 0.0, -cell), dtype=_GDAL_TYPES.get(dtype, "UInt16"),
            nodata=nodata, description=s.key,
            sources=[TileSource(str(Path(s.path).resolve()), 1, 0, 0, cols, rows)],
        ).replace('relativeToVRT="1"', 'relativeToVRT="0"')  # fmt: skip
        vrt = workdir / f"{meta.product_id}_{s.key}.vrt"
        atomic_write(vrt, xml)
        out.append(
            replace(
                s,
                path=_to_cog(vrt, workdir / f"{Path(s.path).stem}.tif", dtype),
                raster=True,
                media_type=None,
                description=f"{Path(s.path).name} georeferenced from {where} (as a COG)",
            )
        )
    from pyproj import Transformer

    tr = Transformer.from_crs(f"EPSG:{meta.epsg}", "EPSG:4326", always_xy=True)
    east, south = lr_x + refl / 2, lr_y - refl / 2
    ring = [
        tr.transform(x, y)
        for x, y in ((edge_x, edge_y), (east, edge_y), (east, south), (edge_x, south))
    ]
    fp = footprint_from_corners(ring, where=where)
    warnings.warn(
        f"{where}: band file(s) {', '.join(sorted(untagged))} carry no georeferencing; placed "
        f"on EPSG:{meta.epsg} from the MTL's projected corners (upper-left pixel centre "
        f"{ul_x}, {ul_y}); the footprint is rebuilt from them",
        UserWarning,
        stacklevel=3,
    )
    new_meta = meta.replace(footprint=fp.geometry, bbox=fp.bbox)
    return new_meta, out

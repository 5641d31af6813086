"""Single-band GDAL VRT mosaics of image tiles (DIMAP products: one VRT per band).

A VRT is a small XML file that GDAL (and so rasterio and odc-stac) opens like a raster; its
``SimpleSource`` elements place a band of each tile file at its offset in the mosaic. Source
file names are relative to the VRT, so the VRT and its tiles can move together.

Examples
--------
>>> xml = mosaic_vrt(rows=2, cols=4, crs_wkt="EPSG:32642", transform=(0.0, 1.0, 0.0, 2.0, 0.0, -1.0),
...                  dtype="UInt16", nodata=0, description="B0",
...                  sources=[TileSource("a.tif", 1, 0, 0, 2, 2), TileSource("b.tif", 1, 2, 0, 2, 2)])
>>> xml.count("<SimpleSource>")
2
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TileSource", "mosaic_vrt"]


@dataclass(frozen=True)
class TileSource:
    """One tile's contribution to a band of the mosaic."""

    file: str
    """Tile file name, relative to the VRT."""
    band: int
    """1-based band index inside the tile file."""
    x: int
    """Column offset of the tile in the mosaic (pixels)."""
    y: int
    """Row offset of the tile in the mosaic (pixels)."""
    width: int
    """Tile width (pixels)."""
    height: int
    """Tile height (pixels)."""


def _sub(parent: ET.Element, tag: str, text: object | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = str(text)
    return el


def mosaic_vrt(
    *,
    rows: int,
    cols: int,
    crs_wkt: str,
    transform: Sequence[float],
    dtype: str,
    nodata: float | None,
    description: str,
    sources: Sequence[TileSource],
) -> str:
    """XML of a one-band VRT of ``rows`` x ``cols`` pixels mosaicking ``sources``.

    Parameters
    ----------
    rows, cols
        Mosaic size in pixels.
    crs_wkt
        CRS as WKT (or any string GDAL's ``SetFromUserInput`` takes); empty for a raster in
        sensor geometry.
    transform
        GDAL geotransform ``(x0, dx, rx, y0, ry, dy)``.
    dtype
        GDAL data type name (``UInt16``).
    nodata
        The band's nodata value (``None``: none).
    description
        Band description (the band id).
    sources
        The tiles; each is read 1:1 (no resampling) into its ``x``/``y`` offset.
    """
    root = ET.Element("VRTDataset", rasterXSize=str(cols), rasterYSize=str(rows))
    if crs_wkt:  # sensor geometry (pixel space): no SRS
        _sub(root, "SRS", crs_wkt)
    _sub(root, "GeoTransform", ", ".join(repr(float(v)) for v in transform))
    vb = _sub(root, "VRTRasterBand", dataType=dtype, band="1")
    if nodata is not None:
        _sub(vb, "NoDataValue", repr(float(nodata)))
    _sub(vb, "Description", description)
    for s in sources:
        src = _sub(vb, "SimpleSource")
        _sub(src, "SourceFilename", s.file, relativeToVRT="1")
        _sub(src, "SourceBand", s.band)
        size = {"xSize": str(s.width), "ySize": str(s.height)}
        _sub(src, "SrcRect", xOff="0", yOff="0", **size)
        _sub(src, "DstRect", xOff=str(s.x), yOff=str(s.y), **size)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")

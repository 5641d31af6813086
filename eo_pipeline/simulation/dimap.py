"""Write simulated scenes as Airbus DIMAP V2 products (the format KazEOSat-1 data comes in).

One product per spectral group of a scene (``P`` for the panchromatic band, ``MS`` for the
others), each a ``DIM_*.XML`` document beside its image tiles ``IMG_*_R{row}C{col}.TIF``
(multi-band GeoTIFFs in ``BAND_ID`` order, regular tiling, no overlap), as Pléiades and SPOT 6/7
ORTHO products are laid out. The document carries what a reader needs and what GDAL's DIMAP
driver reads (``rasterio.open("DIM_....XML")`` opens the mosaic of the tiles):

- ``Metadata_Identification/METADATA_FORMAT version="2.0"``, profile ``KZ1_ORTHO`` (nominal:
  the KazEOSat-1 profile name is not public; the Pléiades one is ``PHR_ORTHO``);
- ``Raster_Data``: dimensions, ``Tile_Set/Regular_Tiling``, ``Data_Files`` (``tile_R``/``tile_C``),
  ``NBITS``, special values ``NODATA`` and ``SATURATED`` (``SPECIAL_VALUE_COUNT`` holds the DN,
  as in Airbus documents);
- ``Radiometric_Data``: per band ``Band_Radiance`` (``GAIN``, ``BIAS``: ``L = DN / GAIN + BIAS``),
  ``Band_Solar_Irradiance`` (``VALUE``), ``Band_Spectral_Range`` (``MIN``/``MAX``, micrometres);
- ``Geometric_Data/Use_Area/Located_Geometric_Values`` (``LOCATION_TYPE`` Center): ``TIME``,
  ``Solar_Incidences`` (``SUN_AZIMUTH``, ``SUN_ELEVATION``), ``Acquisition_Angles``;
- ``Coordinate_Reference_System/Projected_CRS/PROJECTED_CRS_CODE`` and
  ``Geoposition/Geoposition_Insert`` (``ULXMAP``, ``ULYMAP``, ``XDIM``, ``YDIM``);
- ``Dataset_Content/Dataset_Extent/Vertex`` (``LON``, ``LAT``) and ``CLOUD_COVERAGE``;
- ``Dataset_Sources/Source_Identification/Strip_Source`` (mission, instrument, imaging date/time).

Beside the products, one single-band VRT per band mosaics its tiles (``{dataset}_{band}.vrt``),
so a STAC item can offer one asset per band like every other scene.

Examples
--------
>>> tile_layout(5000, 2048)
[(0, 2048), (2048, 2048), (4096, 904)]
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pystac
import rasterio
from affine import Affine
from rasterio.crs import CRS

from eo_pipeline.atomic import atomic_write
from eo_pipeline.catalogs.scene import BandCalibration
from eo_pipeline.catalogs.sensors import Band, Sensor
from eo_pipeline.catalogs.stac import AssetSpec
from eo_pipeline.errors import WriteError
from eo_pipeline.io.vrt import TileSource, mosaic_vrt
from eo_pipeline.simulation.geometry import Placement, SceneGrid

__all__ = [
    "DimapGroup",
    "DimapProduct",
    "DimapScene",
    "dimap_asset_specs",
    "tile_layout",
    "write_dimap",
    "write_simulated_dimap",
]


@dataclass(frozen=True)
class DimapGroup:
    """One spectral group of a scene: one DIMAP product (``P`` or ``MS``)."""

    name: str
    """``P`` (panchromatic) or ``MS`` (multispectral)."""
    bands: tuple[Band, ...]
    """Bands in file order (``BAND_ID`` order of the document)."""
    arrays: tuple[np.ndarray, ...]
    """One DN array per band, all the same shape."""
    pixel: float
    """Pixel size in metres."""


@dataclass(frozen=True)
class DimapScene:
    """Where, when and how one scene was acquired: what every document of it states."""

    sensor: Sensor
    dataset: str
    """Scene id (used in file names and DATASET_NAME)."""
    tile: int
    """Tile size in pixels (a positive multiple of 256)."""
    epsg: int
    left: float
    """Easting of the west edge (metres)."""
    top: float
    """Northing of the north edge (metres)."""
    when: dt.datetime
    sun_elevation: float
    sun_azimuth: float
    cloud_cover: float
    """Percent."""
    corners: Sequence[tuple[float, float]]
    """Upper-left, upper-right, lower-right, lower-left corners as (lon, lat)."""
    calibration: Mapping[str, BandCalibration]
    """Band id -> its GAIN/BIAS (and solar irradiance)."""
    geometry: str = "ortho"
    """``"ortho"`` (map grid: CRS, Geoposition) or ``"sensor"`` (Primary: pixel space, tiles
    without georeferencing, placed by an ``RPC_*.XML`` written beside the document)."""


@dataclass(frozen=True)
class DimapProduct:
    """Files written for one scene."""

    documents: dict[str, Path] = field(default_factory=dict)
    """Group name -> its ``DIM_*.XML``."""
    tiles: list[tuple[str, int, int, Path]] = field(default_factory=list)
    """(group, tile row, tile column, path) of every image tile (1-based rows/columns)."""
    vrts: dict[str, Path] = field(default_factory=dict)
    """Band id -> single-band VRT mosaic of its tiles."""


def tile_layout(n: int, tile: int) -> list[tuple[int, int]]:
    """(offset, length) of the tiles along one axis of ``n`` pixels."""
    return [(o, min(tile, n - o)) for o in range(0, n, tile)]


def _sub(parent: ET.Element, tag: str, text: object | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = str(text)
    return el


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _document(
    scene: DimapScene, group: DimapGroup, tiles: Sequence[tuple[int, int, str]]
) -> ET.Element:
    s = scene
    sensor, dataset, tile, epsg, left, top = s.sensor, s.dataset, s.tile, s.epsg, s.left, s.top
    when, sun_elevation, sun_azimuth = s.when, s.sun_elevation, s.sun_azimuth
    cloud_cover, corners, calibration = s.cloud_cover, s.corners, s.calibration
    rows, cols = group.arrays[0].shape
    root = ET.Element("Dimap_Document")
    mi = _sub(root, "Metadata_Identification")
    _sub(mi, "METADATA_FORMAT", "DIMAP", version="2.0")
    sensor_geometry = s.geometry == "sensor"
    _sub(mi, "METADATA_PROFILE", "KZ1_SENSOR" if sensor_geometry else "KZ1_ORTHO")
    _sub(mi, "METADATA_SUBPROFILE", "PRODUCT")
    _sub(mi, "METADATA_LANGUAGE", "en")
    di = _sub(root, "Dataset_Identification")
    _sub(di, "DATASET_NAME", f"{dataset}_{group.name}")
    _sub(di, "DATASET_TYPE", "RASTER_SENSOR" if sensor_geometry else "RASTER_ORTHO")
    _sub(di, "DATASET_COMMENT", "Simulated by eo-pipeline (nominal KazEOSat-1 radiometry)")
    dc = _sub(root, "Dataset_Content")
    _sub(dc, "CLOUD_COVERAGE", f"{cloud_cover:.2f}", unit="percent")
    ext = _sub(dc, "Dataset_Extent")
    _sub(ext, "EXTENT_TYPE", "Polygon")
    for (lon, lat), (x, y), (col, row) in zip(
        corners,
        [(left, top), (left + cols * group.pixel, top), (left + cols * group.pixel, top - rows * group.pixel), (left, top - rows * group.pixel)],
        [(1, 1), (cols, 1), (cols, rows), (1, rows)],
        strict=True,
    ):  # fmt: skip
        v = _sub(ext, "Vertex")
        _sub(v, "LON", f"{lon:.9f}")
        _sub(v, "LAT", f"{lat:.9f}")
        if not sensor_geometry:
            _sub(v, "X", f"{x:.3f}")
            _sub(v, "Y", f"{y:.3f}")
        _sub(v, "COL", col)
        _sub(v, "ROW", row)
    pi = _sub(root, "Product_Information")
    delivery = _sub(pi, "Delivery_Identification")
    _sub(delivery, "PRODUCTION_DATE", _iso(when))
    _sub(delivery, "PRODUCT_TYPE", "SIMULATED")
    _sub(delivery, "JOB_ID", dataset)
    _sub(_sub(pi, "Producer_Information"), "PRODUCER_NAME", "eo-pipeline simulator")
    if not sensor_geometry:
        crs = _sub(_sub(root, "Coordinate_Reference_System"), "Projected_CRS")
        _sub(crs, "PROJECTED_CRS_NAME", pyproj.CRS.from_epsg(epsg).name)
        _sub(crs, "PROJECTED_CRS_CODE", f"urn:ogc:def:crs:EPSG::{epsg}")
        ins = _sub(_sub(root, "Geoposition"), "Geoposition_Insert")
        _sub(ins, "ULXMAP", f"{left:.3f}", unit="m")
        _sub(ins, "ULYMAP", f"{top:.3f}", unit="m")
        _sub(ins, "XDIM", f"{group.pixel:.6f}", unit="m")
        _sub(ins, "YDIM", f"{group.pixel:.6f}", unit="m")
    ps = _sub(_sub(root, "Processing_Information"), "Product_Settings")
    _sub(ps, "PROCESSING_LEVEL", "SENSOR" if sensor_geometry else "ORTHO")
    _sub(ps, "SPECTRAL_PROCESSING", "PAN" if group.name == "P" else "MS")
    _sub(_sub(ps, "Radiometric_Settings"), "RADIOMETRIC_PROCESSING", "BASIC")

    rd = _sub(root, "Raster_Data")
    access = _sub(rd, "Data_Access")
    _sub(access, "DATA_FILE_ORGANISATION", "BAND_COMPOSITE")
    _sub(access, "DATA_FILE_FORMAT", "image/tiff")
    _sub(access, "DATA_FILE_TILES", "true")
    files = _sub(access, "Data_Files")
    for r, c, name in tiles:
        f = _sub(files, "Data_File", tile_R=str(r), tile_C=str(c))
        _sub(f, "DATA_FILE_PATH", href=name)
    dims = _sub(rd, "Raster_Dimensions")
    _sub(dims, "NROWS", rows)
    _sub(dims, "NCOLS", cols)
    _sub(dims, "NBANDS", len(group.bands))
    ts = _sub(dims, "Tile_Set")
    _sub(ts, "NTILES", len(tiles))
    reg = _sub(ts, "Regular_Tiling")
    _sub(reg, "NTILES_SIZE", nrows=str(tile), ncols=str(tile))
    _sub(
        reg,
        "NTILES_COUNT",
        ntiles_R=str(max(t[0] for t in tiles)),
        ntiles_C=str(max(t[1] for t in tiles)),
    )
    _sub(reg, "OVERLAP_ROW", 0)
    _sub(reg, "OVERLAP_COL", 0)
    enc = _sub(rd, "Raster_Encoding")
    _sub(enc, "DATA_TYPE", "INTEGER")
    b0 = group.bands[0]
    _sub(enc, "NBITS", int(np.log2(b0.saturation + 1)))
    _sub(enc, "BYTEORDER", "LSBF")
    _sub(enc, "SIGN", "UNSIGNED")
    display = _sub(rd, "Raster_Display")
    order = _sub(display, "Band_Display_Order")
    ids = [b.id for b in group.bands]
    for channel, common in (
        ("RED_CHANNEL", "red"),
        ("GREEN_CHANNEL", "green"),
        ("BLUE_CHANNEL", "blue"),
    ):
        match = [b.id for b in group.bands if b.common_name == common]
        _sub(order, channel, match[0] if match else ids[0])
    for value, text in ((b0.nodata, "NODATA"), (b0.saturation, "SATURATED")):
        sv = _sub(display, "Special_Value")
        _sub(sv, "SPECIAL_VALUE_COUNT", value)
        _sub(sv, "SPECIAL_VALUE_TEXT", text)

    radio = _sub(root, "Radiometric_Data")
    _sub(radio, "RADIOMETRIC_PROCESSING", "BASIC")
    bml = _sub(
        _sub(_sub(radio, "Radiometric_Calibration"), "Instrument_Calibration"),
        "Band_Measurement_List",
    )
    for b in group.bands:
        sr = _sub(bml, "Band_Spectral_Range")
        _sub(sr, "BAND_ID", b.id)
        _sub(sr, "MEASURE_UNIT", "micrometer")
        _sub(sr, "MIN", f"{b.center_wavelength - b.full_width_half_max / 2:.4f}")
        _sub(sr, "MAX", f"{b.center_wavelength + b.full_width_half_max / 2:.4f}")
    for b in group.bands:
        cal = calibration[b.id]
        if cal.gain is None:
            raise WriteError(
                f"DIMAP product {dataset}: band {b.id!r} has no GAIN (sensor {sensor.name!r})"
            )
        br = _sub(bml, "Band_Radiance")
        _sub(br, "BAND_ID", b.id)
        _sub(
            br,
            "MEASURE_DESC",
            "Raw radiometric count DC to TOA Radiance L. Formulae L=DC/GAIN+BIAS",
        )
        _sub(br, "MEASURE_UNIT", "watt/m2/sr/micron")
        _sub(br, "GAIN", repr(float(cal.gain)))
        _sub(br, "BIAS", repr(float(cal.bias or 0.0)))
    for b in group.bands:
        si = _sub(bml, "Band_Solar_Irradiance")
        _sub(si, "BAND_ID", b.id)
        _sub(si, "MEASURE_DESC", "Band solar irradiance at the top of atmosphere, 1 AU")
        _sub(si, "MEASURE_UNIT", "watt/m2/micron")
        _sub(si, "VALUE", repr(float(b.esun or 0.0)))

    lgv = _sub(_sub(_sub(root, "Geometric_Data"), "Use_Area"), "Located_Geometric_Values")
    _sub(lgv, "LOCATION_TYPE", "Center")
    _sub(lgv, "TIME", _iso(when))
    _sub(lgv, "COL", (cols + 1) // 2)
    _sub(lgv, "ROW", (rows + 1) // 2)
    aa = _sub(lgv, "Acquisition_Angles")
    for tag in (
        "INCIDENCE_ANGLE",
        "VIEWING_ANGLE_ALONG_TRACK",
        "VIEWING_ANGLE_ACROSS_TRACK",
        "VIEWING_ANGLE",
    ):
        _sub(aa, tag, "0.0", unit="deg")
    si = _sub(lgv, "Solar_Incidences")
    _sub(si, "SUN_AZIMUTH", f"{sun_azimuth:.6f}", unit="deg")
    _sub(si, "SUN_ELEVATION", f"{sun_elevation:.6f}", unit="deg")

    strip = _sub(_sub(_sub(root, "Dataset_Sources"), "Source_Identification"), "Strip_Source")
    _sub(strip, "MISSION", "KAZEOSAT")
    _sub(strip, "MISSION_INDEX", sensor.platform.rsplit("-", 1)[-1])
    _sub(strip, "INSTRUMENT", sensor.instrument.upper())
    _sub(strip, "INSTRUMENT_INDEX", "1")
    _sub(strip, "IMAGING_DATE", when.astimezone(dt.UTC).strftime("%Y-%m-%d"))
    _sub(strip, "IMAGING_TIME", when.astimezone(dt.UTC).strftime("%H:%M:%S.%f")[:-3] + "Z")
    return root


def _vrt(
    band: Band, index: int, group: DimapGroup, tiles: Sequence[tuple[int, int, str]], tile: int,
    epsg: int, left: float, top: float,
) -> str:  # fmt: skip
    rows, cols = group.arrays[0].shape
    sources = []
    for r, c, name in tiles:
        y0, x0 = (r - 1) * tile, (c - 1) * tile
        h, w = min(tile, rows - y0), min(tile, cols - x0)
        sources.append(TileSource(name, index + 1, x0, y0, w, h))
    return mosaic_vrt(
        rows=rows, cols=cols, crs_wkt=CRS.from_epsg(epsg).to_wkt(),
        transform=(left, group.pixel, 0.0, top, 0.0, -group.pixel), dtype="UInt16",
        nodata=band.nodata, description=band.id, sources=sources,
    )  # fmt: skip


def write_dimap(folder: Path, scene: DimapScene, groups: Sequence[DimapGroup]) -> DimapProduct:
    """Write one DIMAP V2 product per group into ``folder`` (flat), plus one VRT per band."""
    tile, epsg, left, top, when = scene.tile, scene.epsg, scene.left, scene.top, scene.when
    dataset = scene.dataset
    if tile <= 0 or tile % 256:
        raise WriteError(f"DIMAP tile size must be a positive multiple of 256, got {tile}")
    stamp = when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")
    out = DimapProduct()
    for group in groups:
        sensor_geometry = scene.geometry == "sensor"
        stem = f"KZ1_{group.name}_{stamp}_{'SEN' if sensor_geometry else 'ORT'}_{dataset}"
        rows, cols = group.arrays[0].shape
        tiles: list[tuple[int, int, str]] = []
        for r, (y0, h) in enumerate(tile_layout(rows, tile), start=1):
            for c, (x0, w) in enumerate(tile_layout(cols, tile), start=1):
                name = f"IMG_{stem}_R{r}C{c}.TIF"
                data = np.stack([a[y0 : y0 + h, x0 : x0 + w] for a in group.arrays])
                transform = Affine(group.pixel, 0.0, left + x0 * group.pixel, 0.0, -group.pixel,
                                   top - y0 * group.pixel)  # fmt: skip
                geo: dict[str, Any] = {"crs": CRS.from_epsg(epsg), "transform": transform}
                if sensor_geometry:  # pixel space: no georeferencing
                    geo = {}
                with rasterio.open(
                    folder / name, "w", driver="GTiff", width=w, height=h, count=len(group.bands),
                    dtype=data.dtype, **geo,
                    tiled=True, blockxsize=256, blockysize=256, compress="DEFLATE", predictor=2,
                ) as dst:  # fmt: skip
                    dst.write(data)
                    for i, b in enumerate(group.bands):
                        dst.set_band_description(i + 1, b.id)
                tiles.append((r, c, name))
                out.tiles.append((group.name, r, c, folder / name))
        doc = _document(scene, group, tiles)
        ET.indent(doc)
        path = folder / f"DIM_{stem}.XML"
        atomic_write(
            path,
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(doc, encoding="unicode")
            + "\n",
            encoding="utf-8",
        )
        out.documents[group.name] = path
        for i, b in enumerate(group.bands if not sensor_geometry else ()):
            vrt = folder / f"{dataset}_{b.id}.vrt"
            atomic_write(vrt, _vrt(b, i, group, tiles, tile, epsg, left, top), encoding="utf-8")
            out.vrts[b.id] = vrt
    return out


def dimap_asset_specs(product: DimapProduct, groups: Sequence[DimapGroup]) -> dict[str, AssetSpec]:
    """STAC asset specs of a written product: band VRTs, documents, tiles.

    Band assets (key = band id, role ``data``) are the VRTs, with no media type (none is
    registered for VRT; odc-stac then goes by the ``data`` role); documents are ``DIM_P`` /
    ``DIM_MS`` (role ``metadata``); tiles ``IMG_{group}_R{r}C{c}`` (role ``tile``, no
    ``eo:bands`` so that band names stay unambiguous for loaders).
    """
    out: dict[str, AssetSpec] = {}
    for group in groups:
        for b in group.bands:
            out[b.id] = AssetSpec(b.id, product.vrts[b.id], bands=(b.id,))
    for name, path in product.documents.items():
        out[f"DIM_{name}"] = AssetSpec(
            f"DIM_{name}",
            path,
            roles=("metadata",),
            media_type="application/xml",
            title=f"DIMAP V2 document of the {name} product",
        )
    for name, r, c, path in product.tiles:
        members = next(g for g in groups if g.name == name).bands
        out[f"IMG_{name}_R{r}C{c}"] = AssetSpec(
            f"IMG_{name}_R{r}C{c}",
            path,
            roles=("tile",),
            media_type=pystac.MediaType.GEOTIFF,
            title=f"DIMAP image tile R{r}C{c} of the {name} product "
            f"(bands {', '.join(b.id for b in members)})",
        )
    return out


def write_simulated_dimap(
    folder: Path,
    *,
    dataset: str,
    sensor: Sensor,
    grid: SceneGrid,
    place: Placement,
    calibration: Mapping[str, BandCalibration],
    dns: Mapping[str, np.ndarray],
    cloud_cover: float,
    tile: int,
) -> dict[str, AssetSpec]:
    """A simulated scene's DN (band id -> array) as DIMAP V2 products (P and MS) with a VRT per
    band, written into ``folder``; their asset specs (:func:`dimap_asset_specs`)."""
    groups = []
    for name, pan in (("P", True), ("MS", False)):
        members = tuple(b for b in sensor.bands if (b.common_name == "pan") == pan)
        if members:
            pixel = grid.band_pixel_size(members[0].id)
            arrays = tuple(dns[b.id] for b in members)
            groups.append(DimapGroup(name=name, bands=members, arrays=arrays, pixel=pixel))
    extent = grid.size * grid.gsd
    xs = [place.left, place.left + extent, place.left + extent, place.left]
    ys = [place.top, place.top, place.top - extent, place.top - extent]
    lons, lats = pyproj.Transformer.from_crs(place.epsg, 4326, always_xy=True).transform(xs, ys)
    scene = DimapScene(
        sensor=sensor,
        dataset=dataset,
        tile=tile,
        epsg=place.epsg,
        left=place.left,
        top=place.top,
        when=place.datetime,
        sun_elevation=place.sun_elevation,
        sun_azimuth=place.sun_azimuth,
        cloud_cover=cloud_cover,
        corners=list(zip(lons, lats, strict=True)),
        calibration=calibration,
    )
    return dimap_asset_specs(write_dimap(folder, scene, groups), groups)

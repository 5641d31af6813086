"""Ingest a vendor scene folder into the self-contained static STAC catalog.

``ingest(path, catalog_dir)`` reads the product metadata (Landsat Collection 2 MTL, L1 or L2;
Sentinel-2 L1C/L2A SAFE, folder or zip; DIMAP V2 ``DIM_*.XML``, the format of KazEOSat-1), checks
every raster against the sensor file and the metadata, computes the cloud cover from the QA
band where there is one, builds the STAC item (:func:`eo_pipeline.catalogs.stac.build_item`)
and adds it to the catalog (:func:`eo_pipeline.catalogs.store.add_items`).

The catalog is self-contained: the scene's files are **hard-linked** into the item's folder
when the catalog is on the same filesystem and linking is allowed, and **copied**
otherwise (``asset_mode="copy"`` always copies). Hard links share bytes with the source:
never edit either file in place. Sentinel-2 SAFE products are referenced in place (absolute
paths, or ``/vsizip/`` paths into the zip), never copied, unless ``to_cog`` converts the bands. The item folder is staged under a temporary name and
renamed when complete; every input check runs before anything is written, so bad input
leaves the catalog exactly as it was.

Examples
--------
>>> import eo_pipeline
>>> item = eo_pipeline.ingest("LC08_L2SP_001070_20190114_20200830_02_T2/", "catalog")  # doctest: +SKIP
>>> item.collection_id, round(item.properties["eo:cloud_cover"], 1)  # doctest: +SKIP
('landsat8-l2sp', 76.3)
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pystac

from eo_pipeline.catalogs import sensors as _sensors
from eo_pipeline.catalogs.scene import SceneMetadata
from eo_pipeline.catalogs.stac import AssetSpec, build_item
from eo_pipeline.catalogs.store import AssetMode, add_items
from eo_pipeline.errors import InputDataError
from eo_pipeline.io.georef import georeference_from_mtl

if TYPE_CHECKING:
    from eo_pipeline.catalogs.validation import ValidationReport

__all__ = [
    "DEMO_SCENE",
    "QA_CLOUD",
    "QA_SHADOW",
    "cloud_cover_from_qa",
    "ingest",
    "ingest_demo_scene",
    "landsat_assets",
    "qa_cover",
    "real_data_dir",
]

DEMO_SCENE = "landsat8-c2l2sp-001070-20190114"
"""The real Landsat 8 C2 L2SP scene folder in ``shared/real-data`` that ``make demo`` ingests."""

# Landsat Collection 2 QA_PIXEL bits (USGS LSDS-1619 / LSDS-1328).
_QA_FILL = 1 << 0
QA_CLOUD = 1 << 3
"""QA_PIXEL bit 3: cloud."""
QA_SHADOW = 1 << 4
"""QA_PIXEL bit 4: cloud shadow."""
# the classes reported by qa_cover(): our own figures, beside the provider's eo:cloud_cover
_QA_CLASSES = {"cloud": 1 << 3, "shadow": 1 << 4, "cirrus": 1 << 2, "snow": 1 << 5,
               "clear": 1 << 6, "water": 1 << 7}  # fmt: skip

# Landsat QA / auxiliary files: suffix after the product id -> (asset key, roles, nodata).
_LANDSAT_AUX: dict[str, tuple[str, tuple[str, ...], float | None]] = {
    "QA_PIXEL.TIF": ("QA_PIXEL", ("cloud",), 1),
    "QA_RADSAT.TIF": ("QA_RADSAT", ("saturation",), None),
    "SR_QA_AEROSOL.TIF": ("SR_QA_AEROSOL", ("metadata",), 1),
    "MTL.txt": ("MTL_txt", ("metadata",), None),
    "MTL.json": ("MTL_json", ("metadata",), None),
    "MTL.xml": ("MTL_xml", ("metadata",), None),
    "ANG.txt": ("ANG", ("metadata",), None),
}
_LANDSAT_BAND_FILE = re.compile(r"_(?:SR_)?B(\d+)\.TIF$", re.IGNORECASE)


@dataclass(frozen=True)
class _Grid:
    """What the checks need to know of one raster (read without touching pixels)."""

    path: Path
    count: int
    dtype: str
    crs: Any
    shape: tuple[int, int]
    transform: tuple[float, ...]
    bounds: tuple[float, float, float, float]
    res: float


def _open_grid(path: Path, what: str) -> _Grid:
    import rasterio
    from rasterio.errors import RasterioIOError

    _check_complete(path, what)
    try:
        with rasterio.open(path) as ds:
            return _Grid(
                path,
                ds.count,
                ds.dtypes[0],
                ds.crs,
                (ds.height, ds.width),
                tuple(ds.transform)[:6],
                tuple(ds.bounds),
                float(max(abs(ds.res[0]), abs(ds.res[1]))),
            )
    except RasterioIOError as err:
        raise InputDataError(
            f"{what}: {path} is not a readable raster ({err}); re-download the file"
        ) from None


def _check_complete(path: Path, what: str) -> None:
    """Every block of the file is there (checked before its checksum is recorded).

    TIFFs: every strip/tile offset + byte count inside the file (the directories only, no
    pixels); JPEG 2000: every box and tile-part inside the file, then (as other formats)
    every block is read once. VRTs are skipped: their sources are checked as assets of
    their own.
    """
    from eo_pipeline.catalogs.jp2 import file_problem

    try:
        problem = file_problem(path)
    except OSError as err:
        raise InputDataError(f"{what}: cannot read {path} ({err.strerror})") from None
    if problem is None and path.suffix.lower() not in (".vrt", ".tif", ".tiff"):
        problem = _read_every_block(path)
    if problem is not None:
        raise InputDataError(
            f"{what}: {path} is incomplete or corrupt: {problem}; re-download the file"
        )


def _read_every_block(path: Path) -> str | None:
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as ds:
            for band in range(1, ds.count + 1):
                for _, window in ds.block_windows(band):
                    ds.read(band, window=window)
    except RasterioError as err:
        return str(err)
    return None


def cloud_cover_from_qa(
    path: str | os.PathLike[str],
    rows_per_block: int = 1024,
    flags: int = QA_CLOUD | QA_SHADOW,
) -> float | None:
    """Percent of valid pixels with any of ``flags`` set in a Landsat C2 ``QA_PIXEL`` file.

    Reads the band in blocks of ``rows_per_block`` rows (constant memory whatever the scene
    size). Fill pixels (bit 0) are not counted. By default counts cloud (bit 3) or cloud
    shadow (bit 4); ``flags=QA_CLOUD`` alone reproduces USGS's ``CLOUD_COVER``.
    Returns ``None`` when the band holds no valid pixel.

    Examples
    --------
    >>> cloud_cover_from_qa("LC08_..._QA_PIXEL.TIF")  # doctest: +SKIP
    76.3
    """
    valid, counts = _qa_counts(path, {"flagged": flags}, rows_per_block)
    return 100.0 * counts["flagged"] / valid if valid else None


def _qa_counts(
    path: str | os.PathLike[str], flags: Mapping[str, int], rows_per_block: int
) -> tuple[int, dict[str, int]]:
    """Non-fill pixels of a QA_PIXEL file and, per name, those with any bit of its flags set.

    One pass in blocks of ``rows_per_block`` rows (constant memory whatever the scene size).
    """
    import rasterio

    valid = 0
    counts = dict.fromkeys(flags, 0)
    with rasterio.open(path) as ds:
        for row in range(0, ds.height, rows_per_block):
            window = ((row, min(row + rows_per_block, ds.height)), (0, ds.width))
            qa = ds.read(1, window=window)
            ok = (qa & _QA_FILL) == 0
            valid += int(np.count_nonzero(ok))
            for name, bits in flags.items():
                counts[name] += int(np.count_nonzero(ok & ((qa & bits) != 0)))
    return valid, counts


def qa_cover(path: str | os.PathLike[str], rows_per_block: int = 1024) -> dict[str, float] | None:
    """Percent of valid pixels flagged cloud, shadow, cirrus, snow, clear and water in a QA_PIXEL.

    Our own figures from the Landsat C2 ``QA_PIXEL`` bits (cloud 3, cloud shadow 4, cirrus 2,
    snow 5, clear 6, water 7; fill pixels, bit 0, not counted), each class separately; read in
    blocks of ``rows_per_block`` rows. ``None`` when the band holds no valid pixel. Ingest
    stores them as ``eo_pipeline:{class}_percent``; ``eo:cloud_cover`` stays the provider's.

    Examples
    --------
    >>> sorted(qa_cover("LC08_..._QA_PIXEL.TIF"))  # doctest: +SKIP
    ['cirrus', 'clear', 'cloud', 'shadow', 'snow', 'water']
    """
    valid, counts = _qa_counts(path, _QA_CLASSES, rows_per_block)
    return {k: round(100.0 * v / valid, 4) for k, v in counts.items()} if valid else None


def landsat_assets(meta: SceneMetadata) -> list[AssetSpec]:
    """Asset specs of a Landsat C2 scene folder: bands, QA bands, MTL and ANG files.

    Data bands are the sensor's bands that the MTL names; L2 bands get the MTL's
    surface-reflectance scale/offset in ``raster:bands``. QA files get roles ``cloud``
    (``QA_PIXEL``), ``saturation`` (``QA_RADSAT``) or ``metadata``.

    Raises
    ------
    InputDataError
        Every band file the MTL names is missing, or the folder holds band files the MTL
        does not name. Some missing: a :class:`UserWarning` names them.
    """
    sensor = _sensors.get(meta.sensor)
    base = Path(meta.source).parent
    specs: list[AssetSpec] = []
    missing: list[str] = []
    named = {Path(name).name for name in meta.files.values()}  # incl. thermal bands we skip
    for band in sensor.bands:
        name = meta.files.get(band.id)
        if name is None:
            continue
        path = base / name
        if not path.is_file():
            missing.append(f"{band.id} ({name})")
            continue
        cal = meta.bands.get(band.id)
        specs.append(
            AssetSpec(
                band.id,
                path,
                bands=(band.id,),
                scale=cal.sr_scale if cal else None,
                offset=cal.sr_offset if cal else None,
            )
        )
    if missing and not specs:
        raise InputDataError(
            f"{base}: the metadata {Path(meta.source).name} names band file(s) that are "
            f"missing: {', '.join(missing)}; re-download the scene"
        )
    if missing:  # a partial copy (a crop, a band subset): ingest what is there, say what is not
        warnings.warn(
            f"{base}: band file(s) named by {Path(meta.source).name} are missing: "
            f"{', '.join(missing)}; the item holds only {', '.join(s.key for s in specs)}",
            UserWarning,
            stacklevel=3,
        )
    stray = sorted(
        p.name
        for p in base.glob(f"{meta.product_id}_*")
        if _LANDSAT_BAND_FILE.search(p.name) and p.name not in named
    )
    if stray:
        raise InputDataError(
            f"{base}: band file(s) {', '.join(stray)} are not named by "
            f"{Path(meta.source).name} (sensor {sensor.name} bands: "
            f"{', '.join(sensor.band_ids)}); the folder mixes products"
        )
    for suffix, (key, roles, nodata) in _LANDSAT_AUX.items():
        path = base / f"{meta.product_id}_{suffix}"
        if path.is_file():
            specs.append(AssetSpec(key, path, roles=roles, nodata=nodata))
    return specs


def _check_rasters(meta: SceneMetadata, specs: Sequence[AssetSpec]) -> Path | None:
    """Every raster readable, single-band, of the sensor's dtype, on one CRS, each band on
    the grid of its resolution, and covering the metadata's footprint. Returns QA_PIXEL."""
    from rasterio.warp import transform_bounds

    sensor = _sensors.get(meta.sensor)
    grids: dict[float, _Grid] = {}
    crs = None
    qa = None
    for spec in specs:
        if not spec.is_raster():
            continue
        what = f"scene {meta.product_id or meta.source} asset {spec.key}"
        g = _open_grid(Path(spec.path), what)
        if g.count != 1:
            raise InputDataError(
                f"{what}: {g.path.name} has {g.count} bands; one band per file is expected"
            )
        if crs is None:
            crs = g.crs
        elif g.crs != crs:
            raise InputDataError(f"{what}: {g.path.name} is in {g.crs}, other files in {crs}")
        if meta.epsg is not None and g.crs.to_epsg() != meta.epsg:
            raise InputDataError(
                f"{what}: {g.path.name} is in {g.crs} but {Path(meta.source).name} says "
                f"EPSG:{meta.epsg}"
            )
        if spec.key == "QA_PIXEL":
            qa = g.path
        if not spec.bands:
            continue
        band = sensor.band(spec.bands[0])
        if g.dtype != band.dtype:
            raise InputDataError(
                f"{what}: {g.path.name} is {g.dtype} but sensor {sensor.name} band {band.id} "
                f"is {band.dtype}"
            )
        first = grids.setdefault(band.gsd, g)
        if (g.shape, g.transform) != (first.shape, first.transform):
            raise InputDataError(
                f"{what}: {g.path.name} has shape {g.shape} and transform {g.transform} but "
                f"{first.path.name} (same {band.gsd:g} m resolution) has {first.shape} and "
                f"{first.transform}; the files do not belong together"
            )
    for g in grids.values():
        _check_extent(meta, g, transform_bounds)
    return qa


def _check_extent(meta: SceneMetadata, g: _Grid, transform_bounds: Any) -> None:
    """The raster's extent matches the metadata bbox to a few pixels (a raster of another
    scene, or cut or padded, fails)."""
    if meta.bbox[0] > meta.bbox[2]:
        return  # across the antimeridian: the simple comparison does not apply
    west, south, east, north = transform_bounds(g.crs, "EPSG:4326", *g.bounds, densify_pts=21)
    lat = math.radians((south + north) / 2)
    tol_lat = 3 * g.res / 111_320.0 + 0.01
    tol_lon = tol_lat / max(math.cos(lat), 0.1)
    diffs = [
        (west - meta.bbox[0], tol_lon),
        (south - meta.bbox[1], tol_lat),
        (east - meta.bbox[2], tol_lon),
        (north - meta.bbox[3], tol_lat),
    ]
    if any(abs(d) > tol for d, tol in diffs):
        raise InputDataError(
            f"{g.path}: raster extent ({west:.4f}, {south:.4f}, {east:.4f}, {north:.4f}) does "
            f"not match the footprint of {Path(meta.source).name} "
            f"{tuple(round(v, 4) for v in meta.bbox)}; the raster is cut, padded or of "
            "another scene"
        )


def ingest(
    path: str | os.PathLike[str],
    catalog_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    asset_mode: AssetMode | None = None,
    dem: Any = None,
    to_cog: bool = False,
) -> pystac.Item:
    """Ingest one scene folder (or its metadata file) into a self-contained STAC catalog.

    Parameters
    ----------
    path
        A Landsat C2 scene folder or its ``*_MTL.txt``/``.json``/``.xml``; a Sentinel-2 L1C or
        L2A SAFE folder, its ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml``, or the SAFE ``.zip`` (read
        in place through GDAL's ``/vsizip/``; one item per granule, see
        :mod:`eo_pipeline.io.ingest_sentinel2`); a DIMAP V2 product (``DIM_*.XML``) or bundle
        folder (``P`` + ``MS`` products of one acquisition become one item; see
        :mod:`eo_pipeline.io.ingest_dimap`: one VRT mosaic of the tiles per band).
    catalog_dir
        The static catalog folder (created when missing). The item goes to
        ``{sensor}-{level}/{product id}/``.
    overwrite
        Replace the item when the catalog already holds it (default: :class:`CatalogError`).
    asset_mode
        ``"link"`` (default, except for Sentinel-2): hard-link the files into the catalog,
        copying when that is impossible; ``"copy"``: always copy; ``"reference"`` (the
        default for Sentinel-2 SAFE products): leave the files where they are.
    to_cog
        Sentinel-2: convert the band rasters (and AOT, WVP, SCL) from JPEG 2000 to COG into
        the item's folder (reading JPEG 2000 is several times slower; see the README).
    dem
        For a sensor-geometry (Primary) DIMAP product: the DEM (:class:`~eo_pipeline.io.dem.DEMSpec`
        or a path) whose heights the footprint is computed at from the RPC; default the RPC's
        height range (a footprint wide enough for any terrain the model covers).

    Returns
    -------
    pystac.Item
        The written item (self href inside the catalog); for a Sentinel-2 product of several
        granules, the first (all are written).

    Raises
    ------
    MetadataError
        No metadata file, or one that is truncated, lacks required groups, or is of an unknown
        Sentinel-2 processing baseline.
    UnknownSensorError
        The metadata names a spacecraft no sensor file describes.
    InputDataError
        Missing band files (named), stray band files, a file that is not a raster or a
        truncated JPEG 2000, a band count, data type, grid or extent that disagrees with the
        sensor or the metadata, a metadata-only Sentinel-2 product; a DIMAP tile listed but
        absent, or not matching its place in the tiling.
    CatalogError
        The item is already catalogued (without ``overwrite``) or the catalog is broken.

    Examples
    --------
    >>> from eo_pipeline import ingest
    >>> ingest("scene_folder", "catalog").id  # doctest: +SKIP
    'LC08_L2SP_001070_20190114_20200830_02_T2'
    """
    from eo_pipeline.catalogs.readers import read_metadata
    from eo_pipeline.catalogs.readers.safe import is_safe
    from eo_pipeline.io import ingest_dimap as _dimap_ingest

    if is_safe(path):
        return _ingest_safe(path, catalog_dir, overwrite, asset_mode or "reference", to_cog)
    docs = _dimap_ingest.dimap_documents(path)
    with tempfile.TemporaryDirectory(prefix="eo-pipeline-ingest-") as workdir:
        if docs:  # DIMAP V2 product or bundle: band VRTs are written into workdir
            meta, specs = _dimap_ingest.dimap_scene(docs, Path(workdir), dem=dem)
            lineage = _dimap_ingest.lineage(docs)
        else:
            meta = read_metadata(path)
            lineage = f"ingested from {Path(meta.source).name}"
        sensor = _sensors.get(meta.sensor)
        if not docs:
            if sensor.name.startswith("landsat"):
                specs = landsat_assets(meta)
                meta, specs = georeference_from_mtl(meta, specs, Path(workdir))
            else:
                raise InputDataError(
                    f"{meta.source}: ingest supports Landsat C2, Sentinel-2 SAFE and DIMAP V2 "
                    f"deliveries; sensor {sensor.name!r} products in this format are not "
                    "supported yet"
                )
        sensor_geometry = bool(docs) and meta.epsg is None
        if not any(s.bands for s in specs) and not sensor_geometry:
            raise InputDataError(f"{meta.source}: no band of sensor {sensor.name} found to ingest")
        for tile in (s for s in specs if "tile" in s.roles):  # whole before checksummed
            _check_complete(Path(tile.path), f"scene {meta.product_id or meta.source} {tile.key}")
        rasters = [s for s in specs if "tile" not in s.roles and s.is_raster()]
        qa = _check_rasters(meta, rasters) if rasters else None
        cover = qa_cover(qa) if qa is not None else None
        props: dict[str, Any] = {"processing:lineage": lineage}
        if docs:
            props["eo_pipeline:format"] = "dimap"
        if sensor_geometry:
            props["eo_pipeline:geometry"] = "sensor"
            props["processing:lineage"] += "; sensor geometry: " + str(
                meta.extra.get("footprint_source") or "footprint from the RPC"
            )
        item = build_item(meta, specs, cover_stats=cover, cover_source="QA_PIXEL", properties=props)
        (written,) = add_items(
            catalog_dir, [item], asset_mode=asset_mode or "link", overwrite=overwrite
        )
    return written


def _ingest_safe(
    path: str | os.PathLike[str],
    catalog_dir: str | os.PathLike[str],
    overwrite: bool,
    asset_mode: AssetMode,
    to_cog: bool,
) -> pystac.Item:
    """Every granule of a Sentinel-2 SAFE product (folder or zip) as one item each."""
    from eo_pipeline.catalogs.readers.sentinel2 import read_granules
    from eo_pipeline.io import ingest_sentinel2 as s2

    granules = read_granules(path)
    with tempfile.TemporaryDirectory(prefix="eo-pipeline-ingest-") as workdir:
        items, modes = [], {}
        for meta in granules:
            specs = s2.sentinel2_assets(meta)  # every check before anything is written
            props: dict[str, Any] = s2.item_properties(meta, specs)
            lineage = f"ingested in place from {Path(meta.source).name}"
            if to_cog:
                folder = Path(workdir) / meta.product_id
                folder.mkdir()
                specs, modes[meta.product_id] = s2.to_cog(specs, folder)
                lineage += " (bands converted from JPEG 2000 to COG)"
            props["processing:lineage"] = lineage + " (eo:cloud_cover: Cloud_Coverage_Assessment)"
            items.append(build_item(meta, specs, properties=props))
        written = add_items(
            catalog_dir, items, asset_mode=asset_mode, overwrite=overwrite, asset_modes=modes
        )
    return written[0]


def real_data_dir() -> Path:
    """``$EO_PIPELINE_REAL_DATA``, else ``<repo>/../shared/real-data`` (may not exist)."""
    env = os.environ.get("EO_PIPELINE_REAL_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "real-data"


def ingest_demo_scene(
    out: str | os.PathLike[str] = "demo-output", *, real_data: str | os.PathLike[str] | None = None
) -> tuple[pystac.Item, ValidationReport]:
    """The first stage of ``make demo``: ingest the real Landsat scene into
    ``<out>/catalog`` (replacing an earlier run's item) and validate the whole catalog
    offline, checksums included.

    Returns
    -------
    tuple[pystac.Item, ValidationReport]
        The written item and the validation report (``print`` it).

    Raises
    ------
    InputDataError
        When the real data is not there (the message says where it looked).

    Examples
    --------
    >>> item, report = ingest_demo_scene("demo-output")  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    valid: 1 Catalog, 1 Collection, 1 Item under .../demo-output/catalog/catalog.json
    """
    from eo_pipeline.catalogs.validation import validate

    scene = Path(real_data) if real_data is not None else real_data_dir() / DEMO_SCENE
    if not scene.is_dir():
        raise InputDataError(
            f"{scene}: the real Landsat scene is not there; set EO_PIPELINE_REAL_DATA to the "
            f"folder holding {DEMO_SCENE}/"
        )
    catalog = Path(out) / "catalog"
    item = ingest(scene, catalog, overwrite=True)
    return item, validate(catalog, check_assets=True)

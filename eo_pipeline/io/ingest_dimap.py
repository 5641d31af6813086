"""DIMAP V2 products (KazEOSat-1, Pléiades, SPOT 6/7) as one STAC item: used by :func:`eo_pipeline.io.ingestion`.

A delivery is one product (``DIM_*.XML`` beside its tiles) or a bundle of products of one
acquisition (``P`` + ``MS``, each in its folder, perhaps with a ``VOL_*.XML`` on top). All of
them become **one** item whose assets are:

- per band, keyed by the band id, a **single-band VRT mosaic of the tiles**
  (``{item id}_{band}.vrt``, role ``data``) carrying the band's calibration;
- per product its document ``DIM_{group}`` (role ``metadata``), which GDAL's DIMAP driver
  opens as the whole multi-band mosaic;
- per image file ``IMG_{group}_R{row}C{col}`` (role ``tile``), the tiles as delivered
  (hard-linked, never rewritten), without ``eo:bands`` so band names stay unambiguous.

Why a VRT per band rather than one asset per tile or the DIMAP document as the band asset:
odc-stac loads one asset per band per item, so tiles as band assets could not be mosaicked;
the document is multi-band and band-interleaved in tiles, and one asset per band keeps the
conventions every other item follows (asset key = band id, per-band
``eo_pipeline:calibration``, ``raster:bands`` nodata). A VRT is a few hundred bytes of XML that
GDAL reads natively with 1:1 windows into the untouched tiles (no pixel is copied), and its
relative source names keep it valid inside the self-contained catalog, where the tiles sit
beside it. The simulator's DIMAP items (:mod:`eo_pipeline.simulation.dimap`) have the same keys.

Sensor-geometry (Primary: ``SENSOR``/``PRIMARY``) products are ingested with their RPC
(``RPC_{group}`` asset, the ``RPC_*.XML`` beside the document) and band VRTs in pixel space
naming it (``eo_pipeline:rpc``); their footprint comes from the RPC over the DEM's (``dem=``)
or the RPC's height range. They are orthorectified by
:func:`eo_pipeline.steps.orthorectification.orthorectify` /
:func:`eo_pipeline.io.ortho_product.orthorectify_item`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from eo_pipeline.atomic import atomic_write
from eo_pipeline.catalogs import sensors as _sensors
from eo_pipeline.catalogs.readers.dimap import read_dimap
from eo_pipeline.catalogs.scene import SceneMetadata
from eo_pipeline.catalogs.stac import AssetSpec
from eo_pipeline.errors import InputDataError
from eo_pipeline.io.vrt import TileSource, mosaic_vrt

__all__ = ["dimap_documents", "dimap_scene", "lineage", "product_group"]

_DIM = re.compile(r"^DIM_.*\.XML$", re.IGNORECASE)
_VOL = re.compile(r"^(VOL_.*|.*_VOL)\.XML$", re.IGNORECASE)
"""Volume files: ``VOL_PHR.XML``, ``VOL_PNEO.XML`` (Pléiades, Neo), ``SPOT_VOL.XML`` (SPOT 6/7)."""
_SAME_ACQUISITION_S = 10.0
"""Products of one bundle must have centre times this close (seconds)."""
_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32"}
_GDAL_TYPES |= {"int32": "Int32", "float32": "Float32", "float64": "Float64"}


def dimap_documents(path: str | os.PathLike[str]) -> list[Path]:
    """The ``DIM_*.XML`` documents of a DIMAP delivery (empty when ``path`` is not one).

    ``path`` is a document, a volume file (``VOL_*.XML``; SPOT: ``SPOT_VOL.XML``), or a folder
    holding documents in it or up to two levels below (a bundle's ``IMG_*_P_001/``,
    ``IMG_*_MS_002/``).

    Examples
    --------
    >>> dimap_documents("/no/such/folder")
    []
    """
    p = Path(path)
    if p.is_file():
        if _DIM.match(p.name):
            return [p]
        if not _VOL.match(p.name):
            return []
        listed = _volume_components(p)
        if listed:
            return listed
        p = p.parent
    if not p.is_dir():
        return []
    found = {q for pattern in ("*", "*/*", "*/*/*") for q in p.glob(pattern) if _DIM.match(q.name)}
    return sorted(q for q in found if q.is_file())


def _volume_components(volume: Path) -> list[Path]:
    """The product documents a ``VOL_*.XML`` lists (``COMPONENT_PATH href``); all must exist."""
    from eo_pipeline.catalogs.readers._common import local_name, parse_xml

    root = parse_xml(volume)
    hrefs = [c.get("href", "") for c in root.iter() if local_name(c.tag) == "COMPONENT_PATH"]
    docs = [volume.parent / h for h in hrefs if _DIM.match(Path(h).name)]
    absent = [str(d.relative_to(volume.parent)) for d in docs if not d.is_file()]
    if absent:
        raise InputDataError(
            f"{volume}: Dataset_Components.Component.COMPONENT_PATH lists {', '.join(absent)}, "
            "absent from the delivery; copy the whole bundle"
        )
    return docs


def product_group(meta: SceneMetadata) -> str:
    """Short name of a product for asset keys: ``P`` (panchromatic), ``MS``, ``PMS``...

    >>> import datetime as dt
    >>> from eo_pipeline.catalogs.scene import SceneMetadata
    >>> m = SceneMetadata("kazeosat1", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), 30, 150, 1,
    ...                   {}, (0, 0, 1, 1), {}, extra={"spectral_processing": "PAN"})
    >>> product_group(m)
    'P'
    """
    sp = str(meta.extra.get("spectral_processing") or "").upper()
    if sp in ("P", "PAN") or (not sp and set(meta.bands) == {"P"}):
        return "P"
    return re.sub(r"[^A-Z0-9]+", "_", sp) or "MS"


def _common_id(metas: Sequence[SceneMetadata], folder: Path) -> str:
    names = [m.product_id for m in metas]
    # a character-wise common prefix of product names (not paths)
    prefix = os.path.commonprefix(names) if len(names) > 1 else names[0]  # noqa: RUF071
    prefix = prefix.rstrip(" _-") if len(names) > 1 else prefix
    return re.sub(r"[^A-Za-z0-9._-]+", "_", prefix or folder.name).strip("_")


def _merge(docs: Sequence[Path], metas: list[SceneMetadata]) -> SceneMetadata:
    """One scene from the products of a bundle (the one with most bands gives scene facts)."""
    first = metas[0]
    for doc, m in zip(docs[1:], metas[1:], strict=True):
        if m.sensor != first.sensor:
            raise InputDataError(
                f"{doc}: sensor {m.sensor} but {docs[0].name} is {first.sensor}; the folder "
                "mixes deliveries, ingest one product or bundle at a time"
            )
        if abs((m.datetime - first.datetime).total_seconds()) > _SAME_ACQUISITION_S:
            raise InputDataError(
                f"{doc}: acquired {m.datetime:%Y-%m-%dT%H:%M:%S}Z but {docs[0].name} at "
                f"{first.datetime:%Y-%m-%dT%H:%M:%S}Z; a bundle holds one acquisition, ingest "
                "the products separately"
            )
    groups = [product_group(m) for m in metas]
    if len(set(groups)) != len(groups):
        raise InputDataError(
            f"{docs[0].parent}: several products of spectral processing "
            f"{', '.join(groups)}; ingest one product or bundle at a time"
        )
    bands: dict[str, Any] = {}
    for doc, m in zip(docs, metas, strict=True):
        clash = set(bands) & set(m.bands)
        if clash:
            raise InputDataError(f"{doc}: band(s) {', '.join(sorted(clash))} in two products")
        bands |= m.bands
    main = max(range(len(metas)), key=lambda i: len(metas[i].bands))
    base = metas[main]
    return replace(
        base,
        bands=bands,
        product_id=_common_id(metas, docs[0].parent),
        bit_depth=max((m.bit_depth or 0) for m in metas) or None,
        files={
            f"{g}_{k}": str(Path(os.path.relpath(doc.parent / v, docs[main].parent)))
            for g, doc, m in zip(groups, docs, metas, strict=True)
            for k, v in m.files.items()
        },
        source=str(docs[main]),
        extra={
            "format": "dimap",
            "profile": base.extra.get("profile"),
            "products": {g: dict(m.extra) for g, m in zip(groups, metas, strict=True)},
            "documents": {g: str(d) for g, d in zip(groups, docs, strict=True)},
            **(
                {"footprint_source": base.extra["footprint_source"]}
                if "footprint_source" in base.extra
                else {}
            ),
        },
    )


def _open_tile(path: Path, doc: Path, tile: dict[str, Any]) -> dict[str, Any]:
    import rasterio
    from rasterio.errors import RasterioIOError

    where = (
        f"{doc}: Raster_Data.Data_Access.Data_Files.Data_File tile_R={tile['row']} "
        f"tile_C={tile['col']} DATA_FILE_PATH href={tile['file']!r}"
    )
    if not path.is_file():
        raise InputDataError(
            f"{where}: the tile {path} is absent; the delivery is incomplete, copy every "
            "IMG_* file the document lists beside it"
        )
    try:
        with rasterio.open(path) as ds:
            return {
                "shape": (ds.height, ds.width),
                "count": ds.count,
                "dtype": ds.dtypes[0],
                "crs": ds.crs,
                "transform": ds.transform,
                "where": where,
            }
    except RasterioIOError as err:
        raise InputDataError(f"{where}: {path} is not a readable image ({err})") from None


def _product_assets(
    doc: Path, meta: SceneMetadata, group: str, item_id: str, workdir: Path
) -> list[AssetSpec]:
    from rasterio.crs import CRS

    sensor = _sensors.get(meta.sensor)
    ex = meta.extra
    if meta.epsg is None or not ex.get("geoposition"):
        return _sensor_assets(doc, meta, group, item_id, workdir)
    rows, cols = int(ex["rows"]), int(ex["cols"])
    tr, tc = (int(v) for v in ex["tile_size"])
    if any(ex.get("tile_overlap", (0, 0))):
        raise InputDataError(
            f"{doc}: Regular_Tiling OVERLAP_ROW/OVERLAP_COL = {tuple(ex['tile_overlap'])}: "
            "overlapping tiles are not supported; ask for a product tiled without overlap"
        )
    multipart = any(t["part"] > 1 for t in ex["tiles"])
    expected = {(r, c) for r in range(1, -(-rows // tr) + 1) for c in range(1, -(-cols // tc) + 1)}
    sources: dict[str, list[TileSource]] = {b: [] for b in ex["band_order"]}
    specs: list[AssetSpec] = []
    origin = None
    for tile in ex["tiles"]:
        r, c = tile["row"], tile["col"]
        path = doc.parent / tile["file"]
        info = _open_tile(path, doc, tile)
        y0, x0 = (r - 1) * tr, (c - 1) * tc
        want = (min(tr, rows - y0), min(tc, cols - x0))
        problem = None
        if (r, c) not in expected:
            problem = f"lies outside the {rows} x {cols} raster tiled by {tr} x {tc}"
        elif info["shape"] != want:
            problem = (
                f"is {info['shape'][0]} x {info['shape'][1]} pixels, expected {want[0]} x {want[1]}"
            )
        elif info["count"] != len(tile["bands"]):
            problem = f"has {info['count']} band(s), the document says {len(tile['bands'])}"
        elif info["dtype"] != sensor.band(tile["bands"][0]).dtype:
            problem = f"is {info['dtype']}, sensor {sensor.name} bands are {sensor.band(tile['bands'][0]).dtype}"
        elif info["crs"] is not None and info["crs"].to_epsg() not in (None, meta.epsg):
            problem = f"is in {info['crs']}, the document says EPSG:{meta.epsg}"
        if problem is not None:
            raise InputDataError(
                f"{info['where']}: {path.name} {problem}; the tile does not belong"
            )
        t = info["transform"]
        if info["crs"] is not None and not t.is_identity:
            corner = (t.c - x0 * t.a, t.f - y0 * t.e)
            if origin is None:
                origin = (corner, t.a, t.e)
            elif max(abs(corner[0] - origin[0][0]), abs(corner[1] - origin[0][1])) > abs(t.a) / 2:
                raise InputDataError(
                    f"{info['where']}: {path.name} is not georeferenced at its tile position "
                    "(tiles swapped or of another product)"
                )
        for i, b in enumerate(tile["bands"]):
            sources[b].append(TileSource(path.name, i + 1, x0, y0, want[1], want[0]))
        key = f"IMG_{group}_R{r}C{c}" + (f"_{tile['part']}" if multipart else "")
        specs.append(
            AssetSpec(
                key,
                path,
                roles=("tile",),
                title=f"DIMAP image tile R{r}C{c} of the {group} product "
                f"(bands {', '.join(tile['bands'])})",
            )
        )
    listed = {(t["row"], t["col"]) for t in ex["tiles"]}
    if expected - listed:
        gaps = ", ".join(f"R{r}C{c}" for r, c in sorted(expected - listed))
        raise InputDataError(
            f"{doc}: Raster_Data.Data_Access.Data_Files lists no Data_File for tile(s) {gaps} "
            f"of the {rows} x {cols} raster tiled by {tr} x {tc}; the document is incomplete"
        )
    geo = ex["geoposition"]
    if origin is not None:
        transform = (origin[0][0], origin[1], 0.0, origin[0][1], 0.0, origin[2])
    else:  # tiles without georeferencing: the document's insertion point (GDAL's reading)
        transform = (geo["ulxmap"], geo["xdim"], 0.0, geo["ulymap"], 0.0, -geo["ydim"])
    crs_wkt = CRS.from_epsg(meta.epsg).to_wkt()
    for b, srcs in sources.items():
        cal = meta.bands[b]
        band = sensor.band(b)
        vrt = workdir / f"{item_id}_{b}.vrt"
        atomic_write(
            vrt,
            mosaic_vrt(
                rows=rows, cols=cols, crs_wkt=crs_wkt, transform=transform,
                dtype=_GDAL_TYPES.get(band.dtype, band.dtype),
                nodata=cal.nodata if cal.nodata is not None else band.nodata,
                description=b, sources=srcs,
            ),
            encoding="utf-8",
        )  # fmt: skip
        for s in srcs:  # the VRT is read from workdir before the catalog holds the tiles
            link = workdir / s.file
            if not link.exists():
                link.symlink_to((doc.parent / s.file).resolve())
        specs.append(
            AssetSpec(
                b, vrt, bands=(b,), scale=cal.reflectance_mult, offset=cal.reflectance_add,
                description=f"VRT mosaic of band {b} over the tiles of {doc.name}",
            )
        )  # fmt: skip
    specs.append(
        AssetSpec(
            f"DIM_{group}",
            doc,
            roles=("metadata",),
            media_type="application/xml",
            title=f"DIMAP V2 document of the {group} product",
        )
    )
    return specs


def _sensor_assets(
    doc: Path, meta: SceneMetadata, group: str, item_id: str, workdir: Path
) -> list[AssetSpec]:
    """Assets of a sensor-geometry (Primary) product: RPC, document, band VRTs in pixel space.

    A metadata-only delivery (no listed tile present) gives the RPC and the document alone
    (with a :class:`~eo_pipeline.errors.MetadataWarning`); some tiles present and others not
    is an incomplete delivery (:class:`InputDataError`).
    """
    import warnings

    from eo_pipeline.catalogs.rpc import find_rpc_file, read_rpc
    from eo_pipeline.errors import MetadataWarning, OrthorectificationError

    ex = meta.extra
    rpc_file = find_rpc_file(doc)
    if rpc_file is None:
        raise OrthorectificationError(
            f"{doc}: a {ex.get('profile')} product in sensor geometry but no RPC_*.XML beside "
            "it; the RPC model is needed to place it on the ground: copy the delivery's "
            "RPC_*.XML next to the DIM_*.XML"
        )
    read_rpc(rpc_file)  # missing coefficients fail here, before anything is written
    rpc_key = f"RPC_{group}"
    specs = [
        AssetSpec(
            rpc_key, rpc_file, roles=("metadata", "rpc"), media_type="application/xml",
            title=f"RPC model (DIMAP V2, 1-based pixels) of the {group} product",
        ),
        AssetSpec(
            f"DIM_{group}", doc, roles=("metadata",), media_type="application/xml",
            title=f"DIMAP V2 document of the {group} product (sensor geometry)",
        ),
    ]  # fmt: skip
    present = [t for t in ex["tiles"] if (doc.parent / t["file"]).is_file()]
    if not present:
        warnings.warn(
            f"{doc}: none of the {len(ex['tiles'])} image tiles it lists is present; the "
            "item holds the metadata (document, RPC) only",
            MetadataWarning,
            stacklevel=3,
        )
        return specs
    rows, cols = int(ex["rows"]), int(ex["cols"])
    tr, tc = (int(v) for v in ex["tile_size"])
    sensor = _sensors.get(meta.sensor)
    sources: dict[str, list[TileSource]] = {b: [] for b in ex["band_order"]}
    for tile in ex["tiles"]:
        path = doc.parent / tile["file"]
        info = _open_tile(path, doc, tile)
        y0, x0 = (tile["row"] - 1) * tr, (tile["col"] - 1) * tc
        want = (min(tr, rows - y0), min(tc, cols - x0))
        if info["shape"] != want or info["count"] != len(tile["bands"]):
            raise InputDataError(
                f"{info['where']}: {path.name} is {info['shape']} with {info['count']} band(s), "
                f"expected {want} with {len(tile['bands'])}; the tile does not belong"
            )
        for i, b in enumerate(tile["bands"]):
            sources[b].append(TileSource(path.name, i + 1, x0, y0, want[1], want[0]))
        specs.append(
            AssetSpec(
                f"IMG_{group}_R{tile['row']}C{tile['col']}", path, roles=("tile",), raster=False
            )
        )
    for b, srcs in sources.items():
        cal, band = meta.bands[b], sensor.band(b)
        vrt = workdir / f"{item_id}_{b}.vrt"
        atomic_write(
            vrt,
            mosaic_vrt(
                rows=rows, cols=cols, crs_wkt="", transform=(0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
                dtype=_GDAL_TYPES.get(band.dtype, band.dtype),
                nodata=cal.nodata if cal.nodata is not None else band.nodata,
                description=b, sources=srcs,
            ),
            encoding="utf-8",
        )  # fmt: skip
        for src in srcs:
            link = workdir / src.file
            if not link.exists():
                link.symlink_to((doc.parent / src.file).resolve())
        specs.append(
            AssetSpec(
                b, vrt, bands=(b,), raster=False, media_type="application/xml",
                description=f"VRT mosaic of band {b} in sensor geometry (pixel space; "
                f"placed on the ground by {rpc_key})",
                extra_fields={"eo_pipeline:rpc": rpc_key, "eo_pipeline:geometry": "sensor"},
            )
        )  # fmt: skip
    return specs


def _rpc_footprint(doc: Path, meta: SceneMetadata, dem: Any) -> SceneMetadata:
    """A sensor-geometry product's footprint from its RPC over the DEM's (or RPC's) heights."""
    if meta.epsg is not None:
        return meta
    from eo_pipeline.catalogs.geometry import footprint_from_corners
    from eo_pipeline.catalogs.rpc import find_rpc_file, read_rpc

    rpc_file = find_rpc_file(doc)
    if rpc_file is None:
        return meta  # refused with the reason by _sensor_assets
    rpc = read_rpc(rpc_file)
    rows, cols = int(meta.extra["rows"]), int(meta.extra["cols"])
    heights = (rpc.height_off - rpc.height_scale, rpc.height_off + rpc.height_scale)
    source = f"the RPC's height range {heights[0]:.0f}..{heights[1]:.0f} m"
    if dem is not None:
        import tempfile

        from eo_pipeline.io.dem import DEMSpec, prepare_dem

        ring = rpc.footprint(rows, cols, heights)
        lons, lats = [p[0] for p in ring], [p[1] for p in ring]
        with tempfile.TemporaryDirectory(prefix="eo-pipeline-dem-") as tmp:
            spec = dem if isinstance(dem, DEMSpec) else DEMSpec(dem)
            prepared = prepare_dem(
                spec, (min(lons), min(lats), max(lons), max(lats)), Path(tmp) / "dem.tif"
            )
        heights = (prepared.min_height, prepared.max_height)
        source = f"the DEM's heights {heights[0]:.0f}..{heights[1]:.0f} m ({prepared.lineage})"
    fp = footprint_from_corners(rpc.footprint(rows, cols, heights), where=str(rpc_file))
    extra = dict(meta.extra) | {"footprint_source": f"{rpc_file.name} over {source}"}
    return replace(meta, footprint=fp.geometry, bbox=fp.bbox, extra=extra)


def dimap_scene(
    docs: Sequence[Path], workdir: Path, *, dem: Any = None
) -> tuple[SceneMetadata, list[AssetSpec]]:
    """Read a DIMAP delivery, check its tiles and write one VRT per band into ``workdir``.

    Returns the scene's metadata (one :class:`SceneMetadata` for the bundle) and the asset
    specs (band VRTs, documents, tiles); ``workdir`` must live until the item is stored.

    Raises
    ------
    MetadataError, UnknownSensorError
        From :func:`eo_pipeline.catalogs.readers.dimap.read_dimap`.
    InputDataError
        A listed tile absent, unreadable, of the wrong size, band count, data type or CRS,
        or placed elsewhere; a tile the document does not list; a sensor-geometry product;
        products of different sensors or acquisitions in one folder.

    Examples
    --------
    >>> meta, specs = dimap_scene(dimap_documents("delivery/"), Path("tmp"))  # doctest: +SKIP
    """
    metas = [_rpc_footprint(d, read_dimap(d), dem) for d in docs]
    scene = _merge(docs, metas) if len(metas) > 1 else replace(
        metas[0], product_id=_common_id(metas, docs[0].parent)
    )  # fmt: skip
    specs: list[AssetSpec] = []
    for doc, m in zip(docs, metas, strict=True):
        specs += _product_assets(doc, m, product_group(m), scene.product_id, workdir)
    return scene, specs


def lineage(docs: Sequence[Path]) -> str:
    """``processing:lineage`` text of an ingested DIMAP delivery."""
    return (
        f"ingested from DIMAP V2 {', '.join(d.name for d in docs)}; band assets are VRT "
        "mosaics of the delivered tiles; calibration numbers from the documents (Band_Radiance "
        "L = DN / GAIN + BIAS, or Band_Reflectance for REFLECTANCE products)"
    )

"""STAC 1.1 items and collections for scenes, built with pystac.

:func:`build_item` turns a :class:`~eo_pipeline.catalogs.scene.SceneMetadata` and a list of
:class:`AssetSpec` (local files) into a :class:`pystac.Item` following
``docs/conventions.md`` ("STAC items"). Everything the files themselves know is read from
them: ``proj:*`` (code, shape, transform, bbox) and data types with rasterio, ``file:size``
and ``file:checksum`` (multihash sha2-256, streamed). Everything the sensor knows comes from
its sensor file: eo band metadata (common name, centre wavelength, FWHM, solar
illumination), nodata. The scene's calibration numbers go into each single-band asset's
``eo_pipeline:calibration``.

The item's asset hrefs are the absolute paths of the local files; put the item into a
self-contained catalog with :func:`eo_pipeline.catalogs.store.add_items`, which places
the files beside the item JSON and makes every href relative.

Extensions (schema URIs are the ones pystac 1.15 writes; the schemas are in
``shared/stac-schemas``): eo v1.1.0, raster v1.1.0, projection v2.0.0, view v1.0.0,
sat v1.0.0, processing v1.2.0, file v2.1.0.

Examples
--------
>>> from eo_pipeline.catalogs.stac import AssetSpec, collection_id_for
>>> AssetSpec("B4", "/data/scene_B4.TIF", bands=("B4",)).roles
('data',)
>>> collection_id_for("landsat8", "L2SP")
'landsat8-l2sp'
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions import eo as _eo
from pystac.extensions import file as _file
from pystac.extensions import projection as _proj
from pystac.extensions import raster as _raster
from pystac.extensions import sat as _sat
from pystac.extensions import view as _view

from eo_pipeline.catalogs import sensors as _sensors
from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.catalogs.scene import SceneMetadata
from eo_pipeline.errors import BandError, CatalogError, InputDataError

__all__ = [
    "EXTENSION_URIS",
    "PROJECTION_V12_URI",
    "AssetSpec",
    "build_collection",
    "build_item",
    "cloud_cover_method",
    "collection_id_for",
    "eo_common_name",
    "merge_collection",
    "with_proj_epsg",
]

PROCESSING_SCHEMA_URI = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
EXTENSION_URIS: dict[str, str] = {
    "eo": _eo.SCHEMA_URI,
    "raster": _raster.SCHEMA_URI,
    "projection": _proj.SCHEMA_URI,
    "view": _view.SCHEMA_URI,
    "sat": _sat.SCHEMA_URI,
    "processing": PROCESSING_SCHEMA_URI,
    "file": _file.SCHEMA_URI,
}
"""Extension name -> the schema URI our items declare."""

RASTER_SUFFIXES = frozenset({".tif", ".tiff", ".jp2", ".img", ".vrt"})
_MEDIA_BY_SUFFIX = {
    ".json": pystac.MediaType.JSON,
    ".xml": pystac.MediaType.XML,
    ".txt": pystac.MediaType.TEXT,
    ".jp2": pystac.MediaType.JPEG2000,
    ".png": pystac.MediaType.PNG,
    ".jpg": pystac.MediaType.JPEG,
    ".jpeg": pystac.MediaType.JPEG,
}


@dataclass(frozen=True)
class AssetSpec:
    """One local file to become an asset of an item (see :func:`build_item`)."""

    key: str
    """Asset key: the band id for a single-band data asset (``B4``), else a name
    (``QA_PIXEL``, ``MTL_txt``, ``truth_reflectance``)."""
    path: str | os.PathLike[str]
    """The local file. Rasters are opened with rasterio; every file is checksummed."""
    roles: tuple[str, ...] = ("data",)
    """STAC roles (``data``, ``cloud``, ``saturation``, ``metadata``, ``truth``...)."""
    title: str | None = None
    """Human title; defaults to the band's id and common name for band assets."""
    bands: tuple[str, ...] = ()
    """Sensor band ids the file holds, in file band order (empty for QA and metadata)."""
    media_type: str | None = None
    """Media type; detected from the file when ``None`` (COG, GeoTIFF, JP2, JSON, XML, text)."""
    raster: bool | None = None
    """Whether the file is a raster; from the suffix (.tif, .tiff, .jp2...) when ``None``."""
    scale: float | None = None
    """``raster:bands[].scale`` for every band of the file (e.g. L2 SR 2.75e-05)."""
    offset: float | None = None
    """``raster:bands[].offset`` for every band of the file (e.g. L2 SR -0.2)."""
    unit: str | None = None
    """``raster:bands[].unit``."""
    data_type: str | None = None
    """Override of the data type read from the file (rarely needed)."""
    nodata: float | None = None
    """Override of nodata; default: the file's nodata, else the sensor band's for data assets."""
    description: str | None = None
    """Asset description."""
    extra_fields: Mapping[str, Any] = field(default_factory=dict)
    """More asset fields, written as they are (e.g. ``{"eo_pipeline:classes": {...}}``)."""

    def is_raster(self) -> bool:
        """Whether :func:`build_item` reads this file with rasterio."""
        if self.raster is not None:
            return self.raster
        return Path(self.path).suffix.lower() in RASTER_SUFFIXES


def collection_id_for(sensor: str, level: str | None) -> str:
    """The collection id convention: ``"{sensor}-{level}"`` lower-case (level ``l1`` when unknown).

    >>> collection_id_for("sentinel2a", "L1C")
    'sentinel2a-l1c'
    """
    return f"{sensor}-{(level or 'L1')}".lower()


def _stac_data_type(dtype: str) -> str:
    return {"complex64": "cfloat32", "complex128": "cfloat64"}.get(dtype, dtype)


def _media_type(spec: AssetSpec, tags: Mapping[str, str] | None) -> str | None:
    if spec.media_type is not None:
        return spec.media_type
    suffix = Path(spec.path).suffix.lower()
    if suffix in {".tif", ".tiff"}:
        # GDAL reports LAYOUT=COG for files laid out by its COG driver.
        is_cog = tags is not None and tags.get("LAYOUT", "").upper() == "COG"
        return pystac.MediaType.COG if is_cog else pystac.MediaType.GEOTIFF
    return _MEDIA_BY_SUFFIX.get(suffix)


def _read_raster(spec: AssetSpec, where: str) -> dict[str, Any]:
    """Grid, data types, nodata and layout of a raster file (no pixels are read)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(spec.path) as ds:
            if ds.crs is None:
                raise InputDataError(
                    f"{where}: {spec.path} has no CRS; a georeferenced raster is required"
                )
            t = ds.transform
            return {
                "code": _crs_code(ds.crs),
                "shape": [ds.height, ds.width],
                "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
                "bbox": list(ds.bounds),
                "dtypes": list(ds.dtypes),
                "nodata": list(ds.nodatavals),
                "count": ds.count,
                "tags": ds.tags(ns="IMAGE_STRUCTURE"),
                "res": ds.res,
            }
    except RasterioIOError as err:
        raise InputDataError(
            f"{where}: {spec.path} is not a readable raster ({err}); "
            "check that the file is complete and really an image"
        ) from None


def _crs_code(crs: Any) -> str | None:
    epsg = crs.to_epsg()
    if epsg is not None:
        return f"EPSG:{epsg}"
    auth = crs.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else None


# eo v1.1.0 knows only these common names; STAC 1.1's finer ones map to their family.
_EO_V11_NAMES = frozenset(
    {"coastal", "blue", "green", "red", "rededge", "yellow", "pan", "nir", "nir08", "nir09"}
    | {"cirrus", "swir16", "swir22", "lwir", "lwir11", "lwir12"}
)
_EO_V11_FAMILY = {"green05": "green", "rededge071": "rededge", "rededge075": "rededge"}


def eo_common_name(name: str | None) -> str | None:
    """The eo v1.1.0 common name of a STAC 1.1 one: finer names become their family.

    >>> eo_common_name("rededge071"), eo_common_name("nir08"), eo_common_name("mystery")
    ('rededge', 'nir08', None)
    """
    if name and name not in _EO_V11_NAMES:
        return _EO_V11_FAMILY.get(name, "rededge" if name.startswith("rededge") else None)
    return name or None


def _eo_band(band: _sensors.Band) -> dict[str, Any]:
    """``eo:bands`` entry (eo v1.1.0): finer STAC 1.1 names (``rededge071``) become their
    family (``rededge``); the sensor file keeps the exact name for :func:`eo_pipeline.io.loading`."""
    out: dict[str, Any] = {"name": band.id}
    name = eo_common_name(band.common_name)
    if name:
        out["common_name"] = name
    out["center_wavelength"] = band.center_wavelength
    out["full_width_half_max"] = band.full_width_half_max
    if band.esun is not None:
        out["solar_illumination"] = band.esun
    return out


def _clean_number(v: float) -> float | int | str:
    """JSON-safe nodata: NaN/inf become the strings STAC raster allows."""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v.is_integer():
            return int(v)
    return v


def _raster_bands(
    spec: AssetSpec, grid: Mapping[str, Any], sensor: _sensors.Sensor, where: str
) -> list[dict[str, Any]]:
    out = []
    for i in range(grid["count"]):
        band = sensor.band(spec.bands[i]) if spec.bands else None
        rb: dict[str, Any] = {"data_type": spec.data_type or _stac_data_type(grid["dtypes"][i])}
        nodata = spec.nodata if spec.nodata is not None else grid["nodata"][i]
        if nodata is None and band is not None and "data" in spec.roles:
            nodata = band.nodata
        if nodata is not None:
            rb["nodata"] = _clean_number(float(nodata))
        if spec.scale is not None:
            rb["scale"] = spec.scale
        if spec.offset is not None:
            rb["offset"] = spec.offset
        if spec.unit is not None:
            rb["unit"] = spec.unit
        rb["spatial_resolution"] = float(max(abs(grid["res"][0]), abs(grid["res"][1])))
        out.append(rb)
    return out


def _build_asset(
    spec: AssetSpec, meta: SceneMetadata, sensor: _sensors.Sensor, item_id: str, checksum: bool
) -> tuple[pystac.Asset, str | None]:
    from eo_pipeline.catalogs.archive import member_size, split_vsizip, vsi_exists

    where = f"item {item_id!r} asset {spec.key!r}"
    path = Path(spec.path)
    in_zip = split_vsizip(str(spec.path)) is not None  # read in place from an archive
    if not (vsi_exists(str(spec.path)) if in_zip else path.is_file()):
        raise InputDataError(f"{where}: file {spec.path} does not exist")
    for band_id in spec.bands:
        sensor.band(band_id)  # BandError names the sensor's bands
        if band_id not in {b.id for b in sensor.bands}:
            raise BandError(
                f"{where}: {band_id!r} is a common name, give the band id of sensor "
                f"{sensor.name!r} ({', '.join(sensor.band_ids)})"
            )
    fields: dict[str, Any] = {}
    grid: dict[str, Any] | None = None
    if spec.is_raster():
        grid = _read_raster(spec, where)
        if spec.bands and len(spec.bands) != grid["count"]:
            raise InputDataError(
                f"{where}: {path.name} has {grid['count']} band(s) but the asset declares "
                f"{len(spec.bands)} ({', '.join(spec.bands)}); fix AssetSpec.bands or the file"
            )
        if spec.bands:
            fields["eo:bands"] = [_eo_band(sensor.band(b)) for b in spec.bands]
        fields["raster:bands"] = _raster_bands(spec, grid, sensor, where)
        fields["proj:code"] = grid["code"]
        fields["proj:shape"] = grid["shape"]
        fields["proj:transform"] = grid["transform"]
        fields["proj:bbox"] = grid["bbox"]
        if len(spec.bands) == 1 and spec.bands[0] in meta.bands:
            fields["eo_pipeline:calibration"] = meta.bands[spec.bands[0]].as_attrs()
    fields["file:size"] = member_size(str(spec.path)) if in_zip else path.stat().st_size
    if checksum:
        fields["file:checksum"] = file_checksum(str(spec.path) if in_zip else path)
    fields.update(spec.extra_fields)
    title = spec.title
    if title is None and len(spec.bands) == 1:
        b = sensor.band(spec.bands[0])
        title = f"{b.id} ({b.common_name})" if b.common_name else b.id
    asset = pystac.Asset(
        href=str(spec.path) if in_zip else str(path.resolve()),
        title=title,
        description=spec.description,
        media_type=_media_type(spec, grid["tags"] if grid else None),
        roles=list(spec.roles),
        extra_fields=fields,
    )
    return asset, grid["code"] if grid else None


def _orbit_state(meta: SceneMetadata, sensor: _sensors.Sensor) -> str | None:
    state = meta.extra.get("orbit_state")
    if isinstance(state, str) and state.lower() in {"ascending", "descending"}:
        return state.lower()
    local = sensor.orbit.local_time
    # A sun-synchronous orbit whose descending node is in daylight images by day descending.
    if sensor.orbit.sun_synchronous and local and meta.sun_elevation > 0:
        hour = int(local.split(":")[0])
        if 6 <= hour <= 18:
            return "descending"
    return None


def cloud_cover_method(meta: SceneMetadata, sensor_name: str) -> str:
    """How the product's own ``eo:cloud_cover`` figure was made, in its provider's words."""
    if meta.extra.get("simulated"):
        return "simulator truth: percent of valid pixels of class cloud or thin cloud"
    if meta.extra.get("cloud_cover_method"):
        return str(meta.extra["cloud_cover_method"])
    if sensor_name.startswith("landsat"):
        return "provider: USGS MTL IMAGE_ATTRIBUTES CLOUD_COVER (CFMask cloud percent of the scene)"
    if sensor_name.startswith("sentinel2"):
        return "provider: ESA product metadata Cloud_Coverage_Assessment (percent)"
    if meta.extra.get("dimap") or Path(meta.source).name.upper().startswith(("DIM_", "VOL_")):
        return "provider: Airbus DIMAP V2 Dataset_Content/CLOUD_COVERAGE (percent)"
    return f"provider: {Path(meta.source).name or 'product metadata'}"


def _cloud_properties(
    meta: SceneMetadata,
    sensor: _sensors.Sensor,
    ours: float | None,
    stats: Mapping[str, float] | None,
    source: str | None,
) -> dict[str, Any]:
    """``eo:cloud_cover`` with the provider's meaning, our own figures in our own fields."""
    props: dict[str, Any] = {}
    if meta.cloud_cover is not None:  # the provider's figure exactly as printed
        cover = float(meta.cloud_cover)
        props["eo:cloud_cover"] = round(cover, 4) if meta.extra.get("simulated") else cover
        props["eo_pipeline:cloud_cover_method"] = cloud_cover_method(meta, sensor.name)
    elif ours is not None:
        props["eo:cloud_cover"] = round(float(ours), 4)
        props["eo_pipeline:cloud_cover_method"] = f"eo-pipeline: {source or 'computed'}"
    for name, value in (stats or {}).items():
        props[f"eo_pipeline:{name}_percent"] = round(float(value), 4)
    if stats:
        props["eo_pipeline:cover_source"] = source or "computed"
    return props


def build_item(
    meta: SceneMetadata,
    assets: Sequence[AssetSpec],
    *,
    collection_id: str | None = None,
    item_id: str | None = None,
    cloud_cover: float | None = None,
    cover_stats: Mapping[str, float] | None = None,
    cover_source: str | None = None,
    properties: Mapping[str, Any] | None = None,
    checksum: bool = True,
) -> pystac.Item:
    """A STAC 1.1 item for one scene, its asset metadata read from the local files.

    Parameters
    ----------
    meta
        The scene's metadata (from a reader or the simulator); ``meta.sensor`` must name a
        sensor file.
    assets
        The files. Single-band data assets should be keyed by their band id.
    collection_id
        Default :func:`collection_id_for` ``(meta.sensor, meta.processing_level)``.
    item_id
        Default ``meta.product_id``, else ``{sensor}_{YYYYMMDDTHHMMSS}``.
    cloud_cover
        Our own cloud percentage, used for ``eo:cloud_cover`` only when the product states
        none (``meta.cloud_cover`` is ``None``): ``eo:cloud_cover`` keeps the provider's
        meaning (USGS MTL ``CLOUD_COVER``, ESA ``Cloud_Coverage_Assessment``, DIMAP
        ``CLOUD_COVERAGE``), and ``eo_pipeline:cloud_cover_method`` says where it came from.
    cover_stats
        Our own per-class percentages (``cloud``, ``shadow``, ``cirrus``, ``clear``...), stored
        as ``eo_pipeline:{class}_percent`` with ``eo_pipeline:cover_source`` = ``cover_source``.
    properties
        More item properties, set last (they win), e.g. ``processing:lineage``.
    checksum
        Compute ``file:checksum`` (reads every file once); ``file:size`` is always set.

    Returns
    -------
    pystac.Item
        No links; asset hrefs are absolute local paths. Write it with
        :func:`eo_pipeline.catalogs.store.add_items`.

    Raises
    ------
    UnknownSensorError, BandError, InputDataError, CatalogError
        Unknown sensor; an asset band the sensor lacks; a missing file, a file that is not a
        raster, or a band count that disagrees with ``AssetSpec.bands``; duplicate asset keys.

    Examples
    --------
    >>> from eo_pipeline.catalogs.stac import build_item, AssetSpec
    >>> item = build_item(meta, [AssetSpec("B4", "scene_B4.TIF", bands=("B4",))])  # doctest: +SKIP
    >>> item.assets["B4"].extra_fields["raster:bands"][0]["data_type"]  # doctest: +SKIP
    'uint16'
    """
    from eo_pipeline._version import __version__

    sensor = _sensors.get(meta.sensor)
    item_id = item_id or meta.product_id or f"{sensor.name}_{meta.datetime:%Y%m%dT%H%M%S}"
    collection_id = collection_id or collection_id_for(sensor.name, meta.processing_level)
    keys = [a.key for a in assets]
    if len(set(keys)) != len(keys):
        raise CatalogError(f"item {item_id!r}: duplicate asset keys in {keys}")
    if meta.datetime.tzinfo is None:
        raise CatalogError(f"item {item_id!r}: SceneMetadata.datetime must be timezone-aware UTC")

    built: dict[str, pystac.Asset] = {}
    codes: set[str | None] = set()
    for spec in assets:
        asset, code = _build_asset(spec, meta, sensor, item_id, checksum)
        built[spec.key] = asset
        if code is not None or spec.is_raster():
            codes.add(code)

    band_ids = {b for spec in assets if "data" in spec.roles for b in spec.bands}
    gsds = [sensor.band(b).gsd for b in band_ids] or [b.gsd for b in sensor.bands]
    props: dict[str, Any] = {
        "platform": sensor.platform,
        "instruments": [sensor.instrument],
        "gsd": min(gsds),
        "view:sun_elevation": float(meta.sun_elevation),
        "view:sun_azimuth": float(meta.sun_azimuth) % 360.0,
        "processing:level": meta.processing_level or "L1",
        "processing:software": {"eo-pipeline": __version__},
        "eo_pipeline:sensor": sensor.name,
        "eo_pipeline:earth_sun_distance": float(meta.earth_sun_distance),
        _sensors.PROPERTY: _sensors.to_dict(sensor),
    }
    if sensor.constellation:
        props["constellation"] = sensor.constellation
    for key, value in (
        ("view:off_nadir", meta.view_off_nadir),
        ("view:incidence_angle", meta.view_incidence_angle),
        ("view:azimuth", meta.view_azimuth),
    ):
        if value is not None:
            props[key] = float(value) % 360.0 if key == "view:azimuth" else float(value)
    if len(codes) == 1 and None not in codes:
        props["proj:code"] = codes.pop()
    elif meta.epsg is not None and not codes:
        props["proj:code"] = f"EPSG:{meta.epsg}"
    props.update(_cloud_properties(meta, sensor, cloud_cover, cover_stats, cover_source))
    state = _orbit_state(meta, sensor)
    if state:
        props["sat:orbit_state"] = state
    relative = meta.extra.get("relative_orbit", meta.wrs_path)
    if isinstance(relative, int) and relative >= 1:
        props["sat:relative_orbit"] = relative
    extra: tuple[tuple[str, Any], ...] = (
        ("eo_pipeline:product_id", meta.product_id or None),
        ("eo_pipeline:wrs_path", meta.wrs_path),
        ("eo_pipeline:wrs_row", meta.wrs_row),
        ("eo_pipeline:mgrs_tile", meta.mgrs_tile),
        ("eo_pipeline:processing_baseline", meta.processing_baseline),
        ("eo_pipeline:quantification_value", meta.quantification_value),
        ("eo_pipeline:nominal_sensor", True if sensor.nominal else None),
    )
    for key, value in extra:
        if value is not None:
            props[key] = value
    props.update(properties or {})

    item = pystac.Item(
        id=item_id,
        geometry=dict(meta.footprint),
        bbox=[float(v) for v in meta.bbox],
        datetime=meta.datetime.astimezone(dt.UTC),
        properties=props,
        collection=collection_id,
        stac_extensions=_extensions_used(props, built),
    )
    for key, asset in built.items():
        item.add_asset(key, asset)
    return item


def _extensions_used(props: Mapping[str, Any], assets: Mapping[str, pystac.Asset]) -> list[str]:
    fields = set(props)
    for a in assets.values():
        fields |= set(a.extra_fields)
    prefixes = {
        "eo": "eo:",
        "raster": "raster:",
        "projection": "proj:",
        "view": "view:",
        "sat": "sat:",
        "processing": "processing:",
        "file": "file:",
    }
    return [
        EXTENSION_URIS[name]
        for name, prefix in prefixes.items()
        if any(f.startswith(prefix) for f in fields)
    ]


def build_collection(
    collection_id: str,
    items: Sequence[pystac.Item],
    *,
    title: str | None = None,
    description: str | None = None,
    license: str = "other",
) -> pystac.Collection:
    """A collection for items of one sensor and level, extents and summaries from ``items``.

    Summaries: ``platform``, ``instruments``, ``constellation``, ``gsd``, ``proj:code``,
    ``eo:bands`` (of the sensor), ranges of ``view:sun_elevation`` and ``eo:cloud_cover``.
    Use :func:`merge_collection` to fold more items into an existing collection.

    Examples
    --------
    >>> c = build_collection("landsat8-l2sp", items)  # doctest: +SKIP
    """
    if not items:
        raise CatalogError(f"collection {collection_id!r}: no items to describe")
    sensor = _sensors.from_properties(items[0].properties, f"item {items[0].id}")
    coll = pystac.Collection(
        id=collection_id,
        title=title or f"{sensor.platform} {sensor.instrument} {collection_id.split('-', 1)[-1]}",
        description=description
        or (
            f"{sensor.platform} {sensor.instrument.upper()} scenes, processing level "
            f"{items[0].properties.get('processing:level', '?')}, catalogued by eo-pipeline."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
            pystac.TemporalExtent([[None, None]]),  # type: ignore[arg-type]  # merge_collection sets it
        ),
        license=license,
        stac_extensions=[EXTENSION_URIS["eo"], EXTENSION_URIS["view"]],
        summaries=pystac.Summaries({"eo:bands": [_eo_band(b) for b in sensor.bands]}),
    )
    coll.extra_fields[_sensors.PROPERTY] = _sensors.to_dict(sensor)
    merge_collection(coll, items)
    return coll


PROJECTION_V12_URI = "https://stac-extensions.github.io/projection/v1.2.0/schema.json"


def with_proj_epsg(doc: dict[str, Any]) -> dict[str, Any]:
    """Add ``proj:epsg`` beside every ``proj:code`` of the form ``EPSG:n`` (item properties
    and assets) and declare projection v1.2.0, in place; returns ``doc``.

    stackstac (0.5.1, its current release) reads only ``proj:epsg``. Projection v2.0.0
    replaced it by ``proj:code`` and its schema refuses ``proj:epsg``; v1.2.0 defines both, so
    product items declare v1.2.0 and carry both. pystac >= 1.12 migrates such an item to
    v2.0.0 when it reads it (dropping ``proj:epsg``), so this runs on the JSON *after* pystac
    wrote it; stackstac users pass item dicts (pystac-client's ``items_as_dicts()``, or the
    JSON files) rather than pystac objects.
    """
    found = False
    for obj in (doc.get("properties") or {}, *(doc.get("assets") or {}).values()):
        code = obj.get("proj:code")
        if isinstance(code, str) and code.upper().startswith("EPSG:") and code[5:].isdigit():
            obj["proj:epsg"] = int(code[5:])
            found = True
    exts = list(doc.get("stac_extensions") or [])
    v2 = EXTENSION_URIS["projection"]
    if found and v2 in exts:
        doc["stac_extensions"] = sorted({*(e for e in exts if e != v2), PROJECTION_V12_URI})
    return doc


def merge_collection(coll: pystac.Collection, items: Sequence[pystac.Item]) -> None:
    """Widen ``coll``'s extents and summaries to cover ``items`` (in place)."""
    bboxes = [i.bbox for i in items if i.bbox]
    times = [i.datetime for i in items if i.datetime is not None]
    old = coll.extent
    first_bbox = old.spatial.bboxes[0] if old.spatial.bboxes else None
    if first_bbox is not None and list(first_bbox) != [-180.0, -90.0, 180.0, 90.0]:
        bboxes.append(list(first_bbox))
    if bboxes:
        crosses = any(b[0] > b[2] for b in bboxes)
        west = -180.0 if crosses else min(b[0] for b in bboxes)
        east = 180.0 if crosses else max(b[2] for b in bboxes)
        union = [west, min(b[1] for b in bboxes), east, max(b[3] for b in bboxes)]
        old.spatial.bboxes = [union]
    start, end = (old.temporal.intervals or [[None, None]])[0]
    times += [t for t in (start, end) if t is not None]
    if times:
        old.temporal.intervals = [[min(times), max(times)]]

    s = coll.summaries
    for key in ("platform", "constellation", "proj:code", "gsd"):
        values = {i.properties[key] for i in items if key in i.properties}
        values |= set(s.get_list(key) or [])
        if values:
            s.add(key, sorted(values))
    instruments = {x for i in items for x in i.properties.get("instruments", [])}
    instruments |= set(s.get_list("instruments") or [])
    if instruments:
        s.add("instruments", sorted(instruments))
    for key in ("view:sun_elevation", "eo:cloud_cover"):
        numbers = [float(i.properties[key]) for i in items if key in i.properties]
        rng = s.get_range(key)
        if rng is not None:
            numbers += [float(rng.minimum), float(rng.maximum)]
        if numbers:
            s.add(key, pystac.RangeSummary(min(numbers), max(numbers)))

"""Load catalogued scenes lazily into an :class:`xarray.Dataset` through odc-stac.

What comes back is described in ``docs/conventions.md`` ("Loaded data"): dims
``(time, y, x)``, one variable per band named by band id, the native dtype (uint16 DN stays
uint16), dask chunks aligned to the files' tiles, and everything later steps need in attrs
and coords, so that calibration and masking never look at the catalog again.

odc-stac reads band data types and nodata from the assets' ``raster:bands`` (raster
extension v1.1, what our items carry; STAC 1.1 ``bands`` take precedence when present) and
common-name aliases from ``eo:bands``; the grid from ``proj:*``. Items on one native grid
load on that grid exactly (no resampling).

Products written by an eo-pipeline workflow (items with ``eo_pipeline:workflow``) load as
what they mean, not as stored: every asset whose ``raster:bands`` declares ``scale`` comes
back float32 with scale and offset applied and nodata as NaN (an int16 reflectance or index
equals what was written within half its quantisation step); default bands are the sensor
bands any of the items has, and an item missing one of them is an error naming it. Scenes
(L1, L2) keep their native DN: calibration needs them.

Examples
--------
>>> import eo_pipeline
>>> ds = eo_pipeline.load("catalog", bands=["red", "nir08"])  # doctest: +SKIP
>>> ds.B4.dtype, ds.B4.attrs["common_name"], ds.sun_elevation.dims  # doctest: +SKIP
(dtype('uint16'), 'red', ('time',))
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np
import pystac
import xarray as xr

from eo_pipeline.catalogs import sensors as _sensors
from eo_pipeline.catalogs.scene import BandCalibration
from eo_pipeline.errors import BandError, CatalogError, EOPipelineWarning, InputDataError

__all__ = ["DEFAULT_CHUNK", "load"]

DEFAULT_CHUNK = 2048
"""Target chunk edge in pixels; the actual edge is the largest multiple of the file tile
size not above it (at least one tile)."""

_TIME_COORDS = {
    "sun_elevation": "view:sun_elevation",
    "sun_azimuth": "view:sun_azimuth",
    "earth_sun_distance": "eo_pipeline:earth_sun_distance",
}
_CAL_KEYS = tuple(
    f.name
    for f in dataclasses.fields(BandCalibration)
    if f.name not in ("band", "nodata", "saturation")
)
"""Calibration numbers carried into band attrs (``BandCalibration.as_attrs()`` keys)."""

Source = str | os.PathLike[str] | pystac.ItemCollection | pystac.Item | Iterable[pystac.Item]


def _items(source: Source) -> list[pystac.Item]:
    from eo_pipeline.catalogs.geoparquet import is_geoparquet, read_geoparquet
    from eo_pipeline.catalogs.store import read_items

    if isinstance(source, str | os.PathLike) and is_geoparquet(source):
        items, where = list(read_geoparquet(source)), str(source)
    elif isinstance(source, str | os.PathLike):
        items = list(read_items(source))
        where = str(source)
    elif isinstance(source, pystac.Item):
        items, where = [source], f"item {source.id}"
    elif isinstance(source, pystac.Catalog):
        items, where = list(source.get_items(recursive=True)), f"catalog {source.id}"
    else:
        items, where = list(source), "the given items"
    if not items:
        raise CatalogError(f"{where}: no STAC items to load; ingest or simulate scenes first")
    for it in items:
        if not isinstance(it, pystac.Item):
            raise CatalogError(f"{where}: expected pystac.Item objects, got {type(it).__name__}")
    return items


def _selected(
    source: Source,
    bbox: Sequence[float] | None,
    datetime: str | None,
    collections: Sequence[str] | None,
    ids: Sequence[str] | None,
    query: Mapping[str, Mapping[str, Any]] | None,
    cql2: str | Mapping[str, Any] | None = None,
) -> list[pystac.Item]:
    """Items of a static catalog matching the selection, through the catalog index."""
    from eo_pipeline.catalogs.index import CatalogIndex, IndexQuery
    from eo_pipeline.catalogs.store import find_stac_file, read_item

    if not isinstance(source, str | os.PathLike):
        raise CatalogError(
            "load: bbox/datetime/collections/ids/query/filter select items of a catalog path; "
            "filter pystac items yourself (or search a STAC API with pystac-client)"
        )
    stac_file = find_stac_file(source)
    if stac_file.name != "catalog.json":
        raise CatalogError(f"{stac_file}: selection needs the catalog.json of a static catalog")
    if datetime is not None and not isinstance(datetime, str):
        raise CatalogError(
            f"load: datetime must be an RFC 3339 string or interval, got {datetime!r}"
        )
    if query is not None and not isinstance(query, Mapping):
        raise CatalogError(f"load: query must map properties to operators, got {query!r}")
    if cql2 is not None and not isinstance(cql2, str | Mapping):
        raise CatalogError(f"load: filter must be CQL2 text or CQL2 JSON, got {cql2!r}")
    q = IndexQuery(
        collections=_names(collections, "collections"),
        ids=_names(ids, "ids"),
        bbox=_bbox(bbox),
        datetime=datetime,
        query=query,
        filter=cql2,
    )
    files = CatalogIndex.open(stac_file).search(q)
    if not files:
        raise CatalogError(f"{stac_file}: no item matches {q}")
    return [read_item(f) for f in files]


def _names(values: Sequence[str] | None, what: str) -> tuple[str, ...]:
    if values is None:
        return ()
    names = (values,) if isinstance(values, str) else tuple(values)
    if not all(isinstance(v, str) for v in names):
        raise CatalogError(f"load: {what} must be strings, got {values!r}")
    return names


def _bbox(bbox: Sequence[float] | None) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    try:
        w, s, e, n = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise CatalogError(
            f"load: bbox must be 4 numbers west, south, east, north; got {bbox!r}"
        ) from None
    if not all(math.isfinite(v) for v in (w, s, e, n)) or not -90 <= s <= n <= 90:
        raise CatalogError(f"load: bbox {bbox!r} is not west, south, east, north in degrees")
    return w, s, e, n


def _sensor_of(items: Sequence[pystac.Item]) -> _sensors.Sensor:
    """The items' sensor: their own definition (``eo_pipeline:sensor_definition``), which
    wins over a sensor file of the same name (with a warning when they differ), else the
    sensor file."""
    names = set()
    for it in items:
        name = it.properties.get("eo_pipeline:sensor") or it.properties.get("platform")
        if not name:
            raise CatalogError(
                f"item {it.id!r}: no 'eo_pipeline:sensor' or 'platform' property; cannot tell "
                "its sensor"
            )
        names.add(name)
    if len(names) > 1:
        raise CatalogError(
            f"items of several sensors ({', '.join(sorted(names))}); load one sensor at a time"
        )
    return _sensors.from_properties(items[0].properties, f"item {items[0].id!r}")


def _resolve_bands(
    bands: str | Sequence[str] | None, sensor: _sensors.Sensor, first: pystac.Item
) -> list[str]:
    if bands is None:
        found = [b for b in sensor.band_ids if b in first.assets]
        if not found:
            raise BandError(
                f"item {first.id!r} has no asset for any band of sensor {sensor.name} "
                f"({', '.join(sensor.band_ids)}); its assets: {', '.join(first.assets)}"
            )
        return found
    names = [bands] if isinstance(bands, str) else list(bands)
    out: list[str] = []
    for name in names:
        if name in first.assets and name not in sensor.band_ids:
            key = name  # an auxiliary raster asset such as QA_PIXEL
        else:
            try:
                key = sensor.band(name).id
            except BandError:
                aux = [k for k, a in first.assets.items() if "proj:shape" in a.extra_fields]
                raise BandError(
                    f"sensor {sensor.name!r} has no band {name!r}; its bands are "
                    + ", ".join(f"{b.id} ({b.common_name})" for b in sensor.bands)
                    + f"; other raster assets of item {first.id!r}: {', '.join(aux) or 'none'}"
                ) from None
        if key not in out:
            out.append(key)
    return out


def _local_path(item: pystac.Item, asset: pystac.Asset) -> Path | None:
    if asset.href.startswith("/vsi"):
        return None if not asset.href.startswith("/vsizip/") else Path(asset.href)
    href = asset.get_absolute_href() or asset.href
    parsed = urlparse(href)
    if parsed.scheme not in ("", "file"):
        return None
    return Path(parsed.path if parsed.scheme == "file" else href)


def _check_assets(
    items: Sequence[pystac.Item], bands: Sequence[str], roots: Sequence[Path | None]
) -> tuple[int, int] | None:
    """Every requested asset exists, opens, is whole, inside its item's catalog folder
    (``roots``, one per item; ``None``: anywhere) and as its item says
    (:mod:`eo_pipeline.io.asset_checks`); returns the first file's block shape."""
    import rasterio
    from rasterio.errors import RasterioIOError

    from eo_pipeline.io.asset_checks import check_asset, check_href

    block: tuple[int, int] | None = None
    for it, root in zip(items, roots, strict=True):
        if "MTD_TL" in it.assets:  # Sentinel-2 angle grids are read from it later
            check_href(it, "MTD_TL", root)
        for band in bands:
            asset = it.assets.get(band)
            if asset is None:
                raise InputDataError(
                    f"item {it.id!r} has no asset for band {band!r}; its assets: "
                    f"{', '.join(it.assets)}; drop the item or ask for other bands"
                )
            check_href(it, band, root)
            path = _local_path(it, asset)
            if path is None:
                continue
            if asset.href.startswith("/vsizip/"):  # read in place from a zip archive
                from eo_pipeline.catalogs.archive import vsi_exists

                if not vsi_exists(asset.href):
                    raise InputDataError(
                        f"item {it.id!r} band {band!r}: {asset.href} is not in its archive; "
                        "re-ingest the scene or fix the catalog"
                    )
                path = asset.href  # type: ignore[assignment]
            if not isinstance(path, str) and not path.is_file():
                raise InputDataError(
                    f"item {it.id!r} band {band!r}: asset file {path} does not exist; "
                    "re-ingest the scene or fix the catalog"
                )
            try:
                with rasterio.open(path) as ds:
                    check_asset(it, band, path, ds, root)
                    if block is None:
                        by, bx = ds.block_shapes[0]
                        striped = bx == ds.width and by < ds.height
                        block = (0, 0) if striped else (by, bx)
            except RasterioIOError as err:
                raise InputDataError(
                    f"item {it.id!r} band {band!r}: asset file {path} is not a readable raster "
                    f"({err}); re-ingest the scene"
                ) from None
    return block


def _default_chunks(block: tuple[int, int] | None) -> dict[str, int]:
    """Chunk edges that are multiples of the tile size (or of 512 for striped files)."""

    def edge(tile: int) -> int:
        tile = tile if tile > 0 else 512
        return tile * max(1, DEFAULT_CHUNK // tile)

    by, bx = block or (0, 0)
    return {"y": edge(by), "x": edge(bx)}


def _per_time(values: list[Any]) -> Any:
    """A scalar when every time step agrees, else a 1-D array along ``time``."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if len(present) == len(values) and all(v == present[0] for v in present):
        return present[0]
    if all(isinstance(v, bool) for v in present):
        return np.array([bool(v) if v is not None else False for v in values])
    return np.array([np.nan if v is None else float(v) for v in values], dtype="float64")


def _only_assets(items: Sequence[pystac.Item], keys: Sequence[str]) -> list[pystac.Item]:
    """Copies of ``items`` holding just the assets asked for.

    odc-stac sorts every raster asset of an item into grids by shape and transform; with
    other assets on the same resolution but other extents (the image tiles of a DIMAP
    delivery, listed beside their VRT mosaic) it could give a requested band the grid of a
    tile (a PAN loaded as one 256 x 32 tile instead of the 288 x 288 mosaic).
    """
    wanted = set(keys)
    out = []
    for it in items:
        if set(it.assets) <= wanted:
            out.append(it)
            continue
        copy = it.clone()
        copy.assets = {k: a for k, a in copy.assets.items() if k in wanted}
        out.append(copy)
    return out


def _first_items(items: Sequence[pystac.Item], times: np.ndarray) -> list[pystac.Item]:
    """For each loaded time step, the item odc-stac put first in its group (groups start
    with their earliest item, ties broken by id; ``groupby="id"`` repeats a time stamp
    once per item)."""
    ordered = sorted(items, key=lambda it: (it.datetime or 0, it.id))
    stamps = np.array(
        [np.datetime64(it.datetime.replace(tzinfo=None), "us") for it in ordered]  # type: ignore[union-attr]
    )
    used: dict[np.datetime64, int] = {}
    out = []
    for t in times.astype("datetime64[us]"):
        hits = np.flatnonzero(stamps == t)
        if hits.size == 0:  # not expected: take the nearest acquisition
            hits = np.array([int(np.argmin(np.abs(stamps - t)))])
        k = used.get(t, 0)
        out.append(ordered[int(hits[min(k, hits.size - 1)])])
        used[t] = k + 1
    return out


def _band_attrs(
    key: str, sensor: _sensors.Sensor, per_time: Sequence[pystac.Item], nodata: Any
) -> dict[str, Any]:
    attrs: dict[str, Any] = {"band": key}
    if key in sensor.band_ids:
        b = sensor.band(key)
        attrs |= {
            "common_name": b.common_name or "",
            "center_wavelength": b.center_wavelength,
            "full_width_half_max": b.full_width_half_max,
            "nodata": nodata if nodata is not None else b.nodata,
            "saturation": b.saturation,
            "units": "DN",
        }
        cals = [it.assets[key].extra_fields.get("eo_pipeline:calibration", {}) for it in per_time]
        for name in _CAL_KEYS:
            value = _per_time([c.get(name) for c in cals])
            if name == "esun" and value is None:
                value = b.esun
            if value is not None:
                attrs[name] = value
    else:
        attrs |= {"nodata": nodata, "units": "1"}
        roles = per_time[0].assets[key].roles or []
        attrs["roles"] = list(roles)
    if attrs.get("nodata") is None:
        attrs.pop("nodata", None)
    return attrs


def _multiband(first: pystac.Item, keys: Sequence[str]) -> dict[str, int]:
    """Asset key -> band count, for the requested assets holding more than one band."""
    out = {}
    for key in keys:
        n = len(first.assets[key].extra_fields.get("raster:bands") or [])
        if n > 1:
            out[key] = n
    return out


def _stack_asset(ds: xr.Dataset, key: str, n: int, first: pystac.Item) -> xr.DataArray:
    """A multi-band asset (e.g. the simulator's ``truth_reflectance``) as one variable with a
    ``band`` dimension labelled by the asset's ``eo:bands`` names."""
    asset = first.assets[key]
    eo = asset.extra_fields.get("eo:bands") or []
    labels = (
        [b.get("name", str(i + 1)) for i, b in enumerate(eo)]
        if len(eo) == n
        else list(range(1, n + 1))
    )
    parts = [ds[f"{key}.{i}"] for i in range(1, n + 1)]
    arr = xr.concat(parts, dim="band", coords="minimal", compat="override")
    arr = arr.assign_coords(band=labels).transpose("time", "band", "y", "x")
    rb = (asset.extra_fields.get("raster:bands") or [{}])[0]
    attrs: dict[str, Any] = {"bands": [str(v) for v in labels], "units": rb.get("unit", "1")}
    attrs["roles"] = list(asset.roles or [])
    if parts[0].attrs.get("nodata") is not None:
        attrs["nodata"] = parts[0].attrs["nodata"]
    arr.attrs = attrs
    return arr.rename(key)


_PRODUCT_PROPERTY = "eo_pipeline:workflow"


def _is_product(items: Sequence[pystac.Item]) -> bool:
    return any(_PRODUCT_PROPERTY in it.properties for it in items)


def _product_bands(items: Sequence[pystac.Item], sensor: _sensors.Sensor) -> list[str]:
    """Sensor bands that any product item has (every item must then have them all)."""
    present = {k for it in items for k in it.assets}
    found = [b for b in sensor.band_ids if b in present]
    if not found:
        raise BandError(
            f"product item {items[0].id!r} has no asset for any band of sensor {sensor.name} "
            f"({', '.join(sensor.band_ids)}); ask for assets by key, e.g. bands=['NDVI']"
        )
    return found


def _packing(items: Sequence[pystac.Item], key: str) -> tuple[float, float, float | None] | None:
    """``(scale, offset, nodata)`` of a product asset, ``None`` when it declares no scale.

    Raises :class:`InputDataError` for a scale without an offset (or the reverse), or for
    items that disagree.
    """
    seen: set[tuple[float, float, float | None]] = set()
    unpacked = 0
    for it in items:
        rb = (it.assets[key].extra_fields.get("raster:bands") or [{}])[0]
        if ("scale" in rb) != ("offset" in rb):
            have, lack = ("scale", "offset") if "scale" in rb else ("offset", "scale")
            raise InputDataError(
                f"item {it.id!r} asset {key!r}: raster:bands states {have} but no {lack}; a "
                f"product asset states both (value = stored * scale + offset): add "
                f'"{lack}": {0.0 if lack == "offset" else 1.0} or re-run the workflow'
            )
        if "scale" not in rb:
            unpacked += 1
            continue
        nodata = rb.get("nodata")
        seen.add(
            (float(rb["scale"]), float(rb["offset"]), None if nodata is None else float(nodata))
        )
    if not seen:
        return None
    if len(seen) > 1 or unpacked:
        raise InputDataError(
            f"asset {key!r}: the items state different scale/offset/nodata ({sorted(map(str, seen))}"
            f"{', and some none' if unpacked else ''}); load them separately"
        )
    return seen.pop()


def _unpack_block(
    block: np.ndarray, scale: float, offset: float, nodata: float | None
) -> np.ndarray:
    out = block.astype(np.float32)
    out *= np.float32(scale)
    out += np.float32(offset)
    if nodata is not None and not np.isnan(nodata):
        out[block == nodata] = np.nan
    return out


def _decode_products(out: xr.Dataset, items: Sequence[pystac.Item], keys: Sequence[str]) -> None:
    """Scale and offset applied (float32, nodata -> NaN) to product assets, in place."""
    for key in keys:
        if key not in out.data_vars or "band" in out[key].dims:
            continue
        packing = _packing(items, key)
        var = out[key]
        rb = (items[0].assets[key].extra_fields.get("raster:bands") or [{}])[0]
        attrs = {k: v for k, v in var.attrs.items() if k not in ("saturation", "nodata")}
        attrs["units"] = str(rb.get("unit", "1"))
        if packing is None:
            if np.dtype(var.dtype).kind == "f":
                attrs["nodata"] = float("nan")
            else:
                attrs["nodata"] = var.attrs.get("nodata")
            var.attrs = attrs
            out[key] = var
            continue
        scale, offset, nodata = packing
        decoded = xr.apply_ufunc(
            _unpack_block,
            var,
            kwargs={"scale": scale, "offset": offset, "nodata": nodata},
            dask="parallelized",
            output_dtypes=[np.float32],
        )
        attrs |= {"nodata": float("nan"), "scale_applied": scale, "offset_applied": offset}
        decoded.attrs = attrs
        out[key] = decoded


def load(
    source: Source,
    bands: str | Sequence[str] | None = None,
    chunks: Mapping[str, int] | int | None = None,
    groupby: str | None = None,
    crs: Any = None,
    resolution: float | None = None,
    *,
    bbox: Sequence[float] | None = None,
    datetime: str | None = None,
    collections: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    query: Mapping[str, Mapping[str, Any]] | None = None,
    filter: str | Mapping[str, Any] | None = None,
    allow_outside: bool = False,
) -> xr.Dataset:
    """Catalogued scenes -> lazy :class:`xarray.Dataset` (odc-stac), native dtype, dask chunks.

    Parameters
    ----------
    source
        A static catalog path (``catalog.json``, ``collection.json``, an item JSON, or a
        folder holding one), a :class:`pystac.ItemCollection`, a catalog/collection object,
        or an iterable of :class:`pystac.Item`. One sensor at a time.
    bands
        Band ids (``B4``) or common names (``red``), or raster asset keys such as
        ``QA_PIXEL``; default: every sensor band the first item has. Variables are named by
        band id whatever was asked.
    chunks
        Dask chunk sizes ``{"x": .., "y": ..}`` (or one int for both); default: multiples of
        the first file's tile size near :data:`DEFAULT_CHUNK` (512 for striped files).
    groupby
        odc-stac grouping of items into time steps (``"time"`` by default, ``"solar_day"``,
        ``"id"`` or a property name).
    crs, resolution
        Output grid; default: the items' native grid (no resampling when they share it).
    bbox, datetime, collections, ids, query, filter
        Select items of a static catalog through its index
        (:mod:`eo_pipeline.catalogs.index`, built on first use), reading only the matching
        items' JSON: a ``(west, south, east, north)`` box, an RFC 3339 instant or
        ``start/end`` interval, collection ids, item ids, STAC query-extension filters
        (``{"eo:cloud_cover": {"lt": 20}}``) and a CQL2 filter, text or JSON, over the same
        queryables as the export API (``"eo:cloud_cover < 20 AND platform = 'kazeosat-2'"``,
        ``"S_INTERSECTS(geometry, POINT(76.9 43.2))"``). Only for catalog paths.
    allow_outside
        Accept local asset hrefs that lead out of the catalog's folder (``../``, absolute
        paths, ``file://`` URLs, symbolic links). Refused by default unless the asset is
        marked ``"eo_pipeline:reference": true``, as ingest marks Sentinel-2 files read in
        place (:mod:`eo_pipeline.catalogs.hrefs`); remote (http, s3...) hrefs are read.

    Returns
    -------
    xarray.Dataset
        Lazy (dask) variables ``(time, y, x)`` in the files' dtype (products: float32, scale
        and offset applied, nodata NaN); per-variable attrs
        ``band``, ``common_name``, ``center_wavelength``, ``nodata``, ``saturation``,
        ``units`` and the calibration numbers (a scalar when equal for every time step,
        else a 1-D array along ``time``); coords ``sun_elevation``, ``sun_azimuth``,
        ``earth_sun_distance`` along ``time``; Dataset attrs ``sensor``,
        ``processing_level``.

    Raises
    ------
    CatalogError
        No items, or items of several sensors.
    BandError
        A band the sensor (and the items) do not have; the message lists the bands.
    InputDataError
        An item without the asset, or whose asset file is missing, unreadable, truncated,
        outside the catalog folder, or of another band count, shape or CRS than the item
        says (item, band and file named); a product asset stating a scale without an offset.

    Examples
    --------
    >>> ds = load("demo-output/catalog", bands=["red", "nir08"])  # doctest: +SKIP
    >>> ds.B4.dtype  # doctest: +SKIP
    dtype('uint16')
    """
    import odc.stac

    selection = (bbox, datetime, collections, ids, query, filter)
    items = _items(source) if all(v is None for v in selection) else _selected(source, *selection)
    sensor_geometry = [
        it.id for it in items if it.properties.get("eo_pipeline:geometry") == "sensor"
    ]
    if sensor_geometry:
        raise InputDataError(
            f"load: item(s) {', '.join(sensor_geometry[:3])}{' ...' if len(sensor_geometry) > 3 else ''}"
            " are in sensor geometry (Primary products: image rows and columns, no map grid); "
            "orthorectify them first: eo.orthorectify(item, dem=...) or a workflow's "
            "orthorectify step"
        )
    sensor = _sensor_of(items)
    product = _is_product(items)
    keys = (
        _product_bands(items, sensor)
        if product and bands is None
        else _resolve_bands(bands, sensor, items[0])
    )
    from eo_pipeline.io.asset_checks import catalog_roots, crs_codes

    roots = [None] * len(items) if allow_outside else catalog_roots(source, items)
    block = _check_assets(items, keys, roots)
    codes = crs_codes(items, keys)
    if crs is None and len(codes) > 1:
        warnings.warn(
            f"load: the items are in {len(codes)} CRSs ({', '.join(codes)}); all are resampled "
            "onto one grid in one of them - pass crs= (and resolution=) to choose it",
            EOPipelineWarning,
            stacklevel=2,
        )
    if chunks is None:
        chunk_map: dict[str, int | Literal["auto"]] = dict(_default_chunks(block))
    elif isinstance(chunks, int):
        chunk_map = {"x": chunks, "y": chunks}
    else:
        chunk_map = dict(chunks)
    grid: dict[str, Any] = {}
    if crs is not None:
        grid["crs"] = crs
    if resolution is not None:
        grid["resolution"] = resolution
    props = [
        {"key": prop, "name": f"_prop_{name}", "dtype": "float64", "nodata": float("nan")}
        for name, prop in _TIME_COORDS.items()
    ]
    multi = _multiband(items[0], keys)
    odc_bands = [
        n
        for k in keys
        for n in ([f"{k}.{i}" for i in range(1, multi[k] + 1)] if k in multi else [k])
    ]
    ds = odc.stac.load(
        _only_assets(items, keys),
        bands=odc_bands,
        chunks=chunk_map,
        groupby=groupby or "time",
        with_properties=props,
        **grid,
    )
    coords: dict[Hashable, Any] = {}
    for name in _TIME_COORDS:
        var = ds[f"_prop_{name}"]
        coords[name] = ("time", np.asarray(var.values, dtype="float64"))
    ds = ds.drop_vars([f"_prop_{n}" for n in _TIME_COORDS]).assign_coords(coords)
    per_time = _first_items(items, ds["time"].values)
    out = xr.Dataset(coords=ds.coords)
    for key in keys:
        if key in multi:
            out[key] = _stack_asset(ds, key, multi[key], items[0])
        else:
            out[key] = ds[key]
            out[key].attrs = _band_attrs(key, sensor, per_time, ds[key].attrs.get("nodata"))
    tiles = [it.assets.get("MTD_TL") for it in per_time]
    if tiles and all(t is not None for t in tiles):  # Sentinel-2: angle grids per time step
        hrefs = [_asset_href(t) for t in tiles if t is not None]
        out = out.assign_coords(tile_metadata=("time", np.array(hrefs, dtype=str)))
    if product:
        _decode_products(out, items, keys)
    levels = sorted({str(it.properties.get("processing:level", "")) for it in items})
    out.attrs = {"sensor": sensor.name, "processing_level": "/".join(levels)}
    return out


def _asset_href(asset: pystac.Asset) -> str:
    """An asset's href as GDAL opens it (``/vsi...`` paths kept as they are)."""
    if asset.href.startswith("/vsi"):
        return asset.href
    return asset.get_absolute_href() or asset.href

"""Sensor-geometry (Primary) rasters as lazy xarray Datasets carrying their RPC model.

A Primary product has no map grid: its pixels are addressed by (line, sample) and placed on
the ground only through its RPC model. :func:`open_sensor` reads such a product lazily (dask
chunks read by rasterio windows, native dtype) into a Dataset with dims ``(y, x)`` in pixel
coordinates and the model in ``attrs["rpc"]`` (:meth:`RPCModel.as_dict`), which
:func:`eo_pipeline.steps.orthorectification.orthorectify` takes.

Sources: an image file with RPC tags (or an RPB/_RPC.TXT sidecar), an image plus an RPC file
(``rpc=``), or a STAC item of a Primary product (band assets in sensor geometry and the
``RPC_{group}`` asset :func:`eo_pipeline.io.ingest_dimap.dimap_scene` writes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from eo_pipeline.catalogs.rpc import RPCModel, read_rpc
from eo_pipeline.errors import BandError, OrthorectificationError

__all__ = ["open_sensor", "rpc_groups"]

_CHUNK = 2048


class _Windows:
    """A rasterio band as a lazily sliced array (what ``dask.array.from_array`` needs)."""

    def __init__(self, path: str, band: int, shape: tuple[int, int], dtype: str) -> None:
        self.path, self.band, self.shape, self.dtype = path, band, shape, np.dtype(dtype)
        self.ndim = 2

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        import rasterio
        from rasterio.windows import Window

        rows, cols = key
        r0, r1, _ = rows.indices(self.shape[0])
        c0, c1, _ = cols.indices(self.shape[1])
        with rasterio.open(self.path) as ds:
            return ds.read(self.band, window=Window(c0, r0, c1 - c0, r1 - r0))


def _lazy(path: str, band: int, chunks: int) -> tuple[Any, dict[str, Any]]:
    import dask.array as da
    import rasterio

    with rasterio.open(path) as ds:
        shape, dtype, nodata = (ds.height, ds.width), ds.dtypes[band - 1], ds.nodata
        rpcs = ds.rpcs
    arr = da.from_array(
        _Windows(path, band, shape, dtype),
        chunks=(chunks, chunks),
        name=f"sensor-{Path(path).name}-{band}-{os.stat(path).st_mtime_ns}",
    )
    return arr, {"nodata": nodata, "rpcs": rpcs}


def rpc_groups(item: Any) -> dict[str, list[str]]:
    """Band asset keys of a Primary STAC item grouped by the RPC asset that locates them."""
    groups: dict[str, list[str]] = {}
    for key, asset in item.assets.items():
        ref = asset.extra_fields.get("eo_pipeline:rpc")
        if ref:
            groups.setdefault(ref, []).append(key)
    return groups


def _from_item(item: Any, bands: Sequence[str] | None, chunks: int) -> xr.Dataset:
    groups = rpc_groups(item)
    if not groups:
        raise OrthorectificationError(
            f"item {item.id}: no band asset names an RPC (asset field eo_pipeline:rpc); it is "
            "not a sensor-geometry (Primary) item, or was ingested without its RPC_*.XML"
        )
    if bands is None:
        if len(groups) > 1:
            listing = "; ".join(f"{g}: {', '.join(b)}" for g, b in groups.items())
            raise OrthorectificationError(
                f"item {item.id}: bands of {len(groups)} products with their own RPC and pixel "
                f"size ({listing}); pass bands= of one product, or orthorectify_item() for all"
            )
        bands = next(iter(groups.values()))
    unknown = [
        b
        for b in bands
        if b not in item.assets or "eo_pipeline:rpc" not in item.assets[b].extra_fields
    ]
    if unknown:
        raise BandError(f"item {item.id}: no sensor-geometry band asset {', '.join(unknown)}")
    refs = {item.assets[b].extra_fields["eo_pipeline:rpc"] for b in bands}
    if len(refs) > 1:
        raise OrthorectificationError(
            f"item {item.id}: bands {', '.join(bands)} belong to products {', '.join(sorted(refs))} "
            "with different RPCs and grids; orthorectify each product's bands apart"
        )
    ref = refs.pop()
    if ref not in item.assets:
        raise OrthorectificationError(
            f"item {item.id}: RPC asset {ref!r} is missing; re-ingest the product"
        )
    from eo_pipeline.io.asset_checks import catalog_roots, check_href

    (root,) = catalog_roots(None, [item])
    for key in (ref, *bands):  # files of the catalog, or marked as read in place
        check_href(item, key, root)
    rpc_href = item.assets[ref].get_absolute_href() or item.assets[ref].href
    rpc = read_rpc(rpc_href)
    out = {}
    for b in bands:
        href = item.assets[b].get_absolute_href() or item.assets[b].href
        arr, info = _lazy(href, 1, chunks)
        cal = item.assets[b].extra_fields.get("eo_pipeline:calibration", {})
        attrs = {
            "band": b,
            "nodata": info["nodata"],
            **{k: v for k, v in cal.items() if v is not None and k != "band"},
        }
        out[b] = xr.DataArray(arr, dims=("y", "x"), attrs=attrs)
    props = item.properties
    return xr.Dataset(
        out,
        attrs={
            "rpc": rpc.as_dict(),
            "rpc_source": str(rpc_href),
            "sensor": props.get("eo_pipeline:sensor", ""),
            "processing_level": props.get("processing:level", ""),
            "item_id": item.id,
            "datetime": props.get("datetime", ""),
        },
    )


def open_sensor(
    source: Any,
    *,
    rpc: str | os.PathLike[str] | RPCModel | None = None,
    bands: Sequence[str] | None = None,
    chunks: int = _CHUNK,
) -> xr.Dataset:
    """A sensor-geometry product as a lazy Dataset with ``attrs["rpc"]``.

    Parameters
    ----------
    source
        An image path (variables ``band1``...), a STAC item (or its JSON path) of a Primary
        product.
    rpc
        The RPC (file or model) when the image carries none.
    bands
        Band asset keys of an item (one product's).
    chunks
        Dask chunk edge in pixels.

    Raises
    ------
    OrthorectificationError
        No RPC anywhere (the message says where it looked).
    MetadataError
        An RPC file with missing coefficients.
    """
    import pystac

    if isinstance(source, str | os.PathLike) and str(source).lower().endswith(".json"):
        source = pystac.Item.from_file(str(source))
    if isinstance(source, pystac.Item):
        return _from_item(source, bands, chunks)
    import rasterio

    path = str(source)
    with rasterio.open(path) as ds:
        count = ds.count
        descriptions = ds.descriptions
        t, crs = ds.transform, ds.crs
    # a crop of a product (CNES/OTB style): no CRS, identity scale, the crop's origin in the
    # full product's pixel frame as the offset; the product's RPC is in that frame
    offset = (t.f, t.c) if crs is None and (t.a, t.b, t.d, t.e) == (1, 0, 0, 1) else (0.0, 0.0)
    variables = {}
    model: RPCModel | None = (
        rpc if isinstance(rpc, RPCModel) else (read_rpc(Path(rpc)) if rpc is not None else None)
    )
    for i in range(1, count + 1):
        arr, info = _lazy(path, i, chunks)
        if model is None and info["rpcs"] is not None:
            model = RPCModel.from_gdal(info["rpcs"].to_gdal(), source=path)
        name = descriptions[i - 1] or f"band{i}"
        variables[name] = xr.DataArray(
            arr, dims=("y", "x"), attrs={"band": name, "nodata": info["nodata"]}
        )
    if model is not None and offset != (0.0, 0.0) and rpc is not None:
        model = model.shifted(*offset)
    if model is None:
        raise OrthorectificationError(
            f"{path}: no RPC (no GeoTIFF RPC tag, no .RPB or _RPC.TXT beside it); give rpc= "
            "(the product's RPC_*.XML, *_RPC.TXT or *.RPB)"
        )
    if bands is not None:
        missing = [b for b in bands if b not in variables]
        if missing:
            raise BandError(f"{path}: no band {', '.join(missing)} (has {', '.join(variables)})")
        variables = {b: variables[b] for b in bands}
    attrs: dict[str, Any] = {
        "rpc": model.as_dict(),
        "rpc_source": model.source or path,
        "source": path,
    }
    if offset != (0.0, 0.0):
        attrs["frame_offset"] = list(offset)
    return xr.Dataset(variables, attrs=attrs)

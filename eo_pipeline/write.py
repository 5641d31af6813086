"""Write xarray/dask data as Cloud-Optimized GeoTIFFs, chunk by chunk, never half-written.

The path of a write:

1. dask chunks are stored, one window at a time, into a tiled intermediate GeoTIFF under a
   temporary name in the destination folder (peak memory: a few chunks, whatever the scene);
2. GDAL's COG driver copies it to a second temporary name, adding internal overviews,
   DEFLATE or ZSTD with the right predictor (2 for integers, 3 for float32);
3. the COG is renamed over the final name only when complete, and its size and sha2-256
   multihash are recorded. On any error both temporaries are removed.

Examples
--------
>>> import numpy as np, xarray as xr, tempfile, os
>>> from odc.geo.xr import xr_coords
>>> from odc.geo.geobox import GeoBox
>>> gbox = GeoBox.from_bbox((500000, 4000000, 500640, 4000640), "EPSG:32642", resolution=10)
>>> da = xr.DataArray(np.ones((64, 64), np.float32), coords=xr_coords(gbox), dims=("y", "x"))
>>> out = write(da, os.path.join(tempfile.mkdtemp(), "ones.tif"))
>>> out.dtype, out.shape
('float32', (1, 64, 64))
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.errors import InputDataError, WriteError

__all__ = ["WriteOptions", "WrittenProduct", "write"]

_BLOCK = 512


@dataclass(frozen=True)
class WriteOptions:
    """How a product is encoded."""

    dtype: str | None = None
    """Output dtype; ``None`` keeps the input's. ``"int16"`` on float data packs reflectance
    with :attr:`scale`/:attr:`offset` (NaN -> nodata)."""
    scale: float = 1e-4
    """Scale of packed integers: ``value = stored * scale + offset``."""
    offset: float = 0.0
    compress: str = "deflate"
    """``deflate`` or ``zstd``."""
    level: int = 6
    """Compression level."""
    blocksize: int = _BLOCK
    """Internal tile edge in pixels."""
    overviews: bool = True
    """Write internal overviews (averaged)."""
    nodata: float | None = None
    """Nodata value; default: NaN for floats, -32768 for packed int16, the input's ``nodata`` attr."""
    tags: dict[str, str] = field(default_factory=dict)
    """Dataset-level GDAL metadata tags."""


@dataclass(frozen=True)
class WrittenProduct:
    """What was written: enough for a STAC asset (file extension, raster extension)."""

    path: Path
    size: int
    """Bytes (``file:size``)."""
    checksum: str
    """sha2-256 multihash, hex (``file:checksum``)."""
    dtype: str
    shape: tuple[int, int, int]
    """(bands, rows, cols)."""
    bands: tuple[str, ...]
    nodata: float | None
    scale: float | None
    offset: float | None
    crs: str | None
    transform: tuple[float, ...]


def _as_bands(obj: xr.Dataset | xr.DataArray) -> tuple[xr.DataArray, tuple[str, ...]]:
    """Stack a Dataset's variables / a DataArray into one (band, y, x) array."""
    if isinstance(obj, xr.Dataset):
        names = [str(n) for n, v in obj.data_vars.items() if {"y", "x"} <= set(v.dims)]
        if not names:
            raise InputDataError("write: the Dataset has no variables with y and x dimensions")
        arrays = [obj[n] for n in names]
        dtypes = {a.dtype for a in arrays}
        if len(dtypes) > 1:
            raise InputDataError(
                f"write: variables {names} have different dtypes {sorted(map(str, dtypes))}; "
                "write them separately or cast first"
            )
        da = xr.concat(
            [a.squeeze(drop=True) if "time" in a.dims else a for a in arrays], dim="band"
        )
        da = da.assign_coords(band=names)
        da.attrs = dict(arrays[0].attrs)
        return da, tuple(names)
    da = obj
    if "time" in da.dims:
        if da.sizes["time"] != 1:
            raise InputDataError(
                f"write: {da.name!r} has {da.sizes['time']} time steps; select one "
                "(`.isel(time=i)`) or composite first"
            )
        da = da.isel(time=0, drop=True)
    if da.ndim == 2:
        da = da.expand_dims(band=[str(da.name or "band1")])
    extra = [d for d in da.dims if d not in ("y", "x")]
    if da.ndim != 3 or len(extra) != 1:
        raise InputDataError(f"write: expected dims (y, x) or (band, y, x), got {da.dims}")
    da = da.transpose(extra[0], "y", "x")
    names = (
        tuple(str(v) for v in da[extra[0]].values)
        if extra[0] in da.coords
        else tuple(f"band{i + 1}" for i in range(da.shape[0]))
    )
    return da, names


def _geo(da: xr.DataArray) -> tuple[Any, Any]:
    """CRS and affine transform of a georeferenced DataArray (odc-geo or rioxarray style)."""
    try:
        import odc.geo.xr  # noqa: F401  (registers the .odc accessor)

        gbox = da.odc.geobox
        if gbox is not None and gbox.crs is not None:
            epsg = gbox.crs.epsg
            return (f"EPSG:{epsg}" if epsg else gbox.crs.to_wkt()), gbox.affine
    except (ImportError, AttributeError, ValueError):
        pass
    raise InputDataError(
        f"write: {da.name!r} has no CRS/transform; load it with eo_pipeline.load or assign one "
        "with odc.geo (`xx.odc.assign_crs(...)`)"
    )


class _WindowWriter:
    """A ``dask.array.store`` target that writes (band, y, x) windows into a GeoTIFF."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __setitem__(self, key: tuple[slice, slice, slice], value: np.ndarray) -> None:
        import rasterio
        from rasterio.windows import Window

        b, y, x = key
        bands = list(range((b.start or 0) + 1, (b.stop or value.shape[0]) + 1))
        window = Window(x.start or 0, y.start or 0, value.shape[2], value.shape[1])
        with rasterio.open(self.path, "r+") as dst:
            dst.write(value, indexes=bands, window=window)


@contextlib.contextmanager
def _temporaries(final: Path) -> Iterator[tuple[Path, Path]]:
    token = uuid.uuid4().hex[:8]
    tmp1 = final.with_name(f".{final.name}.{token}.part.tif")
    tmp2 = final.with_name(f".{final.name}.{token}.cog.tif")
    try:
        yield tmp1, tmp2
    finally:
        for t in (tmp1, tmp2):
            with contextlib.suppress(FileNotFoundError):
                t.unlink()


def _encode(
    da: xr.DataArray, opts: WriteOptions
) -> tuple[xr.DataArray, float | None, float | None, float | None]:
    """Cast/pack to the output dtype; returns (data, nodata, scale, offset)."""
    src = np.dtype(da.dtype)
    target = np.dtype(opts.dtype) if opts.dtype else src
    nodata = opts.nodata
    if target == np.int16 and src.kind == "f":
        from eo_pipeline.kernels.quantize import quantize_int16

        nd = int(-32768 if nodata is None else nodata)
        packed = da.copy(
            data=da.data.map_blocks(quantize_int16, opts.scale, opts.offset, nd, dtype=np.int16)
            if hasattr(da.data, "map_blocks")
            else quantize_int16(da.values, opts.scale, opts.offset, nd)
        )
        return packed, float(nd), opts.scale, opts.offset
    if target != src:
        if src.kind == "f" and target.kind in "iu":
            raise InputDataError(
                f"write: float data to {target} needs packing; use dtype='int16' (scaled) "
                "or round it yourself"
            )
        da = da.astype(target)
    if nodata is None:
        nodata = da.attrs.get("nodata")
        if nodata is None and target.kind == "f":
            nodata = float("nan")
    scale = da.attrs.get("scale")
    offset = da.attrs.get("offset")
    return da, (None if nodata is None else float(nodata)), scale, offset


def write(
    obj: xr.Dataset | xr.DataArray,
    path: str | os.PathLike[str],
    options: WriteOptions | None = None,
    **kwargs: Any,
) -> WrittenProduct:
    """Write ``obj`` as one COG at ``path`` (a Dataset's variables become bands).

    Parameters
    ----------
    obj
        A georeferenced DataArray ``(y, x)``/``(band, y, x)`` (a length-1 ``time`` is dropped)
        or a Dataset whose variables share a dtype; numpy or dask backed.
    path
        Destination ``.tif``. Its folder must exist and be writable.
    options, **kwargs
        A :class:`WriteOptions`, or its fields as keywords.

    Returns
    -------
    WrittenProduct
        Path, size, sha2-256 multihash and encoding of the file.
    """
    import dask
    import dask.array as dsa
    import rasterio
    import rasterio.shutil

    opts = options or WriteOptions(**kwargs)
    if opts.compress not in ("deflate", "zstd"):
        raise InputDataError(f"write: compress must be 'deflate' or 'zstd', got {opts.compress!r}")
    final = Path(path)
    folder = final.parent
    if not folder.is_dir():
        raise WriteError(f"{folder}: output folder does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise WriteError(f"{folder}: output folder is not writable; choose another --catalog/path")
    da, names = _as_bands(obj)
    crs, affine = _geo(da)
    da, nodata, scale, offset = _encode(da, opts)
    dtype = np.dtype(da.dtype)
    bands, height, width = (int(n) for n in da.shape)
    predictor = 3 if dtype.kind == "f" else 2
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": bands,
        "dtype": dtype.name,
        "crs": crs,
        "transform": affine,
        "tiled": True,
        "blockxsize": opts.blocksize,
        "blockysize": opts.blocksize,
        "compress": "zstd" if opts.compress == "zstd" else "deflate",
        "zlevel": 1,
        "BIGTIFF": "IF_SAFER",
        "nodata": nodata,
    }
    units = da.attrs.get("units")
    try:
        with _temporaries(final) as (tmp, cog):
            with rasterio.open(tmp, "w", **profile) as dst:
                for i, name in enumerate(names, start=1):
                    dst.set_band_description(i, name)
                    if units:
                        dst.update_tags(i, units=str(units))
                    if scale is not None:
                        dst.scales = (scale,) * bands
                        dst.offsets = (offset or 0.0,) * bands
                dst.update_tags(**{k: str(v) for k, v in opts.tags.items()})
            data = da.data
            if isinstance(data, dsa.Array):
                lock = _lock_for(str(tmp))
                with dask.config.set({"array.slicing.split_large_chunks": False}):
                    dsa.store(data, _WindowWriter(str(tmp)), lock=lock, compute=True)
            else:
                _WindowWriter(str(tmp))[slice(0, bands), slice(0, height), slice(0, width)] = (
                    np.asarray(data)
                )
            creation = {
                "COMPRESS": "ZSTD" if opts.compress == "zstd" else "DEFLATE",
                "LEVEL": str(opts.level),
                "PREDICTOR": str(predictor),
                "BLOCKSIZE": str(opts.blocksize),
                "OVERVIEWS": "AUTO" if opts.overviews else "NONE",
                "OVERVIEW_RESAMPLING": "AVERAGE" if dtype.kind == "f" or scale else "NEAREST",
                "BIGTIFF": "IF_SAFER",
                "NUM_THREADS": "1",
            }
            rasterio.shutil.copy(str(tmp), str(cog), driver="COG", **creation)
            os.replace(cog, final)
    except (OSError, rasterio.errors.RasterioError) as err:
        raise WriteError(
            f"{final}: writing the COG failed ({err}); nothing was left behind"
        ) from err
    return WrittenProduct(
        path=final,
        size=final.stat().st_size,
        checksum=file_checksum(final),
        dtype=dtype.name,
        shape=(bands, height, width),
        bands=names,
        nodata=nodata,
        scale=scale,
        offset=offset,
        crs=crs,
        transform=tuple(affine)[:6],
    )


def _lock_for(name: str) -> Any:
    """A lock serialising window writes: a distributed Lock under a distributed client."""
    try:
        from distributed import Lock, get_client

        get_client()
        return Lock(f"eo-pipeline-write-{name}")
    except (ImportError, ValueError):
        from dask.utils import SerializableLock

        return SerializableLock(f"eo-pipeline-write-{name}")

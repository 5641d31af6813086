"""Write one numpy array as a Cloud-Optimized GeoTIFF, atomically, and hash it.

The low-level writer that the simulator and the product writer share: GDAL's COG driver
(through rasterio) with 512 x 512 tiles, internal overviews, DEFLATE or ZSTD compression with
the predictor that fits the data type (2 = horizontal differencing for integers, 3 = floating
point), nodata, band descriptions and tags. The file is written under a hidden temporary name
in the destination folder and renamed into place only when complete, so a reader never sees a
partial COG and a failure leaves nothing behind. The checksum of the final bytes is returned in
the multihash form STAC ``file:checksum`` takes (:func:`eo_pipeline.catalogs.checksum.file_checksum`).

Examples
--------
>>> import tempfile, numpy as np
>>> from rasterio.transform import from_origin
>>> folder = tempfile.mkdtemp()
>>> out = write_cog(
...     f"{folder}/b1.tif", np.ones((64, 64), np.uint16), crs="EPSG:32643",
...     transform=from_origin(500000, 5000000, 30, 30), nodata=0, descriptions=["B1"],
... )
>>> out.path.name, out.size > 0, out.multihash[:4], len(out.multihash)
('b1.tif', True, '1220', 68)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from eo_pipeline.atomic import atomic_path
from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.errors import WriteError

__all__ = ["WrittenFile", "cog_options", "write_cog"]

Compression = Literal["DEFLATE", "ZSTD"]


@dataclass(frozen=True)
class WrittenFile:
    """A file that was written completely and renamed into place."""

    path: Path
    """Final path of the file."""
    size: int
    """Size in bytes (STAC ``file:size``)."""
    multihash: str
    """Multihash sha2-256 of the file's bytes in hex (STAC ``file:checksum``): ``1220`` + digest."""


def _predictor(dtype: np.dtype[Any]) -> int:
    return 3 if np.issubdtype(dtype, np.floating) else 2


def cog_options(
    dtype: np.dtype[Any] | str,
    *,
    compress: Compression = "DEFLATE",
    level: int | None = None,
    blocksize: int = 512,
    overviews: Literal["AUTO", "NONE", "FORCE_USE_EXISTING"] = "AUTO",
    overview_resampling: str | None = None,
    threads: int = 1,
) -> dict[str, str]:
    """GDAL COG driver creation options: the one definition of how the package encodes a COG.

    Used by :func:`write_cog` (whole arrays in memory: the simulator) and by
    :mod:`eo_pipeline.io.writing` (dask-streamed products copied to a COG), so both write the
    same tiling, compression and predictor.

    Parameters
    ----------
    dtype
        The data type; the predictor follows it (3 = floating point, 2 = horizontal differencing).
    compress, level
        ``DEFLATE`` or ``ZSTD`` and its level (GDAL's default when ``None``).
    blocksize
        Tile size in pixels.
    overviews
        ``AUTO`` (the driver builds them), ``NONE``, or ``FORCE_USE_EXISTING`` (the source's).
    overview_resampling
        With ``AUTO``: ``average`` for floating point, ``nearest`` for integers by default.
    threads
        Compression threads (``NUM_THREADS``).

    >>> cog_options("uint16")["PREDICTOR"], cog_options("float32")["OVERVIEW_RESAMPLING"]
    ('2', 'AVERAGE')
    """
    dt = np.dtype(dtype)
    options = {
        "BLOCKSIZE": str(blocksize),
        "COMPRESS": compress,
        "PREDICTOR": str(_predictor(dt)),
        "OVERVIEWS": overviews,
        "BIGTIFF": "IF_SAFER",
        "NUM_THREADS": str(threads),
    }
    if overviews == "AUTO":
        if overview_resampling is None:
            overview_resampling = "average" if np.issubdtype(dt, np.floating) else "nearest"
        options["OVERVIEW_RESAMPLING"] = overview_resampling.upper()
    if level is not None:
        options["LEVEL"] = str(level)
    return options


def write_cog(
    path: str | Path,
    data: np.ndarray,
    *,
    crs: str | int | CRS,
    transform: Affine,
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    compress: Compression = "DEFLATE",
    level: int | None = None,
    blocksize: int = 512,
    overview_resampling: str | None = None,
    tags: Mapping[str, str] | None = None,
    band_tags: Sequence[Mapping[str, str]] | None = None,
) -> WrittenFile:
    """Write ``data`` as a COG at ``path`` (temporary name, then rename) and hash it.

    Parameters
    ----------
    path
        Destination file; its folder must exist. An existing file is replaced atomically.
    data
        ``(rows, cols)`` or ``(bands, rows, cols)`` array; its dtype is kept.
    crs, transform
        Georeferencing (an EPSG code, WKT or :class:`rasterio.crs.CRS`; an affine transform).
    nodata
        The no-data value written into the file, or ``None``.
    descriptions
        One description per band (the band id), shown by ``gdalinfo`` and read by GDAL tools.
    compress, level
        ``DEFLATE`` (default, every GDAL) or ``ZSTD``; the predictor follows the dtype.
    blocksize
        Tile size in pixels (512 by default; odc-stac aligns dask chunks to it).
    overview_resampling
        Resampling of the internal overviews; ``average`` for continuous data and
        ``nearest`` for integer class maps by default.
    tags, band_tags
        Dataset-level and per-band GDAL metadata items.

    Returns
    -------
    WrittenFile
        Final path, size in bytes and multihash sha2-256 of the bytes on disk.

    Raises
    ------
    WriteError
        The folder is missing or the write fails; no temporary file is left behind.
    """
    dest = Path(path)
    if not dest.parent.is_dir():
        raise WriteError(f"{dest}: folder {dest.parent} does not exist; create it first")
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3 or min(arr.shape) == 0:
        raise WriteError(
            f"{dest}: expected a non-empty (rows, cols) or (bands, rows, cols) array, "
            f"got shape {np.shape(data)}"
        )
    count, rows, cols = arr.shape
    if descriptions is not None and len(descriptions) != count:
        raise WriteError(
            f"{dest}: {len(descriptions)} band descriptions for {count} bands; give one per band"
        )
    if band_tags is not None and len(band_tags) != count:
        raise WriteError(f"{dest}: {len(band_tags)} band tag sets for {count} bands")
    options = cog_options(
        arr.dtype,
        compress=compress,
        level=level,
        blocksize=blocksize,
        overview_resampling=overview_resampling,
    )
    try:
        with atomic_path(dest) as tmp:
            with rasterio.open(
                tmp,
                "w",
                driver="COG",
                width=cols,
                height=rows,
                count=count,
                dtype=arr.dtype,
                crs=crs,
                transform=transform,
                nodata=nodata,
                **options,
            ) as dst:
                dst.write(arr)
                for i in range(count):
                    if descriptions is not None:
                        dst.set_band_description(i + 1, descriptions[i])
                    if band_tags is not None and band_tags[i]:
                        dst.update_tags(i + 1, **band_tags[i])
                if tags:
                    dst.update_tags(**tags)
            checksum = file_checksum(tmp)
            size = tmp.stat().st_size
    except WriteError:
        raise
    except (OSError, rasterio.errors.RasterioError, ValueError, TypeError) as err:
        raise WriteError(f"{dest}: cannot write COG: {err}") from err
    return WrittenFile(path=dest, size=size, multihash=checksum)

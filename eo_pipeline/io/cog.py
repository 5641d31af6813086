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

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.errors import WriteError

__all__ = ["WrittenFile", "write_cog"]

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
    if overview_resampling is None:
        overview_resampling = "average" if np.issubdtype(arr.dtype, np.floating) else "nearest"
    options: dict[str, Any] = {
        "BLOCKSIZE": blocksize,
        "COMPRESS": compress,
        "PREDICTOR": _predictor(arr.dtype),
        "OVERVIEWS": "AUTO",
        "OVERVIEW_RESAMPLING": overview_resampling.upper(),
        "BIGTIFF": "IF_SAFER",
        "NUM_THREADS": "1",
    }
    if level is not None:
        options["LEVEL"] = level
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
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
        os.replace(tmp, dest)
    except (OSError, rasterio.errors.RasterioError, ValueError, TypeError) as err:
        tmp.unlink(missing_ok=True)
        raise WriteError(f"{dest}: cannot write COG: {err}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return WrittenFile(path=dest, size=size, multihash=checksum)

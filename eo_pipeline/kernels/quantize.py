"""Pack float32 reflectance into scaled int16 in one pass (readers unpack with the declared scale).

Products may store reflectance as int16 with ``raster:scale``/``raster:offset`` declared:
``value = round((rho - offset) / scale)``, saturated to [-32768, 32767] (also +-inf and values beyond the range) with the nodata value
taken out of the range when it is one of the two extremes (use an extreme as nodata, the
default -32768: a nodata inside the range would also be a valid value), NaN -> nodata. Halves the size of float32 products at 1e-4 reflectance resolution.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from eo_pipeline.kernels.arrays import leading, native
from eo_pipeline.kernels.buffers import pooled_empty

__all__ = ["quantize_int16"]


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _quantize_int16(
    src: np.ndarray, scale: float, offset: float, nodata: int, out: np.ndarray
) -> None:
    inv = 1.0 / scale
    lo = -32767 if nodata == -32768 else -32768
    hi = 32767 if nodata != 32767 else 32766
    for i in numba.prange(src.shape[0]):
        for j in range(src.shape[1]):
            v = src[i, j]
            if math.isnan(v):
                out[i, j] = nodata
            else:
                # clamp in floating point before rounding: +inf or 1e15 cast to an integer
                # first would overflow and wrap to the other end of the range
                x = (v - offset) * inv
                if x <= lo:
                    out[i, j] = lo
                elif x >= hi:
                    out[i, j] = hi
                else:
                    out[i, j] = round(x)


def quantize_int16(
    src: np.ndarray, scale: float = 1e-4, offset: float = 0.0, nodata: int = -32768
) -> np.ndarray:
    """float32 ``(..., y, x)`` -> int16 with NaN as ``nodata``.

    Values beyond the packable range, +inf and -inf included, saturate to the largest or
    smallest valid value (never the nodata value, never wrapped to the other sign).

    Examples
    --------
    >>> import numpy as np
    >>> quantize_int16(np.array([[0.12345, np.nan, -0.5]], dtype=np.float32))
    array([[  1235, -32768,  -5000]], dtype=int16)
    >>> quantize_int16(np.array([[np.inf, 1e15, -np.inf]], dtype=np.float32))
    array([[ 32767,  32767, -32767]], dtype=int16)
    """
    if not (math.isfinite(scale) and scale > 0) or not math.isfinite(offset):
        raise ValueError(f"scale must be finite and positive, offset finite; got {scale}, {offset}")
    if not -32768 <= nodata <= 32767:
        raise ValueError(f"nodata {nodata} is not an int16 value")
    arr = native(src)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"quantize_int16 packs real numbers, got dtype {arr.dtype}")
    shape = arr.shape
    flat = arr.reshape(leading(shape, 1), shape[-1] if shape else 1)
    out = pooled_empty(flat.shape, np.int16)
    if flat.size:
        _quantize_int16(flat, float(scale), float(offset), int(nodata), out)
    return out.reshape(shape)

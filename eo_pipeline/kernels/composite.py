"""Temporal-composite kernels: nan-median, max-NDVI and best-available-pixel (BAP) selection.

Layout
------
The per-pixel kernels take blocks as :func:`xarray.apply_ufunc` hands them over with the
time axis last: ``data[y, x, t]`` (any real dtype: uint16 DN or float32 reflectance; the
arrays may be non-contiguous views). A pixel is *invalid* at a date when its value is NaN,
equals ``nodata`` (pass NaN to disable) or, when ``use_mask`` is true, when
``mask[y, x, t] & invalid_bits`` is non-zero (``mask`` is the uint8 bit mask of
``eo_pipeline.steps.masking``; a boolean "invalid" mask is passed as uint8 with ``invalid_bits=1``).
When ``use_mask`` is false ``mask`` may be any uint8 array (e.g. shape ``(0, 0, 0)``).

Outputs are preallocated float32 (values) or uint16 (date index, :data:`NO_DATE` where no
date is valid). Rows run in parallel (``prange``); every row allocates its scratch buffer
once, never per pixel.

:func:`cloud_distance` (from :mod:`eo_pipeline.kernels.distance`, re-exported here) is
spatial: one exact Euclidean distance transform per date, capped, on ``mask[t, y, x]``.

Examples
--------
>>> import numpy as np
>>> cube = np.array([[[3.0, np.nan, 1.0, 2.0]]], dtype=np.float32)  # (y, x, t)
>>> out = np.empty((1, 1), np.float32)
>>> nanmedian_time(cube, np.zeros((0, 0, 0), np.uint8), 0, False, np.nan, out)
>>> float(out[0, 0])
2.0
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from numba import prange

from eo_pipeline.kernels.buffers import pooled_empty
from eo_pipeline.kernels.distance import cloud_distance, distance_block

__all__ = [
    "NO_DATE",
    "argmax_ndvi",
    "argmax_score",
    "bap_block",
    "bap_select",
    "cloud_distance",
    "distance_block",
    "median_block",
    "nanmedian_time",
    "ndvi_block",
    "score_block",
    "take_block",
    "take_time",
]

NO_DATE = 65535
"""Date index written where no date of the pixel is valid (uint16 fill value)."""
_NO_MASK = np.zeros((0, 0, 0), np.uint8)


@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def _is_invalid(
    v: float | np.floating[Any],
    nodata: float,
    mask: int | np.integer[Any],
    use_mask: bool,
    bits: int,
) -> bool:
    """NaN, nodata or masked; ``mask`` is the scalar mask value at the pixel/date."""
    if v != v or v == nodata:
        return True
    return use_mask and (mask & bits) != 0


@numba.njit(cache=True, nogil=True, fastmath=False)
def _select(buf: np.ndarray, n: int, k: int) -> float:
    """k-th smallest of ``buf[:n]`` by quickselect, in place, no sort.

    Median-of-three pivot and a branch-free Lomuto partition (Hoare's FIND with the partition
    of Alexandrescu's "Lomuto's comeback", 2020): the per-element work is a swap and an
    add, so unpredictable comparisons cost no branch mispredictions. On return
    ``buf[:k] <= buf[k] <= buf[k + 1:n]``.
    """
    lo = 0
    hi = n - 1
    while lo < hi:
        if hi == lo + 1:
            if buf[hi] < buf[lo]:
                tmp = buf[lo]
                buf[lo] = buf[hi]
                buf[hi] = tmp
            break
        mid = (lo + hi) >> 1
        a = buf[lo]
        b = buf[mid]
        c = buf[hi]
        if b < a:
            a, b = b, a
        if c < b:
            b, c = c, b
            if b < a:
                a, b = b, a
        buf[lo] = a  # a <= pivot b <= c: both ends are sentinels, pivot parked at hi
        buf[mid] = c
        buf[hi] = b
        i = lo
        for j in range(lo, hi):
            v = buf[j]
            buf[j] = buf[i]
            buf[i] = v
            i += v < b
        buf[hi] = buf[i]
        buf[i] = b
        if i == k:
            break
        if k < i:
            hi = i - 1
        else:
            lo = i + 1
    return buf[k]


NETWORK_MAX_DATES = 64
"""Series up to this many dates are sorted by a network; longer ones use quickselect."""
_XB = 256
"""Pixels of a row sorted together by the network (``dates x 256`` float32 stay in L1/L2)."""


def nanmedian_time(
    data: np.ndarray,
    mask: np.ndarray,
    invalid_bits: int,
    use_mask: bool,
    nodata: float,
    out: np.ndarray,
) -> None:
    """Per-pixel median over the last (time) axis, skipping invalid dates.

    Up to :data:`NETWORK_MAX_DATES` dates, 256 pixels of a row at a time are sorted together
    by Batcher's odd-even merge network (invalid dates as +inf, so each pixel's valid values
    come first): the same compare-exchange sequence for every pixel, no branches, so the
    compiler runs it on SIMD lanes across pixels. Longer series use a per-pixel quickselect.
    Both give :func:`numpy.nanmedian`'s value (the two middle values averaged for an even
    count); NaN where no date is valid.

    Parameters
    ----------
    data
        ``(y, x, t)`` real array (uint16 DN, float32 reflectance...).
    mask, invalid_bits, use_mask, nodata
        Invalid-date tests (see the module docstring).
    out
        ``(y, x)`` float32, written in place.
    """
    if data.shape[2] <= NETWORK_MAX_DATES:
        _nanmedian_network(data, mask, invalid_bits, use_mask, nodata, out)
    else:
        _nanmedian_select(data, mask, invalid_bits, use_mask, nodata, out)


@numba.njit(cache=True, nogil=True)
def batcher_pairs(n: int) -> np.ndarray:
    """Compare-exchange pairs ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort of ``n``.

    Knuth, TAOCP vol. 3, 5.3.4 (the iterative form valid for any ``n``). Applying
    ``a[i], a[j] = min, max`` for each pair in order sorts any ``n`` values.
    """
    count = 0
    for rep in range(2):
        pairs = np.empty((count, 2), np.int64)
        count = 0
        p = 1
        while p < n:
            k = p
            while k >= 1:
                j = k % p
                while j < n - k:
                    for i in range(min(k, n - j - k)):
                        if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                            if rep == 1:
                                pairs[count, 0] = i + j
                                pairs[count, 1] = i + j + k
                            count += 1
                    j += 2 * k
                k //= 2
            p *= 2
    return pairs


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _nanmedian_network(
    data: np.ndarray,
    mask: np.ndarray,
    invalid_bits: int,
    use_mask: bool,
    nodata: float,
    out: np.ndarray,
) -> None:
    ny, nx, nt = data.shape
    pairs = batcher_pairs(nt)
    nxb = (nx + _XB - 1) // _XB
    inf = np.float32(np.inf)
    for job in prange(ny * nxb):
        y = job // nxb
        x0 = (job - y * nxb) * _XB
        w = min(_XB, nx - x0)
        buf = np.empty((nt, _XB), dtype=np.float32)
        cnt = np.zeros(_XB, dtype=np.int32)
        for t in range(nt):
            row = buf[t]
            for i in range(w):
                v = np.float32(data[y, x0 + i, t])
                m = mask[y, x0 + i, t] if use_mask else np.uint8(0)
                bad = _is_invalid(v, nodata, m, use_mask, invalid_bits)
                row[i] = inf if bad else v
                cnt[i] += not bad
        for c in range(pairs.shape[0]):
            lo = buf[pairs[c, 0]]
            hi = buf[pairs[c, 1]]
            for i in range(w):
                a = lo[i]
                b = hi[i]
                lo[i] = min(a, b)
                hi[i] = max(a, b)
        for i in range(w):
            n = cnt[i]
            if n == 0:
                out[y, x0 + i] = np.float32(np.nan)
            elif n & 1:
                out[y, x0 + i] = buf[n >> 1, i]
            else:
                lower = np.float64(buf[(n >> 1) - 1, i])
                out[y, x0 + i] = np.float32((lower + np.float64(buf[n >> 1, i])) * 0.5)


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _nanmedian_select(
    data: np.ndarray,
    mask: np.ndarray,
    invalid_bits: int,
    use_mask: bool,
    nodata: float,
    out: np.ndarray,
) -> None:
    """:func:`nanmedian_time` by a per-pixel quickselect (any number of dates)."""
    ny, nx, nt = data.shape
    for y in prange(ny):
        buf = np.empty(nt, dtype=np.float32)  # one scratch per row
        for x in range(nx):
            n = 0
            for t in range(nt):  # branch-free compaction of the valid dates
                v = np.float32(data[y, x, t])
                m = mask[y, x, t] if use_mask else np.uint8(0)
                buf[n] = v
                n += not _is_invalid(v, nodata, m, use_mask, invalid_bits)
            if n == 0:
                out[y, x] = np.float32(np.nan)
                continue
            k = (n - 1) >> 1
            lower = _select(buf, n, k)
            if n & 1:
                out[y, x] = lower
            else:
                upper = buf[k + 1]
                for i in range(k + 2, n):
                    upper = min(upper, buf[i])  # branch-free
                out[y, x] = np.float32((np.float64(lower) + np.float64(upper)) * 0.5)


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def argmax_ndvi(
    red: np.ndarray,
    nir: np.ndarray,
    mask: np.ndarray,
    invalid_bits: int,
    use_mask: bool,
    nodata_red: float,
    nodata_nir: float,
    out: np.ndarray,
) -> None:
    """Index of the date with the highest NDVI ``(nir - red) / (nir + red)`` per pixel.

    ``red``/``nir`` are ``(y, x, t)`` reflectances (or DN: the ratio is what matters);
    ``out`` is ``(y, x)`` uint16 (the earliest date wins ties; :data:`NO_DATE` where no date
    is valid or ``nir + red == 0`` at every date).
    """
    ny, nx, nt = red.shape
    for y in prange(ny):
        for x in range(nx):
            best = np.float32(-np.inf)
            best_t = NO_DATE
            for t in range(nt):
                r = np.float32(red[y, x, t])
                n = np.float32(nir[y, x, t])
                m = mask[y, x, t] if use_mask else np.uint8(0)
                if _is_invalid(r, nodata_red, m, use_mask, invalid_bits):
                    continue
                if n != n or n == nodata_nir:
                    continue
                s = n + r
                if s == 0:
                    continue
                v = (n - r) / s
                if v > best:
                    best = v
                    best_t = t
            out[y, x] = best_t


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def argmax_score(
    score: np.ndarray,
    mask: np.ndarray,
    invalid_bits: int,
    use_mask: bool,
    nodata: float,
    out: np.ndarray,
) -> None:
    """Index of the date with the highest valid ``score[y, x, t]`` (e.g. a computed NDVI).

    ``out`` is ``(y, x)`` uint16; the earliest date wins ties; :data:`NO_DATE` where none.
    """
    ny, nx, nt = score.shape
    for y in prange(ny):
        for x in range(nx):
            best = np.float32(-np.inf)
            best_t = NO_DATE
            for t in range(nt):
                v = np.float32(score[y, x, t])
                m = mask[y, x, t] if use_mask else np.uint8(0)
                if _is_invalid(v, nodata, m, use_mask, invalid_bits):
                    continue
                if v > best:
                    best = v
                    best_t = t
            out[y, x] = best_t


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def take_time(data: np.ndarray, index: np.ndarray, nodata: float, out: np.ndarray) -> None:
    """Gather ``data[y, x, index[y, x]]`` into float32 ``out[y, x]``.

    NaN where ``index`` is :data:`NO_DATE` or the gathered value is nodata.
    """
    ny, nx, _ = data.shape
    for y in prange(ny):
        for x in range(nx):
            t = index[y, x]
            if t == NO_DATE:
                out[y, x] = np.float32(np.nan)
                continue
            v = np.float32(data[y, x, t])
            out[y, x] = np.float32(np.nan) if v == nodata else v


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def bap_select(
    mask: np.ndarray,
    distance: np.ndarray,
    reference: np.ndarray,
    invalid_bits: int,
    nodata: float,
    static_score: np.ndarray,
    weight_cloud: float,
    distance_max: float,
    slope: float,
    out: np.ndarray,
) -> None:
    """Best-available-pixel date per pixel.

    score(t) = ``static_score[t]`` (weighted day-of-year and sun-zenith scores, computed
    per date by the caller) + ``weight_cloud`` * S(d), with the cloud-distance score
    S(d) = 1 / (1 + exp(-slope * (min(d, distance_max) - distance_max / 2)))
    (the sigmoid of Griffiths et al. 2013 / White et al. 2014). Dates whose ``mask`` has an
    ``invalid_bits`` bit set or whose ``reference`` value is NaN/nodata never win.

    Parameters
    ----------
    mask
        ``(y, x, t)`` uint8 bit mask (always used).
    distance
        ``(y, x, t)`` float32 distance to the nearest cloud in pixels (:func:`cloud_distance`).
    reference
        ``(y, x, t)`` a band whose NaN/nodata marks missing data.
    static_score
        ``(t,)`` float32 per-date part of the score.
    out
        ``(y, x)`` uint16 date index (:data:`NO_DATE` where none is valid).
    """
    ny, nx, nt = mask.shape
    half = distance_max * 0.5
    for y in prange(ny):
        for x in range(nx):
            best = -np.inf
            best_t = NO_DATE
            for t in range(nt):
                v = np.float32(reference[y, x, t])
                if _is_invalid(v, nodata, mask[y, x, t], True, invalid_bits):
                    continue
                d = min(np.float64(distance[y, x, t]), distance_max)
                s = static_score[t] + weight_cloud / (1.0 + math.exp(-slope * (d - half)))
                if s > best:
                    best = s
                    best_t = t
            out[y, x] = best_t


# ----------------------------------------------------------------------------- numpy runners
# Called once per block by eo_pipeline.steps.dispatch.apply_kernel: time last, any leading dims.


def _as3d(a: np.ndarray) -> np.ndarray:
    """``(..., x, t)`` -> ``(rows, x, t)`` (a view when ``a`` is 3-D)."""
    if a.ndim == 3:
        return a
    if a.ndim == 2:
        return a[None]
    return a.reshape(-1, *a.shape[-2:])


def _mask3d(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The mask as a 3-D uint8 view (bool viewed as uint8); a dummy when absent."""
    if mask is None:
        return _NO_MASK
    if mask.dtype == np.bool_:
        mask = mask.view(np.uint8)
    return _as3d(np.broadcast_to(mask, shape))


def median_block(
    data: np.ndarray, mask: np.ndarray | None = None, *, bits: int, nodata: float
) -> np.ndarray:
    """:func:`nanmedian_time` of a ``(..., t)`` block (optional mask of the same shape)."""
    d = _as3d(data)
    out = pooled_empty(d.shape[:2], np.float32)
    nanmedian_time(d, _mask3d(mask, data.shape), bits, mask is not None, nodata, out)
    return out.reshape(data.shape[:-1])


def ndvi_block(
    red: np.ndarray,
    nir: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    bits: int,
    nodata_red: float,
    nodata_nir: float,
) -> np.ndarray:
    """:func:`argmax_ndvi` of ``(..., t)`` red/nir blocks -> uint16 date index."""
    shape = np.broadcast_shapes(red.shape, nir.shape)
    r = _as3d(np.broadcast_to(red, shape))
    out = np.empty(r.shape[:2], np.uint16)
    m = _mask3d(mask, shape)
    argmax_ndvi(
        r,
        _as3d(np.broadcast_to(nir, shape)),
        m,
        bits,
        mask is not None,
        nodata_red,
        nodata_nir,
        out,
    )
    return out.reshape(shape[:-1])


def score_block(
    score: np.ndarray, mask: np.ndarray | None = None, *, bits: int, nodata: float
) -> np.ndarray:
    """:func:`argmax_score` of a ``(..., t)`` block -> uint16 date index."""
    s = _as3d(score)
    out = np.empty(s.shape[:2], np.uint16)
    argmax_score(s, _mask3d(mask, score.shape), bits, mask is not None, nodata, out)
    return out.reshape(score.shape[:-1])


def take_block(data: np.ndarray, index: np.ndarray, *, nodata: float) -> np.ndarray:
    """:func:`take_time`: ``data[..., index]`` as float32."""
    shape = data.shape[:-1]
    idx = np.broadcast_to(index, shape).reshape(-1, shape[-1])
    d = _as3d(data)
    out = pooled_empty(d.shape[:2], np.float32)
    take_time(d, idx, nodata, out)
    return out.reshape(shape)


def bap_block(
    mask: np.ndarray,
    distance: np.ndarray,
    reference: np.ndarray,
    *,
    bits: int,
    nodata: float,
    static_score: np.ndarray,
    weight_cloud: float,
    distance_max: float,
    slope: float,
) -> np.ndarray:
    """:func:`bap_select` of ``(..., t)`` blocks -> uint16 date index."""
    shape = reference.shape
    out = np.empty(_as3d(reference).shape[:2], np.uint16)
    bap_select(
        _mask3d(mask, shape),
        _as3d(np.broadcast_to(distance, shape)),
        _as3d(reference),
        bits,
        nodata,
        static_score,
        weight_cloud,
        distance_max,
        slope,
        out,
    )
    return out.reshape(shape[:-1])

"""Distance to the nearest cloud: one exact Euclidean distance transform per date, capped.

Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions", Theory of Computing 8,
2012: a column pass (two sweeps) then, per row, the lower envelope of parabolas. Used by the
best-available-pixel composite (:mod:`eo_pipeline.kernels.composite`).

Examples
--------
>>> import numpy as np
>>> mask = np.zeros((1, 1, 5), np.uint8); mask[0, 0, 0] = 2
>>> distance_block(mask, bits=2, cap=3)[0, 0].tolist()
[0.0, 1.0, 2.0, 3.0, 3.0]
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from eo_pipeline.kernels.buffers import pooled_empty

__all__ = ["cloud_distance", "distance_block"]


@numba.njit(cache=True, nogil=True, fastmath=False)
def _edt_row(f: np.ndarray, n: int, d: np.ndarray, v: np.ndarray, z: np.ndarray) -> None:
    """1-D squared distance transform of the sampled function ``f`` (lower envelope)."""
    k = 0
    v[0] = 0
    z[0] = -np.inf
    z[1] = np.inf
    for q in range(1, n):
        p = v[k]
        s = ((f[q] + q * q) - (f[p] + p * p)) / (2.0 * q - 2.0 * p)
        while s <= z[k]:  # never below k == 0: z[0] is -inf
            k -= 1
            p = v[k]
            s = ((f[q] + q * q) - (f[p] + p * p)) / (2.0 * q - 2.0 * p)
        k += 1
        v[k] = q
        z[k] = s
        z[k + 1] = np.inf
    k = 0
    for q in range(n):
        while z[k + 1] < q:
            k += 1
        p = v[k]
        d[q] = (q - p) * (q - p) + f[p]


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def cloud_distance(mask: np.ndarray, bits: int, cap: int, out: np.ndarray) -> None:
    """Euclidean distance in pixels to the nearest pixel with ``mask & bits`` set, capped.

    Parameters
    ----------
    mask
        ``(t, y, x)`` uint8 bit mask (time first: one transform per date).
    bits
        Bits that make a pixel a "cloud" (e.g. cloud | shadow | cirrus).
    cap
        Distances above ``cap`` (and dates without any cloud) give ``cap``.
    out
        ``(t, y, x)`` float32, written in place; 0 on cloud pixels.
    """
    nt, ny, nx = mask.shape
    big = np.float32(cap + 1)
    capf = np.float32(cap)
    cap2 = np.float64(cap) * np.float64(cap)
    for t in prange(nt):
        g = out[t]
        # column pass, as two row-major sweeps: vertical distance to the nearest cloud
        for y in range(ny):
            for x in range(nx):
                if (mask[t, y, x] & bits) != 0:
                    g[y, x] = 0.0
                elif y == 0:
                    g[y, x] = big
                else:
                    g[y, x] = min(g[y - 1, x] + np.float32(1.0), big)
        for y in range(ny - 2, -1, -1):
            for x in range(nx):
                below = g[y + 1, x] + np.float32(1.0)
                if below < g[y, x]:
                    g[y, x] = below
        # row pass: exact squared distance by the lower envelope of parabolas
        f = np.empty(nx, dtype=np.float64)
        d = np.empty(nx, dtype=np.float64)
        v = np.empty(nx, dtype=np.int64)
        z = np.empty(nx + 1, dtype=np.float64)
        for y in range(ny):
            for x in range(nx):
                gv = np.float64(g[y, x])
                f[x] = gv * gv
            _edt_row(f, nx, d, v, z)
            for x in range(nx):
                g[y, x] = capf if d[x] >= cap2 else np.float32(math.sqrt(d[x]))


def distance_block(mask: np.ndarray, *, bits: int, cap: int) -> np.ndarray:
    """:func:`cloud_distance` of a ``(t, y, x)`` block into a new float32 array."""
    out = pooled_empty(mask.shape, np.float32)
    cloud_distance(mask, bits, cap, out)
    return out

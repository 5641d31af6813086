"""Atmospheric correction kernels: DN -> TOA reflectance -> surface reflectance in one pass.

Per pixel, from a band's lookup table reduced to the scene's aerosol model, pressure and gas
amounts (:mod:`eo_pipeline.atmosphere.lut`):

- ``rho_toa = (mult * DN + add) [/ cos(sza)]`` (the affine numbers already carry any factor);
- multilinear interpolation at the pixel's (AOT, sun zenith, view zenith, cos relative
  azimuth) of the path reflectance, and of ``T_down(AOT, sza) * T_up(AOT, vza)`` and the
  spherical albedo ``S(AOT)``; gaseous transmittance ``Tg = T1(1/cos sza) * T1(1/cos vza)``
  from a one-way table over air mass (log-linear);
- ``y = (rho_toa / Tg - rho_path) / (T_down * T_up)``, ``rho_s = y / (1 + S * y)`` (6S's
  Lambertian inversion), float32.

Nodata DN -> NaN, saturated DN -> NaN and ``flag`` in ``mask``; sun zenith beyond the limit
or NaN, or any NaN input -> NaN. Interpolation clamps at the table's edges; the caller
checks ranges and raises with the variable named. The coefficients are recomputed only when
a pixel's (sza, vza, raa, AOT) differ from its left neighbour's, so scene-constant geometry
costs one interpolation per row; calibration, cosine, gases and path reflectance fold into
one affine map ``y = A * DN + B`` per coefficient set, so a pixel costs two multiply-adds and
a division (rows with constant inputs run branch-free and vectorise).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

__all__ = ["coefficients", "correct", "forward_toa", "locate"]


@numba.njit(cache=True, nogil=True, fastmath=False)
def locate(nodes, x):
    """(index i, weight w) with ``x ~ nodes[i] * (1 - w) + nodes[i + 1] * w``, clamped."""
    n = nodes.shape[0]
    if n == 1:
        return 0, 0.0
    if x <= nodes[0]:
        return 0, 0.0
    if x >= nodes[n - 1]:
        return n - 2, 1.0
    i = 0
    while nodes[i + 1] < x:
        i += 1
    return i, (x - nodes[i]) / (nodes[i + 1] - nodes[i])


@numba.njit(cache=True, nogil=True, fastmath=False)
def coefficients(s, v, ca, tau, path, tdown, tup, sph, n_sza, n_vza, n_craa, n_aot, lng, n_m):
    """(path, T_down*T_up, S, Tg) at one geometry and AOT (float64)."""
    ia, wa = locate(n_aot, tau)
    isz, ws = locate(n_sza, s)
    iv, wv = locate(n_vza, v)
    ir, wr = locate(n_craa, ca)
    rp = 0.0
    for da in range(2):
        fa = wa if da else 1.0 - wa
        if fa == 0.0:
            continue
        for ds in range(2):
            fs = ws if ds else 1.0 - ws
            if fs == 0.0:
                continue
            for dv in range(2):
                fv = wv if dv else 1.0 - wv
                if fv == 0.0:
                    continue
                for dr in range(2):
                    fr = wr if dr else 1.0 - wr
                    if fr == 0.0:
                        continue
                    rp += fa * fs * fv * fr * path[ia + da, isz + ds, iv + dv, ir + dr]
    td = 0.0
    tu = 0.0
    for da in range(2):
        fa = wa if da else 1.0 - wa
        if fa == 0.0:
            continue
        td += fa * (
            (1.0 - ws) * tdown[ia + da, isz] + ws * tdown[ia + da, min(isz + 1, n_sza.shape[0] - 1)]
        )
        tu += fa * (
            (1.0 - wv) * tup[ia + da, iv] + wv * tup[ia + da, min(iv + 1, n_vza.shape[0] - 1)]
        )
    sa = (1.0 - wa) * sph[ia] + wa * sph[min(ia + 1, n_aot.shape[0] - 1)]
    ms = 1.0 / math.cos(math.radians(s))
    mv = 1.0 / math.cos(math.radians(v))
    im, wm = locate(n_m, ms)
    lt = (1.0 - wm) * lng[im] + wm * lng[min(im + 1, n_m.shape[0] - 1)]
    im, wm = locate(n_m, mv)
    lt += (1.0 - wm) * lng[im] + wm * lng[min(im + 1, n_m.shape[0] - 1)]
    return rp, td * tu, sa, math.exp(lt)


@numba.njit(cache=True, nogil=True, fastmath=False)
def _affine(rp, tt, sa, tg, a, b, s, divide_cos):
    """``y = A * DN + B`` folding calibration, the cosine, gases and path (float64)."""
    inv_cos = 1.0 / math.cos(math.radians(s)) if divide_cos else 1.0
    return a * inv_cos / (tg * tt), (b * inv_cos / tg - rp) / tt


@numba.njit(cache=True, nogil=True, fastmath=False)
def _row_constant(dn, sza, vza, craa, aot, mask, out, t, i, aa, bb, sa, nodata, has_nodata,
                  sat, has_sat, flag):  # fmt: skip
    """One row whose geometry and AOT do not vary: branch-free, so it vectorises."""
    nan = np.float32(np.nan)
    for j in range(dn.shape[2]):
        x = dn[t, i, j]
        bad = (x == nodata) & has_nodata
        saturated = (x >= sat) & has_sat & ~bad
        y = aa * x + bb
        den = 1.0 + sa * y
        r = np.float32(y / den)
        out[t, i, j] = nan if (bad | saturated | (den == 0.0)) else r
        if mask is not None:
            mask[t, i, j] = flag if saturated else np.uint8(0)


@numba.njit(cache=True, nogil=True, fastmath=False)
def _row_aot(dn, aot, mask, out, t, i, s, v, c, a, b, divide_cos, path, tdown, tup, sph,
             n_sza, n_vza, n_craa, n_aot, lng, n_m, nodata, has_nodata, sat, has_sat, flag):  # fmt: skip
    """One row of constant geometry whose AOT varies (a retrieved or user field): the
    tables at every AOT node once (path reflectance, T_down, T_up and S interpolated in the
    geometry), then per pixel a linear interpolation in AOT of each - the same numbers as
    :func:`coefficients`, whose interpolation is linear in AOT for each of them at fixed
    geometry (T_down and T_up separately: their product is not)."""
    na = n_aot.shape[0]
    rps = np.empty(na)
    tds = np.empty(na)
    tus = np.empty(na)
    sas = np.empty(na)
    tg = 1.0
    isz, ws = locate(n_sza, s)
    iv, wv = locate(n_vza, v)
    isz1 = min(isz + 1, n_sza.shape[0] - 1)
    iv1 = min(iv + 1, n_vza.shape[0] - 1)
    for k in range(na):
        rps[k], _, _, tg = coefficients(
            s, v, c, n_aot[k], path, tdown, tup, sph, n_sza, n_vza, n_craa, n_aot, lng, n_m
        )
        tds[k] = (1.0 - ws) * tdown[k, isz] + ws * tdown[k, isz1]
        tus[k] = (1.0 - wv) * tup[k, iv] + wv * tup[k, iv1]
        sas[k] = sph[k]
    inv_cos = 1.0 / math.cos(math.radians(s)) if divide_cos else 1.0
    ga = a * inv_cos / tg
    gb = b * inv_cos / tg
    nan = np.float32(np.nan)
    for j in range(dn.shape[2]):
        x = dn[t, i, j]
        bad = (x == nodata) & has_nodata
        saturated = (x >= sat) & has_sat & ~bad
        if mask is not None:
            mask[t, i, j] = flag if saturated else np.uint8(0)
        tau = np.float64(aot[t, i, j])
        if bad or saturated or tau != tau:
            out[t, i, j] = nan
            continue
        k, w = locate(n_aot, tau)
        k1 = min(k + 1, na - 1)
        rp = rps[k] + (rps[k1] - rps[k]) * w
        tt = (tds[k] + (tds[k1] - tds[k]) * w) * (tus[k] + (tus[k1] - tus[k]) * w)
        sa = sas[k] + (sas[k1] - sas[k]) * w
        y = (ga * x + gb - rp) / tt
        den = 1.0 + sa * y
        out[t, i, j] = np.float32(y / den) if den != 0.0 else nan


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def correct(
    dn, a, b, divide_cos, sza, vza, craa, aot, max_sza,
    path, tdown, tup, sph, n_sza, n_vza, n_craa, n_aot, lngas, n_m,
    nodata, has_nodata, sat, has_sat, flag, out, mask,
):  # fmt: skip
    """Surface reflectance of ``dn`` (n, ny, nx) into ``out`` (float32) and ``mask`` (uint8).

    ``a``, ``b`` (n,): ``rho_toa = a * DN + b`` (then ``/ cos(sza)`` when ``divide_cos``);
    ``sza``, ``vza``, ``craa`` (cos of relative azimuth), ``aot``: arrays broadcast to
    ``dn``'s shape (zero strides are fine: a row whose four inputs all have a zero x stride
    takes the branch-free path); ``lngas`` (n or 1, n_m): log one-way gas transmittance at
    air masses ``n_m``. Tables: ``path`` (aot, sza, vza, craa), ``tdown`` (aot, sza), ``tup``
    (aot, vza), ``sph`` (aot), with nodes ``n_*`` increasing.
    """
    n, ny, nx = dn.shape
    nan = np.float32(np.nan)
    per_time_gas = lngas.shape[0] > 1
    geometry_constant = (sza.strides[2] == 0) & (vza.strides[2] == 0) & (craa.strides[2] == 0)
    aot_constant = aot.strides[2] == 0
    for r in prange(n * ny):
        t = r // ny
        i = r - t * ny
        lng = lngas[t if per_time_gas else 0]
        if geometry_constant and nx > 0:
            s = np.float64(sza[t, i, 0])
            v = np.float64(vza[t, i, 0])
            c = np.float64(craa[t, i, 0])
            tau = np.float64(aot[t, i, 0])
            if s <= max_sza and v == v and c == c and aot_constant and tau == tau:
                rp, tt, sa, tg = coefficients(
                    s, v, c, tau, path, tdown, tup, sph, n_sza, n_vza, n_craa, n_aot, lng, n_m
                )
                aa, bb = _affine(rp, tt, sa, tg, a[t], b[t], s, divide_cos)
                _row_constant(dn, sza, vza, craa, aot, mask, out, t, i, aa, bb, sa,
                              nodata, has_nodata, sat, has_sat, flag)  # fmt: skip
                continue
            if s <= max_sza and v == v and c == c and not aot_constant:
                _row_aot(dn, aot, mask, out, t, i, s, v, c, a[t], b[t], divide_cos, path,
                         tdown, tup, sph, n_sza, n_vza, n_craa, n_aot, lng, n_m, nodata,
                         has_nodata, sat, has_sat, flag)  # fmt: skip
                continue
        last_s = np.nan
        last_v = np.nan
        last_c = np.nan
        last_t = np.nan
        aa = 0.0
        bb = 0.0
        sa = 0.0
        for j in range(nx):
            x = dn[t, i, j]
            bad = (x == nodata) & has_nodata
            saturated = (x >= sat) & has_sat & ~bad
            if mask is not None:
                mask[t, i, j] = flag if saturated else np.uint8(0)
            s = np.float64(sza[t, i, j])
            v = np.float64(vza[t, i, j])
            c = np.float64(craa[t, i, j])
            tau = np.float64(aot[t, i, j])
            if bad or saturated or not (s <= max_sza) or v != v or c != c or tau != tau:
                out[t, i, j] = nan
                continue
            if s != last_s or v != last_v or c != last_c or tau != last_t:
                rp, tt, sa, tg = coefficients(
                    s, v, c, tau, path, tdown, tup, sph, n_sza, n_vza, n_craa, n_aot, lng, n_m
                )
                aa, bb = _affine(rp, tt, sa, tg, a[t], b[t], s, divide_cos)
                last_s, last_v, last_c, last_t = s, v, c, tau
            y = aa * x + bb
            den = 1.0 + sa * y
            out[t, i, j] = np.float32(y / den) if den != 0.0 else nan


@numba.njit(cache=True, nogil=True, fastmath=False)
def forward_toa(rho_s, s, v, ca, tau, path, tdown, tup, sph, n_sza, n_vza, n_craa, n_aot, lng, n_m):
    """TOA reflectance of a Lambertian surface ``rho_s`` (float64) at one geometry and AOT:
    ``Tg * (path + T * rho_s / (1 - S * rho_s))`` from the same tables as :func:`correct`."""
    rp, tt, sa, tg = coefficients(
        s, v, ca, tau, path, tdown, tup, sph, n_sza, n_vza, n_craa, n_aot, lng, n_m
    )
    return tg * (rp + tt * rho_s / (1.0 - sa * rho_s))

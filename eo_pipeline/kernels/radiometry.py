"""Radiometric calibration kernels: one fused pass from integer DN to float32 physical units.

Every calibration this project knows is one affine map followed by a factor,

    ``y = (mult * DN + add) * factor [/ cos(sun_zenith)]``

so one kernel covers them all (:class:`Linear` builds the numbers for each variant):

===========================  ==============  =============  ======================  ==========
variant                      ``mult``        ``add``        ``factor``              zenith
===========================  ==============  =============  ======================  ==========
radiance (L)                 RADIANCE_MULT   RADIANCE_ADD   1                       --
TOA reflectance from L       RADIANCE_MULT   RADIANCE_ADD   ``pi d^2 / ESUN``       yes
Landsat C2 L1 reflectance    REFLECTANCE_M   REFLECTANCE_A  1 (``/sin(elev)``)      yes
Sentinel-2 L1C reflectance   1               RADIO_OFFSET   ``1 / QUANTIFICATION``  --
L2 surface reflectance       sr_scale        sr_offset      1                       --
===========================  ==============  =============  ======================  ==========

Per pixel the arithmetic is done in float64 scalars and rounded once to float32, so results
equal ``numpy.float32(<the same expression in float64>)`` (exactly when ``factor`` is 1 and
no zenith applies, else to float32 rounding). Inputs: integer DN arrays (``uint16`` in
practice) shaped ``(..., y, x)``; leading dimensions (time, band) get their own numbers.

Rules, whatever the variant:

- DN equal to ``nodata`` -> NaN;
- DN ``>= saturation`` -> NaN, and ``flag`` written into the optional ``uint8`` mask
  (never clipped to a valid value);
- sun zenith beyond ``max_zenith`` (85 degrees by default) or NaN -> NaN, never inf; a zero
  ESUN or quantification value -> NaN factor -> NaN, never inf.

Loops are ``prange`` over rows (all leading dims x y flattened), contiguous inner loop over x.

Examples
--------
>>> import numpy as np
>>> dn = np.array([[0, 10000, 65535]], dtype=np.uint16)
>>> cal = Linear.surface_reflectance(2.75e-05, -0.2, nodata=0, saturation=65535)
>>> apply_linear(dn, cal)
array([[  nan, 0.075,   nan]], dtype=float32)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import prange

from eo_pipeline.kernels.arrays import leading, native
from eo_pipeline.kernels.buffers import pooled_empty

__all__ = [
    "Linear",
    "apply_linear",
    "calibrate_block",
    "sentinel2_offset",
    "toa_ndvi_fused",
]

MAX_ZENITH = 85.0
"""Sun zenith (degrees) beyond which reflectance is NaN: 1/cos explodes near the horizon."""


# --------------------------------------------------------------------------- kernels


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _affine(dn, mult, add, factor, nodata, has_nodata, sat, has_sat, flag, out, mask):
    """``out = (mult[t]*dn + add[t]) * factor[t]``; dn ``(n, ny, nx)``, coefficients ``(n,)``.

    ``factor`` is folded into the affine pair once per row (one multiply-add per pixel);
    with ``factor == 1`` the result is exactly ``float32(mult*dn + add)``.
    """
    n, ny, nx = dn.shape
    nan = np.float32(np.nan)
    for r in prange(n * ny):
        t = r // ny
        i = r - t * ny
        a = mult[t] * factor[t]
        b = add[t] * factor[t]
        for j in range(nx):
            x = dn[t, i, j]
            bad = (x == nodata) & has_nodata
            saturated = (x >= sat) & has_sat & ~bad
            v = np.float32(a * x + b)
            if bad | saturated:
                v = nan
            out[t, i, j] = v
            if mask is not None:
                mask[t, i, j] = flag if saturated else np.uint8(0)


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _affine_cos(
    dn, mult, add, factor, cos_zenith, min_cos, nodata, has_nodata, sat, has_sat, flag, out, mask
):
    """As :func:`_affine`, divided by ``cos_zenith`` per pixel (``(1 or n, ny, nx)``);
    ``cos_zenith < min_cos`` or NaN -> NaN."""
    n, ny, nx = dn.shape
    per_time = cos_zenith.shape[0] > 1
    nan = np.float32(np.nan)
    for r in prange(n * ny):
        t = r // ny
        i = r - t * ny
        tz = t if per_time else 0
        a = mult[t] * factor[t]
        b = add[t] * factor[t]
        for j in range(nx):
            x = dn[t, i, j]
            mu = np.float64(cos_zenith[tz, i, j])
            bad = (x == nodata) & has_nodata
            saturated = (x >= sat) & has_sat & ~bad
            v = nan
            if not (bad | saturated) and mu >= min_cos:
                v = np.float32((a * x + b) / mu)
            out[t, i, j] = v
            if mask is not None:
                mask[t, i, j] = flag if saturated else np.uint8(0)


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _cos_degrees(zenith, out):
    """``out = cos(zenith)`` per pixel, taken in float64 and rounded once to ``out``'s dtype."""
    n, ny, nx = zenith.shape
    for r in prange(n * ny):
        t = r // ny
        i = r - t * ny
        for j in range(nx):
            out[t, i, j] = math.cos(math.radians(np.float64(zenith[t, i, j])))


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _ndvi(
    red, nir, ra, rb, rc, na, nb, nc, r_nd, r_has_nd, r_sat, r_has_sat,
    n_nd, n_has_nd, n_sat, n_has_sat, out,
):  # fmt: skip
    """NDVI of the two calibrated bands in one pass; invalid input or zero sum -> NaN."""
    n, ny, nx = red.shape
    nan = np.float32(np.nan)
    for r in prange(n * ny):
        t = r // ny
        i = r - t * ny
        a1 = ra[t]
        b1 = rb[t]
        c1 = rc[t]
        a2 = na[t]
        b2 = nb[t]
        c2 = nc[t]
        for j in range(nx):
            x = red[t, i, j]
            y = nir[t, i, j]
            bad = (
                (r_has_nd and x == r_nd)
                or (r_has_sat and x >= r_sat)
                or (n_has_nd and y == n_nd)
                or (n_has_sat and y >= n_sat)
            )
            rho_r = (a1 * x + b1) * c1
            rho_n = (a2 * y + b2) * c2
            s = rho_n + rho_r
            v = nan
            if not bad and s != 0.0:
                v = np.float32((rho_n - rho_r) / s)
            out[t, i, j] = v


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Linear:
    """Numbers of one calibration ``y = (mult * DN + add) * factor [/ cos(sun_zenith)]``.

    Each number is a scalar or an array over the leading dims of the DN array (e.g. one per
    time step). Use the constructors (:meth:`radiance`, :meth:`toa_reflectance`,
    :meth:`landsat_reflectance`, :meth:`sentinel2_reflectance`, :meth:`surface_reflectance`)
    rather than the raw fields.

    Examples
    --------
    >>> Linear.sentinel2_reflectance(10000.0, offset=-1000.0).add
    -1000.0
    """

    mult: Any
    """Multiplicative rescaling of DN (float or array over leading dims)."""
    add: Any
    """Additive rescaling, in the units of ``mult * DN``."""
    factor: Any = 1.0
    """Multiplier applied after the affine map (``pi d^2 / ESUN``, ``1 / Q``...)."""
    sun_zenith: Any = None
    """Degrees. ``None``: no cosine. Scalar/leading-dims array: one per scene. An array
    shaped like the DN's ``(y, x)`` (optionally with leading dims): per pixel."""
    nodata: int | None = 0
    """DN that marks no data (-> NaN); ``None`` when every DN is data."""
    saturation: int | None = None
    """DN at and above which the detector is saturated (-> NaN, flagged); ``None``: never."""

    @classmethod
    def radiance(
        cls, mult: Any, add: Any, *, nodata: int | None = 0, saturation: int | None = None
    ) -> Linear:
        """``L = mult * DN + add`` (W m-2 sr-1 um-1; DIMAP ``DN/GAIN + BIAS`` as ``1/GAIN``)."""
        return cls(mult, add, 1.0, None, nodata, saturation)

    @classmethod
    def toa_reflectance(
        cls,
        mult: Any,
        add: Any,
        esun: Any,
        earth_sun_distance: Any,
        sun_zenith: Any,
        *,
        nodata: int | None = 0,
        saturation: int | None = None,
    ) -> Linear:
        """``rho = pi * L * d^2 / (ESUN * cos(zenith))`` with ``L = mult * DN + add``.

        ESUN in W m-2 um-1 at 1 AU, ``d`` in AU, zenith in degrees. ESUN <= 0 gives NaN.
        """
        esun_a = np.asarray(esun, dtype=np.float64)
        d = np.asarray(earth_sun_distance, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(esun_a > 0, np.pi * d * d / np.where(esun_a > 0, esun_a, 1.0), np.nan)
        return cls(mult, add, _scalar_or(factor), sun_zenith, nodata, saturation)

    @classmethod
    def landsat_reflectance(
        cls,
        mult: Any,
        add: Any,
        sun_elevation: Any,
        *,
        nodata: int | None = 0,
        saturation: int | None = None,
    ) -> Linear:
        """Landsat Collection 2 L1: ``rho = (M * Q + A) / sin(sun_elevation)`` (degrees)."""
        zenith = 90.0 - np.asarray(sun_elevation)
        return cls(mult, add, 1.0, _scalar_or(zenith), nodata, saturation)

    @classmethod
    def sentinel2_reflectance(
        cls,
        quantification: Any,
        offset: Any = 0.0,
        *,
        nodata: int | None = 0,
        saturation: int | None = 65535,
    ) -> Linear:
        """Sentinel-2 L1C: ``rho = (DN + RADIO_ADD_OFFSET) / QUANTIFICATION_VALUE``.

        ``offset`` is 0 before processing baseline 04.00 and -1000 from it on
        (see :func:`sentinel2_offset`); the sun correction is already applied by ESA.
        """
        q = np.asarray(quantification, dtype=np.float64)
        with np.errstate(divide="ignore"):
            factor = np.where(q > 0, 1.0 / np.where(q > 0, q, 1.0), np.nan)
        return cls(1.0, offset, _scalar_or(factor), None, nodata, saturation)

    @classmethod
    def surface_reflectance(
        cls, scale: Any, offset: Any, *, nodata: int | None = 0, saturation: int | None = None
    ) -> Linear:
        """L2 products: ``rho = scale * DN + offset`` (Landsat C2: 2.75e-05, -0.2)."""
        return cls(scale, offset, 1.0, None, nodata, saturation)


def _scalar_or(value: np.ndarray) -> Any:
    return float(value) if np.ndim(value) == 0 else value


def sentinel2_offset(processing_baseline: str | None) -> float:
    """RADIO_ADD_OFFSET implied by a Sentinel-2 processing baseline when the MTD omits it.

    Baselines before ``04.00`` have none (0); ``04.00`` and later shift DN by -1000.

    Examples
    --------
    >>> sentinel2_offset("02.09"), sentinel2_offset("04.00"), sentinel2_offset("05.10")
    (0.0, -1000.0, -1000.0)
    """
    if not processing_baseline:
        return 0.0
    major, _, minor = str(processing_baseline).partition(".")
    return -1000.0 if (int(major), int(minor or 0)) >= (4, 0) else 0.0


# --------------------------------------------------------------------------- runners


def _leading(value: Any, dn: np.ndarray, name: str) -> np.ndarray:
    """Coefficient as a contiguous float64 vector over the flattened leading dims of ``dn``."""
    v = np.asarray(value, dtype=np.float64)
    if v.ndim == dn.ndim and v.shape[-2:] == (1, 1):
        v = v[..., 0, 0]
    try:
        v = np.broadcast_to(v, dn.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{name}: shape {np.shape(value)} does not match the leading dims {dn.shape[:-2]} "
            "of the DN array"
        ) from None
    return np.ascontiguousarray(v).reshape(-1)


def _limit(value: int | None, dtype: np.dtype[Any]) -> tuple[Any, bool]:
    """A nodata/saturation DN in ``dtype`` (so the comparison stays narrow) and whether it applies."""
    if value is None:
        return dtype.type(0), False
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            return dtype.type(0), False
    return dtype.type(value), True


def _fold_zenith(factor: np.ndarray, zenith: Any, dn: np.ndarray, max_zenith: float) -> np.ndarray:
    """``factor / cos(zenith)`` for a per-scene zenith; NaN beyond ``max_zenith`` or NaN zenith."""
    z = _leading(zenith, dn, "sun_zenith")
    with np.errstate(invalid="ignore"):
        return np.where(z <= max_zenith, factor / np.cos(np.radians(z)), np.nan)


def _is_per_pixel(zenith: Any, dn: np.ndarray) -> bool:
    return np.ndim(zenith) >= 2 and np.shape(zenith)[-2:] == dn.shape[-2:] != (1, 1)


def calibrate_block(
    dn: np.ndarray,
    mult: Any,
    add: Any,
    factor: Any = 1.0,
    sun_zenith: Any = None,
    *,
    nodata: int | None = 0,
    saturation: int | None = None,
    flag: int = 1,
    max_zenith: float = MAX_ZENITH,
    out: np.ndarray | None = None,
    mask: np.ndarray | bool | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Generic runner: ``(mult * DN + add) * factor [/ cos(sun_zenith)]`` -> float32.

    Parameters
    ----------
    dn
        Integer DN, shape ``(..., y, x)`` with at least two dims.
    mult, add, factor
        Scalars or arrays over the leading dims (a trailing ``(1, 1)`` is accepted, as
        :func:`xarray.apply_ufunc` passes them).
    sun_zenith
        ``None``; degrees per scene (scalar or leading-dims array, folded into ``factor``);
        or per pixel (shape ``(..., y, x)``, float32 or float64).
    nodata, saturation
        See the module docstring.
    flag
        Value written into ``mask`` at saturated pixels (e.g. a per-band bit).
    max_zenith
        Degrees; larger zenith -> NaN.
    out
        Preallocated float32 output of ``dn``'s shape (C-contiguous).
    mask
        ``True`` to allocate, or a preallocated uint8 array of ``dn``'s shape.

    Returns
    -------
    out, or ``(out, mask)`` when ``mask`` is given.

    Examples
    --------
    >>> import numpy as np
    >>> dn = np.array([[[7, 0, 9]]], dtype=np.uint16)
    >>> calibrate_block(dn, 2.0, 1.0, saturation=9, mask=True)
    (array([[[15., nan, nan]]], dtype=float32), array([[[0, 0, 1]]], dtype=uint8))
    """
    dn = native(dn)
    if dn.ndim < 2:
        raise ValueError(f"DN array must have at least 2 dims (y, x), got shape {dn.shape}")
    shape = dn.shape
    ny, nx = shape[-2:]
    dn3 = np.ascontiguousarray(dn).reshape(leading(shape), ny, nx)
    a = _leading(mult, dn, "mult")
    b = _leading(add, dn, "add")
    c = _leading(factor, dn, "factor")
    per_pixel = sun_zenith is not None and _is_per_pixel(sun_zenith, dn)
    if sun_zenith is not None and not per_pixel:
        c = _fold_zenith(c, sun_zenith, dn, max_zenith)
    if out is None:
        out = pooled_empty(shape, np.float32)
    if out.dtype != np.float32 or out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
    mask_arr: np.ndarray | None
    if mask is True:
        mask_arr = np.empty(shape, dtype=np.uint8)
    elif mask is None or mask is False:
        mask_arr = None
    else:
        mask_arr = mask
    if mask_arr is not None and (
        mask_arr.dtype != np.uint8 or mask_arr.shape != shape or not mask_arr.flags.c_contiguous
    ):
        raise ValueError(f"mask must be a C-contiguous uint8 array of shape {shape}")
    nd, has_nd = _limit(nodata, dn.dtype)
    sat, has_sat = _limit(saturation, dn.dtype)
    out3 = out.reshape(dn3.shape)
    mask3 = None if mask_arr is None else mask_arr.reshape(dn3.shape)
    if per_pixel:
        zen = native(sun_zenith)
        if zen.dtype not in (np.float32, np.float64):
            zen = zen.astype(np.float64)
        lead = int(np.prod(zen.shape[:-2], dtype=np.int64))
        if lead not in (1, dn3.shape[0]):
            zen = np.broadcast_to(zen, shape)
        zen3 = np.ascontiguousarray(zen).reshape(leading(zen.shape), ny, nx)
        mu3 = np.empty(zen3.shape, dtype=zen3.dtype)
        _cos_degrees(zen3, mu3)
        min_cos = float(zen3.dtype.type(math.cos(math.radians(max_zenith))))
        _affine_cos(
            dn3, a, b, c, mu3, min_cos, nd, has_nd, sat, has_sat, np.uint8(flag), out3, mask3
        )
    else:
        _affine(dn3, a, b, c, nd, has_nd, sat, has_sat, np.uint8(flag), out3, mask3)
    return (out, mask_arr) if mask_arr is not None else out


def apply_linear(
    dn: np.ndarray,
    cal: Linear,
    *,
    out: np.ndarray | None = None,
    mask: np.ndarray | bool | None = None,
    max_zenith: float = MAX_ZENITH,
) -> Any:
    """Apply a :class:`Linear` calibration to a DN array in one fused pass.

    Examples
    --------
    >>> import numpy as np
    >>> dn = np.full((2, 2), 20000, dtype=np.uint16)
    >>> rho = apply_linear(dn, Linear.landsat_reflectance(2e-05, -0.1, sun_elevation=30.0))
    >>> float(rho[0, 0])
    0.6000000238418579
    """
    return calibrate_block(
        dn,
        cal.mult,
        cal.add,
        cal.factor,
        cal.sun_zenith,
        nodata=cal.nodata,
        saturation=cal.saturation,
        out=out,
        mask=mask,
        max_zenith=max_zenith,
    )


def toa_ndvi_fused(
    red_dn: np.ndarray,
    nir_dn: np.ndarray,
    red: Linear,
    nir: Linear,
    *,
    out: np.ndarray | None = None,
    max_zenith: float = MAX_ZENITH,
) -> np.ndarray:
    """NDVI straight from two DN bands: calibrate both and combine in one pass (float32).

    A per-scene zenith is folded into each band's factor; NDVI is invariant to a common
    ``1/cos(zenith)``, so a per-pixel zenith is not needed here (zenith beyond
    ``max_zenith`` still gives NaN). Nodata or saturation in either band, or a zero sum
    -> NaN.

    Examples
    --------
    >>> import numpy as np
    >>> red = np.array([[1000, 0]], dtype=np.uint16)
    >>> nir = np.array([[3000, 3000]], dtype=np.uint16)
    >>> cal = Linear.surface_reflectance(1e-4, 0.0)
    >>> toa_ndvi_fused(red, nir, cal, cal)
    array([[0.5, nan]], dtype=float32)
    """
    red_dn, nir_dn = native(red_dn), native(nir_dn)
    if red_dn.shape != nir_dn.shape or red_dn.ndim < 2:
        raise ValueError(
            f"red and NIR DN must share one (..., y, x) shape: {red_dn.shape} vs {nir_dn.shape}"
        )
    shape = red_dn.shape
    ny, nx = shape[-2:]
    coef = []
    for cal, dn in ((red, red_dn), (nir, nir_dn)):
        if _is_per_pixel(cal.sun_zenith, dn):
            raise ValueError("toa_ndvi_fused takes a per-scene sun_zenith (NDVI cancels 1/cos)")
        a = _leading(cal.mult, dn, "mult")
        b = _leading(cal.add, dn, "add")
        c = _leading(cal.factor, dn, "factor")
        if cal.sun_zenith is not None:
            c = _fold_zenith(c, cal.sun_zenith, dn, max_zenith)
        coef.append((a, b, c))
    if out is None:
        out = pooled_empty(shape, np.float32)
    if out.dtype != np.float32 or out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
    r_nd, r_has_nd = _limit(red.nodata, red_dn.dtype)
    r_sat, r_has_sat = _limit(red.saturation, red_dn.dtype)
    n_nd, n_has_nd = _limit(nir.nodata, nir_dn.dtype)
    n_sat, n_has_sat = _limit(nir.saturation, nir_dn.dtype)
    lead = leading(shape)
    _ndvi(
        np.ascontiguousarray(red_dn).reshape(lead, ny, nx),
        np.ascontiguousarray(nir_dn).reshape(lead, ny, nx),
        *coef[0], *coef[1],
        r_nd, r_has_nd, r_sat, r_has_sat, n_nd, n_has_nd, n_sat, n_has_sat,
        out.reshape(lead, ny, nx),
    )  # fmt: skip
    return out

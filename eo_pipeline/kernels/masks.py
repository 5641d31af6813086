"""Numba kernels for pixel masks: Landsat QA_PIXEL decoding, DN nodata/saturation, spectral tests.

Every kernel writes the one mask format of eo-pipeline, a ``uint8`` raster of flags
(:data:`MASK_BITS`), whatever the sensor:

=====  ==========  ===========================================================
 bit    name        meaning
=====  ==========  ===========================================================
  0     nodata      no valid measurement (fill, nodata DN, NaN reflectance)
  1     cloud       cloud (opaque or dilated)
  2     shadow      cloud shadow
  3     snow        snow or ice
  4     water       water
  5     cirrus      thin cirrus
  6     saturated   a band is radiometrically saturated
  7     clear       valid and none of cloud, shadow, cirrus, saturated
=====  ==========  ===========================================================

A ``nodata`` pixel has no other bit. ``snow`` and ``water`` describe the surface and may be
set on clear pixels. ``clear`` is always recomputed from the other bits, so a pixel is clear
exactly when ``mask & (NODATA | CLOUD | SHADOW | CIRRUS | SATURATED) == 0``.

Landsat Collection 2 ``QA_PIXEL`` (USGS, *Landsat 8-9 Collection 2 Level 2 Science Product
Guide*, LSDS-1619, section "Pixel Quality Assessment Band", table of QA_PIXEL bits; the same
layout is in the Level-1 product guide LSDS-1822 and for Landsat 4-7 without cirrus):
bit 0 fill, 1 dilated cloud, 2 cirrus (high confidence), 3 cloud, 4 cloud shadow, 5 snow,
6 clear (cloud and dilated-cloud bits both unset), 7 water; two-bit confidences (0 none,
1 low, 2 medium, 3 high) in bits 8-9 cloud, 10-11 cloud shadow, 12-13 snow/ice, 14-15 cirrus.

The spectral tests (sensors with no QA band; inputs are TOA reflectance, float32, NaN =
nodata) adapt the pixel tests of Fmask (Zhu & Woodcock 2012, *Object-based cloud and cloud
shadow detection in Landsat imagery*, Remote Sens. Environ. 118:83-94) and ACCA (Irish et
al. 2006, PE&RS 72(10):1179-1188); see :func:`spectral_flags` for the adaptation to sensors
with only blue/green/red/(red-edge)/NIR such as KazEOSat-1/2.

Kernels import numpy, numba and math only; arrays are 2-D ``(rows, cols)``; optional
inputs are passed as empty ``(0, 0)`` arrays.

Examples
--------
>>> import numpy as np
>>> qa = np.array([[1, 21824, 21952, 55052]], dtype=np.uint16)
>>> out = np.empty(qa.shape, np.uint8)
>>> none16, none8 = np.empty((0, 0), np.uint16), np.empty((0, 0), np.uint8)
>>> qa_pixel_to_mask(qa, none16, none8, True, 0, 0, 0, 0, out)
>>> [mask_names(int(v)) for v in out[0]]
[('nodata',), ('clear',), ('water', 'clear'), ('cloud', 'cirrus')]
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

__all__ = [
    "CIRRUS",
    "CLEAR",
    "CLOUD",
    "MASK_BITS",
    "NODATA",
    "RADSAT_SATURATION_BITS",
    "SATURATED",
    "SHADOW",
    "SNOW",
    "WATER",
    "box_mean",
    "dilate_flag",
    "dn_nodata_saturation",
    "mask_names",
    "qa_pixel_to_mask",
    "scl_to_mask",
    "shadow_and_clear",
    "spectral_flags",
]

NODATA = 1
CLOUD = 2
SHADOW = 4
SNOW = 8
WATER = 16
CIRRUS = 32
SATURATED = 64
CLEAR = 128

MASK_BITS: tuple[tuple[int, str, str], ...] = (
    (0, "nodata", "no valid measurement (fill, nodata DN, NaN reflectance); no other bit set"),
    (1, "cloud", "cloud (opaque, or dilated cloud)"),
    (2, "shadow", "cloud shadow"),
    (3, "snow", "snow or ice"),
    (4, "water", "water"),
    (5, "cirrus", "thin cirrus"),
    (6, "saturated", "at least one band radiometrically saturated"),
    (7, "clear", "valid and none of cloud, shadow, cirrus, saturated"),
)
"""The common mask format: ``(bit, name, meaning)`` for every bit of the uint8 mask."""

NOT_CLEAR = NODATA | CLOUD | SHADOW | CIRRUS | SATURATED
"""Bits any of which make a pixel not clear."""

RADSAT_SATURATION_BITS = 0x01FF
"""Landsat C2 ``QA_RADSAT`` bits 0-8: saturation of bands 1-9 (bit 11, terrain occlusion, is
not saturation and is ignored)."""


def mask_names(value: int) -> tuple[str, ...]:
    """Names of the flags set in one mask value, in bit order.

    >>> mask_names(2 | 32)
    ('cloud', 'cirrus')
    """
    return tuple(name for bit, name, _ in MASK_BITS if value >> bit & 1)


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def qa_pixel_to_mask(
    qa: np.ndarray,
    radsat: np.ndarray,
    prior: np.ndarray,
    dilated_as_cloud: bool,
    cloud_confidence: int,
    shadow_confidence: int,
    snow_confidence: int,
    cirrus_confidence: int,
    out: np.ndarray,
) -> None:
    """Decode Landsat C2 ``QA_PIXEL`` (uint16) into the common mask, one pass.

    Parameters
    ----------
    qa
        ``QA_PIXEL`` values, uint16 ``(rows, cols)``.
    radsat
        ``QA_RADSAT`` values (uint16, same shape) or an empty ``(0, 0)`` array; any of bits 0-8
        (:data:`RADSAT_SATURATION_BITS`) sets ``saturated``.
    prior
        uint8 flags to merge (e.g. from :func:`dn_nodata_saturation`), or ``(0, 0)``; only its
        ``nodata`` and ``saturated`` bits are used.
    dilated_as_cloud
        Count the dilated-cloud bit (1) as cloud.
    cloud_confidence, shadow_confidence, snow_confidence, cirrus_confidence
        When > 0, a pixel whose two-bit confidence is at least this value (1 low, 2 medium,
        3 high) also gets the flag; 0 uses the single bits 3, 4, 5 and 2 only.
    out
        uint8 ``(rows, cols)`` output.
    """
    rows, cols = qa.shape
    use_radsat = radsat.shape[0] == rows and radsat.shape[1] == cols
    use_prior = prior.shape[0] == rows and prior.shape[1] == cols
    for r in prange(rows):
        for c in range(cols):
            q = np.int64(qa[r, c])
            pre = np.int64(prior[r, c]) if use_prior else np.int64(0)
            if q & 1 or pre & NODATA:
                out[r, c] = NODATA
                continue
            m = 0
            if (q >> 3 & 1) or (dilated_as_cloud and (q >> 1 & 1)):
                m |= CLOUD
            elif cloud_confidence > 0 and (q >> 8 & 3) >= cloud_confidence:
                m |= CLOUD
            if (q >> 4 & 1) or (shadow_confidence > 0 and (q >> 10 & 3) >= shadow_confidence):
                m |= SHADOW
            if (q >> 5 & 1) or (snow_confidence > 0 and (q >> 12 & 3) >= snow_confidence):
                m |= SNOW
            if q >> 7 & 1:
                m |= WATER
            if (q >> 2 & 1) or (cirrus_confidence > 0 and (q >> 14 & 3) >= cirrus_confidence):
                m |= CIRRUS
            if pre & SATURATED or (use_radsat and np.int64(radsat[r, c]) & RADSAT_SATURATION_BITS):
                m |= SATURATED
            if not m & NOT_CLEAR:
                m |= CLEAR
            out[r, c] = m


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def scl_to_mask(scl: np.ndarray, lut: np.ndarray, prior: np.ndarray, out: np.ndarray) -> None:
    """Map a Sentinel-2 L2A scene classification (SCL, uint8) onto the common mask.

    Parameters
    ----------
    scl
        SCL class codes, uint8 ``(rows, cols)`` (Sen2Cor: 0 no data, 1 saturated/defective,
        2 dark features, 3 cloud shadow, 4 vegetation, 5 not vegetated, 6 water,
        7 unclassified, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus,
        11 snow/ice).
    lut
        uint8 ``(256,)``: the mask bits of each class (``clear`` is recomputed here; a class
        mapped to :data:`NODATA` gets no other bit).
    prior
        uint8 flags to merge (e.g. :func:`dn_nodata_saturation` of the bands) or ``(0, 0)``;
        only its ``nodata`` and ``saturated`` bits are used.
    out
        uint8 ``(rows, cols)`` output.
    """
    rows, cols = scl.shape
    use_prior = prior.shape[0] == rows and prior.shape[1] == cols
    for r in prange(rows):
        for c in range(cols):
            m = np.int64(lut[scl[r, c]])
            pre = np.int64(prior[r, c]) if use_prior else np.int64(0)
            if m & NODATA or pre & NODATA:
                out[r, c] = NODATA
                continue
            m |= pre & SATURATED
            if not m & NOT_CLEAR:
                m |= CLEAR
            out[r, c] = m


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def dn_nodata_saturation(
    bands: tuple[np.ndarray, ...], nodata: np.ndarray, saturation: np.ndarray, out: np.ndarray
) -> None:
    """Nodata and saturation flags of several DN bands in one pass.

    Parameters
    ----------
    bands
        Tuple of same-dtype, same-shape integer DN arrays ``(rows, cols)``.
    nodata
        int64 array, one nodata DN per band (a value outside the dtype's range disables it).
    saturation
        int64 array, one saturation DN per band: ``DN >= saturation`` is saturated.
    out
        uint8 ``(rows, cols)``: :data:`NODATA` where any band equals its nodata DN (no other
        bit), else :data:`SATURATED` where any band is saturated, else :data:`CLEAR`.
    """
    rows, cols = out.shape
    nb = len(bands)
    for r in prange(rows):
        for c in range(cols):
            m = CLEAR
            for b in range(nb):
                v = np.int64(bands[b][r, c])
                if v == nodata[b]:
                    m = NODATA
                    break
                if v >= saturation[b]:
                    m = SATURATED
            out[r, c] = m


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def spectral_flags(
    blue: np.ndarray,
    green: np.ndarray,
    red: np.ndarray,
    nir: np.ndarray,
    swir16: np.ndarray,
    swir22: np.ndarray,
    cirrus: np.ndarray,
    prior: np.ndarray,
    cloud_brightness_min: float,
    whiteness_max: float,
    hot_offset: float,
    vnir_ratio_max: float,
    ndvi_cloud_max: float,
    nir_swir_min: float,
    swir22_min: float,
    cirrus_min: float,
    ndsi_min: float,
    snow_nir_min: float,
    snow_green_min: float,
    snow_brightness_min: float,
    snow_nir_red_max: float,
    snow_swir16_max: float,
    snow_swir22_max: float,
    water_ndwi_min: float,
    out: np.ndarray,
) -> None:
    """Per-pixel spectral tests on TOA reflectance (float32, NaN = nodata), one pass.

    Writes nodata, saturated, cloud, cirrus, snow and water bits; ``shadow`` and ``clear``
    are left to :func:`shadow_and_clear`.

    Tests (``vis = (blue + green + red) / 3``; ratios are written as products, so no test
    divides by zero; a NaN index fails every test):

    - nodata: any used band NaN; ``prior`` saturated pixels get ``saturated`` instead
      (calibration turns saturated DN into NaN), and no spectral test.
    - snow, with a SWIR band: NDSI ``(green - swir16) / (green + swir16) > ndsi_min`` and
      ``nir > snow_nir_min`` and ``green > snow_green_min`` (Fmask's snow test without the
      thermal one; ``ndsi_min`` 0.4 as in SNOMAP, Hall et al. 1995, to compensate), and
      either dark in the SWIR, ``swir16 < snow_swir16_max`` and ``swir22 < snow_swir22_max``
      where that band exists (ice absorbs strongly at 1.6 and 2.2 um, Dozier 1989, Remote
      Sens. Environ. 28:9-22), or with the NIR dip of snow, ``nir < snow_nir_red_max * red``
      (patchy snow mixed with soil is brighter in the SWIR). Ice clouds reach NDSI 0.4-0.8
      too (the thermal test would catch them); on the real Landsat scene of the tests 90 % of
      them keep ``nir/red >= 0.95`` and most are bright at 1.6 um, so they stay clouds;
      without SWIR (KazEOSat): bright (``vis > snow_brightness_min``), white, and a NIR dip
      relative to red, ``nir < snow_nir_red_max * red`` (snow's reflectance falls from the
      visible to 0.85 um; clouds stay flat), and ``nir > snow_nir_min``.
    - cloud (not snow): Fmask's whiteness ``sum |b - vis| / vis < whiteness_max`` and HOT
      ``blue - 0.5 red - hot_offset > 0`` (Zhang et al. 2002), ``NDVI < ndvi_cloud_max``;
      ACCA's filters 5 and 6, ``nir / red < vnir_ratio_max`` and ``nir / green <
      vnir_ratio_max``; a brightness gate ``vis > cloud_brightness_min`` standing in for the
      thermal tests that 4/5-band sensors cannot run; with SWIR, Fmask's ``nir / swir16 >
      nir_swir_min`` (rules out bright rock); with the 2.2 um band, ``swir22 > swir22_min``.
    - cirrus: with a cirrus band (1.38 um), ``cirrus > cirrus_min``.
    - water (not cloud, not snow): Fmask's ``(NDVI < 0.01 and nir < 0.11) or (NDVI < 0.1 and
      nir < 0.05)``, with McFeeters' NDWI ``(green - nir) / (green + nir) > water_ndwi_min``.

    Parameters
    ----------
    blue, green, red, nir
        float32 TOA reflectance ``(rows, cols)``.
    swir16, swir22, cirrus
        float32 reflectance of the same shape, or ``(0, 0)`` when the sensor lacks the band.
    prior
        uint8 flags (``nodata``/``saturated`` bits used), or ``(0, 0)``.
    out
        uint8 ``(rows, cols)``.
    """
    rows, cols = blue.shape
    has_s1 = swir16.shape[0] == rows and swir16.shape[1] == cols
    has_s2 = swir22.shape[0] == rows and swir22.shape[1] == cols
    has_ci = cirrus.shape[0] == rows and cirrus.shape[1] == cols
    has_prior = prior.shape[0] == rows and prior.shape[1] == cols
    for r in prange(rows):
        for c in range(cols):
            pre = np.int64(prior[r, c]) if has_prior else np.int64(0)
            if pre & NODATA:
                out[r, c] = NODATA
                continue
            b = np.float64(blue[r, c])
            g = np.float64(green[r, c])
            rd = np.float64(red[r, c])
            n = np.float64(nir[r, c])
            s1 = np.float64(swir16[r, c]) if has_s1 else 0.0
            s2 = np.float64(swir22[r, c]) if has_s2 else 0.0
            ci = np.float64(cirrus[r, c]) if has_ci else 0.0
            if (
                math.isnan(b)
                or math.isnan(g)
                or math.isnan(rd)
                or math.isnan(n)
                or math.isnan(s1)
                or math.isnan(s2)
                or math.isnan(ci)
            ):
                out[r, c] = SATURATED if pre & SATURATED else NODATA
                continue
            m = SATURATED if pre & SATURATED else 0
            vis = (b + g + rd) / 3.0
            white = (abs(b - vis) + abs(g - vis) + abs(rd - vis)) / vis if vis > 0.0 else math.nan
            ndvi = (n - rd) / (n + rd) if n + rd != 0.0 else math.nan
            is_white = white < whiteness_max
            if has_s1:
                ndsi = (g - s1) / (g + s1) if g + s1 != 0.0 else math.nan
                swir_dark = s1 < snow_swir16_max and (not has_s2 or s2 < snow_swir22_max)
                snow = (
                    ndsi > ndsi_min
                    and n > snow_nir_min
                    and g > snow_green_min
                    and (swir_dark or n < snow_nir_red_max * rd)
                )
            else:
                snow = (
                    vis > snow_brightness_min
                    and is_white
                    and n < snow_nir_red_max * rd
                    and n > snow_nir_min
                )
            cloud = (
                not snow
                and vis > cloud_brightness_min
                and is_white
                and b - 0.5 * rd - hot_offset > 0.0
                and ndvi < ndvi_cloud_max
                and n < vnir_ratio_max * rd
                and n < vnir_ratio_max * g
            )
            if cloud and has_s1 and not n > nir_swir_min * s1:
                cloud = False
            if cloud and has_s2 and not s2 > swir22_min:
                cloud = False
            if cloud:
                m |= CLOUD
            elif snow:
                m |= SNOW
            else:
                ndwi_ok = g - n > water_ndwi_min * (g + n) and g + n != 0.0
                if ndwi_ok and ((ndvi < 0.01 and n < 0.11) or (ndvi < 0.1 and n < 0.05)):
                    m |= WATER
            if has_ci and ci > cirrus_min:
                m |= CIRRUS
            out[r, c] = m


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def dilate_flag(mask: np.ndarray, bit: int, radius: int, drop: int, out: np.ndarray) -> None:
    """Square (Chebyshev) dilation of one flag by ``radius`` pixels.

    Every valid pixel within ``radius`` rows and columns of a pixel having ``bit`` gets
    ``bit``; pixels that newly get it lose the bits in ``drop`` (e.g. ``clear``). Nodata
    pixels are never flagged. Two separable passes (a running count along rows, then a
    column window), O(radius) per pixel.

    Parameters
    ----------
    mask
        uint8 flags ``(rows, cols)`` (not modified).
    bit
        The flag value to dilate (e.g. :data:`CLOUD`).
    radius
        Pixels; 0 copies ``mask``.
    drop
        Flag values removed where ``bit`` is newly set.
    out
        uint8 ``(rows, cols)`` output, distinct from ``mask``.
    """
    rows, cols = mask.shape
    horiz = np.zeros((rows, cols), dtype=np.uint8)
    for r in prange(rows):
        count = 0
        for c in range(min(radius, cols - 1) + 1):
            if mask[r, c] & bit:
                count += 1
        for c in range(cols):
            horiz[r, c] = 1 if count > 0 else 0
            add = c + radius + 1
            if add < cols and mask[r, add] & bit:
                count += 1
            sub = c - radius
            if sub >= 0 and mask[r, sub] & bit:
                count -= 1
    for r in prange(rows):
        lo = max(0, r - radius)
        hi = min(rows - 1, r + radius)
        for c in range(cols):
            m = mask[r, c]
            if m & bit or m & NODATA:
                out[r, c] = m
                continue
            hit = False
            for rr in range(lo, hi + 1):
                if horiz[rr, c]:
                    hit = True
                    break
            out[r, c] = (m | bit) & ~drop & 0xFF if hit else m


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def box_mean(values: np.ndarray, weight: np.ndarray, radius: int, out: np.ndarray) -> None:
    """Mean of ``values`` over the pixels with ``weight != 0`` in a square window.

    Separable running sums (rows, then columns in blocks), O(1) per pixel whatever
    ``radius``; NaN values and zero weights are left out; NaN where the window has none.

    Parameters
    ----------
    values
        float32 ``(rows, cols)``.
    weight
        uint8 ``(rows, cols)``: which pixels count.
    radius
        Window half-width in pixels (the window is ``2 radius + 1`` wide).
    out
        float32 ``(rows, cols)`` output.
    """
    rows, cols = values.shape
    hsum = np.empty((rows, cols), np.float32)
    hcnt = np.empty((rows, cols), np.int32)
    for r in prange(rows):
        acc = 0.0
        cnt = 0
        for c in range(min(radius, cols - 1) + 1):
            v = values[r, c]
            if weight[r, c] and not math.isnan(v):
                acc += v
                cnt += 1
        for c in range(cols):
            hsum[r, c] = acc
            hcnt[r, c] = cnt
            add = c + radius + 1
            if add < cols:
                v = values[r, add]
                if weight[r, add] and not math.isnan(v):
                    acc += v
                    cnt += 1
            sub = c - radius
            if sub >= 0:
                v = values[r, sub]
                if weight[r, sub] and not math.isnan(v):
                    acc -= v
                    cnt -= 1
    block = 64
    for b in prange((cols + block - 1) // block):
        c0 = b * block
        c1 = min(cols, c0 + block)
        acc_col = np.zeros(c1 - c0, np.float64)
        cnt_col = np.zeros(c1 - c0, np.int64)
        for r in range(min(radius, rows - 1) + 1):
            for c in range(c0, c1):
                acc_col[c - c0] += hsum[r, c]
                cnt_col[c - c0] += hcnt[r, c]
        for r in range(rows):
            for c in range(c0, c1):
                n = cnt_col[c - c0]
                out[r, c] = acc_col[c - c0] / n if n > 0 else np.float32(np.nan)
            add = r + radius + 1
            sub = r - radius
            for c in range(c0, c1):
                if add < rows:
                    acc_col[c - c0] += hsum[add, c]
                    cnt_col[c - c0] += hcnt[add, c]
                if sub >= 0:
                    acc_col[c - c0] -= hsum[sub, c]
                    cnt_col[c - c0] -= hcnt[sub, c]


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def shadow_and_clear(
    flags: np.ndarray,
    nir: np.ndarray,
    reference: np.ndarray,
    dark_nir_max: float,
    dark_ratio: float,
    offset_rows: np.ndarray,
    offset_cols: np.ndarray,
    out: np.ndarray,
) -> None:
    """Cloud shadows by projecting clouds away from the sun, then the ``clear`` bit.

    A valid pixel that is neither cloud nor water is a shadow candidate when it is dark:
    ``nir < dark_nir_max``, or ``nir < dark_ratio * reference`` (darker than its
    surroundings, e.g. shadowed snow). A candidate ``(r, c)`` is shadow when a cloud pixel lies
    at ``(r - dr, c - dc)`` for some offset ``(dr, dc)``: the offsets are the displacements of
    a cloud's shadow over the range of cloud heights, ``h / tan(sun_elevation)`` metres along
    ``sun_azimuth + 180`` degrees, in pixels (computed by the caller from the pixel size).
    Each pixel pulls from its sun-ward ray, so rows run in parallel without write races.
    ``out`` gets the final mask, ``clear`` recomputed from the other bits.

    Parameters
    ----------
    flags
        uint8 ``(rows, cols)`` from :func:`spectral_flags` (optionally dilated); bit 7 ignored.
    nir
        float32 NIR reflectance ``(rows, cols)``.
    reference
        float32 local reference NIR (e.g. :func:`box_mean` of clear land), or ``(0, 0)`` to use
        the absolute threshold only.
    dark_nir_max, dark_ratio
        Absolute and relative darkness thresholds.
    offset_rows, offset_cols
        int64 arrays of equal length: shadow displacement in rows and columns.
    out
        uint8 ``(rows, cols)`` output, distinct from ``flags``.
    """
    rows, cols = flags.shape
    n_off = offset_rows.shape[0]
    has_ref = reference.shape[0] == rows and reference.shape[1] == cols
    for r in prange(rows):
        for c in range(cols):
            m = np.int64(flags[r, c]) & ~CLEAR
            if n_off and not m & (NODATA | CLOUD | WATER):
                n = nir[r, c]
                dark = n < dark_nir_max or (has_ref and n < dark_ratio * reference[r, c])
                if dark:
                    for k in range(n_off):
                        rr = r - offset_rows[k]
                        cc = c - offset_cols[k]
                        if 0 <= rr < rows and 0 <= cc < cols and flags[rr, cc] & CLOUD:
                            m |= SHADOW
                            break
            if not m & NOT_CLEAR:
                m |= CLEAR
            out[r, c] = m

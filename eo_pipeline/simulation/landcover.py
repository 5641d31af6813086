"""Seeded land cover and clouds for the simulator: numba kernels over ground coordinates.

Every field is a function of ground position (metres east/north of the scene's upper-left
corner, shifted by a per-scene random offset), never of pixel indices, so one landscape can be
sampled at any resolution: the 1 m PAN grid, the 4 m MS grid and the truth grid of a scene
all see the same fields, towns and clouds (co-registered by construction). Noise is lattice
value noise with a 64-bit integer hash and fractal sums (fBm) of it.

Land-cover classes (codes of the ``truth_class`` asset)
-------------------------------------------------------
==== ============ ======================================================================
code name         what makes it (primary / secondary material of :mod:`eo_pipeline.simulation.spectra`)
==== ============ ======================================================================
0    nodata       outside the swath (every band is nodata there)
1    water        lakes: low-frequency noise above a threshold (water / soil near shores)
2    cropland     green fields on a rotated field grid (vegetation / soil: vigour per field)
3    bare_field   ploughed or harvested fields (soil / vegetation)
4    steppe       dry grassland, field boundaries and fallow (dry_grass / vegetation)
5    sand         desert patches outside the farming zone (sand / dry_grass)
6    snow         seasonal snow cover, patchy (snow / soil); lakes freeze under it
7    built_up     towns: blocks between streets (concrete / vegetation: gardens)
8    road         town streets (asphalt / concrete)
10   cloud        cloud opacity >= 0.5
11   thin_cloud   cloud opacity in [0.05, 0.5): the transparent cloud edges
12   shadow       cloud shadow (shadow strength >= 0.25) on a cloud-free pixel
==== ============ ======================================================================

Examples
--------
>>> import numpy as np
>>> p = LandscapeParams.draw(np.random.default_rng(0), month=7, extent_m=30000.0)
>>> cls, mix, bright = landcover(p, x0=0.0, y0=0.0, pixel=30.0, rows=64, cols=64)
>>> cls.dtype, cls.shape, bool(np.isin(cls, list(CLASSES)).all())
(dtype('uint8'), (64, 64), True)
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from statistics import NormalDist

import numba
import numpy as np

__all__ = [
    "CLASSES",
    "CLASS_MATERIALS",
    "CLOUD",
    "NODATA",
    "SHADOW",
    "THIN_CLOUD",
    "CloudParams",
    "LandscapeParams",
    "clouds",
    "landcover",
]

NODATA, WATER, CROPLAND, BARE_FIELD, STEPPE, SAND, SNOW, BUILT_UP, ROAD = range(9)
CLOUD, THIN_CLOUD, SHADOW = 10, 11, 12
CLASSES: dict[int, str] = {
    0: "nodata",
    1: "water",
    2: "cropland",
    3: "bare_field",
    4: "steppe",
    5: "sand",
    6: "snow",
    7: "built_up",
    8: "road",
    10: "cloud",
    11: "thin_cloud",
    12: "shadow",
}
"""Code -> name of every ``truth_class`` value."""
CLASS_MATERIALS: dict[int, tuple[str, str]] = {
    1: ("water", "soil"),
    2: ("vegetation", "soil"),
    3: ("soil", "vegetation"),
    4: ("dry_grass", "vegetation"),
    5: ("sand", "dry_grass"),
    6: ("snow", "soil"),
    7: ("concrete", "vegetation"),
    8: ("asphalt", "concrete"),
}
"""Land class -> (primary, secondary) material; a pixel is ``(1 - mix) * primary + mix * secondary``."""

_NORMAL = NormalDist()


@dataclass(frozen=True)
class LandscapeParams:
    """Per-scene parameters of the land-cover field (lengths in metres)."""

    seed: int
    """Seed of the hash noise (per scene)."""
    offset_x: float
    """Random shift of the noise domain east (decorrelates scenes)."""
    offset_y: float
    """Random shift of the noise domain north."""
    scale: float
    """Factor on every length below, so small scenes still hold fields, towns and lakes."""
    water_threshold: float
    """fBm level above which there is a lake (higher: fewer lakes)."""
    farm_threshold: float
    """fBm level above which the farming zone with fields starts."""
    field_angle: float
    """Orientation of the field grid in radians."""
    field_w: float
    """Field length along the grid's first axis."""
    field_h: float
    """Field width along the grid's second axis."""
    crop_share: float
    """Share of fields that are green (season dependent)."""
    steppe_green: float
    """Mean green-vegetation fraction of steppe (spring green-up, summer dry-down)."""
    snow_threshold: float
    """fBm level below which there is snow (0: none)."""
    town_cell: float
    """Size of the lattice cells that may hold one town."""
    town_share: float
    """Probability that a town cell holds a town."""
    street_spacing: float
    """Distance between parallel streets in towns."""
    street_width: float
    """Width of a street."""

    @classmethod
    def draw(
        cls, rng: np.random.Generator, *, month: int, extent_m: float, pixel_m: float = 1.0
    ) -> LandscapeParams:
        """Draw parameters for a scene ``extent_m`` wide acquired in ``month`` (1-12)."""
        scale = float(np.clip(extent_m / 40000.0, 0.08, 1.5))
        snow_cover = {12: 0.85, 1: 0.9, 2: 0.8, 3: 0.45, 11: 0.35, 4: 0.08, 10: 0.05}.get(
            month, 0.0
        )
        growing = 5 <= month <= 9
        steppe_green = {4: 0.35, 5: 0.5, 6: 0.4, 7: 0.2, 8: 0.12, 9: 0.12}.get(month, 0.08)
        return cls(
            seed=int(rng.integers(0, 2**31 - 1)),
            offset_x=float(rng.uniform(-1e6, 1e6)),
            offset_y=float(rng.uniform(-1e6, 1e6)),
            scale=scale,
            water_threshold=float(rng.uniform(0.64, 0.7)),
            farm_threshold=float(rng.uniform(0.4, 0.55)),
            field_angle=float(rng.uniform(0.0, math.pi)),
            field_w=float(rng.uniform(900.0, 1800.0)),
            field_h=float(rng.uniform(400.0, 900.0)),
            crop_share=float(rng.uniform(0.45, 0.65) if growing else rng.uniform(0.05, 0.15)),
            steppe_green=steppe_green,
            snow_threshold=0.25 + 0.55 * snow_cover if snow_cover > 0 else 0.0,
            town_cell=float(rng.uniform(6000.0, 9000.0)),
            town_share=float(rng.uniform(0.15, 0.35)),
            street_spacing=max(float(rng.uniform(90.0, 160.0)), 5.0 * pixel_m / scale),
            street_width=max(14.0, 1.2 * pixel_m / scale),
        )

    def as_array(self) -> np.ndarray:
        """Float64 vector for the kernels (field order)."""
        return np.array(astuple(self), dtype=np.float64)


@dataclass(frozen=True)
class CloudParams:
    """Per-scene cloud field parameters (lengths in metres)."""

    seed: int
    """Seed of the cloud noise."""
    cover: float
    """Target cloud fraction (0 = clear scene)."""
    size: float
    """Typical cloud length scale."""
    height: float
    """Cloud-base height above ground; the shadow is displaced by ``height * tan(zenith)``."""
    shadow_strength: float
    """Fraction of direct light a thick cloud removes in its shadow (diffuse light remains)."""
    brightness: float = 1.0
    """Factor on the cloud spectrum (optical thickness: 0.95-1.25, thick cores ~0.95 in the VNIR)."""

    @classmethod
    def draw(cls, rng: np.random.Generator, *, extent_m: float) -> CloudParams:
        """A quarter of the scenes are clear; the others 5-45 % cloudy."""
        scale = float(np.clip(extent_m / 40000.0, 0.08, 1.5))
        clear = rng.random() < 0.25
        return cls(
            seed=int(rng.integers(0, 2**31 - 1)),
            cover=0.0 if clear else float(rng.uniform(0.05, 0.45)),
            size=float(rng.uniform(2500.0, 6000.0)) * scale,
            height=float(rng.uniform(800.0, 3000.0)) * scale,
            shadow_strength=float(rng.uniform(0.6, 0.8)),
            brightness=float(rng.uniform(0.95, 1.25)),
        )


# --- noise -------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, fastmath=False)
def _hash(ix: int, iy: int, seed: int) -> float:
    h = ix * 374761393 + iy * 668265263 + seed * 2246822519
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    h = h * 2654435761
    h = h ^ (h >> 15)
    return (h & 0xFFFFFF) / 16777216.0


@numba.njit(cache=True, nogil=True, fastmath=False)
def _value(x: float, y: float, seed: int) -> float:
    fx = math.floor(x)
    fy = math.floor(y)
    ix = int(fx)
    iy = int(fy)
    tx = x - fx
    ty = y - fy
    tx = tx * tx * (3.0 - 2.0 * tx)
    ty = ty * ty * (3.0 - 2.0 * ty)
    a = _hash(ix, iy, seed)
    b = _hash(ix + 1, iy, seed)
    c = _hash(ix, iy + 1, seed)
    d = _hash(ix + 1, iy + 1, seed)
    return (a + (b - a) * tx) * (1.0 - ty) + (c + (d - c) * tx) * ty


@numba.njit(cache=True, nogil=True, fastmath=False)
def _fbm(x: float, y: float, seed: int, octaves: int) -> float:
    total = 0.0
    amp = 1.0
    norm = 0.0
    for o in range(octaves):
        total += amp * _value(x, y, seed + 7919 * o)
        norm += amp
        amp *= 0.5
        x = x * 2.03 + 17.1
        y = y * 2.03 - 9.7
    return total / norm


@numba.njit(cache=True, nogil=True, fastmath=False)
def _smooth(e0: float, e1: float, v: float) -> float:
    t = min(max((v - e0) / (e1 - e0), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


# --- land cover --------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, fastmath=False)
def _pixel(p: np.ndarray, x: float, y: float) -> tuple[int, float, float]:
    seed = int(p[0])
    s = p[3]
    x = x + p[1]
    y = y + p[2]
    bright = 1.0 + 0.12 * (_fbm(x / (1500.0 * s), y / (1500.0 * s), seed + 5, 3) - 0.5)
    # towns: at most one per lattice cell, centre kept a radius away from the cell edges
    cell = p[12] * s
    cx = math.floor(x / cell)
    cy = math.floor(y / cell)
    icx = int(cx)
    icy = int(cy)
    if _hash(icx, icy, seed + 11) < p[13]:
        radius = cell * (0.08 + 0.12 * _hash(icx, icy, seed + 12))
        tx = (
            cx + 0.5 + (0.5 - radius / cell - 0.05) * (2.0 * _hash(icx, icy, seed + 13) - 1.0)
        ) * cell
        ty = (
            cy + 0.5 + (0.5 - radius / cell - 0.05) * (2.0 * _hash(icx, icy, seed + 14) - 1.0)
        ) * cell
        dist = math.hypot(x - tx, y - ty)
        wobble = 0.75 + 0.5 * _fbm(x / (0.6 * radius), y / (0.6 * radius), seed + 15, 2)
        if dist < radius * wobble:
            sp = p[14] * s
            half = 0.5 * p[15] * s
            u = (x - tx) % sp
            v = (y - ty) % sp
            if min(u, sp - u) < half or min(v, sp - v) < half:
                return 8, 0.2 * _hash(int(x // sp), int(y // sp), seed + 16), bright
            return 7, 0.1 + 0.35 * _hash(int(x // sp), int(y // sp), seed + 17), bright
    # lakes (frozen and snow-covered in winter: snow wins below)
    w = _fbm(x / (7000.0 * s), y / (7000.0 * s), seed + 1, 4)
    snow = p[11] > 0.0 and _fbm(x / (2500.0 * s), y / (2500.0 * s), seed + 4, 4) < p[11]
    if snow:
        return 6, 0.3 * _fbm(x / (300.0 * s), y / (300.0 * s), seed + 18, 2), bright
    if w > p[4]:
        return 1, 0.3 * max(0.0, 1.0 - (w - p[4]) / 0.02), 1.0
    farm = _fbm(x / (25000.0 * s), y / (25000.0 * s), seed + 2, 3)
    green = min(
        max(p[10] + 0.25 * (_fbm(x / (800.0 * s), y / (800.0 * s), seed + 6, 3) - 0.5), 0.0), 1.0
    )
    if farm > p[5]:
        ca = math.cos(p[6])
        sa = math.sin(p[6])
        u = x * ca + y * sa
        v = -x * sa + y * ca
        fw = p[7] * s
        fh = p[8] * s
        iu = math.floor(u / fw)
        iv = math.floor(v / fh)
        du = u - iu * fw
        dv = v - iv * fh
        edge = max(10.0 * s, 0.6 * p[15] * s)
        if min(du, fw - du, dv, fh - dv) < edge:
            return 4, min(green + 0.3, 1.0), bright  # tracks and shelterbelts
        h = _hash(int(iu), int(iv), seed + 21)
        fb = 0.9 + 0.2 * _hash(int(iu), int(iv), seed + 22)
        if h < p[9]:
            return 2, 0.05 + 0.4 * _hash(int(iu), int(iv), seed + 23), bright * fb
        if h < p[9] + 0.6 * (1.0 - p[9]):
            return 3, 0.15 * _hash(int(iu), int(iv), seed + 24), bright * fb
        return 4, green, bright * fb
    if _fbm(x / (9000.0 * s), y / (9000.0 * s), seed + 3, 3) > 0.6:
        return 5, 0.3 * (1.0 - green), bright
    return 4, green, bright


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _landcover_kernel(
    p: np.ndarray,
    x0: float,
    y0: float,
    pixel: float,
    cls: np.ndarray,
    mix: np.ndarray,
    bright: np.ndarray,
) -> None:
    rows, cols = cls.shape
    for r in numba.prange(rows):
        y = y0 - (r + 0.5) * pixel
        for c in range(cols):
            k, m, b = _pixel(p, x0 + (c + 0.5) * pixel, y)
            cls[r, c] = k
            mix[r, c] = m
            bright[r, c] = b


def landcover(
    params: LandscapeParams, *, x0: float, y0: float, pixel: float, rows: int, cols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Land class, secondary-material fraction and brightness factor on a pixel grid.

    Parameters
    ----------
    params
        The scene's landscape.
    x0, y0
        Ground position (metres east, north of the scene's upper-left corner) of the grid's
        upper-left corner; pixel centres are at ``x0 + (c + 0.5) * pixel``,
        ``y0 - (r + 0.5) * pixel``.
    pixel
        Pixel size in metres.
    rows, cols
        Grid shape.

    Returns
    -------
    (cls, mix, bright)
        uint8 class codes (1-8), float32 fraction of the secondary material, float32
        brightness factor (~0.9-1.1: the light per-pixel modulation of the truth).
    """
    cls = np.empty((rows, cols), np.uint8)
    mix = np.empty((rows, cols), np.float32)
    bright = np.empty((rows, cols), np.float32)
    _landcover_kernel(params.as_array(), float(x0), float(y0), float(pixel), cls, mix, bright)
    return cls, mix, bright


# --- clouds ------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, fastmath=False)
def _alpha(x: float, y: float, seed: int, size: float, threshold: float) -> float:
    v = _fbm(x / size, y / size, seed, 5)
    return _smooth(threshold, threshold + 0.09, v)


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _cloud_kernel(
    seed: int,
    size: float,
    threshold: float,
    shift_x: float,
    shift_y: float,
    x0: float,
    y0: float,
    pixel: float,
    alpha: np.ndarray,
    shadow: np.ndarray,
) -> None:
    rows, cols = alpha.shape
    for r in numba.prange(rows):
        y = y0 - (r + 0.5) * pixel
        for c in range(cols):
            x = x0 + (c + 0.5) * pixel
            alpha[r, c] = _alpha(x, y, seed, size, threshold)
            shadow[r, c] = _alpha(x + shift_x, y + shift_y, seed, size, threshold)


def clouds(
    params: CloudParams,
    *,
    sun_zenith: float,
    sun_azimuth: float,
    x0: float,
    y0: float,
    pixel: float,
    rows: int,
    cols: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud opacity and shadow fields (float32, 0-1) on a pixel grid.

    The shadow at a point is the opacity of the cloud ``height * tan(zenith)`` metres
    towards the sun (azimuth clockwise from north), so shadows fall on the side away from
    the sun. Opacity rises smoothly from 0 at the cloud edge to 1 inside (transparent edges).
    A clear scene (``cover == 0``) gives zeros.

    Examples
    --------
    >>> import numpy as np
    >>> c = CloudParams(seed=3, cover=0.3, size=3000.0, height=2000.0, shadow_strength=0.7)
    >>> a, s = clouds(c, sun_zenith=40.0, sun_azimuth=150.0, x0=0, y0=0, pixel=30.0, rows=128, cols=128)
    >>> bool(0.0 < a.mean() < 1.0), a.dtype
    (True, dtype('float32'))
    """
    alpha = np.zeros((rows, cols), np.float32)
    shadow = np.zeros((rows, cols), np.float32)
    if params.cover <= 0.0:
        return alpha, shadow
    # fBm of value noise is roughly normal around 0.5 with sd ~0.1: map cover to a level.
    threshold = 0.5 + 0.12 * float(_probit(1.0 - params.cover))
    d = params.height * math.tan(math.radians(min(sun_zenith, 80.0)))
    az = math.radians(sun_azimuth)
    _cloud_kernel(
        params.seed,
        params.size,
        threshold,
        d * math.sin(az),
        d * math.cos(az),
        float(x0),
        float(y0),
        float(pixel),
        alpha,
        shadow,
    )
    return alpha, shadow


def _probit(q: float) -> float:
    """Inverse standard normal CDF (``q`` clamped to [1e-9, 1 - 1e-9])."""
    return _NORMAL.inv_cdf(min(max(q, 1e-9), 1 - 1e-9))

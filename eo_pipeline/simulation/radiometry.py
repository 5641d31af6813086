"""The simulator's radiometry: materials -> TOA reflectance -> DN, inverse of calibration.

Per band, per scene, the sensor's own model is run backwards (``d`` the Earth-Sun distance in
AU, ``theta`` the per-pixel sun zenith, ``rho`` the TOA reflectance truth):

=====================================  ==================================================
convention (sensor file)               DN before noise and rounding
=====================================  ==================================================
``mult_add`` / ``gain_bias`` with ESUN ``L = rho * ESUN * cos(theta) / (pi d^2)``,
                                       ``DN = (L - add) / mult`` (``gain_bias``:
                                       ``DN = (L - BIAS) * GAIN``, the same numbers)
``mult_add`` with ``reflectance_mult`` ``DN = (rho * cos(theta) - A) / M`` (Landsat C2: ``M``,
(Landsat)                              ``A`` fixed; the scene's radiance rescaling is
                                       ``M * ESUN / (pi d^2)``, ``A * ESUN / (pi d^2)``, so
                                       both calibration paths agree, as in real MTL files)
``reflectance`` (Sentinel-2 L1C)       ``DN = (rho - A) / M`` with ``M = 1 / Q``,
                                       ``A = RADIO_ADD_OFFSET / Q`` (ESA corrects the sun)
=====================================  ==================================================

Then sensor noise (Gaussian, std ``sqrt(noise_dn^2 + shot_noise * DN)`` in DN), rounding to
the nearest integer, clipping to ``[nodata + 1, saturation]`` (a DN that reaches the
saturation level stays there: the detector saturated) and nodata outside the swath.

Examples
--------
>>> from eo_pipeline.catalogs import sensors
>>> s = sensors.get("kazeosat2")
>>> inv = inverse_calibration(s, s.bands[0], earth_sun_distance=1.0)
>>> inv.use_zenith, inv.calibration.band
(True, 'B1')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numba
import numpy as np

from eo_pipeline.catalogs.scene import BandCalibration
from eo_pipeline.catalogs.sensors import Band, Sensor
from eo_pipeline.errors import CalibrationError

__all__ = [
    "InverseCalibration",
    "block_mean",
    "inverse_calibration",
    "surface_reflectance",
    "to_dn",
]


@dataclass(frozen=True)
class InverseCalibration:
    """How one band's TOA reflectance becomes DN in one scene: ``DN = rho [* cos] * a + b``."""

    calibration: BandCalibration
    """The scene's calibration numbers (what a reader of the product would find)."""
    a: float
    """DN per unit of ``rho * cos(theta)`` (or of ``rho`` when not :attr:`use_zenith`)."""
    b: float
    """DN offset."""
    use_zenith: bool
    """Whether the per-pixel ``cos(sun zenith)`` multiplies the reflectance."""
    step: float
    """Reflectance of one DN at zenith 0 (``1 / a``): the quantisation step (divide by
    ``cos(theta)`` where :attr:`use_zenith`)."""


def inverse_calibration(
    sensor: Sensor, band: Band, *, earth_sun_distance: float
) -> InverseCalibration:
    """The scene calibration numbers of ``band`` and the matching inverse (see module doc)."""
    d2 = earth_sun_distance**2
    base = BandCalibration(band=band.id, nodata=band.nodata, saturation=band.saturation,
                           quantize_max=band.saturation, esun=band.esun)  # fmt: skip

    where = f"sensor {sensor.name!r} ({sensor.path}) band {band.id!r}"
    if sensor.convention == "reflectance":
        if band.reflectance_mult is None or band.reflectance_mult <= 0:
            raise CalibrationError(f"{where}: convention 'reflectance' needs reflectance_mult > 0")
        m, add = band.reflectance_mult, band.reflectance_add or 0.0
        cal = replace(base, reflectance_mult=m, reflectance_add=add, reflectance_sun_corrected=True)
        return InverseCalibration(cal, 1.0 / m, -add / m, False, m)
    if band.reflectance_mult is not None and band.esun:
        # Landsat C2 L1: reflectance rescaling fixed, radiance rescaling per scene.
        m, add = band.reflectance_mult, band.reflectance_add or 0.0
        k = band.esun / (math.pi * d2)
        cal = replace(base, radiance_mult=m * k, radiance_add=add * k, reflectance_mult=m,
                      reflectance_add=add)  # fmt: skip
        return InverseCalibration(cal, 1.0 / m, -add / m, True, m)
    if band.radiance_mult is None or not band.esun:
        raise CalibrationError(
            f"{where}: the simulator needs radiance_mult and esun (or reflectance_mult) "
            "to turn reflectance into DN; add them to the sensor file"
        )
    mult, add = band.radiance_mult, band.radiance_add or 0.0
    cal = replace(base, radiance_mult=mult, radiance_add=add)
    if sensor.convention == "gain_bias":  # keep the DIMAP pair for provenance
        cal = replace(cal, gain=1.0 / mult, bias=add)
    k = band.esun / (math.pi * d2)  # radiance per unit rho*cos(theta)
    return InverseCalibration(cal, k / mult, -add / mult, True, mult / k)


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _surface(
    cls: np.ndarray,
    mix: np.ndarray,
    bright: np.ndarray,
    alpha: np.ndarray,
    shadow: np.ndarray,
    prim: np.ndarray,
    sec: np.ndarray,
    cloud: np.float32,
    strength: np.float32,
    out: np.ndarray,
) -> None:
    rows, cols = cls.shape
    for r in numba.prange(rows):
        for c in range(cols):
            k = cls[r, c]
            m = mix[r, c]
            v = bright[r, c] * (prim[k] * (np.float32(1.0) - m) + sec[k] * m)
            v = v * (np.float32(1.0) - strength * shadow[r, c])
            a = alpha[r, c]
            out[r, c] = (np.float32(1.0) - a) * v + a * cloud


def surface_reflectance(
    cls: np.ndarray,
    mix: np.ndarray,
    bright: np.ndarray,
    alpha: np.ndarray,
    shadow: np.ndarray,
    *,
    primary: np.ndarray,
    secondary: np.ndarray,
    cloud: float,
    shadow_strength: float,
) -> np.ndarray:
    """float32 TOA reflectance of one band: materials mixed, shaded, seen through clouds.

    ``primary``/``secondary`` are float32 lookup tables indexed by class code.
    """
    out = np.empty(cls.shape, np.float32)
    _surface(cls, mix, bright, alpha, shadow, primary.astype(np.float32),
             secondary.astype(np.float32), np.float32(cloud), np.float32(shadow_strength), out)  # fmt: skip
    return out


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _block_mean(src: np.ndarray, k: int, out: np.ndarray) -> None:
    rows, cols = out.shape
    inv = 1.0 / (k * k)
    for r in numba.prange(rows):
        for c in range(cols):
            acc = 0.0
            for i in range(r * k, r * k + k):
                for j in range(c * k, c * k + k):
                    acc += src[i, j]
            out[r, c] = acc * inv


def block_mean(src: np.ndarray, k: int) -> np.ndarray:
    """Mean over ``k x k`` blocks (float32 out; the sum in float64 scalars): a coarser pixel."""
    if k == 1:
        return src.astype(np.float32, copy=False)
    out = np.empty((src.shape[0] // k, src.shape[1] // k), np.float32)
    _block_mean(src, k, out)
    return out


@numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)
def _to_dn(
    rho: np.ndarray,
    cosz: np.ndarray,
    use_cos: bool,
    a: float,
    b: float,
    normal: np.ndarray,
    with_noise: bool,
    noise_dn: float,
    shot: float,
    outside: np.ndarray,
    nodata: int,
    lo: float,
    sat: float,
    out: np.ndarray,
) -> None:
    rows, cols = rho.shape
    var0 = noise_dn * noise_dn
    for r in numba.prange(rows):
        for c in range(cols):
            v = rho[r, c]
            if outside[r, c] or math.isnan(v):
                out[r, c] = nodata
                continue
            dn = v * cosz[r, c] * a + b if use_cos else v * a + b
            if with_noise:
                dn += math.sqrt(var0 + shot * max(dn, 0.0)) * normal[r, c]
            q = math.floor(dn + 0.5)
            out[r, c] = int(min(max(q, lo), sat))


def to_dn(
    rho: np.ndarray,
    cosz: np.ndarray,
    inv: InverseCalibration,
    band: Band,
    *,
    outside: np.ndarray,
    normal: np.ndarray | None,
) -> np.ndarray:
    """uint16 DN of one band from its TOA reflectance (see module doc).

    ``normal`` holds standard-normal float32 draws (``None``: no noise); ``outside`` marks
    pixels beyond the swath (-> ``band.nodata``).
    """
    out = np.empty(rho.shape, np.dtype(band.dtype))
    noise = normal if normal is not None else np.zeros((1, 1), np.float32)
    _to_dn(rho, cosz, inv.use_zenith, float(inv.a), float(inv.b), noise, normal is not None,
           float(band.noise_dn), float(band.shot_noise), outside, band.nodata, float(band.nodata + 1),
           float(band.saturation), out)  # fmt: skip
    return out

"""Per-class reflectance spectra for the simulator, sampled at a sensor's band centres.

The simulated surface has a handful of materials. Each one is stored as reflectance (0-1) at
:data:`WAVELENGTHS` (0.40-2.45 um), the values of one published library spectrum read at those
wavelengths and rounded to 0.005; between nodes the spectrum is linearly interpolated, so a
band samples it at its centre wavelength. The values are representative readings of the named
spectra (enough for plausible band ratios: red edge, SWIR water absorption, snow's NIR/SWIR
drop), not a verbatim copy of the library files.

========== ===================================================================================
material   source spectrum
========== ===================================================================================
vegetation USGS Spectral Library Version 7 (Kokaly et al. 2017, USGS Data Series 1035),
           ``Lawn_Grass GDS91`` (green grass canopy): green peak, red well, red edge, NIR
           plateau, 1.45/1.94 um water absorption.
dry_grass  USGS splib07 ``Grass_dry.4+.6green AMX27`` family / ECOSTRESS Spectral Library
           (Meerdink et al. 2019) non-photosynthetic vegetation: steppe in late summer.
soil       ECOSTRESS ``brown to dark brown loam`` (Entisol/Mollisol soils): ploughed fields.
sand       ECOSTRESS ``brown to dark brown sand`` / light desert sand: southern deserts.
water      USGS splib07 ``Seawater_Coast_Chl`` / clear lake water: low in the VNIR, ~0 in the SWIR.
snow       USGS splib07 ``Snow_Fine_Grained`` / ECOSTRESS ``fine granular snow`` (ice): bright VIS,
           NIR/SWIR drop with ice absorption at 1.03, 1.25, 1.5 and 2.0 um.
concrete   USGS splib07 ``Concrete_WTC01-37A`` (urban concrete): roofs and yards.
asphalt    USGS splib07 ``Asphalt_GDS376`` (road tarmac): dark, rising slowly to the SWIR.
cloud      NOT a library spectrum: nominal top-of-cloud reflectance of a thick water cloud
           (bright and flat in the VNIR, liquid-water absorption at 1.45, 1.94 and 2.2 um),
           the shape used by spectral cloud tests (e.g. Fmask, Zhu & Woodcock 2012).
conifer    representative dense conifer canopy (the dark dense vegetation of Kaufman et al.
           1997: red ~0.025, 2.2 um ~0.055, NIR plateau ~0.28; the range of closed boreal
           needle-leaf canopies in the USGS splib07 / ECOSTRESS vegetation spectra). No built-in
           land class uses it: the AOT-retrieval tests put it on the fields.
========== ===================================================================================

There is no atmosphere in the simulator: TOA reflectance truth is this surface reflectance
(modulated per field and per pixel), seen through clouds.

Examples
--------
>>> round(reflectance_at("vegetation", 0.865), 3)
0.47
>>> float(band_matrix([0.655, 0.865])[MATERIALS.index("water"), 0]) < 0.05
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eo_pipeline.catalogs.sensors import Band, Sensor

__all__ = [
    "MATERIALS",
    "WAVELENGTHS",
    "band_matrix",
    "pan_weights",
    "reflectance_at",
]

WAVELENGTHS: tuple[float, ...] = (
    0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.68, 0.70, 0.72, 0.75, 0.80, 0.90,
    1.00, 1.25, 1.38, 1.45, 1.65, 1.94, 2.20, 2.45,
)  # fmt: skip
"""Micrometres at which each material's reflectance is stored."""

_SPECTRA: dict[str, tuple[float, ...]] = {
    #              0.40   0.45   0.50   0.55   0.60   0.65   0.68   0.70   0.72   0.75   0.80   0.90
    #              1.00   1.25   1.38   1.45   1.65   1.94   2.20   2.45
    "vegetation": (0.030, 0.035, 0.045, 0.100, 0.075, 0.050, 0.040, 0.090, 0.230, 0.400, 0.460, 0.475,
                   0.465, 0.410, 0.300, 0.220, 0.290, 0.090, 0.150, 0.070),
    "dry_grass": (0.075, 0.095, 0.125, 0.165, 0.205, 0.240, 0.260, 0.270, 0.285, 0.305, 0.330, 0.360,
                  0.380, 0.420, 0.390, 0.350, 0.450, 0.280, 0.360, 0.280),
    "soil": (0.060, 0.075, 0.095, 0.125, 0.155, 0.185, 0.195, 0.205, 0.215, 0.225, 0.240, 0.260,
             0.280, 0.310, 0.305, 0.290, 0.350, 0.280, 0.320, 0.300),
    "sand": (0.150, 0.180, 0.220, 0.270, 0.315, 0.345, 0.355, 0.365, 0.370, 0.380, 0.390, 0.400,
             0.420, 0.450, 0.440, 0.420, 0.480, 0.400, 0.440, 0.400),
    "water": (0.050, 0.055, 0.050, 0.045, 0.030, 0.020, 0.017, 0.012, 0.010, 0.008, 0.006, 0.004,
              0.003, 0.002, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001),
    "snow": (0.960, 0.965, 0.965, 0.960, 0.950, 0.940, 0.935, 0.930, 0.920, 0.900, 0.870, 0.800,
             0.650, 0.450, 0.250, 0.150, 0.100, 0.020, 0.040, 0.020),
    "concrete": (0.180, 0.210, 0.240, 0.270, 0.290, 0.300, 0.305, 0.310, 0.315, 0.320, 0.330, 0.340,
                 0.350, 0.360, 0.345, 0.340, 0.370, 0.300, 0.330, 0.310),
    "asphalt": (0.050, 0.055, 0.060, 0.065, 0.070, 0.075, 0.078, 0.080, 0.082, 0.085, 0.090, 0.095,
                0.100, 0.110, 0.110, 0.110, 0.120, 0.110, 0.120, 0.120),
    "cloud": (0.750, 0.760, 0.770, 0.770, 0.770, 0.770, 0.770, 0.770, 0.770, 0.765, 0.760, 0.740,
              0.720, 0.660, 0.550, 0.450, 0.500, 0.250, 0.300, 0.220),
    "conifer": (0.020, 0.022, 0.025, 0.045, 0.035, 0.025, 0.022, 0.040, 0.120, 0.230, 0.270, 0.280,
                0.275, 0.240, 0.170, 0.110, 0.140, 0.040, 0.055, 0.030),
}  # fmt: skip

MATERIALS: tuple[str, ...] = tuple(_SPECTRA)
"""Material names in the row order of :func:`band_matrix`."""


def reflectance_at(material: str, wavelength: float) -> float:
    """Reflectance of one material at ``wavelength`` micrometres (linear interpolation).

    Outside 0.40-2.45 um the end values are held.

    >>> reflectance_at("snow", 0.55)
    0.96
    """
    return float(np.interp(wavelength, WAVELENGTHS, _SPECTRA[material]))


def band_matrix(wavelengths: Sequence[float]) -> np.ndarray:
    """``(material, band)`` float32 matrix of reflectances at the given centre wavelengths.

    >>> band_matrix([0.55, 1.65]).shape == (len(MATERIALS), 2)
    True
    """
    out = np.empty((len(MATERIALS), len(wavelengths)), dtype=np.float32)
    for i, name in enumerate(MATERIALS):
        out[i] = np.interp(np.asarray(wavelengths, np.float64), WAVELENGTHS, _SPECTRA[name])
    return out


def _is_pan(band: Band) -> bool:
    return band.common_name == "pan"


def pan_weights(sensor: Sensor, pan: Band) -> dict[str, float]:
    """Weights (summing to 1) of the multispectral bands whose mean is the PAN reflectance.

    The PAN band's reflectance is the spectrally-weighted mean of the reflectances of the
    sensor's non-PAN bands whose centre lies inside the PAN pass band
    (``centre +/- FWHM / 2``), each weighted by the solar energy it carries,
    ``ESUN * FWHM`` (``FWHM`` alone where a band has no ESUN). Being linear, the same weights
    turn the MS truth into the PAN truth on any grid. A PAN band covering no MS band centre
    gets an empty dict (the caller then samples the spectra at the PAN centre).

    Examples
    --------
    >>> from eo_pipeline.catalogs import sensors
    >>> s = sensors.get("kazeosat1")
    >>> w = pan_weights(s, s.band("P"))
    >>> sorted(w), round(sum(w.values()), 6)
    (['B0', 'B1', 'B2'], 1.0)
    """
    lo = pan.center_wavelength - pan.full_width_half_max / 2
    hi = pan.center_wavelength + pan.full_width_half_max / 2
    raw = {
        b.id: (b.esun or 1.0) * b.full_width_half_max
        for b in sensor.bands
        if not _is_pan(b) and lo <= b.center_wavelength <= hi
    }
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()} if total > 0 else {}

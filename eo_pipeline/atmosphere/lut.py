"""A sensor's lookup table (:class:`SensorLut`): load, range checks, reduction to one scene.

Files (``<sensor>.npz``, see :mod:`eo_pipeline.atmosphere.store`) come from
``eo-pipeline atmosphere build-lut --sensor NAME``; the built-in sensors' ship in
``eo_pipeline/atmosphere/data``. ``EO_PIPELINE_LUT_PATH`` (folders separated by ``:``) is
searched first, so a new sensor file gets its LUT without touching the package.

Arrays, band axis first (``model``/``aot`` as in the grid, ``aot`` without its 0 node):

- ``aer_path`` (band, model, aot, sza, vza, raa), ``aer_tdown`` (band, model, aot, sza),
  ``aer_tup`` (band, model, aot, vza), ``aer_sph`` (band, model, aot): sea level;
- ``ray_path`` (band, altitude, sza, vza, raa), ``ray_tdown``, ``ray_tup``, ``ray_sph``: the
  molecular atmosphere at each target altitude (AOT 0);
- ``gas_water`` (band, air mass, water), ``gas_ozone`` (band, air mass) at ``ozone_ref``,
  ``gas_other`` (band, air mass): one-way gaseous transmittances.

Pressure below sea level's is handled as 6S couples it: the molecular change is added to
the sea-level aerosol atmosphere (path and spherical albedo additively, transmittances by
ratio); the axis is extended to 0 hPa with the empty atmosphere (path 0, T 1, S 0).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from eo_pipeline.atmosphere.grid import LutGrid
from eo_pipeline.atmosphere.store import read_npz
from eo_pipeline.errors import AtmosphereError

__all__ = ["BandTables", "SensorLut", "find_lut", "load_lut"]

DATA_DIR = Path(__file__).with_name("data")
"""Where the shipped LUTs live."""


@dataclass(frozen=True)
class BandTables:
    """One band's tables reduced to a scene's model, pressure and gases (kernel inputs)."""

    path: np.ndarray
    """(aot, sza, vza, cos raa increasing) path reflectance."""
    tdown: np.ndarray
    """(aot, sza)."""
    tup: np.ndarray
    """(aot, vza)."""
    sph: np.ndarray
    """(aot,)."""
    sza: np.ndarray
    """Sun zenith nodes (degrees)."""
    vza: np.ndarray
    """View zenith nodes (degrees)."""
    craa: np.ndarray
    """cos(relative azimuth) nodes, increasing."""
    aot: np.ndarray
    """AOT nodes (0 first)."""
    airmass: np.ndarray
    """One-way air mass nodes of :attr:`log_gas`."""
    log_gas: np.ndarray
    """(air mass,) log one-way gaseous transmittance at the scene's water vapour and ozone."""

    def kernel_args(self) -> tuple[np.ndarray, ...]:
        """Positional table arguments of :func:`eo_pipeline.kernels.atmosphere.correct`."""
        return (self.path, self.tdown, self.tup, self.sph, self.sza, self.vza, self.craa, self.aot)


def _interp_axis(arr: np.ndarray, nodes: np.ndarray, x: float, axis: int) -> np.ndarray:
    """Linear interpolation of ``arr`` along ``axis`` at ``x`` (nodes increasing)."""
    i = int(np.clip(np.searchsorted(nodes, x) - 1, 0, len(nodes) - 2))
    w = float(np.clip((x - nodes[i]) / (nodes[i + 1] - nodes[i]), 0.0, 1.0))
    lo = np.take(arr, i, axis=axis)
    hi = np.take(arr, i + 1, axis=axis)
    return np.asarray(lo * (1.0 - w) + hi * w)


@dataclass(frozen=True)
class SensorLut:
    """A sensor's LUT as loaded (see the module docstring for the arrays)."""

    sensor: str
    """Sensor file name."""
    bands: tuple[str, ...]
    """Band ids with tables."""
    grid: LutGrid
    """The nodes."""
    arrays: dict[str, np.ndarray]
    """The tables."""
    meta: dict[str, Any]
    """Provenance: software versions, responses, timings, version."""
    source: str
    """The file it came from."""

    @property
    def version(self) -> str:
        """``<grid name>-<build date>`` (for lineage)."""
        return str(self.meta.get("version", "unknown"))

    def band_index(self, band: str) -> int:
        """Index of ``band``; :class:`AtmosphereError` naming the bands that have tables."""
        try:
            return self.bands.index(band)
        except ValueError:
            raise AtmosphereError(
                f"LUT {self.source} has no table for band {band!r} of sensor {self.sensor!r} "
                f"(it has {', '.join(self.bands)}); cirrus/thermal bands get no surface "
                "reflectance"
            ) from None

    def check_range(self, **values: float | tuple[float, float]) -> None:
        """Raise :class:`AtmosphereError` naming the variable when a value lies off the grid.

        Keywords: ``sza``, ``vza`` (degrees), ``aot`` (550 nm); a value or a (min, max) pair.
        """
        g = self.grid
        limits = {"sza": g.sza, "vza": g.vza, "aot": g.aot}
        names = {"sza": "sun zenith", "vza": "view zenith", "aot": "aerosol optical thickness"}
        for key, value in values.items():
            bounds = np.asarray(value, dtype=np.float64).reshape(-1)
            lo, hi = float(bounds.min()), float(bounds.max())
            nodes = limits[key]
            if not (nodes[0] - 1e-6 <= float(lo) and float(hi) <= nodes[-1] + 1e-6):
                raise AtmosphereError(
                    f"{names[key]} {key}={float(lo):.4g}..{float(hi):.4g} lies outside the "
                    f"{self.sensor} LUT's range [{nodes[0]}, {nodes[-1]}] ({self.source}); "
                    "rebuild the LUT with a wider grid (`eo-pipeline atmosphere build-lut "
                    f"--sensor {self.sensor}`) or leave those pixels out"
                )

    def tables(
        self,
        band: str,
        *,
        model: str = "continental",
        pressure: float = 1013.25,
        water: float = 2.0,
        ozone: float = 0.3,
        gases: bool = True,
    ) -> BandTables:
        """``band``'s tables at one aerosol model, surface pressure (hPa) and gas amounts.

        ``gases=False`` sets every gaseous transmittance to 1.
        """
        g, a = self.grid, self.arrays
        b = self.band_index(band)
        if model not in g.models:
            raise AtmosphereError(
                f"aerosol model {model!r} is not in the {self.sensor} LUT ({', '.join(g.models)})"
            )
        if not 0.0 <= pressure <= 1100.0:
            raise AtmosphereError(f"surface pressure {pressure} hPa is outside 0..1100")
        m = g.models.index(model)
        p_nodes = np.array((0.0, *g.pressures[::-1]))  # increasing, with the empty atmosphere
        p = min(float(pressure), float(p_nodes[-1]))

        def ray(key: str, empty: float) -> tuple[np.ndarray, np.ndarray]:
            arr = a[f"ray_{key}"][b][::-1].astype(np.float64)  # altitude reversed: pressure up
            full = np.concatenate([np.full((1, *arr.shape[1:]), empty), arr], axis=0)
            return _interp_axis(full, p_nodes, p, 0), arr[-1]

        out: dict[str, np.ndarray] = {}
        for key, empty, combine in (
            ("path", 0.0, "add"),
            ("tdown", 1.0, "ratio"),
            ("tup", 1.0, "ratio"),
            ("sph", 0.0, "add"),
        ):
            at_p, at_sea = ray(key, empty)
            aer = a[f"aer_{key}"][b, m].astype(np.float64)
            sea = np.concatenate([at_sea[None], aer], axis=0)  # AOT 0 node first
            if combine == "add":
                out[key] = sea + (at_p - at_sea)[None]
            else:
                out[key] = sea * (at_p / at_sea)[None]
        path = out["path"][..., ::-1]  # raa increasing -> cos(raa) increasing
        craa = np.cos(np.radians(np.asarray(g.raa, np.float64)))[::-1]
        return BandTables(
            path=np.ascontiguousarray(path),
            tdown=out["tdown"],
            tup=out["tup"],
            sph=out["sph"],
            sza=np.asarray(g.sza, np.float64),
            vza=np.asarray(g.vza, np.float64),
            craa=np.ascontiguousarray(craa),
            aot=np.asarray(g.aot, np.float64),
            airmass=np.asarray(g.airmass, np.float64),
            log_gas=self.log_gas(b, water, ozone) if gases else np.zeros(len(g.airmass)),
        )

    def log_gas(self, b: int, water: float, ozone: float) -> np.ndarray:
        """Log one-way gas transmittance of band index ``b`` at the grid's air masses.

        Water: interpolated in the water column (log-linear, 0 -> transmittance 1); ozone:
        Beer's law from ``ozone_ref``; the other gases as tabulated.
        """
        if water < 0 or ozone < 0 or not (math.isfinite(water) and math.isfinite(ozone)):
            raise AtmosphereError(f"water vapour {water} / ozone {ozone} must be >= 0 and finite")
        g, a = self.grid, self.arrays
        wnodes = np.array((0.0, *g.water))
        lw = np.log(np.maximum(a["gas_water"][b].astype(np.float64), 1e-9))  # (m, water)
        lw = np.concatenate([np.zeros((lw.shape[0], 1)), lw], axis=1)
        if water > wnodes[-1]:  # extrapolate along the last segment (water ~ column amount)
            slope = (lw[:, -1] - lw[:, -2]) / (wnodes[-1] - wnodes[-2])
            l_water = lw[:, -1] + slope * (water - wnodes[-1])
        else:
            l_water = _interp_axis(lw, wnodes, water, 1)
        l_oz = np.log(a["gas_ozone"][b].astype(np.float64)) * (ozone / g.ozone_ref)
        l_other = np.log(a["gas_other"][b].astype(np.float64))
        return np.asarray(l_water + l_oz + l_other)


def find_lut(sensor: str) -> Path:
    """The LUT file of ``sensor``: ``EO_PIPELINE_LUT_PATH`` folders first, then the package.

    Raises
    ------
    AtmosphereError
        No LUT for the sensor (the build-lut command is named).
    """
    dirs = [Path(p) for p in os.environ.get("EO_PIPELINE_LUT_PATH", "").split(":") if p]
    dirs.append(DATA_DIR)
    for d in dirs:
        path = d / f"{sensor}.npz"
        if path.is_file():
            return path
    raise AtmosphereError(
        f"no atmospheric lookup table for sensor {sensor!r} (looked in "
        f"{', '.join(map(str, dirs))}); build one with `eo-pipeline atmosphere build-lut "
        f"--sensor {sensor} --out DIR` and add DIR to EO_PIPELINE_LUT_PATH"
    )


@lru_cache(maxsize=16)
def _load(path: str, mtime: float) -> SensorLut:
    arrays, meta = read_npz(path)
    if meta.get("kind") != "sensor":
        raise AtmosphereError(f"{path}: not a sensor LUT (kind {meta.get('kind')!r})")
    return SensorLut(
        sensor=str(meta["sensor"]),
        bands=tuple(meta["bands"]),
        grid=LutGrid.from_dict(meta["grid"]),
        arrays=arrays,
        meta=meta,
        source=path,
    )


def load_lut(sensor_or_path: str | Path) -> SensorLut:
    """Load a sensor's LUT by sensor name (:func:`find_lut`) or from a file path."""
    p = Path(sensor_or_path)
    path = p if p.suffix == ".npz" else find_lut(str(sensor_or_path))
    if not path.is_file():
        raise AtmosphereError(f"LUT file {path} does not exist")
    return _load(str(path), path.stat().st_mtime)

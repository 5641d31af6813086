"""Aerosol optical thickness over dark targets, as a smoothed per-scene field.

Method (Kaufman et al. 1997, "The MODIS 2.1-um channel - correlation with visible
reflectance for use in remote sensing of aerosol", IEEE TGRS 35(5)):

1. Dark targets: pixels whose TOA reflectance at ~2.1 um lies in 0.01..0.05 and whose TOA
   NDVI exceeds 0.1 (vegetation, not water); a window with too few of them (step 2) takes the
   upper bound 0.10, then 0.15 (Kaufman et al. 1997, JGR 102(D14), 17051: the relations are
   most accurate for the darkest targets); aerosol barely touches 2.1 um, so its surface
   reflectance follows from the LUT (gases and Rayleigh removed at AOT 0.1) and
   ``rho_s(0.66) = rho_s(2.1) / 2``. Kaufman's blue relation (``rho_2.1 / 4``) is not used:
   on the validation scene USGS's LaSRC dark-target blue/2.1 ratio is 0.42, not 0.25, and
   fitting blue drove the AOT to twice the value that red alone gives.
2. Per window (``window`` x ``window`` pixels) the dark pixels' mean TOA reflectances; at
   least 10 % of the window dark, else the window is empty.
3. The window's AOT is the one (0.002 steps over the LUT's range) whose forward-modelled red
   TOA ``Tg (path + T rho_s / (1 - S rho_s))`` from the same LUT fits the observed one.
4. Empty windows take the mean of the others; the field is smoothed (Gaussian, sigma one
   window) and clipped to the LUT's AOT range.

Fallback where the sensor has no ~2.1 um band (KazEOSat-1/-2, KazEOSat-MR): dense
vegetation by TOA NDVI >= 0.6 with a fixed red surface reflectance of 0.03 (typical of
dense canopies; expect a larger error, recorded as
``dense-vegetation (no 2.1 um band)``). Where no window has dark targets the AOT is 0.1
(rural background), recorded as ``default (no dark targets)``, with a warning.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from eo_pipeline.atmosphere.lut import BandTables, SensorLut
from eo_pipeline.kernels import atmosphere as kernel

__all__ = ["retrieve_aot"]

DARK_TIERS = (0.05, 0.10, 0.15)
"""Upper TOA reflectance at ~2.1 um of a dark target, tried in turn per window (Kaufman et al.
1997, JGR 102(D14): the visible/2.1 um relations are most accurate for 0.01-0.05 and degrade
up to 0.15; brighter soils break them and bias the AOT high)."""
DARK_MAX = DARK_TIERS[-1]
MIN_DARK = 0.1
"""Fraction of a window's pixels that must be dark for the window (and a tier) to count."""
DEFAULT_AOT = 0.1
"""AOT used when a scene has no dark target."""
RED_RATIO = 0.5
"""rho_s(0.66) / rho_s(2.1) over dark vegetation (Kaufman et al. 1997)."""
SWIR_AOT = 0.1
"""AOT assumed when the 2.1 um TOA reflectance is turned into surface reflectance."""
_SWIR = ("swir22",)
_FALLBACK_RHO = {"red": 0.03}


def _band_by_name(ds: xr.Dataset, lut: SensorLut, names: tuple[str, ...]) -> str | None:
    for k, v in ds.data_vars.items():
        if v.attrs.get("common_name") in names and k in lut.bands:
            return str(k)
    return None


def _curve(tables: BandTables, sza: float, vza: float, raa: float, aots: np.ndarray) -> np.ndarray:
    """(len(aots), 4) TOA reflectance of surfaces 0, 0.1, 0.2, 0.3 at one geometry."""
    ca = float(np.cos(np.radians(raa)))
    out = np.empty((aots.size, 4))
    for k, tau in enumerate(aots):
        out[k] = [
            kernel.forward_toa(  # type: ignore[call-arg]
                r, sza, vza, ca, float(tau), *tables.kernel_args(), tables.log_gas, tables.airmass
            )
            for r in (0.0, 0.1, 0.2, 0.3)
        ]
    return out


def _forward(curve: np.ndarray, rho_s: np.ndarray) -> np.ndarray:
    """TOA at surface reflectance ``rho_s`` (windows,) for every AOT (aots, windows).

    ``curve`` holds TOA at rho_s 0, 0.1, 0.2, 0.3: linear interpolation over those (the
    forward model is smooth and nearly linear there).
    """
    grid = np.array([0.0, 0.1, 0.2, 0.3])
    r = np.clip(rho_s, 0.0, 0.3)
    i = np.clip(np.searchsorted(grid, r) - 1, 0, 2)
    w = (r - grid[i]) / 0.1
    return curve[:, i] * (1 - w) + curve[:, i + 1] * w


def _window_means(ds: xr.Dataset, bands: dict[str, str], window: int, swir: bool) -> dict[str, Any]:
    from eo_pipeline.steps.calibration import calibrate

    sub = ds[[v for v in bands.values()]]
    toa = calibrate(sub, "toa_reflectance")
    red, nir = toa[bands["red"]], toa[bands["nir"]]
    ndvi = (nir - red) / (nir + red)
    ydim, xdim = red.dims[-2:]
    dims = {ydim: window, xdim: window}

    def means(dark: xr.DataArray) -> dict[str, xr.DataArray]:
        out = {"count": dark.astype(np.float32).coarsen(dims, boundary="trim").mean()}
        for key in ("red", "blue", "swir"):
            if key in bands:
                out[key] = toa[bands[key]].where(dark).coarsen(dims, boundary="trim").mean()
        return out

    if swir:  # the darkest tier with enough dark pixels, per window (module docstring)
        s = toa[bands["swir"]]
        tiers = [means((s > 0.01) & (s < top) & (ndvi > 0.1)) for top in DARK_TIERS]
        chosen = tiers[-1]
        for tier in reversed(tiers[:-1]):
            enough = tier["count"] >= MIN_DARK
            chosen = {k: xr.where(enough, tier[k], chosen[k]) for k in chosen}
    else:
        chosen = means(ndvi >= 0.6)
    return dict(zip(chosen, xr.Dataset(chosen).compute().data_vars.values(), strict=True))


def _smooth(field: np.ndarray, ok: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    filled = np.where(ok, field, np.nanmean(field[ok]))
    return np.asarray(gaussian_filter(filled, sigma=1.0, mode="nearest"))


def retrieve_aot(ds: xr.Dataset, lut: SensorLut, ctx: dict[str, Any], *, window: int) -> Any:
    """The AOT field of a scene (see the module docstring); returns the ``_Aot`` of
    :mod:`eo_pipeline.steps.atmosphere` with diagnostics."""
    from eo_pipeline.steps.atmosphere import _Aot

    bands = {
        "red": _band_by_name(ds, lut, ("red",)),
        "blue": _band_by_name(ds, lut, ("blue",)),
        "nir": _band_by_name(ds, lut, ("nir", "nir08")),
        "swir": _band_by_name(ds, lut, _SWIR),
    }
    present = {k: v for k, v in bands.items() if v is not None}
    swir = "swir" in present
    method = "dark-target 2.1 um (Kaufman 1997)" if swir else "dense-vegetation (no 2.1 um band)"
    if "red" not in present or "nir" not in present:
        warnings.warn(
            f"AOT retrieval needs red and NIR bands; using the default AOT {DEFAULT_AOT}",
            RuntimeWarning,
            stacklevel=3,
        )
        n = ctx["n_time"]
        return _Aot(
            np.full(n, DEFAULT_AOT), None, None, None, "default (no red/NIR band)", DEFAULT_AOT, {}
        )
    means = _window_means(ds, present, window, swir)
    gas = ctx["gas"]
    aots = np.arange(0.0, lut.grid.aot[-1] + 1e-9, 0.002)
    fields, n_time = [], ctx["n_time"]
    count = means["count"]
    ydim, xdim = ctx["ydim"], ctx["xdim"]
    fy = np.asarray(count[ydim].values, np.float64)
    fx = np.asarray(count[xdim].values, np.float64)
    used = []
    for t in range(n_time):
        sel = {"time": t} if "time" in count.dims else {}
        ok = np.asarray(count.isel(sel).values) >= MIN_DARK
        cost = np.zeros((aots.size, int(ok.sum())))
        geo = (float(ctx["sza"][t]), float(ctx["vza"]), float(ctx["raa"][t]))

        def tables(key: str) -> BandTables:
            return lut.tables(present[key], model=ctx["model"], pressure=gas["pressure"],
                              water=gas["water"], ozone=gas["ozone"], gases=gas["gases"])  # fmt: skip

        obs = np.asarray(means["red"].isel(sel).values)[ok]
        if swir:  # 2.1 um TOA -> surface (gases, Rayleigh; aerosol barely matters there)
            sw = _curve(tables("swir"), *geo, np.array([SWIR_AOT]))[0]
            toa_sw = np.asarray(means["swir"].isel(sel).values)[ok]
            rho_s = RED_RATIO * np.interp(toa_sw, sw, np.array([0.0, 0.1, 0.2, 0.3]))
        else:
            rho_s = np.full(obs.shape, _FALLBACK_RHO["red"])
        cost += (_forward(_curve(tables("red"), *geo, aots), rho_s) - obs[None, :]) ** 2
        valid = ok & np.isfinite(np.asarray(means["red"].isel(sel).values))
        field = np.full(ok.shape, np.nan)
        if cost.shape[1]:
            best = aots[np.argmin(np.nan_to_num(cost, nan=np.inf), axis=0)]
            field[ok] = best
        if not np.any(valid & np.isfinite(field)):
            warnings.warn(
                f"no dark targets at time step {t}: AOT {DEFAULT_AOT} (default) used",
                RuntimeWarning,
                stacklevel=3,
            )
            fields.append(np.full(ok.shape, DEFAULT_AOT))
            used.append(0)
            continue
        good = valid & np.isfinite(field)
        fields.append(np.clip(_smooth(field, good), 0.0, lut.grid.aot[-1]))
        used.append(int(good.sum()))
    arr = np.stack(fields).astype(np.float32)
    if sum(used) == 0:
        method = "default (no dark targets)"
    return _Aot(
        None, arr, fy, fx, method, float(arr.mean()), {"windows_used": used, "window": window}
    )

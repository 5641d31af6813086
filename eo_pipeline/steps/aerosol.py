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
2. Per window (``window`` x ``window`` pixels) the mean TOA reflectances of the dark pixels
   whose red lies between their 20th and 50th percentile (Levy et al. 2007, JGR 112,
   D13211: MODIS Collection 5 discards the darkest 20 % and the brightest 50 % against
   residual shadow, water, cloud and brighter soil); at least 10 % of the window dark, else
   the window is empty.
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
PERCENTILES = (20.0, 50.0)
"""The dark pixels of a window kept for the retrieval: those whose red TOA reflectance lies
between these percentiles (Levy et al. 2007, JGR 112, D13211, MODIS Collection 5 over land:
the darkest 20 % and the brightest 50 % are discarded against residual shadow, water and
cloud contamination and brighter soil)."""
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


def _dark_stats(swir: np.ndarray, red: np.ndarray, nir: np.ndarray, *, window: int) -> np.ndarray:
    """Per whole window of one block ``(..., H, W)`` of TOA reflectance: the dark fraction of
    the darkest tier with enough dark pixels, and the mean red and 2.1 um TOA over that tier's
    dark pixels whose red lies in their 20th-50th percentile; ``(..., 3, H // window,
    W // window)`` float32 (the block's own dtype throughout, no float64 copies)."""
    h, w = red.shape[-2] // window, red.shape[-1] // window
    lead = red.shape[:-2]

    def windows(a: np.ndarray) -> np.ndarray:  # (..., h, w, window * window)
        a = a[..., : h * window, : w * window].reshape(*lead, h, window, w, window)
        return np.moveaxis(a, -3, -2).reshape(*lead, h, w, window * window)

    s, r, n = windows(swir), windows(red), windows(nir)
    with np.errstate(invalid="ignore", divide="ignore"):
        vegetated = n - r > 0.1 * (n + r)  # TOA NDVI > 0.1
    count = np.zeros((*lead, h, w), np.float32)
    dark = np.zeros(s.shape, bool)
    for top in reversed(DARK_TIERS):  # the darkest tier with enough dark pixels wins
        tier = (s > 0.01) & (s < top) & vegetated
        frac = tier.mean(axis=-1, dtype=np.float32)
        take = (frac >= MIN_DARK) | (top == DARK_TIERS[-1])
        count = np.where(take, frac, count)
        dark = np.where(take[..., None], tier, dark)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # windows without dark pixels
        lo, hi = np.nanpercentile(np.where(dark, r, np.nan), PERCENTILES, axis=-1)
        keep = dark & (r >= lo[..., None]) & (r <= hi[..., None])
        means = [np.nanmean(np.where(keep, b, np.nan), axis=-1) for b in (r, s)]
    return np.stack([count, *means], axis=-3).astype(np.float32)


def _window_grid(da: xr.DataArray, dims: dict[Any, int]) -> xr.DataArray:
    """An empty DataArray on the windows' grid: ``da``'s leading dims and coordinates, the
    spatial ones coarsened (window centres, partial windows trimmed) - no pass over pixels."""
    coords = {}
    for d, size in dims.items():
        v = np.asarray(da[d].values, np.float64)
        n = v.size // size
        coords[d] = v[: n * size].reshape(n, size).mean(axis=1)
    shape = tuple(coords[d].size if d in dims else da.sizes[d] for d in da.dims)
    lead = {d: da[d] for d in da.dims if d not in dims and d in da.coords}
    return xr.DataArray(np.empty(shape, np.float32), dims=da.dims, coords={**lead, **coords})


def _window_means(ds: xr.Dataset, bands: dict[str, str], window: int, swir: bool) -> dict[str, Any]:
    from eo_pipeline.steps.calibration import calibrate

    sub = ds[[v for v in bands.values()]]
    toa = calibrate(sub, "toa_reflectance")
    red, nir = toa[bands["red"]], toa[bands["nir"]]
    ydim, xdim = red.dims[-2:]
    dims = {ydim: window, xdim: window}
    if not swir:  # dense vegetation (module docstring)
        dense = (nir - red) / (nir + red) >= 0.6
        chosen = {
            "count": dense.astype(np.float32).coarsen(dims, boundary="trim").mean(),
            "red": red.where(dense).coarsen(dims, boundary="trim").mean(),
        }
        return dict(zip(chosen, xr.Dataset(chosen).compute().data_vars.values(), strict=True))
    keys = ["count", "red", "swir"]
    template = _window_grid(red, dims)
    data = [a.data for a in (toa[bands["swir"]], red, nir)]
    if all(isinstance(d, np.ndarray) for d in data):
        stats = _dark_stats(*data, window=window)
    else:
        import dask.array as da

        step = window * max(1, 512 // window)  # chunks of whole windows
        chunks = {red.get_axis_num(ydim): step, red.get_axis_num(xdim): step}
        data = [da.asarray(d).rechunk(chunks) for d in data]
        lead = data[0].chunks[:-2]
        out_chunks = (
            *lead,
            (len(keys),),
            *(tuple(c // window for c in cs) for cs in data[0].chunks[-2:]),
        )
        stats = da.map_blocks(
            _dark_stats, *data, window=window, new_axis=len(lead), chunks=out_chunks,
            dtype=np.float32,
        ).compute()  # fmt: skip
    stats = stats[..., : template.shape[-2], : template.shape[-1]]
    return {k: template.copy(data=np.take(stats, n, axis=-3)) for n, k in enumerate(keys)}


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

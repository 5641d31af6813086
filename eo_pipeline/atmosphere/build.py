"""Build lookup tables with 6S (``eo-pipeline atmosphere build-lut``).

Two stages (see :mod:`eo_pipeline.atmosphere.grid` for why):

1. :func:`build_scattering` runs 6S monochromatically over the grid, once for every sensor:
   aerosol runs at sea level (model x AOT x geometry x wavelength), Rayleigh-only runs over
   the target altitudes, and a solar-irradiance table from 6S's own solar spectrum. This is
   the expensive stage (about 1 s per aerosol run); it runs in worker processes.
2. :func:`build_sensor` makes one sensor's LUT: its bands' scattering quantities are the
   means of the monochromatic ones (log-log interpolated in wavelength) weighted by the
   band's response times the solar irradiance, as 6S averages over a band; its gaseous
   transmittances come from 6S runs with the band's response (no aerosol: fast).

Spectral responses (:func:`band_response`): Py6S's tabulated ones for Landsat 8/9 OLI
(OLI-2 is treated as OLI) and Sentinel-2A/2B MSI; any other band is a Gaussian of the
sensor file's centre and FWHM, recorded as ``nominal``.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eo_pipeline.atmosphere.grid import DEFAULT_GRID, LutGrid
from eo_pipeline.atmosphere.sixs import SixSCase, binary_path, run
from eo_pipeline.errors import AtmosphereError

__all__ = [
    "BUILD_SKIP",
    "SCATTERING_FILE",
    "band_response",
    "build_lut",
    "build_scattering",
    "build_sensor",
    "run_many",
    "save_scattering",
]

BUILD_SKIP = ("cirrus", "lwir", "lwir11", "lwir12", "tir")
"""Common names of bands that get no surface reflectance (strong absorption or thermal)."""

_PY6S_BANDS: dict[str, dict[str, str]] = {
    "landsat8": {f"B{i}": f"LANDSAT_OLI_B{i}" for i in range(1, 9)},
    "landsat9": {f"B{i}": f"LANDSAT_OLI_B{i}" for i in range(1, 9)},
    "sentinel2a": {
        **{f"B{i:02d}": f"S2A_MSI_{i:02d}" for i in range(1, 13)},
        "B8A": "S2A_MSI_8A",
    },
    "sentinel2b": {
        **{f"B{i:02d}": f"S2B_MSI_{i:02d}" for i in range(1, 13)},
        "B8A": "S2B_MSI_8A",
    },
}


def band_response(sensor: str, band: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """(wavelengths um every 2.5 nm, response 0..1, source) of one band.

    ``band`` is a :class:`eo_pipeline.catalogs.sensors.Band`. Source is ``"py6s:<name>"`` for a
    tabulated response, else ``"nominal gaussian"`` from the band's centre and FWHM.
    """
    name = _PY6S_BANDS.get(sensor, {}).get(band.id)
    if name is not None:
        from Py6S import PredefinedWavelengths

        _, start, _end, resp = getattr(PredefinedWavelengths, name)
        wl = start + 0.0025 * np.arange(len(resp))
        return wl, np.asarray(resp, dtype=np.float64), f"py6s:{name}"
    c, fwhm = float(band.center_wavelength), float(band.full_width_half_max)
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    start = math.floor((c - 3 * sigma) / 0.0025) * 0.0025
    n = round((6 * sigma) / 0.0025) + 2
    wl = start + 0.0025 * np.arange(n)
    resp = np.exp(-0.5 * ((wl - c) / sigma) ** 2)
    return wl, resp, "nominal gaussian"


def _run_one(case: SixSCase) -> tuple[dict[str, float], float]:
    t0 = time.perf_counter()
    out = run(case)
    return out, time.perf_counter() - t0


def run_many(
    cases: Sequence[SixSCase],
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[dict[str, float]], float]:
    """Run 6S for every case, ``processes`` 6S processes at a time; (results in order, mean
    seconds per run)."""
    binary_path()  # fail fast, in this process, when 6S is missing
    n = processes or max(1, (os.cpu_count() or 1))
    results: list[dict[str, float]] = [{} for _ in cases]
    spent = 0.0
    if n <= 1 or len(cases) < 4:
        for i, case in enumerate(cases):
            results[i], dt = _run_one(case)
            spent += dt
            if progress:
                progress(i + 1, len(cases))
        return results, spent / max(1, len(cases))
    # Each 6S run is its own OS process (Py6S pipes the case into the binary); threads only
    # wait on them, so n threads keep n 6S processes busy (no pickling, no main-module guard).
    with cf.ThreadPoolExecutor(max_workers=n) as pool:
        futures = {pool.submit(_run_one, c): i for i, c in enumerate(cases)}
        for done, fut in enumerate(cf.as_completed(futures), start=1):
            results[futures[fut]], dt = fut.result()
            spent += dt
            if progress:
                progress(done, len(cases))
    return results, spent / max(1, len(cases))


def _solar_cases(grid: LutGrid) -> list[SixSCase]:
    lo, hi = grid.solar_range
    edges = np.arange(lo, hi + 1e-9, grid.solar_step)
    cases = []
    for a in edges:
        n = round(grid.solar_step / 0.0025) + 1
        cases.append(SixSCase((float(a), float(a + grid.solar_step), (1.0,) * n), 0.0, 0.0, 0.0))
    return cases


def build_scattering(
    grid: LutGrid,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run 6S over ``grid``'s scattering part; arrays and timings (module docstring).

    Returns a dict of float32 arrays: ``aer_path`` (model, aot>0, wavelength, sza, vza, raa),
    ``aer_tdown`` (model, aot>0, wavelength, sza), ``aer_tup`` (..., vza), ``aer_sph``
    (model, aot>0, wavelength); the same ``ray_*`` over (altitude, wavelength, ...) for the
    molecular atmosphere; ``solar_wl``/``solar_e0`` (um, W m-2 um-1); and ``timing``.
    """
    geos = grid.geometries()
    wl, nm, na = grid.wavelengths, len(grid.models), len(grid.aot) - 1
    shape_g = (len(grid.sza), len(grid.vza), len(grid.raa))
    keys: list[tuple[str, int, int, int, tuple[float, float, float]]] = []
    cases: list[SixSCase] = []
    for li, lam in enumerate(wl):
        for geo in geos:
            for zi, z in enumerate(grid.altitudes_km):
                keys.append(("ray", zi, 0, li, geo))
                cases.append(SixSCase(lam, *geo, altitude_km=z))
            for mi, model in enumerate(grid.models):
                for ai, aot in enumerate(grid.aot[1:]):
                    keys.append(("aer", mi, ai, li, geo))
                    cases.append(SixSCase(lam, *geo, aot550=aot, model=model))
    solar = _solar_cases(grid)
    t0 = time.perf_counter()
    results, per_run = run_many(solar + cases, processes, progress)
    wall = time.perf_counter() - t0
    sol, res = results[: len(solar)], results[len(solar) :]
    out: dict[str, Any] = {
        "aer_path": np.full((nm, na, len(wl), *shape_g), np.nan, np.float32),
        "aer_tdown": np.full((nm, na, len(wl), len(grid.sza)), np.nan, np.float32),
        "aer_tup": np.full((nm, na, len(wl), len(grid.vza)), np.nan, np.float32),
        "aer_sph": np.full((nm, na, len(wl)), np.nan, np.float32),
    }
    nz = len(grid.altitudes_km)
    out.update(
        ray_path=np.full((nz, len(wl), *shape_g), np.nan, np.float32),
        ray_tdown=np.full((nz, len(wl), len(grid.sza)), np.nan, np.float32),
        ray_tup=np.full((nz, len(wl), len(grid.vza)), np.nan, np.float32),
        ray_sph=np.full((nz, len(wl)), np.nan, np.float32),
    )
    for (kind, i, j, li, (s, v, a)), r in zip(keys, res, strict=True):
        si, vi = grid.sza.index(s), grid.vza.index(v)
        idx: tuple[int, ...] = (i, j, li) if kind == "aer" else (i, li)
        raas = range(len(grid.raa)) if v == 0 else [grid.raa.index(a)]
        for ri in raas:
            out[f"{kind}_path"][(*idx, si, vi, ri)] = r["path"]
        out[f"{kind}_tdown"][(*idx, si)] = r["t_down"]
        out[f"{kind}_tup"][(*idx, vi)] = r["t_up"]
        out[f"{kind}_sph"][idx] = r["sph"]
    out["solar_wl"] = np.array([c.wavelength[0] for c in solar]) + grid.solar_step / 2  # type: ignore[index]
    out["solar_e0"] = np.array([r["e0"] / r["filter"] for r in sol], dtype=np.float64)
    out["timing"] = {
        "runs": len(solar) + len(cases),
        "seconds_per_run": per_run,
        "wall_seconds": wall,
        "processes": processes or (os.cpu_count() or 1),
    }
    return out


def _gas_cases(grid: LutGrid, wl: np.ndarray, resp: np.ndarray) -> list[SixSCase]:
    spec = (float(wl[0]), float(wl[-1]), tuple(float(v) for v in resp))
    cases = []
    for m in grid.airmass:
        sza = math.degrees(math.acos(1.0 / m))
        for w in grid.water:
            cases.append(SixSCase(spec, sza, 0.0, 0.0, water=w, ozone=grid.ozone_ref))
    return cases


def _gas_tables(grid: LutGrid, results: Iterable[dict[str, float]]) -> dict[str, np.ndarray]:
    """One band's one-way gas transmittances from its runs (air mass x water order)."""
    nm, nw = len(grid.airmass), len(grid.water)
    res = list(results)
    water = np.empty((nm, nw), np.float64)
    ozone = np.empty(nm, np.float64)
    other = np.empty(nm, np.float64)
    for mi in range(nm):
        for wi in range(nw):
            r = res[mi * nw + wi]
            water[mi, wi] = r["tg_water_down"]
            if wi == 0:
                ozone[mi] = r["tg_ozone_down"]
                other[mi] = math.prod(
                    r[f"tg_{g}_down"] for g in ("co2", "oxyg", "no2", "ch4", "co")
                )
    return {"water": water, "ozone": ozone, "other": other}


def _loglog(x: np.ndarray, xp: Sequence[float], fp: np.ndarray) -> np.ndarray:
    """Interpolate ``fp`` (last axis over ``xp``) at ``x`` linearly in log-log (extrapolating)."""
    lx, lxp = np.log(x), np.log(np.asarray(xp))
    lf = np.log(np.maximum(fp, 1e-12))
    j = np.clip(np.searchsorted(lxp, lx) - 1, 0, len(xp) - 2)
    w = (lx - lxp[j]) / (lxp[j + 1] - lxp[j])
    return np.exp(lf[..., j] * (1 - w) + lf[..., j + 1] * w)


def band_average(
    scattering: dict[str, Any], grid: LutGrid, wl: np.ndarray, resp: np.ndarray
) -> dict[str, np.ndarray]:
    """A band's scattering quantities: response x solar weighted means over wavelength."""
    e0 = np.interp(wl, scattering["solar_wl"], scattering["solar_e0"])
    w = resp * e0
    w = w / w.sum()
    out = {}
    for key in ("path", "tdown", "tup", "sph"):
        for kind in ("aer", "ray"):
            arr = np.asarray(scattering[f"{kind}_{key}"], np.float64)
            lam_axis = 2 if kind == "aer" else 1
            moved = np.moveaxis(arr, lam_axis, -1)
            vals = _loglog(wl, grid.wavelengths, moved)  # (..., n_wl_fine)
            out[f"{kind}_{key}"] = (vals @ w).astype(np.float32)
    out["e0"] = np.float64((resp * e0).sum() / resp.sum())
    return out


def sensor_cases(
    sensor: Any, grid: LutGrid
) -> tuple[list[Any], list[tuple[Any, ...]], list[SixSCase]]:
    """(bands with tables, their responses, the 6S gas runs) of a sensor."""
    bands = [b for b in sensor.bands if b.common_name not in BUILD_SKIP]
    per_band = [band_response(sensor.name, b) for b in bands]
    cases: list[SixSCase] = []
    for wl, resp, _ in per_band:
        cases += _gas_cases(grid, wl, resp)
    return bands, per_band, cases


def build_sensor(
    sensor: Any,
    scattering: dict[str, Any],
    grid: LutGrid,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    gas_results: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    """One sensor's LUT arrays (see :mod:`eo_pipeline.atmosphere.lut` for the layout).

    ``gas_results``: the 6S results of :func:`sensor_cases`' runs when already computed.
    """
    bands, per_band, cases = sensor_cases(sensor, grid)
    t0 = time.perf_counter()
    if gas_results is None:
        results, per_run = run_many(cases, processes, progress)
    else:
        results, per_run = gas_results, float("nan")
    n = len(grid.airmass) * len(grid.water)
    gas = [_gas_tables(grid, results[i * n : (i + 1) * n]) for i in range(len(bands))]
    avg = [band_average(scattering, grid, wl, resp) for wl, resp, _ in per_band]
    out: dict[str, Any] = {key: np.stack([a[key] for a in avg]) for key in avg[0] if key != "e0"}
    out["e0"] = np.array([a["e0"] for a in avg])
    out["gas_water"] = np.stack([g["water"] for g in gas]).astype(np.float32)
    out["gas_ozone"] = np.stack([g["ozone"] for g in gas]).astype(np.float32)
    out["gas_other"] = np.stack([g["other"] for g in gas]).astype(np.float32)
    out["bands"] = [b.id for b in bands]
    out["responses"] = [src for _, _, src in per_band]
    out["timing"] = {
        "gas_runs": len(cases),
        "seconds_per_run": per_run,
        "wall_seconds": time.perf_counter() - t0,
    }
    return out


def build_lut(
    sensor_name: str,
    out_dir: str | Path,
    *,
    grid: LutGrid | None = None,
    scattering: str | Path | None = None,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    gas_results: list[dict[str, float]] | None = None,
) -> Path:
    """Build ``<out_dir>/<sensor>.npz`` (the ``build-lut`` command).

    The scattering part is read from ``scattering`` (a file written by
    :func:`save_scattering`), else the shipped one when its grid is ``grid``, else computed
    with 6S (the slow stage). Gas tables always run 6S with the bands' responses.
    """
    from eo_pipeline.atmosphere.lut import DATA_DIR
    from eo_pipeline.atmosphere.store import read_npz, software_versions, write_npz
    from eo_pipeline.catalogs import sensors

    sensor = sensors.get(sensor_name)
    grid = grid or DEFAULT_GRID
    shipped = DATA_DIR / SCATTERING_FILE
    source = Path(scattering) if scattering else shipped
    sc: dict[str, Any] | None = None
    sc_meta: dict[str, Any] = {}
    if source.is_file():
        arrays, sc_meta = read_npz(source)
        if LutGrid.from_dict(sc_meta["grid"]) == grid:
            sc = dict(arrays)
        elif scattering:
            raise AtmosphereError(
                f"{source}: its grid ({sc_meta['grid'].get('name')}) is not the requested one "
                f"({grid.name}); rebuild it or drop --scattering"
            )
    if sc is None:
        sc = build_scattering(grid, processes, progress)
        sc_meta = {"timing": sc.pop("timing"), "grid": grid.as_dict()}
    lut = build_sensor(sensor, sc, grid, processes, progress, gas_results)
    built = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    meta = {
        "kind": "sensor",
        "sensor": sensor.name,
        "bands": lut.pop("bands"),
        "responses": lut.pop("responses"),
        "grid": grid.as_dict(),
        "version": f"6sv11-{grid.name}-{built}",
        "built": built,
        "software": software_versions(),
        "timing": {"gas": lut.pop("timing"), "scattering": sc_meta.get("timing")},
        "forward_model": "rho_toa = Tg * (path + T_down*T_up * rho_s / (1 - S * rho_s))",
    }
    return write_npz(Path(out_dir) / f"{sensor.name}.npz", lut, meta)


SCATTERING_FILE = "scattering-6sv11.npz"
"""Name of the shipped sensor-independent scattering table."""


def save_scattering(
    path: str | Path,
    grid: LutGrid,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Run :func:`build_scattering` and write it (``build-lut --scattering``)."""
    from eo_pipeline.atmosphere.store import software_versions, write_npz

    sc = build_scattering(grid, processes, progress)
    meta = {
        "kind": "scattering",
        "grid": grid.as_dict(),
        "timing": sc.pop("timing"),
        "software": software_versions(),
        "built": datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ"),
    }
    return write_npz(path, sc, meta)


def build_lut_cli(args: Any) -> int:
    """``eo-pipeline atmosphere build-lut`` (prints the file, its bands and timings)."""
    from eo_pipeline.atmosphere.grid import TINY_GRID
    from eo_pipeline.atmosphere.store import read_npz

    grid = TINY_GRID if args.grid == "tiny" else DEFAULT_GRID
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done == total or done % 200 == 0:
            print(f"  6S runs {done}/{total}", flush=True)

    path = build_lut(
        args.sensor,
        args.out,
        grid=grid,
        scattering=args.scattering,
        processes=args.processes,
        progress=progress,
    )
    _, meta = read_npz(path)
    gas = meta["timing"]["gas"]
    print(
        f"wrote {path}: bands {' '.join(meta['bands'])} ({', '.join(sorted(set(meta['responses'])))}); "
        f"{gas['gas_runs']} gas runs at {gas['seconds_per_run']:.2f} s each; "
        f"{time.perf_counter() - t0:.1f} s in all"
    )
    return 0

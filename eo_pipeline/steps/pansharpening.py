"""Pan-sharpening on xarray objects (KazEOSat-1: 4 m B0-B3 with the 1 m P band).

The MS bands are upsampled bilinearly to the PAN grid (pixel centres aligned) and sharpened
in one numba pass per PAN chunk (:func:`eo_pipeline.kernels.pansharpen.sharpen_block`).
Dask path: PAN chunks are rounded to multiples of the resolution ratio, the MS chunks are the
PAN chunks divided by the ratio, and every MS block reads a one-pixel halo of its neighbours
(``dask.array.overlap`` with ``boundary="nearest"``, the same edge rule as the numpy path).
This is the one step that cannot go through :func:`eo_pipeline.steps.dispatch.apply_kernel`
(the inputs live on two grids and need a halo); numba threads are capped the same way.

Examples
--------
>>> import numpy as np, xarray as xr
>>> ms = xr.DataArray(np.ones((4, 2, 2), np.float32), dims=("band", "y", "x"),
...                   coords={"band": ["B0", "B1", "B2", "B3"], "y": [6.0, 2.0], "x": [2.0, 6.0]})
>>> pan = xr.DataArray(np.full((8, 8), 2.0, np.float32), dims=("y", "x"),
...                    coords={"y": np.arange(7.5, 0, -1.0), "x": np.arange(0.5, 8, 1.0)})
>>> pansharpen(ms, pan, method="ihs").shape
(4, 8, 8)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr

from eo_pipeline.errors import BandError, InputDataError
from eo_pipeline.steps.compositing import nodata_value
from eo_pipeline.steps.dispatch import numba_threads

__all__ = ["default_weights", "pansharpen"]

Method = Literal["brovey", "ihs"]
_METHODS = {"brovey": 0, "ihs": 1}
_SKIP = frozenset({"mask", "saturated"})


@dataclass(frozen=True)
class _Grid:
    """A regular pixel grid read from an object's ``x``/``y`` coordinates."""

    name: str
    """Which input (for messages)."""
    shape: tuple[int, int]
    """``(ny, nx)``."""
    res: tuple[float, float]
    """Pixel size ``(x, y)`` in CRS units (y negative for north-up)."""
    bounds: tuple[float, float, float, float]
    """``(left, bottom, right, top)`` of the pixel edges."""
    crs: str | None
    """CRS as a string, ``None`` when the object carries none."""

    def __str__(self) -> str:
        b = ", ".join(f"{v:.6g}" for v in self.bounds)
        return (
            f"{self.name} grid: shape {self.shape}, pixel size ({self.res[0]:.6g}, "
            f"{self.res[1]:.6g}), bounds ({b}), crs {self.crs or 'unknown'}"
        )


def _crs(obj: xr.DataArray) -> str | None:
    try:
        import odc.geo.xr  # noqa: F401  (registers the .odc accessor)

        crs = obj.odc.crs
    except (ImportError, AttributeError, ValueError):
        return None
    return None if crs is None else str(crs)


def _grid(obj: xr.DataArray, name: str) -> _Grid:
    for dim in ("y", "x"):
        if dim not in obj.dims or dim not in obj.coords or obj.sizes[dim] < 2:
            raise InputDataError(
                f"pansharpen: {name} needs 'y' and 'x' dims with coordinates and at least 2 "
                f"pixels each (dims: {dict(obj.sizes)})"
            )
    x = obj["x"].values.astype(np.float64)
    y = obj["y"].values.astype(np.float64)
    rx, ry = float(x[1] - x[0]), float(y[1] - y[0])
    left, right = float(x[0] - rx / 2), float(x[-1] + rx / 2)
    top, bottom = float(y[0] - ry / 2), float(y[-1] + ry / 2)
    bounds = (min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    return _Grid(name, (y.size, x.size), (rx, ry), bounds, _crs(obj))


def _ratio(ms: _Grid, pan: _Grid) -> int:
    """Integer MS/PAN ratio, or :class:`InputDataError` naming both grids."""
    problems = []
    if ms.crs and pan.crs and ms.crs != pan.crs:
        problems.append("the CRS differ")
    rx, ry = ms.res[0] / pan.res[0], ms.res[1] / pan.res[1]
    ratio = round(rx)
    if ratio < 1 or abs(rx - ratio) > 1e-6 * ratio or abs(ry - rx) > 1e-6 * ratio:
        problems.append(f"the pixel-size ratio is ({rx:.6g}, {ry:.6g}), not one integer")
    elif (ms.shape[0] * ratio, ms.shape[1] * ratio) != pan.shape:
        problems.append(f"PAN shape is not {ratio} x the MS shape")
    tol = 1e-3 * abs(pan.res[0])
    if max(abs(a - b) for a, b in zip(ms.bounds, pan.bounds, strict=True)) > tol:
        problems.append("the bounds differ")
    if problems:
        raise InputDataError(
            f"pansharpen: MS and PAN grids do not align ({'; '.join(problems)}). {ms}. {pan}. "
            "Load both from the same scene (same bounds and CRS, PAN resolution an integer "
            "fraction of MS), e.g. reproject/crop one onto the other's grid first."
        )
    return ratio


def _band_info(var: xr.DataArray, sensor: str | None) -> tuple[float, float, float] | None:
    """(start, end) wavelength in micrometres and ESUN (1 when unknown), from attrs or the sensor file."""
    c = var.attrs.get("center_wavelength")
    w = var.attrs.get("full_width_half_max")
    esun = var.attrs.get("esun")
    if (c is None or w is None or esun is None) and sensor:
        try:
            from eo_pipeline.catalogs import sensors

            key = var.attrs.get("band")
            if key is None and "band" in var.coords and var["band"].ndim == 0:
                key = var["band"].item()
            band = sensors.get(sensor).band(str(key if key is not None else var.name))
        except (KeyError, ValueError, OSError):
            band = None
        if band is not None:
            c = band.center_wavelength if c is None else c
            w = band.full_width_half_max if w is None else w
            esun = band.esun if esun is None else esun
    if c is None or w is None:
        return None
    esun_value = float(np.mean(esun)) if esun is not None else 1.0  # per-date arrays: mean
    return float(c) - float(w) / 2, float(c) + float(w) / 2, esun_value


def default_weights(
    bands: Sequence[xr.DataArray], pan: xr.DataArray, sensor: str | None = None
) -> np.ndarray:
    """Synthetic-pan weights: solar energy each MS band contributes inside the PAN pass band.

    ``w_k = ESUN_k * overlap_k`` (micrometres of band k's ``centre +/- FWHM / 2`` inside the
    PAN band's), normalised: the PAN reflectance of a boxcar sensor is this weighted mean of
    the MS reflectances (the model of :func:`eo_pipeline.simulation.spectra.pan_weights`, which the
    simulator uses). Numbers come from the variables' ``center_wavelength``,
    ``full_width_half_max``, ``esun`` attrs, else the sensor file (``sensor`` and each
    variable's ``band`` attr or name); equal weights when a band is unknown or none overlaps.

    Examples
    --------
    >>> import xarray as xr
    >>> bands = [xr.DataArray(0, name=b, attrs={"band": b}) for b in ("B0", "B1", "B2", "B3")]
    >>> default_weights(bands, xr.DataArray(0, name="P", attrs={"band": "P"}), "kazeosat1").round(3)
    array([0.359, 0.343, 0.299, 0.   ], dtype=float32)
    """
    equal = np.full(len(bands), 1.0 / len(bands), np.float32)
    pan_info = _band_info(pan, sensor)
    infos = [_band_info(b, sensor) for b in bands]
    if pan_info is None or any(i is None for i in infos):
        return equal
    lo, hi, _ = pan_info
    raw = np.array([max(0.0, min(i[1], hi) - max(i[0], lo)) * i[2] for i in infos if i is not None])
    if raw.sum() <= 0:
        return equal
    return (raw / raw.sum()).astype(np.float32)


def _ms_bands(ms: xr.Dataset | xr.DataArray) -> tuple[list[Hashable], xr.DataArray]:
    """Band names and a ``(band, [time,] y, x)`` stacked DataArray."""
    if isinstance(ms, xr.Dataset):
        names = [k for k, v in ms.data_vars.items() if {"y", "x"} <= set(v.dims) and k not in _SKIP]
        if not names:
            raise BandError(f"pansharpen: no (y, x) band in the MS Dataset ({list(ms.data_vars)})")
        stacked = xr.concat([ms[k] for k in names], dim="band", coords="minimal", compat="override")
        return names, stacked.assign_coords(band=[str(k) for k in names])
    if "band" not in ms.dims:
        ms = ms.expand_dims(band=[ms.name if ms.name is not None else "band"])
    return list(ms["band"].values), ms


def _pan_array(pan: xr.Dataset | xr.DataArray) -> xr.DataArray:
    if isinstance(pan, xr.DataArray):
        return pan.squeeze("band", drop=True) if "band" in pan.dims else pan
    cands = [k for k, v in pan.data_vars.items() if v.attrs.get("common_name") == "pan"]
    cands = cands or [k for k in pan.data_vars if str(k).upper() in {"P", "PAN"}]
    cands = cands or ([next(iter(pan.data_vars))] if len(pan.data_vars) == 1 else [])
    if not cands:
        raise BandError(
            f"pansharpen: no PAN band in {list(pan.data_vars)} (looked for common_name 'pan' "
            "or a variable named P/PAN); pass the DataArray itself"
        )
    return pan[cands[0]]


def _sharpen_numpy_block(
    ms: np.ndarray,
    pan: np.ndarray,
    gains: np.ndarray,
    *,
    ratio: int,
    weights: np.ndarray,
    method: int,
    ms_nodata: float,
    pan_nodata: float,
) -> np.ndarray:
    from eo_pipeline.kernels.pansharpen import sharpen_block

    if pan.ndim == 3:
        pan = pan[0]
    g = np.ascontiguousarray(gains, dtype=np.float32).reshape(-1)
    out = np.empty((ms.shape[0], *pan.shape), np.float32)
    with numba_threads():
        sharpen_block(ms, pan, ratio, weights, g, method, ms_nodata, pan_nodata, out)
    return out


def _injection_gains(ms: xr.DataArray, weights: np.ndarray, nodata: float) -> Any:
    """Per-band detail gains ``cov(MS_k, I) / var(I)`` on the MS grid (lazy when dask-backed).

    The regression gains of component-substitution pansharpening (Aiazzi, Baronti & Selva,
    "Improving component substitution pansharpening through multivariate regression of
    MS+Pan data", IEEE TGRS 45(10), 2007; Vivone et al., IEEE TGRS 53(5), 2015, "GSA"):
    a band that does not follow the synthetic pan (NIR outside a visible PAN band) gets less
    of the PAN detail. Gains are 1 where they cannot be estimated (constant image).
    """
    m = ms.astype(np.float32)
    if not math.isnan(nodata):
        m = m.where(ms != nodata)
    m = m.where(m.notnull().all("band"))
    intensity = (m * xr.DataArray(weights, dims="band")).sum("band", skipna=False)
    dm = m - m.mean(("y", "x"))
    di = intensity - intensity.mean()
    gains = (dm * di).mean(("y", "x")) / (di * di).mean()
    return gains.where(np.isfinite(gains), 1.0).astype(np.float32).transpose("band").data


def _sharpen_2d(
    ms: xr.DataArray, pan: xr.DataArray, ratio: int, adaptive: bool, kw: dict[str, Any]
) -> Any:
    """(band, y, x) MS + (y, x) PAN -> (band, y, x) array on the PAN grid (numpy or dask)."""
    ms = ms.transpose("band", "y", "x")
    pan = pan.transpose("y", "x")
    nb = ms.sizes["band"]
    gains = (
        _injection_gains(ms, kw["weights"], kw["ms_nodata"])
        if adaptive
        else np.ones(nb, np.float32)
    )
    if ms.chunks is None and pan.chunks is None:
        from eo_pipeline.kernels.pansharpen import pad_edge

        return _sharpen_numpy_block(pad_edge(ms.values), pan.values, gains, ratio=ratio, **kw)
    import dask.array as da

    pan_data = pan.data if pan.chunks is not None else da.from_array(pan.values, chunks=2048)
    ms_data = ms.data if ms.chunks is not None else da.from_array(ms.values)
    # PAN chunks: whole multiples of the ratio; MS chunks: PAN chunks / ratio.
    cy, cx = (max(ratio, (c[0] // ratio) * ratio) for c in pan_data.chunks)
    pan_data = pan_data.rechunk((cy, cx))
    ms_data = ms_data.rechunk((-1, cy // ratio, cx // ratio))
    halo = da.overlap.overlap(ms_data, depth={0: 0, 1: 1, 2: 1}, boundary="nearest")
    return da.map_blocks(
        _sharpen_numpy_block,
        halo,
        pan_data[None],
        da.asarray(gains).reshape(nb, 1, 1).rechunk(-1),  # one block, broadcast to all
        chunks=((nb,), *pan_data.chunks),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
        **kw,
        ratio=ratio,
    )


def pansharpen(
    ms: xr.Dataset | xr.DataArray,
    pan: xr.Dataset | xr.DataArray,
    method: Method = "brovey",
    weights: Sequence[float] | None = None,
    injection: Literal["unit", "adaptive"] = "unit",
) -> xr.Dataset | xr.DataArray:
    """Sharpen MS bands with a PAN band of an integer-times finer, aligned grid.

    Parameters
    ----------
    ms
        MS bands: a Dataset (one ``(y, x)`` or ``(time, y, x)`` variable per band, e.g.
        KazEOSat-1 B0-B3; ``mask``/``saturated`` are skipped) or a DataArray with a ``band`` dim.
    pan
        The PAN band (DataArray, or a Dataset holding it as ``P``/``PAN``/common name ``pan``),
        same bounds and CRS, pixel size MS / ratio (ratio an integer, 4 for KazEOSat-1).
    method
        ``"brovey"`` (ratio) or ``"ihs"`` (fast generalised IHS, additive).
    weights
        Synthetic-pan weight per MS band (normalised to sum 1); ``None`` uses
        :func:`default_weights` (spectral overlap with the PAN band, else equal).
    injection
        ``"unit"``: the classic method (every band gets the whole PAN detail).
        ``"adaptive"``: per-band gains ``cov(MS_k, I) / var(I)`` estimated on the MS grid
        (one lazy reduction over the MS bands per date): bands outside the PAN pass band
        (KazEOSat-1 NIR) keep their own spatial structure instead of the visible one.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        float32 MS bands on the PAN grid (PAN coords and CRS), same type as ``ms``, attrs kept
        plus ``pansharpening``; lazy when either input is dask-backed.

    Raises
    ------
    InputDataError
        Grids that do not align (the message names both grids), mismatched ``time``.
    BandError
        No MS band / no PAN band found, or ``weights`` of the wrong length.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ms = xr.Dataset({b: (("y", "x"), np.full((2, 2), 0.2, np.float32)) for b in ("B0", "B1")},
    ...                 coords={"y": [3.0, 1.0], "x": [1.0, 3.0]})
    >>> pan = xr.DataArray(np.full((4, 4), 0.4, np.float32), dims=("y", "x"),
    ...                    coords={"y": [3.5, 2.5, 1.5, 0.5], "x": [0.5, 1.5, 2.5, 3.5]})
    >>> out = pansharpen(ms, pan, "brovey")
    >>> out["B0"].shape, round(float(out["B0"][0, 0]), 3)
    ((4, 4), 0.4)
    """
    if method not in _METHODS:
        raise InputDataError(
            f"pansharpen: unknown method {method!r}; choose one of {list(_METHODS)}"
        )
    if injection not in ("unit", "adaptive"):
        raise InputDataError(
            f"pansharpen: unknown injection {injection!r}; choose 'unit' or 'adaptive'"
        )
    adaptive = injection == "adaptive"
    names, stacked = _ms_bands(ms)
    pan_da = _pan_array(pan)
    ratio = _ratio(_grid(stacked, "MS"), _grid(pan_da, "PAN"))
    sensor = ms.attrs.get("sensor")
    band_vars = (
        [ms[k] for k in names]
        if isinstance(ms, xr.Dataset)
        else [stacked.sel(band=b) for b in names]
    )
    if weights is None:
        w = default_weights(band_vars, pan_da, sensor)
    else:
        w = np.asarray(weights, np.float64)
        if w.shape != (len(names),) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise BandError(
                f"pansharpen: weights {list(weights)} must be {len(names)} finite numbers "
                f"(one per MS band {names}) with a positive sum"
            )
        w = (w / w.sum()).astype(np.float32)
    kw = {
        "weights": w,
        "method": _METHODS[method],
        "ms_nodata": nodata_value(band_vars[0]),
        "pan_nodata": nodata_value(pan_da),
    }
    if "time" in stacked.dims or "time" in pan_da.dims:
        if stacked.sizes.get("time") != pan_da.sizes.get("time"):
            raise InputDataError(
                f"pansharpen: MS has {stacked.sizes.get('time', 'no')} time steps, PAN has "
                f"{pan_da.sizes.get('time', 'no')}; select matching dates first"
            )
        parts = [
            _sharpen_2d(stacked.isel(time=i), pan_da.isel(time=i), ratio, adaptive, kw)
            for i in range(stacked.sizes["time"])
        ]
        if isinstance(parts[0], np.ndarray):
            data: Any = np.stack(parts, axis=1)
        else:
            import dask.array as da

            data = da.stack(parts, axis=1)
        dims: tuple[str, ...] = ("band", "time", "y", "x")
        coords = {k: v for k, v in pan_da.coords.items() if set(v.dims) <= {"time", "y", "x"}}
    else:
        data = _sharpen_2d(stacked, pan_da, ratio, adaptive, kw)
        dims = ("band", "y", "x")
        coords = {k: v for k, v in pan_da.coords.items() if set(v.dims) <= {"y", "x"}}
    out = xr.DataArray(data, dims=dims, coords={**coords, "band": [str(n) for n in names]})
    info = f"{method} (x{ratio}, weights {[round(float(v), 4) for v in w]}, {injection} injection)"
    if isinstance(ms, xr.DataArray):
        out.attrs.update(ms.attrs)
        out.attrs["pansharpening"] = info
        return out.rename(ms.name)
    result = xr.Dataset(attrs={**ms.attrs, "pansharpening": info})
    for i, key in enumerate(names):
        var = out.isel(band=i, drop=True)
        var.attrs.update(ms[key].attrs)
        var.attrs.update({"nodata": float("nan"), "pansharpening": info})
        if "gsd" in pan_da.attrs:
            var.attrs["gsd"] = pan_da.attrs["gsd"]
        result[key] = var
    return result

"""Surface reflectance from Level-1 DN: ``calibrate(ds, to="surface_reflectance")`` on L1 input.

One pass per chunk (:func:`eo_pipeline.kernels.atmosphere.correct`): DN -> TOA reflectance
(the same numbers and formula as ``to="toa_reflectance"``) -> surface reflectance from the
sensor's 6S lookup table (:mod:`eo_pipeline.atmosphere.lut`) at each pixel's geometry and AOT.

Inputs of the atmosphere (:class:`AtmosphereOptions`): AOT at 550 nm as a number, a raster
(any grid with ``x``/``y`` coordinates in the scene's CRS that covers the scene; bilinear) or
retrieved over dark targets (:mod:`eo_pipeline.steps.aerosol`); water vapour and ozone from
6S's standard atmospheres by latitude and month (:mod:`eo_pipeline.atmosphere.climatology`)
unless given; surface pressure from the elevation (US standard atmosphere) or sea level.
The view geometry is a scene value (nadir unless given or in the dataset's ``view_zenith``
/ ``view_azimuth`` coordinates).

The result carries, per band, a JSON ``calibration`` attr (``to``, formula, LUT file and
version, model, gases, AOT method) and the dataset gains ``aot550`` (float32, the AOT used
per pixel) and attrs ``eo_pipeline:aot550`` (scene mean), ``eo_pipeline:aot_method``,
``eo_pipeline:aot_range`` (the LUT's), ``eo_pipeline:lut`` and ``eo_pipeline:lut_version``,
``eo_pipeline:aerosol_model`` and ``eo_pipeline:gases`` (water vapour, ozone, pressure used).
Bands without a table (cirrus, thermal) are calibrated to TOA reflectance, as said in their
``calibration`` attr.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from eo_pipeline.atmosphere.climatology import climatology
from eo_pipeline.atmosphere.grid import pressure_hpa
from eo_pipeline.atmosphere.lut import BandTables, SensorLut, load_lut
from eo_pipeline.atmosphere.options import AtmosphereOptions
from eo_pipeline.errors import AtmosphereError, CalibrationError
from eo_pipeline.kernels import atmosphere as kernel
from eo_pipeline.kernels.buffers import pooled_empty
from eo_pipeline.steps import calibration as cal
from eo_pipeline.steps.dispatch import apply_kernel

__all__ = ["AtmosphereOptions", "surface_reflectance"]


def _scene_lonlat(ds: xr.Dataset, ydim: str, xdim: str) -> tuple[float, float] | None:
    crs = cal._crs(ds)
    if crs is None or ydim not in ds.coords or xdim not in ds.coords:
        return None
    y = float(np.asarray(ds[ydim].values)[ds.sizes[ydim] // 2])
    x = float(np.asarray(ds[xdim].values)[ds.sizes[xdim] // 2])
    lon, lat = cal._lonlat(crs.to_wkt(), np.array([x]), np.array([y]))
    return float(lon.reshape(-1)[0]), float(lat.reshape(-1)[0])


def _month(ds: xr.Dataset) -> int:
    times = cal._times(ds)
    if times is None:
        return 6
    return int(str(np.datetime_as_string(times.astype("datetime64[D]")[0]))[5:7])


def _scene_elevation(ds: xr.Dataset, dem: Any, ydim: str, xdim: str) -> tuple[float, str]:
    """Mean height (m) of a DEM (file path or DataArray) over the scene's extent, and its name.

    Raises
    ------
    AtmosphereError
        The DEM has no valid height over the scene (it does not cover it).
    """
    from pathlib import Path

    from eo_pipeline.io.fields import mean_over_scene

    ys, xs = np.asarray(ds[ydim].values), np.asarray(ds[xdim].values)
    if isinstance(dem, str):  # only the scene's window of the file is read
        name = Path(dem).name
        height = mean_over_scene(dem, like=ds, what="DEM", dims=(ydim, xdim))
    else:
        name = str(dem.name or "raster")
        fy, fx = ("y", "x") if {"y", "x"} <= set(dem.dims) else (ydim, xdim)
        inside = dem.where(
            (dem[fy] >= ys.min()) & (dem[fy] <= ys.max())
            & (dem[fx] >= xs.min()) & (dem[fx] <= xs.max())
        )  # fmt: skip
        height = float(inside.mean(skipna=True)) if int(inside.count()) else math.nan
    if not math.isfinite(height):
        raise AtmosphereError(
            f"DEM {name} has no height over the scene (x {xs.min():.0f}..{xs.max():.0f}, y "
            f"{ys.min():.0f}..{ys.max():.0f} in the scene's CRS); give a DEM that covers it"
        )
    return height, name


def _gases(ds: xr.Dataset, opt: AtmosphereOptions, ydim: str, xdim: str) -> dict[str, Any]:
    """Water vapour, ozone, pressure and where they came from."""
    out: dict[str, Any] = {}
    need = opt.water is None or opt.ozone is None
    clim = None
    if need:
        ll = _scene_lonlat(ds, ydim, xdim)
        lat = ll[1] if ll else 45.0
        clim = climatology(lat, _month(ds))
    out["water"] = float(opt.water) if opt.water is not None else clim.water  # type: ignore[union-attr]
    out["ozone"] = float(opt.ozone) if opt.ozone is not None else clim.ozone  # type: ignore[union-attr]
    out["gas_source"] = (
        "given" if clim is None else f"6S standard atmosphere '{clim.profile}' (latitude, month)"
    )
    if opt.pressure is not None:
        out["pressure"], out["pressure_source"] = float(opt.pressure), "given"
    elif isinstance(opt.elevation, int | float):
        out["pressure"] = pressure_hpa(float(opt.elevation) / 1000.0)
        out["pressure_source"] = f"elevation {opt.elevation} m (US standard atmosphere)"
    elif opt.elevation is not None:
        height, name = _scene_elevation(ds, opt.elevation, ydim, xdim)
        out["pressure"] = pressure_hpa(height / 1000.0)
        out["pressure_source"] = (
            f"DEM {name}: mean elevation {height:.0f} m over the scene (US standard atmosphere)"
        )
    else:
        out["pressure"], out["pressure_source"] = 1013.25, "sea level (no elevation given)"
    out["gases"] = bool(opt.gases)
    return out


def _view(ds: xr.Dataset, opt: AtmosphereOptions) -> tuple[float, float]:
    def pick(value: float | None, coord: str) -> float:
        if value is not None:
            return float(value)
        c = cal._coord(ds, coord)
        return float(np.nanmean(c)) if c is not None else 0.0

    return pick(opt.view_zenith, "view_zenith"), pick(opt.view_azimuth, "view_azimuth")


def _relative_azimuth(saa: Any, vaa: float) -> Any:
    d = np.abs((np.asarray(saa, np.float64) - vaa + 180.0) % 360.0 - 180.0)
    return d


def _axis_weights(nodes: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, weight, upper index) of ``v`` on ``nodes`` (any order), clamped."""
    order = np.argsort(nodes)
    n = nodes[order]
    if n.size == 1:
        zero = np.zeros(v.size, np.int64)
        return zero, np.zeros(v.size), zero
    i = np.clip(np.searchsorted(n, v) - 1, 0, n.size - 2)
    w = np.clip((v - n[i]) / (n[i + 1] - n[i]), 0.0, 1.0)
    return order[i], w, order[i + 1]


def _bilinear(
    field: np.ndarray, fy: np.ndarray, fx: np.ndarray, y: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """``field`` (fy, fx) at the grid ``y`` x ``x`` (float32), clamped at the edges."""
    iy, wy, jy = _axis_weights(fy, y)
    ix, wx, jx = _axis_weights(fx, x)
    f = field.astype(np.float64)
    top = f[iy][:, ix] * (1 - wx) + f[iy][:, jx] * wx
    bot = f[jy][:, ix] * (1 - wx) + f[jy][:, jx] * wx
    return (top * (1 - wy)[:, None] + bot * wy[:, None]).astype(np.float32)


@dataclass(frozen=True)
class _Aot:
    """The AOT of a correction: a scalar per time or a field (time, fy, fx) with coords."""

    value: np.ndarray | None
    """(time,) scalars, or None."""
    field: np.ndarray | None
    """(time, fy, fx) float32 field, or None."""
    fy: np.ndarray | None
    fx: np.ndarray | None
    method: str
    """How it was obtained."""
    mean: float
    """Scene mean (recorded)."""
    extra: dict[str, Any]
    """Retrieval diagnostics."""

    def block(self, t_index: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """AOT per pixel of one block (len(t_index), ny, nx); a read-only broadcast view
        (zero strides) for scalars, which the kernel recognises."""
        shape = (t_index.size, y.size, x.size)
        if self.field is None:
            return np.broadcast_to(
                np.asarray(self.value, np.float32)[t_index][:, None, None], shape
            )
        out = np.empty(shape, np.float32)
        for k, t in enumerate(t_index):
            out[k] = _bilinear(self.field[t], self.fy, self.fx, y, x)  # type: ignore[arg-type]
        return out


def _raster_aot(aot: xr.DataArray, ds: xr.Dataset, ydim: str, xdim: str, n_time: int) -> _Aot:
    """A user AOT raster: checked to cover the scene, kept on its own grid."""
    if not {"y", "x"} <= set(aot.dims) and not {ydim, xdim} <= set(aot.dims):
        raise AtmosphereError(
            f"AOT raster has dims {aot.dims}; it needs 'y' and 'x' (coordinates in the scene's CRS)"
        )
    a = aot.rename({k: v for k, v in (("y", ydim), ("x", xdim)) if k in aot.dims and k != v})
    fy = np.asarray(a[ydim].values, np.float64)
    fx = np.asarray(a[xdim].values, np.float64)
    sy = np.asarray(ds[ydim].values, np.float64)
    sx = np.asarray(ds[xdim].values, np.float64)
    res = [abs(float(v[1] - v[0])) if v.size > 1 else 0.0 for v in (fy, fx)]
    tol_y, tol_x = res[0] / 2 + 1e-6, res[1] / 2 + 1e-6
    if (
        sy.min() < fy.min() - tol_y
        or sy.max() > fy.max() + tol_y
        or sx.min() < fx.min() - tol_x
        or sx.max() > fx.max() + tol_x
    ):
        raise AtmosphereError(
            f"the AOT raster (x {fx.min():.1f}..{fx.max():.1f}, y {fy.min():.1f}..{fy.max():.1f}) "
            f"does not cover the scene (x {sx.min():.1f}..{sx.max():.1f}, y "
            f"{sy.min():.1f}..{sy.max():.1f}); give a raster over the whole scene in its CRS, "
            "or a number"
        )
    # only the cells bilinear sampling of the scene touches (a field reprojected from
    # another CRS has NaN corners outside the scene: harmless)
    ky = (fy >= sy.min() - 2 * tol_y) & (fy <= sy.max() + 2 * tol_y)
    kx = (fx >= sx.min() - 2 * tol_x) & (fx <= sx.max() + 2 * tol_x)
    fy, fx = fy[ky], fx[kx]
    values = np.asarray(a.transpose(..., ydim, xdim).values, np.float32)
    values = values.reshape(-1, ky.size, kx.size)[:, ky][:, :, kx]
    if values.shape[0] == 1 and n_time > 1:
        values = np.repeat(values, n_time, axis=0)
    if not np.all(np.isfinite(values)) or values.min() < 0:
        raise AtmosphereError(
            "the AOT raster has NaN (nodata) or negative values over the scene; fill it first"
        )
    return _Aot(None, values, fy, fx, "user raster", float(values.mean()), {})


def _resolve_aot(
    ds: xr.Dataset,
    opt: AtmosphereOptions,
    lut: SensorLut,
    ctx: dict[str, Any],
) -> _Aot:
    n_time = ctx["n_time"]
    if opt.aot550 is None:
        from eo_pipeline.steps.aerosol import retrieve_aot

        return retrieve_aot(ds, lut, ctx, window=opt.aot_window)
    if isinstance(opt.aot550, xr.DataArray):
        return _raster_aot(opt.aot550, ds, ctx["ydim"], ctx["xdim"], n_time)
    value = float(opt.aot550)
    if not math.isfinite(value) or value < 0:
        raise AtmosphereError(f"aot550={opt.aot550!r} must be a finite number >= 0")
    return _Aot(np.full(n_time, value), None, None, None, "user value", value, {})


def _sr_block(
    dn: np.ndarray,
    *arrays: np.ndarray,
    names: tuple[str, ...],
    a: np.ndarray,
    b: np.ndarray,
    divide_cos: bool,
    sun_zenith: np.ndarray | None,
    raa_cos: np.ndarray,
    vza: float,
    aot: _Aot,
    tables: BandTables,
    log_gas: np.ndarray,
    nodata: int | None,
    saturation: int | None,
    flag: int,
    max_zenith: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One block: DN -> surface reflectance (float32) and the saturation flags (uint8)."""
    inputs = dict(zip(names, arrays, strict=True))
    shape = dn.shape
    ny, nx = shape[-2:]
    dn3 = np.ascontiguousarray(dn).reshape(-1, ny, nx)
    t_index = (
        inputs["t_index"].reshape(-1).astype(np.int64)
        if "t_index" in inputs
        else np.zeros(1, np.int64)
    )
    if t_index.size != dn3.shape[0]:
        t_index = np.resize(t_index, dn3.shape[0])
    if "sun_zenith" in inputs:
        sza = np.broadcast_to(inputs["sun_zenith"].reshape(-1, ny, nx), dn3.shape)
    else:
        sza = np.broadcast_to(sun_zenith[t_index][:, None, None], dn3.shape)  # type: ignore[index]
    craa = np.broadcast_to(raa_cos[t_index][:, None, None], dn3.shape)
    vz = np.broadcast_to(np.float64(vza), dn3.shape)
    tau = aot.block(t_index, inputs["y"].reshape(-1), inputs["x"].reshape(-1))
    out = pooled_empty(shape, np.float32)
    mask = np.empty(shape, np.uint8)
    nd, has_nd = cal.radiometry._limit(nodata, dn.dtype)
    sat, has_sat = cal.radiometry._limit(saturation, dn.dtype)
    lng = log_gas[t_index] if log_gas.shape[0] > 1 else log_gas
    kernel.correct(  # type: ignore[call-arg]
        dn3, a[t_index], b[t_index], divide_cos, sza, vz, craa, tau, float(max_zenith),
        *tables.kernel_args(), np.ascontiguousarray(lng), tables.airmass,
        nd, has_nd, sat, has_sat, np.uint8(flag), out.reshape(dn3.shape), mask.reshape(dn3.shape),
    )  # fmt: skip
    return out, mask


def _aot_block(t: np.ndarray, y: np.ndarray, x: np.ndarray, *, aot: _Aot) -> np.ndarray:
    ti = np.asarray(t).reshape(-1).astype(np.int64)
    out = aot.block(ti, np.asarray(y).reshape(-1), np.asarray(x).reshape(-1))
    return np.array(out).reshape(np.broadcast_shapes(t.shape, y.shape, x.shape))  # own memory


def _sun(ds: xr.Dataset, n_time: int, max_zenith: float) -> tuple[np.ndarray, np.ndarray]:
    elevation = cal._coord(ds, "sun_elevation")
    if elevation is None:
        raise CalibrationError(
            "surface_reflectance needs the sun elevation; the dataset has no 'sun_elevation' "
            "coordinate. Load with eo_pipeline.io.loading"
        )
    sza = np.broadcast_to(90.0 - np.asarray(elevation, np.float64), (n_time,)).copy()
    saa = cal._coord(ds, "sun_azimuth")
    saa_v = np.broadcast_to(np.asarray(0.0 if saa is None else saa, np.float64), (n_time,))
    return sza, saa_v.copy()


def _chunked(da: xr.DataArray, like: xr.DataArray) -> xr.DataArray:
    if like.chunks is None:
        return da
    sizes = dict(zip(like.dims, like.chunks, strict=True))
    return da.chunk({d: sizes[d] for d in da.dims})


def _record(
    name: str, plan: Any, lut: SensorLut, opt: AtmosphereOptions, gas: dict[str, Any], aot: _Aot,
    sza: np.ndarray, vza: float, raa: np.ndarray, var: xr.DataArray, per_pixel_sun: bool,
) -> str:  # fmt: skip
    return json.dumps(
        {
            "to": "surface_reflectance",
            "formula": (
                f"rho_toa = {plan.formula.split('= ', 1)[-1]}; y = (rho_toa / Tg - rho_path) / "
                "(T_down * T_up); rho = y / (1 + S * y)"
            ),
            "numbers": {k: cal._jsonable(v) for k, v in plan.numbers.items()},
            "atmosphere": {
                "model": "6SV1.1 lookup table",
                "lut": lut.source,
                "lut_version": lut.version,
                "response": lut.meta.get("responses", [None] * len(lut.bands))[
                    lut.band_index(name)
                ],
                "aerosol_model": opt.model,
                "aot550": aot.mean,
                "aot_method": aot.method,
                **gas,
                "sun_zenith": "per-pixel NOAA solar position" if per_pixel_sun else sza.tolist(),
                "view_zenith": vza,
                "relative_azimuth": raa.tolist(),
            },
            "nodata": cal._int_attr(var, "nodata"),
            "saturation": cal._int_attr(var, "saturation"),
            "software": "eo_pipeline.steps.atmosphere",
        }
    )


def surface_reflectance(
    ds: xr.Dataset,
    options: AtmosphereOptions | None = None,
    *,
    per_pixel_sun: bool = False,
    max_zenith: float = cal.radiometry.MAX_ZENITH,
) -> xr.Dataset:
    """Level-1 DN -> surface reflectance (float32), lazily for dask input (module docstring).

    Raises
    ------
    AtmosphereError
        No LUT for the sensor, geometry or AOT outside the LUT, an AOT raster not covering
        the scene, bad options.
    CalibrationError
        Missing calibration numbers or sun elevation (as for TOA reflectance).
    """
    opt = options or AtmosphereOptions()
    sensor = ds.attrs.get("sensor")
    if opt.lut is None and not sensor:
        raise AtmosphereError(
            "surface_reflectance from Level-1 DN needs the dataset's 'sensor' attr (set by "
            "eo_pipeline.io.loading) or AtmosphereOptions(lut=...) for the atmospheric "
            "correction; a Level-2 product's bands carry 'sr_scale' instead"
        )
    lut = load_lut(opt.lut or str(sensor))
    bands = [k for k, v in ds.data_vars.items() if any(t in v.attrs for t in cal._TRIGGERS)]
    with_table = [k for k in bands if k in lut.bands]
    if not with_table:
        raise AtmosphereError(
            f"no band of the dataset ({', '.join(map(str, bands)) or 'none'}) has a table in "
            f"{lut.source} (bands {', '.join(lut.bands)})"
        )
    template = ds[with_table[0]]
    ydim, xdim = template.dims[-2:]
    n_time = ds.sizes.get("time", 1)
    distance, _ = cal._earth_sun(ds)
    plans = {k: cal._plan(ds[k], "toa_reflectance", ds.sizes.get("time"), distance) for k in bands}
    sza, saa = _sun(ds, n_time, max_zenith)
    vza, vaa = _view(ds, opt)
    raa = _relative_azimuth(saa, vaa)
    valid = sza[sza <= max_zenith]
    if valid.size:
        lut.check_range(sza=(float(valid.min()), float(valid.max())))
    lut.check_range(vza=vza)
    gas = _gases(ds, opt, str(ydim), str(xdim))
    ctx = {"n_time": n_time, "ydim": ydim, "xdim": xdim, "sza": sza, "vza": vza, "raa": raa,
           "plans": plans, "gas": gas, "model": opt.model, "max_zenith": max_zenith}  # fmt: skip
    aot = _resolve_aot(ds, opt, lut, ctx)
    lo = float(np.min(aot.value) if aot.field is None else aot.field.min())  # type: ignore[arg-type]
    hi = float(np.max(aot.value) if aot.field is None else aot.field.max())  # type: ignore[arg-type]
    lut.check_range(aot=(lo, hi))
    out = ds.copy(deep=False)
    masks: list[tuple[str, xr.DataArray]] = []
    coords = {
        "t_index": xr.DataArray(np.arange(n_time), dims=["time"])
        if "time" in template.dims
        else None,
        "y": xr.DataArray(np.asarray(ds[ydim].values, np.float64), dims=[ydim]),
        "x": xr.DataArray(np.asarray(ds[xdim].values, np.float64), dims=[xdim]),
    }
    zenith_pixel = cal._pixel_zenith(ds, template, max_zenith) if per_pixel_sun else None
    for name in with_table:
        var, plan = ds[name], plans[name]
        if var.dtype.kind not in "ui":
            raise CalibrationError(f"band {name!r} is {var.dtype}, not integer DN")
        tables = lut.tables(name, model=opt.model, pressure=gas["pressure"], water=gas["water"],
                            ozone=gas["ozone"], gases=gas["gases"])  # fmt: skip
        parts = {k: _chunked(v, var) for k, v in coords.items() if v is not None}
        if zenith_pixel is not None:
            parts["sun_zenith"] = zenith_pixel
        factor = np.broadcast_to(np.asarray(plan.factor, np.float64), (n_time,))
        a = np.broadcast_to(np.asarray(plan.mult, np.float64), (n_time,)) * factor
        b = np.broadcast_to(np.asarray(plan.add, np.float64), (n_time,)) * factor
        rho, sat = apply_kernel(
            _sr_block,
            var,
            *parts.values(),
            output_dtypes=[np.float32, np.uint8],
            kwargs={
                "names": tuple(parts), "a": a, "b": b, "divide_cos": bool(plan.uses_zenith),
                "sun_zenith": sza, "raa_cos": np.cos(np.radians(raa)), "vza": vza, "aot": aot,
                "tables": tables, "log_gas": tables.log_gas[None, :],
                "nodata": cal._int_attr(var, "nodata"), "saturation": cal._int_attr(var, "saturation"),
                "flag": 1 << min(len(masks), 7), "max_zenith": float(max_zenith),
            },
        )  # fmt: skip
        attrs = {
            k: v for k, v in var.attrs.items() if k not in cal._NUMBER_ATTRS and k != "saturation"
        }
        attrs.update(units="1", nodata=float("nan"), calibration=_record(
            name, plan, lut, opt, gas, aot, sza, vza, raa, var, per_pixel_sun))  # fmt: skip
        rho = rho.transpose(*var.dims)
        rho.attrs, rho.encoding = attrs, {}
        out[name] = rho
        masks.append((name, sat.transpose(*var.dims)))
    rest = [k for k in bands if k not in with_table]
    if rest:
        toa = cal.calibrate(ds[rest], "toa_reflectance", per_pixel_sun=per_pixel_sun,
                            max_zenith=max_zenith)  # fmt: skip
        for k in rest:
            out[k] = toa[k]
    combined = masks[0][1]
    for _, m in masks[1:]:
        combined = combined | m
    combined.attrs = {
        "long_name": "radiometric saturation, one bit per band",
        "flag_masks": [1 << min(j, 7) for j in range(len(masks))],
        "flag_meanings": " ".join(f"{n}_saturated" for n, _ in masks),
        "units": "1",
    }
    out["saturated"] = combined
    aot_map = apply_kernel(_aot_block, *[_chunked(v, template) for v in coords.values() if v is not None],
                           output_dtypes=[np.float32], kwargs={"aot": aot}) if coords["t_index"] is not None else None  # fmt: skip
    if aot_map is not None:
        aot_map = aot_map.transpose(*template.dims)
        aot_map.attrs = {"long_name": "aerosol optical thickness at 550 nm used", "units": "1",
                         "method": aot.method}  # fmt: skip
        out["aot550"] = aot_map
    out.attrs = {**ds.attrs, "eo_pipeline:aot550": aot.mean, "eo_pipeline:aot_method": aot.method,
                 "eo_pipeline:lut_version": lut.version, "eo_pipeline:aerosol_model": opt.model,
                 "eo_pipeline:lut": str(lut.source), "eo_pipeline:aot_range": [0.0, float(lut.grid.aot[-1])],
                 "eo_pipeline:gases": {k: cal._jsonable(v) for k, v in gas.items()}}  # fmt: skip
    return out

"""DN -> radiance, TOA reflectance or surface reflectance on xarray objects (numpy or dask).

The public function :func:`calibrate` reads the calibration numbers that ``eo_pipeline.io.loading``
puts into each band's attrs (see ``docs/conventions.md``, "Loaded data"), picks the formula
the sensor's product calls for, and runs the one fused kernel of
:mod:`eo_pipeline.kernels.radiometry` through :func:`eo_pipeline.steps.dispatch.apply_kernel`:

- ``to="radiance"``: ``L = radiance_mult * DN + radiance_add`` (W m-2 sr-1 um-1);
- ``to="toa_reflectance"``, chosen per band:

  * ``reflectance_mult`` with ``reflectance_sun_corrected`` (Sentinel-2 L1C):
    ``rho = reflectance_mult * DN + reflectance_add`` = ``(DN + RADIO_ADD_OFFSET) / Q``;
  * ``reflectance_mult`` otherwise (Landsat C2 L1): ``(M * DN + A) / sin(sun_elevation)``;
  * else radiance numbers and ``esun`` (gain/bias sensors such as KazEOSat):
    ``rho = pi * L * d^2 / (ESUN * cos(sun_zenith))``;

- ``to="surface_reflectance"`` (L2 products): ``rho = sr_scale * DN + sr_offset``.

Nodata DN -> NaN; saturated DN -> NaN and flagged in the ``saturated`` uint8 variable
(bit ``k`` for the ``k``-th calibrated band, bit 7 shared by bands 8 and up); a sun zenith
beyond 85 degrees -> NaN with a :class:`RuntimeWarning`.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr

from eo_pipeline.errors import BandError, CalibrationError
from eo_pipeline.kernels import radiometry, solar
from eo_pipeline.steps.dispatch import apply_kernel

__all__ = ["calibrate"]

Target = Literal["toa_reflectance", "radiance", "surface_reflectance"]
TARGETS: tuple[str, ...] = ("toa_reflectance", "radiance", "surface_reflectance")
UNITS = {"radiance": "W m-2 sr-1 um-1", "toa_reflectance": "1", "surface_reflectance": "1"}
# Attrs holding calibration numbers (BandCalibration.as_attrs()); they move into `calibration`.
_NUMBER_ATTRS = (
    "radiance_mult",
    "radiance_add",
    "reflectance_mult",
    "reflectance_add",
    "reflectance_sun_corrected",
    "sr_scale",
    "sr_offset",
    "esun",
    "gain",
    "bias",
    "radiance_max",
    "reflectance_max",
    "quantize_max",
)
_TRIGGERS = ("radiance_mult", "reflectance_mult", "sr_scale", "esun")


@dataclass(frozen=True)
class _Plan:
    """How one band is calibrated (numbers are floats or per-time vectors)."""

    formula: str
    """Human-readable formula, for the ``calibration`` attr."""
    mult: Any
    """Multiplier of DN."""
    add: Any
    """Offset added to ``mult * DN``."""
    factor: Any
    """Multiplier after the affine map."""
    uses_zenith: bool
    """Whether the result is divided by ``cos(sun_zenith)``."""
    numbers: dict[str, Any]
    """The numbers used, for provenance."""


def _attr(var: xr.DataArray, key: str, n_time: int | None) -> Any:
    """A calibration attr as float or float64 vector over time (``None`` when absent)."""
    value = var.attrs.get(key)
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0 or arr.size == 1:
        return float(arr.reshape(-1)[0])
    if n_time is None or arr.shape != (n_time,):
        raise CalibrationError(
            f"band {var.name!r}: attr {key!r} has shape {arr.shape}; expected a scalar or one "
            f"value per time step ({n_time})"
        )
    if np.all(arr == arr[0]):
        return float(arr[0])
    return arr


def _finite(var: xr.DataArray, key: str, value: Any) -> None:
    if not np.all(np.isfinite(value)):
        raise CalibrationError(
            f"band {var.name!r}: {key} is not finite ({value!r}); fix the metadata"
        )


def _plan(var: xr.DataArray, to: str, n_time: int | None, distance: Any) -> _Plan:
    """Pick the formula for one band (sensor-aware) and collect its numbers."""
    get = {
        k: _attr(var, k, n_time)
        for k in (*_TRIGGERS, "radiance_add", "reflectance_add", "sr_offset")
    }
    band = var.name
    if to == "surface_reflectance":
        if get["sr_scale"] is None:
            raise CalibrationError(
                f"band {band!r}: surface_reflectance needs 'sr_scale' (and 'sr_offset') in the "
                "band attrs; this is not an L2 surface-reflectance product. Use "
                "to='toa_reflectance' for L1 data"
            )
        scale, offset = get["sr_scale"], get["sr_offset"] if get["sr_offset"] is not None else 0.0
        for k, v in (("sr_scale", scale), ("sr_offset", offset)):
            _finite(var, k, v)
        return _Plan(
            "rho = sr_scale * DN + sr_offset",
            scale,
            offset,
            1.0,
            False,
            {"sr_scale": scale, "sr_offset": offset},
        )
    if get["sr_scale"] is not None:
        raise CalibrationError(
            f"band {band!r} holds L2 surface-reflectance DN (attr 'sr_scale' present); the L1 "
            f"rescaling for {to!r} does not apply to it. Use to='surface_reflectance'"
        )
    mult, add = get["radiance_mult"], get["radiance_add"] or 0.0
    if to == "radiance":
        if mult is None:
            raise CalibrationError(
                f"band {band!r}: radiance needs 'radiance_mult' (and 'radiance_add') in the "
                "band attrs (MTL RADIANCE_MULT/ADD or DIMAP GAIN/BIAS); none found"
            )
        _finite(var, "radiance_mult", mult)
        _finite(var, "radiance_add", add)
        return _Plan(
            "L = radiance_mult * DN + radiance_add",
            mult,
            add,
            1.0,
            False,
            {"radiance_mult": mult, "radiance_add": add},
        )
    # toa_reflectance
    r_mult, r_add = get["reflectance_mult"], get["reflectance_add"] or 0.0
    if r_mult is not None:
        _finite(var, "reflectance_mult", r_mult)
        _finite(var, "reflectance_add", r_add)
        numbers = {"reflectance_mult": r_mult, "reflectance_add": r_add}
        if bool(np.any(var.attrs.get("reflectance_sun_corrected", False))):
            return _Plan(
                "rho = reflectance_mult * DN + reflectance_add "
                "(= (DN + RADIO_ADD_OFFSET) / QUANTIFICATION_VALUE, sun-corrected)",
                r_mult,
                r_add,
                1.0,
                False,
                numbers,
            )
        return _Plan(
            "rho = (reflectance_mult * DN + reflectance_add) / cos(sun_zenith)",
            r_mult,
            r_add,
            1.0,
            True,
            numbers,
        )
    esun = get["esun"]
    if mult is None or esun is None:
        missing = [k for k, v in (("radiance_mult", mult), ("esun", esun)) if v is None]
        raise CalibrationError(
            f"band {band!r}: TOA reflectance needs either reflectance rescaling "
            f"('reflectance_mult') or radiance numbers with a solar irradiance; missing "
            f"{', '.join(missing)}. Add ESUN to the sensor file or scene metadata, or "
            "calibrate to='radiance'"
        )
    _finite(var, "radiance_mult", mult)
    _finite(var, "radiance_add", add)
    if not np.all(np.asarray(esun) > 0):
        raise CalibrationError(f"band {band!r}: esun must be positive, got {esun!r}")
    d = np.asarray(distance, dtype=np.float64)
    factor = np.pi * d * d / np.asarray(esun, dtype=np.float64)
    return _Plan(
        "rho = pi * (radiance_mult * DN + radiance_add) * d^2 / (esun * cos(sun_zenith))",
        mult,
        add,
        float(factor) if factor.ndim == 0 else factor,
        True,
        {"radiance_mult": mult, "radiance_add": add, "esun": esun, "earth_sun_distance": distance},
    )


def _coord(ds: xr.Dataset, name: str) -> Any:
    """A scalar/along-time coordinate as float or float64 vector, or ``None``."""
    if name not in ds.coords:
        return None
    values = np.asarray(ds.coords[name].values, dtype=np.float64)
    return float(values) if values.ndim == 0 else values


def _times(ds: xr.Dataset) -> np.ndarray | None:
    if "time" not in ds.coords:
        return None
    return np.atleast_1d(np.asarray(ds.coords["time"].values))


def _earth_sun(ds: xr.Dataset) -> tuple[Any, str]:
    d = _coord(ds, "earth_sun_distance")
    if d is not None:
        return d, "earth_sun_distance coordinate (scene metadata)"
    times = _times(ds)
    if times is None:
        return None, "missing"
    dist = solar.earth_sun_distance(times.astype("datetime64[ns]"))
    value = float(dist[0]) if "time" not in ds.dims else np.asarray(dist)
    return value, "computed from time (NOAA / Meeus ch. 25)"


def _crs(ds: xr.Dataset) -> Any:
    """The pyproj CRS of a dataset (odc-geo accessor, else the ``spatial_ref`` coordinate)."""
    import pyproj

    try:
        import odc.geo.xr  # noqa: F401  (registers the .odc accessor)

        crs = ds.odc.crs
        if crs is not None:
            return pyproj.CRS.from_user_input(crs.to_wkt())
    except (ImportError, AttributeError, ValueError):
        pass
    ref = ds.coords.get("spatial_ref")
    if ref is not None:
        for key in ("crs_wkt", "spatial_ref"):
            if key in ref.attrs:
                return pyproj.CRS.from_user_input(ref.attrs[key])
    return None


ZENITH_LATTICE = 16
"""Pixels between exact solar positions in per-pixel mode (bilinear in between; see
:func:`eo_pipeline.kernels.solar.zenith_grid`)."""


def _zenith_block(
    jd: np.ndarray,
    gy: np.ndarray,
    gx: np.ndarray,
    *,
    crs_wkt: str,
    nodes: tuple[np.ndarray, np.ndarray],
    node_coords: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Per-pixel sun zenith (float32 degrees) of one block.

    ``jd`` (t,1,1) Julian days; ``gy`` (1,y,1), ``gx`` (1,1,x) the block's global row and
    column numbers. Exact positions on the scene-wide lattice ``nodes`` (row and column
    numbers, with their coordinates ``node_coords``), bilinear in between: the same value
    for a pixel whatever the chunking.
    """
    rows_g, cols_g = gy.reshape(-1), gx.reshape(-1)
    picked = []
    for g, axis_nodes in ((rows_g, nodes[0]), (cols_g, nodes[1])):
        lo = max(0, int(np.searchsorted(axis_nodes, g[0], side="right")) - 1)
        hi = int(np.searchsorted(axis_nodes, g[-1], side="left"))
        picked.append(np.arange(lo, min(hi, axis_nodes.size - 1) + 1))
    ri, ci = picked
    lon, lat = _lonlat(crs_wkt, node_coords[1][ci], node_coords[0][ri])
    rows, cols = nodes[0][ri] - rows_g[0], nodes[1][ci] - cols_g[0]
    jd_v = np.asarray(jd, dtype=np.float64).reshape(-1)
    out = np.empty((jd_v.size, rows_g.size, cols_g.size), dtype=np.float32)
    for t, day in enumerate(jd_v):
        out[t] = solar.zenith_grid(float(day), lat, lon, rows, cols, out.shape[1:])
    return out.reshape(np.broadcast_shapes(jd.shape, gy.shape, gx.shape))


@functools.lru_cache(maxsize=8)
def _to_lonlat(crs_wkt: str) -> Any:
    """Transformer from ``crs_wkt`` to lon/lat (``None`` when geographic), built once per CRS
    rather than once per dask block (pyproj >= 3.1 transformers are thread-safe)."""
    import pyproj

    crs = pyproj.CRS.from_user_input(crs_wkt)
    if crs.is_geographic:
        return None
    return pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def _lonlat(crs_wkt: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) grids in degrees (float64) of pixel centres ``x`` (cols) and ``y`` (rows)."""
    xg, yg = np.meshgrid(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    tr = _to_lonlat(crs_wkt)
    if tr is None:
        return xg, yg
    lon, lat = tr.transform(xg, yg)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def _pixel_zenith(ds: xr.Dataset, template: xr.DataArray, max_zenith: float) -> xr.DataArray:
    """Lazy per-pixel sun zenith over ``template``'s (time, y, x), chunked like it."""
    crs = _crs(ds)
    times = _times(ds)
    if crs is None or times is None:
        raise CalibrationError(
            "per_pixel_sun=True needs a CRS (odc-geo / 'spatial_ref' coordinate) and a 'time' "
            f"coordinate; found crs={'yes' if crs is not None else 'no'}, "
            f"time={'yes' if times is not None else 'no'}"
        )
    ydim, xdim = template.dims[-2:]
    jd = np.atleast_1d(solar.julian_day(times.astype("datetime64[ns]")))
    parts = [
        xr.DataArray(
            jd if "time" in template.dims else jd[0],
            dims=[d for d in ("time",) if d in template.dims],
        ),
        xr.DataArray(np.arange(template.sizes[ydim], dtype=np.int64), dims=[ydim]),
        xr.DataArray(np.arange(template.sizes[xdim], dtype=np.int64), dims=[xdim]),
    ]
    yv = np.asarray(template[ydim].values, dtype=np.float64)
    xv = np.asarray(template[xdim].values, dtype=np.float64)
    nodes = (solar.lattice(yv.size, ZENITH_LATTICE), solar.lattice(xv.size, ZENITH_LATTICE))
    if template.chunks is not None:
        sizes = dict(zip(template.dims, template.chunks, strict=True))
        parts = [p.chunk({d: sizes[d] for d in p.dims}) for p in parts]
    # Warn now (cheap: corners only) rather than from inside dask tasks.
    crs_wkt = crs.to_wkt()
    lon, lat = _lonlat(crs_wkt, np.array([xv[0], xv[-1]]), np.array([yv[0], yv[-1]]))
    worst = max(
        float(np.nanmax(solar.solar_position(t, lat, lon)[0]))
        for t in times.astype("datetime64[ns]")
    )
    if worst > max_zenith:
        warnings.warn(
            f"sun zenith reaches {worst:.1f} degrees at the scene corners (> {max_zenith}); "
            "those pixels become NaN",
            RuntimeWarning,
            stacklevel=3,
        )
    return apply_kernel(
        _zenith_block,
        *parts,
        output_dtypes=[np.float32],
        kwargs={
            "crs_wkt": crs_wkt,
            "nodes": nodes,
            "node_coords": (yv[nodes[0]], xv[nodes[1]]),
        },
        name="sun_zenith",
    )


def _calibrate_block(
    dn: np.ndarray,
    *arrays: np.ndarray,
    names: tuple[str, ...],
    scalars: Mapping[str, Any],
    nodata: int | None,
    saturation: int | None,
    flag: int,
    max_zenith: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Run :func:`radiometry.calibrate_block` on one block; ``arrays`` are the named per-time inputs."""
    args = {**scalars, **dict(zip(names, arrays, strict=True))}
    result = radiometry.calibrate_block(
        dn,
        args["mult"],
        args["add"],
        args["factor"],
        args.get("sun_zenith"),
        nodata=nodata,
        saturation=saturation,
        flag=flag,
        max_zenith=max_zenith,
        mask=True,
    )
    return result  # type: ignore[return-value]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _int_attr(var: xr.DataArray, key: str) -> int | None:
    value = var.attrs.get(key)
    if value is None:
        return None
    f = float(np.asarray(value).reshape(-1)[0])
    return None if math.isnan(f) else int(f)


def calibrate(
    ds: xr.Dataset | xr.DataArray,
    to: Target = "toa_reflectance",
    *,
    per_pixel_sun: bool = False,
    max_zenith: float = radiometry.MAX_ZENITH,
) -> Any:
    """Calibrate DN bands to radiance, TOA reflectance or surface reflectance (float32).

    Parameters
    ----------
    ds
        A Dataset as ``eo_pipeline.io.loading`` returns it (dims ``(time, y, x)``, one integer
        variable per band with calibration numbers in its attrs; coordinates
        ``sun_elevation`` and ``earth_sun_distance`` along ``time``), or one such band as a
        DataArray (its coordinates carry the sun numbers). Variables without calibration
        numbers (QA bands) are passed through unchanged. Numpy- or dask-backed; dask stays
        lazy.
    to
        ``"toa_reflectance"``, ``"radiance"`` or ``"surface_reflectance"`` (module docstring).
    per_pixel_sun
        Divide by the cosine of a per-pixel sun zenith (NOAA solar position of each pixel
        centre at the ``time`` coordinate; needs a CRS) instead of the scene-centre one.
    max_zenith
        Degrees; beyond it reflectance is NaN and a :class:`RuntimeWarning` is issued.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Same coordinates, CRS and dataset attrs; calibrated bands as float32 with ``units``,
        ``nodata`` NaN and a JSON ``calibration`` attr (formula, numbers, source). A Dataset
        gains the ``saturated`` uint8 variable; a DataArray input returns only the band.

    Raises
    ------
    CalibrationError
        Unknown ``to``, already-calibrated input, missing numbers (the band is named).
    BandError
        A Dataset with no band that carries calibration numbers.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> dn = xr.DataArray(
    ...     np.array([[[0, 20000, 65535]]], dtype=np.uint16), dims=("time", "y", "x"), name="B4",
    ...     attrs={"reflectance_mult": 2e-05, "reflectance_add": -0.1, "nodata": 0,
    ...            "saturation": 65535},
    ...     coords={"sun_elevation": ("time", [30.0])})
    >>> rho = calibrate(xr.Dataset({"B4": dn}))
    >>> rho["B4"].values.astype(float).round(4).tolist(), rho["saturated"].values.tolist()
    ([[[nan, 0.6, nan]]], [[[0, 0, 1]]])
    """
    if to not in TARGETS:
        raise CalibrationError(
            f"unknown calibration target to={to!r}; use one of {', '.join(TARGETS)}"
        )
    if isinstance(ds, xr.DataArray):
        name = ds.name if ds.name is not None else "band"
        result = calibrate(
            ds.to_dataset(name=name), to, per_pixel_sun=per_pixel_sun, max_zenith=max_zenith
        )
        return result[name]
    bands = [k for k, v in ds.data_vars.items() if any(t in v.attrs for t in _TRIGGERS)]
    if not bands and any("calibration" in v.attrs for v in ds.data_vars.values()):
        raise CalibrationError(
            "the dataset is calibrated already (its bands carry a 'calibration' attr and no "
            "DN calibration numbers); calibrate the DN dataset from eo_pipeline.io.loading instead"
        )
    if not bands:
        raise BandError(
            f"no band of the dataset carries calibration numbers ({', '.join(_TRIGGERS)}) in its "
            f"attrs; variables: {', '.join(map(str, ds.data_vars)) or 'none'}. Load with "
            "eo_pipeline.io.loading so the numbers are attached"
        )
    out = ds.copy(deep=False)
    n_time = ds.sizes.get("time")
    distance, distance_source = _earth_sun(ds)
    elevation = _coord(ds, "sun_elevation")
    plans = {k: _plan(ds[k], to, n_time, distance) for k in bands}
    needs_sun = [k for k, p in plans.items() if p.uses_zenith]
    zenith_scene: Any = None
    zenith_pixel: dict[Any, xr.DataArray] = {}  # one lazy field per (dims, chunks)
    if needs_sun and not per_pixel_sun:
        if elevation is None:
            raise CalibrationError(
                f"bands {needs_sun}: {to} needs the sun elevation; the dataset has no "
                "'sun_elevation' coordinate. Load with eo_pipeline.io.loading or pass per_pixel_sun=True"
            )
        zenith_scene = 90.0 - np.asarray(elevation)
        with np.errstate(invalid="ignore"):
            high = ~(np.atleast_1d(zenith_scene) <= max_zenith)  # NaN elevation counts too
        if np.any(high):
            warnings.warn(
                f"sun zenith {np.atleast_1d(zenith_scene)[high].round(2).tolist()} degrees "
                f"> {max_zenith} at {int(high.sum())} time step(s): reflectance set to NaN there",
                RuntimeWarning,
                stacklevel=2,
            )
    masks: dict[tuple[Hashable, ...], list[tuple[Hashable, xr.DataArray]]] = {}
    for name in bands:
        var, plan = ds[name], plans[name]
        if var.dtype.kind not in "ui":
            raise CalibrationError(
                f"band {name!r} is {var.dtype}, not integer DN (units {var.attrs.get('units')!r}); "
                "it looks calibrated already"
            )
        if var.ndim < 2:
            raise CalibrationError(f"band {name!r} needs (y, x) dims, has {var.dims}")
        values: dict[str, Any] = {"mult": plan.mult, "add": plan.add, "factor": plan.factor}
        if plan.uses_zenith:
            if per_pixel_sun:
                grid = (var.dims, var.chunks)
                if grid not in zenith_pixel:
                    zenith_pixel[grid] = _pixel_zenith(ds, var, max_zenith)
                values["sun_zenith"] = zenith_pixel[grid]
            else:
                values["sun_zenith"] = zenith_scene
        names: list[str] = []
        arrays: list[xr.DataArray] = []
        scalars: dict[str, Any] = {}
        for key, v in values.items():
            if isinstance(v, xr.DataArray):
                names.append(key)
                arrays.append(v)
            elif np.ndim(v) == 0:
                scalars[key] = float(v)
            else:
                names.append(key)
                arrays.append(xr.DataArray(np.asarray(v, dtype=np.float64), dims=["time"]))
        if var.chunks is not None:
            sizes = dict(zip(var.dims, var.chunks, strict=True))
            arrays = [a.chunk({d: sizes[d] for d in a.dims}) for a in arrays]
        flag = 1 << min(len(masks.get(tuple(var.dims), [])), 7)
        source = {
            "numbers": f"attrs of variable {name!r} (scene metadata)",
            "earth_sun_distance": distance_source,
            "sun_zenith": (
                "per-pixel NOAA solar position"
                if per_pixel_sun
                else "90 - sun_elevation coordinate"
            ),
        }
        numbers = {**plan.numbers}
        if plan.uses_zenith and not per_pixel_sun:
            numbers["sun_zenith"] = zenith_scene
        cal_attr = json.dumps(
            {
                "to": to,
                "formula": plan.formula,
                "numbers": {k2: _jsonable(v2) for k2, v2 in numbers.items()},
                "nodata": _int_attr(var, "nodata"),
                "saturation": _int_attr(var, "saturation"),
                "max_zenith": max_zenith if plan.uses_zenith else None,
                "source": source if plan.uses_zenith else source["numbers"],
                "software": "eo_pipeline.steps.calibration",
            }
        )
        attrs = {
            k2: v2 for k2, v2 in var.attrs.items() if k2 not in _NUMBER_ATTRS and k2 != "saturation"
        }
        attrs.update({"units": UNITS[to], "nodata": float("nan"), "calibration": cal_attr})
        rho, sat = apply_kernel(
            _calibrate_block,
            var,
            *arrays,
            output_dtypes=[np.float32, np.uint8],
            kwargs={
                "names": tuple(names),
                "scalars": scalars,
                "nodata": _int_attr(var, "nodata"),
                "saturation": _int_attr(var, "saturation"),
                "flag": flag,
                "max_zenith": float(max_zenith),
            },
        )
        rho = rho.transpose(*var.dims)
        rho.attrs = attrs
        rho.encoding = {}
        out[name] = rho
        masks.setdefault(tuple(var.dims), []).append((name, sat.transpose(*var.dims)))
    for i, (dims, group) in enumerate(masks.items()):
        combined = group[0][1]
        for _, m in group[1:]:
            combined = combined | m
        names_in = [n for n, _ in group]
        combined.attrs = {
            "long_name": "radiometric saturation, one bit per band",
            "flag_masks": [1 << min(j, 7) for j in range(len(names_in))],
            "flag_meanings": " ".join(f"{n}_saturated" for n in names_in),
            "units": "1",
        }
        out["saturated" if i == 0 else f"saturated_{'_'.join(map(str, dims))}"] = combined
    return out

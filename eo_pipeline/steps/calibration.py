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

import json
import math
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr

from eo_pipeline.errors import BandError, CalibrationError
from eo_pipeline.kernels import radiometry
from eo_pipeline.steps.dispatch import apply_kernel
from eo_pipeline.steps.scene_geometry import ZENITH_LATTICE as ZENITH_LATTICE
from eo_pipeline.steps.scene_geometry import coord as _coord

# the scene geometry moved to steps/scene_geometry.py; its old private names here stay for
# code written against them (use eo_pipeline.steps.scene_geometry in new code)
from eo_pipeline.steps.scene_geometry import crs as _crs  # noqa: F401
from eo_pipeline.steps.scene_geometry import earth_sun as _earth_sun
from eo_pipeline.steps.scene_geometry import lonlat as _lonlat  # noqa: F401
from eo_pipeline.steps.scene_geometry import pixel_zenith as _pixel_zenith
from eo_pipeline.steps.scene_geometry import times as _times  # noqa: F401

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
    if to == "surface_reflectance":
        return _plan_sr(var, get)
    if get["sr_scale"] is not None:
        raise CalibrationError(
            f"band {var.name!r} holds L2 surface-reflectance DN (attr 'sr_scale' present); the "
            f"L1 rescaling for {to!r} does not apply to it. Use to='surface_reflectance'"
        )
    if to == "radiance":
        return _plan_radiance(var, get)
    if get["reflectance_mult"] is not None:
        return _plan_toa_rescaled(var, get)
    return _plan_toa_esun(var, get, distance)


def _plan_sr(var: xr.DataArray, get: Mapping[str, Any]) -> _Plan:
    """Level-2 surface reflectance: the product's own scale and offset."""
    if get["sr_scale"] is None:
        raise CalibrationError(
            f"band {var.name!r}: surface_reflectance needs 'sr_scale' (and 'sr_offset') in the "
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


def _plan_radiance(var: xr.DataArray, get: Mapping[str, Any]) -> _Plan:
    """At-sensor radiance from the radiance rescaling (MTL) or gain/bias (DIMAP)."""
    mult, add = get["radiance_mult"], get["radiance_add"] or 0.0
    if mult is None:
        raise CalibrationError(
            f"band {var.name!r}: radiance needs 'radiance_mult' (and 'radiance_add') in the "
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


def _plan_toa_rescaled(var: xr.DataArray, get: Mapping[str, Any]) -> _Plan:
    """TOA reflectance from the product's reflectance rescaling (Landsat, Sentinel-2)."""
    r_mult, r_add = get["reflectance_mult"], get["reflectance_add"] or 0.0
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


def _plan_toa_esun(var: xr.DataArray, get: Mapping[str, Any], distance: Any) -> _Plan:
    """TOA reflectance from radiance and the solar irradiance (gain/bias sensors)."""
    mult, add, esun = get["radiance_mult"], get["radiance_add"] or 0.0, get["esun"]
    if mult is None or esun is None:
        missing = [k for k, v in (("radiance_mult", mult), ("esun", esun)) if v is None]
        raise CalibrationError(
            f"band {var.name!r}: TOA reflectance needs either reflectance rescaling "
            f"('reflectance_mult') or radiance numbers with a solar irradiance; missing "
            f"{', '.join(missing)}. Add ESUN to the sensor file or scene metadata, or "
            "calibrate to='radiance'"
        )
    _finite(var, "radiance_mult", mult)
    _finite(var, "radiance_add", add)
    if not np.all(np.asarray(esun) > 0):
        raise CalibrationError(f"band {var.name!r}: esun must be positive, got {esun!r}")
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
    atmosphere: Any = None,
) -> Any:
    """Calibrate DN bands to radiance, TOA reflectance or surface reflectance (float32).

    ``to="surface_reflectance"`` on Level-1 DN (no ``sr_scale``) runs the atmospheric
    correction of :mod:`eo_pipeline.steps.atmosphere` (``atmosphere``: its
    ``AtmosphereOptions`` or a mapping of them); on Level-2 DN it applies the product's scaling.

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
            ds.to_dataset(name=name),
            to,
            per_pixel_sun=per_pixel_sun,
            max_zenith=max_zenith,
            atmosphere=atmosphere,
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
    if to == "surface_reflectance" and not any("sr_scale" in ds[k].attrs for k in bands):
        from eo_pipeline.steps.atmosphere import AtmosphereOptions, surface_reflectance

        opt = atmosphere if isinstance(atmosphere, AtmosphereOptions) else None
        opt = opt or AtmosphereOptions.from_dict(atmosphere)
        return surface_reflectance(ds, opt, per_pixel_sun=per_pixel_sun, max_zenith=max_zenith)
    out = ds.copy(deep=False)
    n_time = ds.sizes.get("time")
    distance, distance_source = _earth_sun(ds)
    plans = {k: _plan(ds[k], to, n_time, distance) for k in bands}
    needs_sun = [k for k, p in plans.items() if p.uses_zenith]
    zenith_scene: Any = None
    if needs_sun and not per_pixel_sun:
        zenith_scene = _scene_zenith(ds, to, needs_sun, max_zenith)
    zenith_pixel: dict[Any, xr.DataArray] = {}  # one lazy field per (dims, chunks)
    masks: dict[tuple[Hashable, ...], list[tuple[Hashable, xr.DataArray]]] = {}
    for name in bands:
        var, plan = ds[name], plans[name]
        _check_dn(var)
        sun_zenith: Any = None
        if plan.uses_zenith and per_pixel_sun:
            grid = (var.dims, var.chunks)
            if grid not in zenith_pixel:
                zenith_pixel[grid] = _pixel_zenith(ds, var, max_zenith)
            sun_zenith = zenith_pixel[grid]
        elif plan.uses_zenith:
            sun_zenith = zenith_scene
        flag = 1 << min(len(masks.get(tuple(var.dims), [])), 7)
        attrs = _band_attrs(var, plan, to, per_pixel_sun, zenith_scene, distance_source, max_zenith)
        rho, sat = _run_band(var, plan, sun_zenith, flag, max_zenith)
        rho.attrs = attrs
        out[name] = rho
        masks.setdefault(tuple(var.dims), []).append((name, sat))
    _add_saturation(out, masks)
    return out


def _scene_zenith(ds: xr.Dataset, to: str, needs_sun: list[Hashable], max_zenith: float) -> Any:
    """Scene-centre sun zenith (float or per-time vector) from the ``sun_elevation``
    coordinate; warns where it exceeds ``max_zenith`` (those steps become NaN)."""
    elevation = _coord(ds, "sun_elevation")
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
            stacklevel=3,
        )
    return zenith_scene


def _check_dn(var: xr.DataArray) -> None:
    if var.dtype.kind not in "ui":
        raise CalibrationError(
            f"band {var.name!r} is {var.dtype}, not integer DN (units {var.attrs.get('units')!r}); "
            "it looks calibrated already"
        )
    if var.ndim < 2:
        raise CalibrationError(f"band {var.name!r} needs (y, x) dims, has {var.dims}")


def _band_attrs(
    var: xr.DataArray, plan: _Plan, to: str, per_pixel_sun: bool, zenith_scene: Any,
    distance_source: str, max_zenith: float,
) -> dict[Hashable, Any]:  # fmt: skip
    """The calibrated band's attrs: the DN numbers replaced by units, NaN nodata and the
    JSON ``calibration`` provenance."""
    source = {
        "numbers": f"attrs of variable {var.name!r} (scene metadata)",
        "earth_sun_distance": distance_source,
        "sun_zenith": (
            "per-pixel NOAA solar position" if per_pixel_sun else "90 - sun_elevation coordinate"
        ),
    }
    numbers = {**plan.numbers}
    if plan.uses_zenith and not per_pixel_sun:
        numbers["sun_zenith"] = zenith_scene
    cal_attr = json.dumps(
        {
            "to": to,
            "formula": plan.formula,
            "numbers": {k: _jsonable(v) for k, v in numbers.items()},
            "nodata": _int_attr(var, "nodata"),
            "saturation": _int_attr(var, "saturation"),
            "max_zenith": max_zenith if plan.uses_zenith else None,
            "source": source if plan.uses_zenith else source["numbers"],
            "software": "eo_pipeline.steps.calibration",
        }
    )
    attrs = {k: v for k, v in var.attrs.items() if k not in _NUMBER_ATTRS and k != "saturation"}
    attrs.update({"units": UNITS[to], "nodata": float("nan"), "calibration": cal_attr})
    return attrs


def _run_band(
    var: xr.DataArray, plan: _Plan, sun_zenith: Any, flag: int, max_zenith: float
) -> tuple[xr.DataArray, xr.DataArray]:
    """The fused calibration kernel over one band: (float32 result, uint8 saturation bit)."""
    values: dict[str, Any] = {"mult": plan.mult, "add": plan.add, "factor": plan.factor}
    if plan.uses_zenith:
        values["sun_zenith"] = sun_zenith
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
    rho.encoding = {}
    return rho, sat.transpose(*var.dims)


def _add_saturation(
    out: xr.Dataset, masks: Mapping[tuple[Hashable, ...], list[tuple[Hashable, xr.DataArray]]]
) -> None:
    """One ``saturated`` uint8 variable per grid (bit k = the k-th calibrated band)."""
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

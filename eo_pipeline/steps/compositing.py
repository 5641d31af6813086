"""Temporal composites on xarray objects: nan-median, max-NDVI and best-available-pixel.

Time is one dask chunk (rechunked if needed), space stays chunked; every method runs the
numba kernels of :mod:`eo_pipeline.kernels.composite` through
:func:`eo_pipeline.steps.dispatch.apply_kernel` with ``input_core_dims=[["time"]]``.

How masks travel
----------------
``mask=None`` uses the Dataset's ``mask`` variable when there is one (the uint8 bit mask of
:func:`eo_pipeline.steps.masking`, which ``.eo.mask()`` adds and ``.eo.compute_indices()`` keeps);
otherwise only NaN (and each variable's ``nodata`` attribute) marks missing values. A
uint8 bit mask marks a date invalid when any of nodata, cloud, shadow, cirrus or saturated
is set; a boolean mask is "True = invalid".

Examples
--------
>>> import numpy as np, pandas as pd, xarray as xr
>>> t = pd.date_range("2024-06-01", periods=3, freq="5D")
>>> red = xr.DataArray(np.float32([[[0.1]], [[0.3]], [[0.2]]]), dims=("time", "y", "x"),
...                    coords={"time": t}, attrs={"common_name": "red"})
>>> composite(xr.Dataset({"B4": red}), "median")["B4"].values
array([[0.2]], dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from eo_pipeline.errors import BandError, InputDataError
from eo_pipeline.kernels import composite as kc
from eo_pipeline.steps.dispatch import apply_kernel

__all__ = ["BAPParams", "composite"]

Method = Literal["median", "max_ndvi", "bap"]
_METHODS = ("median", "max_ndvi", "bap")
_MASK_VARS = frozenset({"mask", "saturated"})


def _mask_bits() -> dict[str, int]:
    """Bit values of the ``eo_pipeline.steps.masking`` layout (from ``kernels.masks`` when present)."""
    layout = ("nodata", "cloud", "shadow", "snow", "water", "cirrus", "saturated", "clear")
    bits = {name: 1 << i for i, name in enumerate(layout)}
    try:
        from eo_pipeline.kernels import masks as kmasks
    except ImportError:
        return bits
    for name in layout:
        for attr in (name.upper(), f"BIT_{name.upper()}", f"{name.upper()}_BIT"):
            value = getattr(kmasks, attr, None)
            if isinstance(value, int | np.integer):
                bits[name] = int(value)
                break
    return bits


def invalid_bits() -> int:
    """Bits of the uint8 mask that make a date unusable: nodata|cloud|shadow|cirrus|saturated."""
    b = _mask_bits()
    return b["nodata"] | b["cloud"] | b["shadow"] | b["cirrus"] | b["saturated"]


def cloud_bits() -> int:
    """Bits counted as cloud for the BAP cloud distance: cloud|shadow|cirrus."""
    b = _mask_bits()
    return b["cloud"] | b["shadow"] | b["cirrus"]


@dataclass(frozen=True)
class BAPParams:
    """Scoring of the best-available-pixel composite.

    score = ``weight_doy`` * S_doy + ``weight_cloud`` * S_cloud + ``weight_zenith`` * S_zenith;
    the valid date with the highest score wins (all bands are taken from it).

    References: Griffiths, P., van der Linden, S., Kuemmerle, T., Hostert, P. (2013),
    "A pixel-based Landsat compositing algorithm for large area land cover mapping",
    IEEE JSTARS 6(5), 2088-2101 (Gaussian day-of-year score, sigmoid cloud-distance score,
    weights DOY 0.5 / year 0.2 / cloud distance 0.3 in common implementations); White, J.C.
    et al. (2014), "Pixel-based image compositing for large-area dense time series
    applications and science", Canadian Journal of Remote Sensing 40(3), 192-212
    (cloud-distance score saturating at 50 Landsat pixels, 1.5 km). A composite period here
    lies within one year, so the year weight (0.2) goes to the sun-zenith score.
    """

    weight_doy: float = 0.5
    """Weight of S_doy = exp(-0.5 * (|doy - target| / doy_sigma)^2) (circular in the year)."""
    weight_cloud: float = 0.3
    """Weight of S_cloud = 1 / (1 + exp(-cloud_slope * (min(d, cloud_distance_max) - cloud_distance_max / 2)))."""
    weight_zenith: float = 0.2
    """Weight of S_zenith = cos(sun zenith) (from the ``sun_elevation`` or ``sun_zenith`` time coordinate; 0 when absent)."""
    target_doy: int | None = None
    """Target day of year (1-366); ``None`` means the middle of the composite period."""
    doy_sigma: float = 10.0
    """Width (days) of the Gaussian day-of-year score (Griffiths et al.: max offset 30 d = 3 sigma)."""
    cloud_distance_max: int = 50
    """Distance (pixels) from which a pixel counts as cloud-free (White et al. 2014: 50 px); also the dask halo."""
    cloud_slope: float = 0.2
    """Slope of the cloud-distance sigmoid per pixel (Griffiths et al. 2013 / White et al. 2014)."""

    def __post_init__(self) -> None:
        weights = (self.weight_doy, self.weight_cloud, self.weight_zenith)
        if min(weights) < 0 or sum(weights) <= 0:
            raise InputDataError(
                f"BAPParams weights must be >= 0 and not all zero, got doy={self.weight_doy}, "
                f"cloud={self.weight_cloud}, zenith={self.weight_zenith}"
            )
        if self.target_doy is not None and not 1 <= self.target_doy <= 366:
            raise InputDataError(f"BAPParams.target_doy must be 1..366, got {self.target_doy}")
        if self.doy_sigma <= 0 or self.cloud_slope <= 0:
            raise InputDataError("BAPParams.doy_sigma and cloud_slope must be > 0")
        if self.cloud_distance_max < 1:
            raise InputDataError(
                f"BAPParams.cloud_distance_max must be >= 1 pixel, got {self.cloud_distance_max}"
            )


# ----------------------------------------------------------------------------- helpers


def nodata_value(var: xr.DataArray) -> float:
    """The variable's ``nodata`` attribute as a float (NaN when absent or not a number)."""
    value = var.attrs.get("nodata")
    try:
        return float("nan") if value is None else float(value)
    except (TypeError, ValueError):
        return float("nan")


def _find_var(ds: xr.Dataset, names: Sequence[str]) -> Hashable | None:
    """First variable whose ``common_name`` attribute (else its name) is one of ``names``."""
    for key, var in ds.data_vars.items():
        if str(var.attrs.get("common_name", "")).lower() in names:
            return key
    for key in ds.data_vars:
        if str(key).lower() in names:
            return key
    return None


def _common_chunks(
    ds: xr.Dataset, mask: xr.DataArray | None
) -> tuple[xr.Dataset, xr.DataArray | None]:
    """One time chunk; bands and mask on the spatial chunks of the first dask-backed input."""
    arrays = [*ds.data_vars.values(), *([mask] if mask is not None else [])]
    ref = next((a for a in arrays if a.chunks is not None), None)
    if ref is None:
        return ds, mask
    chunks: dict[Hashable, Any] = {d: c for d, c in ref.chunksizes.items() if d != "time"}
    chunks["time"] = -1
    ds = ds.chunk({d: c for d, c in chunks.items() if d in ds.dims})
    if mask is not None:
        mask = mask.chunk({d: c for d, c in chunks.items() if d in mask.dims})
    return ds, mask


def _resolve_mask(
    ds: xr.Dataset, mask: xr.DataArray | None
) -> tuple[xr.DataArray | None, int, int]:
    """Return (uint8 mask or None, invalid bits, cloud bits)."""
    if mask is None:
        mask = ds["mask"] if "mask" in ds.data_vars else None
    if mask is None:
        return None, 0, 0
    if not isinstance(mask, xr.DataArray):
        raise InputDataError(
            f"composite: mask must be an xarray.DataArray (bool or the uint8 bit mask of "
            f"eo_pipeline.steps.masking), got {type(mask).__name__}"
        )
    if "time" not in mask.dims:
        raise InputDataError(
            f"composite: mask {mask.name!r} has dims {mask.dims}, it needs a 'time' dim; "
            "pass one mask per date (e.g. eo_pipeline.masks(ds))"
        )
    if mask.dtype == np.bool_:
        return mask.astype(np.uint8), 1, 1
    if mask.dtype != np.uint8:
        raise InputDataError(
            f"composite: mask {mask.name!r} has dtype {mask.dtype}; expected bool (True = invalid) "
            "or the uint8 bit mask of eo_pipeline.steps.masking"
        )
    return mask, invalid_bits(), cloud_bits()


def _period_target_doy(start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Day of year (fractional) of the middle of ``[start, end]``."""
    mid = start + (end - start) / 2
    return float(mid.day_of_year) + mid.hour / 24.0


def _static_scores(ds: xr.Dataset, params: BAPParams, target_doy: float) -> np.ndarray:
    """Per-date weighted day-of-year and sun-zenith scores (float32, length ``time``)."""
    times = pd.DatetimeIndex(ds.indexes["time"])
    doy = times.day_of_year.to_numpy(np.float64)
    diff = np.abs(doy - target_doy)
    diff = np.minimum(diff, 365.25 - diff)
    s_doy = np.exp(-0.5 * (diff / params.doy_sigma) ** 2)
    if "sun_zenith" in ds.coords:
        zenith = np.asarray(ds["sun_zenith"].values, np.float64)
    elif "sun_elevation" in ds.coords:
        zenith = 90.0 - np.asarray(ds["sun_elevation"].values, np.float64)
    else:
        zenith = np.full(len(times), 90.0)
    s_zen = np.clip(np.cos(np.deg2rad(zenith)), 0.0, 1.0)
    s_zen = np.where(np.isfinite(s_zen), s_zen, 0.0)
    return (params.weight_doy * s_doy + params.weight_zenith * s_zen).astype(np.float32)


def _cloud_distance(mask: xr.DataArray, bits: int, cap: int) -> xr.DataArray:
    """Capped distance (pixels) to the nearest cloud per date; dask halo = ``cap`` pixels."""
    if mask.ndim != 3:
        raise InputDataError(
            f"composite(method='bap'): the mask must be (time, y, x), got dims {mask.dims}"
        )
    core = ["time", *(str(d) for d in mask.dims if d != "time")]
    distance = apply_kernel(
        kc.distance_block,
        mask,
        output_dtypes=[np.float32],
        input_core_dims=[core],
        output_core_dims=[core],
        depth={d: cap for d in core[1:]},
        kwargs={"bits": bits, "cap": cap},
        name="cloud_distance",
    )
    # the halo may have enlarged small chunks: back onto the mask's chunks for the selection
    return distance.chunk(mask.chunksizes) if distance.chunks is not None else distance


# ----------------------------------------------------------------------------- one composite


def _select_index(
    ds: xr.Dataset,
    method: str,
    mask: xr.DataArray | None,
    bits: int,
    cbits: int,
    params: BAPParams,
    target_doy: float,
    variables: list[Hashable],
) -> xr.DataArray:
    """uint16 date index per pixel for max_ndvi / bap."""
    kw: dict[str, Any] = {"bits": bits}
    masks_in = [mask] if mask is not None else []
    core = [["time"]]
    if method == "max_ndvi":
        ndvi = _find_var(ds, ("ndvi",))
        red = _find_var(ds, ("red",))
        nir = _find_var(ds, ("nir", "nir08"))
        if red is not None and nir is not None:
            ins = [ds[red], ds[nir], *masks_in]
            kw |= {"nodata_red": nodata_value(ds[red]), "nodata_nir": nodata_value(ds[nir])}
            return apply_kernel(
                kc.ndvi_block,
                *ins,
                output_dtypes=[np.uint16],
                input_core_dims=core * len(ins),
                kwargs=kw,
                name="source_time",
            )
        if ndvi is not None:
            ins = [ds[ndvi], *masks_in]
            kw["nodata"] = nodata_value(ds[ndvi])
            return apply_kernel(
                kc.score_block,
                *ins,
                output_dtypes=[np.uint16],
                input_core_dims=core * len(ins),
                kwargs=kw,
                name="source_time",
            )
        raise BandError(
            "composite(method='max_ndvi') needs a red and a nir band (found by the 'common_name' "
            f"attribute or the variable name) or an 'NDVI' variable; variables: {list(ds.data_vars)}"
        )
    reference = ds[variables[0]]
    nodata = nodata_value(reference)
    if mask is None:
        invalid = reference.isnull()
        if not math.isnan(nodata):
            invalid = invalid | (reference == nodata)
        mask, bits, cbits = invalid.astype(np.uint8), 1, 1
    distance = _cloud_distance(mask, cbits, params.cloud_distance_max)
    kw = {
        "bits": bits,
        "nodata": nodata,
        "static_score": _static_scores(ds, params, target_doy),
        "weight_cloud": float(params.weight_cloud),
        "distance_max": float(params.cloud_distance_max),
        "slope": float(params.cloud_slope),
    }
    return apply_kernel(
        kc.bap_block,
        mask,
        distance,
        reference,
        output_dtypes=[np.uint16],
        input_core_dims=core * 3,
        kwargs=kw,
        name="source_time",
    )


def _composite_once(
    ds: xr.Dataset,
    method: str,
    mask: xr.DataArray | None,
    bits: int,
    cbits: int,
    params: BAPParams,
    target_doy: float,
    variables: list[Hashable],
    offset: int,
) -> xr.Dataset:
    out: dict[Hashable, xr.DataArray] = {}
    core = [["time"]]
    if method == "median":
        masks_in = [mask] if mask is not None else []
        for key in variables:
            var = ds[key]
            ins = [var, *masks_in]
            out[key] = apply_kernel(
                kc.median_block,
                *ins,
                output_dtypes=[np.float32],
                input_core_dims=core * len(ins),
                kwargs={"bits": bits, "nodata": nodata_value(var)},
                name=str(key),
            )
    else:
        index = _select_index(ds, method, mask, bits, cbits, params, target_doy, variables)
        for key in variables:
            var = ds[key]
            out[key] = apply_kernel(
                kc.take_block,
                var,
                index,
                output_dtypes=[np.float32],
                input_core_dims=[["time"], []],
                kwargs={"nodata": nodata_value(var)},
                name=str(key),
            )
        if offset:
            index = xr.where(index == kc.NO_DATE, index, index + np.uint16(offset)).astype(
                np.uint16
            )
        index.attrs.update(
            {
                "long_name": "index of the chosen date along the input's time axis",
                "nodata": kc.NO_DATE,
            }
        )
        out["source_time"] = index
    for key in variables:
        out[key].attrs.update(ds[key].attrs)
        out[key].attrs["nodata"] = float("nan")
    return xr.Dataset(out)


def _lookup(index: np.ndarray, *, lut: np.ndarray) -> np.ndarray:
    """``lut[index]``, with :data:`NO_DATE` (and anything past the table) -> ``lut[-1]``."""
    return lut[np.minimum(index, lut.size - 1)]


# ----------------------------------------------------------------------------- public


def composite(
    ds: xr.Dataset | xr.DataArray,
    method: Method = "median",
    *,
    mask: xr.DataArray | None = None,
    period: str | None = None,
    params: BAPParams | None = None,
) -> xr.Dataset | xr.DataArray:
    """Composite a time series per pixel: nan-median, max-NDVI or best-available-pixel.

    Parameters
    ----------
    ds
        Dataset (one variable per band, dims ``(time, y, x)``) or DataArray with a ``time``
        dim; numpy- or dask-backed (time is rechunked to one block, space stays chunked).
    method
        ``"median"``: per-band median of the valid dates (even counts average the two middle
        values, as :func:`numpy.nanmedian`). ``"max_ndvi"``: all bands from the date with the
        highest NDVI (needs red and nir, found by ``common_name`` or name, or an ``NDVI``
        variable). ``"bap"``: all bands from the date with the best :class:`BAPParams` score
        (distance to cloud, sun zenith, day of year).
    mask
        Invalid dates per pixel: bool (True = invalid) or the uint8 bit mask of
        :func:`eo_pipeline.steps.masking` (nodata|cloud|shadow|cirrus|saturated are invalid). ``None``
        uses the Dataset's ``mask`` variable when present, else NaN / ``nodata`` only.
    period
        A pandas frequency (``"1MS"``, ``"QS"``, ``"14D"``...): one composite per period
        (empty periods are skipped), stacked along a new ``time`` (period start). Without it
        the result has no ``time`` dim.
    params
        :class:`BAPParams` for ``method="bap"`` (defaults cited there).

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        float32 bands (NaN where no date is valid) with the input's spatial coords and attrs.
        For ``max_ndvi``/``bap`` a uint16 ``source_time`` (index of the chosen date along the
        input's time axis, 65535 where none) is a variable (Dataset) or coordinate (DataArray).

    Raises
    ------
    InputDataError
        No ``time`` dim, fewer than two dates, a bad mask or period.
    BandError
        ``max_ndvi`` without red/nir (or NDVI).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2024-06-01", periods=4, freq="D")
    >>> red = xr.DataArray(np.float32([0.10, 0.05, 0.08, 0.2]).reshape(4, 1, 1),
    ...                    dims=("time", "y", "x"), coords={"time": t})
    >>> nir = red.copy(data=np.float32([0.3, 0.5, 0.2, 0.2]).reshape(4, 1, 1))
    >>> out = composite(xr.Dataset({"red": red, "nir": nir}), "max_ndvi")
    >>> out["source_time"].item(), out["nir"].item()
    (1, 0.5)
    """
    if method not in _METHODS:
        raise InputDataError(f"composite: unknown method {method!r}; choose one of {_METHODS}")
    params = params or BAPParams()
    if not isinstance(params, BAPParams):
        raise InputDataError(f"composite: params must be BAPParams, got {type(params).__name__}")
    if isinstance(ds, xr.DataArray):
        name = ds.name if ds.name is not None else "data"
        result = composite(
            ds.to_dataset(name=name), method, mask=mask, period=period, params=params
        )
        assert isinstance(result, xr.Dataset)
        da = result[name]
        if "source_time" in result:
            da = da.assign_coords(source_time=result["source_time"])
        return da.rename(ds.name)
    _check_series(ds)
    mask_da, bits, cbits = _resolve_mask(ds, mask)
    variables = _series_variables(ds, mask)
    static = {k: v for k, v in ds.data_vars.items() if "time" not in v.dims}
    order = np.argsort(ds.indexes["time"].to_numpy(), kind="stable")
    reordered = bool(np.any(order != np.arange(order.size)))
    if reordered:
        ds = ds.isel(time=order)
        mask_da = mask_da.isel(time=order) if mask_da is not None else None
    work, mask_da = _common_chunks(ds[variables], mask_da)
    times = pd.DatetimeIndex(ds.indexes["time"])
    if period is None:
        target = params.target_doy or _period_target_doy(times[0], times[-1])
        out = _composite_once(work, method, mask_da, bits, cbits, params, target, variables, 0)
    else:
        out = _composite_periods(work, times, period, method, mask_da, bits, cbits, params,
                                 variables)  # fmt: skip
    if reordered and "source_time" in out:  # sorted position -> position in the input
        lut = np.append(order, kc.NO_DATE).astype(np.uint16)
        out["source_time"] = apply_kernel(
            _lookup,
            out["source_time"],
            output_dtypes=[np.uint16],
            kwargs={"lut": lut},
            name="source_time",
            attrs=out["source_time"].attrs,
        )
    for key, var in static.items():
        out[key] = var
    out.attrs.update(ds.attrs)
    out.attrs["composite"] = method if period is None else f"{method} per {period}"
    return out


def _check_series(ds: Any) -> None:
    """A Dataset with a datetime64 ``time`` dim of at least two dates."""
    if not isinstance(ds, xr.Dataset):
        raise InputDataError(f"composite: expected an xarray Dataset or DataArray, got {type(ds)}")
    if "time" not in ds.dims:
        raise InputDataError(f"composite: the input has no 'time' dim (dims: {dict(ds.sizes)})")
    if ds.sizes["time"] < 2:
        raise InputDataError(
            f"composite: the time series has {ds.sizes['time']} date(s) "
            f"({[str(t)[:19] for t in ds['time'].values]}); a composite needs at least two - "
            "load more dates (a wider datetime range) or skip compositing"
        )
    if not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise InputDataError(
            f"composite: the 'time' coordinate must be datetime64, got {ds['time'].dtype}"
        )


def _series_variables(ds: xr.Dataset, explicit_mask: xr.DataArray | None) -> list[Hashable]:
    """The numeric variables along ``time`` that are composited (not the mask)."""
    variables = [
        k
        for k, v in ds.data_vars.items()
        if "time" in v.dims
        and k not in _MASK_VARS
        and (explicit_mask is None or v.variable is not explicit_mask.variable)
        and (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer))
    ]
    if not variables:
        raise InputDataError(
            f"composite: no numeric variable with a 'time' dim in {list(ds.data_vars)}"
        )
    return variables


def _composite_periods(
    work: xr.Dataset, times: pd.DatetimeIndex, period: str, method: str,
    mask_da: xr.DataArray | None, bits: int, cbits: int, params: BAPParams,
    variables: list[Hashable],
) -> xr.Dataset:  # fmt: skip
    """One composite per non-empty ``period`` stacked along a new ``time`` (period start)."""
    try:
        offset = pd.tseries.frequencies.to_offset(period)
        grouper = pd.Series(np.arange(times.size), index=times).resample(period)
        groups = [(label, g.to_numpy()) for label, g in grouper if len(g)]
    except (ValueError, TypeError) as err:
        raise InputDataError(
            f"composite: period {period!r} is not a pandas frequency: {err}"
        ) from err
    parts, labels = [], []
    for label, idx in groups:
        sl = slice(int(idx[0]), int(idx[-1]) + 1)
        sub_mask = mask_da.isel(time=sl) if mask_da is not None else None
        target = params.target_doy or _period_target_doy(label, label + offset)
        parts.append(
            _composite_once(
                work.isel(time=sl),
                method,
                sub_mask,
                bits,
                cbits,
                params,
                target,
                variables,
                int(idx[0]),
            )
        )
        labels.append(label)
    return xr.concat(
        parts,
        dim=pd.Index(labels, name="time"),
        coords="minimal",
        compat="override",
        join="override",
        combine_attrs="override",
    )

"""The spectral path of :func:`eo_pipeline.steps.masking.masks` and the input helpers both paths share.

Fmask/ACCA-style per-pixel tests on TOA reflectance (sensors without a QA band), then cloud
shadows found by projecting the cloud mask away from the sun over a range of cloud heights.
The public names (:class:`SpectralTests`, :class:`ShadowSearch`, :func:`shadow_offsets`) are
re-exported by :mod:`eo_pipeline.steps.masking`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from eo_pipeline.errors import BandError, InputDataError
from eo_pipeline.kernels import masks as k
from eo_pipeline.steps.dispatch import apply_kernel
from eo_pipeline.steps.scene_geometry import crs as scene_crs
from eo_pipeline.steps.scene_geometry import scene_sun

_SPATIAL = ("y", "x")
_EMPTY32 = np.empty((0, 0), np.float32)
_EMPTY8 = np.empty((0, 0), np.uint8)
_EMPTY16 = np.empty((0, 0), np.uint16)


@dataclass(frozen=True)
class SpectralTests:
    """Thresholds of the spectral tests, on TOA reflectance (see ``kernels.masks.spectral_flags``)."""

    cloud_brightness_min: float = 0.2
    """Mean visible reflectance above which a pixel may be cloud (stands in for thermal tests)."""
    whiteness_max: float = 0.7
    """Fmask whiteness ``sum |b - mean| / mean`` over blue, green, red must stay below this."""
    hot_offset: float = 0.08
    """HOT test ``blue - 0.5 red - hot_offset > 0`` (Zhang et al. 2002, as in Fmask)."""
    vnir_ratio_max: float = 2.0
    """ACCA filters 5/6: ``nir/red`` and ``nir/green`` of clouds stay below this."""
    ndvi_cloud_max: float = 0.8
    """Fmask basic test: clouds have NDVI below this."""
    nir_swir_min: float = 0.75
    """Fmask ``nir/swir16 > 0.75`` (bright rock excluded), where a 1.6 um band exists."""
    swir22_min: float = 0.03
    """Fmask basic test ``swir22 > 0.03``, where a 2.2 um band exists."""
    cirrus_min: float = 0.02
    """Cirrus where the 1.38 um TOA reflectance exceeds this (Fmask 3.3 normalises by 0.04)."""
    ndsi_min: float = 0.4
    """Snow NDSI threshold where a SWIR band exists (SNOMAP, Hall et al. 1995)."""
    snow_nir_min: float = 0.11
    """Snow has NIR reflectance above this (Fmask)."""
    snow_green_min: float = 0.1
    """Snow has green reflectance above this (Fmask)."""
    snow_brightness_min: float = 0.25
    """Without SWIR: snow is brighter than this in the mean visible reflectance."""
    snow_nir_red_max: float = 0.95
    """Without SWIR: snow has ``nir < snow_nir_red_max * red`` (0.88-0.92 for snow, 0.97-1.0
    for thick clouds, which are spectrally flat from 0.65 to 0.85 um)."""
    snow_swir16_max: float = 0.2
    """With SWIR: snow is darker than this at 1.6 um (ice clouds are brighter)."""
    snow_swir22_max: float = 0.1
    """Where a 2.2 um band exists: snow is darker than this there."""
    water_ndwi_min: float = 0.0
    """Water needs McFeeters' NDWI ``(green - nir)/(green + nir)`` above this."""

    def args(self) -> tuple[float, ...]:
        """Thresholds in the order :func:`eo_pipeline.kernels.masks.spectral_flags` takes them."""
        return (
            self.cloud_brightness_min,
            self.whiteness_max,
            self.hot_offset,
            self.vnir_ratio_max,
            self.ndvi_cloud_max,
            self.nir_swir_min,
            self.swir22_min,
            self.cirrus_min,
            self.ndsi_min,
            self.snow_nir_min,
            self.snow_green_min,
            self.snow_brightness_min,
            self.snow_nir_red_max,
            self.snow_swir16_max,
            self.snow_swir22_max,
            self.water_ndwi_min,
        )


@dataclass(frozen=True)
class ShadowSearch:
    """Where the spectral method looks for the shadow of each cloud."""

    enabled: bool = True
    """Search for shadows at all (needs ``sun_elevation``/``sun_azimuth`` coords)."""
    cloud_height_min: float = 200.0
    """Lowest cloud height above ground in metres (Fmask: 200 m)."""
    cloud_height_max: float = 12000.0
    """Highest cloud height in metres (Fmask: 12 km)."""
    max_distance_px: int = 1024
    """Cap on the shadow displacement in pixels (it is also the dask halo: memory per task)."""
    dark_nir_max: float = 0.15
    """Shadow candidates have NIR reflectance below this (the dark-pixel threshold of the
    s2cloudless shadow recipe) ..."""
    dark_ratio: float = 0.6
    """... or below this fraction of the mean NIR of the cloud-free, water-free pixels around
    them (shadows keep only diffuse light; catches shadowed snow and bright fields)."""
    reference_radius_px: int = 64
    """Half-width of the window of that local mean; 0 turns the relative test off."""


def shadow_offsets(
    sun_elevation: float,
    sun_azimuth: float,
    pixel_size: tuple[float, float],
    search: ShadowSearch = ShadowSearch(),
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column displacements of a cloud's shadow over the cloud-height range.

    A cloud at height ``h`` casts its shadow ``h / tan(sun_elevation)`` metres away along
    ``sun_azimuth + 180`` degrees (azimuth clockwise from north; nadir view, flat terrain).

    Parameters
    ----------
    sun_elevation, sun_azimuth
        Degrees.
    pixel_size
        Signed ``(dx, dy)`` spacing of the x and y coordinates in metres (``dy < 0`` north-up).
    search
        Height range and distance cap.

    Returns
    -------
    rows, cols
        int64 arrays, consecutive duplicates removed; empty when there is nothing to search.

    Examples
    --------
    >>> r, c = shadow_offsets(45.0, 90.0, (100.0, -100.0), ShadowSearch(True, 100.0, 500.0))
    >>> r.tolist(), c.tolist()
    ([0, 0, 0, 0, 0], [-1, -2, -3, -4, -5])
    """
    dx, dy = pixel_size
    if not search.enabled or not math.isfinite(sun_elevation) or sun_elevation <= 0.0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    tan_e = math.tan(math.radians(min(sun_elevation, 90.0)))
    step = min(abs(dx), abs(dy))
    d_min = search.cloud_height_min / tan_e
    d_max = min(search.cloud_height_max / tan_e, search.max_distance_px * step)
    if d_max < d_min:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    n = math.ceil((d_max - d_min) / (0.5 * step)) + 1
    dist = np.linspace(d_min, d_max, n)
    az = math.radians(sun_azimuth)
    rows = np.rint(-dist * math.cos(az) / dy).astype(np.int64)
    cols = np.rint(-dist * math.sin(az) / dx).astype(np.int64)
    keep = np.ones(n, bool)
    keep[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    return rows[keep], cols[keep]


# ---------------------------------------------------------------------------- inputs


def _bands(ds: xr.Dataset) -> dict[str, Hashable]:
    """Spectral band variables by common name (first match wins, in variable order)."""
    found: dict[str, Hashable] = {}
    for name, var in ds.data_vars.items():
        common = var.attrs.get("common_name") or (str(name) if str(name) in _COMMON else None)
        if common and common not in found:
            found[common] = name
    return found


_COMMON = ("blue", "green", "red", "nir", "nir08", "swir16", "swir22", "cirrus")


def _dn_prior(ds: xr.Dataset, names: Sequence[Hashable]) -> xr.DataArray | None:
    """Nodata/saturated flags from raw DN bands (integer dtype), or ``None`` when none is raw."""
    raw = [n for n in names if np.issubdtype(ds[n].dtype, np.integer)]
    if not raw:
        return None
    nodata = np.array([_int_attr(ds[n], "nodata", np.iinfo(np.int64).min) for n in raw])
    sat = np.array([_int_attr(ds[n], "saturation", np.iinfo(np.int64).max) for n in raw])
    common = np.result_type(*(ds[n].dtype for n in raw))
    return apply_kernel(
        _dn_block,
        *(ds[n] for n in raw),
        output_dtypes=[np.uint8],
        input_core_dims=[list(_SPATIAL)] * len(raw),
        output_core_dims=[list(_SPATIAL)],
        kwargs={"nodata": nodata, "saturation": sat, "dtype": common},
        name="dn_flags",
    )


def _int_attr(var: xr.DataArray, key: str, default: int) -> int:
    value = var.attrs.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return int(value)


def _dn_block(*bands: np.ndarray, nodata: np.ndarray, saturation: np.ndarray, dtype: Any) -> Any:
    out = np.empty(bands[0].shape, np.uint8)
    planes = [np.ascontiguousarray(b, dtype=dtype).reshape(-1, b.shape[-1]) for b in bands]
    k.dn_nodata_saturation(tuple(planes), nodata, saturation, out.reshape(-1, out.shape[-1]))  # type: ignore[misc]
    return out


def _merge_saturated(ds: xr.Dataset, prior: xr.DataArray | None) -> xr.DataArray | None:
    """OR the ``saturated`` variable of a calibrated Dataset into ``prior``."""
    if "saturated" not in ds.data_vars:
        return prior
    sat = xr.where(ds["saturated"] != 0, np.uint8(k.SATURATED), np.uint8(0)).astype(np.uint8)
    return sat if prior is None else (prior | sat).astype(np.uint8)


def _check_dims(ds: xr.Dataset, names: Sequence[Hashable]) -> None:
    for n in names:
        missing = [d for d in _SPATIAL if d not in ds[n].dims]
        if missing:
            raise InputDataError(
                f"variable {n!r} has dims {ds[n].dims}; masks() needs spatial dims 'y' and 'x' "
                "(load with a projected CRS)"
            )


# ---------------------------------------------------------------------------- QA


def _spectral_masks(
    ds: xr.Dataset, tests: SpectralTests, search: ShadowSearch, dilate: int
) -> xr.DataArray:
    bands = _bands(ds)
    if "nir" not in bands and "nir08" in bands:
        bands["nir"] = bands["nir08"]
    missing = [c for c in ("blue", "green", "red", "nir") if c not in bands]
    if missing:
        raise BandError(
            f"masks(method='spectral') needs bands with common_name blue, green, red and nir; "
            f"missing {missing} among variables {list(ds.data_vars)}"
        )
    used = ["blue", "green", "red", "nir"] + [
        c for c in ("swir16", "swir22", "cirrus") if c in bands
    ]
    names = [bands[c] for c in used]
    _check_dims(ds, names)
    prior = _dn_prior(ds, names)
    if prior is not None:
        ds = _calibrated(ds, names)
    prior = _merge_saturated(ds, prior)
    pixel_size = _pixel_size(ds, search)
    if "time" not in ds.dims:
        return _spectral_scene(ds, names, used, prior, tests, search, dilate, pixel_size)
    scenes = [
        _spectral_scene(
            ds.isel(time=t),
            names,
            used,
            None if prior is None else prior.isel(time=t),
            tests,
            search,
            dilate,
            pixel_size,
        )
        for t in range(ds.sizes["time"])
    ]
    return xr.concat(scenes, dim="time", coords="different", compat="equals", join="override")


def _calibrated(ds: xr.Dataset, names: Sequence[Hashable]) -> xr.Dataset:
    try:
        from eo_pipeline.steps.calibration import calibrate
    except ImportError as err:  # pragma: no cover - only while calibrate is being built
        raise InputDataError(
            f"bands {list(names)} are raw DN and eo_pipeline.steps.calibration is unavailable ({err}); "
            "pass TOA reflectance (float32) instead"
        ) from err
    # L2 products declare a surface-reflectance scale/offset; everything else goes to TOA
    l2 = all("sr_scale" in ds[n].attrs for n in names)
    return calibrate(ds[list(names)], to="surface_reflectance" if l2 else "toa_reflectance")


def _pixel_size(ds: xr.Dataset, search: ShadowSearch) -> tuple[float, float]:
    """Signed ``(dx, dy)`` in metres from the x/y coordinates, else from ``ds.odc``."""
    if search.enabled:
        crs = scene_crs(ds)
        if crs is not None and crs.is_geographic:
            raise InputDataError(
                f"shadow projection needs a projected CRS in metres, the Dataset is in {crs}; "
                "load it with crs='utm' (or pass shadow=ShadowSearch(enabled=False))"
            )
    if all(d in ds.coords and ds.sizes[d] > 1 for d in _SPATIAL):
        dx = float(ds["x"].values[1] - ds["x"].values[0])
        dy = float(ds["y"].values[1] - ds["y"].values[0])
        return dx, dy
    try:
        res = ds.odc.geobox.resolution
        return float(res.x), float(res.y)
    except Exception as err:
        if not search.enabled:
            return 1.0, -1.0
        raise InputDataError(
            "cannot tell the pixel size: give the Dataset x/y coordinates in metres (or a "
            "CRS through odc-geo), or pass shadow=ShadowSearch(enabled=False)"
        ) from err


def _spectral_scene(
    ds: xr.Dataset,
    names: Sequence[Hashable],
    used: Sequence[str],
    prior: xr.DataArray | None,
    tests: SpectralTests,
    search: ShadowSearch,
    dilate: int,
    pixel_size: tuple[float, float],
) -> xr.DataArray:
    """One scene (no time dim): spectral flags, dilation, shadows, clear bit."""
    rows = cols = np.empty(0, np.int64)
    if search.enabled:
        elevation, azimuth = scene_sun(ds, "sun_elevation"), scene_sun(ds, "sun_azimuth")
        if not math.isfinite(elevation) or elevation <= 0.0:
            warnings.warn(
                f"sun elevation {elevation} deg: the sun is down, no cloud shadows searched",
                stacklevel=3,
            )
        rows, cols = shadow_offsets(elevation, azimuth, pixel_size, search)
        if rows.size == 0 and elevation > 0.0:
            warnings.warn(
                f"sun elevation {elevation} deg: shadows of the lowest clouds fall beyond "
                f"max_distance_px={search.max_distance_px}; no cloud shadows searched",
                stacklevel=3,
            )
    reach = int(max(np.abs(rows).max(initial=0), np.abs(cols).max(initial=0)))
    if reach:
        reach = max(reach, search.reference_radius_px)
    halo = reach + dilate
    inputs = [ds[n] for n in names]
    layout = list(used[4:])
    if prior is not None:
        inputs.append(prior)
        layout.append("prior")
    return apply_kernel(
        _spectral_block,
        *inputs,
        output_dtypes=[np.uint8],
        input_core_dims=[list(_SPATIAL)] * len(inputs),
        output_core_dims=[list(_SPATIAL)],
        kwargs={
            "layout": tuple(layout),
            "thresholds": tests.args(),
            "offsets": (rows, cols),
            "dilate": int(dilate),
            "search": search,
        },
        depth={"y": halo, "x": halo},
    )


def _spectral_block(
    blue: np.ndarray,
    green: np.ndarray,
    red: np.ndarray,
    nir: np.ndarray,
    *extra: np.ndarray,
    layout: tuple[str, ...],
    thresholds: tuple[float, ...],
    offsets: tuple[np.ndarray, np.ndarray],
    dilate: int,
    search: ShadowSearch,
) -> np.ndarray:
    named = dict(zip(layout, extra, strict=True))
    out = np.empty(blue.shape, np.uint8)
    for idx in np.ndindex(blue.shape[:-2]):

        def f32(a: np.ndarray, idx: tuple[int, ...] = idx) -> np.ndarray:
            return np.asarray(a[idx], np.float32)

        opt = {c: f32(named[c]) if c in named else _EMPTY32 for c in ("swir16", "swir22", "cirrus")}
        prior = np.asarray(named["prior"][idx], np.uint8) if "prior" in named else _EMPTY8
        flags = np.empty(blue.shape[-2:], np.uint8)
        near_ir = f32(nir)
        k.spectral_flags(  # type: ignore[call-arg]
            f32(blue),
            f32(green),
            f32(red),
            near_ir,
            opt["swir16"],
            opt["swir22"],
            opt["cirrus"],
            prior,
            *thresholds,  # type: ignore[arg-type]
            flags,
        )
        if dilate:
            grown = np.empty_like(flags)
            k.dilate_flag(flags, k.CLOUD, dilate, k.CLEAR, grown)
            flags = grown
        reference = _EMPTY32
        if offsets[0].size and search.reference_radius_px > 0:
            reference = np.empty(flags.shape, np.float32)
            land = ((flags & (k.NODATA | k.CLOUD | k.WATER)) == 0).view(np.uint8)
            k.box_mean(near_ir, land, search.reference_radius_px, reference)
        k.shadow_and_clear(
            flags,
            near_ir,
            reference,
            search.dark_nir_max,
            search.dark_ratio,
            offsets[0],
            offsets[1],
            out[idx],
        )
    return out

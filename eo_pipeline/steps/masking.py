"""Pixel masks on loaded scenes: ``eo_pipeline.masks(ds)`` -> one uint8 flag raster per scene.

The mask format is the same for every sensor (:data:`eo_pipeline.kernels.masks.MASK_BITS`):
bit 0 nodata, 1 cloud, 2 shadow, 3 snow, 4 water, 5 cirrus, 6 saturated, 7 clear. The result
carries the CF flag attributes (``flag_masks``, ``flag_meanings``) so any reader can decode it.

Two methods:

- ``"qa"``: the Landsat Collection 2 ``QA_PIXEL`` band (plus ``QA_RADSAT`` when loaded) is
  decoded bit by bit (:func:`eo_pipeline.kernels.masks.qa_pixel_to_mask`).
- ``"spectral"``: Fmask/ACCA-style per-pixel tests on TOA reflectance for sensors with no QA
  band (KazEOSat-1/2, simulated scenes), then cloud shadows found by projecting the cloud mask
  away from the sun over a range of cloud heights. Raw DN bands (integer dtype) are first
  flagged for nodata/saturation from their DN and then converted with
  ``eo_pipeline.calibrate(ds, to="toa_reflectance")`` (``"surface_reflectance"`` when every
  band declares ``sr_scale``, i.e. an L2 product); the thresholds are meant for TOA.

- ``"scl"``: the Sentinel-2 Level-2A scene classification ``SCL`` mapped class by class
  (:mod:`eo_pipeline.steps.masks_scl`; cloud medium/high probability -> cloud, cloud shadows,
  thin cirrus, snow, water, saturated/defective, no data), with the DN bands' nodata and
  saturation merged; ``spectral=True`` adds the flags of the spectral tests.

``"auto"`` picks ``"qa"`` when the Dataset has a ``QA_PIXEL`` variable, ``"scl"`` when it has
``SCL``, else ``"spectral"``.

Neighbourhood steps (dilation, shadow projection) run on dask blocks extended by a halo
(:func:`eo_pipeline.steps.dispatch.apply_kernel` with ``depth``) as wide as the longest shadow
displacement plus the dilation, capped by :attr:`ShadowSearch.max_distance_px`.

Examples
--------
>>> import numpy as np, xarray as xr
>>> import eo_pipeline
>>> qa = xr.DataArray(np.array([[[1, 21824], [21952, 55052]]], np.uint16), dims=("time", "y", "x"))
>>> m = eo_pipeline.masks(xr.Dataset({"QA_PIXEL": qa}))
>>> m.values.tolist()
[[[1, 128], [144, 34]]]
>>> eo_pipeline.steps.masking.clear(m).values.tolist()
[[[False, True], [True, False]]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr

from eo_pipeline.errors import BandError, InputDataError
from eo_pipeline.kernels import masks as k
from eo_pipeline.steps.dispatch import apply_kernel
from eo_pipeline.steps.masks_scl import SCLOptions, combine, scl_masks
from eo_pipeline.steps.masks_spectral import (
    ShadowSearch,
    SpectralTests,
    _bands,
    _check_dims,
    _dn_prior,
    _merge_saturated,
    _spectral_masks,
    shadow_offsets,
)

__all__ = [
    "QAOptions",
    "SCLOptions",
    "ShadowSearch",
    "SpectralTests",
    "clear",
    "flag",
    "is_valid",
    "masks",
    "shadow_offsets",
]

Method = Literal["auto", "qa", "scl", "spectral"]
_SPATIAL = ("y", "x")
_EMPTY8 = np.empty((0, 0), np.uint8)
_EMPTY16 = np.empty((0, 0), np.uint16)


@dataclass(frozen=True)
class QAOptions:
    """How Landsat ``QA_PIXEL`` bits map to the mask."""

    dilated_as_cloud: bool = True
    """Count the dilated-cloud bit (1) as cloud."""
    cloud_confidence: int = 0
    """Also flag cloud where the cloud confidence (bits 8-9) is at least this (1-3); 0: off."""
    shadow_confidence: int = 0
    """Also flag shadow where the shadow confidence (bits 10-11) is at least this; 0: off."""
    snow_confidence: int = 0
    """Also flag snow where the snow/ice confidence (bits 12-13) is at least this; 0: off."""
    cirrus_confidence: int = 0
    """Also flag cirrus where the cirrus confidence (bits 14-15) is at least this; 0: off."""


def masks(
    ds: xr.Dataset,
    *,
    method: Method = "auto",
    dilate: int = 0,
    qa: QAOptions = QAOptions(),
    tests: SpectralTests = SpectralTests(),
    shadow: ShadowSearch = ShadowSearch(),
    scl: SCLOptions = SCLOptions(),
    spectral: bool = False,
) -> xr.DataArray:
    """The uint8 pixel mask of every scene in ``ds`` (dims ``time, y, x``), lazy with dask.

    Parameters
    ----------
    ds
        A Dataset as :func:`eo_pipeline.io.loading` makes it (band variables named by band id with a
        ``common_name`` attr; ``QA_PIXEL``/``QA_RADSAT`` when the product has them; per-time
        coords ``sun_elevation``/``sun_azimuth`` in degrees), raw DN or calibrated.
    method
        ``"qa"``, ``"scl"``, ``"spectral"`` or ``"auto"`` (QA when ``QA_PIXEL`` is present,
        SCL when ``SCL`` is).
    dilate
        Grow clouds by this many pixels (square window) before shadows are searched.
    qa, tests, shadow, scl
        Options of the QA decoding, spectral thresholds, shadow search, SCL class mapping.
    spectral
        With ``method="scl"``: also run the spectral tests and keep the union of both masks
        (:func:`eo_pipeline.steps.masks_scl.combine`).

    Returns
    -------
    xarray.DataArray
        ``mask`` (uint8), coords of ``ds``, attrs ``flag_masks``/``flag_meanings`` and the
        method used. Helpers: :func:`clear`, :func:`is_valid`, :func:`flag`.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> qa = xr.DataArray(np.full((1, 2, 2), 21824, np.uint16), dims=("time", "y", "x"))
    >>> masks(xr.Dataset({"QA_PIXEL": qa}), dilate=1).attrs["flag_meanings"]
    'nodata cloud shadow snow water cirrus saturated clear'
    """
    if not isinstance(ds, xr.Dataset):
        raise InputDataError(f"masks() needs an xarray.Dataset, got {type(ds).__name__}")
    if method not in ("auto", "qa", "scl", "spectral"):
        raise InputDataError(f"masks(method={method!r}): use 'auto', 'qa', 'scl' or 'spectral'")
    if dilate < 0:
        raise InputDataError(f"masks(dilate={dilate}): dilation must be >= 0 pixels")
    chosen: str = method
    if method == "auto":
        chosen = (
            "qa" if "QA_PIXEL" in ds.data_vars else "scl" if "SCL" in ds.data_vars else "spectral"
        )
    if chosen == "qa":
        out = _qa_masks(ds, qa, dilate)
    elif chosen == "scl":
        prior = _merge_saturated(ds, _dn_prior(ds, list(_bands(ds).values())))
        out = scl_masks(ds, prior, scl)
        if dilate:
            out = _dilate_cloud(out, dilate)
        if spectral:
            out = combine(out, _spectral_masks(ds.drop_vars("SCL"), tests, shadow, dilate))
            chosen = "scl+spectral"
    else:
        out = _spectral_masks(ds, tests, shadow, dilate)
    out.name = "mask"
    out.attrs = _mask_attrs(chosen, dilate)
    return out


def flag(mask: xr.DataArray, name: str) -> xr.DataArray:
    """Boolean view of one flag (``"cloud"``, ``"shadow"``, ...) of a mask.

    >>> import numpy as np, xarray as xr
    >>> flag(xr.DataArray(np.array([2, 128], np.uint8)), "cloud").values.tolist()
    [True, False]
    """
    bits = {n: b for b, n, _ in k.MASK_BITS}
    if name not in bits:
        raise BandError(f"mask has no flag {name!r}; flags are {', '.join(bits)}")
    return (mask & np.uint8(1 << bits[name])) != 0


def clear(mask: xr.DataArray) -> xr.DataArray:
    """True where the pixel is valid and free of cloud, shadow, cirrus and saturation."""
    return (mask & np.uint8(k.CLEAR)) != 0


def is_valid(mask: xr.DataArray) -> xr.DataArray:
    """True where the pixel holds a measurement (not nodata; it may be cloudy)."""
    return (mask & np.uint8(k.NODATA)) == 0


# ``eo_pipeline.steps.masking`` is either this function (through the package's lazy exports) or this
# module (once ``import eo_pipeline.steps.masking`` has bound the submodule on the package): both are
# callable as ``masks(ds)`` and both carry ``.clear``, ``.is_valid`` and ``.flag``.
masks.clear = clear  # type: ignore[attr-defined]
masks.is_valid = is_valid  # type: ignore[attr-defined]
masks.flag = flag  # type: ignore[attr-defined]


def _mask_attrs(method: str, dilate: int) -> dict[str, Any]:
    return {
        "long_name": "pixel mask (bit flags)",
        "flag_masks": np.array([1 << b for b, _, _ in k.MASK_BITS], np.uint8),
        "flag_meanings": " ".join(n for _, n, _ in k.MASK_BITS),
        "flag_descriptions": "; ".join(f"bit {b} {n}: {d}" for b, n, d in k.MASK_BITS),
        "mask_method": method,
        "cloud_dilation_px": int(dilate),
    }


def _qa_masks(ds: xr.Dataset, opts: QAOptions, dilate: int) -> xr.DataArray:
    if "QA_PIXEL" not in ds.data_vars:
        raise BandError(
            "masks(method='qa') needs a 'QA_PIXEL' variable; load the QA_PIXEL asset or use "
            "method='spectral'"
        )
    for name in ("QA_PIXEL", "QA_RADSAT"):
        if name in ds.data_vars and not np.issubdtype(ds[name].dtype, np.integer):
            raise InputDataError(
                f"variable {name!r} is {ds[name].dtype}; QA bit fields must stay integer "
                "(load them with their native uint16 dtype, no scale or NaN nodata)"
            )
    inputs = [ds["QA_PIXEL"]]
    layout: list[str] = []
    if "QA_RADSAT" in ds.data_vars:
        inputs.append(ds["QA_RADSAT"])
        layout.append("radsat")
    prior = _merge_saturated(ds, _dn_prior(ds, list(_bands(ds).values())))
    if prior is not None:
        inputs.append(prior)
        layout.append("prior")
    _check_dims(ds, ["QA_PIXEL"])
    return apply_kernel(
        _qa_block,
        *inputs,
        output_dtypes=[np.uint8],
        input_core_dims=[list(_SPATIAL)] * len(inputs),
        output_core_dims=[list(_SPATIAL)],
        kwargs={"layout": tuple(layout), "opts": opts, "dilate": int(dilate)},
        depth={"y": dilate, "x": dilate},
    )


def _dilate_block(mask: np.ndarray, dilate: int) -> np.ndarray:
    out = np.empty(mask.shape, np.uint8)
    for idx in np.ndindex(mask.shape[:-2]):
        k.dilate_flag(np.ascontiguousarray(mask[idx]), k.CLOUD, dilate, k.CLEAR, out[idx])
    return out


def _dilate_cloud(mask: xr.DataArray, dilate: int) -> xr.DataArray:
    """Grow the cloud flag by ``dilate`` pixels (halo-extended dask blocks)."""
    return apply_kernel(
        _dilate_block,
        mask,
        output_dtypes=[np.uint8],
        input_core_dims=[list(_SPATIAL)],
        output_core_dims=[list(_SPATIAL)],
        kwargs={"dilate": int(dilate)},
        depth={"y": dilate, "x": dilate},
    )


def _qa_block(
    qa: np.ndarray, *extra: np.ndarray, layout: tuple[str, ...], opts: QAOptions, dilate: int
) -> np.ndarray:
    named = dict(zip(layout, extra, strict=True))
    out = np.empty(qa.shape, np.uint8)
    for idx in np.ndindex(qa.shape[:-2]):
        radsat = named["radsat"][idx] if "radsat" in named else _EMPTY16
        prior = named["prior"][idx] if "prior" in named else _EMPTY8
        k.qa_pixel_to_mask(
            qa[idx],
            np.asarray(radsat, np.uint16),
            np.asarray(prior, np.uint8),
            opts.dilated_as_cloud,
            opts.cloud_confidence,
            opts.shadow_confidence,
            opts.snow_confidence,
            opts.cirrus_confidence,
            out[idx],
        )
        if dilate:
            plane = out[idx].copy()
            k.dilate_flag(plane, k.CLOUD, dilate, k.CLEAR, out[idx])
    return out


# ---------------------------------------------------------------------------- spectral

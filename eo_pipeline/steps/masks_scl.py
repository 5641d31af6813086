"""Sentinel-2 Level-2A scene classification (``SCL``) as the common pixel mask.

Sen2Cor's classes (ESA, *Sentinel-2 Level-2A Algorithm Theoretical Basis Document*, scene
classification; the codes are the ``Scene_Classification_List`` of ``MTD_MSIL2A.xml``) map
onto :data:`eo_pipeline.kernels.masks.MASK_BITS`:

=====  ==========================  =========================================
 SCL    class                       mask bits
=====  ==========================  =========================================
  0     no data                     nodata
  1     saturated or defective      saturated
  2     dark features / shadows     none (``dark_features_as_shadow``: shadow)
  3     cloud shadows               shadow
  4     vegetation                  clear
  5     not vegetated               clear
  6     water                       water (+ clear)
  7     unclassified                none (``unclassified_as_cloud``: cloud)
  8     cloud medium probability    cloud (``medium_probability_as_cloud``)
  9     cloud high probability      cloud
 10     thin cirrus                 cirrus
 11     snow or ice                 snow (+ clear)
=====  ==========================  =========================================

``clear`` is recomputed from the other bits. :func:`combine` merges two masks (the SCL mask
and the spectral tests of :mod:`eo_pipeline.steps.masks_spectral`): a flag set by either is
set, nodata wins, ``clear`` is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from eo_pipeline.errors import BandError, InputDataError
from eo_pipeline.kernels import masks as k
from eo_pipeline.steps.dispatch import apply_kernel

__all__ = ["SCL_CLASSES", "SCLOptions", "combine", "scl_lut", "scl_masks"]

SCL_CLASSES = {
    0: "nodata",
    1: "saturated_defective",
    2: "dark_feature_shadow",
    3: "cloud_shadow",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_proba",
    9: "cloud_high_proba",
    10: "thin_cirrus",
    11: "snow_ice",
}
"""Sen2Cor scene classification codes (as ``MTD_MSIL2A.xml`` lists them, ``SC_`` dropped)."""
_SPATIAL = ("y", "x")


@dataclass(frozen=True)
class SCLOptions:
    """How Sentinel-2 SCL classes map to the mask."""

    medium_probability_as_cloud: bool = True
    """Class 8 (cloud, medium probability) is cloud; False: only class 9 is."""
    dark_features_as_shadow: bool = False
    """Class 2 (dark area pixels, often terrain shadow) is flagged as shadow."""
    unclassified_as_cloud: bool = False
    """Class 7 (unclassified) is flagged as cloud."""


def scl_lut(opts: SCLOptions = SCLOptions()) -> np.ndarray:
    """The ``(256,)`` uint8 table class -> mask bits (codes above 11 are nodata).

    >>> scl_lut()[[0, 3, 6, 8, 9, 10, 11]].tolist()
    [1, 4, 16, 2, 2, 32, 8]
    """
    lut = np.full(256, k.NODATA, np.uint8)
    lut[:12] = 0
    lut[0] = k.NODATA
    lut[1] = k.SATURATED
    lut[3] = k.SHADOW
    lut[6] = k.WATER
    lut[9] = k.CLOUD
    lut[10] = k.CIRRUS
    lut[11] = k.SNOW
    if opts.medium_probability_as_cloud:
        lut[8] = k.CLOUD
    if opts.dark_features_as_shadow:
        lut[2] = k.SHADOW
    if opts.unclassified_as_cloud:
        lut[7] = k.CLOUD
    return lut


def _scl_block(scl: np.ndarray, *prior: np.ndarray, lut: np.ndarray) -> np.ndarray:
    out = np.empty(scl.shape, np.uint8)
    none = np.empty((0, 0), np.uint8)
    for idx in np.ndindex(scl.shape[:-2]):
        pre = np.asarray(prior[0][idx], np.uint8) if prior else none
        k.scl_to_mask(np.ascontiguousarray(scl[idx], dtype=np.uint8), lut, pre, out[idx])
    return out


def scl_masks(
    ds: xr.Dataset, prior: xr.DataArray | None, opts: SCLOptions = SCLOptions()
) -> xr.DataArray:
    """The mask from the ``SCL`` variable (lazy with dask), ``prior`` flags merged.

    Raises
    ------
    BandError
        No ``SCL`` variable.
    InputDataError
        ``SCL`` not integer (loaded with a scale or NaN nodata).
    """
    if "SCL" not in ds.data_vars:
        raise BandError(
            "masks(method='scl') needs the Sentinel-2 L2A 'SCL' variable; load it "
            "(eo.load(..., bands=[..., 'SCL'])) or use method='spectral'"
        )
    if not np.issubdtype(ds["SCL"].dtype, np.integer):
        raise InputDataError(
            f"variable 'SCL' is {ds['SCL'].dtype}; the scene classification must stay uint8 "
            "(load it with its native dtype)"
        )
    missing = [d for d in _SPATIAL if d not in ds["SCL"].dims]
    if missing or ds["SCL"].dims[-2:] != _SPATIAL:
        raise InputDataError(f"variable 'SCL' has dims {ds['SCL'].dims}; (..., y, x) expected")
    inputs = [ds["SCL"]] + ([prior.transpose(*ds["SCL"].dims)] if prior is not None else [])
    return apply_kernel(
        _scl_block,
        *inputs,
        output_dtypes=[np.uint8],
        kwargs={"lut": scl_lut(opts)},
        name="scl_mask",
    )


def _combine_block(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    nodata = ((a | b) & k.NODATA) != 0
    bits = (a | b) & np.uint8(0xFF ^ k.CLEAR)
    clear = (bits & k.NOT_CLEAR) == 0
    out = np.where(clear, bits | k.CLEAR, bits).astype(np.uint8)
    out[nodata] = k.NODATA
    return out


def combine(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """Union of two masks: any flag of either, nodata wins, ``clear`` recomputed.

    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.array([[128, 2, 1]], np.uint8), dims=("y", "x"))
    >>> b = xr.DataArray(np.array([[4 | 0, 128, 128]], np.uint8), dims=("y", "x"))
    >>> combine(a, b).values.tolist()
    [[4, 2, 1]]
    """
    return apply_kernel(_combine_block, a, b, output_dtypes=[np.uint8], name="mask_union")

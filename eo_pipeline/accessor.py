"""The ``.eo`` accessor on :class:`xarray.Dataset` and :class:`xarray.DataArray`.

Registered when ``eo_pipeline`` is imported, so a scientist's steps chain lazily::

    ds = (eo_pipeline.load("catalog/catalog.json")
          .eo.calibrate()
          .eo.mask()
          .eo.compute_indices(["NDVI", "NDWI"])
          .eo.composite("median"))

Every method calls the public function of the same step (imported when first used, so this
module imports only xarray) and returns what it returns; nothing is computed until asked.

How the mask travels
--------------------
- ``.eo.mask()`` adds the uint8 bit mask of :func:`eo_pipeline.steps.masking` as the ``mask``
  variable (the bands stay as they are);
- ``.eo.calibrate()`` passes ``mask`` through (variables without calibration numbers are
  left unchanged by :func:`eo_pipeline.steps.calibration`);
- ``.eo.compute_indices()`` returns the indices *and* the input's ``mask`` variable;
- ``.eo.composite()`` uses ``mask`` when present (invalid: nodata, cloud, shadow, cirrus,
  saturated) and drops it from the result.

Examples
--------
>>> import numpy as np, pandas as pd, xarray as xr
>>> import eo_pipeline
>>> t = pd.date_range("2024-06-01", periods=3)
>>> da = xr.DataArray(np.float32([1, 5, 3]).reshape(3, 1, 1), dims=("time", "y", "x"),
...                   coords={"time": t}, name="B4")
>>> da.eo.composite("median").values
array([[3.]], dtype=float32)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import xarray as xr

__all__ = ["EOAccessor"]


class EOAccessor:
    """eo-pipeline steps as methods: ``obj.eo.calibrate().eo.mask()...`` (module docstring)."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def calibrate(
        self,
        to: Literal["toa_reflectance", "radiance", "surface_reflectance"] = "toa_reflectance",
        **kwargs: Any,
    ) -> Any:
        """DN -> radiance / reflectance: :func:`eo_pipeline.steps.calibration` (``mask`` passes through)."""
        from eo_pipeline.steps.calibration import calibrate

        out = calibrate(self._obj, to, **kwargs)
        return _carry_mask(self._obj, out)

    def mask(self, **kwargs: Any) -> xr.Dataset:
        """Add the uint8 bit mask of :func:`eo_pipeline.steps.masking` as the ``mask`` variable.

        Parameters
        ----------
        **kwargs
            Passed to :func:`eo_pipeline.steps.masking` (``method``, ``dilate``...).
        """
        from eo_pipeline.errors import InputDataError
        from eo_pipeline.steps.masking import masks

        if not isinstance(self._obj, xr.Dataset):
            raise InputDataError(
                ".eo.mask() needs the Dataset of bands (masks look at several bands and QA); "
                f"got a DataArray {self._obj.name!r} - call it before selecting one band"
            )
        return self._obj.assign(mask=masks(self._obj, **kwargs))

    def compute_indices(
        self, names: str | Sequence[str] | Mapping[str, str], **constants: float
    ) -> xr.Dataset:
        """Spectral indices (:func:`eo_pipeline.compute_indices`), keeping the ``mask`` variable."""
        from eo_pipeline.steps.indices import compute_indices

        return _carry_mask(self._obj, compute_indices(self._obj, names, **constants))

    def composite(self, method: str = "median", **kwargs: Any) -> Any:
        """Temporal composite (:func:`eo_pipeline.steps.compositing`), using ``mask`` when present."""
        from eo_pipeline.steps.compositing import composite

        return composite(self._obj, method, **kwargs)  # type: ignore[arg-type]

    def pansharpen(
        self,
        pan: xr.Dataset | xr.DataArray,
        method: str = "brovey",
        weights: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Sharpen these MS bands with ``pan`` (:func:`eo_pipeline.steps.pansharpening`)."""
        from eo_pipeline.steps.pansharpening import pansharpen

        return pansharpen(self._obj, pan, method, weights, **kwargs)  # type: ignore[arg-type]

    def write(self, path: str | os.PathLike[str], **kwargs: Any) -> Any:
        """Write one COG (:func:`eo_pipeline.io.writing`); returns its ``WrittenProduct``."""
        from eo_pipeline.io.writing import write

        return write(self._obj, path, **kwargs)


def _carry_mask(source: xr.Dataset | xr.DataArray, out: Any) -> Any:
    """Put ``source``'s ``mask`` variable into the Dataset ``out`` when it lacks one."""
    if (
        isinstance(source, xr.Dataset)
        and isinstance(out, xr.Dataset)
        and "mask" in source.data_vars
        and "mask" not in out.data_vars
    ):
        return out.assign(mask=source["mask"])
    return out


xr.register_dataset_accessor("eo")(EOAccessor)
xr.register_dataarray_accessor("eo")(EOAccessor)

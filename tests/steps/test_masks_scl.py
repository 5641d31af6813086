"""SCL -> common mask: every class, prior flags, union with another mask."""

from __future__ import annotations

import numpy as np
import xarray as xr

import eo_pipeline as eo
from eo_pipeline.kernels.masks import mask_names
from eo_pipeline.steps.masks_scl import SCLOptions


def _ds(codes: list[int], dn: list[int] | None = None) -> xr.Dataset:
    scl = xr.DataArray(np.array([[codes]], np.uint8), dims=("time", "y", "x"))
    out = xr.Dataset({"SCL": scl})
    if dn is not None:
        band = xr.DataArray(np.array([[dn]], np.uint16), dims=("time", "y", "x"))
        band.attrs = {"common_name": "red", "nodata": 0, "saturation": 65535}
        out["B04"] = band
    return out


def test_every_class() -> None:
    m = eo.masks(_ds([*range(12), 200]))
    assert m.attrs["mask_method"] == "scl"
    names = [mask_names(int(v)) for v in m.values[0, 0]]
    assert names == [
        ("nodata",), ("saturated",), ("clear",), ("shadow",), ("clear",), ("clear",),
        ("water", "clear"), ("clear",), ("cloud",), ("cloud",), ("cirrus",), ("snow", "clear"),
        ("nodata",),
    ]  # fmt: skip


def test_options_and_band_prior() -> None:
    opts = SCLOptions(medium_probability_as_cloud=False, dark_features_as_shadow=True)
    m = eo.masks(_ds([8, 2, 7], dn=[500, 0, 65535]), scl=opts).values[0, 0]
    assert [mask_names(int(v)) for v in m] == [("clear",), ("nodata",), ("saturated",)]
    m = eo.masks(
        _ds([2, 7]), scl=SCLOptions(dark_features_as_shadow=True, unclassified_as_cloud=True)
    )
    assert [mask_names(int(v)) for v in m.values[0, 0]] == [("shadow",), ("cloud",)]

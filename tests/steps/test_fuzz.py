"""Public steps fuzzed with any byte order, memory order and shape (issue #16).

The property: a step given the same values in another layout (big-endian, Fortran order, a
strided view) returns the same result as on native C-order arrays, and anything it refuses
(zero-size inputs...) it refuses with a project error, never a numba or numpy traceback.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pyproj
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import eo_pipeline as eo
from eo_pipeline.errors import EOPipelineError
from tests.strategies import any_layout, dn_arrays, layouts

CRS = pyproj.CRS.from_epsg(32619)
BANDS = {"B2": "blue", "B3": "green", "B4": "red", "B5": "nir"}
LANDSAT = {"reflectance_mult": 2e-05, "reflectance_add": -0.1, "nodata": 0, "saturation": 65535}
FUZZ = settings(max_examples=12, deadline=None)
CUBES = dn_arrays(("u2",), shape=st.tuples(st.just(2), st.integers(0, 5), st.integers(0, 5)))


def _dataset(dn: np.ndarray, layout: str) -> xr.Dataset:
    """A two-date Landsat-like DN Dataset whose bands hold ``dn`` (rolled per band) in ``layout``."""
    _, ny, nx = dn.shape
    coords: dict[str, Any] = {
        "time": np.array(["2019-01-14T14:34", "2019-06-20T14:34"], dtype="datetime64[ns]"),
        "y": -1482300.0 - 30.0 * (np.arange(ny) + 0.5),
        "x": 528300.0 + 30.0 * (np.arange(nx) + 0.5),
        "sun_elevation": ("time", np.array([59.5, 40.0])),
        "sun_azimuth": ("time", np.array([107.5, 60.0])),
        "earth_sun_distance": ("time", np.array([0.98356, 1.0163])),
        "spatial_ref": ((), 0, {"crs_wkt": CRS.to_wkt(), "spatial_ref": CRS.to_wkt()}),
    }
    data = {}
    for k, (name, common) in enumerate(BANDS.items()):
        values = any_layout(np.roll(dn, k, axis=-1), layout)
        attrs = {"band": name, "common_name": common, "units": "DN", **LANDSAT}
        data[name] = xr.DataArray(values, dims=("time", "y", "x"), attrs=attrs)
    return xr.Dataset(data, coords=coords, attrs={"sensor": "landsat8", "processing_level": "L1TP"})


def _outcome(step: Callable[[xr.Dataset], xr.Dataset], ds: xr.Dataset) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = step(ds)
            return {k: np.asarray(v.values) for k, v in out.data_vars.items()}
    except EOPipelineError as err:  # refused: fine, if said the same way for every layout
        return type(err)


STEPS: dict[str, Callable[[xr.Dataset], xr.Dataset]] = {
    "calibrate": lambda ds: eo.calibrate(ds, "toa_reflectance"),
    "indices": lambda ds: eo.compute_indices(eo.calibrate(ds, "toa_reflectance"), ["NDVI", "EVI"]),
    "masks": lambda ds: eo.masks(eo.calibrate(ds, "toa_reflectance")).to_dataset(name="mask"),
    "composite": lambda ds: eo.composite(eo.calibrate(ds, "toa_reflectance"), "median"),
    "max_ndvi": lambda ds: eo.composite(eo.calibrate(ds, "toa_reflectance"), "max_ndvi"),
}


@FUZZ
@given(CUBES, layouts(), st.sampled_from(sorted(STEPS)), st.booleans())
def test_steps_agree_on_every_layout(dn: np.ndarray, layout: str, step: str, lazy: bool) -> None:
    native = _outcome(STEPS[step], _dataset(dn, "C"))
    other = _dataset(dn, layout)
    got = _outcome(STEPS[step], other.chunk({"y": 3}) if lazy else other)
    if isinstance(native, type):
        assert got is native
        return
    assert not isinstance(got, type), f"{step} refused the {layout} layout: {got}"
    assert native.keys() == got.keys()
    for name, want in native.items():
        assert got[name].dtype == want.dtype, name
        np.testing.assert_array_equal(got[name], want, err_msg=f"{step} {name} {layout}")


def test_big_endian_reflectance_through_indices() -> None:
    """The audit's attack: a big-endian float32 Dataset gave a numba TypingError."""
    ds = eo.calibrate(_dataset(np.full((2, 2, 3), 9000, np.uint16), "C"), "toa_reflectance")
    big = ds.map(lambda v: v.astype(">f4") if v.dtype == np.float32 else v)
    got = eo.compute_indices(big, ["NDVI"])["NDVI"].values
    np.testing.assert_array_equal(got, eo.compute_indices(ds, ["NDVI"])["NDVI"].values)

"""compute_indices / available_indices: every supported ASI index equals spyndex; errors."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import spyndex
import xarray as xr

import eo_pipeline
from eo_pipeline.catalogs import sensors
from eo_pipeline.errors import BandError, FormulaError, InputDataError, UnknownIndexError
from eo_pipeline.steps.index_catalog import BandCandidate, catalog, resolve_symbols
from eo_pipeline.steps.indices import available_indices, compute_indices, get_index


def sensor_dataset(name: str, shape: tuple[int, ...] = (16, 32), seed: int = 0) -> xr.Dataset:
    """Random reflectances (0.01-0.6) for every band of a sensor, attrs as ``load`` sets them."""
    rng = np.random.default_rng(seed)
    sensor = sensors.get(name)
    dims = ("y", "x")[-len(shape) :] if len(shape) <= 2 else ("time", "y", "x")
    return xr.Dataset(
        {
            b.id: (
                dims,
                rng.uniform(0.01, 0.6, shape).astype(np.float32),
                {"common_name": b.common_name, "center_wavelength": b.center_wavelength},
            )
            for b in sensor.bands
        },
        coords={"x": np.arange(shape[-1]) * 10.0, "y": np.arange(shape[-2]) * -10.0},
        attrs={"sensor": name},
    )


def spyndex_value(name: str, ds: xr.Dataset, constants: dict[str, float]) -> np.ndarray:
    """spyndex's own computation (float64 numpy) of one index on ``ds``."""
    d = get_index(name)
    cands = [
        BandCandidate(k, v.attrs["common_name"], v.attrs["center_wavelength"])
        for k, v in ds.data_vars.items()
    ]
    res = resolve_symbols(d.bands, cands)
    params: dict[str, object] = {s: ds[res[s].key].values.astype(np.float64) for s in d.bands}
    for c in d.constants:
        if c in constants:
            params[c] = constants[c]
        elif c.startswith("lambda"):
            sym = c.removeprefix("lambda")
            params[c] = resolve_symbols([sym], cands)[sym].center_wavelength * 1000
        else:
            params[c] = catalog().constants[c].default
    # kernel symbols (kNR...) as spyndex computes them: computeKernel("RBF", a, b, sigma)
    for sym in spyndex.indices[name].bands:
        if len(sym) == 3 and sym[0] == "k" and sym not in catalog().constants:
            a, b = params[sym[1]], params[sym[2]]
            params[sym] = spyndex.computeKernel("RBF", {"a": a, "b": b, "sigma": params["sigma"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(spyndex.computeIndex(name, params), dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# every supported index equals spyndex (one fused kernel per sensor, compared index by index)

S2_INDICES = available_indices("sentinel2a")
KAZ_INDICES = sorted(set(available_indices("kazeosat1")) | set(available_indices("kazeosat2")))
CONSTANTS = {"PAR": 1.7}


@pytest.fixture(scope="module")
def s2_fused() -> tuple[xr.Dataset, xr.Dataset]:
    ds = sensor_dataset("sentinel2a", seed=3)
    # zeros in a few pixels exercise the division-by-zero rule against spyndex's inf/nan
    for var in ("B04", "B08", "B03"):
        ds[var].values[0, :4] = 0.0
    return ds, compute_indices(ds, S2_INDICES, **CONSTANTS).compute()


@pytest.fixture(scope="module")
def kaz_fused() -> dict[str, tuple[xr.Dataset, xr.Dataset]]:
    out = {}
    for name in ("kazeosat1", "kazeosat2"):
        ds = sensor_dataset(name, seed=5)
        out[name] = (ds, compute_indices(ds, available_indices(name), **CONSTANTS).compute())
    return out


def _compare(name: str, ours: xr.DataArray, ref: np.ndarray) -> None:
    got = ours.values.astype(np.float64)
    assert ours.dtype == np.float32
    assert not np.isinf(got).any(), f"{name}: inf in output"
    both = np.isfinite(got) & np.isfinite(ref)
    assert both.any(), f"{name}: no finite pixel to compare"
    rel = np.abs(got[both] - ref[both]) / np.maximum(np.abs(ref[both]), 1e-12)
    assert rel.max() <= 1e-5, f"{name} ({get_index(name).formula}): max rel err {rel.max():.2e}"
    # where spyndex divides by zero (inf or nan) we give NaN
    assert np.isnan(got[~np.isfinite(ref)]).all(), name


def test_sentinel2_covers_the_asi_optical_catalogue() -> None:
    assert len(S2_INDICES) >= 230
    assert {"NDVI", "EVI", "SAVI", "NDWI", "NBR", "NDREI", "MNDWI", "NDSI", "BAIS2"} <= set(
        S2_INDICES
    )


@pytest.mark.parametrize("name", S2_INDICES)
def test_sentinel2_index_equals_spyndex(name: str, s2_fused: tuple[xr.Dataset, xr.Dataset]) -> None:
    ds, out = s2_fused
    _compare(name, out[name], spyndex_value(name, ds, CONSTANTS))


@pytest.mark.parametrize("name", KAZ_INDICES)
def test_kazeosat_index_equals_spyndex(
    name: str, kaz_fused: dict[str, tuple[xr.Dataset, xr.Dataset]]
) -> None:
    for ds, out in kaz_fused.values():
        if name in out:
            _compare(name, out[name], spyndex_value(name, ds, CONSTANTS))


KERNEL_INDICES = ["kNDVI", "kEVI", "kIPVI", "kRVI", "kVARI"]


def test_kernel_indices_are_offered_and_equal_spyndex(s2_fused) -> None:
    """ASI's kernel indices with spyndex's RBF kernel and its constant sigma (0.5, or given)."""
    assert set(KERNEL_INDICES) <= set(S2_INDICES)
    assert set(KERNEL_INDICES) <= set(available_indices("kazeosat2", domain="kernel")) | {"kEVI"}
    ds, out = s2_fused
    for name in KERNEL_INDICES:
        _compare(name, out[name], spyndex_value(name, ds, {}))
    assert "sigma=0.5" in out["kNDVI"].attrs["constants"]
    wide = compute_indices(ds, ["kNDVI"], sigma=0.25).compute()
    _compare("kNDVI", wide["kNDVI"], spyndex_value("kNDVI", ds, {"sigma": 0.25}))
    assert not np.allclose(wide["kNDVI"], out["kNDVI"], equal_nan=True)


def test_nirvp_is_offered_only_with_par() -> None:
    assert "NIRvP" not in available_indices("landsat8")
    assert "NIRvP" in available_indices("landsat8", constants=["PAR"])
    ds = sensor_dataset("kazeosat2", seed=1)
    with pytest.raises(FormulaError, match=r"needs constant PAR \(Photosynthetically Active"):
        compute_indices(ds, ["NIRvP"])
    assert compute_indices(ds, ["NIRvP"], PAR=1.7)["NIRvP"].attrs["constants"] == "PAR=1.7"


# ---------------------------------------------------------------------------------------------
# band resolution and available_indices


def test_available_indices_per_sensor() -> None:
    k1, k2, l8 = (set(available_indices(s)) for s in ("kazeosat1", "kazeosat2", "landsat8"))
    assert {"NDVI", "EVI", "SAVI", "NDWI", "GNDVI"} <= k1
    assert not {"NBR", "NDMI", "NDRE"} & k1  # no SWIR, no red edge
    assert {"NDREI", "CIRE"} <= k2 - k1  # KazEOSat-2's red edge (0.71 um) serves ASI RE1
    assert {"NBR", "NDMI", "MNDWI"} <= l8
    assert available_indices(sensors.get("kazeosat1")) == sorted(k1)
    assert set(available_indices(domain="water")) >= {"NDWI", "MNDWI"}
    everything = set(available_indices(constants=["PAR"]))
    assert everything == set(catalog().indices) and "NIRvP" not in available_indices()
    with pytest.raises(UnknownIndexError, match="unknown domain"):
        available_indices(domain="moon")


def test_landsat_nir08_serves_nir() -> None:
    ds = sensor_dataset("landsat8", shape=(4, 5))
    out = compute_indices(ds, ["NDVI"])
    assert out.NDVI.attrs["bands"] == "N=B5, R=B4"
    n, r = ds.B5.values.astype(np.float64), ds.B4.values.astype(np.float64)
    np.testing.assert_allclose(out.NDVI.values, (n - r) / (n + r), rtol=1e-6)


def test_variables_found_by_name_when_no_common_name() -> None:
    rng = np.random.default_rng(0)
    nir, red, blue = rng.uniform(0.05, 0.5, (3, 6)).astype(np.float32)
    by_common = xr.Dataset({"nir": ("x", nir), "red": ("x", red), "blue": ("x", blue)})
    by_symbol = xr.Dataset({"N": ("x", nir), "R": ("x", red), "B": ("x", blue)})
    a = compute_indices(by_common, ["NDVI", "EVI"])
    b = compute_indices(by_symbol, ["NDVI", "EVI"])
    xr.testing.assert_equal(a, b)  # same values; attrs name the variables used


def test_available_indices_of_a_dataset() -> None:
    ds = sensor_dataset("kazeosat2", shape=(2, 2))
    assert available_indices(ds) == available_indices("kazeosat2")


# ---------------------------------------------------------------------------------------------
# xarray behaviour


def test_result_attrs_coords_and_dtype() -> None:
    ds = sensor_dataset("sentinel2a", shape=(3, 4))
    out = compute_indices(ds, ["NDVI", "SAVI"], L=0.5)
    assert set(out.data_vars) == {"NDVI", "SAVI"}
    assert out.attrs["sensor"] == "sentinel2a"
    xr.testing.assert_equal(out.x, ds.x)
    a = out.SAVI.attrs
    assert a["formula"] == get_index("SAVI").formula and a["units"] == "1"
    assert a["reference"].startswith("https://") and a["application_domain"] == "vegetation"
    assert a["constants"] == "L=0.5" and a["long_name"] == "Soil-Adjusted Vegetation Index"
    n, r = ds.B08.values.astype(np.float64), ds.B04.values.astype(np.float64)
    np.testing.assert_allclose(out.SAVI.values, 1.5 * (n - r) / (n + r + 0.5), rtol=1e-6)
    assert out.SAVI.dtype == np.float32


def test_dask_is_lazy_one_task_per_chunk_and_equals_numpy() -> None:
    ds = sensor_dataset("sentinel2a", shape=(2, 40, 30), seed=1)
    lazy = ds.chunk({"time": 1, "y": 20, "x": 15})
    names = ["NDVI", "EVI", "NDWI", "NBR"]
    out = compute_indices(lazy, names)
    assert all(isinstance(out[n].data, da.Array) for n in names)
    graph = dict(out.NDVI.data.__dask_graph__())
    # one blockwise layer calls the kernel (returning all outputs); per-output getitem layers
    # ("run_kernel_<i>-...") only pick an output from its tuple
    kernel_layers = {k[0] for k in graph if isinstance(k, tuple) and k[0].startswith("run_kernel-")}
    assert len(kernel_layers) == 1
    (layer,) = kernel_layers
    n_chunks = 2 * 2 * 2
    assert sum(1 for k in graph if isinstance(k, tuple) and k[0] == layer) == n_chunks
    for n in names[1:]:  # every output comes from the same kernel tasks
        assert layer in {k[0] for k in out[n].data.__dask_graph__() if isinstance(k, tuple)}
    xr.testing.assert_identical(out.compute(), compute_indices(ds, names))


def test_dataarray_with_band_dimension() -> None:
    ds = sensor_dataset("kazeosat1", shape=(3, 4))
    arr = ds.to_array("band").assign_coords(
        common_name=("band", [sensors.get("kazeosat1").band(b).common_name for b in ds.data_vars])
    )
    out = compute_indices(arr, ["NDVI", "GNDVI"])
    xr.testing.assert_allclose(out.NDVI, compute_indices(ds, "NDVI").NDVI)
    with pytest.raises(InputDataError, match="'band' dimension"):
        compute_indices(ds.B0, ["NDVI"])


def test_custom_formulas() -> None:
    ds = sensor_dataset("sentinel2a", shape=(2, 3))
    out = eo_pipeline.compute_indices(
        ds,
        {
            "MY": "(N - R) / (N + R + 0.5)",
            "BYNAME": "B08 / B04",
            "COMMON": "where(nir > red, nir, red)",
        },
    )
    n, r = ds.B08.values.astype(np.float64), ds.B04.values.astype(np.float64)
    np.testing.assert_allclose(out.MY.values, (n - r) / (n + r + 0.5), rtol=1e-6)
    np.testing.assert_allclose(out.BYNAME.values, n / r, rtol=1e-6)
    np.testing.assert_allclose(out.COMMON.values, np.maximum(n, r), rtol=1e-6)
    assert out.MY.attrs["formula"] == "(N - R) / (N + R + 0.5)"
    k = compute_indices(ds, {"K": "N * k + L"}, k=2.0)  # ASI constants and their defaults
    np.testing.assert_allclose(k.K.values, n * 2.0 + 1.0, rtol=1e-6)


def test_wavelength_constants_come_from_the_bands() -> None:
    ds = sensor_dataset("sentinel2a", shape=(2, 2))
    out = compute_indices(ds, ["NIRvH2"], k=0.01)
    assert "lambdaN=832.8" in out.NIRvH2.attrs["constants"]
    del ds.B08.attrs["center_wavelength"]
    with pytest.raises(FormulaError, match="lambdaN"):
        compute_indices(ds, ["NIRvH2"])
    ok = compute_indices(ds, ["NIRvH2"], lambdaN=840.0)
    assert "lambdaN=840" in ok.NIRvH2.attrs["constants"]


# ---------------------------------------------------------------------------------------------
# errors


def test_unknown_index_lists_close_names() -> None:
    ds = sensor_dataset("kazeosat1", shape=(2, 2))
    with pytest.raises(UnknownIndexError, match="NDVI") as info:
        compute_indices(ds, ["NDVl"])
    assert isinstance(info.value, KeyError)
    assert compute_indices(ds, ["ndvi"]).NDVI.shape == (2, 2)  # case-insensitive when unique


def test_missing_band_names_the_common_name_and_what_there_is() -> None:
    ds = sensor_dataset("kazeosat1", shape=(2, 2))
    with pytest.raises(BandError) as info:
        compute_indices(ds, ["NDVI", "NBR"])
    msg = str(info.value)
    assert "NBR" in msg and "swir22" in msg and "B3 (nir)" in msg and "common_name" in msg


def test_formula_errors_have_positions() -> None:
    ds = sensor_dataset("kazeosat1", shape=(2, 2))
    with pytest.raises(FormulaError, match=r"MY: .*never closed at line 1, column 11"):
        compute_indices(ds, {"MY": "(N - R) / (N + R"})
    with pytest.raises(FormulaError, match="attribute access"):
        compute_indices(ds, {"MY": "N.__class__"})
    with pytest.raises(FormulaError, match="not allowed"):
        compute_indices(ds, {"X": "__import__('os').system('echo hi')"})
    with pytest.raises(FormulaError, match="neither a band"):
        compute_indices(ds, {"X": "N * foo"})
    with pytest.raises(FormulaError, match="must be a string"):
        compute_indices(ds, {"X": 3})  # type: ignore[dict-item]
    with pytest.raises(FormulaError, match="at least one band"):
        compute_indices(ds, {"X": "L * 2"})


@pytest.mark.parametrize("value", ["0.5", True, None, [0.5], complex(1, 1), float("nan")])
def test_constants_of_the_wrong_type(value: object) -> None:
    ds = sensor_dataset("kazeosat1", shape=(2, 2))
    with pytest.raises(FormulaError, match="constant L="):
        compute_indices(ds, ["SAVI"], L=value)  # type: ignore[arg-type]


def test_unknown_constant_and_missing_constant() -> None:
    ds = sensor_dataset("kazeosat1", shape=(2, 2))
    with pytest.raises(FormulaError, match="unknown constant"):
        compute_indices(ds, ["NDVI"], Lx=0.5)
    compute_indices(ds, ["NDVI"], L=0.5)  # a known ASI constant the set does not use is fine
    with pytest.raises(FormulaError, match="PAR"):
        compute_indices(ds, ["NIRvP"])
    assert list(compute_indices(ds, ["NDVI", "ndvi", "EVI"]).data_vars) == ["NDVI", "EVI"]
    with pytest.raises(FormulaError, match="names must be"):
        compute_indices(ds, 3)  # type: ignore[arg-type]


def test_generic_common_names_resolved_by_wavelength() -> None:
    """Older STAC items call all three Sentinel-2 red edges 'rededge': wavelengths decide."""
    cands = [
        BandCandidate("B05", "rededge", 0.704),
        BandCandidate("B06", "rededge", 0.740),
        BandCandidate("B07", "rededge", 0.783),
        BandCandidate("B08", "nir", 0.833),
        BandCandidate("B10", "lwir11", 10.9),
    ]
    got = {
        s: c.key for s, c in resolve_symbols(["RE1", "RE2", "RE3", "N", "T", "N2"], cands).items()
    }
    assert got == {"RE1": "B05", "RE2": "B06", "RE3": "B07", "N": "B08", "T": "B10"}
    # without wavelengths only a sole family member is taken
    bare = [BandCandidate(c.key, c.common_name, None) for c in cands]
    got = {s: c.key for s, c in resolve_symbols(["RE1", "T"], bare).items()}
    assert got == {"T": "B10"}

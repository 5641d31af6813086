"""Spectral indices on xarray objects: every Awesome Spectral Index, many in one fused pass.

:func:`compute_indices` takes ASI short names (``["NDVI", "EVI"]``) or custom formulas
(``{"MY": "(N - R) / (N + R + 0.5)"}``), finds each band by its STAC common name (the
variable's ``common_name`` attribute, else its name; ASI symbols such as ``N`` work as
variable names too), compiles all formulas into ONE numba kernel
(:mod:`eo_pipeline.kernels.indices`) and applies it lazily, once per chunk, through
:func:`eo_pipeline.steps.dispatch.apply_kernel`. :func:`available_indices` lists what a sensor
(or dataset) can compute.

Examples
--------
>>> import numpy as np, xarray as xr
>>> ds = xr.Dataset({
...     "B4": ("x", np.array([0.1, 0.2], np.float32), {"common_name": "red"}),
...     "B8": ("x", np.array([0.5, 0.2], np.float32), {"common_name": "nir"}),
... })
>>> out = compute_indices(ds, ["NDVI", "SAVI"], L=0.5)
>>> out.NDVI.values, out.NDVI.dtype
(array([0.6666667, 0.       ], dtype=float32), dtype('float32'))
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from eo_pipeline.errors import BandError, FormulaError, InputDataError, UnknownIndexError
from eo_pipeline.kernels.indices import FormulaSyntaxError, FusedKernel, normalise, parse_formula
from eo_pipeline.steps.dispatch import apply_kernel
from eo_pipeline.steps.index_catalog import (
    BandCandidate,
    IndexDefinition,
    catalog,
    resolve_symbols,
)

if TYPE_CHECKING:
    from eo_pipeline.catalogs.sensors import Sensor

__all__ = ["IndexDefinition", "available_indices", "compute_indices", "get_index"]

# ASI constants that are band centre wavelengths (nm), filled from the resolved band.
_WAVELENGTH_CONSTANTS = {f"lambda{s}": s for s in ("G", "N", "N2", "R", "S1", "S2")}


def get_index(name: str) -> IndexDefinition:
    """The definition of an ASI index by short name (case-insensitive when unambiguous).

    Examples
    --------
    >>> d = get_index("evi")
    >>> d.short_name, d.bands, d.constants, d.domain
    ('EVI', ('N', 'R', 'B'), ('g', 'C1', 'C2', 'L'), 'vegetation')
    """
    return catalog().get(name)


def _sensor_candidates(sensor: str | Sensor) -> list[BandCandidate]:
    from eo_pipeline.catalogs import sensors

    s = sensors.get(sensor) if isinstance(sensor, str) else sensor
    return [BandCandidate(b.id, b.common_name, b.center_wavelength) for b in s.bands]


def _scalar_attr(value: Any) -> float | None:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    return (
        float(arr.reshape(-1)[0]) if arr.size >= 1 and np.all(arr == arr.reshape(-1)[0]) else None
    )


def _dataset_candidates(ds: xr.Dataset) -> list[BandCandidate]:
    out = []
    for name, var in ds.data_vars.items():
        cn = var.attrs.get("common_name") or var.attrs.get("eo:common_name")
        wl = (
            _scalar_attr(var.attrs["center_wavelength"])
            if "center_wavelength" in var.attrs
            else None
        )
        out.append(BandCandidate(str(name), str(cn) if cn else None, wl))
    return out


def available_indices(
    sensor: str | Sensor | xr.Dataset | None = None,
    *,
    domain: str | None = None,
    constants: Iterable[str] = (),
) -> list[str]:
    """ASI short names ``sensor`` can compute (all known indices when ``None``).

    An index is offered when the sensor has its bands and every constant it needs has a
    value: an ASI default (``L``, ``g``, ``sigma``...), a band centre wavelength
    (``lambdaN``...), or a name in ``constants``. Indices needing a constant with no default
    (NIRvP needs ``PAR``, photosynthetically active radiation) are offered only when that
    constant is named; :func:`compute_indices` without it raises a :class:`FormulaError`
    naming it. Kernel indices (kNDVI, kEVI, kIPVI, kRVI, kVARI) use the RBF kernel with
    spyndex's length scale ``sigma`` (0.5 unless given).

    Parameters
    ----------
    sensor
        A sensor name (``"sentinel2a"``), a :class:`~eo_pipeline.catalogs.sensors.Sensor`,
        or a Dataset whose variables carry ``common_name`` attributes.
    domain
        Keep only one application domain (``vegetation``, ``water``, ``burn``, ``urban``,
        ``snow``, ``soil``, ``clouds``, ``kernel``...).
    constants
        Names of constants the caller will pass (``["PAR"]``).

    Examples
    --------
    >>> "NDVI" in available_indices(), "NDWI" in available_indices(domain="water")
    (True, True)
    >>> "NIRvP" in available_indices("landsat8"), "NIRvP" in available_indices("landsat8", constants=["PAR"])
    (False, True)
    """
    cat = catalog()
    given = set(constants)

    def valued(c: str) -> bool:
        return c in given or c in _WAVELENGTH_CONSTANTS or cat.constants[c].default is not None

    defs = [d for d in cat.indices.values() if domain is None or d.domain == domain]
    if domain is not None and not defs:
        domains = sorted({d.domain for d in cat.indices.values()})
        raise UnknownIndexError(f"unknown domain {domain!r}; domains: {', '.join(domains)}")
    defs = [d for d in defs if all(valued(c) for c in d.constants)]
    if sensor is None:
        return sorted(d.short_name for d in defs)
    cands = (
        _dataset_candidates(sensor)
        if isinstance(sensor, xr.Dataset)
        else _sensor_candidates(sensor)
    )
    symbols = {b for d in defs for b in d.bands}
    resolved = resolve_symbols(symbols, cands)
    return sorted(d.short_name for d in defs if all(b in resolved for b in d.bands))


def _as_dataset(obj: xr.Dataset | xr.DataArray) -> xr.Dataset:
    if isinstance(obj, xr.Dataset):
        return obj
    if not isinstance(obj, xr.DataArray) or "band" not in obj.dims:
        raise InputDataError(
            "compute_indices needs an xarray.Dataset of band variables or a DataArray with a "
            f"'band' dimension, got {type(obj).__name__}"
            + (f" with dims {obj.dims}" if isinstance(obj, xr.DataArray) else "")
        )
    band_coords = [k for k, c in obj.coords.items() if c.dims == ("band",)]
    common = obj.coords["common_name"].values if "common_name" in obj.coords else None
    data_vars = {}
    for i, label in enumerate(obj["band"].values):
        var = obj.isel(band=i).drop_vars(band_coords, errors="ignore")
        attrs = dict(obj.attrs)
        if common is not None and common[i]:
            attrs["common_name"] = str(common[i])
        data_vars[str(label)] = var.assign_attrs(attrs)
    return xr.Dataset(data_vars, attrs=obj.attrs)


def _requests(names: str | Sequence[str] | Mapping[str, str]) -> list[IndexDefinition]:
    if isinstance(names, str):
        names = [names]
    if isinstance(names, Mapping):
        out = []
        for key, formula in names.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise FormulaError(f"custom index name {key!r} must be an identifier such as 'MY'")
            if not isinstance(formula, str):
                raise FormulaError(
                    f"custom index {key!r}: the formula must be a string, got {type(formula).__name__}"
                )
            out.append(
                IndexDefinition(
                    short_name=key,
                    long_name=f"custom index {key}",
                    formula=formula,
                    bands=(),
                    constants=(),
                    reference="",
                    domain="custom",
                )
            )
        return out
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise FormulaError(
            "names must be an index name, a list of names, or a dict {name: formula}, "
            f"got {names!r}"
        )
    cat = catalog()
    unique: dict[str, IndexDefinition] = {}
    for n in names:  # a name asked twice is computed once
        d = cat.get(n)
        unique.setdefault(d.short_name, d)
    return list(unique.values())


def _check_constant(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise FormulaError(
            f"constant {name}={value!r} must be a real number (int or float), "
            f"got {type(value).__name__}"
        )
    v = float(value)
    if not math.isfinite(v):
        raise FormulaError(f"constant {name}={value!r} must be finite")
    return v


def _band_error(symbol: str, index: str, cands: Sequence[BandCandidate]) -> BandError:
    cat = catalog()
    sym = cat.bands.get(symbol)
    need = (
        f"{sym.common_name!r} (ASI symbol {symbol!r}, {sym.long_name}, {sym.min_wavelength:g}-{sym.max_wavelength:g} nm)"
        if sym
        else repr(symbol)
    )
    has = ", ".join(f"{c.key} ({c.common_name or 'no common_name'})" for c in cands) or "nothing"
    return BandError(
        f"index {index} needs band {need}; the dataset has {has}. Set the variable's "
        "'common_name' attribute, or name the variable after the common name"
    )


def compute_indices(
    ds: xr.Dataset | xr.DataArray,
    names: str | Sequence[str] | Mapping[str, str],
    **constants: float,
) -> xr.Dataset:
    """Compute spectral indices in one fused pass per chunk (lazy when dask-backed).

    Parameters
    ----------
    ds
        Reflectance bands (float32 preferred): a Dataset whose variables carry a
        ``common_name`` attribute (or are named by common name or ASI symbol), or a DataArray
        with a ``band`` dimension (a ``common_name`` coordinate along it is used).
    names
        ASI short names (``"NDVI"`` or ``["NDVI", "EVI"]``) or a dict of custom formulas
        ``{"MY": "(N - R) / (N + R + 0.5)"}`` over ASI symbols, common names or variable names.
    **constants
        Values for formula constants (``L=0.5``, ``g=2.5``...); ASI defaults otherwise.
        Wavelength constants (``lambdaN``...) default to the band's ``center_wavelength``.

    Returns
    -------
    xarray.Dataset
        One float32 variable per index, with ``long_name``, ``formula``, ``reference``,
        ``units`` and ``application_domain`` attributes; coordinates and dataset attributes kept.
        Division by zero and non-finite results are NaN; NaN inputs give NaN.

    Raises
    ------
    UnknownIndexError, BandError, FormulaError

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"nir": ("x", np.float32([0.5])), "red": ("x", np.float32([0.1]))})
    >>> compute_indices(ds, {"MY": "(N - R) / (N + R + 0.5)"}).MY.values
    array([0.36363637], dtype=float32)
    """
    data = _as_dataset(ds)
    defs = _requests(names)
    cat = catalog()
    cands = _dataset_candidates(data)
    parsed: list[tuple[IndexDefinition, tuple[str, ...]]] = []
    for d in defs:
        try:
            _, used = parse_formula(d.formula)
        except FormulaSyntaxError as err:
            raise FormulaError(f"index {d.short_name}: {err}") from None
        parsed.append((d, used))
    all_names = {n for _, used in parsed for n in used}
    unknown_kw = sorted(set(constants) - all_names - set(cat.constants))
    if unknown_kw:
        raise FormulaError(
            f"unknown constant(s) {', '.join(unknown_kw)}: not used by "
            f"{', '.join(d.short_name for d in defs)} and not an ASI constant "
            f"({', '.join(sorted(cat.constants))})"
        )
    values = {k: _check_constant(k, v) for k, v in constants.items()}
    resolved = resolve_symbols(
        [n for n in sorted(all_names) if n not in values and n not in cat.constants], cands
    )
    var_order: list[str] = []
    const_order: list[str] = []
    const_values: list[float] = []
    formulas: list[str] = []
    for d, used in parsed:
        mapping: dict[str, str] = {}
        for n in used:
            if n in values or n in cat.constants:
                if n not in const_order:
                    const_order.append(n)
                    const_values.append(_constant_value(n, d, values, resolved, cands))
                mapping[n] = f"c{const_order.index(n)}"
            elif n in resolved:
                key = resolved[n].key
                if key not in var_order:
                    var_order.append(key)
                mapping[n] = f"b{var_order.index(key)}"
            elif n in cat.bands or any(b.common_name == n for b in cat.bands.values()):
                raise _band_error(n, d.short_name, cands)
            else:
                raise FormulaError(
                    f"index {d.short_name}: name {n!r} in {d.formula!r} is neither a band of the "
                    f"dataset ({', '.join(c.key for c in cands)}), an ASI band symbol "
                    f"({', '.join(cat.bands)}), nor a constant; pass {n}=<number> for a constant"
                )
        formulas.append(normalise(d.formula, mapping))
    if not var_order:
        raise FormulaError(
            f"{', '.join(d.short_name for d in defs)}: a formula must read at least one band"
        )
    kernel = FusedKernel(tuple(formulas), len(var_order), len(const_order))
    result = apply_kernel(
        _run_kernel,
        *(data[k] for k in var_order),
        output_dtypes=[np.float32] * len(defs),
        kwargs={"kernel": kernel, "constants": tuple(const_values)},
        name="indices",
    )
    outputs = result if isinstance(result, tuple) else (result,)
    used_constants = dict(zip(const_order, const_values, strict=True))
    out_vars = {}
    for (d, used), arr in zip(parsed, outputs, strict=True):
        attrs = {
            "long_name": d.long_name,
            "formula": d.formula,
            "reference": d.reference,
            "units": "1",
            "application_domain": d.domain,
            "bands": ", ".join(f"{n}={resolved[n].key}" for n in used if n in resolved),
        }
        consts = {n: used_constants[n] for n in used if n in used_constants}
        if consts:
            attrs["constants"] = ", ".join(f"{k}={v:g}" for k, v in consts.items())
        if d.source != "custom":
            attrs["source"] = f"Awesome Spectral Indices via {d.source}"
        arr.attrs = attrs
        out_vars[d.short_name] = arr
    return xr.Dataset(out_vars, attrs=dict(data.attrs))


def _run_kernel(
    *arrays: np.ndarray, kernel: FusedKernel, constants: Sequence[float]
) -> np.ndarray | tuple[np.ndarray, ...]:
    outs = kernel(*arrays, constants=constants)
    return outs[0] if len(outs) == 1 else outs


def _constant_value(
    name: str,
    d: IndexDefinition,
    given: Mapping[str, float],
    resolved: Mapping[str, BandCandidate],
    cands: Sequence[BandCandidate],
) -> float:
    if name in given:
        return given[name]
    cat = catalog()
    if name in _WAVELENGTH_CONSTANTS:
        symbol = _WAVELENGTH_CONSTANTS[name]
        band = resolved.get(symbol) or resolve_symbols([symbol], cands).get(symbol)
        if band is not None and band.center_wavelength is not None:
            return band.center_wavelength * 1000.0
        raise FormulaError(
            f"index {d.short_name} needs {name} (centre wavelength of ASI band {symbol}, nm): "
            f"the dataset's band has no 'center_wavelength' attribute; pass {name}=<nm>"
        )
    const = cat.constants[name]
    if const.default is None:
        raise FormulaError(
            f"index {d.short_name} needs constant {name} ({const.description}), which has no "
            f"default; pass {name}=<number>"
        )
    return const.default

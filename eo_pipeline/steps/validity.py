"""What a sold product may contain: masked pixels, physical reflectance, index valid ranges.

Three rules, applied by the workflow runner to every product (and usable on their own):

1. **Masked by default.** :func:`apply_mask` sets reflectance and index pixels to NaN where
   the scene's mask (:data:`eo_pipeline.kernels.masks.MASK_BITS`) has any of the chosen flags,
   by default :data:`DEFAULT_EXCLUDE` (nodata, cloud, shadow, cirrus, saturated). Snow and
   water describe the surface and are never excluded by default.
2. **Physical reflectance.** :data:`VALID_REFLECTANCE` is ``[-0.01, 1.6]``:

   - *lower bound -0.01*: reflectance cannot be negative, but sensor noise and atmospheric
     correction over dark targets (deep water, shadow) give small negative values that are
     measurements, not errors. On the real Landsat 8 C2 L2 scene of the tests, -0.01 keeps
     the dark-water tail and flags the rest; USGS states the L2 surface-reflectance valid range
     as DN 7273-43636, i.e. [0.0, 1.0] - below 0 by more than the 1 % absolute accuracy
     of the correction is not a surface;
   - *upper bound 1.6*: fresh snow and bright cloud tops reach 1.0-1.3 in TOA reflectance,
     more at low sun where the 1/cos(zenith) correction amplifies (and specular glint); 1.6
     leaves that physical headroom and still flags detector artefacts and mis-scaled data
     (a DN scaled twice, a missing offset).

   :func:`flag_out_of_range` sets the mask's bit 6 (``saturated``, whose meaning is
   "radiometrically unusable: saturated, or reflectance outside the physical range") where a
   band is outside it, and clears ``clear``; the product's reflectance is then NaN there.
3. **Indices by construction.** :func:`index_inputs` gives index formulas only reflectance in
   ``[0, 1.6]``: values outside :data:`VALID_REFLECTANCE` are NaN, values in ``[-0.01, 0)``
   (the noise tolerance) count as 0, the physical bound. A normalized difference
   ``(a - b) / (a + b)`` of two non-negative numbers is within [-1, 1] without clipping;
   :func:`index_range` derives each index's range by evaluating its formula over that input
   box (all corners and a grid), so SAVI with L = 0.5 is documented as [-1.1429, 1.1429].
   Formulas whose denominator can reach zero inside the box (EVI: ``N + 6R - 7.5B + 1``, zero
   for bright blue such as haze and snow) have no finite range there; they take the range the
   field documents (:data:`DOCUMENTED_RANGES`, EVI [-1, 1] as in the USGS Landsat spectral
   indices) and values outside it are NaN (a near-zero denominator, not a vegetation signal).
   The index kernel itself gives NaN for denominators below 1e-6 in magnitude.

Examples
--------
>>> r = index_range("(N - R)/(N + R)", ("N", "R"), {})
>>> (r.minimum, r.maximum, r.how)
(-1.0, 1.0, 'by construction')
>>> index_range("(1.0 + L) * (N - R) / (N + R + L)", ("N", "R"), {"L": 0.5}).maximum
1.1429
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from eo_pipeline.errors import WorkflowError
from eo_pipeline.kernels import masks as k

__all__ = [
    "DEFAULT_EXCLUDE",
    "DOCUMENTED_RANGES",
    "VALID_REFLECTANCE",
    "IndexRange",
    "apply_mask",
    "flag_out_of_range",
    "guard_index",
    "index_inputs",
    "index_range",
    "mask_bits",
    "ranges_of",
]

VALID_REFLECTANCE: tuple[float, float] = (-0.01, 1.6)
"""Physical range of TOA and surface reflectance products (see the module docstring)."""

DEFAULT_EXCLUDE: tuple[str, ...] = ("nodata", "cloud", "shadow", "cirrus", "saturated")
"""Mask flags that make a product pixel NaN unless the workflow says otherwise."""

DOCUMENTED_RANGES: dict[str, tuple[float, float, str]] = {
    "EVI": (-1.0, 1.0, "USGS Landsat C2 spectral indices valid range -10000..10000 x 1e-4"),
    "EVI2": (-1.0, 1.0, "as EVI (Jiang et al. 2008, two-band EVI)"),
}
"""Ranges of indices unbounded over the reflectance box (their denominator can reach zero)."""

_GRID = 9
"""Grid points per band when an index's range is derived (plus the exact corners)."""
_MAX_BANDS = 5
"""Indices reading more bands than this get no derived range (9^6 evaluations)."""
_BOUNDED = 100.0
"""A formula whose values over the box exceed this magnitude is treated as unbounded."""


@dataclass(frozen=True)
class IndexRange:
    """The valid range of one index product."""

    minimum: float
    maximum: float
    how: str
    """``by construction`` (derived from the input box, no pixel can fall outside) or
    ``documented: <source>`` (pixels outside are set to NaN)."""

    @property
    def guarded(self) -> bool:
        """True when values outside the range must be set to NaN."""
        return self.how != "by construction"


def mask_bits(names: Sequence[str], where: str = "mask.exclude") -> int:
    """The uint8 bit set of flag ``names`` (``nodata`` is always included).

    >>> mask_bits(["cloud", "shadow"])
    7
    """
    bits = {n: b for b, n, _ in k.MASK_BITS}
    out = k.NODATA
    for name in names:
        if name not in bits or name == "clear":
            allowed = ", ".join(n for n in bits if n != "clear")
            raise WorkflowError(f"{where}: unknown mask flag {name!r}; flags are {allowed}")
        out |= 1 << bits[name]
    return out


def flag_out_of_range(
    mask: xr.DataArray,
    bands: xr.Dataset,
    valid: tuple[float, float] = VALID_REFLECTANCE,
) -> xr.DataArray:
    """Set the ``saturated`` bit (and clear ``clear``) where any band is outside ``valid``.

    NaN band values are not flagged (they are nodata or already masked). Lazy with dask;
    the mask's attrs are kept and its bit 6 description says it includes the range test.
    """
    lo, hi = valid
    bad = None
    for name in bands.data_vars:
        v = bands[name]
        out = (v < lo) | (v > hi)
        bad = out if bad is None else (bad | out)
    if bad is None:
        return mask
    if "time" in mask.dims and "time" not in bad.dims:
        bad = bad.expand_dims(time=mask["time"])
    flagged = (mask | np.uint8(k.SATURATED)) & np.uint8(0xFF ^ k.CLEAR)
    nodata = (mask & np.uint8(k.NODATA)) != 0
    out = xr.where(bad.transpose(*mask.dims) & ~nodata, flagged, mask).astype(np.uint8)
    out.attrs = dict(mask.attrs)
    out.attrs["valid_reflectance"] = list(valid)
    out.name = mask.name
    return out


def apply_mask(ds: xr.Dataset, mask: xr.DataArray, exclude: Sequence[str]) -> xr.Dataset:
    """NaN where ``mask`` has any flag of ``exclude`` (``nodata`` always); attrs kept."""
    bits = np.uint8(mask_bits(exclude))
    keep = (mask & bits) == 0
    out = ds.copy()
    for name in ds.data_vars:
        v = ds[name]
        m = keep
        if "time" in m.dims and "time" not in v.dims:
            m = m.isel(time=0, drop=True) if m.sizes["time"] == 1 else m
        out[name] = v.where(m).astype(v.dtype).assign_attrs(v.attrs)
    return out


def index_inputs(ds: xr.Dataset, valid: tuple[float, float] = VALID_REFLECTANCE) -> xr.Dataset:
    """Reflectance as index formulas get it: NaN outside ``valid``, ``[lo, 0)`` -> 0."""
    lo, hi = valid
    out = ds.copy()
    for name in ds.data_vars:
        v = ds[name]
        inside = (v >= lo) & (v <= hi)
        floored = v.where(v >= 0, v.dtype.type(0))
        out[name] = floored.where(inside).astype(v.dtype).assign_attrs(v.attrs)
    return out


@functools.lru_cache(maxsize=256)
def _derived(
    formula: str, symbols: tuple[str, ...], constants: tuple[tuple[str, float], ...], hi: float
) -> tuple[float, float] | None:
    """Min and max of ``formula`` over ``[0, hi]`` per band: a grid with the corners and
    the first quantisation step, plus seeded random points (which land close to any
    zero-crossing of a denominator); ``None`` when some value exceeds :data:`_BOUNDED`."""
    from eo_pipeline.kernels.indices import FusedKernel

    if not symbols or len(symbols) > _MAX_BANDS:
        return None
    axis = np.unique(np.concatenate([np.linspace(0.0, hi, _GRID), [1e-4, hi]]))
    grid = [g.reshape(-1) for g in np.meshgrid(*[axis] * len(symbols))]
    rand = np.random.default_rng(0).uniform(0.0, hi, (len(symbols), 20000))
    inputs = [np.concatenate([g, r]).astype(np.float32) for g, r in zip(grid, rand, strict=True)]
    kernel = FusedKernel.from_formulas([formula], list(symbols), [c for c, _ in constants])
    (values,) = kernel(*inputs, constants=[v for _, v in constants], threads=1)
    finite = values[np.isfinite(values)].astype(np.float64)
    if not finite.size or np.abs(finite).max() > _BOUNDED:
        return None
    on_grid = values[: grid[0].size]
    on_grid = on_grid[np.isfinite(on_grid)].astype(np.float64)
    lo, hi_v = finite.min(), finite.max()
    # an extreme found only between grid points is a sample of an interior extremum:
    # widen that end by 1 % of the span so no pixel can fall outside
    pad = 0.01 * (hi_v - lo)
    if not on_grid.size or lo < on_grid.min():
        lo -= pad
    if not on_grid.size or hi_v > on_grid.max():
        hi_v += pad
    return float(np.floor(lo * 1e4) / 1e4), float(np.ceil(hi_v * 1e4) / 1e4)


def index_range(
    formula: str,
    symbols: Sequence[str],
    constants: Mapping[str, float],
    name: str | None = None,
    valid: tuple[float, float] = VALID_REFLECTANCE,
) -> IndexRange | None:
    """The valid range of an index over reflectance in ``[0, valid[1]]``, or ``None``.

    ``symbols`` are the band names the formula reads, ``constants`` the values used. Bounded
    formulas get their range by construction; unbounded ones their documented range when
    :data:`DOCUMENTED_RANGES` has ``name``, else ``None`` (no range is claimed).
    """
    derived = _derived(
        formula,
        tuple(symbols),
        tuple(sorted((k, float(v)) for k, v in constants.items())),
        valid[1],
    )
    if derived is not None:
        return IndexRange(derived[0], derived[1], "by construction")
    if name in DOCUMENTED_RANGES:
        lo, hi, source = DOCUMENTED_RANGES[name]
        return IndexRange(lo, hi, f"documented: {source}")
    return None


def guard_index(da: xr.DataArray, rng: IndexRange | None) -> xr.DataArray:
    """NaN outside a documented (not by-construction) range; unchanged otherwise."""
    if rng is None or not rng.guarded:
        return da
    return da.where((da >= rng.minimum) & (da <= rng.maximum)).assign_attrs(da.attrs)


def ranges_of(
    idx: xr.Dataset, valid: tuple[float, float] = VALID_REFLECTANCE
) -> dict[str, IndexRange | None]:
    """:func:`index_range` of every variable of a :func:`~eo_pipeline.compute_indices` result
    (read from its ``formula``, ``bands`` and ``constants`` attrs)."""
    out: dict[str, IndexRange | None] = {}
    for name, var in idx.data_vars.items():
        a = var.attrs
        symbols = [p.split("=")[0].strip() for p in str(a.get("bands", "")).split(",") if "=" in p]
        consts = {
            p.split("=")[0].strip(): float(p.split("=")[1])
            for p in str(a.get("constants", "")).split(",")
            if "=" in p
        }
        out[str(name)] = index_range(str(a.get("formula", "")), symbols, consts, str(name), valid)
    return out

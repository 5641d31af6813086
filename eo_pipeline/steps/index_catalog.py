"""Spectral-index definitions as data, read at run time from the installed ``spyndex`` package.

Awesome Spectral Indices (ASI, https://github.com/awesome-spectral-indices) publishes every
index as JSON (formula, band symbols, reference, application domain); ``spyndex`` ships that
JSON. This module reads the bundled files (never spyndex's code) into frozen dataclasses and
resolves ASI band symbols (``N``, ``R``, ``RE1``...) to the bands of a sensor or the variables
of a dataset through their STAC common names and centre wavelengths.

Symbol -> band resolution, in order:

1. a band whose ``common_name`` equals the symbol's ASI common name (``N`` -> ``nir``);
2. a band with no common name whose name is that common name or the symbol itself;
3. a band of the same common-name family (``nir08`` for ``nir``, ``rededge`` for
   ``rededge071``, ``lwir11`` for ``lwir``) whose centre wavelength lies in the symbol's ASI
   wavelength range (the closest to the range's centre wins; without a known wavelength only
   a sole family member is taken). Landsat OLI's ``B5`` (``nir08``, 0.865 um) thus serves
   ``N`` as well as ``N2``, as ASI itself lists NDVI for Landsat OLI.

Examples
--------
>>> cat = catalog()
>>> cat.indices["NDVI"].bands, cat.bands["N"].common_name
(('N', 'R'), 'nir')
>>> cands = [BandCandidate("B5", "nir08", 0.865), BandCandidate("B4", "red", 0.655)]
>>> {k: v.key for k, v in resolve_symbols(("N", "R"), cands).items()}
{'N': 'B5', 'R': 'B4'}
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from eo_pipeline.errors import UnknownIndexError

__all__ = [
    "BandCandidate",
    "BandSymbol",
    "ConstantDef",
    "IndexCatalog",
    "IndexDefinition",
    "catalog",
    "resolve_symbols",
]


@dataclass(frozen=True)
class BandSymbol:
    """An ASI band symbol and the spectral range it stands for."""

    symbol: str
    """ASI symbol used in formulas (``N``, ``RE1``, ``S1``...)."""
    common_name: str
    """STAC eo common name (``nir``, ``rededge071``, ``swir16``...)."""
    long_name: str
    """Human-readable name from ASI."""
    min_wavelength: float
    """Lower end of the ASI range in nanometres."""
    max_wavelength: float
    """Upper end of the ASI range in nanometres."""


@dataclass(frozen=True)
class ConstantDef:
    """A formula constant (``L``, ``g``, ``alpha``, ``lambdaN``...)."""

    symbol: str
    """Name used in formulas."""
    default: float | None
    """ASI default; ``None`` when the caller must give it (or it is a band wavelength)."""
    description: str
    """What the constant means."""


@dataclass(frozen=True)
class IndexDefinition:
    """One spectral index as data."""

    short_name: str
    """ASI short name (``NDVI``, ``EVI``...), also the output variable name."""
    long_name: str
    """Full name."""
    formula: str
    """Formula over ASI symbols, Python syntax (``(N - R) / (N + R)``)."""
    bands: tuple[str, ...]
    """ASI band symbols the formula reads (``('N', 'R')``)."""
    constants: tuple[str, ...]
    """Constants the formula uses (``('L',)``); defaults in :attr:`IndexCatalog.constants`."""
    reference: str
    """URL or DOI of the defining paper ('' for custom formulas)."""
    domain: str
    """Application domain: vegetation, water, burn, urban, snow, soil, clouds, radar, kernel."""
    platforms: tuple[str, ...] = ()
    """Platforms ASI lists the index for."""
    source: str = "custom"
    """Where the definition comes from (``spyndex <version>`` or ``custom``)."""
    asi_formula: str = ""
    """The formula as ASI writes it, when :attr:`formula` expands kernel symbols (kNDVI...)."""

    @property
    def common_names(self) -> tuple[str, ...]:
        """STAC common names of :attr:`bands` (symbols ASI does not map stay as they are)."""
        cat = catalog()
        return tuple(cat.bands[b].common_name if b in cat.bands else b for b in self.bands)


@dataclass(frozen=True)
class IndexCatalog:
    """All ASI definitions, band symbols and constants of the installed spyndex."""

    indices: Mapping[str, IndexDefinition]
    """Index definitions by short name."""
    bands: Mapping[str, BandSymbol]
    """Band symbols by symbol."""
    constants: Mapping[str, ConstantDef]
    """Constants by symbol."""
    version: str
    """spyndex version the data came from."""

    def get(self, name: str) -> IndexDefinition:
        """A definition by short name (exact, else case-insensitive if unique).

        Raises :class:`UnknownIndexError` listing close names.
        """
        if name in self.indices:
            return self.indices[name]
        folded = [k for k in self.indices if k.lower() == name.lower()]
        if len(folded) == 1:
            return self.indices[folded[0]]
        import difflib

        close = difflib.get_close_matches(name, list(self.indices), n=6, cutoff=0.6)
        close += [k for k in folded if k not in close]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownIndexError(
            f"unknown spectral index {name!r}{hint} ({len(self.indices)} indices of Awesome "
            "Spectral Indices are known; eo_pipeline.available_indices() lists them, and "
            "custom formulas go in a dict: {'MY': '(N - R) / (N + R)'})"
        )


def _spyndex_data() -> tuple[Path, str]:
    spec = importlib.util.find_spec("spyndex")
    if spec is None or spec.origin is None:
        raise ImportError(
            "spectral-index definitions come from the 'spyndex' package; install it with "
            "'pip install spyndex'"
        )
    return Path(spec.origin).parent / "data", importlib.metadata.version("spyndex")


@functools.cache
def catalog() -> IndexCatalog:
    """The index catalogue of the installed spyndex (read once per process)."""
    data, version = _spyndex_data()
    raw_bands = json.loads((data / "bands.json").read_text(encoding="utf-8"))
    raw_consts = json.loads((data / "constants.json").read_text(encoding="utf-8"))
    raw_indices = json.loads((data / "spectral-indices-dict.json").read_text(encoding="utf-8"))
    bands = {
        k: BandSymbol(
            symbol=k,
            common_name=v["common_name"],
            long_name=v.get("long_name", k),
            min_wavelength=float(v["min_wavelength"]),
            max_wavelength=float(v["max_wavelength"]),
        )
        for k, v in raw_bands.items()
    }
    constants = {
        k: ConstantDef(
            symbol=k,
            default=None if v.get("default") is None else float(v["default"]),
            description=v.get("description", ""),
        )
        for k, v in raw_consts.items()
    }
    indices = {}
    for name, v in raw_indices["SpectralIndices"].items():
        formula, symbols = _expand_kernels(v["formula"], tuple(v["bands"]), bands, constants)
        indices[name] = IndexDefinition(
            short_name=name,
            long_name=v.get("long_name", name),
            formula=formula,
            asi_formula=v["formula"] if formula != v["formula"] else "",
            bands=tuple(s for s in symbols if s not in constants),
            constants=tuple(s for s in symbols if s in constants),
            reference=v.get("reference", ""),
            domain=v.get("application_domain", ""),
            platforms=tuple(v.get("platforms", ())),
            source=f"spyndex {version}",
        )
    return IndexCatalog(
        indices=MappingProxyType(indices),
        bands=MappingProxyType(bands),
        constants=MappingProxyType(constants),
        version=version,
    )


_KERNEL_SYMBOL = re.compile(r"^k([A-Z])([A-Z])$")


def _expand_kernels(
    formula: str,
    symbols: tuple[str, ...],
    bands: Mapping[str, BandSymbol],
    constants: Mapping[str, ConstantDef],
) -> tuple[str, tuple[str, ...]]:
    """ASI kernel symbols (``kNR``...) as the RBF kernel of their two symbols.

    ASI's kernel indices (kNDVI, kEVI, kIPVI, kRVI, kVARI; Camps-Valls et al. 2021) take
    kernel values ``kAB = k(A, B)`` as inputs. Like spyndex's ``computeKernel("RBF", ...)``,
    ``k(a, b) = exp(-(a - b)**2 / (2 * sigma**2))`` with the length scale ``sigma`` a constant
    (spyndex's ``constants.json`` default 0.5, or the caller's ``sigma=``); ``A``/``B`` are ASI
    band symbols or constants (``kNL``: N and the canopy background constant ``L``).
    Formulas without kernel symbols come back unchanged.
    """
    out = list(symbols)
    for sym in symbols:
        m = _KERNEL_SYMBOL.match(sym)
        if sym in bands or sym in constants or m is None:
            continue
        a, b = m.groups()
        if not all(x in bands or x in constants for x in (a, b)):
            continue
        rbf = f"exp(-((({a}) - ({b})) ** 2) / (2 * sigma ** 2))"
        formula = re.sub(rf"\b{sym}\b", f"({rbf})", formula)
        out.remove(sym)
        out.extend(x for x in (a, b, "sigma") if x not in out)
    return formula, tuple(out)


@dataclass(frozen=True)
class BandCandidate:
    """A band of a sensor or a variable of a dataset, as seen by symbol resolution."""

    key: str
    """Band id or variable name."""
    common_name: str | None
    """STAC common name, if known."""
    center_wavelength: float | None
    """Centre wavelength in micrometres, if known."""


def _family(common_name: str) -> str:
    return re.sub(r"\d+$", "", common_name)


def _resolve_one(name: str, candidates: Sequence[BandCandidate]) -> BandCandidate | None:
    cat = catalog()
    sym = cat.bands.get(name)
    if sym is None:  # a common name used directly in a custom formula?
        sym = next((b for b in cat.bands.values() if b.common_name == name), None)
    if sym is None:  # not an ASI band: a variable called exactly so
        return next((c for c in candidates if c.key == name), None)
    exact = [c for c in candidates if c.common_name == sym.common_name]
    if exact:
        return exact[0]
    named = [
        c
        for c in candidates
        if c.common_name is None and c.key in (sym.common_name, sym.symbol, name)
    ]
    if named:
        return named[0]
    family = [
        c
        for c in candidates
        if c.common_name is not None and _family(c.common_name) == _family(sym.common_name)
    ]
    lo, hi = sym.min_wavelength / 1000.0, sym.max_wavelength / 1000.0
    in_range = [
        c for c in family if c.center_wavelength is not None and lo <= c.center_wavelength <= hi
    ]
    if in_range:
        mid = 0.5 * (lo + hi)
        return min(in_range, key=lambda c: abs(c.center_wavelength - mid))  # type: ignore[operator]
    unknown = [c for c in family if c.center_wavelength is None]
    if len(family) == 1 and unknown:
        return unknown[0]
    return None


def resolve_symbols(
    symbols: Iterable[str], candidates: Sequence[BandCandidate]
) -> dict[str, BandCandidate]:
    """Map each resolvable symbol (ASI symbol, common name or variable name) to a candidate.

    Symbols that no candidate serves are left out of the result.
    """
    out = {}
    for s in symbols:
        c = _resolve_one(s, candidates)
        if c is not None:
            out[s] = c
    return out

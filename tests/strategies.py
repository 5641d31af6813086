"""Hypothesis strategies shared by every property and fuzz test (one module, reused).

Arrays come in any byte order (``<``, ``>``), memory order (C, Fortran, strided views),
shape (zero-size, 1x1, odd sizes) and with the values that break code: NaN, +-inf, the
dtype's extremes, subnormals. Documents (STAC items, workflow files) are valid ones with
one field mutated into something odd.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "DN_DTYPES",
    "FLOAT_DTYPES",
    "any_layout",
    "dn_arrays",
    "float_arrays",
    "layouts",
    "mutated",
    "odd_values",
    "shapes",
]

FLOAT_DTYPES = ("f4", "f8")
DN_DTYPES = ("u1", "u2", "i2")


def shapes(min_dims: int = 2, max_dims: int = 3, max_side: int = 6) -> st.SearchStrategy[Any]:
    """Shapes with zero-size, 1x1 and small odd sides (at least ``min_dims`` dims)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side)


def _float_elements(dtype: np.dtype[Any]) -> st.SearchStrategy[float]:
    info = np.finfo(dtype)
    special = st.sampled_from(
        [np.nan, np.inf, -np.inf, 0.0, -0.0, float(info.max), float(-info.max), float(info.tiny)]
    )
    plain = st.floats(-2.0, 2.0, width=info.bits)
    return st.one_of(plain, plain, special)


def float_arrays(
    dtypes: tuple[str, ...] = FLOAT_DTYPES, shape: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[np.ndarray]:
    """Native-order float arrays with NaN, +-inf, extremes and ordinary reflectances."""
    return st.sampled_from(dtypes).flatmap(
        lambda dt: hnp.arrays(
            np.dtype(dt),
            shapes() if shape is None else shape,
            elements=_float_elements(np.dtype(dt)),
        )
    )


def dn_arrays(
    dtypes: tuple[str, ...] = DN_DTYPES, shape: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[np.ndarray]:
    """Native-order integer DN arrays, the dtype's minimum and maximum included."""

    def build(dt: str) -> st.SearchStrategy[np.ndarray]:
        info = np.iinfo(np.dtype(dt))
        elements = st.one_of(
            st.integers(int(info.min), int(info.max)), st.sampled_from([info.min, info.max, 0])
        )
        return hnp.arrays(np.dtype(dt), shapes() if shape is None else shape, elements=elements)

    return st.sampled_from(dtypes).flatmap(build)


def layouts() -> st.SearchStrategy[str]:
    """How an array is laid out in memory: byte order x memory order."""
    return st.sampled_from(["C", "F", "big", "big-F", "strided"])


def any_layout(arr: np.ndarray, layout: str) -> np.ndarray:
    """``arr``'s values in the given layout (same values, other bytes and strides)."""
    if layout in ("big", "big-F"):
        arr = arr.astype(arr.dtype.newbyteorder(">"))
    if layout in ("F", "big-F"):
        return arr.copy(order="F")
    if layout == "strided":  # a view with gaps: every second element of a doubled array
        wide = np.repeat(arr, 2, axis=-1) if arr.ndim else arr
        return wide[..., ::2] if arr.ndim else wide
    return arr.copy(order="C")  # ascontiguousarray would make a 0-d array 1-d


def odd_values() -> st.SearchStrategy[Any]:
    """JSON/YAML values of the wrong kind for almost any field."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    )


def mutated(doc: dict[str, Any], paths: list[tuple[str, ...]]) -> st.SearchStrategy[Any]:
    """``doc`` with one field (one of ``paths``) replaced by an odd value or removed."""

    def apply(path: tuple[str, ...], value: Any, remove: bool) -> dict[str, Any]:
        out = copy.deepcopy(doc)
        node: Any = out
        for key in path[:-1]:
            if not isinstance(node, dict) or key not in node:
                return out
            node = node[key]
        if isinstance(node, dict):
            if remove:
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
        return out

    return st.builds(apply, st.sampled_from(paths), odd_values(), st.booleans())

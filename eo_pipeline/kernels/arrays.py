"""What every kernel runner does to the arrays a caller hands it, before numba sees them.

numba compiles for native-byte-order arrays only (a big-endian ``>f4`` block is a typing
error deep inside the compiler), and ``reshape(-1, ny, nx)`` cannot infer ``-1`` when a
dimension is zero. Runners call :func:`native` on their inputs and :func:`leading` for the
flattened leading size, so neither failure can reach a user.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["leading", "native"]


def native(value: Any) -> np.ndarray:
    """``value`` as a numpy array in the machine's byte order (no copy when it already is).

    Examples
    --------
    >>> import numpy as np
    >>> native(np.array([1.5], dtype=">f4")).dtype.isnative
    True
    """
    arr = np.asarray(value)
    if arr.dtype.isnative:
        return arr
    return arr.astype(arr.dtype.newbyteorder("="))


def leading(shape: tuple[int, ...], core: int = 2) -> int:
    """Product of ``shape[:-core]`` (1 for no leading dims): what ``reshape(-1, ...)`` would infer.

    Examples
    --------
    >>> leading((3, 0, 5))
    3
    """
    return int(np.prod(shape[: len(shape) - core], dtype=np.int64))

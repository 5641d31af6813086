"""The first run says once that numba kernels are compiling; a warm cache says nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str, cache_dir: str) -> str:
    env_code = textwrap.dedent(code)
    out = subprocess.run(
        [sys.executable, "-c", env_code],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "NUMBA_CACHE_DIR": cache_dir},
    )
    return out.stderr


CODE = """
import numpy as np, xarray as xr
import eo_pipeline as eo
a = xr.DataArray(np.full((2, 4, 4), 0.3, np.float32), dims=("time", "y", "x"),
                 attrs={"common_name": "nir"})
b = a.copy(data=np.full((2, 4, 4), 0.1, np.float32)).assign_attrs(common_name="red")
ds = xr.Dataset({"N": a, "R": b}, coords={"time": np.array(["2026-01-01", "2026-01-04"], "datetime64[ns]")})
eo.compute_indices(ds, ["NDVI"]).compute()
eo.composite(ds, "median").compute()
"""


def test_first_run_notice_once_then_silent(tmp_path) -> None:
    first = _run(CODE, str(tmp_path))
    assert first.count("compiling numba kernels, first run only") == 1, first
    assert "cached afterwards" in first
    again = _run(CODE, str(tmp_path))
    assert "compiling numba kernels" not in again, again

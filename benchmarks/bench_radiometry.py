"""DN -> TOA reflectance: our fused numba kernel vs numpy, numexpr and the memory-copy limit.

One run, the same arrays for everyone (default 4 bands x 4000 x 4000 uint16, ~5% nodata):

- ``fused kernel``: :func:`eo_pipeline.kernels.radiometry.calibrate_block`
  (``rho = pi * (M*DN + A) * d^2 / (ESUN * cos(zenith))``, nodata/saturation -> NaN);
- ``numpy expression``: the same formula written as numpy expressions (float32, ``np.where``);
- ``numpy in-place``: a hand-tuned numpy version (one float32 temporary, in-place ops);
- ``numexpr``: the same expression through ``numexpr.evaluate`` (its default threads);
- ``numpy copy``: ``np.copyto(float32_out, uint16_in)``, moving exactly the bytes the kernel
  moves (uint16 in + float32 out): the memory-bandwidth reference;
- ``numba parallel cast``: the same copy with our threads, for reference.

The JIT compile time is reported apart: the first call in this process (numba's on-disk cache
may serve it) and a cold compile in a subprocess with an empty cache.

``--rss`` instead measures the peak RSS of calibrating a dask-backed 10000 x 10000 x 5 scene
(synthetic DN generated chunk by chunk) into a per-band reduction.

Run: ``.venv/bin/python benchmarks/bench_radiometry.py [--size 4000 --bands 4 --repeat 5]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba import prange

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    cold_jit_seconds,
    one_thread,
    peak_rss_mb,
    print_table,
    time_interleaved,
    write_json,
)

from eo_pipeline.kernels.radiometry import calibrate_block

SATURATION = 65535
NODATA = 0


@numba.njit(cache=True, nogil=True, parallel=True)
def _parallel_cast(src, dst):
    n, ny, nx = src.shape
    for r in prange(n * ny):
        t = r // ny
        i = r - t * ny
        for j in range(nx):
            dst[t, i, j] = np.float32(src[t, i, j])


def make_scene(bands: int, size: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Synthetic uint16 DN (5% nodata, a few saturated) and Landsat-like per-band numbers."""
    rng = np.random.default_rng(seed)
    dn = rng.integers(5000, 30000, (bands, size, size), dtype=np.uint16)
    dn[:, : size // 20, :] = NODATA
    dn[:, -1, :16] = SATURATION
    nums = {
        "mult": np.linspace(0.0129, 0.0063, bands),
        "add": np.linspace(-64.9, -31.6, bands),
        "esun": np.linspace(1895.0, 955.0, bands),
        "d": np.full(bands, 0.9835616),
        "zenith": np.full(bands, 30.50230712),
    }
    return dn, nums


def bench_kernel(size: int, bands: int, repeat: int) -> dict[str, Any]:
    import numexpr as ne

    dn, nums = make_scene(bands, size)
    out = np.empty(dn.shape, dtype=np.float32)
    factor = np.pi * nums["d"] ** 2 / nums["esun"]
    nbytes = dn.nbytes + out.nbytes

    t0 = time.perf_counter()
    calibrate_block(
        dn[:, :8, :8].copy(),
        nums["mult"],
        nums["add"],
        factor,
        nums["zenith"],
        saturation=SATURATION,
    )
    first_call = time.perf_counter() - t0
    cold = cold_jit_seconds(
        "import numpy as np\nfrom eo_pipeline.kernels.radiometry import calibrate_block",
        "calibrate_block(np.ones((1, 4, 4), np.uint16), 1.0, 0.0, 1.0, 30.0, saturation=65535)",
    )

    def fused() -> None:
        calibrate_block(
            dn, nums["mult"], nums["add"], factor, nums["zenith"],
            nodata=NODATA, saturation=SATURATION, out=out,
        )  # fmt: skip

    # Same per-band numbers as float32 (b, 1, 1) for the numpy/numexpr contenders.
    m32 = nums["mult"].astype(np.float32)[:, None, None]
    a32 = nums["add"].astype(np.float32)[:, None, None]
    c32 = (factor / np.cos(np.radians(nums["zenith"]))).astype(np.float32)[:, None, None]

    def numpy_expression() -> np.ndarray:
        rho = (m32 * dn.astype(np.float32) + a32) * c32
        return np.where((dn == NODATA) | (dn >= SATURATION), np.float32(np.nan), rho)

    def numpy_inplace() -> None:
        np.copyto(out, dn)
        np.multiply(out, m32, out=out)
        np.add(out, a32, out=out)
        np.multiply(out, c32, out=out)
        out[(dn == NODATA) | (dn >= SATURATION)] = np.nan

    def numexpr_eval() -> None:
        for b in range(bands):
            ne.evaluate(
                "where((x == nd) | (x >= sat), nan, (m * x + a) * c)",
                local_dict={
                    "x": dn[b], "nd": np.uint16(NODATA), "sat": np.uint16(SATURATION),
                    "m": m32[b, 0, 0], "a": a32[b, 0, 0], "c": c32[b, 0, 0],
                    "nan": np.float32(np.nan),
                },
                out=out[b],
            )  # fmt: skip

    def numpy_copy() -> None:
        np.copyto(out, dn)

    cast_out = np.empty_like(out)
    _parallel_cast(dn[:, :4, :4].copy(), np.empty((bands, 4, 4), np.float32))

    def numba_cast() -> None:
        _parallel_cast(dn, cast_out)

    # Correctness first: every contender gives the kernel's numbers (NaN where NaN).
    fused()
    reference = out.copy()
    for check in (numpy_expression,):
        np.testing.assert_allclose(check(), reference, rtol=1e-5, atol=1e-6, equal_nan=True)
    numexpr_eval()
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-6, equal_nan=True)
    numpy_inplace()
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-6, equal_nan=True)

    threads = numba.get_num_threads()
    contenders = [
        ("fused kernel", fused, f"numba {threads} threads"),
        ("fused kernel 1 thread", one_thread(fused), "numba 1 thread"),
        ("numpy expression", numpy_expression, "1 thread"),
        ("numpy in-place", numpy_inplace, "1 thread"),
        ("numexpr", numexpr_eval, f"{ne.get_num_threads()} threads"),
        ("numpy copy", numpy_copy, "uint16->float32, 1 thread"),
        ("numba parallel cast", numba_cast, f"{threads} threads"),
    ]
    timings = time_interleaved(contenders, repeat=repeat, nbytes=nbytes)
    refs = ["numpy expression", "numexpr", "numpy copy", "numba parallel cast"]
    print(f"\nDN -> TOA reflectance, {bands} x {size} x {size} uint16 -> float32 "
          f"({nbytes / 1e6:.0f} MB moved per call), best of {repeat}, round-robin")  # fmt: skip
    ratios = print_table(timings, references=refs)
    fused_t = ratios["fused kernel"]
    targets = {
        ">= 4x numpy expression": fused_t["vs numpy expression"] >= 4.0,
        ">= 2x numexpr": fused_t["vs numexpr"] >= 2.0,
        ">= 70% of numpy copy bandwidth": fused_t["vs numpy copy"] >= 0.7,
    }
    print(f"\nJIT: first call in this process {first_call:.2f} s (may hit numba's cache); "
          f"cold compile in a fresh process {cold:.2f} s")  # fmt: skip
    for k, ok in targets.items():
        print(f"target {k}: {'met' if ok else 'MISSED'}")
    return {
        "shape": list(dn.shape),
        "bytes_per_call": nbytes,
        "timings": timings,
        "ratios": ratios,
        "targets_met": targets,
        "jit_first_call_s": first_call,
        "jit_cold_compile_s": cold,
    }


def bench_rss(size: int, bands: int, chunk: int, per_pixel_sun: bool = False) -> dict[str, Any]:
    """Peak RSS of calibrate() on a lazy (1, size, size) x bands scene, reduced chunk-wise."""
    import dask
    import dask.array as da
    import pyproj
    import xarray as xr

    from eo_pipeline.steps.calibration import calibrate

    base = peak_rss_mb()
    rng = da.random.default_rng(0)
    data = {}
    for b in range(bands):
        dn = rng.integers(1, 30000, size=(1, size, size), chunks=(1, chunk, chunk), dtype=np.uint16)
        data[f"B{b + 1}"] = xr.DataArray(
            dn,
            dims=("time", "y", "x"),
            attrs={"nodata": 0, "saturation": 65535, "radiance_mult": 0.01 + 0.001 * b,
                   "radiance_add": -60.0, "reflectance_mult": 2e-05, "reflectance_add": -0.1},
        )  # fmt: skip
    ds = xr.Dataset(
        data,
        coords={
            "time": np.array(["2019-01-14T14:34:30"], dtype="datetime64[ns]"),
            "y": 5_700_000.0 - 10.0 * np.arange(size, dtype=np.float64),
            "x": 500_000.0 + 10.0 * np.arange(size, dtype=np.float64),
            "sun_elevation": ("time", [59.5]),
            "earth_sun_distance": ("time", [0.98356]),
            "spatial_ref": ((), 0, {"crs_wkt": pyproj.CRS.from_epsg(32642).to_wkt()}),
        },
    )
    out = calibrate(ds, "toa_reflectance", per_pixel_sun=per_pixel_sun)
    reductions = [out[k].mean(("y", "x")) for k in data] + [out["saturated"].max()]
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=os.cpu_count()):
        values = dask.compute(*[r.data for r in reductions])
    elapsed = time.perf_counter() - t0
    peak = peak_rss_mb()
    gb = size * size * bands * (2 + 4) / 1e9
    print(f"\ncalibrate(per_pixel_sun={per_pixel_sun}) on {bands} x {size} x {size} uint16 "
          f"(dask chunks {chunk}): "
          f"{elapsed:.1f} s, peak RSS {peak:.0f} MiB (before: {base:.0f} MiB); "
          f"target < 1536 MiB: {'met' if peak < 1536 else 'MISSED'}")  # fmt: skip
    return {
        "shape": [bands, size, size],
        "chunk": chunk,
        "per_pixel_sun": per_pixel_sun,
        "seconds": elapsed,
        "peak_rss_mib": peak,
        "rss_before_mib": base,
        "input_plus_output_gb": gb,
        "band_means": [float(np.asarray(v).reshape(-1)[0]) for v in values[:-1]],
        "target_met": peak < 1536,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=None, help="pixels per side (4000; --rss: 10000)")
    p.add_argument("--bands", type=int, default=None, help="bands (4; --rss: 5)")
    p.add_argument("--repeat", type=int, default=7, help="timed repetitions (round-robin)")
    p.add_argument("--rss", action="store_true", help="measure peak RSS of a dask calibration")
    p.add_argument("--chunk", type=int, default=2048, help="dask chunk side for --rss")
    p.add_argument("--per-pixel-sun", action="store_true", help="--rss with per-pixel sun zenith")
    args = p.parse_args(argv)
    if args.rss:
        result = bench_rss(args.size or 10000, args.bands or 5, args.chunk, args.per_pixel_sun)
        name = "radiometry_rss_per_pixel_sun" if args.per_pixel_sun else "radiometry_rss"
        print(f"wrote {write_json(name, result)}")
        return 0
    result = bench_kernel(args.size or 4000, args.bands or 4, args.repeat)
    print(f"wrote {write_json('radiometry', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

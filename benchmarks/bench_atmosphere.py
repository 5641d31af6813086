"""Atmospheric correction: DN -> surface reflectance through the public API vs numpy/numexpr.

The same equations everywhere, on a ``size x size`` uint16 Landsat 8 band (B4) with a scene
geometry and a user AOT (what the correction costs once the AOT is known):

- ``ours calibrate``: ``eo_pipeline.calibrate(ds, to="surface_reflectance", atmosphere=...)``
  on a numpy-backed Dataset (LUT interpolation per pixel, with the coefficients reused while
  the geometry and AOT do not change along a row);
- ``numpy``: ``toa = (m*DN + a)/cos(sza); y = (toa/Tg - path)/T; rho = y/(1 + S*y)`` with the
  coefficients taken from the same LUT once (float32 arithmetic, NaN where DN == 0);
- ``numexpr``: the same expression with ``numexpr.evaluate`` (its default threads);
- ``numpy copy``: a copy moving the same bytes (uint16 in + float32 out), the bandwidth bound.

Also reported (not timed here, read from the shipped LUT files): the 6S runs and wall time
of each sensor's LUT build, and one 6S run's time now (aerosol, monochromatic).

Run: ``.venv/bin/python benchmarks/bench_atmosphere.py [--size 4000 --repeat 5]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numexpr as ne
import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, time_interleaved, write_json

from eo_pipeline.atmosphere.lut import DATA_DIR, load_lut
from eo_pipeline.kernels import atmosphere as kernel
from eo_pipeline.steps.atmosphere import AtmosphereOptions
from eo_pipeline.steps.calibration import calibrate

SZA, AOT, WATER, OZONE = 37.3, 0.2, 2.0, 0.3
MULT, ADD = 2e-5, -0.1


def dataset(size: int) -> xr.Dataset:
    rng = np.random.default_rng(0)
    dn = rng.integers(5000, 30000, (1, size, size), dtype=np.uint16)
    dn[0, 0, :10] = 0
    band = xr.DataArray(
        dn, dims=("time", "y", "x"),
        attrs={"common_name": "red", "nodata": 0, "saturation": 65535,
               "reflectance_mult": MULT, "reflectance_add": ADD},
    )  # fmt: skip
    coords = {
        "time": np.array(["2015-12-05T16:06"], dtype="datetime64[ns]"),
        "y": 1e6 - 30.0 * np.arange(size), "x": 5e5 + 30.0 * np.arange(size),
        "sun_elevation": ("time", [90 - SZA]), "sun_azimuth": ("time", [150.0]),
    }  # fmt: skip
    return xr.Dataset({"B4": band}, coords=coords, attrs={"sensor": "landsat8"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    ds = dataset(args.size)
    opt = AtmosphereOptions(aot550=AOT, water=WATER, ozone=OZONE)
    t = load_lut("landsat8").tables("B4", water=WATER, ozone=OZONE)
    rp, tt, sa, tg = kernel.coefficients(SZA, 0.0, 1.0, AOT, *t.kernel_args(), t.log_gas, t.airmass)
    dn = ds["B4"].values[0]
    f32 = np.float32
    m, a = f32(MULT / np.cos(np.radians(SZA))), f32(ADD / np.cos(np.radians(SZA)))
    k = {"m": m, "a": a, "tg": f32(tg), "rp": f32(rp), "tt": f32(tt), "sa": f32(sa)}

    def ours() -> np.ndarray:
        return calibrate(ds, "surface_reflectance", atmosphere=opt)["B4"].values

    def numpy_eq() -> np.ndarray:
        toa = dn.astype(np.float32) * m + a
        y = (toa / k["tg"] - k["rp"]) / k["tt"]
        out = y / (f32(1) + k["sa"] * y)
        out[dn == 0] = np.nan
        return out

    def numexpr_eq() -> np.ndarray:
        expr = "where(dn == 0, nan, ((dn*m + a)/tg - rp)/tt / (1 + sa*((dn*m + a)/tg - rp)/tt))"
        return ne.evaluate(expr, local_dict={**k, "dn": dn, "nan": np.float32(np.nan)})

    src = np.ones(3 * dn.size, np.uint8)  # read + written = 6 bytes/pixel, as DN in + float32 out
    dst = np.empty_like(src)
    nbytes = dn.nbytes + dn.size * 4

    def copy() -> None:
        np.copyto(dst, src)

    got, want, alt = ours()[0], numpy_eq(), numexpr_eq()
    agree = float(np.nanmax(np.abs(got - want)))
    assert agree < 1e-5 and float(np.nanmax(np.abs(alt - want))) < 1e-5, agree
    timings = time_interleaved(
        [("ours calibrate", ours, "public API, numpy-backed"), ("numpy", numpy_eq, "float32"),
         ("numexpr", numexpr_eq, "default threads"), ("numpy copy", copy, "same bytes")],
        repeat=args.repeat, nbytes=nbytes,
    )  # fmt: skip
    ratios = print_table(
        timings, references=("numpy", "numexpr", "numpy copy"),
        title=f"DN -> surface reflectance, {args.size}x{args.size} uint16",
    )  # fmt: skip
    best = {tm.name: tm.best for tm in timings}
    copy_fraction = best["numpy copy"] / best["ours calibrate"]
    builds = {}
    for path in sorted(DATA_DIR.glob("*.npz")):
        lut = load_lut(path) if not path.name.startswith("scattering") else None
        if lut is not None:
            builds[lut.sensor] = lut.meta.get("timing")
    from eo_pipeline.atmosphere import sixs

    one_run = None
    if sixs.available():
        t0 = time.perf_counter()
        sixs.run(sixs.SixSCase(0.55, 30.0, 10.0, 90.0, aot550=0.2, model="continental"))
        one_run = time.perf_counter() - t0
    print(f"fraction of copy bandwidth: {copy_fraction:.2f}; max |ours - numpy| {agree:.2e}")
    print(f"one 6S aerosol run now: {one_run if one_run is None else round(one_run, 2)} s")
    for sensor, timing in builds.items():
        print(f"LUT {sensor}: {timing}")
    write_json(
        "atmosphere",
        {
            "size": args.size,
            "timings": timings,
            "ratios": ratios,
            "copy_bandwidth_fraction": copy_fraction,
            "max_abs_diff_vs_numpy": agree,
            "sixs_run_seconds": one_run,
            "lut_builds": builds,
            "targets_met": {"same result as numpy (1e-5)": agree < 1e-5},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

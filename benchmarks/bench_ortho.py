"""Orthorectification of a large simulated Primary PAN scene: eo.orthorectify vs gdalwarp -rpc.

Both contenders read the same tiled GeoTIFF (uint16 PAN in sensor geometry, RPC in its tags,
fitted to the simulator's off-nadir pushbroom) and the same DEM (ellipsoidal heights on a
geographic grid, like SRTM or Copernicus tiles), and write a DEFLATE COG on the same UTM grid
with the same resampling (cubic), 2 threads each, in two modes:

- ``exact`` (both defaults): the RPC and DEM of every output pixel.
  ``eo.orthorectify(..., tolerance=0)`` (the map projection alone approximated to 1e-3 px)
  vs ``gdalwarp -rpc -to RPC_DEM=... -et 0`` (gdalwarp's default when RPC_DEM is given);
- ``approx``: GDAL's approximate transformer at 0.125 px over the whole chain:
  ``tolerance=0.125`` vs ``gdalwarp ... -et 0.125``.

``eo.orthorectify``: per output tile through GDAL's RPC transformer on dask (threaded
scheduler, 2 workers, one GDAL thread per tile), written by ``eo.write`` (COG); the DEM is
prepared (cropped, ellipsoidal) inside the timed run. ``gdalwarp``: ``-multi -wo NUM_THREADS=2
-wm 512 -of COG -co COMPRESS=DEFLATE`` (GDAL's command line tool, the system's GDAL; the
Makefile's ``bench`` target installs gdal-bin when missing).

Each contender runs in its own process, alternately ``--repeat`` times (the best run counts):
wall time, CPU time (user + system, children included) and peak RSS of its process tree
(polled every 50 ms) are reported with the load average before and after, and both outputs
are compared on 64 windows of the same grid.
Targets: peak RSS < 2 GB at 20000 x 20000 and throughput not slower than gdalwarp.

The scene is simulated at any size with bounded memory: the pushbroom's rays meet the DEM
strip by strip (128 lines at a time) and the landscape texture is evaluated where they land;
at 20000^2 that takes ~10 minutes, so ``--keep DIR`` stores the scene for later runs.

Run: ``.venv/bin/python benchmarks/bench_ortho.py [--size 20000] [--mode both] [--keep DIR]
[--repeat 1]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timing, print_table, write_json

_RUN = r"""
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
if args["who"] == "ours":
    import dask
    import eo_pipeline as eo
    from eo_pipeline.io.dem import DEMSpec
    from eo_pipeline.io.sensor_geometry import open_sensor
    dask.config.set(scheduler="threads", num_workers=2)
    ds = open_sensor(args["src"])
    out = eo.orthorectify(ds, DEMSpec(args["dem"], vertical_datum="ellipsoid"), crs="EPSG:32643",
                          resolution=1.0, resampling="cubic", tolerance=args["tolerance"],
                          bounds=tuple(args["bounds"]))
    eo.write(out, args["out"])
else:
    import subprocess
    subprocess.run(args["cmd"], check=True, capture_output=True)
wall = time.perf_counter() - t0
t = os.times()
print(json.dumps({"wall": wall, "cpu": t.user + t.system + t.children_user + t.children_system}))
"""

_STRIP = 128
"""Image lines rendered at once by :func:`make_scene` (bounded memory at any size)."""


def _geographic_dem(dem: Any, bounds_utm: tuple[float, float, float, float], path: Path) -> None:
    """The simulator's UTM DEM resampled (bilinear) onto an EPSG:4326 grid of ~10 m cells."""
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin

    to_ll = Transformer.from_crs(32643, 4326, always_xy=True)
    to_utm = Transformer.from_crs(4326, 32643, always_xy=True)
    w, s, e, n = bounds_utm
    lon, lat = to_ll.transform([w, e, w, e], [s, s, n, n])
    step = 10.0 / 111_320.0
    west, east = min(lon) - step, max(lon) + step
    south, north = min(lat) - step, max(lat) + step
    cols, rows = math.ceil((east - west) / step), math.ceil((north - south) / step)
    with rasterio.open(
        path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
        crs="EPSG:4326", transform=from_origin(west, north, step, step), tiled=True,
        compress="deflate",
    ) as dst:  # fmt: skip
        lons = west + (np.arange(cols) + 0.5) * step
        for r0 in range(0, rows, 256):
            lats = north - (np.arange(r0, min(rows, r0 + 256)) + 0.5) * step
            ee, nn = to_utm.transform(*np.meshgrid(lons, lats))
            block = dem(ee, nn).astype(np.float32)
            dst.write(block, 1, window=rasterio.windows.Window(0, r0, cols, block.shape[0]))


def make_scene(folder: Path, size: int, off_nadir: float) -> tuple[Path, Path, list[float]]:
    """The PAN image (tiled GeoTIFF with RPC tags, rendered in strips), its DEM and the
    output extent (west, south, east, north on UTM 43N)."""
    import rasterio
    from rasterio.rpc import RPC

    from eo_pipeline.simulation.primary import Pushbroom, fit_camera, foothills_dem, landscape

    extent = float(size)
    top = 4_765_000.0 + extent / 2
    cam = Pushbroom(size, size, 1.0, off_nadir, top, 630_000.0)
    margin = (1500.0 + 0.25 * extent) * math.tan(math.radians(off_nadir)) + 300.0
    left = 630_000.0 - extent / 2 - margin
    dem = foothills_dem(left, top + margin, extent + 2 * margin, 10.0)
    rpc, _, _ = fit_camera(cam, (float(dem.heights.min()), float(dem.heights.max())))
    dem_path = folder / "dem_wgs84.tif"
    _geographic_dem(
        dem, (left, top - extent - margin, left + extent + 2 * margin, top + margin), dem_path
    )
    src = folder / "pan.tif"
    with rasterio.open(
        src, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint16", tiled=True,
        blockxsize=512, blockysize=512, compress="deflate", rpcs=RPC.from_gdal(rpc.to_gdal()),
        BIGTIFF="IF_SAFER",
    ) as dst:  # fmt: skip
        samp = np.arange(size, dtype=np.float64)
        for r0 in range(0, size, _STRIP):
            line = np.arange(r0, min(size, r0 + _STRIP), dtype=np.float64)[:, None]
            e, n, _ = cam.on_dem(line, samp[None, :], dem, iterations=6)
            dn = np.clip(np.round(200 + 3000 * landscape(e, n)), 1, 4095).astype(np.uint16)
            dst.write(dn, 1, window=rasterio.windows.Window(0, r0, size, dn.shape[0]))
    west, east = 630_000.0 - extent / 2 - margin / 2, 630_000.0 + extent / 2 + margin / 2
    south, north = top - extent - 50.0, top + 50.0
    return src, dem_path, [math.floor(west), math.floor(south), math.ceil(east), math.ceil(north)]


def _run(args: dict[str, object], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run one contender in a fresh process; wall and CPU time, peak RSS of its process tree
    (polled every 50 ms with psutil: ru_maxrss would inherit this process's size at fork)."""
    import psutil

    load = os.getloadavg()
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    peak = 0.0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [ps, *ps.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree) / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(err[-3000:])
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "wall": result["wall"],
        "cpu": result["cpu"],
        "rss_mib": peak,
        "load_before": load[0],
        "load_after": os.getloadavg()[0],
    }


def _agreement(a_path: Path, b_path: Path) -> dict[str, Any]:
    """Mean |difference| (DN) of two outputs on 64 windows of 512^2 where both hold image."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(a_path) as a, rasterio.open(b_path) as b:
        if a.transform != b.transform or a.shape != b.shape:
            return {"same_grid": False}
        diffs, valid, total = [], 0, 0
        for fy in np.linspace(0.1, 0.9, 8):
            for fx in np.linspace(0.1, 0.9, 8):
                win = Window(int(fx * (a.width - 512)), int(fy * (a.height - 512)), 512, 512)
                x, y = (
                    a.read(1, window=win).astype(np.int32),
                    b.read(1, window=win).astype(np.int32),
                )
                both = (x > 0) & (y > 0)
                diffs.append(np.abs(x - y)[both])
                valid, total = valid + int(both.sum()), total + both.size
    d = np.concatenate(diffs)
    return {
        "same_grid": True,
        "mean_abs_dn": float(d.mean()) if d.size else math.nan,
        "p99_abs_dn": float(np.percentile(d, 99)) if d.size else math.nan,
        "valid_share": valid / total,
    }


def _gdalwarp(
    gdalwarp: str, src: Path, dem: Path, bounds: list[float], et: float, out: Path
) -> list[str]:
    return [
        gdalwarp, "-q", "-rpc", "-to", f"RPC_DEM={dem}", "-to", "RPC_DEM_APPLY_VDATUM_SHIFT=FALSE",
        "-t_srs", "EPSG:32643", "-tr", "1", "1", "-te", *map(str, bounds), "-r", "cubic",
        "-et", repr(et), "-multi", "-wo", "NUM_THREADS=2", "-wm", "512", "-dstnodata", "0",
        "-of", "COG", "-co", "COMPRESS=DEFLATE", "-overwrite", str(src), str(out),
    ]  # fmt: skip


def _best(runs: list[dict[str, float]]) -> dict[str, Any]:
    """The fastest run's numbers, the largest peak RSS, and every run's wall and CPU time."""
    best: dict[str, Any] = dict(min(runs, key=lambda r: r["wall"]))
    best["rss_mib"] = max(r["rss_mib"] for r in runs)
    best["walls"] = [r["wall"] for r in runs]
    best["cpus"] = [r["cpu"] for r in runs]
    best["cpu"] = min(r["cpu"] for r in runs)
    return best


def _mode(
    folder: Path, scene: dict[str, Any], mode: str, gdalwarp: str | None, repeat: int
) -> dict[str, Any]:
    """Both contenders in one mode, alternately ``repeat`` times (the machine's load drifts);
    the best run of each, the ratios and the agreement of the outputs."""
    tolerance = 0.0 if mode == "exact" else 0.125
    ours_out, gdal_out = folder / f"ours_{mode}.tif", folder / f"gdal_{mode}.tif"
    ours_args = {
        "who": "ours", "src": scene["src"], "dem": scene["dem"], "out": str(ours_out),
        "tolerance": tolerance, "bounds": scene["bounds"],
    }  # fmt: skip
    runs: dict[str, list[dict[str, float]]] = {"eo.orthorectify": []}
    if gdalwarp:
        runs["gdalwarp -rpc"] = []
    for _ in range(repeat):
        cache = tempfile.mkdtemp(prefix="dem-cache-", dir=folder)  # the DEM preparation is timed
        runs["eo.orthorectify"].append(_run(ours_args, env={"EO_PIPELINE_DEM_CACHE": cache}))
        if gdalwarp:
            cmd = _gdalwarp(
                gdalwarp, scene["src"], scene["dem"], scene["bounds"], tolerance, gdal_out
            )
            runs["gdalwarp -rpc"].append(_run({"who": "gdal", "cmd": cmd}))
    results = {k: _best(v) for k, v in runs.items()}
    timings = [
        Timing(k, tuple(v["walls"]), note=f"cpu {v['cpu']:.0f} s, peak RSS {v['rss_mib']:.0f} MiB, "
               f"load {v['load_before']:.1f}->{v['load_after']:.1f}")
        for k, v in results.items()
    ]  # fmt: skip
    ratios = print_table(
        timings, references=["gdalwarp -rpc"], title=f"ortho {scene['size']}^2 PAN, {mode}"
    )
    ratios.pop("gdalwarp -rpc", None)
    out: dict[str, Any] = {"tolerance": tolerance, "results": results, "ratios": ratios}
    if gdalwarp:
        out["cpu_ratio"] = results["gdalwarp -rpc"]["cpu"] / results["eo.orthorectify"]["cpu"]
        out["agreement"] = _agreement(ours_out, gdal_out)
        gdal_out.unlink()
    ours_out.unlink()
    return out


def _versions(gdalwarp: str | None) -> dict[str, str]:
    """GDAL of each side: the system's gdalwarp, rasterio's bundled library."""
    import rasterio

    side = "absent (apt-get install gdal-bin)"
    if gdalwarp:
        side = subprocess.run([gdalwarp, "--version"], capture_output=True, text=True).stdout
    return {"gdalwarp": side.strip(), "rasterio GDAL": rasterio.__gdal_version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=20000, help="PAN pixels per side")
    parser.add_argument("--mode", choices=("exact", "approx", "both"), default="both")
    parser.add_argument("--off-nadir", type=float, default=20.0)
    parser.add_argument("--keep", type=Path, help="folder keeping the scene between runs")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each contender (best)")
    opts = parser.parse_args()
    gdalwarp = shutil.which("gdalwarp")
    with tempfile.TemporaryDirectory(prefix="bench-ortho-") as tmp:
        folder = opts.keep / f"s{opts.size}_{opts.off_nadir:g}" if opts.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        scene_file = folder / "scene.json"
        if not scene_file.exists():
            t0 = time.perf_counter()
            src, dem, bounds = make_scene(folder, opts.size, opts.off_nadir)
            scene = {"src": str(src), "dem": str(dem), "bounds": bounds, "size": opts.size,
                     "seconds": time.perf_counter() - t0}  # fmt: skip
            scene_file.write_text(json.dumps(scene))
        scene = json.loads(scene_file.read_text())
        print(f"scene {opts.size} x {opts.size} (simulated in {scene['seconds']:.0f} s)")
        modes = ("exact", "approx") if opts.mode == "both" else (opts.mode,)
        report = {m: _mode(Path(tmp), scene, m, gdalwarp, opts.repeat) for m in modes}
    targets: dict[str, bool] = {}
    for m, r in report.items():
        ours = r["results"]["eo.orthorectify"]
        targets[f"{m}: peak_rss_below_2GB"] = ours["rss_mib"] < 2048
        if r["ratios"]:
            targets[f"{m}: not_slower_than_gdalwarp"] = (
                r["ratios"]["eo.orthorectify"]["vs gdalwarp -rpc"] >= 1.0
            )
    print(json.dumps({"modes": report, "targets": targets}, indent=1))
    write_json(f"ortho_{opts.size}", {
        "size": opts.size, "off_nadir": opts.off_nadir, "modes": report, "targets_met": targets,
        "gdalwarp": _versions(gdalwarp),
    })  # fmt: skip


if __name__ == "__main__":
    main()

"""Orthorectification of a large simulated Primary PAN scene: eo.orthorectify vs gdalwarp -rpc.

Both contenders read the same tiled GeoTIFF (uint16 PAN in sensor geometry, RPC in its tags,
fitted to the simulator's off-nadir pushbroom) and the same ellipsoidal DEM, and write a
DEFLATE COG on the same UTM grid with the same resampling and the same transformer error
threshold:

- ``eo.orthorectify``: per output tile through GDAL's RPC transformer on dask (2 threads),
  written by ``eo.write`` (COG);
- ``gdalwarp -rpc -to RPC_DEM=... -et <tolerance> -multi -wo NUM_THREADS=2 -of COG``
  (GDAL's command line tool; the Makefile's ``bench`` target installs gdal-bin when missing).

Each runs in its own process; wall time and peak RSS (the process's, plus its children's for
gdalwarp) are reported, and both outputs are compared pixel by pixel (same grid). Target:
peak RSS < 2 GB at 20000 x 20000 and throughput not slower than gdalwarp.

Run: ``.venv/bin/python benchmarks/bench_ortho.py [--size 20000] [--tolerance 0.125]``
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timing, print_table, write_json

_RUN = r"""
import json, sys, time, warnings
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
print(json.dumps({"wall": wall}))
"""


def make_scene(folder: Path, size: int, off_nadir: float) -> tuple[Path, Path, tuple[float, ...]]:
    """The PAN image (tiled GeoTIFF with RPC tags, written in strips) and its DEM."""
    import rasterio
    from rasterio.rpc import RPC
    from rasterio.transform import from_origin

    from eo_pipeline.simulation.primary import Pushbroom, fit_camera, foothills_dem, landscape

    extent = float(size)
    top = 4_765_000.0 + extent / 2
    cam = Pushbroom(size, size, 1.0, off_nadir, top, 630_000.0)
    margin = (1500.0 + 0.25 * extent) * math.tan(math.radians(off_nadir)) + 300.0
    dem = foothills_dem(630_000.0 - extent / 2 - margin, top + margin, extent + 2 * margin, 10.0)
    rpc, _, _ = fit_camera(cam, (float(dem.heights.min()), float(dem.heights.max())))
    dem_path = folder / "dem.tif"
    with rasterio.open(
        dem_path, "w", driver="GTiff", width=dem.heights.shape[1], height=dem.heights.shape[0],
        count=1, dtype="float32", crs="EPSG:32643", transform=from_origin(dem.left, dem.top, 10.0, 10.0),
    ) as dst:  # fmt: skip
        dst.write(dem.heights.astype(np.float32), 1)
    src = folder / "pan.tif"
    with rasterio.open(
        src, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint16", tiled=True,
        blockxsize=512, blockysize=512, compress="deflate", rpcs=RPC.from_gdal(rpc.to_gdal()),
    ) as dst:  # fmt: skip
        samp = np.arange(size, dtype=np.float64)
        for r0 in range(0, size, 512):
            line = np.arange(r0, min(size, r0 + 512), dtype=np.float64)[:, None]
            e, n, _ = cam.on_dem(line, samp[None, :], dem, iterations=6)
            dn = np.clip(np.round(200 + 3000 * landscape(e, n)), 1, 4095).astype(np.uint16)
            dst.write(dn, 1, window=rasterio.windows.Window(0, r0, size, dn.shape[0]))
    west, east = 630_000.0 - extent / 2 - margin / 2, 630_000.0 + extent / 2 + margin / 2
    south, north = top - extent - 50.0, top + 50.0
    return src, dem_path, (math.floor(west), math.floor(south), math.ceil(east), math.ceil(north))


def _run(args: dict[str, object]) -> dict[str, float]:
    """Run one contender in a fresh process; wall time and peak RSS of its process tree
    (polled every 50 ms with psutil: ru_maxrss would inherit this process's size at fork)."""
    import psutil

    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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
    return {"wall": result["wall"], "rss_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--size", type=int, default=20000, help="PAN pixels per side (default 20000)"
    )
    parser.add_argument(
        "--tolerance", type=float, default=0.125, help="transformer error threshold (px)"
    )
    parser.add_argument("--off-nadir", type=float, default=20.0)
    opts = parser.parse_args()
    gdalwarp = shutil.which("gdalwarp")
    with tempfile.TemporaryDirectory(prefix="bench-ortho-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        src, dem, bounds = make_scene(folder, opts.size, opts.off_nadir)
        print(f"scene {opts.size} x {opts.size} written in {time.perf_counter() - t0:.0f} s")
        ours = _run({"who": "ours", "src": str(src), "dem": str(dem), "out": str(folder / "ours.tif"),
                     "tolerance": opts.tolerance, "bounds": bounds})  # fmt: skip
        results = {"eo.orthorectify": ours}
        if gdalwarp:
            cmd = [
                gdalwarp, "-q", "-rpc", "-to", f"RPC_DEM={dem}", "-to", "RPC_DEM_APPLY_VDATUM_SHIFT=FALSE",
                "-t_srs", "EPSG:32643", "-tr", "1", "1", "-te", *map(str, bounds), "-r", "cubic",
                "-et", str(opts.tolerance), "-multi", "-wo", "NUM_THREADS=2", "-wm", "512",
                "-dstnodata", "0", "-of", "COG", "-co", "COMPRESS=DEFLATE", "-overwrite",
                str(src), str(folder / "gdal.tif"),
            ]  # fmt: skip
            results["gdalwarp -rpc"] = _run({"who": "gdal", "cmd": cmd})
        agree = None
        if "gdalwarp -rpc" in results:
            import rasterio

            with rasterio.open(folder / "ours.tif") as a, rasterio.open(folder / "gdal.tif") as b:
                same_grid = a.transform == b.transform and a.shape == b.shape
                if same_grid and opts.size <= 8192:
                    x, y = a.read(1).astype(np.int32), b.read(1).astype(np.int32)
                    both = (x > 0) & (y > 0)
                    agree = {
                        "mean_abs_dn": float(np.abs(x - y)[both].mean()),
                        "valid_share": float(both.mean()),
                    }
                else:
                    agree = {"same_grid": same_grid}
    timings = [
        Timing(k, (v["wall"],), note=f"peak RSS {v['rss_mib']:.0f} MiB") for k, v in results.items()
    ]
    ratios = print_table(timings, references=["gdalwarp -rpc"], title=f"ortho {opts.size}^2 PAN")
    ratios.pop("gdalwarp -rpc", None)
    targets = {"peak_rss_below_2GB": ours["rss_mib"] < 2048}
    if ratios:
        targets["not_slower_than_gdalwarp"] = ratios["eo.orthorectify"]["vs gdalwarp -rpc"] >= 1.0
    print(
        json.dumps(
            {"results": results, "ratios": ratios, "agreement": agree, "targets": targets}, indent=1
        )
    )
    write_json("ortho", {
        "size": opts.size, "tolerance": opts.tolerance, "off_nadir": opts.off_nadir,
        "results": results, "ratios": ratios, "agreement": agree, "targets_met": targets,
        "gdalwarp": gdalwarp or "absent (apt-get install gdal-bin)",
    })  # fmt: skip


if __name__ == "__main__":
    main()

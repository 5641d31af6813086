"""Loading a real Sentinel-2 tile: JPEG 2000 as delivered vs the same bands as COG.

The real Level-2A tile ``shared/real-data/sentinel2-l2a-T29UNU-20221005-60m`` (1830 x 1830
pixels, every band delivered at 60 m: B01-B07, B8A, B09, B11, B12, plus SCL) is ingested twice
into a temporary catalog:

- **jp2**: in place (``ingest`` default: the SAFE's JPEG 2000 files are referenced);
- **cog**: ``ingest(..., to_cog=True)``: GDAL's COG driver (DEFLATE level 1, predictor 2,
  512-pixel tiles, overviews) writes one COG per band into the catalog.

Each is then read in full with ``eo_pipeline.load(catalog).load()`` (odc-stac, dask's threads
scheduler), interleaved round-robin so that the shared machine's load hits both alike; the
arrays are checked equal. Also timed: the bare decode of every file with rasterio (one
thread, no dask), to tell the codec's share from odc-stac's, and the one-off conversion.

Run: ``.venv/bin/python benchmarks/bench_sentinel2.py [--repeat 5]``; writes
``benchmarks/results/sentinel2_load.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, time_interleaved, write_json

import eo_pipeline as eo
from eo_pipeline.io.ingestion import ingest, real_data_dir

SAFE = (
    "sentinel2-l2a-T29UNU-20221005-60m/"
    "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
)
BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12", "SCL"]


def _read_all(paths: list[str]) -> int:
    import rasterio

    total = 0
    for p in paths:
        with rasterio.open(p) as src:
            total += int(src.read(1).nbytes)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    safe = real_data_dir() / SAFE
    if not (safe / "MTD_MSIL2A.xml").is_file():
        print(f"skipped: the real tile is not at {safe}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-s2-") as tmp:
        jp2_cat, cog_cat = Path(tmp) / "jp2", Path(tmp) / "cog"
        ingest(safe, jp2_cat)
        t0 = time.perf_counter()
        item = ingest(safe, cog_cat, to_cog=True)
        convert = time.perf_counter() - t0
        jp2_item = next(iter(eo.catalogs.store.read_items(jp2_cat)))
        jp2_files = [jp2_item.assets[b].get_absolute_href() or "" for b in BANDS]
        cog_files = [item.assets[b].get_absolute_href() or "" for b in BANDS]
        jp2_ds = eo.load(jp2_cat, bands=BANDS).load()
        cog_ds = eo.load(cog_cat, bands=BANDS).load()
        for b in BANDS:
            assert np.array_equal(jp2_ds[b].values, cog_ds[b].values), b
        nbytes = int(sum(jp2_ds[b].nbytes for b in BANDS))
        sizes = {
            "jp2_bytes": sum(Path(f).stat().st_size for f in jp2_files),
            "cog_bytes": sum(Path(f).stat().st_size for f in cog_files),
        }
        timings = time_interleaved(
            [
                ("load jp2", lambda: eo.load(jp2_cat, bands=BANDS).load(), "odc-stac, threads"),
                ("load cog", lambda: eo.load(cog_cat, bands=BANDS).load(), "odc-stac, threads"),
                ("rasterio jp2", lambda: _read_all(jp2_files), "decode only, 1 thread"),
                ("rasterio cog", lambda: _read_all(cog_files), "decode only, 1 thread"),
            ],
            repeat=args.repeat,
            nbytes=nbytes,
        )
    ratios = print_table(
        timings,
        references=["load jp2", "rasterio jp2"],
        title=f"Sentinel-2 L2A tile, {len(BANDS)} layers of 1830 x 1830 ({nbytes / 1e6:.0f} MB)",
    )
    print(
        f"conversion to COG at ingest: {convert:.1f} s once; files: JPEG 2000 "
        f"{sizes['jp2_bytes'] / 1e6:.1f} MB, COG {sizes['cog_bytes'] / 1e6:.1f} MB"
    )
    path = write_json(
        "sentinel2_load",
        {"timings": timings, "ratios": ratios, "convert_seconds": convert, **sizes},
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

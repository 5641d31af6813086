"""A national archive: planning and loading from 10^4..10^6 catalogued scenes, index vs pystac.

For each catalog size, a synthetic static catalog (one collection, ``kazeosat2-l1``) is made
from ONE real simulated KazEOSat-2 item: every item is a copy with its own id, date (10 years)
and footprint (a 0.6 degree scene somewhere over Kazakhstan), all pointing at the same real
asset files. Then, each in a fresh process (wall time and peak RSS of that process):

- ``index``: ``eo-pipeline index rebuild`` (items/s, file size);
- ``add one``: one more item through ``catalogs.store.add_items`` (the incremental update);
- ``dry-run``: ``eo.run(workflow, dry_run=True)`` of one month over one 5 x 5 degree region;
- ``load``: ``eo.load(catalog, bbox=, datetime=, collections=)`` graph construction for the
  same query (no pixels read);
- peer ``pystac walk``: what planning did before the index (and what a user without one
  does): ``pystac.Catalog.from_file(...).get_items(recursive=True)`` filtered in Python (run
  up to ``--peer-max`` items: it reads every item JSON).

Targets (issue #18): planning one month over one region from 10^6 items under 5 s and
300 MB RSS; index build at least 5,000 items/s; cost growing with the matches.

Run: ``.venv/bin/python benchmarks/bench_catalog.py [--size 1000000] [--peer-max 100000]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, write_json

KZ = (46.5, 40.5, 87.0, 55.0)
"""Kazakhstan's bounding box (degrees)."""
REGION = (66.0, 45.0, 71.0, 50.0)
"""The region planned and loaded (5 x 5 degrees in central Kazakhstan)."""
MONTH = "2021-03-01/2021-03-31"


def _template(work: Path) -> dict[str, Any]:
    import eo_pipeline as eo

    (item,) = eo.simulate("kazeosat2", work / "real", scenes=1, size=64, seed=1)
    doc = item.to_dict()
    for asset in doc["assets"].values():  # one real asset set, read in place by every item
        asset["href"] = str(Path(item.get_self_href() or "").parent / asset["href"])
        asset["eo_pipeline:reference"] = True
    return doc


def make_catalog(root: Path, n: int, template: dict[str, Any], seed: int = 0) -> float:
    """Write a static catalog of ``n`` items; seconds taken."""
    import numpy as np

    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    coll = root / "kazeosat2-l1"
    coll.mkdir(parents=True)
    t0 = dt.datetime(2016, 1, 1, tzinfo=dt.UTC).timestamp()
    secs = rng.uniform(0, 10 * 365.25 * 86400, n)
    lon = rng.uniform(KZ[0], KZ[2] - 0.6, n)
    lat = rng.uniform(KZ[1], KZ[3] - 0.6, n)
    links = []
    base = dict(template)
    for i in range(n):
        iid = f"kazeosat2_syn_{i:07d}"
        w, s = float(lon[i]), float(lat[i])
        e, nn = w + 0.6, s + 0.6
        when = dt.datetime.fromtimestamp(t0 + float(secs[i]), dt.UTC)
        doc = dict(base)
        doc["id"] = iid
        doc["bbox"] = [w, s, e, nn]
        doc["geometry"] = {
            "type": "Polygon",
            "coordinates": [[[w, s], [e, s], [e, nn], [w, nn], [w, s]]],
        }
        doc["properties"] = dict(
            base["properties"], datetime=when.isoformat().replace("+00:00", "Z")
        )
        doc["links"] = [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
        ]
        folder = coll / iid
        folder.mkdir()
        (folder / f"{iid}.json").write_text(json.dumps(doc))
        links.append({"rel": "item", "href": f"./{iid}/{iid}.json", "type": "application/geo+json"})
    collection = {
        "type": "Collection", "stac_version": "1.1.0", "id": "kazeosat2-l1",
        "description": "synthetic archive", "license": "other",
        "extent": {"spatial": {"bbox": [list(KZ)]}, "temporal": {"interval": [[None, None]]}},
        "links": [{"rel": "root", "href": "../catalog.json"}, {"rel": "parent", "href": "../catalog.json"}, *links],
    }  # fmt: skip
    (coll / "collection.json").write_text(json.dumps(collection))
    catalog = {
        "type": "Catalog", "stac_version": "1.1.0", "id": "archive", "description": "synthetic",
        "links": [{"rel": "root", "href": "./catalog.json"}, {"rel": "child", "href": "./kazeosat2-l1/collection.json"}],
    }  # fmt: skip
    (root / "catalog.json").write_text(json.dumps(catalog))
    return time.perf_counter() - t


def _measure(setup: str, code: str) -> dict[str, Any]:
    """Run ``setup`` then ``code`` in a fresh interpreter (``code`` sets keys of ``out``).

    Returns ``out`` with ``seconds`` (``code`` alone), ``wall_s`` (interpreter start to end,
    imports included: what a command-line user waits) and ``peak_rss_mb`` (the process's
    VmHWM: ``ru_maxrss`` would include the parent's peak, inherited across exec on Linux).
    """
    wrapper = textwrap.dedent(
        """
        import json, sys, time
        t0 = time.perf_counter()
        g = {"out": {}}
        exec(sys.argv[1], g)
        t = time.perf_counter()
        exec(sys.argv[2], g)
        out = g["out"]
        out["seconds"] = time.perf_counter() - t
        out["wall_s"] = time.perf_counter() - t0
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
        out["peak_rss_mb"] = int(hwm.split()[1]) / 1024
        print("RESULT" + json.dumps(out))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, textwrap.dedent(setup), textwrap.dedent(code)],
        capture_output=True,
        text=True,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return dict(json.loads(line[6:]))
    raise RuntimeError(f"measurement failed:\n{proc.stderr[-3000:]}")


def _workflow(root: Path, work: Path) -> Path:
    wf = work / "one-month.yaml"
    wf.write_text(
        f"name: one-month\ninputs:\n  catalog: {root}/catalog.json\n  datetime: {MONTH}\n"
        f"  bbox: {list(REGION)}\nsteps:\n  - calibrate: {{to: toa_reflectance}}\n"
        f"  - indices: {{names: [NDVI]}}\noutput:\n  catalog: {work}/out\n"
    )
    return wf


def bench_size(n: int, template: dict[str, Any], work: Path, peer_max: int) -> dict[str, Any]:
    root = work / f"cat{n}"
    shutil.rmtree(root, ignore_errors=True)
    row: dict[str, Any] = {"items": n, "write_s": make_catalog(root, n, template)}
    idx = _measure(
        "import pathlib\nfrom eo_pipeline.catalogs.index import CatalogIndex",
        f"out['indexed'] = CatalogIndex(pathlib.Path({str(root)!r})).rebuild().items",
    )
    row["index_s"], row["index_rss_mb"] = idx["seconds"], idx["peak_rss_mb"]
    row["index_items_per_s"] = n / idx["seconds"]
    row["index_mb"] = (root / ".eo-pipeline-index.sqlite").stat().st_size / 1e6
    wf = _workflow(root, work)
    plan = _measure(
        "import io, contextlib\nimport eo_pipeline as eo\nfrom eo_pipeline.errors import WorkflowError",
        "try:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        f"        eo.run({str(wf)!r}, dry_run=True, verbose=False)\n"
        "except WorkflowError as err:  # a tiny archive may hold no scene that month\n"
        "    assert 'no input items match' in str(err), err\n",
    )
    row["dry_run_s"], row["dry_run_wall_s"] = plan["seconds"], plan["wall_s"]
    row["dry_run_rss_mb"] = plan["peak_rss_mb"]
    load = _measure(
        "import eo_pipeline as eo\nimport odc.stac\nfrom eo_pipeline.errors import CatalogError",
        "try:\n"
        f"    ds = eo.load({str(root)!r}, bbox={list(REGION)!r}, datetime={MONTH!r}, "
        "collections=['kazeosat2-l1'], bands=['B2'])\n"
        "    out['time_steps'] = int(ds.sizes['time'])\n"
        "except CatalogError as err:\n"
        "    assert 'no item matches' in str(err), err\n"
        "    out['time_steps'] = 0",
    )
    row["load_s"], row["load_rss_mb"], row["matches"] = (
        load["seconds"], load["peak_rss_mb"], load["time_steps"],
    )  # fmt: skip
    add = _measure(
        "import json, pathlib, pystac\nfrom eo_pipeline.catalogs.store import add_items\n"
        f"root = pathlib.Path({str(root)!r})\n"
        "doc = json.loads(next(iter((root / 'kazeosat2-l1').glob('*/*.json'))).read_text())\n"
        "doc['id'] = 'kazeosat2_syn_added'\ndoc['links'] = []\n"
        "item = pystac.Item.from_dict(doc)\n"
        "import time, eo_pipeline.catalogs.index as ix\n"  # add_items imports it at call time
        "spent = []\n"
        "def timed(*a, _f=ix.update_index, **k):\n"
        "    t = time.perf_counter(); _f(*a, **k); spent.append(time.perf_counter() - t)\n"
        "ix.update_index = timed",
        "add_items(root, [item], asset_mode='link')\nout['index_part_s'] = spent[0]",
    )
    # the whole add (item folder, collection.json and catalog.json rewritten, index updated)
    # and the index's own part of it (one item row, the collection's new state)
    row["add_one_s"], row["add_one_index_s"] = add["seconds"], add["index_part_s"]
    if n <= peer_max:
        peer = _measure(
            "import datetime as dt, pystac",
            f"cat = pystac.Catalog.from_file({str(root / 'catalog.json')!r})\n"
            "lo = dt.datetime(2021, 3, 1, tzinfo=dt.UTC); hi = dt.datetime(2021, 4, 1, tzinfo=dt.UTC)\n"
            f"w, s, e, n = {REGION!r}\n"
            "hits = [it for it in cat.get_items(recursive=True) if lo <= it.datetime < hi\n"
            "        and it.bbox[0] <= e and it.bbox[2] >= w and it.bbox[1] <= n and it.bbox[3] >= s]\n"
            "out['matches'] = len(hits)",
        )
        row["peer_walk_s"], row["peer_walk_rss_mb"] = peer["seconds"], peer["peak_rss_mb"]
        row["peer_matches"] = peer["matches"]
    shutil.rmtree(root, ignore_errors=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="largest catalog (items)")
    parser.add_argument(
        "--peer-max", type=int, default=100_000, help="largest catalog the pystac walk runs on"
    )
    args = parser.parse_args()
    sizes = [n for n in (10_000, 100_000, 1_000_000) if n <= args.size] or [args.size]
    rows = []
    with tempfile.TemporaryDirectory(prefix="eo-bench-catalog-") as tmp:
        work = Path(tmp)
        template = _template(work)
        for n in sizes:
            row = bench_size(n, template, work, args.peer_max)
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = []
    ratios = {}
    for r in rows:
        peer = r.get("peer_walk_s")
        table.append(
            [
                f"{r['items']:,}",
                f"{r['index_s']:.1f} s ({r['index_items_per_s']:,.0f}/s, {r['index_mb']:.0f} MB)",
                f"{r['add_one_s'] * 1000:.0f} ms (index {r['add_one_index_s'] * 1000:.1f} ms)",
                f"{r['dry_run_s']:.2f} s ({r['dry_run_wall_s']:.1f} s wall) / "
                f"{r['dry_run_rss_mb']:.0f} MB",
                f"{r['load_s']:.2f} s / {r['load_rss_mb']:.0f} MB ({r['matches']} matches)",
                f"{peer:.1f} s / {r['peer_walk_rss_mb']:.0f} MB" if peer else "-",
            ]
        )
        if peer:
            ratios[f"dry-run vs pystac walk, {r['items']} items"] = peer / r["dry_run_s"]
    heads = ["items", "index build", "add one", "dry-run (wall/RSS)", "load graph", "pystac walk"]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(heads)]
    for line in (heads, *table):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    big = rows[-1]
    targets = {
        "index >= 5000 items/s": big["index_items_per_s"] >= 5000,
        "index add of one item < 10 ms": big["add_one_index_s"] < 0.010,
        "dry-run < 5 s": big["dry_run_s"] < 5.0,
        "dry-run < 300 MB RSS": big["dry_run_rss_mb"] < 300,
    }
    for k, v in ratios.items():
        print(f"  {k}: {v:.1f}x")
    write_json(
        "catalog",
        {"rows": rows, "ratios": ratios, "targets_met": targets, "machine": machine_info()},
    )


if __name__ == "__main__":
    main()

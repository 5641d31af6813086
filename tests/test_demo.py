"""`make demo`'s job end to end, as a user runs it (slow: about 20 s on 2 cores)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.server
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    res = subprocess.run(
        [sys.executable, "-m", "eo_pipeline.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    text = res.stdout
    for line in (
        "== Summary",
        "workflow toa-indices",
        "workflow kazeosat1-pansharpened",
        "workflow monthly-median",
        "the demo customer sees",
    ):
        assert line in text, line
    assert "FAILED" not in text
    export = json.loads((out / "export" / "catalog.json").read_text())
    assert export["type"] == "Catalog"
    for folder in ("products", "pansharpened", "composites"):
        manifest = json.loads((out / folder / "manifest.json").read_text())
        assert manifest["units"] and all(u["status"] == "done" for u in manifest["units"].values())
    assert list((out / "products" / "items").glob("*/*_NDVI.tif"))
    # KazEOSat-2 Level-1 scenes corrected for the atmosphere: L2A with the AOT recorded
    sr_items = [
        json.loads(p.read_text())
        for p in (out / "sr-products" / "items").glob("kazeosat2*/*.json")
        if p.parent.name == p.stem
    ]
    assert len(sr_items) == 3
    for item in sr_items:
        assert item["properties"]["processing:level"] == "L2A"
        assert "eo_pipeline:aot550" in item["properties"] and "aot550" in item["assets"]
    from eo_pipeline.io.ingest_sentinel2 import demo_tile

    if demo_tile() is not None:  # the real Sentinel-2 L2A tile, in place, through sr-indices
        assert "ingested the real Sentinel-2 L2A tile" in text
        manifest = json.loads((out / "sr-products" / "manifest.json").read_text())
        assert any("T29UNU" in key for key in manifest["units"]), list(manifest["units"])
        assert list((out / "sr-products" / "items").glob("*T29UNU*/*_NDVI.tif"))

"""The benchmark scripts still run: `run_all.py --quick` on tiny sizes, results to a temp folder.

Speed is never asserted here (benchmarks measure it); this only keeps the scripts working and
their outputs well-formed, with every contender checked against the reference inside them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_kernel_benchmarks_run_quick(tmp_path: Path) -> None:
    names = ["radiometry", "indices", "composite", "dask_overhead"]
    env = {**os.environ, "EO_PIPELINE_BENCH_RESULTS": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--quick", "--only", ",".join(names)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for name in names:
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert data["benchmark"] == name
        assert data["ratios"], f"{name}: no ratios"
        assert all(v > 0 for refs in data["ratios"].values() for v in refs.values())
        assert data["targets_met"], f"{name}: no targets evaluated"
    assert "all benchmarks" in res.stdout


@pytest.mark.slow
def test_catalog_benchmark_runs_on_a_tiny_archive(tmp_path: Path) -> None:
    """bench_catalog on 300 synthetic items: index, dry-run, load graph and the pystac peer
    find the same matches (the script's items are read in place, as marked references)."""
    env = {**os.environ, "EO_PIPELINE_BENCH_RESULTS": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, str(BENCH / "bench_catalog.py"), "--size", "300", "--peer-max", "300"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (row,) = json.loads((tmp_path / "catalog.json").read_text())["rows"]
    assert row["items"] == 300 and row["matches"] == row["peer_matches"]
    assert 0 < row["add_one_index_s"] < row["add_one_s"]  # the index's part of one add

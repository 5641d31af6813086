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

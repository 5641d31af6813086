"""One unit processed in-process: named and custom indices together, products and item."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio

from eo_pipeline.workflows.plan import plan_units
from eo_pipeline.workflows.process import process_unit
from eo_pipeline.workflows.spec import parse_workflow

WF = """\
name: t
inputs: {{catalog: {catalog}}}
steps:
  - calibrate: {{}}
  - indices: {{names: [NDVI], formulas: {{MYNDVI: "(N - R) / (N + R)"}}}}
output: {{catalog: {out}, quicklook: false}}
resources: {{chunk_size: 128}}
"""


def test_named_and_custom_indices_in_one_unit(l1_catalog: Path, tmp_path: Path) -> None:
    wf = parse_workflow(WF.format(catalog=l1_catalog, out=tmp_path), "wf.yaml")
    unit = plan_units(wf)[0]
    before = os.environ.get("EO_PIPELINE_NUMBA_THREADS")
    result = process_unit(unit, wf, str(tmp_path), threads=1)
    assert os.environ.get("EO_PIPELINE_NUMBA_THREADS") == before  # nothing leaks out of the unit
    keys = {f.key for f in result.files}
    assert keys == {"B1", "B2", "B3", "B4", "B5", "NDVI", "MYNDVI"}  # one asset per band
    paths = {f.key: tmp_path / f.path for f in result.files}
    with rasterio.open(paths["NDVI"]) as a, rasterio.open(paths["MYNDVI"]) as b:
        np.testing.assert_allclose(a.read(1), b.read(1), rtol=1e-6, equal_nan=True)
    assert (tmp_path / result.item_path).exists()


def test_period_labels_group_dates_by_period_start() -> None:
    import datetime as dt

    import pytest

    from eo_pipeline.errors import WorkflowError
    from eo_pipeline.workflows.plan import _period_label

    may = [dt.datetime(2026, 5, d, 5, 6, tzinfo=dt.UTC) for d in (1, 14, 31)]
    assert {_period_label(t, "1MS") for t in may} == {"2026-05-01"}
    assert _period_label(dt.datetime(2026, 6, 1, tzinfo=dt.UTC), "1MS") == "2026-06-01"
    assert _period_label(may[1], "QS") == "2026-04-01"
    with pytest.raises(WorkflowError, match="not a pandas frequency"):
        _period_label(may[0], "monthly")

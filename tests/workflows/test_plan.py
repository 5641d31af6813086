"""Planning: items the steps cannot apply to are left out with the reason, before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pystac
import pytest

from eo_pipeline.errors import WorkflowError
from eo_pipeline.workflows.plan import inapplicable, plan
from eo_pipeline.workflows.runner import run
from eo_pipeline.workflows.spec import load_workflow


def _as_l2(item: pystac.Item) -> pystac.Item:
    """The item as an L2 surface-reflectance product would be catalogued (``sr_scale``)."""
    l2 = item.clone()
    l2.id = f"{item.id}_L2"
    l2.properties["processing:level"] = "L2SP"
    for asset in l2.assets.values():
        cal = asset.extra_fields.get("eo_pipeline:calibration")
        if isinstance(cal, dict):
            asset.extra_fields["eo_pipeline:calibration"] = {
                **cal,
                "sr_scale": 2.75e-05,
                "sr_offset": -0.2,
            }
    return l2


def _items(catalog: Path) -> list[pystac.Item]:
    return list(pystac.Catalog.from_file(str(catalog)).get_items(recursive=True))


def test_l2_item_left_out_of_a_toa_workflow(l1_catalog: Path, tmp_path: Path) -> None:
    items = _items(l1_catalog)
    l2 = _as_l2(items[0])
    wf = load_workflow(
        "toa-indices", inputs={"catalog": str(l1_catalog)}, output={"catalog": str(tmp_path)}
    )
    planned = plan(wf, [*items, l2])
    assert [u.key for u in planned.units] == sorted(it.id for it in items)
    ((left_id, why),) = planned.excluded
    assert left_id == l2.id
    assert "L2 surface-reflectance product (L2SP)" in why and "surface_reflectance" in why
    assert inapplicable(wf, items[0]) is None


def test_surface_reflectance_on_l1_only_is_a_plan_error(l1_catalog: Path, tmp_path: Path) -> None:
    text = (
        f"name: sr\ninputs: {{catalog: {l1_catalog}}}\nsteps:\n"
        "  - calibrate: {to: surface_reflectance}\n"
        f"output: {{catalog: {tmp_path / 'out'}}}\n"
    )
    path = tmp_path / "sr.yaml"
    path.write_text(text)
    with pytest.raises(WorkflowError, match=r"sr\.yaml:4: calibrate cannot apply") as err:
        plan(load_workflow(path))
    assert "not a surface-reflectance product" in str(err.value)


def test_dry_run_reports_left_out_items(l1_catalog: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cat"
    shutil.copytree(l1_catalog.parent, folder)
    item_file = sorted(
        p for p in folder.rglob("*.json") if p.name not in ("catalog.json", "collection.json")
    )[0]
    data = json.loads(item_file.read_text())
    for asset in data["assets"].values():
        if isinstance(asset.get("eo_pipeline:calibration"), dict):
            asset["eo_pipeline:calibration"]["sr_scale"] = 2.75e-05
    item_file.write_text(json.dumps(data))
    report = run(
        "toa-indices",
        dry_run=True,
        verbose=False,
        inputs={"catalog": str(folder / "catalog.json")},
        output={"catalog": str(tmp_path / "out")},
    )
    assert list(report.excluded) == [data["id"]]
    assert data["id"] not in report.skipped and len(report.skipped) == 3

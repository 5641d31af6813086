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
    assert left_id == f"{l2.collection_id}/{l2.id}"
    assert "L2 surface-reflectance product (L2SP)" in why and "surface_reflectance" in why
    assert inapplicable(wf, items[0]) is None


def test_surface_reflectance_on_l1_is_the_atmospheric_correction(
    l1_catalog: Path, tmp_path: Path
) -> None:
    """Level-1 scenes of a sensor with a 6S lookup table plan under surface_reflectance (the
    atmospheric correction, tests/workflows/test_sr_from_l1.py)."""
    text = (
        f"name: sr\ninputs: {{catalog: {l1_catalog}}}\nsteps:\n"
        "  - calibrate: {to: surface_reflectance}\n"
        f"output: {{catalog: {tmp_path / 'out'}}}\n"
    )
    path = tmp_path / "sr.yaml"
    path.write_text(text)
    planned = plan(load_workflow(path))
    assert planned.units and not planned.excluded


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
    assert list(report.excluded) == [f"{data['collection']}/{data['id']}"]
    assert data["id"] not in report.skipped and len(report.skipped) == 3


def _at(item: pystac.Item, suffix: str, day: int, shift_lon: float) -> pystac.Item:
    import datetime as dt

    out = item.clone()
    out.id = f"{item.id}_{suffix}"
    out.datetime = dt.datetime(2024, 5, day, 6, 0, tzinfo=dt.UTC)
    assert item.bbox is not None
    w, s, e, n = item.bbox
    out.bbox = [w + shift_lon, s, e + shift_lon, n]
    return out


def test_composites_are_taken_per_place(l1_catalog: Path, tmp_path: Path) -> None:
    """Scenes of one period that do not overlap are separate composites; a place seen on one
    date only is left out with the reason (never a mosaic spanning the gaps between scenes)."""
    base = _items(l1_catalog)[0]
    assert base.bbox is not None
    width = base.bbox[2] - base.bbox[0]
    items = [
        _at(base, "a", 10, 0.0),
        _at(base, "b", 12, width / 3),  # overlaps a
        _at(base, "c", 13, 5.0),  # far away, alone
        _at(base, "d", 20, 5.0 + width / 2),  # overlaps c
        _at(base, "e", 21, -5.0),  # far away, alone
    ]
    path = tmp_path / "median.yaml"
    path.write_text(
        f"name: median\ninputs: {{catalog: {l1_catalog}}}\nsteps:\n"
        "  - calibrate: {to: toa_reflectance}\n"
        "  - composite: {method: median, period: 1MS}\n"
        f"output: {{catalog: {tmp_path / 'out'}}}\n"
    )
    planned = plan(load_workflow(path), items)
    members = sorted(tuple(sorted(u.item_ids)) for u in planned.units)
    assert members == [(items[0].id, items[1].id), (items[2].id, items[3].id)]
    assert len({u.key for u in planned.units}) == 2
    assert all(u.key.startswith(f"{base.collection_id}_2024-05-01_N") for u in planned.units)
    ((left, why),) = planned.excluded
    assert left.endswith(f"/{items[4].id}") and "two or more dates of the same place" in why


def test_one_place_keeps_the_plain_unit_key(l1_catalog: Path, tmp_path: Path) -> None:
    base = _items(l1_catalog)[0]
    items = [_at(base, "a", 10, 0.0), _at(base, "b", 11, 0.0)]
    wf = load_workflow(
        "monthly-median", inputs={"catalog": str(l1_catalog)}, output={"catalog": str(tmp_path)}
    )
    (unit,) = plan(wf, items).units
    assert unit.key == f"{base.collection_id}_2024-05-01"


def test_nothing_left_is_an_error(l1_catalog: Path, tmp_path: Path) -> None:
    base = _items(l1_catalog)[0]
    wf = load_workflow(
        "monthly-median", inputs={"catalog": str(l1_catalog)}, output={"catalog": str(tmp_path)}
    )
    with pytest.raises(WorkflowError, match=r"nothing left to run.*two or more dates"):
        plan(wf, [_at(base, "a", 10, 0.0)])


def test_two_places_in_one_period_write_apart(tmp_path: Path) -> None:
    """Two revisit series at two places in one month: two composites, two product folders,
    nothing overwritten (the place label is in the unit key and the product names)."""
    from eo_pipeline.simulation.simulator import simulate
    from eo_pipeline.workflows.process import process_unit

    catalog = tmp_path / "l1"
    for seed in (1, 2):
        simulate(
            "kazeosat2", catalog, scenes=2, size=64, seed=seed, revisit=True, date="2026-05-02"
        )
    path = tmp_path / "median.yaml"
    path.write_text(
        f"name: median\ninputs: {{catalog: {catalog / 'catalog.json'}}}\nsteps:\n"
        "  - calibrate: {to: toa_reflectance}\n"
        "  - composite: {method: median, period: 1MS}\n"
        f"output: {{catalog: {tmp_path / 'out'}, quicklook: false}}\n"
    )
    wf = load_workflow(path)
    units = plan(wf).units
    assert len(units) == 2 and all(u.site and u.key.endswith(u.site) for u in units)
    folders = set()
    for unit in units:
        result = process_unit(unit, wf, str(tmp_path / "out"), threads=1, scheduler="sync")
        folders |= {Path(f.path).parent for f in result.files}
    assert len(folders) == 2
    products = sorted((tmp_path / "out" / "items").glob("*/*_B3.tif"))  # one file per band
    assert len(products) == 2 and products[0].read_bytes() != products[1].read_bytes()


def test_places_with_one_label_get_distinct_keys(l1_catalog: Path, tmp_path: Path) -> None:
    base = _items(l1_catalog)[0]
    assert base.bbox is not None
    w, s, _, n = base.bbox

    def tiny(suffix: str, day: int, west: float) -> pystac.Item:
        out = _at(base, suffix, day, 0.0)
        out.bbox = [west, s, west + 0.0004, n]
        return out

    items = [tiny("a", 10, w), tiny("b", 11, w), tiny("c", 12, w + 0.001), tiny("d", 13, w + 0.001)]
    wf = load_workflow(
        "monthly-median", inputs={"catalog": str(l1_catalog)}, output={"catalog": str(tmp_path)}
    )
    units = plan(wf, items).units
    assert len(units) == 2 and units[0].key != units[1].key
    assert units[0].site != units[1].site


def test_antimeridian_places(l1_catalog: Path, tmp_path: Path) -> None:
    """Footprints across +-180 degrees overlap each other and their neighbours either side."""
    from eo_pipeline.workflows.plan import _boxes_meet, _site_label

    across = [179.5, 60.0, -179.5, 61.0]
    assert _boxes_meet(across, across)
    assert _boxes_meet(across, [179.8, 60.5, 179.9, 60.7])
    assert _boxes_meet([-179.9, 60.5, -179.6, 60.7], across)
    assert not _boxes_meet(across, [170.0, 60.0, 171.0, 61.0])
    base = _items(l1_catalog)[0]
    items = [_at(base, "a", 10, 0.0), _at(base, "b", 12, 0.0)]
    items[0].bbox, items[1].bbox = across, [-179.9, 60.2, -179.2, 60.8]
    assert _site_label(items) in ("N60.50W179.85", "N60.50E180.15")
    wf = load_workflow(
        "monthly-median", inputs={"catalog": str(l1_catalog)}, output={"catalog": str(tmp_path)}
    )
    assert len(plan(wf, items).units) == 1  # one place, two dates (either order)
    assert len(plan(wf, items[::-1]).units) == 1


def test_same_id_in_another_collection_is_not_left_out(l1_catalog: Path, tmp_path: Path) -> None:
    items = _items(l1_catalog)
    l2 = _as_l2(items[0])
    l2.id = items[0].id
    l2.collection_id = "kazeosat2-l2"
    wf = load_workflow(
        "toa-indices", inputs={"catalog": str(l1_catalog)}, output={"catalog": str(tmp_path)}
    )
    planned = plan(wf, [*items, l2])
    assert items[0].id in {u.key for u in planned.units}
    assert [name for name, _ in planned.excluded] == [f"kazeosat2-l2/{items[0].id}"]


@pytest.mark.parametrize(
    ("interval", "inside"),
    [
        ("2024-05-01/2024-05-31", True),  # dates only: whole days, UTC
        ("2024-05-10", True),  # one day
        ("2024-05-11", False),
        ("2024-05-10T06:00:00Z", True),  # an instant
        ("../2024-05-09", False),
        ("2024-05-10T00:00:00/..", True),  # naive: UTC
    ],
)
def test_datetime_intervals(l1_catalog: Path, interval: str, inside: bool) -> None:
    from eo_pipeline.workflows.plan import _in_range

    item = _at(_items(l1_catalog)[0], "a", 10, 0.0)  # 2024-05-10T06:00Z
    assert _in_range(item, interval) is inside


def test_chained_footprints_too_large_for_one_composite(l1_catalog: Path, tmp_path: Path) -> None:
    """Scenes overlapping in a chain across the country make one place; its grid would be
    tens of gigapixels: it is left out with the size and the knob, not started."""
    base = _items(l1_catalog)[0]
    items = []
    for k in range(30):
        it = _at(base, f"c{k}", 1 + k % 28, 0.0)
        it.bbox = [50.0 + k, 45.0, 51.2 + k, 46.0]
        items.append(it)
    ok = [_at(base, "a", 10, 0.0), _at(base, "b", 12, 0.0)]
    ok[0].bbox = ok[1].bbox = [40.0, 40.0, 40.5, 40.4]
    wf = load_workflow(
        "monthly-median", inputs={"catalog": str(l1_catalog)}, output={"catalog": str(tmp_path)}
    )
    planned = plan(wf, [*items, *ok])
    assert [sorted(u.item_ids) for u in planned.units] == [sorted(i.id for i in ok)]
    reasons = {why for _, why in planned.excluded}
    (why,) = reasons
    assert "gigapixels per band" in why and "max_composite_gpix" in why
    assert len(planned.excluded) == 30
    roomy = load_workflow(
        "monthly-median",
        inputs={"catalog": str(l1_catalog)},
        output={"catalog": str(tmp_path)},
        resources={"max_composite_gpix": 1000},
    )
    assert len(plan(roomy, [*items, *ok]).units) == 2


@pytest.mark.parametrize("value", [0, -1, "big", True])
def test_max_composite_gpix_validated(tmp_path: Path, value: object) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        "name: w\ninputs: {catalog: c}\nsteps: [{calibrate: {}}]\noutput: {catalog: o}\n"
        f"resources: {{max_composite_gpix: {json.dumps(value)}}}\n"
    )
    with pytest.raises(WorkflowError, match=r"w\.yaml:5.*max_composite_gpix"):
        load_workflow(path)


def test_inputs_filter_selects_through_cql2(l1_catalog: Path, tmp_path: Path) -> None:
    """``inputs.filter`` (CQL2, as the export API takes it) selects units on the index, on a
    geoparquet export and on a walked collection alike; a bad one fails at parsing."""
    import json as _json

    from eo_pipeline.catalogs.geoparquet import export_geoparquet
    from eo_pipeline.catalogs.store import read_items

    items = sorted(read_items(l1_catalog), key=lambda it: it.properties["view:sun_elevation"])
    cut = items[len(items) // 2].properties["view:sun_elevation"]
    want = sorted(it.id for it in items if it.properties["view:sun_elevation"] >= cut)
    parquet = tmp_path / "items.parquet"
    export_geoparquet(l1_catalog, parquet)
    collection = next(l1_catalog.parent.glob("*/collection.json"))
    for source in (l1_catalog, parquet, collection):
        for flt in (f"view:sun_elevation >= {cut}",
                    {"op": ">=", "args": [{"property": "view:sun_elevation"}, cut]}):  # fmt: skip
            text = (
                f"name: f\ninputs:\n  catalog: {source}\n  filter: {_json.dumps(flt)}\n"
                f"steps: [calibrate]\noutput: {{catalog: {tmp_path / 'out'}}}\n"
            )
            path = tmp_path / "f.yaml"
            path.write_text(text)
            got = sorted(u.key for u in plan(load_workflow(path)).units)
            assert got == want, (source, flt)
    path.write_text(text.replace("view:sun_elevation", "view:sun_height"))
    with pytest.raises(WorkflowError, match=r"f\.yaml:4: .*sun_height"):
        load_workflow(path)

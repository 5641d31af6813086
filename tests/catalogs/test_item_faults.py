"""Malformed items and metadata written as attacks (issue #16 item 6), and a fuzzed item parser.

The audit: an item JSON with no `properties`, no `datetime`, `datetime: 12345`,
`view:sun_elevation: "high"`, `bbox: "1,2,3,4"`, or not JSON at all gave raw
KeyError/STACError/TypeError/ValueError/JSONDecodeError from `load` and tracebacks from
`run`; an L2 MTL with a band's SR MULT and ADD removed was ingested.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eo_pipeline.catalogs.readers.landsat import read_mtl
from eo_pipeline.catalogs.store import item_from_dict
from eo_pipeline.errors import CatalogError, MetadataError
from eo_pipeline.io.loading import load
from eo_pipeline.simulation.simulator import simulate
from tests.conftest import LANDSAT_ID
from tests.strategies import mutated


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sim-items")
    simulate("kazeosat2", root, scenes=1, size=64, seed=4)
    return root


def _item_file(root: Path) -> Path:
    (path,) = [p for p in root.rglob("*.json") if p.parent.name == p.stem]
    return path


@pytest.fixture(scope="module")
def good(sim: Path) -> dict[str, Any]:
    return json.loads(_item_file(sim).read_text())


ATTACKS = {
    "no properties": lambda d: d.pop("properties"),
    "no datetime": lambda d: d["properties"].pop("datetime"),
    "datetime 12345": lambda d: d["properties"].update(datetime=12345),
    "sun elevation high": lambda d: d["properties"].update({"view:sun_elevation": "high"}),
    "bbox string": lambda d: d.update(bbox="1,2,3,4"),
    "asset not an object": lambda d: d["assets"].update(B3="B3.tif"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_malformed_item_is_named_by_load_and_plan(sim: Path, tmp_path: Path, attack: str) -> None:
    cat = tmp_path / "cat"
    shutil.copytree(sim, cat)
    path = _item_file(cat)
    doc = json.loads(path.read_text())
    ATTACKS[attack](doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(CatalogError, match=rf"{path.name}: not a usable STAC item: \$"):
        load(cat / "catalog.json")


def test_item_that_is_not_json(sim: Path, tmp_path: Path) -> None:
    cat = tmp_path / "cat"
    shutil.copytree(sim, cat)
    path = _item_file(cat)
    path.write_text("{not json")
    with pytest.raises(CatalogError, match=rf"{path.name}: cannot read STAC JSON"):
        load(cat / "catalog.json")


FIELDS = [
    ("properties",),
    ("properties", "datetime"),
    ("properties", "view:sun_elevation"),
    ("properties", "view:sun_azimuth"),
    ("properties", "eo:cloud_cover"),
    ("properties", "gsd"),
    ("properties", "eo_pipeline:earth_sun_distance"),
    ("properties", "proj:code"),
    ("bbox",),
    ("geometry",),
    ("assets",),
    ("links",),
    ("id",),
    ("stac_extensions",),
    ("type",),
]


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzzed_item_builds_or_is_a_catalog_error(
    good: dict[str, Any], data: st.DataObject
) -> None:
    doc = data.draw(mutated(good, FIELDS))
    try:
        item = item_from_dict(doc, "fuzz.json")
    except CatalogError as err:
        assert str(err).startswith("fuzz.json: not a usable STAC item: $")
        return
    assert item.datetime is not None or "start_datetime" in item.properties


@pytest.mark.realdata
def test_l2_mtl_without_a_bands_sr_rescaling(landsat_dir: Path, tmp_path: Path) -> None:
    text = (landsat_dir / f"{LANDSAT_ID}_MTL.txt").read_text()
    lines = [
        line
        for line in text.splitlines()
        if not line.strip().startswith(("REFLECTANCE_MULT_BAND_4 ", "REFLECTANCE_ADD_BAND_4 "))
    ]
    mtl = tmp_path / f"{LANDSAT_ID}_MTL.txt"
    mtl.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        MetadataError,
        match=r"band B4: LEVEL2_SURFACE_REFLECTANCE_PARAMETERS has no REFLECTANCE_MULT_BAND_4",
    ):
        read_mtl(mtl)

"""Corrupt inputs written as attacks (issue #16 item 2): none passes as valid.

The audit: a band truncated after its header was ingested with its truncated checksum (so
`validate --check-assets` said valid); `proj:shape: [10, 10]` on a 256 x 256 asset loaded
10 x 10 and wrote 10 x 10 products; a 3-band file catalogued as one band gave band 1; an
href outside the catalog root was accepted by `load` and `validate --check-assets`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.catalogs.tiff import tiff_problem
from eo_pipeline.catalogs.validation import validate
from eo_pipeline.errors import InputDataError, StacValidationError
from eo_pipeline.io.ingestion import ingest
from eo_pipeline.io.loading import load
from eo_pipeline.simulation.simulator import simulate
from tests.conftest import LANDSAT_ID


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    simulate("kazeosat2", root, scenes=1, size=64, seed=2)
    return root


@pytest.fixture
def cat(sim: Path, tmp_path: Path) -> Path:
    """A private copy of the simulated catalog (files copied, not linked)."""
    shutil.copytree(sim, tmp_path / "cat", copy_function=shutil.copyfile)
    return tmp_path / "cat"


def _item_file(cat: Path) -> Path:
    (path,) = [p for p in cat.rglob("*.json") if p.parent.name == p.stem]
    return path


def _edit(cat: Path, change) -> dict:  # type: ignore[no-untyped-def]
    path = _item_file(cat)
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return doc


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.realdata
def test_truncated_band_is_not_ingested(landsat_dir: Path, tmp_path: Path) -> None:
    scene = tmp_path / "scene"
    shutil.copytree(landsat_dir, scene, copy_function=shutil.copyfile)
    _truncate(scene / f"{LANDSAT_ID}_SR_B4.TIF")
    with pytest.raises(
        InputDataError, match=r"SR_B4.TIF is incomplete or corrupt: .* ends at byte"
    ):
        ingest(scene, tmp_path / "catalog")
    assert not (tmp_path / "catalog").exists()


def test_truncated_asset_fails_validate_and_load(cat: Path) -> None:
    """As the old ingest left it: the truncated file's size and checksum recorded."""
    band = next(p for p in _item_file(cat).parent.glob("*B3*.tif"))
    _truncate(band)
    size, checksum = band.stat().st_size, file_checksum(band)
    _edit(cat, lambda d: d["assets"]["B3"].update({"file:size": size, "file:checksum": checksum}))
    with pytest.raises(StacValidationError, match="incomplete or corrupt"):
        validate(cat, check_assets=True)
    with pytest.raises(InputDataError, match=rf"asset 'B3' \({band}\): the file is incomplete"):
        load(cat, bands=["B3"])


def test_proj_shape_disagreeing_with_the_file(cat: Path) -> None:
    _edit(cat, lambda d: d["assets"]["B3"].update({"proj:shape": [10, 10]}))
    with pytest.raises(
        InputDataError, match=r"64 x 64 pixels but the item's proj:shape says 10 x 10"
    ):
        load(cat, bands=["B3"])


def test_three_band_file_as_one_band_asset(cat: Path) -> None:
    item = _item_file(cat)
    band = item.parent / json.loads(item.read_text())["assets"]["B3"]["href"]
    with rasterio.open(band) as src:
        profile, data = src.profile, src.read(1)
    profile.update(count=3)
    band.unlink()
    with rasterio.open(band, "w", **profile) as dst:
        dst.write(np.stack([data] * 3))
    with pytest.raises(InputDataError, match=r"has 3 band\(s\) but the item declares 1"):
        load(cat, bands=["B3"])


def test_crs_disagreeing_with_the_item(cat: Path) -> None:
    _edit(
        cat,
        lambda d: (
            d["properties"].update({"proj:code": "EPSG:3857", "proj:epsg": 3857})
            or [(a.pop("proj:code", None), a.pop("proj:epsg", None)) for a in d["assets"].values()]
        ),
    )
    with pytest.raises(
        InputDataError, match=r"in EPSG:\d+ but the item's proj:code says EPSG:3857"
    ):
        load(cat, bands=["B3"])


def test_href_outside_the_catalog_is_refused_unless_allowed(cat: Path, tmp_path: Path) -> None:
    item = _item_file(cat)
    band = item.parent / json.loads(item.read_text())["assets"]["B3"]["href"]
    outside = tmp_path / "elsewhere.tif"
    shutil.copyfile(band, outside)
    rel = "../" * (len(item.parent.relative_to(tmp_path).parts)) + "elsewhere.tif"
    _edit(cat, lambda d: d["assets"]["B3"].update({"href": rel}))
    with pytest.raises(InputDataError, match="points outside the catalog folder"):
        load(cat, bands=["B3"])
    with pytest.raises(StacValidationError, match="points outside the catalog folder"):
        validate(cat, check_assets=True)
    assert load(cat, bands=["B3"], allow_outside=True)["B3"].shape[-2:] == (64, 64)
    assert validate(cat, check_assets=True, allow_outside=True).assets_checked > 0


def _point_b3_at(cat: Path, href: str, **fields: object) -> None:
    _edit(cat, lambda d: d["assets"]["B3"].update({"href": href, **fields}))


@pytest.mark.parametrize("form", ["absolute", "file-url", "symlink"])
def test_local_href_leading_out_is_refused_unless_allowed(
    cat: Path, tmp_path: Path, form: str
) -> None:
    """The audit's gap: absolute paths and file:// URLs were taken as explicit references."""
    item = _item_file(cat)
    band = item.parent / json.loads(item.read_text())["assets"]["B3"]["href"]
    outside = tmp_path / "elsewhere.tif"
    shutil.copyfile(band, outside)
    if form == "symlink":  # a link inside the catalog to a file outside it
        (item.parent / "B3-link.tif").symlink_to(outside)
    href = {"absolute": str(outside), "file-url": outside.as_uri(), "symlink": "./B3-link.tif"}
    _point_b3_at(cat, href[form])
    name = item.stem
    with pytest.raises(
        InputDataError,
        match=rf"item '{name}' asset 'B3': href .* points outside the catalog folder .*"
        r"eo_pipeline:reference.*allow_outside=True",
    ):
        load(cat, bands=["B3"])
    with pytest.raises(StacValidationError, match=r"\$.assets.B3.href: href .* points outside"):
        validate(cat, check_assets=True)
    assert load(cat, bands=["B3"], allow_outside=True)["B3"].shape[-2:] == (64, 64)
    assert validate(cat, check_assets=True, allow_outside=True).assets_checked > 0


def test_asset_marked_as_read_in_place_is_accepted(cat: Path, tmp_path: Path) -> None:
    item = _item_file(cat)
    band = item.parent / json.loads(item.read_text())["assets"]["B3"]["href"]
    outside = tmp_path / "elsewhere.tif"
    shutil.copyfile(band, outside)
    _point_b3_at(cat, str(outside), **{"eo_pipeline:reference": True})
    assert validate(cat, check_assets=True).assets_checked > 0
    assert int(load(cat, bands=["B3"])["B3"].max()) > 0
    _point_b3_at(cat, str(outside), **{"eo_pipeline:reference": "yes"})  # only true counts
    with pytest.raises(InputDataError, match="points outside"):
        load(cat, bands=["B3"])


@pytest.mark.parametrize(
    "href", ["/vsimem/x.tif", "/vsicurl/file:///etc/hostname", "/vsisubfile/0_10,/etc/hostname"]
)
def test_gdal_virtual_paths_are_refused(cat: Path, href: str) -> None:
    _point_b3_at(cat, href)
    with pytest.raises(InputDataError, match="GDAL virtual path that names no file"):
        load(cat, bands=["B3"])
    with pytest.raises(StacValidationError, match="GDAL virtual path"):
        validate(cat)


def test_remote_hrefs_are_not_fetched_by_validate(cat: Path) -> None:
    _point_b3_at(cat, "https://example.invalid/B3.tif")
    report = validate(cat, check_assets=True)  # no network: remote assets are not checked
    assert report.assets_checked > 0


def test_whole_tiffs_have_no_problem(sim: Path) -> None:
    tifs = list(sim.rglob("*.tif"))
    assert tifs and all(tiff_problem(p) is None for p in tifs)

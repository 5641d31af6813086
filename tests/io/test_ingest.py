"""Ingest of real and broken scene folders into the static catalog."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine

from eo_pipeline.catalogs import sensors
from eo_pipeline.catalogs.validation import schemas_dir, validate
from eo_pipeline.errors import (
    CatalogError,
    EOPipelineError,
    InputDataError,
    MetadataError,
    UnknownSensorError,
)
from eo_pipeline.io.ingestion import QA_CLOUD, cloud_cover_from_qa, ingest, ingest_demo_scene
from tests.conftest import LANDSAT_ID

pytestmark = pytest.mark.realdata


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


@pytest.fixture
def scene(landsat_dir: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the real Landsat scene."""
    dst = tmp_path / "scene"
    shutil.copytree(landsat_dir, dst, copy_function=shutil.copyfile)
    return dst


@pytest.fixture(scope="module")
def catalog(landsat_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cat = tmp_path_factory.mktemp("ingested") / "catalog"
    ingest(landsat_dir, cat)
    return cat


def test_real_scene_item(catalog: Path, landsat_dir: Path) -> None:
    folder = catalog / "landsat8-l2sp" / LANDSAT_ID
    import pystac

    item = pystac.Item.from_file(str(folder / f"{LANDSAT_ID}.json"))
    assert item.collection_id == "landsat8-l2sp"
    data = [k for k, a in item.assets.items() if a.roles == ["data"]]
    assert data == [f"B{i}" for i in range(1, 8)]
    rb = item.assets["B4"].extra_fields["raster:bands"][0]
    assert (rb["data_type"], rb["nodata"], rb["scale"], rb["offset"]) == (
        "uint16",
        0,
        2.75e-05,
        -0.2,
    )
    assert item.assets["B4"].extra_fields["eo:bands"][0]["common_name"] == "red"
    assert item.assets["B4"].extra_fields["proj:code"] == "EPSG:32619"
    assert item.assets["QA_PIXEL"].roles == ["cloud"]
    assert item.assets["QA_RADSAT"].roles == ["saturation"]
    assert {k for k, a in item.assets.items() if a.roles == ["metadata"]} == {
        "SR_QA_AEROSOL",
        "MTL_txt",
        "MTL_json",
        "MTL_xml",
        "ANG",
    }
    assert item.assets["B4"].href == f"./{LANDSAT_ID}_SR_B4.TIF"
    p = item.properties
    assert p["view:sun_elevation"] == pytest.approx(59.49769288)
    # eo:cloud_cover is the provider's figure (USGS MTL CLOUD_COVER), saying so
    assert p["eo:cloud_cover"] == 75.65
    assert "USGS MTL" in p["eo_pipeline:cloud_cover_method"]
    assert p["sat:relative_orbit"] == 1 and p["eo_pipeline:wrs_row"] == 70

    # our own figures, recomputed independently from the QA band, each class over non-fill
    with rasterio.open(landsat_dir / f"{LANDSAT_ID}_QA_PIXEL.TIF") as ds:
        qa = ds.read(1)
    valid = (qa & 1) == 0
    for name, bit in (("cloud", 3), ("shadow", 4), ("cirrus", 2), ("snow", 5), ("clear", 6)):
        share = 100.0 * np.count_nonzero(valid & ((qa >> bit) & 1 == 1)) / np.count_nonzero(valid)
        assert p[f"eo_pipeline:{name}_percent"] == pytest.approx(share, abs=1e-4), name
    assert p["eo_pipeline:cover_source"] == "QA_PIXEL"
    expected = 100.0 * np.count_nonzero(valid & ((qa & 0b11000) != 0)) / np.count_nonzero(valid)
    assert cloud_cover_from_qa(
        landsat_dir / f"{LANDSAT_ID}_QA_PIXEL.TIF", rows_per_block=7
    ) == pytest.approx(expected)
    # The cloud bit alone reproduces the MTL's CLOUD_COVER (75.65 %) on the downsampled band.
    qa_file = landsat_dir / f"{LANDSAT_ID}_QA_PIXEL.TIF"
    assert cloud_cover_from_qa(qa_file, flags=QA_CLOUD) == pytest.approx(75.65, abs=0.1)


@pytest.mark.skipif(schemas_dir() is None, reason="no local STAC schemas")
def test_real_catalog_valid_offline(catalog: Path) -> None:
    report = validate(catalog, check_assets=True)
    assert report.counts == {"Catalog": 1, "Collection": 1, "Item": 1}
    assert report.checksums_verified == 14 and report.extra["fetched"] == []


def test_ingest_twice_needs_overwrite(catalog: Path, landsat_dir: Path) -> None:
    before = _tree(catalog)
    with pytest.raises(CatalogError, match="overwrite=True"):
        ingest(landsat_dir, catalog)
    assert _tree(catalog) == before


def _garbage(path: Path) -> None:
    path.unlink()
    path.write_bytes(b"II*\x00 this is not a raster " * 50)


def _write_like(
    path: Path, *, count: int = 1, dtype: str = "uint16", size: int | None = None
) -> None:
    with rasterio.open(path) as src:
        profile = src.profile
    size = size or profile["width"]
    t = profile["transform"]
    profile.update(
        driver="GTiff",
        count=count,
        dtype=dtype,
        width=size,
        height=size,
        transform=Affine(
            t.a * profile["width"] / size, 0, t.c, 0, t.e * profile["height"] / size, t.f
        ),
    )
    path.unlink()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((count, size, size), dtype=dtype))


def _edit_mtl(scene: Path, old: str, new: str) -> None:
    for suffix in ("json", "xml"):
        (scene / f"{LANDSAT_ID}_MTL.{suffix}").unlink()
    mtl = scene / f"{LANDSAT_ID}_MTL.txt"
    text = mtl.read_text()
    assert re.search(old, text)
    mtl.write_text(re.sub(old, new, text))


BROKEN = {
    "missing MTL": (
        lambda s: [p.unlink() for p in s.glob("*_MTL.*")],
        MetadataError,
        "no product metadata",
    ),
    "unknown sensor": (
        lambda s: _edit_mtl(s, r'SPACECRAFT_ID = "LANDSAT_8"', 'SPACECRAFT_ID = "LANDSAT_42"'),
        UnknownSensorError,
        "LANDSAT_42|landsat42",
    ),
    "garbage TIF": (
        lambda s: _garbage(s / f"{LANDSAT_ID}_SR_B3.TIF"),
        InputDataError,
        "SR_B3.TIF (is not a readable raster|is incomplete or corrupt)",
    ),
    "two-band file": (
        lambda s: _write_like(s / f"{LANDSAT_ID}_SR_B3.TIF", count=2),
        InputDataError,
        "SR_B3.TIF has 2 bands",
    ),
    "float band": (
        lambda s: _write_like(s / f"{LANDSAT_ID}_SR_B3.TIF", dtype="float32"),
        InputDataError,
        "float32 but sensor landsat8 band B3 is uint16",
    ),
    "other size": (
        lambda s: _write_like(s / f"{LANDSAT_ID}_SR_B3.TIF", size=256),
        InputDataError,
        "has shape \\(256, 256\\)",
    ),
    "every band missing": (
        lambda s: [p.unlink() for p in s.glob(f"{LANDSAT_ID}_SR_B*.TIF")],
        InputDataError,
        "missing: B1",
    ),
    "stray band": (
        lambda s: shutil.copyfile(s / f"{LANDSAT_ID}_SR_B5.TIF", s / f"{LANDSAT_ID}_SR_B8.TIF"),
        InputDataError,
        "SR_B8.TIF are not named by",
    ),
    "extent vs MTL": (
        lambda s: _edit_mtl(
            s, r"CORNER_UR_LON_PRODUCT = -66\.61945", "CORNER_UR_LON_PRODUCT = -65.61945"
        ),
        InputDataError,
        "does not match the footprint",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_bad_input_writes_nothing(case: str, scene: Path, tmp_path: Path) -> None:
    breaker, error, pattern = BROKEN[case]
    cat = tmp_path / "catalog"
    ingest(scene, cat, asset_mode="copy")  # a catalog holding the good scene
    before = _tree(cat)
    breaker(scene)
    with pytest.raises(error, match=pattern) as err:
        ingest(scene, cat, overwrite=True)
    assert isinstance(err.value, EOPipelineError)
    assert _tree(cat) == before
    fresh = tmp_path / "fresh"
    with pytest.raises(error):
        ingest(scene, fresh)
    assert not fresh.exists()


def test_sentinel2_metadata_only(s2_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="metadata only"):
        ingest(s2_dir, tmp_path / "catalog")
    assert not (tmp_path / "catalog").exists()


def test_sentinel2_with_images(s2_dir: Path, tmp_path: Path) -> None:
    """A SAFE folder with (small, synthetic) band images ingests with S2 scale/offset."""
    safe = tmp_path / "S2A.SAFE"
    safe.mkdir()
    shutil.copyfile(s2_dir / "MTD_MSIL1C.xml", safe / "MTD_MSIL1C.xml")
    shutil.copyfile(s2_dir / "MTD_TL.xml", safe / "MTD_TL.xml")
    img = safe / "GRANULE" / "L1C_T01LAC_A026481_20200717T221944" / "IMG_DATA"
    img.mkdir(parents=True)
    tif = tmp_path / "band.tif"
    with rasterio.open(
        tif,
        "w",
        driver="GTiff",
        width=61,
        height=61,
        count=1,
        dtype="uint16",
        crs="EPSG:32701",
        transform=Affine(1800.0, 0, 99960.0, 0, -1800.0, 8300020.0),
    ) as ds:
        ds.write(np.full((1, 61, 61), 1200, dtype="uint16"))
    for band in sensors.get("sentinel2a").band_ids:
        rasterio.shutil.copy(tif, img / f"T01LAC_20200717T221941_{band}.jp2", driver="JP2OpenJPEG")
    item = ingest(safe, tmp_path / "catalog")
    assert item.collection_id == "sentinel2a-l1c"
    b04 = item.assets["B04"]
    assert b04.media_type == "image/jp2"
    assert b04.extra_fields["raster:bands"][0]["scale"] == 0.0001
    assert item.properties["sat:orbit_state"] == "descending"
    assert item.properties["sat:relative_orbit"] == 29
    assert validate(tmp_path / "catalog").counts["Item"] == 1


def test_demo_stage(landsat_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EO_PIPELINE_REAL_DATA", str(landsat_dir.parent))
    item, report = ingest_demo_scene(tmp_path / "demo-output")
    assert (tmp_path / "demo-output" / "catalog" / "catalog.json").is_file()
    assert report.counts["Item"] == 1 and item.id == LANDSAT_ID
    item2, _ = ingest_demo_scene(tmp_path / "demo-output")  # re-runnable
    assert item2.id == item.id


def test_cli_ingest_and_validate(
    landsat_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eo_pipeline.cli import main

    cat = str(tmp_path / "catalog")
    assert main(["ingest", str(landsat_dir), "--catalog", cat]) == 0
    assert "7 bands (B1 B2 B3 B4 B5 B6 B7)" in capsys.readouterr().out
    assert main(["validate", cat, "--check-assets"]) == 0
    assert "checksums verified: 14" in capsys.readouterr().out
    assert main(["ingest", str(landsat_dir), "--catalog", cat]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["ingest", str(landsat_dir), "--catalog", cat, "--overwrite"]) == 0

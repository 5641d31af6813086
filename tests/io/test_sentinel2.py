"""Sentinel-2 SAFE products (the real L2A tile at 60 m): read, ingest in place, load, calibrate."""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

import eo_pipeline as eo
from eo_pipeline.catalogs.readers.sentinel2 import read_granules
from eo_pipeline.catalogs.store import read_items
from eo_pipeline.catalogs.validation import validate
from eo_pipeline.errors import (
    CalibrationError,
    InputDataError,
    MetadataError,
    StacValidationError,
    WorkflowError,
)
from eo_pipeline.io.ingestion import ingest

pytestmark = pytest.mark.realdata

GRANULE = "GRANULE/L2A_T29UNU_A038058_20221005T115407"
R60 = f"{GRANULE}/IMG_DATA/R60m"


def _mirror(safe: Path, dest: Path, skip: str | None = None) -> Path:
    """A copy of the SAFE tree made of symbolic links (cheap), without files matching ``skip``."""
    out = dest / safe.name
    for root, _, files in os.walk(safe):
        rel = Path(root).relative_to(safe)
        (out / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            if skip is None or not re.search(skip, name):
                (out / rel / name).symlink_to(Path(root) / name)
    return out


def _mtd_value(safe: Path, tag: str) -> str:
    match = re.search(rf"<{tag}>([^<]+)</{tag}>", (safe / "MTD_MSIL2A.xml").read_text())
    assert match is not None
    return match.group(1)


@pytest.fixture(scope="module")
def catalog(s2_l2a_safe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cat = tmp_path_factory.mktemp("s2") / "catalog"
    ingest(s2_l2a_safe, cat)
    return cat


@pytest.fixture(scope="module")
def loaded(catalog: Path) -> xr.Dataset:
    # decoded once (JPEG 2000 is slow) and shared by the tests below, numpy-backed
    return eo.load(catalog, bands=["B02", "B03", "B04", "B8A", "B11", "SCL"]).load()


def test_metadata_as_printed(s2_l2a_safe: Path) -> None:
    meta = eo.read_metadata(s2_l2a_safe)
    assert meta.processing_level == "L2A" and meta.processing_baseline == "04.00"
    assert meta.cloud_cover == float(_mtd_value(s2_l2a_safe, "Cloud_Coverage_Assessment"))
    assert meta.epsg == 32629 and meta.mgrs_tile == "29UNU"
    assert "B10" not in meta.bands and len(meta.bands) == 12
    b04 = meta.band("B04")
    assert (b04.sr_scale, b04.sr_offset, b04.reflectance_mult) == (1e-4, -0.1, None)
    assert meta.extra["quantification"] == {"BOA": 10000.0, "AOT": 1000.0, "WVP": 1000.0}
    assert meta.sun_elevation == pytest.approx(90 - 57.820574357679, abs=1e-12)
    assert meta.extra["scl_classes"][9] == "cloud_high_proba"
    assert eo.read_metadata(s2_l2a_safe / "MTD_MSIL2A.xml") == meta


def test_ingest_in_place_valid(catalog: Path, s2_l2a_safe: Path) -> None:
    report = validate(catalog, check_assets=True)
    assert report.counts["Item"] == 1 and report.checksums_verified == report.assets_checked
    (item,) = read_items(catalog)
    assert item.collection_id == "sentinel2a-l2a" and item.properties["gsd"] == 60.0
    assert item.properties["eo:cloud_cover"] == float(
        _mtd_value(s2_l2a_safe, "Cloud_Coverage_Assessment")
    )
    assert item.properties["eo_pipeline:bands_not_delivered"] == ["B08"]  # 10 m only in L2A
    for key in ("B01", "B8A", "AOT", "WVP", "SCL", "MSK_CLDPRB_60m", "MSK_DETFOO_B04", "MTD_TL"):
        href = item.assets[key].href
        assert href.startswith(str(s2_l2a_safe)), href  # referenced in place, nothing copied
        assert item.assets[key].extra_fields["eo_pipeline:reference"] is True  # on purpose
    folder = catalog / item.collection_id / item.id
    assert [p.name for p in folder.iterdir()] == [f"{item.id}.json"]
    assert item.assets["AOT"].extra_fields["raster:bands"][0]["scale"] == 0.001
    assert item.assets["B04"].extra_fields["raster:bands"][0]["offset"] == -0.1


def test_in_place_assets_without_their_mark_are_refused(catalog: Path, tmp_path: Path) -> None:
    """Only ingest's mark lets an asset lie outside the catalog (issue #16 item 2)."""
    import shutil

    copy = tmp_path / "catalog"
    shutil.copytree(catalog, copy)
    (path,) = [p for p in copy.glob("*/*/*.json") if p.parent.name == p.stem]
    doc = json.loads(path.read_text())
    del doc["assets"]["B04"]["eo_pipeline:reference"]
    path.write_text(json.dumps(doc))
    with pytest.raises(InputDataError, match=r"asset 'B04': href .* points outside the catalog"):
        eo.load(copy, bands=["B04"])
    with pytest.raises(StacValidationError, match=r"assets.B04.href: href .* points outside"):
        validate(copy)
    assert eo.load(copy, bands=["B04"], allow_outside=True).B04.shape[-2:] == (1830, 1830)


def test_surface_reflectance_exact(loaded: xr.Dataset, s2_l2a_safe: Path) -> None:
    sr = eo.calibrate(loaded[["B04"]], to="surface_reflectance")
    for band in ("B04",):
        (path,) = (s2_l2a_safe / R60).glob(f"*_{band}_60m.jp2")
        with rasterio.open(path) as src:
            dn = src.read(1)
        expected = ((dn.astype(np.float64) - 1000.0) / 10000.0).astype(np.float32)
        expected[dn == 0] = np.nan
        got = sr[band].values[0]
        assert got.dtype == np.float32 and np.array_equal(got, expected, equal_nan=True)
        assert np.isnan(got).sum() == (dn == 0).sum() > 0
    with pytest.raises(CalibrationError, match="surface_reflectance"):
        eo.calibrate(loaded[["B04"]], to="toa_reflectance")


def test_zip_read_in_place(s2_l2a_safe: Path, tmp_path: Path, loaded: xr.Dataset) -> None:
    archive = tmp_path / f"{s2_l2a_safe.stem}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for root, _, files in os.walk(s2_l2a_safe):
            for name in files:
                full = Path(root) / name
                zf.write(full, f"{s2_l2a_safe.name}/{full.relative_to(s2_l2a_safe)}")
    meta = eo.read_metadata(archive)
    assert meta.source.startswith("/vsizip/") and meta.cloud_cover == 59.769726
    item = ingest(archive, tmp_path / "cat")
    assert item.assets["B04"].href.startswith("/vsizip/{")
    assert item.assets["B04"].extra_fields["eo_pipeline:reference"] is True
    assert validate(tmp_path / "cat", check_assets=True).checksums_verified > 10
    ds = eo.load(tmp_path / "cat", bands=["B04"])
    assert np.array_equal(ds.B04.values, loaded.B04.values)


def test_missing_band_file_is_named(s2_l2a_safe: Path, tmp_path: Path) -> None:
    broken = _mirror(s2_l2a_safe, tmp_path, skip=r"_B05_60m\.jp2$")
    with pytest.raises(InputDataError, match=r"missing from the product: B05 \(.*_B05_60m\.jp2\)"):
        ingest(broken, tmp_path / "catalog")
    assert not (tmp_path / "catalog").exists()


def test_truncated_jp2(s2_l2a_safe: Path, tmp_path: Path) -> None:
    broken = _mirror(s2_l2a_safe, tmp_path)
    (band,) = (broken / R60).glob("*_B11_60m.jp2")
    data = band.read_bytes()
    band.unlink()
    band.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputDataError, match=r"B11_60m\.jp2: truncated or corrupt JPEG 2000"):
        ingest(broken, tmp_path / "catalog")
    assert not (tmp_path / "catalog").exists()


def test_jp2_truncated_after_ingest_fails_validate_and_load(
    s2_l2a_safe: Path, tmp_path: Path
) -> None:
    """The attack (issue #16 item 2): a band truncated with its header intact, its size and
    checksum recorded as they now are; only the JPEG 2000 structure can tell."""
    from eo_pipeline.catalogs.checksum import file_checksum
    from eo_pipeline.cli import main

    mirror = _mirror(s2_l2a_safe, tmp_path)
    (band,) = (mirror / R60).glob("*_B11_60m.jp2")
    data = band.read_bytes()
    band.unlink()
    band.write_bytes(data)  # a file of its own, not a link to the real data
    cat = tmp_path / "catalog"
    item = ingest(mirror, cat)
    band.write_bytes(data[: len(data) * 2 // 3])  # damaged after ingest
    (path,) = cat.glob("*/*/*.json")
    doc = json.loads(path.read_text())
    doc["assets"]["B11"].update(
        {"file:size": band.stat().st_size, "file:checksum": file_checksum(band)}
    )
    path.write_text(json.dumps(doc))
    with pytest.raises(StacValidationError, match=r"B11_60m\.jp2 is incomplete .* tile-part"):
        validate(cat, check_assets=True)
    assert main(["validate", str(cat), "--check-assets"]) != 0
    with pytest.raises(
        InputDataError,
        match=rf"item '{item.id}' asset 'B11' \(.*B11_60m\.jp2\): the file is incomplete",
    ):
        eo.load(cat, bands=["B11"])
    assert eo.load(cat, bands=["B12"]).B12.shape[-2:] == (1830, 1830)  # the others still load


@pytest.mark.parametrize("baseline", ["07.00", "01.03", "4.0"])
def test_unknown_baseline(s2_l2a_safe: Path, tmp_path: Path, baseline: str) -> None:
    broken = _mirror(s2_l2a_safe, tmp_path, skip=r"^MTD_MSIL2A\.xml$")
    text = (s2_l2a_safe / "MTD_MSIL2A.xml").read_text()
    (broken / "MTD_MSIL2A.xml").write_text(text.replace(">04.00<", f">{baseline}<", 1))
    with pytest.raises(MetadataError, match=rf"processing baseline '{re.escape(baseline)}' is not"):
        read_granules(broken)


def test_old_l2a_names_and_no_offsets(s2_l2a_safe: Path, tmp_path: Path) -> None:
    """Baseline 02.xx L2A metadata: ``L2A_``-prefixed groups, no BOA_ADD_OFFSET."""
    text = (s2_l2a_safe / "MTD_MSIL2A.xml").read_text()
    text = re.sub(
        r"<BOA_ADD_OFFSET_VALUES_LIST>.*?</BOA_ADD_OFFSET_VALUES_LIST>", "", text, flags=re.S
    )
    for old in ("Product_Info", "Product_Image_Characteristics", "Product_Organisation"):
        text = text.replace(f"<{old}>", f"<L2A_{old}>").replace(f"</{old}>", f"</L2A_{old}>")
    text = text.replace("QUANTIFICATION_VALUES_LIST>", "L1C_L2A_Quantification_Values_List>")
    text = text.replace("IMAGE_FILE>", "IMAGE_FILE_2A>").replace(">04.00<", ">02.09<", 1)
    broken = _mirror(s2_l2a_safe, tmp_path, skip=r"^MTD_MSIL2A\.xml$")
    (broken / "MTD_MSIL2A.xml").write_text(text)
    meta = eo.read_metadata(broken)
    assert meta.band("B04").sr_offset == 0.0 and meta.processing_baseline == "02.09"
    assert meta.files["B09"].endswith("_B09_60m.jp2")
    with pytest.raises(MetadataError, match="BOA_ADD_OFFSET_VALUES_LIST"):
        (broken / "MTD_MSIL2A.xml").unlink()
        (broken / "MTD_MSIL2A.xml").write_text(text.replace(">02.09<", ">04.00<", 1))
        eo.read_metadata(broken)


def test_scl_mask_counts_equal_scl_classes(loaded: xr.Dataset, s2_l2a_safe: Path) -> None:
    (path,) = (s2_l2a_safe / R60).glob("*_SCL_60m.jp2")
    with rasterio.open(path) as src:
        scl = src.read(1)
    mask = eo.masks(loaded).compute()  # auto: SCL present -> "scl", band nodata/saturation
    assert mask.attrs["mask_method"] == "scl"
    for name, classes in [
        ("cloud", [8, 9]), ("shadow", [3]), ("snow", [11]), ("water", [6]), ("cirrus", [10]),
        ("saturated", [1]), ("nodata", [0]),
    ]:  # fmt: skip
        got = int(eo.steps.masking.flag(mask, name).values.sum())
        assert got == int(np.isin(scl, classes).sum()), name
    assert int(np.isin(scl, [8, 9]).sum()) == 967852  # the tile is 60 % cloudy over land
    crop = loaded.isel(y=slice(600, 856), x=slice(0, 256))  # spectral tests: a corner will do
    both = eo.masks(crop, spectral=True)
    assert both.attrs["mask_method"] == "scl+spectral"
    alone, both = eo.masks(crop).values[0], both.values[0]
    assert ((both & alone & 0x7F) == (alone & 0x7F)).all()  # every SCL flag kept
    assert ((both & 0x7E) != 0).sum() >= ((alone & 0x7E) != 0).sum()


@pytest.mark.slow
def test_to_cog_at_ingest(s2_l2a_safe: Path, tmp_path: Path, loaded: xr.Dataset) -> None:
    item = ingest(s2_l2a_safe, tmp_path / "cat", to_cog=True)
    folder = tmp_path / "cat" / item.collection_id / item.id
    for key in ("B04", "B11", "SCL", "AOT"):
        asset = item.assets[key]
        assert asset.media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
        assert Path(asset.get_absolute_href() or "").parent == folder  # moved into the catalog
    assert item.assets["MTD_TL"].href.startswith(str(s2_l2a_safe))  # the rest stays in place
    assert item.assets["MTD_TL"].extra_fields["eo_pipeline:reference"] is True
    assert "eo_pipeline:reference" not in item.assets["B04"].extra_fields  # moved in: a file
    assert validate(tmp_path / "cat", check_assets=True).counts["Item"] == 1
    cog = eo.load(tmp_path / "cat", bands=["B04", "B11", "SCL"])
    for band in ("B04", "B11", "SCL"):
        assert np.array_equal(cog[band].values, loaded[band].values), band


def test_workflows_plan_the_l2a_tile(catalog: Path, tmp_path: Path) -> None:
    from eo_pipeline.workflows.runner import run

    kw = {"inputs": {"catalog": str(catalog / "catalog.json")}, "verbose": False}
    sr = run("sr-indices", dry_run=True, output={"catalog": str(tmp_path / "sr")}, **kw)
    assert len(sr.skipped) == 1 and not sr.excluded  # one unit planned, nothing left out
    with pytest.raises(WorkflowError, match=r"L2 surface-reflectance product \(L2A\)"):
        run("toa-indices", dry_run=True, output={"catalog": str(tmp_path / "toa")}, **kw)

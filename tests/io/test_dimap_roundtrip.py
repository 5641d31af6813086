"""DIMAP V2 deliveries through the pipeline: ingest -> load -> calibrate, GDAL's own driver,
the two radiance conventions, and bad deliveries."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine

from eo_pipeline.catalogs import sensors
from eo_pipeline.catalogs.geometry import footprint_from_bounds
from eo_pipeline.catalogs.readers import read_metadata
from eo_pipeline.catalogs.scene import BandCalibration, SceneMetadata
from eo_pipeline.catalogs.stac import AssetSpec, build_item
from eo_pipeline.catalogs.store import add_items
from eo_pipeline.catalogs.validation import validate
from eo_pipeline.errors import InputDataError, MetadataError, OrthorectificationError
from eo_pipeline.io.cog import write_cog
from eo_pipeline.io.ingestion import ingest
from eo_pipeline.io.loading import load
from eo_pipeline.kernels.solar import earth_sun_distance
from eo_pipeline.simulation.simulator import simulate
from eo_pipeline.steps.calibration import calibrate
from tests.catalogs.test_dimap import (
    EPSG,
    GAINS,
    LEFT,
    SUN,
    TOP,
    WHEN,
    add_raster_index,
    edit,
    write_product,
)
from tests.simulation.test_simulate import _compare_grid, _read

MS = ("B0", "B1", "B2", "B3")


def _href(item: pystac.Item, key: str) -> Path:
    return Path(item.assets[key].get_absolute_href() or "")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pystac.Item, pystac.Item]:
    """A simulated KazEOSat-1 DIMAP delivery (PAN 288 px in 2 x 2 tiles of 256) and the item
    that ingesting its folder makes in another catalog."""
    root = tmp_path_factory.mktemp("dimap_rt")
    (sim,) = simulate(
        "kazeosat1", root / "sim", size=72, seed=11, noise=False, format="dimap", dimap_tile=256
    )
    item = ingest(_href(sim, "DIM_MS").parent, root / "catalog")
    return sim, item


def test_ingested_item_is_valid_with_vrt_band_assets(
    simulated: tuple[pystac.Item, pystac.Item],
) -> None:
    sim, item = simulated
    report = validate(Path(item.get_self_href() or "").parents[2], check_assets=True)
    assert report.counts["Item"] == 1
    assert item.id == sim.id and item.collection_id == "kazeosat1-ort"
    assert item.properties["eo_pipeline:format"] == "dimap"
    assert item.properties["view:sun_elevation"] == pytest.approx(
        sim.properties["view:sun_elevation"], abs=1e-6
    )
    assert sorted(k for k in item.assets if k.startswith("IMG_")) == [
        "IMG_MS_R1C1", "IMG_P_R1C1", "IMG_P_R1C2", "IMG_P_R2C1", "IMG_P_R2C2",
    ]  # fmt: skip
    for b in ("P", *MS):
        asset = item.assets[b]
        assert asset.href.endswith(f"_{b}.vrt") and asset.roles == ["data"]
        assert asset.extra_fields["eo:bands"][0]["name"] == b
        cal = asset.extra_fields["eo_pipeline:calibration"]
        assert cal["radiance_mult"] == pytest.approx(1 / cal["gain"])
        assert asset.extra_fields["proj:shape"] == ([288, 288] if b == "P" else [72, 72])
    assert item.assets["DIM_P"].roles == ["metadata"]
    assert "eo:bands" not in item.assets["IMG_P_R2C2"].extra_fields


def test_vrt_source_outside_the_catalog_is_refused(
    simulated: tuple[pystac.Item, pystac.Item], tmp_path: Path
) -> None:
    """Issue #16 item 2's sibling: a band VRT inside the catalog whose tile lies outside it
    (GDAL reads the VRT's sources, whatever the item's href says)."""
    import shutil

    from eo_pipeline.errors import InputDataError, StacValidationError
    from eo_pipeline.io.loading import load

    _, item = simulated
    cat = tmp_path / "catalog"
    shutil.copytree(Path(item.get_self_href() or "").parents[2], cat)
    (vrt,) = cat.rglob(f"*_{MS[0]}.vrt")
    (tile,) = vrt.parent.glob("IMG_*MS*R1C1*")
    outside = shutil.copy(tile, tmp_path / tile.name)
    vrt.write_text(vrt.read_text().replace(f">{tile.name}<", f">{outside}<"))
    with pytest.raises(InputDataError, match=rf"VRT {vrt.name} source href .* points outside"):
        load(cat, bands=[MS[0]])
    with pytest.raises(StacValidationError, match=rf"VRT {vrt.name} source href .* outside"):
        validate(cat)
    assert load(cat, bands=[MS[0]], allow_outside=True)[MS[0]].shape[-2:] == (72, 72)


def test_gdal_dimap_driver_and_the_vrts_read_the_same_pixels(
    simulated: tuple[pystac.Item, pystac.Item],
) -> None:
    sim, item = simulated
    for group, bands in (("P", ["P"]), ("MS", list(MS))):
        with rasterio.open(_href(item, f"DIM_{group}")) as dim:
            assert dim.driver == "DIMAP"
            data = dim.read()
            for i, b in enumerate(bands):
                with rasterio.open(_href(item, b)) as vrt, rasterio.open(_href(sim, b)) as orig:
                    assert vrt.transform == dim.transform == orig.transform
                    np.testing.assert_array_equal(vrt.read(1), data[i])
                    np.testing.assert_array_equal(orig.read(1), data[i])
                assert float(dim.tags(i + 1)["RADIANCE_GAIN"]) == pytest.approx(
                    item.assets[b].extra_fields["eo_pipeline:calibration"]["gain"]
                )


def test_whole_path_matches_the_truth_within_the_quantisation_step(
    simulated: tuple[pystac.Item, pystac.Item],
) -> None:
    sim, item = simulated
    truth = _read(sim, "truth_reflectance")
    for i, band in enumerate(sensors.get("kazeosat1").band_ids):
        stats = _compare_grid(item, i, band, truth, noise=False)
        assert stats["n"] > 100, (band, stats)
        assert stats["worst_in_steps"] <= 0.51, (band, stats)


def test_tiled_multispectral_product_mosaics_in_place(tmp_path: Path) -> None:
    """MS 300 px in 256 px tiles: four tiles of different sizes, mosaicked by the VRTs."""
    product = write_product(tmp_path / "delivery", ms_px=300, pan=False)
    assert len(product.tiles) == 4
    item = ingest(product.documents["MS"], tmp_path / "catalog")
    ds = load([item], bands=list(MS))
    with rasterio.open(product.documents["MS"]) as dim:
        expected = dim.read()
    for i, b in enumerate(MS):
        np.testing.assert_array_equal(ds[b].values[0], expected[i])
    assert item.id == "KZ1_TEST_MS"


def test_file_band_order_follows_the_document(tmp_path: Path) -> None:
    """A Raster_Index_List saying the file holds B3 B0 B1 B2: each band asset reads its own
    file band, with its own calibration."""
    product = write_product(tmp_path / "delivery", pan=False)
    with rasterio.open(product.documents["MS"]) as dim:
        file_bands = dim.read()
    edit(product.documents["MS"], add_raster_index(["B3", "B0", "B1", "B2"]))
    item = ingest(product.documents["MS"], tmp_path / "catalog")
    ds = load([item], bands=list(MS))
    for i, b in enumerate(["B3", "B0", "B1", "B2"]):
        np.testing.assert_array_equal(ds[b].values[0], file_bands[i])
        assert ds[b].attrs["gain"] == GAINS[b]  # Band_Radiance goes by BAND_ID, not position


def test_bundle_layout_with_a_volume_file(tmp_path: Path) -> None:
    """An Airbus-style bundle: P and MS products in their own folders under a VOL_*.XML."""
    flat = write_product(tmp_path / "flat")
    bundle = tmp_path / "bundle"
    for group, sub in (("P", "IMG_KZ1_P_001"), ("MS", "IMG_KZ1_MS_002")):
        (bundle / sub).mkdir(parents=True)
        doc = flat.documents[group]
        doc.rename(bundle / sub / doc.name)
        for g, _, _, tile in flat.tiles:
            if g == group:
                tile.rename(bundle / sub / tile.name)
    components = "".join(
        f"<Component><COMPONENT_PATH href='{d.parent.name}/{d.name}'/></Component>"
        for d in sorted(bundle.glob("*/DIM_*.XML"))
    )
    volume = bundle / "VOL_KZ1.XML"
    volume.write_text(
        "<Dimap_Document><Metadata_Identification><METADATA_FORMAT version='2.0'>DIMAP"
        "</METADATA_FORMAT><METADATA_PROFILE>VOLUME</METADATA_PROFILE></Metadata_Identification>"
        f"<Dataset_Content><Dataset_Components>{components}</Dataset_Components>"
        "</Dataset_Content></Dimap_Document>"
    )
    with pytest.raises(MetadataError, match=r"a DIMAP volume file .* listing IMG_KZ1_MS_002/DIM_"):
        read_metadata(volume)
    item = ingest(volume, tmp_path / "catalog")
    assert item.id == "KZ1_TEST"
    assert {"P", *MS, "DIM_P", "DIM_MS"} <= set(item.assets)
    ds = load([item], bands=["P", "B2"])
    with rasterio.open(_href(item, "DIM_P")) as dim:  # the document still opens in the catalog
        np.testing.assert_array_equal(ds["P"].values[0], dim.read(1))
    assert ds["P"].attrs["radiance_mult"] == pytest.approx(1 / GAINS["P"])
    assert ds["B2"].attrs["radiance_mult"] == pytest.approx(1 / GAINS["B2"])
    next(bundle.glob("*_P_001/DIM_*.XML")).unlink()
    with pytest.raises(InputDataError, match=r"COMPONENT_PATH lists IMG_KZ1_P_001/DIM_.*absent"):
        ingest(volume, tmp_path / "catalog2")


# ------------------------------------------------------- the two radiance conventions


def _radiance(shape: tuple[int, int]) -> np.ndarray:
    """One physical TOA radiance field (W m-2 sr-1 um-1) for every band."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    return 40.0 + 180.0 * (0.5 + 0.45 * np.sin(x / 9.0) * np.cos(y / 13.0))


def test_dimap_and_mult_add_scenes_of_one_radiance_give_one_reflectance(tmp_path: Path) -> None:
    """DIMAP ``L = DN / GAIN + BIAS`` and Landsat-style ``L = MULT * DN + ADD`` scenes made from
    the same radiance calibrate to the same reflectance, and to the physical one; using the
    other convention, or the sensor file's nominal gains, would be far off."""
    sens = sensors.get("kazeosat1")
    shape = (64, 64)
    radiance = _radiance(shape)
    bias = -3.25  # non-zero: DN / GAIN + BIAS and GAIN * DN + BIAS differ even at DN = 0
    mult, add = 0.0625, 1.5
    dimap_dn = np.stack([np.rint((radiance - bias) * GAINS[b]) for b in MS]).astype(np.uint16)
    mult_add_dn = np.rint((radiance - add) / mult).astype(np.uint16)

    product = write_product(tmp_path / "dimap", ms=dimap_dn, pan=False, bias=bias)
    dimap_item = ingest(product.documents["MS"], tmp_path / "catalog")

    folder = tmp_path / "mult_add"
    folder.mkdir()
    transform = Affine(4.0, 0.0, LEFT, 0.0, -4.0, TOP)
    specs, bands = [], {}
    for b in MS:
        cog = write_cog(folder / f"scene_{b}.tif", mult_add_dn, crs=EPSG, transform=transform,
                        nodata=0, descriptions=[b])  # fmt: skip
        specs.append(AssetSpec(b, cog.path, bands=(b,)))
        bands[b] = BandCalibration(b, radiance_mult=mult, radiance_add=add, esun=sens.band(b).esun,
                                   nodata=0, saturation=4095)  # fmt: skip
    fp = footprint_from_bounds((LEFT, TOP - 256.0, LEFT + 256.0, TOP), EPSG)
    d = float(earth_sun_distance(WHEN))
    meta = SceneMetadata(
        "kazeosat1", WHEN, SUN[0], SUN[1], d, fp.geometry, fp.bbox, bands,
        product_id="mult_add_scene", processing_level="L1", epsg=EPSG,
    )  # fmt: skip
    (mult_add_item,) = add_items(tmp_path / "catalog", [build_item(meta, specs)])

    rho_dimap = calibrate(load([dimap_item], bands=list(MS)))
    rho_mult_add = calibrate(load([mult_add_item], bands=list(MS)))
    cos_z = math.cos(math.radians(90.0 - SUN[0]))
    for k, b in enumerate(MS):
        esun = sens.band(b).esun
        assert esun is not None
        factor = math.pi * d * d / (esun * cos_z)  # rho per unit radiance
        truth = radiance * factor
        step_dimap, step_mult_add = factor / GAINS[b], factor * mult
        a = rho_dimap[b].values[0].astype(np.float64)
        m = rho_mult_add[b].values[0].astype(np.float64)
        ok = (dimap_dn[k] > 0) & (mult_add_dn > 0)
        assert ok.sum() > 3000
        assert np.max(np.abs(a - truth)[ok]) <= 0.5 * step_dimap + 1e-6, b
        assert np.max(np.abs(m - truth)[ok]) <= 0.5 * step_mult_add + 1e-6, b
        assert np.max(np.abs(a - m)[ok]) <= 0.5 * (step_dimap + step_mult_add) + 1e-6, b
        # the confusions this guards against are each many quantisation steps off
        dn = dimap_dn[k].astype(np.float64)
        swapped = (GAINS[b] * dn + bias) * factor
        nominal = (dn / (1.0 / sens.band(b).radiance_mult) + bias) * factor  # type: ignore[operator]
        assert np.median(np.abs(swapped - truth)[ok]) > 100 * step_dimap
        assert np.median(np.abs(nominal - truth)[ok]) > 5 * step_dimap
        applied = json.loads(rho_dimap[b].attrs["calibration"])
        assert applied["numbers"]["radiance_mult"] == pytest.approx(1.0 / GAINS[b], rel=1e-12)
        assert applied["numbers"]["radiance_add"] == bias


# ------------------------------------------------------------------- bad deliveries


def _catalog_untouched(catalog: Path) -> bool:
    return not catalog.exists() or not any(catalog.rglob("*.json"))


def test_listed_tile_absent(tmp_path: Path) -> None:
    product = write_product(tmp_path / "delivery")
    absent = next(p for g, r, c, p in product.tiles if (g, r, c) == ("P", 2, 1))
    absent.unlink()
    with pytest.raises(InputDataError) as err:
        ingest(tmp_path / "delivery", tmp_path / "catalog")
    msg = str(err.value)
    assert str(product.documents["P"]) in msg
    assert "Data_File tile_R=2 tile_C=1 DATA_FILE_PATH href=" in msg and absent.name in msg
    assert "is absent" in msg
    assert _catalog_untouched(tmp_path / "catalog")


def test_tile_missing_from_the_document(tmp_path: Path) -> None:
    product = write_product(tmp_path / "delivery")

    def drop(root: ET.Element) -> None:
        files = root.find(".//Data_Files")
        files.remove(files.findall("Data_File")[-1])  # type: ignore[union-attr]

    edit(product.documents["P"], drop)

    def overlap(root: ET.Element) -> None:
        root.find(".//Regular_Tiling/OVERLAP_ROW").text = "8"  # type: ignore[union-attr]

    with pytest.raises(InputDataError, match="overlapping tiles are not supported"):
        ingest(edit(product.documents["MS"], overlap), tmp_path / "catalog")
    with pytest.raises(InputDataError, match=r"lists no Data_File for tile\(s\) R2C2 of the 300 x "
                       r"300 raster tiled by 256 x 256"):  # fmt: skip
        ingest(product.documents["P"], tmp_path / "catalog")
    assert _catalog_untouched(tmp_path / "catalog")


def test_swapped_and_foreign_tiles(tmp_path: Path) -> None:
    product = write_product(tmp_path / "delivery", ms_px=300, pan=False)
    tiles = {(r, c): p for _, r, c, p in product.tiles}
    a, b = tiles[(1, 1)], tiles[(2, 2)]
    tmp = a.with_suffix(".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    with pytest.raises(InputDataError, match=r"tile_R=1 tile_C=1 .* is 44 x 44 pixels, expected "
                       r"256 x 256; the tile does not belong"):  # fmt: skip
        ingest(product.documents["MS"], tmp_path / "catalog")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    # the right size but georeferenced elsewhere: a tile of another product
    other = write_product(tmp_path / "other", ms_px=300, pan=False)
    shifted = next(p for _, r, c, p in other.tiles if (r, c) == (1, 1))
    with rasterio.open(shifted, "r+") as ds:
        ds.transform = Affine(4.0, 0.0, LEFT + 1000.0, 0.0, -4.0, TOP)
    shifted.replace(a)
    with pytest.raises(InputDataError, match="is not georeferenced at its tile position"):
        ingest(product.documents["MS"], tmp_path / "catalog")
    assert _catalog_untouched(tmp_path / "catalog")


def test_sensor_geometry_and_mixed_deliveries(tmp_path: Path) -> None:
    product = write_product(tmp_path / "sensor", pan=False)

    def sensor_geometry(root: ET.Element) -> None:
        root.remove(root.find("Geoposition"))  # type: ignore[arg-type]
        root.find("Metadata_Identification/METADATA_PROFILE").text = "KZ1_SENSOR"  # type: ignore[union-attr]

    edit(product.documents["MS"], sensor_geometry)
    with pytest.raises(
        OrthorectificationError, match="KZ1_SENSOR product in sensor geometry but no RPC"
    ):
        ingest(product.documents["MS"], tmp_path / "catalog")
    write_product(tmp_path / "mixed" / "a", pan=False, dataset="A")
    write_product(tmp_path / "mixed" / "b", pan=False, dataset="B")
    with pytest.raises(InputDataError, match="several products of spectral processing MS, MS"):
        ingest(tmp_path / "mixed", tmp_path / "catalog")
    assert _catalog_untouched(tmp_path / "catalog")


def test_builtin_pansharpen_workflow_on_a_dimap_delivery(
    simulated: tuple[pystac.Item, pystac.Item], tmp_path: Path
) -> None:
    """The built-in KazEOSat-1 workflow picks an ingested DIMAP ORTHO delivery and sharpens it
    on the PAN mosaic's grid (the tile assets beside the mosaic must not confuse the loader)."""
    from eo_pipeline.workflows.plan import plan_units
    from eo_pipeline.workflows.process import process_unit
    from eo_pipeline.workflows.spec import load_workflow

    _, item = simulated
    root = item.get_root()
    assert root is not None and item.collection_id == "kazeosat1-ort"
    wf = load_workflow(
        "kazeosat1-pansharpened",
        inputs={"catalog": root.get_self_href()},
        output={"catalog": str(tmp_path / "out"), "quicklook": False},
    )
    (unit,) = plan_units(wf)
    result = process_unit(unit, wf, str(tmp_path / "out"), threads=1, scheduler="sync")
    bands = [f for f in result.files if "reflectance" in f.roles]  # one file per band
    assert len(bands) == 4 and all(f.raster["shape"] == [288, 288] for f in bands)
    for product in bands:
        with (
            rasterio.open(tmp_path / "out" / product.path) as src,
            rasterio.open(_href(item, "P")) as pan,
        ):
            assert src.count == 1 and src.transform == pan.transform and src.shape == pan.shape
            refl = src.read(masked=True).astype(np.float64) * src.scales[0]
        assert 0.0 < float(refl.mean()) < 1.0


def test_load_pan_band_gets_the_mosaic_grid_not_a_tile(
    simulated: tuple[pystac.Item, pystac.Item],
) -> None:
    _, item = simulated
    items = list(
        pystac.Catalog.from_file(item.get_root().get_self_href()).get_items(recursive=True)
    )  # type: ignore[union-attr]
    pan = load(items, bands=["P"], resolution=1.0, chunks=128)
    assert pan["P"].shape[-2:] == (288, 288)
    with rasterio.open(_href(item, "P")) as src:
        assert tuple(pan.odc.geobox.affine)[:6] == tuple(src.transform)[:6]
        np.testing.assert_array_equal(pan["P"].values[0], src.read(1))

"""Landsat 9's sensor file against the real Landsat 9 MTL (its numbers are Landsat 9's own)."""

from __future__ import annotations

import math

import pytest

from eo_pipeline import read_metadata
from eo_pipeline.catalogs import sensors
from eo_pipeline.catalogs.readers.landsat import parse_mtl
from tests.conftest import LANDSAT9_ID

pytestmark = pytest.mark.realdata

# OLI-2 measured band centres (nm), USGS Landsat 9 OLI-2 relative spectral responses.
OLI2_CENTRES_NM = {"B1": 443, "B2": 482, "B3": 561, "B4": 654, "B5": 865, "B6": 1608,
                   "B7": 2200, "B8": 589, "B9": 1374}  # fmt: skip


def test_band_centres_are_oli2_measured_ones() -> None:
    for band in sensors.get("landsat9").bands:
        assert band.center_wavelength * 1000 == pytest.approx(OLI2_CENTRES_NM[band.id], abs=0.5)


def test_radiometry_is_landsat9s_own(landsat9_dir) -> None:
    mtl = parse_mtl(landsat9_dir / f"{LANDSAT9_ID}_MTL.txt")
    rescale = mtl["LEVEL1_RADIOMETRIC_RESCALING"]
    d = float(mtl["IMAGE_ATTRIBUTES"]["EARTH_SUN_DISTANCE"])
    l8 = {b.id: b for b in sensors.get("landsat8").bands}
    for band in sensors.get("landsat9").bands:
        n = band.id[1:]
        mult = float(rescale[f"RADIANCE_MULT_BAND_{n}"])
        add = float(rescale[f"RADIANCE_ADD_BAND_{n}"])
        refl = float(rescale[f"REFLECTANCE_MULT_BAND_{n}"])
        assert band.radiance_mult == pytest.approx(mult, rel=1e-6)
        assert band.radiance_add == pytest.approx(add, rel=1e-6)
        assert band.reflectance_mult == pytest.approx(refl, rel=1e-6)
        # ESUN is what makes radiance and reflectance rescaling agree at the scene's distance
        assert band.esun == pytest.approx(math.pi * d * d * mult / refl, abs=0.06)
        assert band.radiance_mult != l8[band.id].radiance_mult  # no longer copied from Landsat 8


def test_real_landsat9_mtl_reads_with_its_numbers(landsat9_dir) -> None:
    meta = read_metadata(landsat9_dir / f"{LANDSAT9_ID}_MTL.txt")
    assert meta.sensor == "landsat9"
    assert meta.cloud_cover == pytest.approx(0.12)
    b4 = meta.band("B4")
    assert b4.radiance_mult == pytest.approx(1.0306e-02) and b4.radiance_add == pytest.approx(
        -51.53176
    )

"""Shared fixtures: where the real data and the STAC schemas are, small generated rasters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("EO_PIPELINE_REAL_DATA", REPO.parent / "shared" / "real-data"))
LANDSAT_DIR = REAL_DATA / "landsat8-c2l2sp-001070-20190114"
LANDSAT_ID = "LC08_L2SP_001070_20190114_20200830_02_T2"
S2_DIR = REAL_DATA / "sentinel2-l1c-T01LAC-20200717"
S2_L2A_SAFE = (
    REAL_DATA
    / "sentinel2-l2a-T29UNU-20221005-60m"
    / "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
)


@pytest.fixture(scope="session")
def landsat_dir() -> Path:
    """The real Landsat 8 C2 L2 scene (skips with a reason when shared/real-data is absent)."""
    if not (LANDSAT_DIR / f"{LANDSAT_ID}_MTL.txt").exists():
        pytest.skip(
            f"real Landsat scene not found at {LANDSAT_DIR}; set EO_PIPELINE_REAL_DATA "
            "to the folder holding landsat8-c2l2sp-001070-20190114/"
        )
    return LANDSAT_DIR


@pytest.fixture(scope="session")
def s2_dir() -> Path:
    """The real Sentinel-2 L1C metadata (skips with a reason when absent)."""
    if not (S2_DIR / "MTD_MSIL1C.xml").exists():
        pytest.skip(
            f"real Sentinel-2 metadata not found at {S2_DIR}; set EO_PIPELINE_REAL_DATA "
            "to the folder holding sentinel2-l1c-T01LAC-20200717/"
        )
    return S2_DIR


LANDSAT9_DIR = REAL_DATA / "landsat9-c2-l1tp-112081-20220209-decimated"
LANDSAT9_ID = "LC09_L1TP_112081_20220209_20220209_02_T1"


@pytest.fixture(scope="session")
def landsat9_dir() -> Path:
    """The real Landsat 9 C2 L1 product (decimated rasters; skips with a reason when absent)."""
    if not (LANDSAT9_DIR / f"{LANDSAT9_ID}_MTL.txt").exists():
        pytest.skip(
            f"real Landsat 9 product not found at {LANDSAT9_DIR}; set EO_PIPELINE_REAL_DATA "
            "to the folder holding landsat9-c2-l1tp-112081-20220209-decimated/"
        )
    return LANDSAT9_DIR


@pytest.fixture(scope="session")
def s2_l2a_safe() -> Path:
    """The real Sentinel-2 L2A SAFE product at 60 m (skips with a reason when absent)."""
    if not (S2_L2A_SAFE / "MTD_MSIL2A.xml").exists():
        pytest.skip(
            f"real Sentinel-2 L2A product not found at {S2_L2A_SAFE}; set "
            "EO_PIPELINE_REAL_DATA to the folder holding sentinel2-l2a-T29UNU-20221005-60m/"
        )
    return S2_L2A_SAFE

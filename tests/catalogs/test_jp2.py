"""JPEG 2000 wholeness (issue #16 item 2) on the real Sentinel-2 L2A tile's band files.

The attack: a band truncated after its header (an interrupted download or copy) opens in
GDAL with its size and CRS; only decoding a missing tile fails, much later, naming no file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from eo_pipeline.catalogs.archive import vsizip
from eo_pipeline.catalogs.jp2 import file_problem, jp2_problem

pytestmark = pytest.mark.realdata

R60 = "GRANULE/L2A_T29UNU_A038058_20221005T115407/IMG_DATA/R60m"


@pytest.fixture(scope="module")
def b11(s2_l2a_safe: Path) -> bytes:
    (path,) = (s2_l2a_safe / R60).glob("*_B11_60m.jp2")
    return path.read_bytes()


def test_every_real_jp2_is_whole(s2_l2a_safe: Path) -> None:
    files = sorted(s2_l2a_safe.rglob("*.jp2"))
    assert len(files) > 30
    assert {f.name: jp2_problem(f) for f in files} == {f.name: None for f in files}


@pytest.mark.parametrize("fraction", [0.999, 0.9, 0.5, 0.02])
def test_truncated_jp2_is_named(b11: bytes, tmp_path: Path, fraction: float) -> None:
    cut = tmp_path / "B11.jp2"
    cut.write_bytes(b11[: int(len(b11) * fraction)])
    problem = file_problem(cut)
    assert problem is not None and ("ends at" in problem or "cut" in problem), problem


def test_truncated_jp2_with_an_end_marker_appended(b11: bytes, tmp_path: Path) -> None:
    """The EOC check alone would pass this: the tile-part lengths do not."""
    cut = tmp_path / "B11.jp2"
    cut.write_bytes(b11[: len(b11) // 2] + b"\xff\xd9")
    assert "tile-part of tile" in (jp2_problem(cut) or "")


def test_raw_codestream_and_zip_member(b11: bytes, tmp_path: Path) -> None:
    start = b11.index(b"jp2c") + 4  # the jp2c box runs to the end of the file
    raw = tmp_path / "B11.j2k"
    raw.write_bytes(b11[start:])
    assert jp2_problem(raw) is None
    raw.write_bytes(b11[start : len(b11) - 100])
    assert jp2_problem(raw) is not None
    archive = tmp_path / "p.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("whole.jp2", b11)
        zf.writestr("cut.jp2", b11[: len(b11) * 2 // 3])
    assert file_problem(vsizip(archive, "whole.jp2")) is None
    assert "declares" in (file_problem(vsizip(archive, "cut.jp2")) or "")


def test_not_jpeg2000(tmp_path: Path) -> None:
    other = tmp_path / "x.jp2"
    other.write_bytes(b"<html>not found</html>")
    assert jp2_problem(other) is None
    assert jp2_problem(other, require=True) == "not a JPEG 2000 file (no JP2 signature)"

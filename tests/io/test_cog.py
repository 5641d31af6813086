"""The atomic COG writer: valid COGs, right options, nothing left behind on failure."""

from __future__ import annotations

import hashlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_validate

from eo_pipeline.errors import EOPipelineError, WriteError
from eo_pipeline.io import cog as _cog
from eo_pipeline.io.cog import write_cog

TRANSFORM = from_origin(600000.0, 5400000.0, 30.0, 30.0)


def _data(dtype: str, shape: tuple[int, ...] = (700, 900)) -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.random(shape) * 4000).astype(dtype)


@pytest.mark.parametrize(
    ("dtype", "compress", "predictor"),
    [("uint16", "DEFLATE", 2), ("float32", "ZSTD", 3), ("uint8", "DEFLATE", 2)],
)
def test_writes_a_valid_cog(tmp_path: Path, dtype: str, compress: str, predictor: int) -> None:
    data = _data(dtype)
    out = write_cog(
        tmp_path / "band.tif",
        data,
        crs="EPSG:32643",
        transform=TRANSFORM,
        nodata=0,
        descriptions=["B4"],
        compress=compress,  # type: ignore[arg-type]
        tags={"sensor": "kazeosat2"},
    )
    valid, errors, _warnings = cog_validate(str(out.path))
    assert valid, errors
    with rasterio.open(out.path) as src:
        assert src.dtypes[0] == dtype
        assert src.block_shapes[0] == (512, 512)
        assert src.overviews(1) == [2]
        assert src.nodata == 0
        assert src.descriptions == ("B4",)
        assert src.tags()["sensor"] == "kazeosat2"
        assert src.crs.to_epsg() == 32643
        assert src.transform == TRANSFORM
        assert src.compression.name.upper() == compress
        assert int(src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"]) == predictor
        np.testing.assert_array_equal(src.read(1), data)


def test_multiband_and_checksum(tmp_path: Path) -> None:
    data = _data("float32", (3, 600, 520))
    data[1, :5, :5] = np.nan
    out = write_cog(
        tmp_path / "truth.tif",
        data,
        crs=32642,
        transform=TRANSFORM,
        nodata=float("nan"),
        descriptions=["B1", "B2", "B3"],
        band_tags=[{"band": "B1"}, {"band": "B2"}, {"band": "B3"}],
    )
    raw = out.path.read_bytes()
    assert out.multihash == "1220" + hashlib.sha256(raw).hexdigest()
    assert out.size == len(raw)
    with rasterio.open(out.path) as src:
        assert src.count == 3
        assert src.descriptions == ("B1", "B2", "B3")
        assert src.tags(2)["band"] == "B2"
        np.testing.assert_array_equal(src.read(), data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truth.tif"]


def test_replaces_existing_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "b.tif"
    target.write_bytes(b"old")
    write_cog(target, _data("uint16", (64, 64)), crs=32641, transform=TRANSFORM)
    assert target.read_bytes()[:2] in (b"II", b"MM")
    assert [p.name for p in tmp_path.iterdir()] == ["b.tif"]


@pytest.mark.parametrize("where", ["write", "hash", "rename"])
def test_failure_leaves_nothing(tmp_path: Path, where: str) -> None:
    target = tmp_path / "band.tif"
    boom = OSError("disk full (injected)")
    patches = {
        "write": mock.patch.object(rasterio.io.BufferedDatasetWriter, "write", side_effect=boom),
        "hash": mock.patch.object(_cog, "file_checksum", side_effect=boom),
        "rename": mock.patch("os.replace", side_effect=boom),
    }
    with patches[where], pytest.raises(WriteError, match=r"band\.tif.*injected"):
        write_cog(target, _data("uint16", (100, 100)), crs=32641, transform=TRANSFORM)
    assert list(tmp_path.iterdir()) == []


def test_interrupt_leaves_nothing_and_is_not_swallowed(tmp_path: Path) -> None:
    with (
        mock.patch.object(_cog, "file_checksum", side_effect=KeyboardInterrupt),
        pytest.raises(KeyboardInterrupt),
    ):
        write_cog(tmp_path / "x.tif", _data("uint16", (64, 64)), crs=32641, transform=TRANSFORM)
    assert list(tmp_path.iterdir()) == []


def test_bad_input_errors(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="does not exist"):
        write_cog(
            tmp_path / "nope" / "x.tif", _data("uint16", (8, 8)), crs=32641, transform=TRANSFORM
        )
    with pytest.raises(WriteError, match="shape"):
        write_cog(tmp_path / "x.tif", np.zeros(5, np.uint16), crs=32641, transform=TRANSFORM)
    with pytest.raises(EOPipelineError, match="2 band descriptions for 1 bands"):
        write_cog(
            tmp_path / "x.tif",
            _data("uint16", (8, 8)),
            crs=32641,
            transform=TRANSFORM,
            descriptions=["a", "b"],
        )
    assert list(tmp_path.iterdir()) == []

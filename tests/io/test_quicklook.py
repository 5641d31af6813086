"""Quicklooks, thumbnails and index maps read from written COGs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from eo_pipeline.io.quicklook import index_map, quicklook, thumbnail
from eo_pipeline.io.writing import write


def _product(tmp_path: Path) -> Path:
    g = GeoBox.from_bbox((400000, 5000000, 406000, 5004000), "EPSG:32643", resolution=10)
    rng = np.random.default_rng(1)
    bands = {
        n: xr.DataArray(
            rng.random((400, 600), dtype=np.float32) * 0.3, coords=xr_coords(g), dims=("y", "x")
        )
        for n in ("B0", "B1", "B2")
    }
    bands["B2"][:50] = np.nan
    return write(xr.Dataset(bands), tmp_path / "refl.tif", dtype="int16").path


def test_quicklook_and_thumbnail(tmp_path: Path) -> None:
    src = _product(tmp_path)
    ql = quicklook(src, tmp_path / "ql.png", bands=("B2", "B1", "B0"), max_size=300)
    img = matplotlib.image.imread(ql)
    assert img.shape == (200, 300, 4)
    assert img[:20, :, 3].max() == 0  # nodata rows transparent
    assert img[-20:, :, 3].min() == 1.0
    th = thumbnail(src, tmp_path / "th.png", bands=("B2", "B1", "B0"), size=64)
    assert max(matplotlib.image.imread(th).shape[:2]) == 64


def test_index_map(tmp_path: Path) -> None:
    src = _product(tmp_path)
    out = index_map(src, tmp_path / "map.png", band="B0", title="NDVI", vmin=0, vmax=0.3)
    img = matplotlib.image.imread(out)
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert not list(tmp_path.glob(".*part*"))


def _grey_pixels(path: Path) -> int:
    img = matplotlib.image.imread(path)[..., :3]
    return int((np.abs(img - 0.8) < 0.01).all(axis=-1).sum())


def test_index_map_legend_matches_what_is_drawn(tmp_path: Path) -> None:
    """The legend says no data is grey: NaN pixels are drawn grey (and only they are)."""
    src = _product(tmp_path)
    with_nodata = index_map(src, tmp_path / "b2.png", band="B2", title="product-x B2")
    without = index_map(src, tmp_path / "b0.png", band="B0", title="product-x B0")
    assert _grey_pixels(with_nodata) > 50 * 600 * 0.5  # the 50 nodata rows, at least
    assert _grey_pixels(without) < 100


def test_quicklook_from_single_band_files(tmp_path: Path) -> None:
    g = GeoBox.from_bbox((400000, 5000000, 406000, 5004000), "EPSG:32643", resolution=10)
    paths = []
    for i, name in enumerate(("B4", "B3", "B2")):
        da = xr.DataArray(
            np.full((400, 600), 0.1 * (i + 1), np.float32), coords=xr_coords(g), dims=("y", "x")
        )
        paths.append(write(da.rename(name), tmp_path / f"{name}.tif", dtype="int16").path)
    img = matplotlib.image.imread(quicklook(paths, tmp_path / "rgb.png", max_size=300))
    assert img.shape == (200, 300, 4) and img[..., 3].min() == 1.0

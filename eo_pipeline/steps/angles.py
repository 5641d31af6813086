"""Per-pixel sun and view angles of Sentinel-2 tiles, from the tile metadata's angle grids.

``MTD_TL.xml`` gives the sun zenith/azimuth and, per band **and detector**, the viewing
zenith/azimuth on a coarse grid (every 5 km from the tile's upper-left corner, 23 x 23 nodes;
:mod:`eo_pipeline.catalogs.readers.sentinel2_tile`). :func:`sentinel2_angles` interpolates
them bilinearly onto the pixel centres of a loaded Dataset, lazily, block by block:

- sun zenith and azimuth: one grid;
- view zenith and azimuth per band: each pixel takes the grid of **its detector**, read from
  the band's detector footprint mask (``QI_DATA/MSK_DETFOO_<band>.jp2``, baseline 04.00 on:
  pixel value = detector number) at the pixel centre. A detector's grid is NaN outside its
  swath; those nodes are filled with the plane fitted to its valid nodes (the viewing angles
  of one detector are close to planar over the tile) so that interpolation near the
  detector's edge uses no NaN. Pixels outside every footprint, and every pixel of products
  without a raster footprint (GML masks before 04.00), take the detectors' average grid
  (circular mean for azimuths).

Azimuths are interpolated through their sine and cosine (no jump at 0/360 degrees). Results
are float32 degrees.

Examples
--------
>>> ds = eo_pipeline.load("catalog", bands=["B04", "B8A"])  # doctest: +SKIP
>>> ang = sentinel2_angles(ds)  # doctest: +SKIP
>>> sorted(ang.data_vars)  # doctest: +SKIP
['sun_azimuth', 'sun_zenith', 'view_azimuth', 'view_zenith']
>>> ang.view_zenith.dims  # doctest: +SKIP
('time', 'band', 'y', 'x')
"""

from __future__ import annotations

import functools
import posixpath
import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from eo_pipeline.catalogs.readers.sentinel2_tile import TileMetadata, parse_tile
from eo_pipeline.errors import BandError, InputDataError

__all__ = ["bilinear", "fill_plane", "sentinel2_angles", "tile_angles"]


def fill_plane(grid: np.ndarray, circular: bool = False) -> np.ndarray:
    """``grid`` with its NaN nodes replaced by the least-squares plane through the others.

    ``circular``: the values are azimuths in degrees (fitted around their circular mean).

    >>> g = np.array([[1.0, 2.0, np.nan], [2.0, 3.0, np.nan]])
    >>> fill_plane(g).round(12).tolist()
    [[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]]
    """
    out = np.array(grid, dtype=np.float64)
    bad = ~np.isfinite(out)
    if not bad.any():
        return out
    good = ~bad
    if good.sum() < 3:
        return np.full_like(out, np.nan)
    rows, cols = np.nonzero(good)
    values = out[good]
    centre = 0.0
    if circular:
        rad = np.radians(values)
        centre = float(np.degrees(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())))
        values = (values - centre + 180.0) % 360.0 - 180.0
    design = np.column_stack([np.ones_like(rows, dtype=np.float64), rows, cols])
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    fill_r, fill_c = np.nonzero(bad)
    filled = coef[0] + coef[1] * fill_r + coef[2] * fill_c
    if circular:
        out[good] = (out[good] - centre + 180.0) % 360.0 - 180.0 + centre
        filled = filled + centre
    out[bad] = filled
    return out % 360.0 if circular else out


def bilinear(grid: np.ndarray, fi: np.ndarray, fj: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``grid`` at fractional node positions (rows ``fi``, cols
    ``fj``, broadcast together); positions beyond the last node extrapolate linearly.

    >>> bilinear(np.array([[0.0, 10.0], [20.0, 30.0]]), np.array([0.5]), np.array([0.25]))
    array([12.5])
    """
    n_r, n_c = grid.shape
    i0 = np.clip(np.floor(fi).astype(np.int64), 0, n_r - 2)
    j0 = np.clip(np.floor(fj).astype(np.int64), 0, n_c - 2)
    di, dj = fi - i0, fj - j0
    g00, g01 = grid[i0, j0], grid[i0, j0 + 1]
    g10, g11 = grid[i0 + 1, j0], grid[i0 + 1, j0 + 1]
    top = g00 + (g01 - g00) * dj
    bottom = g10 + (g11 - g10) * dj
    return top + (bottom - top) * di


def _interp(grid: np.ndarray, fi: np.ndarray, fj: np.ndarray, circular: bool) -> np.ndarray:
    if not circular:
        return bilinear(grid, fi, fj)
    rad = np.radians(grid)
    s, c = bilinear(np.sin(rad), fi, fj), bilinear(np.cos(rad), fi, fj)
    return np.degrees(np.arctan2(s, c)) % 360.0


def _circular_nanmean(stack: np.ndarray) -> np.ndarray:
    rad = np.radians(stack)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s, c = np.nanmean(np.sin(rad), axis=0), np.nanmean(np.cos(rad), axis=0)
    return np.degrees(np.arctan2(s, c)) % 360.0


@functools.lru_cache(maxsize=8)
def tile_angles(href: str) -> TileMetadata:
    """The parsed tile metadata at ``href`` (a path or ``/vsizip/`` href; cached)."""
    from eo_pipeline.catalogs.archive import open_member, split_vsizip

    if split_vsizip(href) is not None:
        with open_member(href) as fh:
            text = fh.read().decode("utf-8-sig")
    else:
        try:
            with open(href, encoding="utf-8-sig") as fh:
                text = fh.read()
        except OSError as err:
            raise InputDataError(f"{href}: cannot read the tile metadata: {err.strerror}") from None
    tile = parse_tile(href, text)
    if tile.sun_zenith_grid is None or tile.grid_step is None:
        raise InputDataError(f"{href}: no Sun_Angles_Grid; per-pixel angles need the grids")
    return tile


@functools.lru_cache(maxsize=64)
def _filled(href: str, band: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Detector -> (zenith, azimuth) grids of one band, NaN nodes plane-filled; detector 0
    holds the average of all detectors (the fallback without a footprint raster)."""
    tile = tile_angles(href)
    grids = {d: g for (b, d), g in tile.view_grids.items() if b == band}
    if not grids:
        raise BandError(f"{href}: no viewing angle grid for band {band!r}")
    out = {d: (fill_plane(z), fill_plane(a, circular=True)) for d, (z, a) in grids.items()}
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nodes no detector sees
        mean_z = np.nanmean(np.stack([z for z, _ in grids.values()]), axis=0)
    mean_a = _circular_nanmean(np.stack([a for _, a in grids.values()]))
    mean_a[~np.isfinite(mean_z)] = np.nan
    out[0] = (fill_plane(mean_z), fill_plane(mean_a, circular=True))
    return out


def _footprint(href: str, band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Detector numbers at pixel centres (x, y) from ``MSK_DETFOO_<band>.jp2`` beside the
    tile metadata, or ``None`` when the product has no raster footprint."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError
    from rasterio.windows import from_bounds

    path = posixpath.join(posixpath.dirname(href), "QI_DATA", f"MSK_DETFOO_{band}.jp2")
    try:
        with rasterio.open(path) as src:
            dx, dy = (
                abs(x[1] - x[0]) if x.size > 1 else src.res[0],
                (abs(y[1] - y[0]) if y.size > 1 else src.res[1]),
            )
            window = from_bounds(
                x.min() - dx / 2, y.min() - dy / 2, x.max() + dx / 2, y.max() + dy / 2,
                transform=src.transform,
            )  # fmt: skip
            return src.read(
                1, window=window, out_shape=(y.size, x.size), resampling=Resampling.nearest
            )
    except RasterioIOError:
        return None


def _block(
    index: np.ndarray,
    yv: np.ndarray,
    xv: np.ndarray,
    *,
    hrefs: tuple[str, ...],
    what: str,
    band: str,
) -> np.ndarray:
    """One (time, y, x) block of one angle (``sun_zenith``... or ``view_zenith`` of ``band``)."""
    ys, xs = yv.reshape(-1), xv.reshape(-1)
    steps = [hrefs[int(i)] for i in np.asarray(index).reshape(-1)]  # this block's time steps
    out = np.full((len(steps), ys.size, xs.size), np.nan, np.float32)
    circular = what.endswith("azimuth")
    for t, href in enumerate(steps):
        tile = tile_angles(href)
        assert tile.grid_step is not None
        ulx, uly = tile.origin()
        fi = ((uly - ys) / tile.grid_step[0])[:, None]
        fj = ((xs - ulx) / tile.grid_step[1])[None, :]
        if what.startswith("sun"):
            grid = tile.sun_zenith_grid if what == "sun_zenith" else tile.sun_azimuth_grid
            assert grid is not None
            out[t] = _interp(fill_plane(grid, circular), fi, fj, circular)
            continue
        grids = _filled(href, band)
        detectors = _footprint(href, band, xs, ys)
        pick = 1 if circular else 0
        out[t] = _interp(grids[0][pick], fi, fj, circular)  # the detectors' average
        if detectors is None:
            continue
        for det in np.unique(detectors):
            if det == 0 or int(det) not in grids:
                continue
            where = detectors == det
            rows, cols = np.nonzero(where)
            out[t][where] = _interp(grids[int(det)][pick], fi[rows, 0], fj[0, cols], circular)
    return out.reshape(np.broadcast_shapes(index.shape, yv.shape, xv.shape))


def sentinel2_angles(ds: xr.Dataset, bands: Sequence[str] | None = None) -> xr.Dataset:
    """Per-pixel sun and view angles (float32 degrees) on the grid of ``ds``, lazy with dask.

    Parameters
    ----------
    ds
        A Sentinel-2 Dataset from :func:`eo_pipeline.load` (it carries the ``tile_metadata``
        coordinate: the ``MTD_TL.xml`` href of each time step).
    bands
        Band ids whose view angles to compute; default: the Dataset's band variables.

    Returns
    -------
    xarray.Dataset
        ``sun_zenith``, ``sun_azimuth`` ``(time, y, x)``; ``view_zenith``, ``view_azimuth``
        ``(time, band, y, x)``; chunked like ``ds``.

    Raises
    ------
    InputDataError
        No ``tile_metadata`` coordinate (not a Sentinel-2 tile loaded by eo-pipeline), or a
        tile file without angle grids.
    """
    from eo_pipeline.steps.dispatch import apply_kernel

    if "tile_metadata" not in ds.coords or "time" not in ds.dims:
        raise InputDataError(
            "sentinel2_angles needs a Sentinel-2 Dataset loaded with eo_pipeline.load (the "
            "'tile_metadata' coordinate along 'time' names each scene's MTD_TL.xml)"
        )
    names = list(bands) if bands is not None else [
        str(n) for n, v in ds.data_vars.items() if str(n).startswith("B") and v.ndim == 3
    ]  # fmt: skip
    hrefs = tuple(str(h) for h in np.atleast_1d(ds.coords["tile_metadata"].values))
    for href in set(hrefs):
        tile_angles(href)  # fail now, not inside a dask task
    template = ds[names[0]] if names else next(iter(ds.data_vars.values()))
    parts = [
        xr.DataArray(np.arange(len(hrefs), dtype=np.float64), dims=["time"]),
        xr.DataArray(np.asarray(ds["y"].values, np.float64), dims=["y"]),
        xr.DataArray(np.asarray(ds["x"].values, np.float64), dims=["x"]),
    ]
    if template.chunks is not None:
        sizes = dict(zip(template.dims, template.chunks, strict=True))
        parts = [p.chunk({d: sizes[d] for d in p.dims}) for p in parts]

    def field(what: str, band: str = "") -> xr.DataArray:
        return apply_kernel(
            _block, *parts, output_dtypes=[np.float32],
            kwargs={"hrefs": hrefs, "what": what, "band": band}, name=what,
        ).transpose("time", "y", "x")  # fmt: skip

    keep = ("time", "y", "x", "spatial_ref", "tile_metadata")
    out = xr.Dataset(coords={k: ds.coords[k] for k in keep if k in ds.coords})
    out["sun_zenith"] = field("sun_zenith")
    out["sun_azimuth"] = field("sun_azimuth")
    for what in ("view_zenith", "view_azimuth"):
        per_band = [field(what, b) for b in names]
        out[what] = (
            xr.concat(per_band, dim="band")
            .assign_coords(band=names)
            .transpose("time", "band", "y", "x")
        )
    for name in out.data_vars:
        out[name].attrs = {
            "units": "degree",
            "source": "MTD_TL.xml angle grids, bilinear"
            + (", per detector (MSK_DETFOO)" if str(name).startswith("view") else ""),
        }
    return out

"""Quicklooks, thumbnails and index maps of written products (PNG, from the COG's overviews).

Everything here reads a *written* COG at reduced resolution (GDAL picks the internal
overview), so a quicklook of a 10 000 x 10 000 scene touches a few MB, never the scene.

A multi-band product is read by band description or index; a product written one band per
file (what workflows deliver) is given as the list of its files, in R, G, B order.

Examples
--------
>>> # quicklook("refl.tif", "refl.png", bands=("B3", "B2", "B1"))
>>> # quicklook(["B4.tif", "B3.tif", "B2.tif"], "rgb.png")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eo_pipeline.atomic import atomic_path
from eo_pipeline.errors import InputDataError

__all__ = ["index_map", "quicklook", "thumbnail"]

Product = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
"""One (multi-band) file, or a sequence of single-band files (one per displayed band)."""

_NODATA_GREY = "0.8"
"""Colour of no-data pixels in index maps (drawn, and named in the legend)."""


def _read(path: str | os.PathLike[str], bands: Sequence[str | int], max_size: int) -> np.ndarray:
    """Read bands (by description or 1-based index) at most ``max_size`` px on the long side,
    as float32 with nodata -> NaN and scale/offset applied."""
    import rasterio
    from rasterio.enums import Resampling

    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise InputDataError(f"{path}: cannot open product for a quicklook: {err}") from None
    with src:
        names = list(src.descriptions)
        idx = []
        for b in bands:
            if isinstance(b, int):
                idx.append(b)
            elif b in names:
                idx.append(names.index(b) + 1)
            else:
                raise InputDataError(f"{path}: no band {b!r} for the quicklook; bands: {names}")
        f = max(src.width, src.height) / max_size
        shape = (
            len(idx),
            max(1, round(src.height / max(f, 1))),
            max(1, round(src.width / max(f, 1))),
        )
        data = src.read(idx, out_shape=shape, resampling=Resampling.average, masked=True)
        out = data.astype(np.float32).filled(np.nan)
        for k, i in enumerate(idx):
            scale, offset = src.scales[i - 1], src.offsets[i - 1]
            if scale != 1.0 or offset != 0.0:
                out[k] = out[k] * np.float32(scale) + np.float32(offset)
    return out


def _stretch(rgb: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Per-band percentile stretch to uint8 RGBA (NaN -> transparent)."""
    out = np.zeros((*rgb.shape[1:], 4), dtype=np.uint8)
    valid = np.all(np.isfinite(rgb), axis=0)
    for k in range(rgb.shape[0]):
        band = rgb[k]
        if valid.any():
            lo, hi = np.nanpercentile(band[valid], percentiles)
        else:
            lo, hi = 0.0, 1.0
        span = hi - lo if hi > lo else 1.0
        out[..., k] = np.nan_to_num(np.clip((band - lo) / span * 255.0, 0, 255)).astype(np.uint8)
    if rgb.shape[0] == 1:
        out[..., 1] = out[..., 2] = out[..., 0]
    out[..., 3] = np.where(valid, 255, 0)
    return out


def _read_any(product: Product, bands: Sequence[str | int], max_size: int) -> np.ndarray:
    """:func:`_read` of one file, or band 1 of each of several single-band files."""
    if isinstance(product, str | os.PathLike):
        return _read(product, bands, max_size)
    return np.concatenate([_read(path, [1], max_size) for path in product])


def quicklook(
    product: Product,
    out: str | os.PathLike[str],
    bands: Sequence[str | int] = (3, 2, 1),
    *,
    max_size: int = 1024,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> Path:
    """A true- or false-colour PNG of three bands of a product, percentile-stretched.

    ``bands`` are band descriptions (``("B2", "B1", "B0")``) or 1-based indexes, in R, G, B order
    (for false colour give NIR, red, green); with a sequence of single-band files as
    ``product`` (R, G, B order, or one file) ``bands`` is not used.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.image

    shown = bands if isinstance(product, str | os.PathLike) else list(product)
    if len(shown) not in (1, 3):
        raise InputDataError(f"quicklook: give 3 bands (R, G, B) or 1, got {list(shown)}")
    rgba = _stretch(_read_any(product, bands, max_size), percentiles)
    path = Path(out)
    with atomic_path(path) as tmp:
        matplotlib.image.imsave(tmp, rgba, format="png")
    return path


def thumbnail(
    product: Product,
    out: str | os.PathLike[str],
    bands: Sequence[str | int] = (3, 2, 1),
    *,
    size: int = 256,
) -> Path:
    """A small quicklook (``size`` px on the long side) for catalogues and STAC Browser."""
    return quicklook(product, out, bands, max_size=size)


def index_map(
    product: str | os.PathLike[str],
    out: str | os.PathLike[str],
    band: str | int = 1,
    *,
    title: str | None = None,
    label: str | None = None,
    vmin: float = -1.0,
    vmax: float = 1.0,
    cmap: str = "RdYlGn",
    max_size: int = 1024,
) -> Path:
    """An index map with a colour bar and legend (matplotlib), e.g. NDVI from -1 to 1.

    ``title`` heads the figure (default: the file's stem, i.e. the product name), ``label``
    names the colour bar (default: ``band``'s description or the title). No-data pixels are
    drawn grey, as the legend line under the map says; values beyond ``vmin``/``vmax`` take
    the colour bar's end colours (its arrows show that they exist).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    data = _read(product, [band], max_size)[0]
    heading = title or Path(product).stem
    name = label or (band if isinstance(band, str) else heading)
    colours = plt.get_cmap(cmap).with_extremes(bad=_NODATA_GREY)
    finite = data[np.isfinite(data)]
    extend = (
        ("both" if finite.min() < vmin and finite.max() > vmax else "min")
        if finite.size and finite.min() < vmin
        else ("max" if finite.size and finite.max() > vmax else "neither")
    )
    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    try:
        img = ax.imshow(
            np.ma.masked_invalid(data),
            cmap=colours,
            vmin=vmin,
            vmax=vmax,
            interpolation="nearest",
        )
        cbar = fig.colorbar(img, ax=ax, shrink=0.85, extend=extend)
        cbar.set_label(str(name))
        ax.set_title(str(heading), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if finite.size:
            ax.text(
                0.01,
                0.01,
                f"mean {finite.mean():.3f}  p5 {np.percentile(finite, 5):.3f}  "
                f"p95 {np.percentile(finite, 95):.3f}  no data: grey "
                f"({100 * (1 - finite.size / data.size):.1f} %)",
                transform=ax.transAxes,
                fontsize=7,
                color="black",
                bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0},
            )
        path = Path(out)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return path

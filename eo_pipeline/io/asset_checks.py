"""What ``load`` checks of each asset file before it builds a lazy graph over it.

odc-stac trusts the item: a ``proj:shape`` of ``[10, 10]`` on a 256 x 256 file loads 10 x 10
pixels, a 3-band file catalogued as one band silently gives band 1, a file truncated after
its header fails much later as a raw GDAL error that names no file, and an href such as
``../../../etc/x.tif`` or ``/etc/x.tif`` reads whatever it points at. :func:`check_asset`
and :func:`check_href` refuse each of these with the item, band and file named, from the
file's header only (no pixels read); the href rule is :mod:`eo_pipeline.catalogs.hrefs`.

"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pystac

from eo_pipeline.catalogs.hrefs import FIX, escape, is_reference, vrt_escape
from eo_pipeline.catalogs.jp2 import file_problem
from eo_pipeline.errors import InputDataError

__all__ = [
    "catalog_roots",
    "check_asset",
    "check_href",
    "crs_codes",
    "expected_crs",
    "unreadable",
]


def catalog_roots(source: Any, items: Sequence[pystac.Item]) -> list[Path | None]:
    """The folder each item's local assets must stay in: that of the catalog/collection/item
    file given, else of the item's root catalog, else of the item's own file; ``None`` for
    items built in memory (no file: their hrefs are the caller's own)."""
    from eo_pipeline.catalogs.store import find_stac_file

    if isinstance(source, str | os.PathLike):
        return [find_stac_file(source).resolve().parent] * len(items)
    roots: list[Path | None] = []
    for it in items:
        href = None
        if it.get_single_link("root") is not None:
            root = it.get_root()
            href = root.get_self_href() if root is not None else None
        href = href or it.get_self_href()
        roots.append(Path(href).parent if href else None)
    return roots


def _bands_declared(asset: pystac.Asset) -> int | None:
    for key in ("raster:bands", "eo:bands", "bands"):
        value = asset.extra_fields.get(key)
        if isinstance(value, list) and value:
            return len(value)
    return None


def expected_crs(item: pystac.Item, asset: pystac.Asset) -> str | None:
    """``proj:code`` (or ``proj:epsg``) of the asset, else of the item; ``None`` when absent."""
    for fields in (asset.extra_fields, item.properties):
        code = fields.get("proj:code")
        if isinstance(code, str) and code:
            return code
        epsg = fields.get("proj:epsg")
        if isinstance(epsg, int) and not isinstance(epsg, bool):
            return f"EPSG:{epsg}"
    return None


def crs_codes(items: Sequence[pystac.Item], keys: Sequence[str]) -> list[str]:
    """The distinct ``proj:code`` of the assets ``keys`` of ``items``, in order of appearance."""
    codes: list[str] = []
    for it in items:
        for key in keys:
            asset = it.assets.get(key)
            code = expected_crs(it, asset) if asset is not None else None
            if code is not None and code.upper() not in codes:
                codes.append(code.upper())
    return codes


def check_asset(item: pystac.Item, key: str, path: Path, ds: Any, root: Path | None) -> None:
    """Refuse an asset file that disagrees with its item (``ds``: the open rasterio dataset).

    Raises
    ------
    InputDataError
        The file is truncated, outside ``root``, or its band count, shape or CRS is not
        what the item says; the message names the item, the asset and the file.
    """
    what = f"item {item.id!r} asset {key!r} ({path})"
    problem = file_problem(path)
    if problem is not None:
        raise InputDataError(
            f"{what}: the file is incomplete or corrupt: {problem}; re-download and re-ingest it"
        )
    asset = item.assets[key]
    if isinstance(path, Path):
        problem = vrt_escape(path, root, reference=is_reference(asset))
        if problem is not None:
            raise InputDataError(f"{what}: {problem}; {FIX}")
    declared = _bands_declared(asset) or 1
    if ds.count != declared:
        raise InputDataError(
            f"{what}: the file has {ds.count} band(s) but the item declares {declared}; "
            "the wrong file is catalogued (fix the href or re-ingest the scene)"
        )
    shape = asset.extra_fields.get("proj:shape") or item.properties.get("proj:shape")
    if isinstance(shape, list) and len(shape) == 2 and tuple(shape) != (ds.height, ds.width):
        raise InputDataError(
            f"{what}: the file is {ds.height} x {ds.width} pixels but the item's proj:shape "
            f"says {shape[0]} x {shape[1]}; fix proj:shape or re-ingest the scene"
        )
    code = expected_crs(item, asset)
    if code is not None and ds.crs is not None and code.upper().startswith("EPSG:"):
        epsg = ds.crs.to_epsg()
        if epsg is not None and f"EPSG:{epsg}" != code.upper():
            raise InputDataError(
                f"{what}: the file is in EPSG:{epsg} but the item's proj:code says {code}; "
                "fix proj:code or re-ingest the scene"
            )


def check_href(item: pystac.Item, key: str, root: Path | None) -> None:
    """Refuse an asset href that leads out of the catalog folder ``root`` (``None``: any
    href allowed) unless the asset is marked as read in place
    (:mod:`eo_pipeline.catalogs.hrefs`)."""
    asset = item.assets[key]
    self_href = item.get_self_href()
    base = Path(self_href).parent if self_href else None
    problem = escape(asset.href, base, root, reference=is_reference(asset))
    if problem is not None:
        raise InputDataError(f"item {item.id!r} asset {key!r}: {problem}; {FIX}")


def unreadable(items: Sequence[pystac.Item], keys: Sequence[str]) -> str | None:
    """The first asset among ``keys`` of ``items`` whose pixels cannot be decoded, described
    (item, asset, file, GDAL's error), reading every block; ``None`` when all read.

    Used after a read failed during a computation, whose error (``Read failed``) names no file.
    """
    import rasterio
    from rasterio.errors import RasterioError

    for it in items:
        for key in keys:
            asset = it.assets.get(key)
            href = asset.get_absolute_href() if asset is not None else None
            if not href or "://" in href:
                continue
            try:
                with rasterio.open(href) as ds:
                    for band in range(1, ds.count + 1):
                        for _, window in ds.block_windows(band):
                            ds.read(band, window=window)
            except (OSError, RasterioError) as err:
                return f"item {it.id!r} asset {key!r} ({href}): {err}"
    return None

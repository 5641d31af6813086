"""What ``load`` checks of each asset file before it builds a lazy graph over it.

odc-stac trusts the item: a ``proj:shape`` of ``[10, 10]`` on a 256 x 256 file loads 10 x 10
pixels, a 3-band file catalogued as one band silently gives band 1, a file truncated after
its header fails much later as a raw GDAL error that names no file, and an href such as
``../../../etc/x.tif`` reads whatever it points at. :func:`check_asset` refuses each of these
with the item, band and file named, from the file's header only (no pixels read).

"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pystac

from eo_pipeline.catalogs.tiff import tiff_problem
from eo_pipeline.catalogs.validation import inside
from eo_pipeline.errors import InputDataError

__all__ = [
    "catalog_root",
    "check_asset",
    "check_inside",
    "crs_codes",
    "expected_crs",
    "unreadable",
]


def catalog_root(source: Any, items: Sequence[pystac.Item]) -> Path | None:
    """The folder local assets must stay in: that of the catalog/collection/item file given,
    else of the items' root catalog; ``None`` when unknown (items built in memory)."""
    from eo_pipeline.catalogs.store import find_stac_file

    if isinstance(source, str | os.PathLike):
        return find_stac_file(source).resolve().parent
    roots = set()
    for it in items:
        root = it.get_root()
        href = root.get_self_href() if root is not None else None
        if href is None:
            return None
        roots.add(Path(href).parent)
    return roots.pop() if len(roots) == 1 else None


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
    problem = None if str(path).startswith("/vsi") else tiff_problem(path)
    if problem is not None:
        raise InputDataError(f"{what}: the file is incomplete or corrupt: {problem}; re-ingest it")
    asset = item.assets[key]
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


def check_inside(item: pystac.Item, key: str, path: Path, root: Path | None) -> None:
    """Refuse a relative asset href that climbs out of the catalog folder ``root``
    (absolute paths are explicit references, as ``ingest``'s ``reference`` mode writes)."""
    href = item.assets[key].href
    relative = not (href.startswith(("/", "file:")) or Path(href).is_absolute())
    if root is not None and relative and not inside(root, path):
        raise InputDataError(
            f"item {item.id!r} asset {key!r}: href {item.assets[key].href!r} points outside the "
            f"catalog folder {root} (to {os.path.normpath(path)}); load(..., "
            "allow_outside=True) if that is intended"
        )


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

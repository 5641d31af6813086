"""Where an asset href points, and whether a catalog read from disk may point there.

A catalog is a folder: its assets are its files. An href that leads out of that folder
(``../../../etc/x.tif``, ``/home/someone/B04.tif``, ``file:///etc/passwd``, a symbolic link
inside the catalog to a file outside) makes ``load`` read, ``validate`` certify and
``publish`` copy into an export a file the catalog does not hold: a broken catalog (moved
without its files, an item copied from another catalog) or a hostile one. The rule, applied
by every reader of asset hrefs (``eo.load``, ``validate``, run planning through ``load``,
``publish``; the export API serves only files inside the export and never follows links
out of it):

- a **local** href (relative, absolute path, ``file://`` URL, ``/vsizip/`` archive member:
  the archive) must resolve, symbolic links followed, inside the catalog folder;
- except an asset **referenced in place on purpose**: ``ingest`` of a Sentinel-2 SAFE
  product (``add_items(asset_mode="reference")``) leaves the files where they are and marks
  each such asset with the field :data:`REFERENCE` (``"eo_pipeline:reference": true``);
- or when the caller allows external hrefs for one call (``load(..., allow_outside=True)``,
  ``eo-pipeline validate --allow-outside``);
- a **remote** href (``http(s)://``, ``s3://``, ``gs://``, ``az://``..., GDAL's
  ``/vsicurl/`` on http(s), ``/vsis3/``, ``/vsigs/``...) names no file of this machine: it
  is accepted as STAC catalogs in the cloud use it (``load`` reads it through GDAL,
  ``validate`` does not fetch it), but ``publish`` refuses it (an export holds the files it
  sells) and the export API hands it out unchanged, never fetching it itself;
- any other GDAL virtual path (``/vsimem/``, ``/vsisubfile/``, ``/vsicurl/file://``...)
  is refused unless external hrefs are allowed;
- a VRT asset inside the catalog is held to the same rule for each of its
  ``SourceFilename`` elements (:func:`vrt_escape`): GDAL reads them when the VRT is read.

Examples
--------
>>> from pathlib import Path
>>> escape("./B4.tif", Path("/cat/coll/item"), Path("/cat")) is None
True
>>> escape("/etc/passwd", Path("/cat/coll/item"), Path("/cat"))
"href '/etc/passwd' points outside the catalog folder /cat (to /etc/passwd)"
>>> escape("/etc/passwd", Path("/cat/coll/item"), Path("/cat"), reference=True) is None
True
>>> escape("https://example.com/B4.tif", Path("/cat/coll/item"), Path("/cat")) is None
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

__all__ = [
    "FIX",
    "REFERENCE",
    "Target",
    "escape",
    "inside",
    "is_reference",
    "target",
    "vrt_escape",
]

REFERENCE = "eo_pipeline:reference"
"""Asset field: ``true`` when ingest referenced the file in place on purpose (outside the
catalog folder, e.g. a Sentinel-2 SAFE product read where it lies)."""

FIX = (
    "move the file into the catalog (re-ingest or re-publish it), mark the asset "
    f'"{REFERENCE}": true if it is a product read in place on purpose, or allow external '
    "hrefs for this call (load(..., allow_outside=True); eo-pipeline validate --allow-outside)"
)
"""How to resolve a refused href (the end of every message about one)."""

_REMOTE_SCHEMES = {"http", "https", "s3", "gs", "gcs", "az", "abfs", "abfss", "adl", "ftp"}
_REMOTE_VSI = ("/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/", "/vsiswift/",
               "/vsiwebhdfs/", "/vsihdfs/")  # fmt: skip
_CURL = ("/vsicurl/", "/vsicurl_streaming/")


@dataclass(frozen=True)
class Target:
    """What an href names."""

    kind: Literal["local", "remote", "virtual"]
    """``local``: a file of this machine (``path``); ``remote``: a URL or cloud object;
    ``virtual``: another GDAL virtual file system path."""
    path: Path | None = None
    """The local file (the archive of a ``/vsizip/`` member), absolute, not normalised."""


def target(href: str, base: Path | None) -> Target:
    """What ``href`` names; a relative path is taken from the folder ``base`` (the folder of
    the item JSON; ``None``: the current directory, as GDAL would)."""
    from eo_pipeline.catalogs.archive import split_vsizip

    if href.startswith("/vsi"):
        if href.startswith(_REMOTE_VSI):
            return Target("remote")
        for prefix in _CURL:
            if href.startswith(prefix):
                inner = urlparse(href[len(prefix) :]).scheme.lower()
                return Target("remote" if inner in ("http", "https", "ftp") else "virtual")
        parts = split_vsizip(href)
        if parts is None:
            return Target("virtual")
        return Target("local", Path(os.path.abspath(parts[0])))
    parsed = urlparse(href)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        return Target("local", Path(unquote(parsed.path)))
    if len(scheme) > 1:  # a one-letter "scheme" is a Windows drive
        return Target("remote" if scheme in _REMOTE_SCHEMES else "virtual")
    p = Path(href)
    if not p.is_absolute():
        p = (base if base is not None else Path.cwd()) / p
    return Target("local", p)


def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` lies in the folder ``root``, ``..`` and symbolic links resolved."""
    real_root = os.path.realpath(root)
    return os.path.realpath(path).startswith(os.path.join(real_root, ""))


def is_reference(asset: Any) -> bool:
    """Whether an asset (a pystac Asset or its dict) is marked as referenced in place."""
    fields = asset.get if isinstance(asset, dict) else asset.extra_fields.get
    return fields(REFERENCE) is True


def escape(href: str, base: Path | None, root: Path | None, *, reference: bool = False
           ) -> str | None:  # fmt: skip
    """Why ``href`` (relative to the folder ``base``) may not be read as a file of the
    catalog in the folder ``root``; ``None`` when it may (the module docstring's rule).

    ``root`` ``None`` means external hrefs are allowed (or no catalog folder is known).
    """
    if root is None:
        return None
    t = target(href, base)
    if t.kind == "remote":
        return None
    if t.kind == "virtual":
        return f"href {href!r} is a GDAL virtual path that names no file of the catalog"
    assert t.path is not None
    if reference or inside(root, t.path):
        return None
    return f"href {href!r} points outside the catalog folder {root} (to {os.path.realpath(t.path)})"


_MAX_VRT_BYTES = 16 * 2**20


def vrt_escape(path: Path, root: Path | None, *, reference: bool = False) -> str | None:
    """Why a source of the VRT file ``path`` may not be read as part of the catalog in
    ``root`` (:func:`escape` on each ``SourceFilename``, relative ones taken from the VRT's
    folder when ``relativeToVRT="1"``, as GDAL does); ``None`` when all may, or ``path`` is
    not a readable VRT (other checks say so)."""
    import xml.etree.ElementTree as ET

    if root is None or reference or path.suffix.lower() != ".vrt":
        return None
    try:
        if path.stat().st_size > _MAX_VRT_BYTES:
            return f"VRT {path.name} is larger than {_MAX_VRT_BYTES >> 20} MiB"
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return None
    for elem in tree.iter("SourceFilename"):
        text = (elem.text or "").strip()
        base = path.parent if elem.get("relativeToVRT") == "1" else None
        problem = escape(text, base, root)
        if problem is not None:
            return f"VRT {path.name} source {problem}"
    return None

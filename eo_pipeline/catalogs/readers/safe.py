"""A Sentinel-2 SAFE product as a set of files: an unpacked ``.SAFE`` folder or its ``.zip``.

Readers and ingest see one interface whatever the packaging: :meth:`Safe.text` of a member,
:meth:`Safe.exists`, :meth:`Safe.href` (a file path, or GDAL's ``/vsizip/`` path so that
rasterio and odc-stac read the member in place) and :meth:`Safe.files` under a folder. The zip
is never unpacked.

Examples
--------
>>> safe = locate("S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE")  # doctest: +SKIP
>>> safe.mtd, safe.href("MTD_MSIL2A.xml").endswith(".SAFE/MTD_MSIL2A.xml")  # doctest: +SKIP
('MTD_MSIL2A.xml', True)
"""

from __future__ import annotations

import fnmatch
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from eo_pipeline.catalogs.archive import vsizip, zip_names
from eo_pipeline.catalogs.readers._common import read_text
from eo_pipeline.errors import EOPipelineError, MetadataError

__all__ = ["PRODUCT_MTD_PATTERNS", "Safe", "is_safe", "locate"]

PRODUCT_MTD_PATTERNS = (
    "MTD_MSIL1C.xml",
    "MTD_MSIL2A.xml",
    "S2?_OPER_MTD_SAFL1C_*.xml",  # products before PSD 14 (2016)
    "S2?_USER_MTD_SAFL2A_*.xml",
)
"""Names of the product metadata file at the root of a SAFE product, newest layout first."""


@dataclass(frozen=True)
class Safe:
    """One SAFE product: a folder, or a folder inside a zip archive."""

    root: Path
    """The ``.SAFE`` folder, or the ``.zip`` archive."""
    prefix: str
    """Inside a zip: the product folder's member prefix (``"S2A_....SAFE/"``, may be ``""``);
    for a folder ``""``."""
    mtd: str
    """The product metadata file name, relative to the product folder."""

    @property
    def is_zip(self) -> bool:
        return self.root.is_file()

    def href(self, rel: str) -> str:
        """Path GDAL opens for ``rel`` (relative to the product folder)."""
        if self.is_zip:
            return vsizip(self.root, self.prefix + rel)
        return str(self.root / rel)

    def exists(self, rel: str) -> bool:
        if self.is_zip:
            return self.prefix + rel in zip_names(self.root)
        return (self.root / rel).is_file()

    def text(self, rel: str) -> str:
        """The UTF-8 text of a member (a :class:`MetadataError` naming it when unreadable)."""
        if not self.is_zip:
            return read_text(self.root / rel)
        if not self.exists(rel):
            raise MetadataError(f"{self.href(rel)}: not in the archive {self.root}")
        try:
            with zipfile.ZipFile(self.root) as zf:
                data = zf.read(self.prefix + rel)
        except (OSError, zipfile.BadZipFile) as err:
            raise MetadataError(f"{self.href(rel)}: cannot read it ({err}); re-download") from None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise MetadataError(f"{self.href(rel)}: not a UTF-8 text file") from None

    def files(self, folder: str, pattern: str = "*") -> list[str]:
        """Files (relative to the product folder) directly under ``folder`` matching ``pattern``."""
        folder = folder.strip("/")
        if not self.is_zip:
            base = self.root / folder
            if not base.is_dir():
                return []
            return sorted(
                f"{folder}/{p.name}" if folder else p.name
                for p in base.iterdir()
                if p.is_file() and fnmatch.fnmatch(p.name, pattern)
            )
        lead = self.prefix + (f"{folder}/" if folder else "")
        out = []
        for name in zip_names(self.root):
            if not name.startswith(lead) or name.endswith("/"):
                continue
            tail = name[len(lead) :]
            if "/" not in tail and fnmatch.fnmatch(tail, pattern):
                out.append(name[len(self.prefix) :])
        return sorted(out)

    def folders(self, folder: str) -> list[str]:
        """Sub-folder names directly under ``folder``."""
        folder = folder.strip("/")
        if not self.is_zip:
            base = self.root / folder
            return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        lead = self.prefix + f"{folder}/"
        found = {
            name[len(lead) :].split("/", 1)[0]
            for name in zip_names(self.root)
            if name.startswith(lead) and "/" in name[len(lead) :]
        }
        return sorted(found)


def _mtd_in(names: list[str]) -> str | None:
    for pattern in PRODUCT_MTD_PATTERNS:
        hits = [n for n in names if fnmatch.fnmatch(n, pattern)]
        if len(hits) == 1:
            return hits[0]
    return None


def _in_zip(path: Path) -> Safe:
    names = list(zip_names(path))
    for depth in (1, 0):
        found = []
        for name in names:
            parts = name.split("/")
            if len(parts) == depth + 1 and _mtd_in([parts[-1]]):
                found.append(name)
        if len(found) > 1:
            raise MetadataError(
                f"{path}: the archive holds several products ({', '.join(found)}); "
                "give one product per zip"
            )
        if found:
            prefix, _, mtd = found[0].rpartition("/")
            return Safe(path, f"{prefix}/" if prefix else "", mtd)
    raise MetadataError(
        f"{path}: no Sentinel-2 product metadata (MTD_MSIL1C.xml / MTD_MSIL2A.xml) at the top "
        "of the archive; is it a SAFE zip?"
    )


def locate(path: str | os.PathLike[str]) -> Safe:
    """The SAFE product at ``path``: a ``.SAFE`` folder, its product metadata file, or a zip.

    Raises
    ------
    MetadataError
        No product metadata file found (the message says where it looked).
    """
    p = Path(path)
    if p.is_file() and zipfile.is_zipfile(p):
        return _in_zip(p)
    if p.is_file():
        return Safe(p.parent, "", p.name)
    if p.is_dir():
        mtd = _mtd_in(sorted(c.name for c in p.iterdir() if c.is_file()))
        if mtd is not None:
            return Safe(p, "", mtd)
    raise MetadataError(
        f"{p}: no Sentinel-2 product metadata file here; looked for "
        f"{', '.join(PRODUCT_MTD_PATTERNS)}"
    )


def is_safe(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Sentinel-2 SAFE product: a folder or zip holding a product
    metadata file at its top, or that metadata file itself (cheap: no XML is parsed)."""
    p = Path(path)
    try:
        if p.is_file() and zipfile.is_zipfile(p):
            _in_zip(p)
            return True
        if p.is_file():
            return _mtd_in([p.name]) is not None
        if p.is_dir():
            return _mtd_in(sorted(c.name for c in p.iterdir() if c.is_file())) is not None
    except (EOPipelineError, OSError):
        return False
    return False

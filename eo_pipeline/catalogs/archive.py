"""Files inside zip archives, named the way GDAL names them: ``/vsizip/<archive>/<member>``.

A Sentinel-2 SAFE product is often kept as its ``.zip``; GDAL (hence rasterio and odc-stac)
reads a member in place through its ``/vsizip/`` virtual file system, so a catalog can point
at the bands without unpacking them. This module gives the rest of the package the same view:
whether such an href exists, its size, its bytes (for ``file:checksum``), with the standard
library's :mod:`zipfile` and no GDAL.

Examples
--------
>>> split_vsizip("/vsizip//data/S2A.zip/S2A.SAFE/MTD_MSIL2A.xml")
('/data/S2A.zip', 'S2A.SAFE/MTD_MSIL2A.xml')
>>> split_vsizip("/data/B04.jp2") is None
True
>>> vsizip("/data/S2A.zip", "S2A.SAFE/MTD_MSIL2A.xml")
'/vsizip/{/data/S2A.zip}/S2A.SAFE/MTD_MSIL2A.xml'
>>> split_vsizip(vsizip("/data/S2A.zip", "S2A.SAFE/MTD_MSIL2A.xml"))
('/data/S2A.zip', 'S2A.SAFE/MTD_MSIL2A.xml')
"""

from __future__ import annotations

import functools
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from eo_pipeline.errors import InputDataError

__all__ = [
    "is_vsi",
    "member_size",
    "open_member",
    "split_vsizip",
    "vsi_exists",
    "vsizip",
    "zip_names",
]

_PREFIX = "/vsizip/"


def vsizip(archive: str | os.PathLike[str], member: str) -> str:
    """The GDAL path of ``member`` inside ``archive`` (made absolute).

    The archive goes in braces (``/vsizip/{/data/S2A.zip}/member``, GDAL's syntax for any
    archive name) so that path normalisation (``os.path.abspath`` in pystac) cannot merge the
    slashes GDAL needs.
    """
    return f"{_PREFIX}{{{Path(archive).resolve()}}}/{member.lstrip('/')}"


def is_vsi(href: str) -> bool:
    """Whether ``href`` is a GDAL virtual file system path (``/vsizip/``, ``/vsicurl/``...)."""
    return href.startswith("/vsi")


def split_vsizip(href: str) -> tuple[str, str] | None:
    """``(archive path, member name)`` of a ``/vsizip/`` href, else ``None``.

    The archive is the longest leading part of the path that ends in ``.zip`` (case
    insensitive) and is a file, or simply the first part ending in ``.zip`` when none exists.
    """
    if not href.startswith(_PREFIX):
        return None
    rest = href[len(_PREFIX) :]
    if rest.startswith("{"):  # /vsizip/{archive}/member
        end = rest.find("}")
        if end > 0:
            return rest[1:end], rest[end + 1 :].lstrip("/")
    parts = rest.split("/")
    candidates = [i for i, p in enumerate(parts) if p.lower().endswith(".zip")]
    if not candidates:
        return None
    for i in reversed(candidates):
        archive = "/".join(parts[: i + 1])
        if Path(archive).is_file():
            return archive, "/".join(parts[i + 1 :])
    i = candidates[0]
    return "/".join(parts[: i + 1]), "/".join(parts[i + 1 :])


@functools.lru_cache(maxsize=16)
def _names(archive: str, mtime_ns: int, size: int) -> dict[str, zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(archive) as zf:
            return {info.filename: info for info in zf.infolist()}
    except (OSError, zipfile.BadZipFile) as err:
        raise InputDataError(
            f"{archive}: not a readable zip archive ({err}); re-download it"
        ) from None


def zip_names(archive: str | os.PathLike[str]) -> dict[str, zipfile.ZipInfo]:
    """Member name -> :class:`zipfile.ZipInfo` of an archive (cached while it is unchanged)."""
    path = Path(archive)
    try:
        st = path.stat()
    except OSError as err:
        raise InputDataError(f"{path}: cannot read the archive: {err.strerror}") from None
    return _names(str(path), st.st_mtime_ns, st.st_size)


def vsi_exists(href: str) -> bool:
    """Whether a ``/vsizip/`` href names an existing member (False for other hrefs)."""
    parts = split_vsizip(href)
    if parts is None or not Path(parts[0]).is_file():
        return False
    try:
        return parts[1] in zip_names(parts[0])
    except InputDataError:
        return False


def member_size(href: str) -> int:
    """Uncompressed size in bytes of the member a ``/vsizip/`` href names."""
    parts = split_vsizip(href)
    if parts is None:
        raise InputDataError(f"{href}: not a /vsizip/ path")
    info = zip_names(parts[0]).get(parts[1])
    if info is None:
        raise InputDataError(f"{href}: {parts[1]} is not in the archive {parts[0]}")
    return int(info.file_size)


@contextmanager
def open_member(href: str) -> Iterator[IO[bytes]]:
    """The member's bytes as a binary file object (decompressed on the fly)."""
    parts = split_vsizip(href)
    if parts is None:
        raise InputDataError(f"{href}: not a /vsizip/ path")
    if parts[1] not in zip_names(parts[0]):
        raise InputDataError(f"{href}: {parts[1]} is not in the archive {parts[0]}")
    try:
        with zipfile.ZipFile(parts[0]) as zf, zf.open(parts[1]) as fh:
            yield fh
    except (OSError, zipfile.BadZipFile) as err:
        raise InputDataError(f"{href}: cannot read the member ({err}); re-download it") from None

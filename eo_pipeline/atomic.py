"""The one atomic file write of eo-pipeline: a reader sees the old file or the new one, never half.

Every file the package writes whole (STAC JSON, run manifests, product items, PNG quicklooks,
COGs, the export index database, generated kernel modules) goes through this module:

1. the content is written to a hidden temporary name *in the destination folder*
   (``.{name}.{token}.part{suffix}``; same filesystem, so the rename is atomic, and the final
   suffix is kept so GDAL, Pillow or SQLite recognise the format from the name);
2. the temporary file is flushed and ``fsync``'d;
3. it is renamed over the destination with :func:`os.replace` (atomic on POSIX and Windows),
   and the folder is ``fsync``'d (best effort) so the rename itself survives a crash;
4. on *any* failure (an exception in the writer, a full disk, Ctrl-C) the temporary file is
   removed and nothing changes at the destination.

Left-over temporaries of a killed process all match ``.*.part*`` (the workflow runner removes
them on resume). The module imports only the standard library and :mod:`eo_pipeline.errors`,
so every layer may use it (kernels included, for their generated-source cache).

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write(folder / "a.txt", "hello\\n").read_text()
'hello\\n'
>>> write_json(folder / "b.json", {"a": 1}).read_text()
'{\\n  "a": 1\\n}\\n'
>>> with atomic_path(folder / "c.bin") as tmp:   # any writer that takes a path
...     _ = tmp.write_bytes(b"xyz")
>>> sorted(p.name for p in folder.iterdir())
['a.txt', 'b.json', 'c.bin']
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from eo_pipeline.errors import WriteError

__all__ = [
    "atomic_path",
    "atomic_write",
    "disk_full",
    "fsync_path",
    "scratch_path",
    "swap_folder",
    "temp_name",
    "write_json",
]

PARTIAL_GLOB = ".*.part*"
"""Glob of every temporary name this module makes (for cleaning up after a killed process)."""


def temp_name(path: str | os.PathLike[str], tag: str = "part") -> Path:
    """A fresh hidden name beside ``path`` that keeps its suffix: ``.{name}.{token}.{tag}{suffix}``.

    >>> temp_name("/data/x.tif").name.startswith(".x.tif.") and temp_name("/data/x.tif").suffix
    '.tif'
    """
    p = Path(path)
    return p.with_name(f".{p.name}.{uuid.uuid4().hex[:12]}.{tag}{p.suffix}")


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file (or, best effort, a folder) to disk."""
    p = Path(path)
    if p.is_dir():
        with contextlib.suppress(OSError):  # not every OS / filesystem lets a folder be synced
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_FULL_BYTES = 1 << 20
"""Free space below which a failed write is put down to a full disk (GDAL's "Write failed"
messages carry no errno)."""


def disk_full(folder: str | os.PathLike[str], err: BaseException) -> str:
    """``"; the disk is full (ENOSPC): ..."`` when ``err`` (or its cause) is ENOSPC or the
    folder's filesystem has (almost) no space left; ``""`` otherwise.

    Call it before removing the failed write's temporaries (they hold the space).
    """
    cause: BaseException | None = err
    nospace = False
    while cause is not None and not nospace:
        nospace = getattr(cause, "errno", None) == errno.ENOSPC or "No space left" in str(cause)
        cause = cause.__cause__ or cause.__context__
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if not nospace and (free is None or free >= _FULL_BYTES):
        return ""
    left = "" if free is None else f", {free} bytes free"
    return f"; the disk is full (ENOSPC): no space left in {folder}{left} - free space or write elsewhere"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The body writes the complete file to the yielded path (with any writer: rasterio, Pillow,
    sqlite3...). When the body returns, the file is ``fsync``'d and renamed over ``path``;
    when it raises, the temporary file is removed and the exception propagates unchanged.

    Parameters
    ----------
    path
        The destination; its folder must exist.
    fsync
        Flush the file and its folder to disk before/after the rename (default ``True``).

    Raises
    ------
    WriteError
        The body wrote nothing to the temporary path, or the flush / rename failed
        (an :class:`OSError` subclass naming the destination).
    """
    dest = Path(path)
    tmp = temp_name(dest)
    try:
        yield tmp
        if not tmp.exists():
            raise WriteError(f"{dest}: the writer produced no file at {tmp.name}")
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, dest)
        if fsync:
            fsync_path(dest.parent)
    except OSError as err:
        full = disk_full(dest.parent, err)  # before the clean-up frees the space again
        tmp.unlink(missing_ok=True)
        if isinstance(err, WriteError):
            if full and full not in str(err):
                raise WriteError(f"{err}{full}") from err
            raise
        reason = err.strerror or str(err)
        raise WriteError(f"{dest}: cannot write the file: {reason}{full}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def scratch_path(path: str | os.PathLike[str], tag: str = "scratch") -> Iterator[Path]:
    """Yield a hidden scratch name beside ``path`` (``.{name}.{token}.part-{tag}{suffix}``),
    removed when the block ends, whatever happens (an intermediate file, never renamed)."""
    tmp = temp_name(path, f"part-{tag}")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def swap_folder(staging: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Put the complete folder ``staging`` in place of ``final`` (replaced whole, if present).

    Two renames on one filesystem: ``final`` moves aside to a hidden ``.{name}.old-*``
    (removed afterwards), ``staging`` takes its name; readers see the old folder or the new
    one, never a mix. If the second rename fails the old folder is put back.
    """
    import shutil

    staging, final = Path(staging), Path(final)
    trash = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    had_old = final.exists()
    if had_old:
        os.rename(final, trash)
    try:
        os.rename(staging, final)
    except OSError:
        if had_old:
            os.rename(trash, final)
        raise
    if had_old:
        shutil.rmtree(trash, ignore_errors=True)


def atomic_write(
    path: str | os.PathLike[str],
    data: str | bytes | Callable[[Path], object],
    *,
    encoding: str = "utf-8",
    fsync: bool = True,
) -> Path:
    """Write ``data`` to ``path`` atomically (temporary name beside it, fsync, ``os.replace``).

    Parameters
    ----------
    path
        The destination file; its folder must exist. An existing file is replaced.
    data
        The content (``str`` is encoded with ``encoding``, ``bytes`` written as they are), or a
        writer ``f(tmp_path)`` that creates the complete file at the path it is given.
    encoding
        Text encoding for ``str`` data.
    fsync
        Flush to disk before the rename (default ``True``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    WriteError
        The write or the rename failed; the destination is unchanged and no temporary is left.
        Exceptions raised by a writer callable propagate unchanged (after clean-up).
    """
    dest = Path(path)
    with atomic_path(dest, fsync=fsync) as tmp:
        if callable(data):
            data(tmp)
        elif isinstance(data, str):
            with open(tmp, "w", encoding=encoding, newline="") as f:
                f.write(data)
        else:
            with open(tmp, "wb") as f:
                f.write(data)
    return dest


def write_json(
    path: str | os.PathLike[str],
    data: Any,
    *,
    indent: int | None = 2,
    default: Callable[[Any], Any] | None = None,
    ensure_ascii: bool = False,
) -> Path:
    """Write ``data`` as JSON (plus a final newline) to ``path`` atomically.

    See :func:`atomic_write`; ``indent``, ``default`` and ``ensure_ascii`` go to
    :func:`json.dumps` (serialisation errors raise before anything is written).
    """
    text = json.dumps(data, indent=indent, default=default, ensure_ascii=ensure_ascii) + "\n"
    return atomic_write(path, text)

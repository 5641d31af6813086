"""Is a JPEG 2000 file complete? Every box, every tile-part and the end-of-codestream marker.

A Sentinel-2 band (``*_B04_60m.jp2``) truncated by an interrupted download or copy keeps its
header: GDAL opens it, reports its size and CRS, and only fails when a missing tile is
decoded, much later, with an error that names no file; a checksum recorded then certifies
the damage. :func:`jp2_problem` walks the file's structure without decoding a pixel (a few
bytes per box and per tile-part, standard library only):

- the JP2 boxes add up to the file size exactly (a ``jp2c`` box holds the codestream);
- the codestream starts with SOC + SIZ, and its tile-parts (SOT markers, ``Psot`` lengths)
  follow one another up to the EOC marker ``FF D9`` that ends it, every tile of the SIZ
  grid present.

Raw codestreams (``.j2k``, ``.j2c``) are checked the same way; ``/vsizip/`` members through
:mod:`eo_pipeline.catalogs.archive`.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jp2"
>>> _ = p.write_bytes(bytes.fromhex("0000000c6a5020200d0a870a") + bytes(4))
>>> jp2_problem(p)
'a box header is cut at byte 12'
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["file_problem", "is_jp2", "jp2_problem"]

_SIGNATURE = b"jP  "
_SOC_SIZ = b"\xff\x4f\xff\x51"
_SOT, _EOC = 0xFF90, 0xFFD9
_MAX_MARKERS = 100_000
_MAX_TILE_PARTS = 2_000_000


def is_jp2(head: bytes) -> bool:
    """Whether the first 12 bytes of a file are a JP2 signature box or a raw codestream."""
    return head[:4] == _SOC_SIZ or head[4:8] == _SIGNATURE


@contextmanager
def _open(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    from eo_pipeline.catalogs.archive import open_member, split_vsizip

    if split_vsizip(str(path)) is not None:
        with open_member(str(path)) as fh:
            yield fh
    else:
        with open(path, "rb") as fh:
            yield fh


def _codestream(fh: IO[bytes], size: int) -> tuple[int, int]:
    """``(start, end)`` of the codestream in a JP2 file (boxes checked against ``size``)."""
    pos, found = 0, None
    while pos < size:
        fh.seek(pos)
        box = fh.read(16)
        if len(box) < 8:
            raise ValueError(f"a box header is cut at byte {pos}")
        length, kind = struct.unpack(">I4s", box[:8])
        header = 8
        if length == 1:
            if len(box) < 16:
                raise ValueError(f"a box header is cut at byte {pos}")
            length, header = struct.unpack(">Q", box[8:16])[0], 16
        elif length == 0:
            length = size - pos
        if length < header or pos + length > size:
            raise ValueError(
                f"box {kind.decode('latin-1')!r} at byte {pos} declares {length} "
                f"bytes but the file ends at {size}"
            )
        if kind == b"jp2c" and found is None:
            found = (pos + header, pos + length)
        pos += length
    if found is None:
        raise ValueError("no codestream (jp2c) box")
    return found


def _tiles(siz: bytes) -> int:
    """The number of tiles of the SIZ marker segment's grid (``siz``: its bytes after FF51)."""
    if len(siz) < 38:
        raise ValueError("the SIZ marker segment is cut short")
    xsiz, ysiz, _, _, xt, yt, xto, yto = struct.unpack(">8I", siz[4:36])
    if xt == 0 or yt == 0 or xto > xsiz or yto > ysiz:
        raise ValueError("the SIZ marker segment describes no tile grid")
    return -(-(xsiz - xto) // xt) * -(-(ysiz - yto) // yt)


def _walk(fh: IO[bytes], start: int, end: int) -> None:
    """Check the codestream in ``[start, end)``: main header, tile-parts, EOC."""
    fh.seek(start)
    head = fh.read(4 + 2 + 38)
    if head[:4] != _SOC_SIZ:
        raise ValueError(f"the codestream at byte {start} does not start with SOC, SIZ")
    ntiles = _tiles(head[6:])
    pos = start + 2
    for _ in range(_MAX_MARKERS):  # main header: marker segments up to the first SOT
        fh.seek(pos)
        seg = fh.read(4)
        if len(seg) < 4:
            raise ValueError(f"the main header is cut at byte {pos} (file ends at {end})")
        marker, length = struct.unpack(">HH", seg)
        if marker == _SOT:
            break
        if marker >> 8 != 0xFF or length < 2:
            raise ValueError(f"no marker at byte {pos} of the main header")
        pos += 2 + length
    else:
        raise ValueError("the main header has no end")
    seen: set[int] = set()
    for _ in range(_MAX_TILE_PARTS):
        fh.seek(pos)
        sot = fh.read(12)
        if len(sot) >= 2 and struct.unpack(">H", sot[:2])[0] == _EOC:
            if pos + 2 != end:
                raise ValueError(f"the EOC marker at byte {pos} is not at the codestream's end")
            break
        if len(sot) < 12:
            raise ValueError(f"the codestream ends at byte {end} inside a tile-part header")
        marker, _, tile, psot = struct.unpack(">HHHI", sot[:10])
        if marker != _SOT:
            raise ValueError(f"no tile-part (SOT) or EOC marker at byte {pos}")
        seen.add(tile)
        if psot == 0:  # the last tile-part runs to the EOC marker
            pos = end - 2
            fh.seek(pos)
            if fh.read(2) != b"\xff\xd9":
                raise ValueError("the codestream does not end with the EOC marker")
            break
        if pos + psot > end - 2:
            raise ValueError(
                f"tile-part of tile {tile} at byte {pos} declares {psot} bytes but the "
                f"codestream ends at {end} (truncated download or copy)"
            )
        pos += psot
    else:
        raise ValueError("too many tile-parts")
    missing = ntiles - len({t for t in seen if t < ntiles})
    if missing:
        raise ValueError(f"{missing} of its {ntiles} tiles have no tile-part")


def jp2_problem(path: str | os.PathLike[str], *, require: bool = False) -> str | None:
    """What is wrong with the JPEG 2000 file at ``path`` (a file or a ``/vsizip/`` member):
    truncated, cut box, missing tile-part or EOC...; ``None`` when whole, or when not JPEG
    2000 at all unless ``require``."""
    try:
        with _open(path) as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(0)
            head = fh.read(12)
            if not is_jp2(head):
                return "not a JPEG 2000 file (no JP2 signature)" if require else None
            start, end = (0, size) if head[:4] == _SOC_SIZ else _codestream(fh, size)
            _walk(fh, start, end)
    except (OSError, ValueError, struct.error) as err:
        return str(err) or type(err).__name__
    return None


def file_problem(path: str | os.PathLike[str]) -> str | None:
    """What is wrong with a raster file whose structure can be checked cheaply (TIFF, JPEG
    2000; a ``/vsizip/`` member: JPEG 2000 only), else ``None``."""
    from eo_pipeline.catalogs.tiff import tiff_problem

    text = str(path)
    if text.startswith("/vsi"):
        return jp2_problem(text) if text.startswith("/vsizip/") else None
    if Path(text).suffix.lower() in (".jp2", ".j2k", ".j2c", ".jpx"):
        return jp2_problem(text)
    return tiff_problem(text) or jp2_problem(text)

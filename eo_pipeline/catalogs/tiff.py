"""Is a (Geo)TIFF complete? Every strip or tile of every image lies inside the file.

A GeoTIFF truncated after its header still opens: GDAL reads the header and the first
tiles, and only a read of a missing tile fails, much later. Its checksum, recorded at
ingest, then certifies the damage. :func:`tiff_problem` reads only the image file
directories (a few kB, no pixels, standard library only) and checks every
``StripOffsets``/``TileOffsets`` + ``...ByteCounts`` against the file size, for classic and
BigTIFF files, every subfile (overviews, masks) included.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
>>> _ = p.write_text("not a tiff")
>>> tiff_problem(p) is None   # not a TIFF: nothing to say (other formats are checked elsewhere)
True
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

__all__ = ["tiff_problem"]

_OFFSETS = {273: "StripOffsets", 324: "TileOffsets"}
_COUNTS = {279: "StripByteCounts", 325: "TileByteCounts"}
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8,
          18: 8, 13: 4}  # fmt: skip
_FORMATS = {1: "B", 3: "H", 4: "I", 16: "Q", 13: "I", 6: "b", 8: "h", 9: "i", 17: "q"}
_MAX_IFDS = 10_000
_MAX_VALUES = 50_000_000


def _values(f: BinaryIO, order: str, typ: int, count: int, inline: bytes, big: bool) -> list[int]:
    fmt = _FORMATS.get(typ)
    if fmt is None or not 0 < count <= _MAX_VALUES:
        raise ValueError(f"unexpected field type {typ} or count {count}")
    size = _SIZES[typ] * count
    if size <= (8 if big else 4):
        data = inline[:size]
    else:
        (where,) = struct.unpack(order + ("Q" if big else "I"), inline)
        f.seek(where)
        data = f.read(size)
        if len(data) < size:
            raise ValueError(f"the tag data at offset {where} lies past the end of the file")
    return list(struct.unpack(f"{order}{count}{fmt}", data))


def _ifd(f: BinaryIO, order: str, big: bool, at: int) -> tuple[dict[int, list[int]], int]:
    f.seek(at)
    head = f.read(8 if big else 2)
    if len(head) < (8 if big else 2):
        raise ValueError(f"an image directory at offset {at} lies past the end of the file")
    (n,) = struct.unpack(order + ("Q" if big else "H"), head)
    entry = 20 if big else 12
    raw = f.read(n * entry + (8 if big else 4))
    if len(raw) < n * entry + (8 if big else 4):
        raise ValueError(f"the image directory at offset {at} is cut short")
    tags: dict[int, list[int]] = {}
    for i in range(n):
        e = raw[i * entry : (i + 1) * entry]
        if big:
            tag, typ, count = struct.unpack(order + "HHQ", e[:12])
            inline = e[12:20]
        else:
            tag, typ, count = struct.unpack(order + "HHI", e[:8])
            inline = e[8:12]
        if tag in _OFFSETS or tag in _COUNTS:
            pos = f.tell()
            tags[tag] = _values(f, order, typ, count, inline, big)
            f.seek(pos)
    (following,) = struct.unpack(order + ("Q" if big else "I"), raw[n * entry :])
    return tags, following


def tiff_problem(path: str | os.PathLike[str]) -> str | None:
    """What is wrong with the TIFF at ``path`` (truncated, cut directory...), or ``None``.

    Files that are not TIFFs give ``None``: this check says nothing about them.
    """
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(16)
        if head[:2] not in (b"II", b"MM"):
            return None
        order = "<" if head[:2] == b"II" else ">"
        (magic,) = struct.unpack(order + "H", head[2:4])
        if magic not in (42, 43) or len(head) < (16 if magic == 43 else 8):
            return None if magic not in (42, 43) else "the TIFF header is cut short"
        big = magic == 43
        (at,) = struct.unpack(order + ("Q" if big else "I"), head[8:16] if big else head[4:8])
        seen: set[int] = set()
        try:
            while at and len(seen) < _MAX_IFDS:
                if at in seen:
                    return f"image directories loop back to offset {at}"
                seen.add(at)
                tags, following = _ifd(f, order, big, at)
                for off_tag, count_tag in zip(_OFFSETS, _COUNTS, strict=True):
                    offsets, counts = tags.get(off_tag, []), tags.get(count_tag, [])
                    if len(offsets) != len(counts):
                        return f"{_OFFSETS[off_tag]} and {_COUNTS[count_tag]} differ in length"
                    for k, (o, c) in enumerate(zip(offsets, counts, strict=True)):
                        if c and o + c > size:
                            return (
                                f"{_OFFSETS[off_tag][:-7].lower()} {k} of image {len(seen) - 1} "
                                f"ends at byte {o + c} but the file has {size} bytes "
                                "(truncated download or copy)"
                            )
                at = following
        except (ValueError, struct.error) as err:
            return str(err)
    return None

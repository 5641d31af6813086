"""What every metadata reader shares: the format record, safe file access, time and XML helpers.

A reader module (``landsat``, ``sentinel2``, later ``dimap``) defines one module-level
``FORMAT = MetadataFormat(...)``; :mod:`eo_pipeline.catalogs.readers` lists the modules and
dispatches on :attr:`MetadataFormat.sniff`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from eo_pipeline.catalogs.scene import SceneMetadata
from eo_pipeline.errors import MetadataError

__all__ = [
    "HEAD_BYTES",
    "MetadataFormat",
    "child",
    "child_text",
    "children",
    "local_name",
    "need_text",
    "parse_number",
    "parse_utc",
    "parse_xml",
    "read_text",
]

HEAD_BYTES = 4096
"""How much of a file :attr:`MetadataFormat.sniff` gets to look at."""


@dataclass(frozen=True)
class MetadataFormat:
    """One product metadata format that :func:`eo_pipeline.read_metadata` can read."""

    name: str
    """Human name for messages (``"Landsat Collection 2 MTL (.txt/.json/.xml)"``)."""
    patterns: tuple[str, ...]
    """Glob patterns that find the metadata file inside a scene folder, best first."""
    sniff: Callable[[Path, bytes], bool]
    """True when the file (its path and first :data:`HEAD_BYTES` bytes) is of this format."""
    read: Callable[[Path], SceneMetadata]
    """Read the file into :class:`SceneMetadata`; raises :class:`MetadataError`."""


def read_text(path: Path) -> str:
    """The file's text (UTF-8, BOM tolerated) or a :class:`MetadataError` naming it."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MetadataError(f"{path}: cannot read metadata file: {err.strerror or err}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise MetadataError(
            f"{path}: not a text metadata file (byte {err.start} is not UTF-8); "
            "is this the right file?"
        ) from None


def parse_number(text: str, *, where: str) -> float:
    """A finite float from metadata text, or a :class:`MetadataError` naming ``where``.

    Examples
    --------
    >>> parse_number("1.0328E-02", where="MTL: RADIANCE_MULT_BAND_4")
    0.010328
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise MetadataError(f"{where} = {text!r} is not a number")
    return value


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_utc(text: str, *, where: str) -> dt.datetime:
    """Timezone-aware UTC datetime from ISO 8601 text (``Z`` or offset; naive means UTC).

    Fractions beyond microseconds are truncated (USGS prints 7 digits).

    Examples
    --------
    >>> parse_utc("2019-01-14T14:34:30.4390740Z", where="MTL")
    datetime.datetime(2019, 1, 14, 14, 34, 30, 439074, tzinfo=datetime.timezone.utc)
    """
    cleaned = _FRACTION.sub(r"\1", text.strip())
    try:
        value = dt.datetime.fromisoformat(cleaned)
    except ValueError:
        raise MetadataError(f"{where}: {text!r} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def local_name(tag: str) -> str:
    """Element tag without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def parse_xml(path: Path, text: str | None = None) -> ET.Element:
    """Root element of an XML file; truncated or malformed XML is a :class:`MetadataError`."""
    text = read_text(path) if text is None else text
    try:
        return ET.fromstring(text)
    except ET.ParseError as err:
        line, col = err.position
        raise MetadataError(
            f"{path}: malformed or truncated XML at line {line}, column {col} ({err.msg}); "
            "re-download the file"
        ) from None


def children(elem: ET.Element, name: str) -> Iterator[ET.Element]:
    """Direct children of ``elem`` whose local tag is ``name``."""
    return (c for c in elem if local_name(c.tag) == name)


def child(elem: ET.Element, path: str) -> ET.Element | None:
    """First element along ``a/b/c`` (local names, namespaces ignored), or ``None``."""
    current: ET.Element | None = elem
    for name in path.split("/"):
        if current is None:
            return None
        current = next(children(current, name), None)
    return current


def child_text(elem: ET.Element, path: str) -> str | None:
    """Stripped text of :func:`child`, or ``None`` when absent or empty."""
    found = child(elem, path)
    if found is None or found.text is None or not found.text.strip():
        return None
    return found.text.strip()


def need_text(path: Path, elem: ET.Element, xpath: str, *, hint: str, prefix: str = "") -> str:
    """Text of :func:`child_text` or a :class:`MetadataError` naming the file and element.

    ``prefix`` is the path of ``elem`` in the document (for the message); ``hint`` says how to
    fix it.

    Examples
    --------
    >>> need_text(Path("DIM_X.XML"), ET.fromstring("<a><b>1</b></a>"), "b", hint="")
    '1'
    """
    value = child_text(elem, xpath)
    if value is None:
        where = (prefix + xpath).replace("/", ".")
        raise MetadataError(f"{path}: {where} is missing; {hint}")
    return value

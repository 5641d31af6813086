"""Product metadata readers: one :class:`~eo_pipeline.SceneMetadata` per scene, whatever the format.

:func:`read_metadata` takes a metadata file or a scene folder, recognises the format from the
file's first bytes and hands it to the reader module that claims it:

- :mod:`.landsat`: Landsat 8/9 Collection 2 MTL, L1 and L2, in ``.txt`` (ODL), ``.json`` and
  ``.xml`` (the three give equal metadata);
- :mod:`.sentinel2`: Sentinel-2 L1C ``MTD_MSIL1C.xml`` (+ ``MTD_TL.xml`` beside it or in
  ``GRANULE/*/``);
- :mod:`.dimap`: Airbus DIMAP V2 ``DIM_*.XML`` (KazEOSat-1, Pléiades, SPOT 6/7 profiles).

Adding a format is one line: a module defining ``FORMAT = MetadataFormat(...)`` (see
:mod:`._common`) appended to :data:`READER_MODULES` (e.g. ``"eo_pipeline.catalogs.readers.dimap"``).

Examples
--------
>>> from eo_pipeline.catalogs.readers import read_metadata
>>> read_metadata("/no/such/MTL.txt")
Traceback (most recent call last):
...
eo_pipeline.errors.MetadataError: /no/such/MTL.txt: no such file or folder; give a product metadata file (Landsat *_MTL.txt/.json/.xml, Sentinel-2 MTD_MSIL1C.xml) or the scene folder holding it
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from eo_pipeline.catalogs.readers._common import HEAD_BYTES, MetadataFormat
from eo_pipeline.catalogs.scene import SceneMetadata
from eo_pipeline.errors import MetadataError

__all__ = ["READER_MODULES", "MetadataFormat", "formats", "read_metadata"]

READER_MODULES: tuple[str, ...] = (
    "eo_pipeline.catalogs.readers.landsat",
    "eo_pipeline.catalogs.readers.sentinel2",
    "eo_pipeline.catalogs.readers.dimap",
)
"""Modules that each define ``FORMAT``; tried in this order (first match wins)."""


def formats() -> tuple[MetadataFormat, ...]:
    """The registered formats, in dispatch order.

    Examples
    --------
    >>> [f.patterns[0] for f in formats()]
    ['*_MTL.txt', 'MTD_MSIL1C.xml', 'DIM_*.XML']
    """
    return tuple(importlib.import_module(name).FORMAT for name in READER_MODULES)


def _describe() -> str:
    return "; ".join(f"{f.name} ({', '.join(f.patterns)})" for f in formats())


def _find_in_folder(folder: Path) -> tuple[Path, MetadataFormat]:
    for fmt in formats():
        for pattern in fmt.patterns:
            found = sorted(p for p in folder.glob(pattern) if p.is_file())
            if len(found) > 1:
                raise MetadataError(
                    f"{folder}: several metadata files match {pattern!r} "
                    f"({', '.join(p.name for p in found)}); pass the one you mean"
                )
            if found:
                return found[0], fmt
    raise MetadataError(
        f"{folder}: no product metadata file found in this folder; looked for {_describe()}"
    )


def read_metadata(path: str | os.PathLike[str]) -> SceneMetadata:
    """Read a scene's product metadata into :class:`~eo_pipeline.SceneMetadata`.

    Parameters
    ----------
    path
        The metadata file (Landsat ``*_MTL.txt``/``.json``/``.xml``, Sentinel-2
        ``MTD_MSIL1C.xml``, DIMAP V2 ``DIM_*.XML``) or the scene folder holding it. In a folder the Landsat ODL
        ``.txt`` is preferred over ``.json`` and ``.xml``; all three give equal metadata.

    Returns
    -------
    SceneMetadata
        Normalised metadata; ``source`` is the file read, ``files`` maps band ids (and
        ``QA_PIXEL``...) to file names relative to that file.

    Raises
    ------
    MetadataError
        Missing path, unrecognised format, truncated or incomplete file (the message names
        the file and what is missing).
    UnknownSensorError
        The file names a spacecraft no sensor file describes.

    Examples
    --------
    >>> import eo_pipeline, pathlib, tempfile
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "scene.bin"
    >>> _ = bad.write_bytes(bytes(range(256)))
    >>> try:
    ...     eo_pipeline.read_metadata(bad)
    ... except eo_pipeline.errors.MetadataError as err:
    ...     print(str(err).split(";")[0].endswith("scene.bin: not a recognised product metadata file"))
    True
    """
    p = Path(path)
    if not p.exists():
        raise MetadataError(
            f"{p}: no such file or folder; give a product metadata file (Landsat "
            "*_MTL.txt/.json/.xml, Sentinel-2 MTD_MSIL1C.xml) or the scene folder holding it"
        )
    if p.is_dir():
        found, fmt = _find_in_folder(p)
        return fmt.read(found)
    try:
        with p.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as err:
        raise MetadataError(f"{p}: cannot read metadata file: {err.strerror or err}") from None
    if not head.strip():
        raise MetadataError(f"{p}: the metadata file is empty; re-download it")
    for fmt in formats():
        if fmt.sniff(p, head):
            return fmt.read(p)
    raise MetadataError(
        f"{p}: not a recognised product metadata file; expected one of: {_describe()}"
    )

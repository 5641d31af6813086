"""File checksums as the STAC file extension records them (multihash sha2-256).

``file:checksum`` is a `multihash <https://multiformats.io/multihash/>`_ in hex: the
function code ``0x12`` (sha2-256), the digest length ``0x20`` (32 bytes), then the digest.
Files are read in fixed-size blocks so a scene of any size needs constant memory.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
>>> _ = p.write_bytes(b"abc")
>>> file_checksum(p)
'1220ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
>>> verify_checksum(p, file_checksum(p))
True
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from eo_pipeline.errors import InputDataError

__all__ = ["MULTIHASH_SHA256_PREFIX", "file_checksum", "verify_checksum"]

MULTIHASH_SHA256_PREFIX = "1220"
"""Multihash header of a sha2-256 digest: function code 0x12, length 0x20."""

_BLOCK = 1 << 20


def file_checksum(path: str | os.PathLike[str], block_size: int = _BLOCK) -> str:
    """Multihash sha2-256 of a file in lower-case hex (``1220`` + hex digest).

    Parameters
    ----------
    path
        The file to hash, or a ``/vsizip/<archive>/<member>`` path (the member's bytes).
    block_size
        Bytes read at a time (1 MiB by default).

    Raises
    ------
    InputDataError
        When the file cannot be read (the message names it).
    """
    from eo_pipeline.catalogs.archive import open_member, split_vsizip

    digest = hashlib.sha256()
    try:
        if split_vsizip(str(path)) is not None:  # a member of a zip archive, read in place
            with open_member(str(path)) as f:
                while block := f.read(block_size):
                    digest.update(block)
            return MULTIHASH_SHA256_PREFIX + digest.hexdigest()
        with open(path, "rb") as f:
            while block := f.read(block_size):
                digest.update(block)
    except OSError as err:
        raise InputDataError(f"{path}: cannot read file to checksum it: {err.strerror}") from None
    return MULTIHASH_SHA256_PREFIX + digest.hexdigest()


def verify_checksum(path: str | os.PathLike[str], expected: str) -> bool:
    """True when ``path`` hashes to ``expected`` (a multihash sha2-256 hex string).

    Raises
    ------
    InputDataError
        When ``expected`` is not a sha2-256 multihash (other hash functions are not supported).
    """
    expected = expected.lower()
    if not expected.startswith(MULTIHASH_SHA256_PREFIX) or len(expected) != 68:
        raise InputDataError(
            f"{Path(path).name}: checksum {expected!r} is not a multihash sha2-256 "
            f"('{MULTIHASH_SHA256_PREFIX}' + 64 hex digits); only sha2-256 is supported"
        )
    return file_checksum(path) == expected

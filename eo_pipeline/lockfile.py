"""One writer at a time per output folder or catalog: an advisory lock file with its holder.

Two processes that read-modify-write the same catalog (``publish`` into one export, ``run``
into one output, ``ingest`` into one catalog) would each write what *they* read, and one
process' work would vanish with exit code 0. Every such writer holds :func:`exclusive` on
the folder while it reads and writes it:

- the lock is ``flock`` on a small file beside or in the folder, so the kernel releases it
  when the holder exits *or is killed* (no stale locks to clean up by hand);
- the holder writes its pid, host, start time and command into the file, so a refused
  writer says who holds it: ``busy: ... held by pid 4242 on host1 since 2026-...``;
- ``wait`` seconds > 0 waits for the holder to finish (writers that merge, such as
  ``publish``, then read the other's result and add theirs to it); ``0`` refuses at once.

It imports only the standard library and :mod:`eo_pipeline.errors`, so every layer may use it.
An ``flock`` is per host on network filesystems that do not forward it (old NFS).

Examples
--------
>>> import tempfile, pathlib
>>> lock = pathlib.Path(tempfile.mkdtemp()) / ".out.lock"
>>> with exclusive(lock, "the output folder"):
...     print(holder(lock)["pid"] == os.getpid())
True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eo_pipeline.errors import BusyError, WriteError

__all__ = ["alive", "exclusive", "holder", "lock_beside"]

_POLL = 0.1


def lock_beside(folder: str | os.PathLike[str]) -> Path:
    """The lock file of a folder that may be replaced whole: ``.{name}.lock`` in its parent."""
    p = Path(folder).resolve()
    return p.with_name(f".{p.name}.lock")


def holder(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What the current (or last) holder wrote into the lock file; ``{}`` when unknown."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def alive(info: dict[str, Any]) -> bool | None:
    """Whether the holder ``info`` (from :func:`holder`) still runs: ``True``/``False`` on
    its own host (its pid is probed), ``None`` from another host (unknown here)."""
    pid = info.get("pid")
    if not isinstance(pid, int) or info.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _describe(info: dict[str, Any]) -> str:
    if not info.get("pid"):
        return "another process (it has not said which yet)"
    return (
        f"pid {info['pid']} on {info.get('host', '?')} since {info.get('since', '?')} "
        f"({info.get('command', '?')})"
    )


@contextlib.contextmanager
def exclusive(
    path: str | os.PathLike[str],
    what: str,
    wait: float = 0.0,
    info: dict[str, Any] | None = None,
) -> Iterator[None]:
    """Hold the lock file ``path`` for ``what`` (a folder or catalog, for messages);
    ``info`` is written into the file beside the holder's pid, host and start time (``run``
    writes its run id there, so its tasks can tell whether their run still owns the output).

    Raises
    ------
    BusyError
        Another process holds it (after ``wait`` seconds); the message names the holder.
    """
    import fcntl

    lock = Path(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise WriteError(
            f"{lock.parent}: not writable, cannot create the lock file of {what} "
            f"({err.strerror}); choose a folder you may write"
        ) from None
    try:
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    waited = f" (waited {wait:g} s)" if wait > 0 else ""
                    raise BusyError(
                        f"busy: {what} is being written by {_describe(holder(lock))}{waited}; "
                        "wait for that process to finish or write somewhere else "
                        f"(lock file {lock})"
                    ) from None
                time.sleep(_POLL)
        info = {
            **(info or {}),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(
                os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)
            )[:200],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock; the file stays (removing it would race a waiter)

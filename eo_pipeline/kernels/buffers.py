"""Recycled memory for large kernel outputs.

A new large array gets its memory from the operating system as fresh pages: the first write
to each page faults and the kernel zeroes it before our kernel writes it again. glibc's
``malloc`` recycles freed memory only up to its mmap threshold (32 MiB at most); above that,
every new output pays for the page faults and the zeroing. For a memory-bound kernel such
as NDVI on a 4000 x 4000 scene (a 64 MB output) that costs about as much as the kernel
itself (7.1 ms fresh vs 5.3 ms into a reused buffer on the 2-core benchmark machine).

:data:`POOL` keeps the memory of large outputs that nobody uses any more and hands it out
again for the next output of the same size, the way arena allocators (jemalloc, mimalloc,
PyTorch's caching allocator) do.

Safety: a buffer is handed out again only when nothing but the pool refers to it. Every
array made from it, and every view of such an array, holds a reference to the buffer
(numpy's ``base``), so the buffer's reference count is the pool's own plus one per live
array or view; it is checked under a lock, and only the pool can make new references to a
free buffer. On interpreters where reference counts are not exact (free-threaded builds)
the pool is off. Handed-out arrays are uninitialised, like :func:`numpy.empty`.

Memory: the pool never tracks more than its capacity (``EO_PIPELINE_BUFFER_POOL_MB``; by
default 1024 MiB or 5 % of the machine's memory, whichever is less, like GDAL's block cache;
``0`` turns it off). An output that does not fit is allocated plainly and never tracked, so
at most the capacity stays allocated after the caller drops every result;
:meth:`BufferPool.clear` gives it back at once (workflow units call it when they end, so a
dask worker does not hold it between units).

Examples
--------
>>> import numpy as np
>>> pool = BufferPool(capacity=2**26, min_bytes=1024)
>>> a = pool.empty((64, 64), np.float32)
>>> address = a.__array_interface__["data"][0]
>>> b = pool.empty((64, 64), np.float32)  # a is alive: b gets other memory
>>> b.__array_interface__["data"][0] == address
False
>>> del a
>>> c = pool.empty((32, 128), np.float32)  # same size, a was dropped: its memory again
>>> c.__array_interface__["data"][0] == address
True
"""

from __future__ import annotations

import math
import os
import sys
import threading
import weakref
from dataclasses import dataclass

import numpy as np

__all__ = ["POOL", "BufferPool", "PoolStats", "pooled_empty"]

_MIN_BYTES = 32 * 2**20
"""Smaller outputs come from ``malloc``, which recycles them itself."""


_POOLS: weakref.WeakSet[BufferPool] = weakref.WeakSet()


def _new_locks_after_fork() -> None:
    """A child forked while another thread held a pool's lock would block on it forever."""
    for pool in list(_POOLS):
        pool._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_after_fork)


def _refcount(buffers: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(buffers[i])


def _calibrate() -> int | None:
    """The reference count :func:`_refcount` sees for a buffer only the pool holds.

    ``None`` when counts cannot be trusted: no GIL, or a view not counted.
    """
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        return None
    probe = [np.empty(16, np.uint8)]
    free = _refcount(probe, 0)
    view = probe[0].view(np.float32).reshape(2, 2)[1:]
    held = _refcount(probe, 0)
    del view
    if held <= free or _refcount(probe, 0) != free:
        return None
    return free


_FREE = _calibrate()


@dataclass(frozen=True)
class PoolStats:
    """What the pool holds and did."""

    tracked_bytes: int
    """Bytes of every buffer the pool tracks (in use or free)."""
    free_bytes: int
    """Bytes of the tracked buffers nobody uses now (what :meth:`BufferPool.clear` frees)."""
    reused: int
    """Outputs served from recycled memory."""
    allocated: int
    """Outputs of at least ``min_bytes`` that needed new memory (tracked or not)."""


class BufferPool:
    """A bounded pool of recycled memory for outputs of ``min_bytes`` or more.

    Parameters
    ----------
    capacity
        Most bytes tracked at once; ``0`` turns the pool off.
    min_bytes
        Smaller requests go straight to :func:`numpy.empty`.
    """

    def __init__(self, capacity: int, min_bytes: int = _MIN_BYTES) -> None:
        self.capacity = int(capacity)
        self.min_bytes = int(min_bytes)
        self._buffers: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._reused = 0
        self._allocated = 0
        _POOLS.add(self)

    def empty(self, shape: int | tuple[int, ...], dtype: np.dtype | type | str) -> np.ndarray:
        """An uninitialised C-contiguous array, from recycled memory when possible."""
        dt = np.dtype(dtype)
        dims = (int(shape),) if isinstance(shape, int | np.integer) else tuple(map(int, shape))
        nbytes = math.prod(dims) * dt.itemsize
        if _FREE is None or nbytes < self.min_bytes or nbytes > self.capacity:
            return np.empty(dims, dt)
        with self._lock:
            buffer = self._take(nbytes)
            if buffer is None:
                self._allocated += 1
                buffer = self._new(nbytes)
                if buffer is None:
                    return np.empty(dims, dt)
            else:
                self._reused += 1
            return buffer.view(dt).reshape(dims)

    def _free(self, i: int) -> bool:
        """Nothing but the pool refers to buffer ``i`` (never bind it to a local first)."""
        return _refcount(self._buffers, i) == _FREE

    def _take(self, nbytes: int) -> np.ndarray | None:
        for i in range(len(self._buffers)):
            if self._buffers[i].nbytes == nbytes and self._free(i):
                return self._buffers[i]
        return None

    def _drop_free(self, limit: int) -> int:
        """Drop unused buffers, oldest first, until at most ``limit`` bytes are tracked;
        returns the bytes dropped."""
        tracked = sum(b.nbytes for b in self._buffers)
        dropped = 0
        i = 0
        while tracked > limit and i < len(self._buffers):
            if self._free(i):
                size = self._buffers.pop(i).nbytes
                tracked -= size
                dropped += size
            else:
                i += 1
        return dropped

    def _new(self, nbytes: int) -> np.ndarray | None:
        """Track a new buffer, dropping free ones to stay within capacity."""
        self._drop_free(self.capacity - nbytes)
        if sum(b.nbytes for b in self._buffers) + nbytes > self.capacity:
            return None
        buffer = np.empty(nbytes, np.uint8)
        self._buffers.append(buffer)
        return buffer

    def clear(self) -> int:
        """Free every buffer nobody uses now; returns the bytes given back."""
        with self._lock:
            return self._drop_free(0)

    def stats(self) -> PoolStats:
        """Bytes tracked and free, outputs reused and allocated."""
        with self._lock:
            free = sum(self._buffers[i].nbytes for i in range(len(self._buffers)) if self._free(i))
            tracked = sum(b.nbytes for b in self._buffers)
            return PoolStats(tracked, free, self._reused, self._allocated)


def _default_capacity() -> int:
    """1024 MiB or 5 % of the physical memory, whichever is less."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 2**30
    return int(min(2**30, 0.05 * total))


def _capacity_from_env() -> int:
    text = os.environ.get("EO_PIPELINE_BUFFER_POOL_MB")
    if text is None:
        return _default_capacity()
    try:
        mb = float(text)
    except ValueError:
        mb = -1.0
    if not math.isfinite(mb) or mb < 0:
        from eo_pipeline.errors import ConfigError

        raise ConfigError(
            f"EO_PIPELINE_BUFFER_POOL_MB={text!r}: expected a number of MiB >= 0 (0 turns the "
            "output buffer pool off)"
        )
    return int(mb * 2**20)


POOL = BufferPool(_capacity_from_env())
"""The process-wide pool used by the kernels' outputs."""


def pooled_empty(shape: int | tuple[int, ...], dtype: np.dtype | type | str) -> np.ndarray:
    """``POOL.empty``: an uninitialised output array, recycled memory when possible."""
    return POOL.empty(shape, dtype)

"""The recycled output pool: memory is reused only when no array or view refers to it."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time

import numpy as np
import pytest
import xarray as xr

from eo_pipeline.errors import ConfigError
from eo_pipeline.kernels import buffers
from eo_pipeline.kernels.buffers import BufferPool
from eo_pipeline.kernels.indices import FusedKernel

pytestmark = pytest.mark.skipif(buffers._FREE is None, reason="reference counts not exact here")

KIB = 1024


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


@pytest.fixture
def pool() -> BufferPool:
    return BufferPool(capacity=64 * KIB, min_bytes=KIB)


def test_dropped_output_is_reused(pool: BufferPool) -> None:
    a = pool.empty((16, 16), np.float32)
    where = _address(a)
    del a
    b = pool.empty(256, np.int32)  # same bytes, other shape and dtype
    assert _address(b) == where
    assert b.shape == (256,) and b.dtype == np.int32 and b.flags.c_contiguous
    assert pool.stats().reused == 1


@pytest.mark.parametrize(
    "keep",
    [
        lambda a: a,
        lambda a: a[3:],
        lambda a: a.T,
        lambda a: a.reshape(-1)[::2],
        lambda a: a.view(np.uint8),
        lambda a: xr.DataArray(a, dims=("y", "x")),
        lambda a: memoryview(a),
        lambda a: [a[1]],  # a row view inside a container
    ],
    ids=["array", "slice", "transpose", "strided", "dtype-view", "xarray", "memoryview", "list"],
)
def test_never_reused_while_anything_refers_to_it(pool: BufferPool, keep) -> None:  # type: ignore[no-untyped-def]
    a = pool.empty((16, 16), np.float32)
    a[:] = 7.0
    held = keep(a)
    del a
    gc.collect()
    b = pool.empty((16, 16), np.float32)
    b[:] = -1.0
    values = np.asarray(held[0] if isinstance(held, list) else held)
    assert not np.shares_memory(values, b)
    assert (
        np.all(values.view(np.float32) == 7.0) if values.dtype == np.uint8 else np.all(values == 7)
    )
    del held, values
    c = pool.empty((16, 16), np.float32)  # now the first buffer is free again
    assert not np.shares_memory(c, b)
    assert pool.stats().reused == 1


def test_small_requests_bypass_the_pool(pool: BufferPool) -> None:
    a = pool.empty(8, np.float32)
    assert a.base is None  # plain numpy.empty
    assert pool.stats().tracked_bytes == 0


def test_capacity_bounds_what_is_tracked(pool: BufferPool) -> None:
    live = [pool.empty(16 * KIB // 4, np.float32) for _ in range(6)]  # 6 x 16 KiB, cap 64 KiB
    assert pool.stats().tracked_bytes == 64 * KIB
    assert sum(a.base is None for a in live) == 2  # the two that did not fit are untracked
    too_big = pool.empty(128 * KIB, np.uint8)
    assert too_big.base is None
    del live
    stats = pool.stats()
    assert stats.free_bytes == stats.tracked_bytes == 64 * KIB
    # a new size evicts free buffers to fit, never beyond the capacity
    other = pool.empty(48 * KIB, np.uint8)
    assert other.base is not None
    assert pool.stats().tracked_bytes <= 64 * KIB
    assert pool.clear() == 16 * KIB  # the one free 16 KiB buffer left
    del other
    assert pool.clear() == 48 * KIB
    assert pool.stats().tracked_bytes == 0


def test_capacity_zero_turns_it_off() -> None:
    pool = BufferPool(capacity=0, min_bytes=1)
    assert pool.empty(1024, np.uint8).base is None


def test_threads_never_share_live_buffers() -> None:
    pool = BufferPool(capacity=256 * KIB, min_bytes=KIB)
    errors: list[str] = []

    def work(tag: int) -> None:
        for _ in range(300):
            a = pool.empty(1024, np.int32)
            a[:] = tag
            b = pool.empty(1024, np.int32)
            b[:] = -tag
            if np.shares_memory(a, b) or not (np.all(a == tag) and np.all(b == -tag)):
                errors.append(f"thread {tag}: live buffers shared")
                return

    threads = [threading.Thread(target=work, args=(t,)) for t in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert pool.stats().reused > 0


def test_kernel_outputs_recycled_and_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = BufferPool(capacity=4 * 2**20, min_bytes=KIB)
    monkeypatch.setattr(buffers, "POOL", pool)
    k = FusedKernel.from_formulas(["(N - R) / (N + R)"], ["N", "R"])
    rng = np.random.default_rng(0)
    n, r = (rng.random((64, 64), dtype=np.float32) + np.float32(0.1) for _ in range(2))
    expected = (n - r) / (n + r)
    (first,) = k(n, r)
    (second,) = k(r, n)  # first is alive: other memory
    assert not np.shares_memory(first, second)
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    np.testing.assert_allclose(second, -expected, rtol=1e-6)
    where = _address(first)
    del first
    (third,) = k(n, r)
    assert _address(third) == where
    np.testing.assert_allclose(third, expected, rtol=1e-6)
    np.testing.assert_allclose(second, -expected, rtol=1e-6)  # untouched by the reuse


@pytest.mark.parametrize("text", ["-1", "lots", "nan", "inf"])
def test_bad_capacity_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("EO_PIPELINE_BUFFER_POOL_MB", text)
    with pytest.raises(ConfigError, match="EO_PIPELINE_BUFFER_POOL_MB"):
        buffers._capacity_from_env()


def test_capacity_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EO_PIPELINE_BUFFER_POOL_MB", "0.5")
    assert buffers._capacity_from_env() == 2**19
    monkeypatch.delenv("EO_PIPELINE_BUFFER_POOL_MB")
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert buffers._capacity_from_env() == min(2**30, int(0.05 * total))


def test_fork_child_gets_a_fresh_lock() -> None:
    pool = BufferPool(capacity=64 * KIB, min_bytes=KIB)
    pool._lock.acquire()  # as if another thread held it at fork time
    try:
        pid = os.fork()
        if pid == 0:  # child: must not block
            code = 0 if pool.empty(1024, np.uint8).base is not None else 1
            os._exit(code)
        for _ in range(200):  # a child stuck on the inherited lock must fail, not hang
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child blocked on the pool's lock")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        pool._lock.release()

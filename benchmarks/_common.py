"""Shared helpers for the benchmark scripts: best-of-N timing, GB/s, ratio tables, JSON output.

Every benchmark compares peers in one run on the same arrays, prints a table of ratios and
writes ``benchmarks/results/<name>.json`` with the machine facts next to the numbers.

Examples
--------
>>> import numpy as np
>>> a = np.ones(1000, dtype=np.float32)
>>> t = time_best("copy", lambda: a.copy(), repeat=3, nbytes=2 * a.nbytes)
>>> t.name, len(t.times), t.gbps > 0
('copy', 3, True)
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS",
    "Timing",
    "cold_jit_seconds",
    "machine_info",
    "one_thread",
    "peak_rss_mb",
    "print_table",
    "time_best",
    "time_interleaved",
    "write_json",
]

RESULTS = Path(
    os.environ.get("EO_PIPELINE_BENCH_RESULTS") or Path(__file__).resolve().parent / "results"
)
"""Folder the JSON results go to (``$EO_PIPELINE_BENCH_RESULTS`` overrides it: the smoke test)."""


@dataclass(frozen=True)
class Timing:
    """Best-of-N wall-clock timing of one contender."""

    name: str
    """Label printed in the table."""
    times: tuple[float, ...]
    """Every repetition, seconds."""
    nbytes: int | None = None
    """Bytes moved per call (read + written), for GB/s; ``None`` when not meaningful."""
    note: str = ""
    """Free text (threads, variant) shown in the table."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping in the JSON."""

    @property
    def best(self) -> float:
        """Fastest repetition, seconds."""
        return min(self.times)

    @property
    def gbps(self) -> float:
        """Throughput of the best repetition in GB/s (1e9 bytes), NaN without ``nbytes``."""
        return self.nbytes / self.best / 1e9 if self.nbytes else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (best, median, GB/s)."""
        times = sorted(self.times)
        return {
            **asdict(self),
            "best_s": self.best,
            "median_s": times[len(times) // 2],
            "gbps": self.gbps,
        }


def time_best(
    name: str,
    func: Callable[[], Any],
    *,
    repeat: int = 5,
    nbytes: int | None = None,
    warmup: int = 1,
    note: str = "",
    extra: dict[str, Any] | None = None,
) -> Timing:
    """Run ``func`` ``warmup`` times untimed, then ``repeat`` times timed (GC off while timing)."""
    for _ in range(warmup):
        func()
    times = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            func()
            times.append(time.perf_counter() - t0)
    finally:
        if enabled:
            gc.enable()
    return Timing(name, tuple(times), nbytes, note, dict(extra or {}))


def time_interleaved(
    contenders: Sequence[tuple[str, Callable[[], Any], str]],
    *,
    repeat: int = 5,
    nbytes: int | None = None,
    warmup: int = 1,
) -> list[Timing]:
    """Time ``(name, func, note)`` contenders round-robin: repetition k of every contender
    runs before repetition k+1 of any, so a background load that comes and goes (shared
    machines) hits them alike. Best-of-``repeat`` each, GC off while timing."""
    for _, func, _ in contenders:
        for _ in range(warmup):
            func()
    times: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for name, func, _ in contenders:
                t0 = time.perf_counter()
                func()
                times[name].append(time.perf_counter() - t0)
    finally:
        if enabled:
            gc.enable()
    return [Timing(name, tuple(times[name]), nbytes, note) for name, _, note in contenders]


def one_thread(func: Callable[[], Any]) -> Callable[[], Any]:
    """``func`` run with numba limited to one thread (the previous count restored after)."""
    import numba

    def run() -> Any:
        previous = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return func()
        finally:
            numba.set_num_threads(previous)

    return run


def print_table(
    timings: Sequence[Timing], *, references: Iterable[str] = (), title: str = ""
) -> dict[str, dict[str, float]]:
    """Print best time, GB/s and ``reference time / contender time`` for each reference.

    Returns ``{contender: {"vs <reference>": ratio}}`` (ratio > 1: the contender is faster).
    """
    by_name = {t.name: t for t in timings}
    refs = [r for r in references if r in by_name]
    width = max(len(t.name) for t in timings)
    if title:
        print(title)
    header = f"{'contender':<{width}}  {'best ms':>9}  {'GB/s':>7}" + "".join(
        f"  {'vs ' + r:>{max(10, len(r) + 3)}}" for r in refs
    )
    print(header)
    print("-" * len(header))
    ratios: dict[str, dict[str, float]] = {}
    for t in timings:
        row = {f"vs {r}": by_name[r].best / t.best for r in refs}
        ratios[t.name] = row
        cells = "".join(f"  {row[f'vs {r}']:>{max(10, len(r) + 3)}.2f}x" for r in refs)
        note = f"  {t.note}" if t.note else ""
        print(f"{t.name:<{width}}  {t.best * 1e3:>9.2f}  {t.gbps:>7.2f}{cells}{note}")
    return ratios


def cold_jit_seconds(setup: str, call: str) -> float:
    """Seconds ``call`` takes right after ``setup`` in a fresh Python with an empty numba cache.

    ``setup`` does the imports (not timed); ``call`` is the first call of a jitted function,
    so the time is its compilation. Both are Python source (several lines allowed).
    """
    code = (
        f"{setup}\nimport time as _t\n_t0 = _t.perf_counter()\n{call}\n"
        "print(_t.perf_counter() - _t0)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        res = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
    return float(res.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux ``ru_maxrss`` is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine_info() -> dict[str, Any]:
    """Facts that make numbers comparable: CPU count, library versions, thread settings."""
    info: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("NUMBA_", "OMP_", "OPENBLAS_", "EO_PIPELINE_", "NUMEXPR_"))
        },
    }
    for mod in ("numpy", "numba", "numexpr", "dask", "xarray"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    return info


def write_json(name: str, payload: dict[str, Any], folder: Path = RESULTS) -> Path:
    """Write ``payload`` (+ :func:`machine_info`) to ``folder/<name>.json``; returns the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"

    def default(obj: Any) -> Any:
        if isinstance(obj, Timing):
            return obj.as_dict()
        if hasattr(obj, "tolist"):
            return obj.tolist()
        return str(obj)

    text = json.dumps(
        {"benchmark": name, "machine": machine_info(), **payload}, indent=2, default=default
    )
    path.write_text(text + "\n", encoding="utf-8")
    return path

"""Run every ``benchmarks/bench_*.py`` in turn (each in its own process) and print one table.

Each script writes its JSON to ``benchmarks/results/``; this collects the files written
during this run and prints, per benchmark, every ``ratios`` entry (contender vs reference,
> 1 means the contender is faster) and every ``targets_met`` flag.

``--quick`` passes smaller problem sizes to the scripts that accept them (read from each
script's ``--help``): ``--size``, ``--repeat``, ``--dates``, ``--ny``, ``--nx``.

Run: ``.venv/bin/python benchmarks/run_all.py [--quick] [--only end_to_end,radiometry]``
(``make bench`` runs it without flags: full sizes, a long run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS

HERE = Path(__file__).resolve().parent
"""The benchmarks folder."""

QUICK = {"--size": "1024", "--repeat": "1", "--dates": "5", "--ny": "640", "--nx": "500",
         "--jit": "small"}  # fmt: skip
"""Flag -> value passed with ``--quick`` when a script's ``--help`` lists the flag."""


def scripts(only: set[str] | None = None) -> list[Path]:
    """``bench_*.py`` in this folder, sorted; ``only`` filters by name without ``bench_``."""
    found = sorted(HERE.glob("bench_*.py"))
    if only:
        found = [p for p in found if p.stem.removeprefix("bench_") in only]
    return found


def quick_args(script: Path) -> list[str]:
    """The :data:`QUICK` flags this script's argparse accepts."""
    res = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=False
    )
    flags = set(res.stdout.replace(",", " ").replace("[", " ").replace("]", " ").split())
    return [item for flag, value in QUICK.items() if flag in flags for item in (flag, value)]


def collect(since: float) -> dict[str, dict[str, Any]]:
    """JSON results written after ``since`` (epoch seconds), by benchmark name."""
    found = {}
    for path in sorted(RESULTS.glob("*.json")):
        if path.stat().st_mtime >= since:
            data = json.loads(path.read_text())
            found[str(data.get("benchmark", path.stem))] = data
    return found


def table(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, Any]]:
    """Rows ``(benchmark, contender, reference or target, ratio or met)``."""
    rows: list[tuple[str, str, str, Any]] = []
    for name, data in results.items():
        for contender, refs in (data.get("ratios") or {}).items():
            for ref, ratio in refs.items():
                if ref != f"vs {contender}":
                    rows.append((name, contender, ref, ratio))
        for target, met in (data.get("targets_met") or {}).items():
            rows.append((name, "target", target, bool(met)))
    return rows


def print_table(rows: list[tuple[str, str, str, Any]]) -> None:
    """Ratios as ``1.23x``, targets as ``met``/``MISSED``."""
    if not rows:
        print("no results")
        return
    w0 = max(len("benchmark"), *(len(r[0]) for r in rows))
    w1 = max(len("contender"), *(len(r[1]) for r in rows))
    w2 = max(len("vs / target"), *(len(r[2]) for r in rows))
    print(f"{'benchmark':<{w0}}  {'contender':<{w1}}  {'vs / target':<{w2}}  result")
    print("-" * (w0 + w1 + w2 + 14))
    for bench, contender, ref, value in rows:
        cell = ("met" if value else "MISSED") if isinstance(value, bool) else f"{value:.2f}x"
        print(f"{bench:<{w0}}  {contender:<{w1}}  {ref:<{w2}}  {cell}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes where a script allows")
    p.add_argument("--only", default="", help="comma-separated names, e.g. end_to_end,composite")
    args = p.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    start = time.time()
    failed = []
    for script in scripts(only):
        extra = quick_args(script) if args.quick else []
        print(f"\n=== {script.name} {' '.join(extra)}", flush=True)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, str(script), *extra], check=False)
        print(f"=== {script.name}: exit {res.returncode} in {time.perf_counter() - t0:.0f} s")
        if res.returncode:
            failed.append(script.name)
    print("\nall benchmarks: ratios (> 1: the contender is faster) and targets")
    print_table(table(collect(start)))
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

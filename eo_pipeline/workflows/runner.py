"""Run a workflow on dask.distributed: units spread over workers, retried, resumable.

- A ``LocalCluster`` sized to the machine by default; ``scheduler="tcp://HOST:PORT"`` (or
  ``DASK_SCHEDULER_ADDRESS``) attaches to a cluster operators already run. A scheduler that
  does not answer is a :class:`~eo_pipeline.errors.ClusterError` within seconds.
- Each unit (scene or composite period) is one task, retried ``resources.retries`` times,
  then reported with its cause; it never stops the others. A worker that dies mid-unit has
  its unit rescheduled elsewhere; outputs are written under temporary names and renamed, so
  nothing is half-written or duplicated.
- ``manifest.json`` in the output folder records inputs (with checksums), parameters,
  software versions, outputs (with checksums) and timings. A re-run skips units whose entry
  matches inputs and parameters and whose outputs are intact, and redoes the rest.

Examples
--------
>>> # from eo_pipeline.workflows.runner import run
>>> # report = run("toa-indices", inputs={"catalog": "demo-output/catalog"})
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eo_pipeline.atomic import PARTIAL_GLOB, write_json
from eo_pipeline.errors import ClusterError, WorkflowError, WriteError
from eo_pipeline.lockfile import exclusive, holder
from eo_pipeline.workflows.completion import RUN_LOCK, STAGE_GLOB
from eo_pipeline.workflows.plan import Unit, plan
from eo_pipeline.workflows.products import software_versions
from eo_pipeline.workflows.spec import Workflow, load_workflow

__all__ = ["RunReport", "connect", "run", "run_cli"]

MANIFEST = "manifest.json"
LOCK = RUN_LOCK
"""Held by the run writing the output folder (:mod:`eo_pipeline.lockfile`)."""


@dataclass(frozen=True)
class RunReport:
    """What a run did."""

    workflow: str
    output: Path
    done: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: Mapping[str, str] = field(default_factory=dict)
    """Unit key -> the cause of its failure."""
    products: int = 0
    """Files written in this run."""
    bytes_written: int = 0
    seconds: float = 0.0
    dashboard: str | None = None
    excluded: Mapping[str, str] = field(default_factory=dict)
    """``collection/item id`` of each selected item left out of the run -> why (see
    :func:`eo_pipeline.workflows.plan.plan`)."""
    notes: Mapping[str, str] = field(default_factory=dict)
    """Unit key -> what to know of a unit that finished (e.g. all its pixels are nodata)."""

    @property
    def ok(self) -> bool:
        return not self.failed


@contextlib.contextmanager
def connect(
    scheduler: str | None = None, workers: int | None = None, timeout: float = 5.0
) -> Iterator[Any]:
    """A distributed Client: attached to ``scheduler`` or ``DASK_SCHEDULER_ADDRESS``, else a LocalCluster."""
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        try:
            client = Client(address, timeout=timeout)
        except (OSError, TimeoutError) as err:
            raise ClusterError(
                f"dask scheduler at {address} did not answer within {timeout:g} s ({err}); "
                "check the address and that `dask scheduler` runs there"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    cores = os.cpu_count() or 1
    n = workers or max(1, min(cores, 4))
    import dask

    # dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 so workers hand memory back at once; with
    # our 4-64 MB chunk buffers that turns every chunk into fresh page faults (measured: +1 s
    # of system CPU per 2048^2 scene). Keep big buffers mapped and reused instead.
    environ = {
        **dask.config.get("distributed.nanny.pre-spawn-environ", {}),
        "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
        "MALLOC_MMAP_THRESHOLD_": str(64 << 20),
    }
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            memory_limit="auto",
            silence_logs=40,
        )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.exists():
        return {"units": {}, "runs": []}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"units": {}, "runs": []}


def _intact(root: Path, entry: Mapping[str, Any]) -> bool:
    """Every output of a manifest entry is still the file that was written.

    Size and modification time are compared first; a file whose mtime changed (or an entry
    from before mtimes were recorded) is re-hashed, so a re-run does not re-read terabytes of
    untouched products.
    """
    from eo_pipeline.catalogs.checksum import file_checksum

    for out in entry.get("outputs", []):
        p = root / out["path"]
        try:
            st = p.stat()
        except FileNotFoundError:
            return False
        if st.st_size != out["size"]:
            return False
        if st.st_mtime_ns != out.get("mtime_ns") and file_checksum(p) != out["checksum"]:
            return False
    return bool(entry.get("outputs")) and (root / entry["item"]).exists()


def _clean_partials(root: Path) -> int:
    """Remove what killed runs and their orphaned units left: temporaries and stage folders
    (an orphan still writing there then fails, and discards its unit anyway)."""
    import shutil

    n = 0
    for d in [*root.glob(STAGE_GLOB), *root.glob("items/.*.old-*")]:
        shutil.rmtree(d, ignore_errors=True)
        n += 1
    for p in root.rglob(PARTIAL_GLOB):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n


def _cancel_stale(cl: Any, previous: str | None) -> int:
    """Cancel the unit tasks a dead run (id ``previous``) left on the scheduler, if any are
    still there (the scheduler drops a dead client's tasks itself once it notices; a task
    already running finishes its Python call and then discards its unit); returns how many."""
    if not previous:
        return 0

    def stale(dask_scheduler: Any) -> list[str]:
        return [
            k
            for k in dask_scheduler.tasks
            if isinstance(k, str) and k.startswith("unit-") and k.endswith(f"-{previous[:12]}")
        ]

    try:
        keys = cl.run_on_scheduler(stale)
        if keys:
            from distributed import Future

            cl.cancel([Future(k, cl) for k in keys], force=True)
        return len(keys)
    except Exception:  # an old scheduler, a client without run_on_scheduler: best effort
        return 0


class _Progress:
    """A tqdm bar on a terminal, plain log lines otherwise."""

    def __init__(self, total: int, name: str) -> None:
        self.tty = sys.stderr.isatty()
        self.total, self.n, self.products = total, 0, 0
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=name, unit="unit", file=sys.stderr)

    def update(self, key: str, products: int, status: str) -> None:
        self.n += 1
        self.products += products
        if self.bar is not None:
            self.bar.set_postfix(products=self.products, last=status)
            self.bar.update(1)
        else:
            print(
                f"[{self.n}/{self.total}] {key}: {status} ({self.products} products written)",
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class _Tally:
    """What the units of one run did, filled as their results arrive."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    written: int = 0
    nbytes: int = 0
    notes: dict[str, str] = field(default_factory=dict)


# -- planning and resume bookkeeping ---------------------------------------------------------
def _print_plan(wf: Workflow, units: list[Unit], excluded: Mapping[str, str], root: Path,
                dry_run: bool) -> None:  # fmt: skip
    for n, (item_id, why) in enumerate(excluded.items()):
        if n == 10:
            print(f"left out {len(excluded) - 10} more item(s) (listed in the manifest)")
            break
        print(f"left out {item_id}: {why}")
    if dry_run:
        print(f"workflow {wf.name}: {len(units)} unit(s) -> {root}")
        for u in units:
            print(f"  {u.key}: {len(u.item_ids)} item(s) from {u.collection}")
        print("steps: " + " -> ".join(s.name for s in wf.steps))


def _prepare_output(root: Path) -> None:
    """Create the output folder, check it is writable, remove a killed run's temporaries."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{uuid.uuid4().hex[:6]}.part"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise WriteError(
            f"{root}: output folder is not writable ({err.strerror}); choose another output.catalog"
        ) from None
    _clean_partials(root)


def _split_todo(
    units: list[Unit], manifest: Mapping[str, Any], root: Path, params: str
) -> tuple[list[Unit], list[str]]:
    """Units to run, and keys of those whose manifest entry matches inputs and parameters and
    whose outputs are intact (skipped)."""
    todo: list[Unit] = []
    skipped: list[str] = []
    for u in units:
        previous = manifest["units"].get(u.key)
        if (
            previous
            and previous.get("status") == "done"
            and previous.get("inputs_signature") == u.inputs_signature
            and previous.get("params_hash") == params
            and _intact(root, previous)
        ):
            skipped.append(u.key)
        else:
            todo.append(u)
    return todo, skipped


def _record(
    manifest: dict[str, Any], u: Unit, params: str, root: Path, res: Any, error: str | None
) -> None:
    """The manifest entry of one finished (or failed) unit."""
    entry: dict[str, Any] = {
        "status": "failed",
        "inputs_signature": u.inputs_signature,
        "params_hash": params,
        "inputs": [{"id": i, "href": h} for i, h in zip(u.item_ids, u.item_hrefs, strict=True)],
        "period": u.period,
    }
    if error is not None:
        entry["error"] = error
    else:
        entry.update(
            status="done",
            item=res.item_path,
            outputs=[
                {
                    "key": f.key,
                    "path": f.path,
                    "size": f.size,
                    "checksum": f.checksum,
                    "mtime_ns": (root / f.path).stat().st_mtime_ns,
                }
                for f in res.files
            ],
            timings=res.timings,
            worker=res.worker,
            notes=list(getattr(res, "notes", ())),
            finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
    manifest["units"][u.key] = entry


# -- dispatch to the cluster -----------------------------------------------------------------
def _unit_threads(cl: Any, todo: list[Unit]) -> tuple[int, int]:
    """(workers, threads per unit): on this machine's LocalCluster the cores are shared by
    the units running at once (fewer units than workers: each gets more threads); on a
    remote cluster, 1 per task."""
    from distributed import LocalCluster

    nworkers = max(1, len(cl.scheduler_info().get("workers", {})))
    local = isinstance(getattr(cl, "cluster", None), LocalCluster)
    busy = max(1, min(nworkers, len(todo)))
    return nworkers, (max(1, (os.cpu_count() or 1) // busy) if local else 1)


def _dispatch(
    cl: Any, todo: list[Unit], wf: Workflow, root: Path, threads: int, run_id: str
) -> Iterator[tuple[Unit, Any, str | None]]:
    """Submit one task per unit; yield ``(unit, result, None)`` or ``(unit, None, cause)``
    as units finish (a unit's failure is reported, never fatal to the run)."""
    from distributed import as_completed

    from eo_pipeline.catalogs import sensors
    from eo_pipeline.workflows.process import process_unit

    task = sensors.shipped(process_unit)  # every worker sees this process's sensors
    futures = {
        cl.submit(
            task,
            u,
            wf,
            str(root),
            threads,
            run=run_id,
            key=f"unit-{wf.name}-{u.key}-{run_id[:12]}",
            retries=wf.resources.retries,
            pure=False,
        ): u
        for u in todo
    }
    try:
        for fut in as_completed(futures):
            try:
                res = fut.result()
            except Exception as err:
                yield futures[fut], None, f"{type(err).__name__}: {err}"
                continue
            yield futures[fut], res, None
    finally:  # interrupted (Ctrl-C, SIGTERM, an error): no orphaned units left on the cluster
        pending = [f for f in futures if not f.done()]
        if pending:
            with contextlib.suppress(Exception):
                cl.cancel(pending)


def _execute(
    cl: Any, todo: list[Unit], wf: Workflow, root: Path, manifest: dict[str, Any], params: str,
    tally: _Tally, verbose: bool, skipped: int, run_id: str,
) -> None:  # fmt: skip
    """Run the units on ``cl``, recording each in the manifest (rewritten after each one)."""
    nworkers, threads = _unit_threads(cl, todo)
    if verbose:
        print(
            f"workflow {wf.name}: {len(todo)} unit(s) to run, {skipped} up to date; "
            f"{nworkers} worker(s); dashboard: {getattr(cl, 'dashboard_link', None)}",
            flush=True,
        )
    progress = _Progress(len(todo), wf.name) if verbose else None
    for u, res, error in _dispatch(cl, todo, wf, root, threads, run_id):
        _record(manifest, u, params, root, res, error)
        if error is not None:
            tally.failed[u.key] = error
            if progress:
                progress.update(u.key, 0, "FAILED")
            continue
        tally.done.append(u.key)
        if getattr(res, "notes", ()):
            tally.notes[u.key] = "; ".join(res.notes)
        tally.written += len(res.files)
        tally.nbytes += sum(f.size for f in res.files)
        write_json(root / MANIFEST, manifest, indent=1, default=str)
        if progress:
            progress.update(u.key, len(res.files), "ok")
    if progress:
        progress.close()


# -- reporting -------------------------------------------------------------------------------
def _finish(
    wf: Workflow, root: Path, manifest: dict[str, Any], tally: _Tally, skipped: list[str],
    excluded: Mapping[str, str], t0: float, scheduler: str | None,
) -> float:  # fmt: skip
    """The product catalog over every done unit, and this run's entry in the manifest;
    returns the run's seconds since ``t0``."""
    items = [e["item"] for e in manifest["units"].values() if e.get("status") == "done"]
    if items:
        from eo_pipeline.workflows.products import build_product_catalog

        build_product_catalog(root, items, wf)
    seconds = time.perf_counter() - t0
    manifest.update(
        workflow=wf.name,
        source=wf.source,
        params_hash=wf.params_hash(),
        software=software_versions(),
    )
    manifest.setdefault("runs", []).append(
        {
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "done": tally.done,
            "skipped": skipped,
            "failed": tally.failed,
            "notes": tally.notes,
            "excluded": dict(excluded),
            "seconds": round(seconds, 2),
            "scheduler": scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or "LocalCluster",
            "workflow": asdict(wf) | {"steps": [[s.name, dict(s.params)] for s in wf.steps]},
        }
    )
    write_json(root / MANIFEST, manifest, indent=1, default=str)
    return seconds


def run(
    workflow: str | Path | Workflow,
    *,
    scheduler: str | None = None,
    client: Any = None,
    dry_run: bool = False,
    verbose: bool = True,
    **overrides: Any,
) -> RunReport:
    """Run a workflow (a file, a built-in name, or a parsed :class:`Workflow`).

    ``overrides`` replace keys of top-level sections, e.g. ``inputs={"catalog": "x"}``.
    ``client`` reuses an existing distributed Client.
    """
    from eo_pipeline.catalogs import sensors

    wf = workflow if isinstance(workflow, Workflow) else load_workflow(workflow, **overrides)
    for sensor_file in wf.sensors:
        sensors.register_file(wf.resolve(sensor_file))
    planned = plan(wf)
    units = list(planned.units)
    excluded = dict(planned.excluded)
    root = wf.resolve(wf.output.catalog)
    if verbose:
        _print_plan(wf, units, excluded, root, dry_run)
    if dry_run:
        return RunReport(wf.name, root, (), tuple(u.key for u in units), excluded=excluded)
    # one run per output folder: a second one would clean the first's temporaries, redo its
    # units and overwrite its manifest entries (BusyError names the holder)
    run_id = uuid.uuid4().hex
    previous = holder(root / LOCK).get("run")  # a dead run's id: its tasks may linger
    with exclusive(root / LOCK, f"the output folder {root}", info={"run": run_id}):
        _prepare_output(root)
        manifest = _read_manifest(root)
        params = wf.params_hash()
        todo, skipped = _split_todo(units, manifest, root, params)
        t0 = time.perf_counter()
        tally = _Tally()
        ctx = (
            contextlib.nullcontext(client)
            if client is not None
            else connect(scheduler, wf.resources.workers)
        )
        with ctx as cl:
            dashboard = getattr(cl, "dashboard_link", None)
            _cancel_stale(cl, previous)
            _execute(cl, todo, wf, root, manifest, params, tally, verbose, len(skipped), run_id)
        _clean_partials(root)
        seconds = _finish(wf, root, manifest, tally, skipped, excluded, t0, scheduler)
    return RunReport(
        wf.name,
        root,
        tuple(tally.done),
        tuple(skipped),
        tally.failed,
        tally.written,
        tally.nbytes,
        seconds,
        dashboard,
        excluded,
        tally.notes,
    )


def run_cli(args: argparse.Namespace) -> int:
    """``eo-pipeline run WORKFLOW [--scheduler ADDRESS] [--dry-run] [--input CATALOG]
    [--output DIR]``; ``--input``/``--output`` replace ``inputs.catalog`` (and any
    ``stac_api``) and ``output.catalog``, resolved against the current directory."""
    import signal

    def _stop(signum: int, frame: Any) -> None:  # SIGTERM: unwind, cancelling the units
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, _stop)
    overrides: dict[str, Any] = {}
    if getattr(args, "input", None):
        overrides["inputs"] = {"catalog": str(Path(args.input).resolve()), "stac_api": None}
    if getattr(args, "output", None):
        overrides["output"] = {"catalog": str(Path(args.output).resolve())}
    report = run(args.workflow, scheduler=args.scheduler, dry_run=args.dry_run, **overrides)
    if args.dry_run:
        return 0
    print(
        f"{report.workflow}: {len(report.done)} unit(s) done, {len(report.skipped)} up to date, "
        f"{len(report.failed)} failed, {len(report.excluded)} item(s) left out; "
        f"{report.products} files, {report.bytes_written / 1e6:.1f} MB "
        f"in {report.seconds:.1f} s -> {report.output}"
    )
    for key, note in report.notes.items():
        print(f"  NOTE {key}: {note}")
    for key, cause in report.failed.items():
        print(f"  FAILED {key}: {cause}", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(WorkflowError("use `eo-pipeline run`"))

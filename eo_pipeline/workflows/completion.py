"""A unit's completion record: once a unit has finished, its result is final.

dask reruns a task whose worker died *after* the task finished but before its result reached
the runner (the result lived in the dead worker's memory), and a runner killed with its
tasks still running on an external cluster leaves units finished that no manifest lists.
Either way the next execution of the unit would compute it again and rewrite every file
(new mtimes, another worker in the manifest). :func:`process_unit
<eo_pipeline.workflows.process.process_unit>` therefore writes this record (atomically,
last, beside the unit's product item) and, before any work, returns the recorded result
when the record matches the unit's inputs and the workflow's parameters and every file it
lists is still the file that was written.

A unit writes its files into a hidden stage folder of the output (:data:`STAGE_GLOB`) and
moves them into place only after :func:`run_gone` says the run that launched it still owns
the output: a task orphaned by a dead runner (or overtaken by a newer run) discards its work
instead of finishing a product that no manifest records or racing the run that now writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eo_pipeline.atomic import write_json
from eo_pipeline.lockfile import alive, holder

__all__ = ["RECORD", "RUN_LOCK", "STAGE_GLOB", "recorded", "run_gone", "write_record"]

RECORD = ".unit-done.json"
"""File name of the record in the unit's item folder."""
RUN_LOCK = ".eo-pipeline-run.lock"
"""Held by the run writing the output folder (:mod:`eo_pipeline.lockfile`); holds its run id."""
STAGE_GLOB = ".unit-*.stage"
"""Stage folders of units in progress, in the output folder (removed by the next run)."""


def run_gone(root: Path, run: str | None) -> str | None:
    """Why the run ``run`` no longer owns the output folder ``root`` (another run's id in its
    lock file, or its runner dead on this host), else ``None``; ``None`` run: not checked."""
    if run is None:
        return None
    info = holder(root / RUN_LOCK)
    if info.get("run") != run:
        other = info.get("run")
        return f"the output is now written by another run ({other or 'none'}), not by run {run}"
    if alive(info) is False:
        return f"its runner (pid {info.get('pid')}) is dead"
    return None


def write_record(folder: Path, signature: str, params: str, result: Mapping[str, Any], root: Path
                 ) -> None:  # fmt: skip
    """Record ``result`` (a :class:`UnitResult` as a dict) as the unit's final result."""
    files = [
        {**f, "mtime_ns": (root / f["path"]).stat().st_mtime_ns} for f in result.get("files", [])
    ]
    write_json(
        folder / RECORD,
        {
            "inputs_signature": signature,
            "params_hash": params,
            "result": {**result, "files": files},
        },
        indent=1,
        default=str,
    )


def recorded(folder: Path, signature: str, params: str, root: Path) -> dict[str, Any] | None:
    """The recorded result when it matches and its files are intact, else ``None``."""
    from eo_pipeline.catalogs.checksum import file_checksum

    try:
        rec = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        if rec["inputs_signature"] != signature or rec["params_hash"] != params:
            return None
        result = dict(rec["result"])
        if not (root / result["item_path"]).is_file():
            return None
        for f in result["files"]:
            st = (root / f["path"]).stat()
            if st.st_size != f["size"]:
                return None
            if (
                st.st_mtime_ns != f.get("mtime_ns")
                and file_checksum(root / f["path"]) != f["checksum"]
            ):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    result["files"] = [{k: v for k, v in f.items() if k != "mtime_ns"} for f in result["files"]]
    return result

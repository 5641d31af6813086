"""eo-pipeline: Earth-observation scenes to calibrated, STAC-catalogued products.

The public API is small and lives here. Names are imported lazily on first use, so
``import eo_pipeline`` stays fast and a scientist who only reads metadata never pays
for dask or numba start-up.

Examples
--------
>>> import eo_pipeline
>>> "landsat8" in eo_pipeline.sensors.names()
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from eo_pipeline._version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "errors": "eo_pipeline.errors",
    "sensors": "eo_pipeline.catalogs.sensors",
    "EOPipelineError": "eo_pipeline.errors",
    "SceneMetadata": "eo_pipeline.catalogs.scene",
    "BandCalibration": "eo_pipeline.catalogs.scene",
    "read_metadata": "eo_pipeline.catalogs.readers",
    "ingest": "eo_pipeline.io.ingestion",
    "validate": "eo_pipeline.catalogs.validation",
    "simulate": "eo_pipeline.simulation.simulator",
    "load": "eo_pipeline.io.loading",
    "calibrate": "eo_pipeline.steps.calibration",
    "masks": "eo_pipeline.steps.masking",
    "sentinel2_angles": "eo_pipeline.steps.angles",
    "compute_indices": "eo_pipeline.steps.indices",
    "available_indices": "eo_pipeline.steps.indices",
    "composite": "eo_pipeline.steps.compositing",
    "pansharpen": "eo_pipeline.steps.pansharpening",
    "orthorectify": "eo_pipeline.steps.orthorectification",
    "open_sensor": "eo_pipeline.io.sensor_geometry",
    "read_rpc": "eo_pipeline.catalogs.rpc",
    "RPCModel": "eo_pipeline.catalogs.rpc",
    "write": "eo_pipeline.io.writing",
    "publish": "eo_pipeline.export.publishing",
    "PublishConfig": "eo_pipeline.export.publishing",
    "run": "eo_pipeline.workflows.runner",
    "RunReport": "eo_pipeline.workflows.runner",
    "Workflow": "eo_pipeline.workflows.spec",
    # option dataclasses users pass to the functions above
    "QAOptions": "eo_pipeline.steps.masking",
    "SCLOptions": "eo_pipeline.steps.masks_scl",
    "SpectralTests": "eo_pipeline.steps.masks_spectral",
    "ShadowSearch": "eo_pipeline.steps.masks_spectral",
    "BAPParams": "eo_pipeline.steps.compositing",
    "WriteOptions": "eo_pipeline.io.writing",
    "DEMSpec": "eo_pipeline.io.dem",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eo_pipeline' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.rsplit(".", 1)[-1] == name else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from eo_pipeline import errors as errors
    from eo_pipeline.catalogs import sensors as sensors
    from eo_pipeline.catalogs.scene import BandCalibration as BandCalibration
    from eo_pipeline.catalogs.scene import SceneMetadata as SceneMetadata
    from eo_pipeline.errors import EOPipelineError as EOPipelineError

# The ``.eo`` accessor on xarray Dataset/DataArray (eo_pipeline/accessor.py). It must be
# registered at import time (a lazy ``__getattr__`` never runs for ``ds.eo``); the module
# imports only xarray, every step behind it is imported on first use.
importlib.import_module("eo_pipeline.accessor")

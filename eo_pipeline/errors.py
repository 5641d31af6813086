"""The one exception tree of eo-pipeline.

Every error the library raises on purpose derives from :class:`EOPipelineError` and
also from the fitting built-in (``ValueError``, ``KeyError``, ``FileNotFoundError``...),
so callers can catch either. Messages say what was wrong, where (file, band, item id,
JSON path, YAML line) and how to fix it.

Examples
--------
>>> from eo_pipeline.errors import EOPipelineError, UnknownSensorError
>>> try:
...     raise UnknownSensorError("unknown sensor 'foo'; known: landsat8")
... except EOPipelineError as err:
...     print(type(err).__name__, isinstance(err, KeyError))
UnknownSensorError True
"""

from __future__ import annotations

__all__ = [
    "AtmosphereError",
    "BandError",
    "BusyError",
    "CalibrationError",
    "CatalogError",
    "ClusterError",
    "ConfigError",
    "CustomerError",
    "DEMError",
    "DependencyError",
    "EOPipelineError",
    "EOPipelineWarning",
    "FilterError",
    "FormulaError",
    "InputDataError",
    "MetadataError",
    "MetadataWarning",
    "OrthorectificationError",
    "RadiativeTransferError",
    "SensorFileError",
    "StacValidationError",
    "UnknownIndexError",
    "UnknownSensorError",
    "WorkflowError",
    "WriteError",
]


class EOPipelineError(Exception):
    """Root of every error eo-pipeline raises on purpose."""

    def __str__(self) -> str:  # KeyError quotes its message; keep messages readable.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class SensorFileError(EOPipelineError, ValueError):
    """A sensor description file is invalid (the message names the file and field)."""


class UnknownSensorError(EOPipelineError, KeyError):
    """A sensor name that no sensor file defines."""


class MetadataError(EOPipelineError, ValueError):
    """Scene metadata (MTL, MTD, DIMAP) is missing, truncated or lacks a required group."""


class InputDataError(EOPipelineError, ValueError):
    """An input raster or asset is missing, unreadable, or disagrees with its sensor."""


class BandError(EOPipelineError, KeyError):
    """A band that the sensor, dataset or item does not have."""


class CalibrationError(EOPipelineError, ValueError):
    """Calibration is impossible as asked (e.g. reflectance without ESUN)."""


class CatalogError(EOPipelineError, ValueError):
    """A STAC catalog, collection or item is empty, broken or cannot be written."""


class StacValidationError(CatalogError):
    """A STAC object breaks the official schemas (file, JSON path and rule named)."""


class FormulaError(EOPipelineError, ValueError):
    """A spectral-index formula that cannot be parsed or uses a forbidden construct."""


class UnknownIndexError(EOPipelineError, KeyError):
    """An index name that no definition provides (close names are suggested)."""


class WriteError(EOPipelineError, OSError):
    """A product could not be written (nothing partial is left behind)."""


class WorkflowError(EOPipelineError, ValueError):
    """A workflow file is invalid (the message names the file and line)."""


class ClusterError(EOPipelineError, ConnectionError):
    """A dask scheduler cannot be reached or the cluster failed."""


class DependencyError(EOPipelineError, ImportError):
    """An optional part is used without its extra installed (the message names the
    ``pip install eo-pipeline[...]`` that adds it)."""


class ConfigError(EOPipelineError, ValueError):
    """A setting read from the environment (``EO_PIPELINE_*``) is malformed."""


class CustomerError(EOPipelineError, ValueError):
    """An export customer, API key or entitlement that is unknown, revoked or malformed."""


class EOPipelineWarning(UserWarning):
    """Root of the warnings eo-pipeline emits on purpose (filter them with this class)."""


class MetadataWarning(EOPipelineWarning):
    """Product metadata was read but is irregular (a tolerated deviation from the format)."""


class DEMError(EOPipelineError, ValueError):
    """A DEM that cannot serve an orthorectification: unreadable, unknown vertical datum,
    no geoid grid, or not covering the scene (the message names the part missing)."""


class OrthorectificationError(EOPipelineError, ValueError):
    """A product that cannot be orthorectified as asked: no RPC, not sensor geometry, or an
    output CRS that cannot hold the scene."""


class FilterError(EOPipelineError, ValueError):
    """A search filter (CQL2, query, free text) that is malformed or asks for what is unsupported."""


class AtmosphereError(CalibrationError):
    """Atmospheric correction is impossible as asked (no LUT for the sensor, geometry or AOT
    outside the LUT's range, an AOT raster that does not cover the scene)."""


class RadiativeTransferError(EOPipelineError, RuntimeError):
    """The 6S radiative-transfer code is missing or failed (the message says how to install it)."""


class BusyError(EOPipelineError, BlockingIOError):
    """Another process is writing the same output folder or catalog (its pid is named)."""

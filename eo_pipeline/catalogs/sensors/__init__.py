"""Sensors as data: one YAML file per sensor in this folder, loaded into frozen dataclasses.

A new satellite is one new file. Each file states its radiometric convention:

- ``mult_add``: ``L = MULT * DN + ADD`` (Landsat MTL files);
- ``gain_bias``: ``L = DN / GAIN + BIAS`` (Airbus DIMAP V2: Pléiades, SPOT 6/7, KazEOSat-1);
- ``reflectance``: the product is already reflectance, ``rho = DN * scale + offset``
  (Sentinel-2 L1C with ``scale = 1 / QUANTIFICATION_VALUE``).

Whatever the file's convention, :class:`Band` exposes the nominal numbers in the ``mult_add``
form (``radiance_mult``, ``radiance_add``) so that kernels need one formula; per-scene
metadata overrides the nominal numbers.

Modules: :mod:`.model` (the dataclasses), :mod:`.parsing` (files to sensors and back, errors
with file:line), :mod:`.registry` (the sensor search path: built-in folder, ``EO_PIPELINE_SENSORS``
folders, ``eo_pipeline.sensors`` entry points, registered sensors; shipping definitions with
dask tasks; catalogs' own definitions).

Examples
--------
>>> from eo_pipeline.catalogs import sensors
>>> "landsat8" in sensors.names()
True
>>> s = sensors.get("landsat8")
>>> s.band("B4").common_name
'red'
>>> sensors.get("pleiades-neo-4").band_ids
('PAN', 'R', 'G', 'B', 'NIR', 'RE', 'DB')
"""

from __future__ import annotations

from eo_pipeline.catalogs.sensors.model import (
    COMMON_NAMES,
    CONVENTIONS,
    DTYPES,
    Band,
    Convention,
    Orbit,
    Sensor,
)
from eo_pipeline.catalogs.sensors.parsing import load_file, parse_text, sensor_from_dict, to_dict
from eo_pipeline.catalogs.sensors.registry import (
    ENTRY_POINT_GROUP,
    ENV,
    HOW_TO_ADD,
    PROPERTY,
    definitions,
    from_properties,
    get,
    install,
    is_path,
    names,
    register,
    register_file,
    resolve,
    shipped,
    unregister,
)

__all__ = [
    "COMMON_NAMES",
    "CONVENTIONS",
    "DTYPES",
    "ENTRY_POINT_GROUP",
    "ENV",
    "HOW_TO_ADD",
    "PROPERTY",
    "Band",
    "Convention",
    "Orbit",
    "Sensor",
    "definitions",
    "from_properties",
    "get",
    "install",
    "is_path",
    "load_file",
    "names",
    "parse_text",
    "register",
    "register_file",
    "resolve",
    "sensor_from_dict",
    "shipped",
    "to_dict",
    "unregister",
]

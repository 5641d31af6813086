"""Where sensors come from: the sensor search path, and sensors travelling with tasks and items.

Layers, each overriding the ones before it for a name they both define:

1. the built-in folder (``eo_pipeline/catalogs/sensors/*.yaml``);
2. the folders in ``EO_PIPELINE_SENSORS`` (``os.pathsep``-separated), e.g. an operator's
   ``/etc/eo-pipeline/sensors`` with the real specification of a satellite whose built-in file
   is nominal;
3. sensor packages: entry points of the group ``eo_pipeline.sensors``; each names a module or
   package whose folder holds sensor files, or a callable returning sensor-file paths
   (``[project.entry-points."eo_pipeline.sensors"] kazsat = "kazsat_sensors"``);
4. sensors registered in this process: :func:`register_file`, :func:`register`, definitions
   shipped with dask tasks (:func:`shipped`) and catalogs' own definitions (:func:`resolve`).

A dask worker is another process (perhaps on another machine): :func:`shipped` wraps a task
function so that the sensor definitions of every non-built-in sensor travel with it and are
installed before it runs. A catalog carries its sensor's definition in each item
(``eo_pipeline:sensor_definition``), so a process that never saw the file still loads and
calibrates it (:func:`resolve`).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from eo_pipeline.catalogs.sensors.model import Sensor
from eo_pipeline.catalogs.sensors.parsing import load_file, sensor_from_dict, to_dict
from eo_pipeline.errors import SensorFileError, UnknownSensorError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV",
    "HOW_TO_ADD",
    "PROPERTY",
    "ShippedTask",
    "definitions",
    "from_properties",
    "get",
    "install",
    "is_path",
    "names",
    "register",
    "register_file",
    "resolve",
    "shipped",
    "unregister",
]

ENV = "EO_PIPELINE_SENSORS"
"""Environment variable: folders of sensor files, ``os.pathsep``-separated."""
ENTRY_POINT_GROUP = "eo_pipeline.sensors"
"""Entry-point group through which installed packages provide sensor files."""
HOW_TO_ADD = (
    f"give its sensor file (--sensor FILE, a folder in {ENV}, a package with an "
    f"{ENTRY_POINT_GROUP} entry point, or sensors.register_file)"
)
"""The hint every 'no sensor file' error ends with."""
_SUFFIXES = (".yaml", ".yml", ".json")
_REGISTERED: dict[str, Sensor] = {}


def _folder(folder: Path, origin: str) -> dict[str, Sensor]:
    found: dict[str, Sensor] = {}
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.suffix.lower() in _SUFFIXES and path.is_file():
            sensor = load_file(path, origin=origin)
            if sensor.name in found:
                raise SensorFileError(
                    f"{path}: sensor name {sensor.name!r} is also defined by "
                    f"{found[sensor.name].path}; one file per sensor in a folder"
                )
            found[sensor.name] = sensor
    return found


@functools.cache
def _builtin() -> dict[str, Sensor]:
    return _folder(Path(str(resources.files("eo_pipeline.catalogs.sensors"))), "built-in")


def _env_stamp(value: str) -> tuple[tuple[str, int], ...]:
    """Files (and their mtimes) in the folders of ``EO_PIPELINE_SENSORS``: the cache key, so a
    file dropped into a folder or edited is seen by a long-running process."""
    out = []
    for part in value.split(os.pathsep):
        folder = Path(part).expanduser()
        if part.strip() and folder.is_dir():
            for f in folder.iterdir():
                if f.suffix.lower() in _SUFFIXES:
                    out.append((str(f), f.stat().st_mtime_ns))
    return tuple(sorted(out))


@functools.lru_cache(maxsize=8)
def _env_folders(value: str, stamp: tuple[tuple[str, int], ...] = ()) -> dict[str, Sensor]:
    found: dict[str, Sensor] = {}
    for part in value.split(os.pathsep):
        if not part.strip():
            continue
        folder = Path(part).expanduser()
        if not folder.is_dir():
            raise SensorFileError(
                f"{ENV}={value!r}: {folder} is not a folder; list folders of sensor files "
                f"separated by {os.pathsep!r}"
            )
        found |= _folder(folder, ENV)
    return found


def _entry_point_files(ep: metadata.EntryPoint) -> list[Path]:
    try:
        target = ep.load()
    except Exception as err:  # a broken third-party package must name itself
        raise SensorFileError(
            f"entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP}) failed to load: "
            f"{type(err).__name__}: {err}"
        ) from None
    if callable(target) and not hasattr(target, "__path__"):
        return [Path(p) for p in target()]
    if hasattr(target, "__file__") and target.__file__:
        folder = Path(target.__file__).parent
    else:
        folder = Path(str(target))
    return [p for p in sorted(folder.iterdir()) if p.suffix.lower() in _SUFFIXES]


@functools.cache
def _entry_points() -> dict[str, Sensor]:
    found: dict[str, Sensor] = {}
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        for path in _entry_point_files(ep):
            sensor = load_file(path, origin=f"entry point {ep.name}")
            found[sensor.name] = sensor
    return found


def _layers() -> list[dict[str, Sensor]]:
    value = os.environ.get(ENV, "")
    env = _env_folders(value, _env_stamp(value)) if value else {}
    return [_builtin(), env, _entry_points(), _REGISTERED]


def _known() -> dict[str, Sensor]:
    out: dict[str, Sensor] = {}
    for layer in _layers():
        out |= layer
    return out


def _same(a: Sensor, b: Sensor) -> bool:
    """Same physics: everything but where it was read from and its prose."""
    skip = ("path", "origin", "description", "source")
    da, db = to_dict(a), to_dict(b)
    return {k: v for k, v in da.items() if k not in skip} == {
        k: v for k, v in db.items() if k not in skip
    }


def is_path(value: str | os.PathLike[str]) -> bool:
    """Whether a ``--sensor`` value names a file rather than a sensor."""
    text = os.fspath(value)
    return text.lower().endswith(_SUFFIXES) or os.sep in text or "/" in text


def register(sensor: Sensor) -> Sensor:
    """Make ``sensor`` known in this process (it overrides files of the same name)."""
    _REGISTERED[sensor.name] = sensor
    return sensor


def register_file(path: str | os.PathLike[str]) -> Sensor:
    """Register a sensor file from outside the package (a new satellite is one file)."""
    return register(load_file(path, origin="registered"))


def unregister(name: str) -> None:
    """Forget a sensor registered in this process (files on the search path stay)."""
    _REGISTERED.pop(name, None)


def names() -> list[str]:
    """Names of every known sensor, sorted."""
    return sorted(_known())


def get(name: str | os.PathLike[str]) -> Sensor:
    """A sensor by name (case-insensitive; ``-``/``_`` ignored) or by the path of its file.

    Unknown names list the known ones and say how to add one.
    """
    if not isinstance(name, str) or (is_path(name) and Path(name).is_file()):
        return register_file(name)
    known = _known()
    if name in known:
        return known[name]
    norm = name.lower().replace("-", "").replace("_", "")
    for key, sensor in known.items():
        if norm in {key.replace("-", "").replace("_", ""), sensor.platform.replace("-", "")}:
            return sensor
    hint = (
        f"; no such file {name!r}"
        if is_path(name)
        else (
            f"; give a sensor file's path, put it in a folder listed in {ENV}, or install a "
            f"package providing it (entry points {ENTRY_POINT_GROUP})"
        )
    )
    raise UnknownSensorError(
        f"unknown sensor {name!r}; known sensors: {', '.join(sorted(known))}{hint}"
    )


def definitions(which: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Sensor definitions to ship: every non-built-in sensor, or those named in ``which``."""
    known = _known()
    if which is None:
        chosen = [s for s in known.values() if s.origin != "built-in"]
    else:
        chosen = [known[n] for n in which if n in known]
    return {s.name: to_dict(s) for s in chosen}


def install(defs: Mapping[str, Mapping[str, Any]]) -> None:
    """Register shipped definitions that this process lacks or knows differently."""
    known = _known()
    for name, raw in defs.items():
        sensor = sensor_from_dict(dict(raw), f"<shipped sensor {name}>", origin="shipped")
        if name not in known or not _same(known[name], sensor):
            register(sensor)


class ShippedTask:
    """A task function with the sensor definitions it needs (see :func:`shipped`)."""

    def __init__(self, fn: Callable[..., Any], defs: dict[str, dict[str, Any]]) -> None:
        self.fn, self.defs = fn, defs
        self.__name__ = getattr(fn, "__name__", "task")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        install(self.defs)
        return self.fn(*args, **kwargs)


def shipped(fn: Callable[..., Any], which: Iterable[str] | None = None) -> ShippedTask:
    """``fn`` wrapped so the caller's non-built-in sensors are installed where it runs.

    Picklable (the definitions are plain dicts), so dask sends them with each task:
    ``client.submit(sensors.shipped(process_unit), unit, ...)``.

    >>> import operator
    >>> shipped(operator.add)(1, 2)
    3
    """
    return ShippedTask(fn, definitions(which))


def resolve(name: str, definition: Mapping[str, Any] | None = None, where: str = "") -> Sensor:
    """The sensor of a catalog: its own ``definition`` (an item's
    ``eo_pipeline:sensor_definition``) or, without one, the sensor file of that name.

    With both, the item wins; when they disagree a :class:`UserWarning` says so. A definition
    unknown to this process is registered, so later steps (calibrate, indices) find it.
    """
    if not definition:
        return get(name)
    item = sensor_from_dict(dict(definition), where or f"<definition of {name}>", origin="item")
    try:
        local = get(name)
    except UnknownSensorError:
        return register(item)
    if not _same(local, item):
        warnings.warn(
            f"{where or 'the catalog'}: its definition of sensor {name!r} differs from "
            f"{local.path or local.origin} ({local.origin}); using the catalog's, which "
            "describes how its files were made",
            UserWarning,
            stacklevel=2,
        )
        return item
    return local


PROPERTY = "eo_pipeline:sensor_definition"
"""Item property (and collection field) holding the sensor's definition (:func:`to_dict`)."""


def from_properties(properties: Mapping[str, Any], where: str = "") -> Sensor:
    """The sensor of an item from its properties: ``eo_pipeline:sensor`` (else ``platform``)
    and, when present, its own definition ``eo_pipeline:sensor_definition`` (:func:`resolve`)."""
    name = properties.get("eo_pipeline:sensor") or properties.get("platform")
    if not name:
        raise UnknownSensorError(
            f"{where or 'item'}: no 'eo_pipeline:sensor' or 'platform' property; cannot tell "
            "its sensor"
        )
    definition = properties.get(PROPERTY)
    return resolve(str(name), definition if isinstance(definition, Mapping) else None, where)

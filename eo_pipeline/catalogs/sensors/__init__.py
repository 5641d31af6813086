"""Sensors as data: one YAML file per sensor in this folder, loaded into frozen dataclasses.

A new satellite is one new file. Each file states its radiometric convention:

- ``mult_add``: ``L = MULT * DN + ADD`` (Landsat MTL files);
- ``gain_bias``: ``L = DN / GAIN + BIAS`` (Airbus DIMAP V2: Pléiades, SPOT 6/7, KazEOSat-1);
- ``reflectance``: the product is already reflectance, ``rho = DN * scale + offset``
  (Sentinel-2 L1C with ``scale = 1 / QUANTIFICATION_VALUE``).

Whatever the file's convention, :class:`Band` exposes the nominal numbers in the ``mult_add``
form (``radiance_mult``, ``radiance_add``) so that kernels need one formula; per-scene
metadata overrides the nominal numbers.

Examples
--------
>>> from eo_pipeline.catalogs import sensors
>>> "landsat8" in sensors.names()
True
>>> s = sensors.get("landsat8")
>>> s.band("B4").common_name
'red'
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from eo_pipeline.errors import BandError, SensorFileError, UnknownSensorError

__all__ = ["Band", "Orbit", "Sensor", "get", "load_file", "names", "register_file"]

Convention = Literal["mult_add", "gain_bias", "reflectance"]
_CONVENTIONS = ("mult_add", "gain_bias", "reflectance")
_DTYPES = ("uint8", "uint16", "int16", "uint32", "float32")
# STAC eo common band names (eo extension v1.1 / STAC 1.1 common metadata).
COMMON_NAMES = frozenset(
    {
        "pan",
        "coastal",
        "blue",
        "green",
        "green05",
        "yellow",
        "red",
        "rededge",
        "rededge071",
        "rededge075",
        "rededge078",
        "nir",
        "nir08",
        "nir09",
        "cirrus",
        "swir16",
        "swir22",
        "lwir",
        "lwir11",
        "lwir12",
    }
)


@dataclass(frozen=True)
class Band:
    """One spectral band of a sensor."""

    id: str
    """Band identifier as the product names it (``B4``, ``B8A``, ``PAN``...)."""
    common_name: str | None
    """STAC eo common name (``red``, ``nir``...), ``None`` where none fits."""
    center_wavelength: float
    """Centre wavelength in micrometres."""
    full_width_half_max: float
    """Full width at half maximum in micrometres."""
    gsd: float
    """Ground sample distance in metres."""
    dtype: str = "uint16"
    """Native data type of the DN raster."""
    nodata: int = 0
    """DN that marks no data."""
    saturation: int = 65535
    """DN at and above which the detector is saturated."""
    esun: float | None = None
    """Exo-atmospheric solar irradiance in W m-2 um-1 at 1 AU, where known."""
    radiance_mult: float | None = None
    """Nominal ``L = radiance_mult * DN + radiance_add`` (W m-2 sr-1 um-1)."""
    radiance_add: float | None = None
    """Nominal radiance offset (W m-2 sr-1 um-1)."""
    reflectance_mult: float | None = None
    """Nominal reflectance rescaling (Landsat ``REFLECTANCE_MULT``, S2 ``1/QUANTIFICATION``)."""
    reflectance_add: float | None = None
    """Nominal reflectance offset (Landsat ``REFLECTANCE_ADD``, S2 ``RADIO_ADD_OFFSET/Q``)."""
    noise_dn: float = 1.0
    """Standard deviation of the sensor's additive (dark) noise in DN, for the simulator."""
    shot_noise: float = 0.0
    """Signal-dependent noise: std in DN is ``sqrt(noise_dn**2 + shot_noise * DN)``."""

    @property
    def bits(self) -> int:
        """Bits per sample of :attr:`dtype`."""
        return {"uint8": 8, "uint16": 16, "int16": 16, "uint32": 32, "float32": 32}[self.dtype]


@dataclass(frozen=True)
class Orbit:
    """Orbit facts of a platform (nominal where the operator has not published them)."""

    altitude_km: float | None = None
    inclination_deg: float | None = None
    sun_synchronous: bool = True
    local_time: str | None = None
    """Local time of the descending node, ``HH:MM``."""
    repeat_days: float | None = None
    swath_km: float | None = None


@dataclass(frozen=True)
class Sensor:
    """A sensor (one instrument on one platform) as described by its file."""

    name: str
    """Registry name (``landsat8``, ``sentinel2a``, ``kazeosat1``...)."""
    platform: str
    """STAC ``platform`` (``landsat-8``, ``sentinel-2a``, ``kazeosat-1``...)."""
    instrument: str
    """STAC ``instruments`` entry (``oli``, ``msi``, ``naomi``...)."""
    constellation: str | None
    bands: tuple[Band, ...]
    convention: Convention
    """Radiometric convention of the sensor's products (see module docstring)."""
    orbit: Orbit = field(default_factory=Orbit)
    nominal: bool = False
    """True when the numbers are nominal because the operator has not published a spec."""
    description: str = ""
    source: str = ""
    """Where the numbers come from (documents, papers)."""
    path: str = ""
    """The file this sensor was read from."""

    @property
    def band_ids(self) -> tuple[str, ...]:
        return tuple(b.id for b in self.bands)

    def band(self, key: str) -> Band:
        """A band by id or common name; :class:`BandError` names the bands there are."""
        for b in self.bands:
            if b.id == key:
                return b
        for b in self.bands:
            if b.common_name == key:
                return b
        raise BandError(
            f"sensor {self.name!r} has no band {key!r}; its bands are "
            + ", ".join(f"{b.id} ({b.common_name})" for b in self.bands)
        )

    def __dask_tokenize__(self) -> object:
        return ("eo_pipeline.Sensor", self.name, self.path)


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "common_name": (str, type(None)),
    "center_wavelength": (int, float),
    "full_width_half_max": (int, float),
    "gsd": (int, float),
    "dtype": (str,),
    "nodata": (int,),
    "saturation": (int,),
    "esun": (int, float, type(None)),
    "radiance_mult": (int, float, type(None)),
    "radiance_add": (int, float, type(None)),
    "reflectance_mult": (int, float, type(None)),
    "reflectance_add": (int, float, type(None)),
    "noise_dn": (int, float),
    "shot_noise": (int, float),
}
_BAND_REQUIRED = ("id", "center_wavelength", "full_width_half_max", "gsd")


def _band_from_dict(raw: Any, where: str, convention: str) -> Band:
    if not isinstance(raw, Mapping):
        raise SensorFileError(f"{where}: a band must be a mapping, got {type(raw).__name__}")
    data = dict(raw)
    for key in _BAND_REQUIRED:
        if key not in data:
            raise SensorFileError(f"{where}: missing required field {key!r}")
    # DIMAP-style files may give gain/bias; store them in the one mult/add form.
    gain, bias = data.pop("gain", None), data.pop("bias", None)
    if gain is not None:
        if convention != "gain_bias":
            raise SensorFileError(
                f"{where}.gain: 'gain'/'bias' belong to convention 'gain_bias', "
                f"this file says {convention!r}"
            )
        if not isinstance(gain, int | float) or gain <= 0:
            raise SensorFileError(f"{where}.gain: must be a positive number, got {gain!r}")
        data["radiance_mult"] = 1.0 / float(gain)
        data["radiance_add"] = float(bias or 0.0)
    unknown = set(data) - set(_FIELD_TYPES)
    if unknown:
        raise SensorFileError(
            f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELD_TYPES)}"
        )
    for key, value in data.items():
        if not isinstance(value, _FIELD_TYPES[key]) or isinstance(value, bool):
            raise SensorFileError(
                f"{where}.{key}: expected {' or '.join(t.__name__ for t in _FIELD_TYPES[key])}, "
                f"got {value!r}"
            )
    if data.get("common_name") is not None and data["common_name"] not in COMMON_NAMES:
        raise SensorFileError(
            f"{where}.common_name: {data['common_name']!r} is not a STAC eo common name "
            f"({', '.join(sorted(COMMON_NAMES))})"
        )
    if data.get("dtype", "uint16") not in _DTYPES:
        raise SensorFileError(f"{where}.dtype: {data['dtype']!r} is not one of {_DTYPES}")
    for key in ("center_wavelength", "full_width_half_max", "gsd"):
        if data[key] <= 0:
            raise SensorFileError(f"{where}.{key}: must be positive, got {data[key]!r}")
    if data["center_wavelength"] > 20:
        raise SensorFileError(
            f"{where}.center_wavelength: {data['center_wavelength']} looks like nanometres; "
            "give micrometres (e.g. 0.665)"
        )
    if data["full_width_half_max"] > 20:
        raise SensorFileError(
            f"{where}.full_width_half_max: {data['full_width_half_max']} looks like nanometres; "
            "give micrometres (e.g. 0.030)"
        )
    low, high = _DTYPE_RANGE[data.get("dtype", "uint16")]
    for key in ("nodata", "saturation"):
        if key in data and not low <= data[key] <= high:
            raise SensorFileError(
                f"{where}.{key}: {data[key]} does not fit dtype {data.get('dtype', 'uint16')} "
                f"({low}..{high})"
            )
    values: dict[str, Any] = {
        k: (float(v) if isinstance(v, int) and k in _FLOATS else v) for k, v in data.items()
    }
    return Band(**values)


_DTYPE_RANGE: dict[str, tuple[float, float]] = {
    "uint8": (0, 255),
    "uint16": (0, 65535),
    "int16": (-32768, 32767),
    "uint32": (0, 2**32 - 1),
    "float32": (-3.4e38, 3.4e38),
}


_FLOATS = {
    "center_wavelength",
    "full_width_half_max",
    "gsd",
    "esun",
    "radiance_mult",
    "radiance_add",
    "reflectance_mult",
    "reflectance_add",
    "noise_dn",
    "shot_noise",
}
_SENSOR_KEYS = {
    "name",
    "platform",
    "instrument",
    "constellation",
    "convention",
    "bands",
    "orbit",
    "nominal",
    "description",
    "source",
}


def sensor_from_dict(raw: Any, path: str = "<dict>") -> Sensor:
    """Build a :class:`Sensor` from parsed file content; errors name ``path`` and the field."""
    if not isinstance(raw, Mapping):
        raise SensorFileError(f"{path}: top level must be a mapping of sensor fields")
    unknown = set(raw) - _SENSOR_KEYS
    if unknown:
        raise SensorFileError(
            f"{path}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_SENSOR_KEYS)}"
        )
    for key in ("name", "platform", "instrument", "convention", "bands"):
        if key not in raw:
            raise SensorFileError(f"{path}: missing required field {key!r}")
    convention = raw["convention"]
    if convention not in _CONVENTIONS:
        raise SensorFileError(
            f"{path}: convention: {convention!r} is not one of {', '.join(_CONVENTIONS)}"
        )
    if not isinstance(raw["bands"], list) or not raw["bands"]:
        raise SensorFileError(f"{path}: bands: must be a non-empty list")
    bands = tuple(
        _band_from_dict(b, f"{path}: bands[{i}]", convention) for i, b in enumerate(raw["bands"])
    )
    ids = [b.id for b in bands]
    if len(set(ids)) != len(ids):
        raise SensorFileError(f"{path}: bands: duplicate band ids in {ids}")
    orbit_raw = raw.get("orbit") or {}
    if not isinstance(orbit_raw, Mapping):
        raise SensorFileError(f"{path}: orbit: must be a mapping")
    try:
        orbit = Orbit(**orbit_raw)
    except TypeError as err:
        raise SensorFileError(f"{path}: orbit: {err}") from None
    return Sensor(
        name=str(raw["name"]),
        platform=str(raw["platform"]),
        instrument=str(raw["instrument"]),
        constellation=raw.get("constellation"),
        bands=bands,
        convention=convention,
        orbit=orbit,
        nominal=bool(raw.get("nominal", False)),
        description=str(raw.get("description", "")),
        source=str(raw.get("source", "")),
        path=path,
    )


def load_file(path: str | Path) -> Sensor:
    """Read and validate one sensor file (YAML or JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise SensorFileError(f"{p}: cannot read sensor file: {err.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SensorFileError(f"{p}: not valid YAML: {err}") from None
    return sensor_from_dict(raw, str(p))


_EXTRA: dict[str, Sensor] = {}


@functools.cache
def _builtin() -> dict[str, Sensor]:
    found: dict[str, Sensor] = {}
    folder = resources.files(__name__)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            sensor = load_file(Path(str(entry)))
            if sensor.name in found:
                raise SensorFileError(f"{entry}: sensor name {sensor.name!r} is defined twice")
            found[sensor.name] = sensor
    return found


def register_file(path: str | Path) -> Sensor:
    """Register a sensor file from outside the package (a new satellite is one file)."""
    sensor = load_file(path)
    _EXTRA[sensor.name] = sensor
    return sensor


def names() -> list[str]:
    """Names of every known sensor, sorted."""
    return sorted({**_builtin(), **_EXTRA})


def get(name: str) -> Sensor:
    """A sensor by name (case-insensitive; ``-``/``_`` ignored); unknown names list the known ones."""
    known = {**_builtin(), **_EXTRA}
    if name in known:
        return known[name]
    norm = name.lower().replace("-", "").replace("_", "")
    for key, sensor in known.items():
        if norm in {key.replace("-", "").replace("_", ""), sensor.platform.replace("-", "")}:
            return sensor
    raise UnknownSensorError(f"unknown sensor {name!r}; known sensors: {', '.join(sorted(known))}")

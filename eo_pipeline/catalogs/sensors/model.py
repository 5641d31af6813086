"""The sensor model: frozen dataclasses a sensor file is read into (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from eo_pipeline.errors import BandError

__all__ = ["COMMON_NAMES", "CONVENTIONS", "DTYPES", "Band", "Convention", "Orbit", "Sensor"]

Convention = Literal["mult_add", "gain_bias", "reflectance"]
CONVENTIONS = ("mult_add", "gain_bias", "reflectance")
"""Radiometric conventions a sensor file may state."""
DTYPES = ("uint8", "uint16", "int16", "uint32", "float32")
"""Native data types a band may have."""
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
    """The file this sensor was read from (empty when it came from an item or a task)."""
    origin: str = ""
    """Where the registry found it: ``built-in``, ``EO_PIPELINE_SENSORS``, ``entry point NAME``,
    ``registered``, ``shipped`` (a dask task) or ``item`` (a catalog's own definition)."""

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
        return ("eo_pipeline.Sensor", self.name, self.path, self.bands)

"""Scene metadata: what every reader (Landsat MTL, Sentinel-2 MTD, DIMAP V2) returns.

One :class:`SceneMetadata` per scene, whatever the product format, so that ingest,
calibration and publishing never look at a vendor file again.

Radiometry is stored in one form whatever the vendor convention:

- radiance ``L = radiance_mult * DN + radiance_add`` (W m-2 sr-1 um-1); DIMAP's
  ``L = DN / GAIN + BIAS`` becomes ``radiance_mult = 1 / GAIN``, ``radiance_add = BIAS``
  and the original pair is kept in ``gain``/``bias`` for provenance;
- TOA reflectance rescaling ``rho' = reflectance_mult * DN + reflectance_add``
  (Landsat L1: then divide by ``sin(sun_elevation)``; Sentinel-2 L1C: ``1/Q`` and
  ``RADIO_ADD_OFFSET/Q`` with ``reflectance_sun_corrected = True``, no division);
- surface reflectance ``rho = sr_scale * DN + sr_offset`` for L2 products.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["BandCalibration", "SceneMetadata"]


@dataclass(frozen=True)
class BandCalibration:
    """Per-band calibration numbers of one scene (``None`` where the product has none)."""

    band: str
    """Band id as the sensor file names it (``B4``, ``B8A``, ``PAN``...)."""
    radiance_mult: float | None = None
    radiance_add: float | None = None
    reflectance_mult: float | None = None
    reflectance_add: float | None = None
    reflectance_sun_corrected: bool = False
    """True when ``reflectance_mult * DN + reflectance_add`` is already TOA reflectance
    (Sentinel-2 L1C); False when it must be divided by ``sin(sun_elevation)`` (Landsat)."""
    sr_scale: float | None = None
    """L2 surface-reflectance scale (Landsat C2: 2.75e-05)."""
    sr_offset: float | None = None
    """L2 surface-reflectance offset (Landsat C2: -0.2)."""
    esun: float | None = None
    """Solar irradiance in W m-2 um-1 (at 1 AU) where the product states it."""
    gain: float | None = None
    """DIMAP GAIN as printed (``L = DN / GAIN + BIAS``), for provenance."""
    bias: float | None = None
    """DIMAP BIAS as printed."""
    radiance_max: float | None = None
    reflectance_max: float | None = None
    quantize_max: int | None = None
    """Largest valid DN (Landsat QUANTIZE_CAL_MAX)."""
    nodata: int | None = None
    saturation: int | None = None
    """Saturated DN (DIMAP SATURATED special value)."""

    def as_attrs(self) -> dict[str, Any]:
        """Non-``None`` numbers as a flat dict (for xarray attrs and STAC custom fields)."""
        return {k: v for k, v in self.__dict__.items() if v is not None and k != "band"}


@dataclass(frozen=True)
class SceneMetadata:
    """Metadata of one scene, normalised across product formats."""

    sensor: str
    """Name of a sensor file (``landsat8``, ``sentinel2a``, ``kazeosat1``...)."""
    datetime: dt.datetime
    """Acquisition time (scene centre), timezone-aware UTC."""
    sun_elevation: float
    """Degrees above the horizon at the scene centre."""
    sun_azimuth: float
    """Degrees clockwise from north at the scene centre."""
    earth_sun_distance: float
    """Astronomical units, as the product prints it (Sentinel-2: ``1 / sqrt(U)``)."""
    footprint: dict[str, Any]
    """GeoJSON Polygon or MultiPolygon in EPSG:4326 (split at the antimeridian)."""
    bbox: tuple[float, float, float, float]
    """West, south, east, north in degrees (west > east across the antimeridian)."""
    bands: Mapping[str, BandCalibration]
    """Band id -> its calibration numbers."""
    product_id: str = ""
    """Vendor product id (Landsat LANDSAT_PRODUCT_ID, S2 PRODUCT_URI, DIMAP DATASET_NAME)."""
    processing_level: str = ""
    """``L1TP``, ``L2SP``, ``L1C``, ``SEN``/``ORT`` (DIMAP)..."""
    processing_baseline: str | None = None
    """Sentinel-2 processing baseline (``02.09``, ``04.00``...)."""
    quantification_value: float | None = None
    """Sentinel-2 QUANTIFICATION_VALUE."""
    u: float | None = None
    """Sentinel-2 Earth-Sun distance correction factor U."""
    wrs_path: int | None = None
    wrs_row: int | None = None
    mgrs_tile: str | None = None
    epsg: int | None = None
    """EPSG code of the product grid, where the metadata states it."""
    cloud_cover: float | None = None
    """Percent, as the product states it."""
    view_off_nadir: float | None = None
    view_incidence_angle: float | None = None
    view_azimuth: float | None = None
    bit_depth: int | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    """Band id (or ``QA_PIXEL``, tile keys...) -> file name relative to the metadata file."""
    source: str = ""
    """Path of the metadata file read."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Format-specific facts (DIMAP tile layout, special values...)."""

    def band(self, band_id: str) -> BandCalibration:
        from eo_pipeline.errors import BandError

        try:
            return self.bands[band_id]
        except KeyError:
            raise BandError(
                f"{self.source or self.product_id}: no calibration for band {band_id!r}; "
                f"bands present: {', '.join(self.bands)}"
            ) from None

    @property
    def sun_zenith(self) -> float:
        return 90.0 - self.sun_elevation

    def replace(self, **changes: Any) -> SceneMetadata:
        return replace(self, **changes)

"""Where and when simulated scenes are: placement over Kazakhstan, sun geometry, swath edges.

- Scenes lie inside Kazakhstan (a coarse outline, :data:`KAZAKHSTAN`) on a real UTM grid, zones
  40N-45N (EPSG:32640-32645), with the upper-left corner snapped to the coarsest band's pixel.
- Acquisitions fall on a random day of 2023-2025 at the sensor's local overpass time
  (``orbit.local_time``, local mean solar time, default 10:30) +/- 15 minutes, and are redrawn
  until the sun is at least 15 degrees above the horizon at the scene centre.
- Sun zenith per pixel comes from :func:`eo_pipeline.kernels.solar.solar_position` at each
  truth-grid pixel's latitude/longitude (bilinearly interpolated from an exact
  reprojection every 16 pixels: the UTM -> geographic map is smooth, the error is < 1e-7 degree).
- Part of the scenes have a swath edge: a slanted, slightly wavy line beyond which every band is
  nodata.

Examples
--------
>>> import numpy as np
>>> from eo_pipeline.catalogs import sensors
>>> place = place_scene(np.random.default_rng(0), sensors.get("kazeosat2"), extent_m=6656.0, snap=6.5)
>>> 32640 <= place.epsg <= 32645, place.sun_elevation >= 15.0
(True, True)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer

from eo_pipeline.catalogs.sensors import Sensor
from eo_pipeline.errors import InputDataError, SensorFileError
from eo_pipeline.kernels.solar import earth_sun_distance, solar_position

__all__ = [
    "KAZAKHSTAN",
    "Placement",
    "SceneGrid",
    "SwathEdge",
    "cos_zenith_grid",
    "place_scene",
    "scene_grid",
]

# Kazakhstan's border, coarse (about 0.1-0.5 degree detail, after the public-domain Natural Earth
# 1:110m admin-0 outline), longitude/latitude. Used only to keep scenes inside the country.
_OUTLINE = (
    (70.96, 42.27), (70.39, 42.08), (69.07, 41.38), (68.63, 40.67), (68.26, 40.66), (67.99, 41.14),
    (66.71, 41.17), (66.51, 41.99), (66.02, 41.99), (66.08, 42.95), (64.90, 43.73), (63.19, 43.65),
    (62.01, 43.50), (61.06, 44.41), (60.24, 44.78), (58.69, 45.50), (58.50, 45.59), (55.93, 45.00),
    (55.97, 41.31), (55.46, 41.26), (54.76, 42.04), (54.08, 42.32), (52.94, 42.12), (52.50, 41.78),
    (52.45, 42.03), (52.69, 42.44), (52.50, 42.79), (51.34, 43.13), (50.89, 44.03), (50.34, 44.28),
    (50.31, 44.61), (51.28, 44.51), (51.32, 45.25), (52.17, 45.41), (53.04, 45.26), (53.22, 46.23),
    (53.04, 46.85), (52.04, 46.80), (51.19, 47.05), (50.03, 46.61), (49.10, 46.40), (48.59, 46.56),
    (48.69, 47.08), (48.06, 47.74), (47.32, 47.72), (46.47, 48.39), (47.04, 49.15), (46.75, 49.36),
    (47.55, 50.45), (48.58, 49.87), (48.70, 50.61), (50.77, 51.69), (52.33, 51.72), (54.53, 51.03),
    (55.72, 50.62), (56.78, 51.04), (58.36, 51.06), (59.64, 50.55), (59.93, 50.84), (61.34, 50.80),
    (61.59, 51.27), (59.97, 51.96), (60.93, 52.45), (60.74, 52.72), (61.70, 52.98), (60.98, 53.66),
    (61.44, 54.01), (65.18, 54.35), (65.67, 54.60), (68.17, 54.97), (69.07, 55.39), (70.87, 55.17),
    (71.18, 54.13), (72.22, 54.38), (73.51, 54.04), (73.43, 53.49), (74.38, 53.55), (76.89, 54.49),
    (76.53, 54.18), (77.80, 53.40), (80.04, 50.86), (80.57, 51.39), (81.95, 50.81), (83.38, 51.07),
    (83.94, 50.89), (84.42, 50.31), (85.12, 50.12), (85.54, 49.69), (86.83, 49.83), (87.36, 49.21),
    (86.60, 48.55), (85.77, 48.46), (85.72, 47.45), (85.16, 47.00), (83.18, 47.33), (82.46, 45.54),
    (81.95, 45.32), (79.97, 44.92), (80.87, 43.18), (80.18, 42.92), (80.26, 42.35), (79.64, 42.50),
    (79.14, 42.86), (77.66, 42.96), (76.00, 42.99), (75.64, 42.88), (74.21, 43.30), (73.65, 43.09),
    (73.49, 42.50), (71.84, 42.85), (71.19, 42.70), (70.96, 42.27),
)  # fmt: skip
KAZAKHSTAN = shapely.Polygon(_OUTLINE)
"""Kazakhstan (coarse outline, EPSG:4326)."""
ZONES = (40, 41, 42, 43, 44, 45)
MIN_SUN_ELEVATION = 15.0


@dataclass(frozen=True)
class Placement:
    """Where and when one scene is."""

    epsg: int
    """UTM zone north (EPSG:326xx)."""
    left: float
    """Easting of the scene's west edge (metres)."""
    top: float
    """Northing of the scene's north edge (metres)."""
    extent_m: float
    """Width = height of the scene in metres."""
    datetime: dt.datetime
    """Acquisition time at the scene centre, UTC."""
    center_lonlat: tuple[float, float]
    """Scene centre, degrees."""
    sun_elevation: float
    """Degrees above the horizon at the centre."""
    sun_azimuth: float
    """Degrees clockwise from north at the centre."""
    earth_sun_distance: float
    """AU at the acquisition time."""


def _overpass_hours(sensor: Sensor) -> float:
    local = sensor.orbit.local_time or "10:30"
    hh, mm = local.split(":")
    return int(hh) + int(mm) / 60.0


def place_scene(
    rng: np.random.Generator, sensor: Sensor, *, extent_m: float, snap: float
) -> Placement:
    """Draw a scene of ``extent_m`` x ``extent_m`` metres inside Kazakhstan, and its time.

    The corner is snapped to a multiple of ``snap`` metres (the coarsest band's pixel), like
    the product grids of real sensors.
    """
    zones = list(ZONES)
    rng.shuffle(zones)
    for zone in zones * 2:
        epsg = 32600 + zone
        to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
        to_geo = Transformer.from_crs(epsg, 4326, always_xy=True)
        west = 6.0 * (zone - 31)
        for _ in range(200):
            lon = rng.uniform(west, west + 6.0)
            lat = rng.uniform(40.5, 55.5)
            x, y = to_utm.transform(lon, lat)
            left = float(math.floor((x - extent_m / 2) / snap) * snap)
            top = float(math.floor((y + extent_m / 2) / snap) * snap)
            xs = [left, left + extent_m, left + extent_m, left]
            ys = [top, top, top - extent_m, top - extent_m]
            lons, lats = to_geo.transform(xs, ys)
            if KAZAKHSTAN.contains(shapely.Polygon(zip(lons, lats, strict=True))):
                clon, clat = to_geo.transform(left + extent_m / 2, top - extent_m / 2)
                when, zen, az = _acquisition(rng, sensor, clon, clat)
                return Placement(
                    epsg=epsg,
                    left=left,
                    top=top,
                    extent_m=extent_m,
                    datetime=when,
                    center_lonlat=(float(clon), float(clat)),
                    sun_elevation=90.0 - zen,
                    sun_azimuth=az,
                    earth_sun_distance=float(earth_sun_distance(when)),
                )
    raise InputDataError(
        f"simulate: a {extent_m / 1000:.0f} km scene does not fit inside Kazakhstan in UTM "
        f"zones 40N-45N; use a smaller size"
    )


def on_date(place: Placement, day: dt.date) -> Placement:
    """The same place seen on ``day`` at the same UTC overpass time, with its sun geometry and
    Earth-Sun distance recomputed (raises when the sun is too low then)."""
    when = place.datetime.replace(year=day.year, month=day.month, day=day.day)
    lon, lat = place.center_lonlat
    zen, az = solar_position(when.replace(tzinfo=None), lat, lon)
    if 90.0 - float(zen) < MIN_SUN_ELEVATION:
        raise InputDataError(
            f"simulate: on {day:%Y-%m-%d} the sun is {90.0 - float(zen):.1f} deg high at "
            f"{lat:.2f}N {lon:.2f}E at the overpass time (minimum {MIN_SUN_ELEVATION:g}); "
            "choose a date nearer summer"
        )
    return dataclasses.replace(
        place,
        datetime=when,
        sun_elevation=90.0 - float(zen),
        sun_azimuth=float(az),
        earth_sun_distance=float(earth_sun_distance(when)),
    )


def _acquisition(
    rng: np.random.Generator, sensor: Sensor, lon: float, lat: float
) -> tuple[dt.datetime, float, float]:
    hours = _overpass_hours(sensor)
    for _ in range(100):
        year = int(rng.integers(2023, 2026))
        day = int(rng.integers(0, 365))
        utc_hours = hours - lon / 15.0 + rng.uniform(-0.25, 0.25)
        when = dt.datetime(year, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=day, hours=utc_hours)
        when = when.replace(microsecond=0)
        zen, az = solar_position(when.replace(tzinfo=None), lat, lon)
        if 90.0 - zen >= MIN_SUN_ELEVATION:
            return when, float(zen), float(az)
    raise InputDataError(  # pragma: no cover - 10:30 overpasses over Kazakhstan always find one
        f"simulate: no daylight acquisition found for sensor {sensor.name!r} at {lat:.2f}N"
    )


def cos_zenith_grid(place: Placement, pixel: float, rows: int, cols: int) -> np.ndarray:
    """float32 ``cos(sun zenith)`` at every pixel centre of a grid on the scene (per-pixel sun).

    Latitude/longitude come from an exact reprojection every 16 pixels, interpolated
    bilinearly in between; the zenith from :func:`~eo_pipeline.kernels.solar.solar_position`.
    """
    step = 16
    r_nodes = np.unique(np.append(np.arange(0, rows, step), rows - 1))
    c_nodes = np.unique(np.append(np.arange(0, cols, step), cols - 1))
    xs = place.left + (c_nodes + 0.5) * pixel
    ys = place.top - (r_nodes + 0.5) * pixel
    gx, gy = np.meshgrid(xs, ys)
    lon_n, lat_n = Transformer.from_crs(place.epsg, 4326, always_xy=True).transform(gx, gy)
    rr = np.arange(rows, dtype=np.float64)
    cc = np.arange(cols, dtype=np.float64)

    def weights(nodes: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hi = np.clip(np.searchsorted(nodes, at, side="right"), 1, len(nodes) - 1)
        span = np.maximum(nodes[hi] - nodes[hi - 1], 1)
        return hi, ((at - nodes[hi - 1]) / span)

    r_hi, r_w = weights(r_nodes, rr)
    c_hi, c_w = weights(c_nodes, cc)

    def interp(nodes: np.ndarray) -> np.ndarray:
        along = nodes[:, c_hi - 1] * (1.0 - c_w) + nodes[:, c_hi] * c_w  # (nr, cols)
        return along[r_hi - 1] * (1.0 - r_w)[:, None] + along[r_hi] * r_w[:, None]

    lat = interp(np.asarray(lat_n))
    lon = interp(np.asarray(lon_n))
    zen, _ = solar_position(place.datetime.replace(tzinfo=None), lat, lon)
    return np.cos(np.radians(zen)).astype(np.float32)


@dataclass(frozen=True)
class SwathEdge:
    """A slanted, wavy swath edge: pixels beyond it are nodata in every band."""

    side: int
    """+1: the edge cuts the east side; -1: the west side; 0: no edge in this scene."""
    x_top: float
    """Ground distance (m) of the edge from the west scene border at the top row."""
    x_bottom: float
    """Same at the bottom row."""
    wave: float
    """Amplitude (m) of the edge's waviness."""
    phase: float
    """Phase of the waviness."""
    extent_m: float
    """Scene size in metres."""

    @classmethod
    def draw(cls, rng: np.random.Generator, extent_m: float) -> SwathEdge:
        """Half of the scenes have an edge cutting 3-25 % of the scene on one side."""
        if rng.random() < 0.5:
            return cls(0, 0.0, 0.0, 0.0, 0.0, extent_m)
        side = 1 if rng.random() < 0.5 else -1
        a, b = rng.uniform(0.03, 0.25, size=2) * extent_m
        if side > 0:
            a, b = extent_m - a, extent_m - b
        return cls(side, float(a), float(b), float(rng.uniform(0.002, 0.01) * extent_m),
                   float(rng.uniform(0, 2 * math.pi)), extent_m)  # fmt: skip

    def mask(self, pixel: float, row0: int, rows: int, cols: int) -> np.ndarray:
        """Boolean ``(rows, cols)``: True where the pixel centre is outside the swath."""
        if self.side == 0:
            return np.zeros((rows, cols), bool)
        y = (row0 + np.arange(rows) + 0.5) * pixel
        t = y / self.extent_m
        edge = self.x_top + (self.x_bottom - self.x_top) * t
        edge = edge + self.wave * np.sin(2 * math.pi * 3.0 * t + self.phase)
        x = (np.arange(cols) + 0.5) * pixel
        if self.side > 0:
            return x[np.newaxis, :] > edge[:, np.newaxis]
        return x[np.newaxis, :] < edge[:, np.newaxis]


STRIP_ROWS = 256
"""Truth-grid rows generated at a time (memory stays bounded for large scenes)."""


@dataclass(frozen=True)
class SceneGrid:
    """The pixel grids of one sensor's scenes (see :func:`scene_grid`)."""

    gsd: float
    """Pixel size of the truth grid (the finest multispectral GSD)."""
    size: int
    """Truth-grid pixels per side (after rounding up to the coarse bands' factors)."""
    fine: int
    """Finest-grid pixels per truth pixel (4 for KazEOSat-1's PAN, 2 for Landsat's, else 1)."""
    up: dict[str, int]
    """Band id -> finest-grid pixels per band pixel."""
    strip: int
    """Truth rows per generation strip (a multiple of every coarse factor)."""

    def band_pixels(self, band_id: str) -> int:
        """Pixels per side of a band's grid."""
        return self.size * self.fine // self.up[band_id]

    def band_pixel_size(self, band_id: str) -> float:
        """Pixel size of a band's grid in metres."""
        return self.gsd * self.up[band_id] / self.fine


def _ratio(a: float, b: float) -> int | None:
    r = a / b
    return round(r) if abs(r - round(r)) < 1e-6 and round(r) >= 1 else None


def scene_grid(sensor: Sensor, size: int) -> SceneGrid:
    """Nested grids: truth grid at the finest MS gsd, coarser bands and PAN bands on it.

    >>> from eo_pipeline.catalogs import sensors
    >>> g = scene_grid(sensors.get("sentinel2a"), 100)
    >>> g.size, g.band_pixels("B01"), g.band_pixels("B05")
    (102, 17, 51)
    """
    ms = [b for b in sensor.bands if b.common_name != "pan"] or list(sensor.bands)
    gsd = min(b.gsd for b in ms)
    fine, coarse = 1, 1
    per: dict[str, tuple[int, int]] = {}
    for b in sensor.bands:
        if b.gsd >= gsd:
            k = _ratio(b.gsd, gsd)
            if k is None:
                raise SensorFileError(
                    f"{sensor.path}: band {b.id!r} gsd {b.gsd} m is not a whole multiple of the "
                    f"finest multispectral gsd {gsd} m; the simulator needs nested grids"
                )
            per[b.id] = (k, 1)
            coarse = math.lcm(coarse, k)
        else:
            k = _ratio(gsd, b.gsd)
            if k is None:
                raise SensorFileError(
                    f"{sensor.path}: band {b.id!r} gsd {b.gsd} m does not divide the "
                    f"multispectral gsd {gsd} m a whole number of times"
                )
            per[b.id] = (1, k)
            fine = max(fine, k)
    for b_id, (_k, f) in per.items():
        if fine % f:
            raise SensorFileError(
                f"{sensor.path}: band {b_id!r}: PAN factors {f} and {fine} do not nest"
            )
    up = {b_id: k * fine // f for b_id, (k, f) in per.items()}
    size = -(-size // coarse) * coarse
    strip = max(coarse, STRIP_ROWS // coarse * coarse)
    return SceneGrid(gsd=gsd, size=size, fine=fine, up=up, strip=strip)

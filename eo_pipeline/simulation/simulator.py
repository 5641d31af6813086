"""Simulated L1 scenes over Kazakhstan, with ground truth, for any sensor file.

:func:`simulate` makes ``scenes`` scenes of a sensor and adds them to a static STAC catalog:
one COG per band (uint16 DN, the sensor's own calibration run backwards), plus the truth the
rest of the pipeline is tested against: ``truth_reflectance`` (float32 TOA reflectance, one
band per sensor band) and ``truth_class`` (uint8 land cover, cloud and shadow codes, see
:mod:`eo_pipeline.simulation.landcover`). Deterministic for a seed.

How a scene is made
-------------------
1. **Where and when** (:mod:`eo_pipeline.simulation.geometry`): inside Kazakhstan, UTM zone 40N-45N,
   daylight at the sensor's overpass time on a random day of 2023-2025.
2. **Grids.** The *truth grid* has ``size`` x ``size`` pixels at the sensor's finest
   multispectral GSD (KazEOSat-1: 4 m; Landsat: 30 m; Sentinel-2: 10 m); coarser bands
   (Sentinel-2's 20 m and 60 m) cover the same bounds with ``size / 2``, ``size / 6`` pixels
   (``size`` is rounded up to a multiple of those factors), PAN bands with ``size * 4``
   (KazEOSat-1) or ``size * 2`` (Landsat) pixels: every band is co-registered, same bounds.
3. **Surface** (:mod:`eo_pipeline.simulation.landcover`, :mod:`eo_pipeline.simulation.spectra`): a seeded
   land-cover field with fields, steppe, lakes, snow, towns and roads, evaluated on the
   finest grid of the scene (the PAN grid when there is one); each class mixes two library
   spectra sampled at the band centres, modulated lightly (+-6 % brightness, per-field
   vigour). **No atmosphere**: the TOA reflectance truth is this surface reflectance, darkened
   in cloud shadows and seen through partly transparent clouds (shadows displaced from their
   clouds by ``cloud height * tan(zenith)`` away from the sun).
4. **Pixels integrate the ground**: a band's pixel is the mean of the finest-grid reflectance
   over its footprint. ``truth_reflectance`` is on the truth grid, so a coarser band's own
   truth is the block mean of its truth band over each of its pixels, and a PAN band's truth
   at truth-grid resolution is the block mean of its fine pixels.
5. **PAN** reflectance is the spectrally-weighted mean of the MS bands inside its pass band
   (weights ``ESUN * FWHM``, :func:`eo_pipeline.simulation.spectra.pan_weights`); its truth band is the
   same weighted mean of the MS truth.
6. **DN** (:mod:`eo_pipeline.simulation.radiometry`): per-pixel sun zenith from the solar kernels, the
   sensor's calibration inverted, Gaussian noise ``sqrt(noise_dn^2 + shot_noise * DN)``,
   rounding, saturation at the band's saturation DN, nodata beyond the swath edge.
   Calibrating back needs the same per-pixel sun (``calibrate(..., per_pixel_sun=True)``);
   the scene-centre angle is off by up to ~0.3 % of the reflectance across a 7 km scene.
7. **Files**: COGs (:mod:`eo_pipeline.io.cog`), or with ``format="dimap"`` Airbus DIMAP V2
   products (:mod:`eo_pipeline.simulation.dimap`) for KazEOSat-1; generated in row strips, so
   memory stays about 1 GB for a 4096 px KazEOSat-2 scene.

The scene's calibration numbers go into every band asset's ``eo_pipeline:calibration``; the
sun angles at the centre and the Earth-Sun distance into the item (via
:class:`~eo_pipeline.catalogs.scene.SceneMetadata`).

Examples
--------
>>> import tempfile, eo_pipeline
>>> items = eo_pipeline.simulate("kazeosat2", tempfile.mkdtemp(), size=64, seed=1)
>>> sorted(items[0].assets)
['B1', 'B2', 'B3', 'B4', 'B5', 'truth_class', 'truth_reflectance']
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from affine import Affine

from eo_pipeline.catalogs import sensors
from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.catalogs.geometry import footprint_from_bounds
from eo_pipeline.catalogs.scene import SceneMetadata
from eo_pipeline.catalogs.sensors import Band, Sensor
from eo_pipeline.catalogs.stac import AssetSpec, build_item, collection_id_for
from eo_pipeline.catalogs.store import add_items
from eo_pipeline.errors import CatalogError, InputDataError
from eo_pipeline.io.cog import WrittenFile, write_cog
from eo_pipeline.simulation import landcover as lc
from eo_pipeline.simulation.atmosphere import BandAtmosphere, SimAtmosphere, band_atmospheres
from eo_pipeline.simulation.dimap import write_simulated_dimap
from eo_pipeline.simulation.geometry import (
    Placement,
    SceneGrid,
    SwathEdge,
    cos_zenith_grid,
    on_date,
    place_scene,
    scene_grid,
)
from eo_pipeline.simulation.radiometry import (
    InverseCalibration,
    block_mean,
    inverse_calibration,
    surface_reflectance,
    to_dn,
)
from eo_pipeline.simulation.spectra import MATERIALS, band_matrix, pan_weights

__all__ = ["MIN_SIZE", "simulate"]

MIN_SIZE = 32
"""Smallest scene (truth-grid pixels per side)."""
DIMAP_TILE = 2048
"""Default DIMAP tile size in pixels (``format="dimap"``)."""


def _rng(seed: int, sensor: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(sensor.encode()), *keys]))


def _level(sensor: Sensor) -> str:
    if sensor.convention == "reflectance":
        return "L1C"
    if any(b.reflectance_mult is not None for b in sensor.bands):
        return "L1TP"
    return "L1"


def _vapour_transmission(wavelength: float) -> float:
    """Two-way water-vapour transmission of the surface signal (nominal mid-latitude summer).

    1.36-1.39 um (Landsat B9, Sentinel-2 B10): ~0.02, so the ground is dark and only high
    clouds are bright, which is what cirrus bands are for (Gao et al. 1993); 0.93-0.96 um
    (Sentinel-2 B09): ~0.6. Elsewhere 1 (the simulator has no other atmosphere).
    """
    if 1.34 <= wavelength <= 1.41:
        return 0.02
    if 0.93 <= wavelength <= 0.96:
        return 0.6
    return 1.0


class _Tables:
    """Per-band lookup tables: class code -> primary/secondary reflectance, and the cloud's."""

    def __init__(self, sensor: Sensor) -> None:
        mat = band_matrix([b.center_wavelength for b in sensor.bands])
        idx = {m: i for i, m in enumerate(MATERIALS)}
        n = max(lc.CLASS_MATERIALS) + 1
        self.primary = np.zeros((len(sensor.bands), n), np.float32)
        self.secondary = np.zeros((len(sensor.bands), n), np.float32)
        # the one piece of atmosphere simulated: water vapour hides the ground in the
        # absorption bands (cirrus 1.38 um, 0.94 um), high clouds stay visible above it
        vapour = np.array(
            [_vapour_transmission(b.center_wavelength) for b in sensor.bands], np.float32
        )
        for code, (p, s) in lc.CLASS_MATERIALS.items():
            self.primary[:, code] = mat[idx[p]] * vapour
            self.secondary[:, code] = mat[idx[s]] * vapour
        self.cloud = mat[idx["cloud"]]
        self.pan: dict[str, dict[int, float]] = {}
        for b in sensor.bands:
            if b.common_name == "pan":
                w = pan_weights(sensor, b)
                ids = sensor.band_ids
                self.pan[b.id] = {ids.index(k): v for k, v in w.items()}


def _classes(
    cls: np.ndarray, alpha: np.ndarray, shadow: np.ndarray, strength: float, outside: np.ndarray
) -> np.ndarray:
    out = cls.copy()
    out[shadow * strength >= 0.25] = lc.SHADOW
    out[alpha >= 0.05] = lc.THIN_CLOUD
    out[alpha >= 0.5] = lc.CLOUD
    out[outside] = lc.NODATA
    return out


def _resample_cos(cosz: np.ndarray, fine: int, up: int) -> np.ndarray:
    """cos(zenith) from the truth grid to a band grid (block mean when coarser, repeat when finer)."""
    if up == fine:
        return cosz
    if up > fine:
        return block_mean(cosz, up // fine)
    k = fine // up
    return np.repeat(np.repeat(cosz, k, axis=0), k, axis=1)


@dataclass(frozen=True)
class _Scene:
    """Everything drawn for one scene before its pixels are made."""

    sensor: Sensor
    """The sensor simulated."""
    grid: SceneGrid
    """Its pixel grids."""
    place: Placement
    """Where and when."""
    land: lc.LandscapeParams
    """The landscape."""
    cloud: lc.CloudParams
    """The clouds."""
    swath: SwathEdge
    """The swath edge (maybe none)."""
    tables: _Tables
    """Reflectance lookup tables per band."""
    invs: tuple[InverseCalibration, ...]
    """Inverse calibration per band."""
    cosz: np.ndarray
    """float32 cos(sun zenith) on the truth grid."""
    atmos: tuple[BandAtmosphere | None, ...] | None = None
    """Per band, 6S at the scene geometry (``simulate(atmosphere=...)``), else no atmosphere."""

    def cloud_value(self, i: int) -> float:
        """The cloud reflectance in band ``i`` (library-shaped, scaled by the scene's thickness)."""
        return min(1.0, float(self.tables.cloud[i]) * self.cloud.brightness)


def _draw_scene(
    sensor: Sensor,
    grid: SceneGrid,
    seed: int,
    index: int,
    revisit_days: int | None = None,
    date: dt.date | None = None,
) -> _Scene:
    extent = grid.size * grid.gsd
    snap = max(b.gsd for b in sensor.bands)
    # a revisit series shares scene 0's place and landscape; time, clouds, swath and noise differ
    base = 0 if revisit_days else index
    place = place_scene(_rng(seed, sensor.name, base, 1), sensor, extent_m=extent, snap=snap)
    if revisit_days:
        first = date or place.datetime.date().replace(day=2)
        day = first + dt.timedelta(days=index * revisit_days)
        if date is None and day.month != first.month:
            raise InputDataError(
                f"simulate: a revisit series of {index + 1}+ scenes every {revisit_days} days does "
                f"not fit in {first:%B %Y}; use fewer scenes, a shorter revisit_days, or a date"
            )
        place = on_date(place, day)
    elif date is not None:
        place = on_date(place, date)
    land = lc.LandscapeParams.draw(
        _rng(seed, sensor.name, base, 2),
        month=place.datetime.month,
        extent_m=extent,
        pixel_m=grid.gsd / grid.fine,
    )
    invs = tuple(
        inverse_calibration(sensor, b, earth_sun_distance=place.earth_sun_distance)
        for b in sensor.bands
    )
    return _Scene(
        sensor=sensor,
        grid=grid,
        place=place,
        land=land,
        cloud=lc.CloudParams.draw(_rng(seed, sensor.name, index, 3), extent_m=extent),
        swath=SwathEdge.draw(_rng(seed, sensor.name, index, 4), extent),
        tables=_Tables(sensor),
        invs=invs,
        cosz=cos_zenith_grid(place, grid.gsd, grid.size, grid.size),
    )


def _make_scene(
    sensor: Sensor,
    grid: SceneGrid,
    seed: int,
    index: int,
    noise: bool,
    workdir: Path,
    dimap_tile: int | None = None,
    revisit_days: int | None = None,
    date: dt.date | None = None,
    atm: SimAtmosphere | None = None,
) -> pystac.Item:
    scene = _draw_scene(sensor, grid, seed, index, revisit_days, date)
    if atm is not None:
        scene = replace(
            scene, atmos=band_atmospheres(sensor, 90.0 - scene.place.sun_elevation, atm)
        )
    place = scene.place
    item_id = f"{sensor.name}_sim_{place.datetime:%Y%m%dT%H%M%S}_s{seed}_{index:03d}"
    existing = workdir.parent / collection_id_for(sensor.name, _level(sensor)) / item_id
    if existing.exists():
        raise CatalogError(
            f"simulate: item {item_id!r} is already in {existing.parent}; simulate with another "
            "seed or into another catalog folder"
        )
    n = grid.size
    truth = np.empty((len(sensor.bands), n, n), np.float32)
    classes = np.empty((n, n), np.uint8)
    dns = {b.id: np.empty((grid.band_pixels(b.id),) * 2, np.dtype(b.dtype)) for b in sensor.bands}
    rngs = [_rng(seed, sensor.name, index, 100 + i) for i in range(len(sensor.bands))]
    for t0 in range(0, n, grid.strip):
        _strip(scene, t0, min(n, t0 + grid.strip), truth, classes, dns, rngs if noise else None)

    transform = Affine(grid.gsd, 0.0, place.left, 0.0, -grid.gsd, place.top)
    files: dict[str, tuple[WrittenFile | None, AssetSpec]] = {}
    valid = classes != lc.NODATA
    cloudy = np.isin(classes[valid], (lc.CLOUD, lc.THIN_CLOUD))
    cover = 100.0 * float(cloudy.mean()) if valid.any() else 0.0
    if dimap_tile is not None:
        dimap = write_simulated_dimap(
            workdir,
            dataset=item_id,
            sensor=sensor,
            grid=grid,
            place=place,
            calibration={inv.calibration.band: inv.calibration for inv in scene.invs},
            dns=dns,
            cloud_cover=cover,
            tile=dimap_tile,
        )
        files.update({key: (None, spec) for key, spec in dimap.items()})
    else:
        for b in sensor.bands:
            px = grid.band_pixel_size(b.id)
            written = write_cog(
                workdir / f"{item_id}_{b.id}.tif",
                dns.pop(b.id),
                crs=place.epsg,
                transform=Affine(px, 0.0, place.left, 0.0, -px, place.top),
                nodata=b.nodata,
                descriptions=[b.id],
            )
            files[b.id] = (written, AssetSpec(b.id, written.path, bands=(b.id,)))
    dns.clear()
    written = write_cog(
        workdir / f"{item_id}_truth_reflectance.tif",
        truth,
        crs=place.epsg,
        transform=transform,
        nodata=float("nan"),
        descriptions=list(sensor.band_ids),
    )
    del truth
    files["truth_reflectance"] = (
        written,
        AssetSpec(
            "truth_reflectance",
            written.path,
            roles=("truth",),
            bands=sensor.band_ids,
            unit="1",
            title="TOA reflectance truth (no atmosphere), one band per sensor band",
        ),
    )
    written = write_cog(
        workdir / f"{item_id}_truth_class.tif",
        classes,
        crs=place.epsg,
        transform=transform,
        nodata=lc.NODATA,
        descriptions=["class"],
    )
    files["truth_class"] = (
        written,
        AssetSpec(
            "truth_class",
            written.path,
            roles=("truth",),
            title="Land cover, cloud and shadow classes",
            extra_fields={"eo_pipeline:classes": {str(k): v for k, v in lc.CLASSES.items()}},
        ),
    )
    names = {k: Path(spec.path).name for k, (_, spec) in files.items()}
    meta = _metadata(scene, item_id, cover, names)
    specs = [
        replace(
            spec,
            extra_fields={
                **spec.extra_fields,
                "file:checksum": w.multihash if w is not None else file_checksum(spec.path),
            },
        )
        for w, spec in files.values()
    ]
    props: dict[str, Any] = {
        "eo_pipeline:simulated": True,
        "eo_pipeline:seed": seed,
        "eo_pipeline:noise": noise,
        "eo_pipeline:scene_index": index,
        "eo_pipeline:format": "dimap" if dimap_tile is not None else "cog",
    }
    if atm is not None:
        props["eo_pipeline:atmosphere"] = atm.as_dict()
    return build_item(meta, specs, item_id=item_id, properties=props, checksum=False)


def _fields(
    scene: _Scene, y0: float, pixel: float, rows: int, cols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Land class, mix, brightness, cloud opacity and shadow on one grid."""
    cls, mix, bright = lc.landcover(scene.land, x0=0.0, y0=y0, pixel=pixel, rows=rows, cols=cols)
    alpha, shadow = lc.clouds(
        scene.cloud,
        sun_zenith=90.0 - scene.place.sun_elevation,
        sun_azimuth=scene.place.sun_azimuth,
        x0=0.0,
        y0=y0,
        pixel=pixel,
        rows=rows,
        cols=cols,
    )
    return cls, mix, bright, alpha, shadow


def _strip(
    scene: _Scene,
    t0: int,
    t1: int,
    truth: np.ndarray,
    classes: np.ndarray,
    dns: dict[str, np.ndarray],
    rngs: Sequence[np.random.Generator] | None,
) -> None:
    """Generate truth rows ``t0:t1`` and every band's matching rows (in place)."""
    sensor, grid, cloud, swath = scene.sensor, scene.grid, scene.cloud, scene.swath
    f = grid.fine
    rows, cols = (t1 - t0) * f, grid.size * f
    y0 = -t0 * grid.gsd
    cls, mix, bright, alpha, shadow = _fields(scene, y0, grid.gsd / f, rows, cols)
    fine_rho: dict[int, np.ndarray] = {}
    pan_ids = [i for i, b in enumerate(sensor.bands) if scene.tables.pan.get(b.id)]
    for i in range(len(sensor.bands)):
        if i not in pan_ids:  # PAN with no MS band in its pass band samples its own centre
            fine_rho[i] = surface_reflectance(
                cls,
                mix,
                bright,
                alpha,
                shadow,
                primary=scene.tables.primary[i],
                secondary=scene.tables.secondary[i],
                cloud=scene.cloud_value(i),
                shadow_strength=cloud.shadow_strength,
            )
    for i in pan_ids:
        acc = np.zeros((rows, cols), np.float32)
        for j, w in scene.tables.pan[sensor.bands[i].id].items():
            acc += np.float32(w) * fine_rho[j]
        fine_rho[i] = acc
    outside_t = swath.mask(grid.gsd, t0, t1 - t0, grid.size)
    for i, b in enumerate(sensor.bands):
        up = grid.up[b.id]
        r0, r1 = t0 * f // up, t1 * f // up
        rho_b = block_mean(fine_rho[i], up)
        outside = swath.mask(grid.band_pixel_size(b.id), r0, r1 - r0, rho_b.shape[1])
        normal = None
        if rngs is not None:
            normal = rngs[i].standard_normal(rho_b.shape, dtype=np.float32)
        cos_b = _resample_cos(scene.cosz[t0:t1], f, up)
        band_atm = scene.atmos[i] if scene.atmos is not None else None
        toa_b = rho_b if band_atm is None else band_atm.toa(rho_b)
        dns[b.id][r0:r1] = to_dn(toa_b, cos_b, scene.invs[i], b, outside=outside, normal=normal)
        rho_t = rho_b if up == f else block_mean(fine_rho[i], f)  # band on the truth grid
        truth[i, t0:t1] = np.where(outside_t, np.float32(np.nan), rho_t)
    if f > 1:  # classes at the truth pixels' centres
        cls, _, _, alpha, shadow = _fields(scene, y0, grid.gsd, t1 - t0, grid.size)
    classes[t0:t1] = _classes(cls, alpha, shadow, cloud.shadow_strength, outside_t)


def _metadata(scene: _Scene, item_id: str, cover: float, files: dict[str, str]) -> SceneMetadata:
    sensor, grid, place = scene.sensor, scene.grid, scene.place
    invs = scene.invs
    edge = scene.swath.side != 0
    extent = grid.size * grid.gsd
    bounds = (place.left, place.top - extent, place.left + extent, place.top)
    fp = footprint_from_bounds(bounds, place.epsg)
    d = place.earth_sun_distance
    s2 = sensor.convention == "reflectance"
    first: Band = sensor.bands[0]
    q = 1.0 / first.reflectance_mult if s2 and first.reflectance_mult else None
    baseline = None
    if s2:
        baseline = "05.10" if (first.reflectance_add or 0.0) != 0.0 else "02.09"
    return SceneMetadata(
        sensor=sensor.name,
        datetime=place.datetime,
        sun_elevation=place.sun_elevation,
        sun_azimuth=place.sun_azimuth,
        earth_sun_distance=d,
        footprint=fp.geometry,
        bbox=fp.bbox,
        bands={inv.calibration.band: inv.calibration for inv in invs},
        product_id=item_id,
        processing_level=_level(sensor),
        processing_baseline=baseline,
        quantification_value=q,
        u=1.0 / (d * d) if s2 else None,
        epsg=place.epsg,
        cloud_cover=cover,
        view_off_nadir=0.0,
        bit_depth=int(math.log2(max(b.saturation for b in sensor.bands) + 1)),
        files=files,
        source="eo_pipeline.simulation.simulator",
        extra={"simulated": True, "swath_edge": edge},
    )


def _primary(
    sens: Sensor, catalog_dir: str | os.PathLike[str], scenes: int, size: int, seed: int,
    format: str, off_nadir: float, day: dt.date | None,
) -> list[pystac.Item]:  # fmt: skip
    """``level="primary"``: Primary deliveries (:mod:`eo_pipeline.simulation.primary`)."""
    from eo_pipeline.simulation.primary import simulate_primary

    ids = {b.id for b in sens.bands if b.common_name == "pan"}
    if format != "dimap" or ids != {"P"} or len(sens.bands) < 2:
        raise InputDataError(
            f"simulate: level 'primary' writes KazEOSat-1 DIMAP Primary deliveries (a PAN band "
            f"P and multispectral bands); use sensor='kazeosat1' or a sensor of that layout, "
            f"format='dimap' (got {sens.name!r}, {format!r})"
        )
    if not 0.0 <= abs(off_nadir) <= 45.0:
        raise InputDataError(f"simulate: off_nadir {off_nadir!r} must be within +-45 degrees")
    return [
        simulate_primary(
            catalog_dir, size=4 * size, off_nadir=off_nadir, seed=seed + k, date=day, sensor=sens
        )[0]
        for k in range(scenes)
    ]


def simulate(
    sensor: str,
    catalog_dir: str | os.PathLike[str],
    scenes: int = 1,
    size: int = 1024,
    seed: int = 0,
    noise: bool = True,
    format: str = "cog",
    *,
    dimap_tile: int = DIMAP_TILE,
    revisit: bool = False,
    revisit_days: int = 3,
    date: dt.date | str | None = None,
    level: str = "ortho",
    off_nadir: float = 20.0,
    atmosphere: Any = None,
) -> list[pystac.Item]:
    """Simulate L1 scenes of ``sensor`` over Kazakhstan into the static catalog ``catalog_dir``.

    Parameters
    ----------
    sensor
        A sensor name (:func:`eo_pipeline.sensors.names`), e.g. ``"kazeosat2"``.
    catalog_dir
        Folder of a self-contained static catalog (created when missing; scenes are added to
        collection ``{sensor}-{level}``, e.g. ``kazeosat2-l1``, ``sentinel2a-l1c``).
    scenes
        Number of scenes (>= 1).
    size
        Pixels per side of the finest multispectral grid (>= 32; rounded up to a multiple of
        the coarser bands' factors, e.g. 6 for Sentinel-2's 60 m bands). PAN bands get
        ``size * 4`` (KazEOSat-1) or ``size * 2`` (Landsat) pixels.
    seed
        Everything (place, time, landscape, clouds, noise) follows from it.
    noise
        Add sensor noise (``False``: DN are the rounded noiseless values).
    revisit, revisit_days
        ``True``: a time series over one place (scene 0's footprint, grid and landscape),
        one scene every ``revisit_days`` days from the 2nd of scene 0's month, each with its
        own sun geometry, clouds, swath edge and noise (for composites).
    level, off_nadir
        ``"ortho"`` (default): map-projected products. ``"primary"`` (``format="dimap"``,
        KazEOSat-1): sensor-geometry (Primary) deliveries seen by an off-nadir pushbroom
        (``off_nadir`` degrees across track) over synthetic Tien Shan foothills, with the RPC
        fitted to that camera by least squares (``eo_pipeline:rpc_fit_residual_px``), the DEM
        (asset ``DEM``) and the truth orthoimage (asset ``truth_ortho``); see
        :mod:`eo_pipeline.simulation.primary`.
    atmosphere
        ``None`` (no atmosphere: TOA truth = surface), or the
        :class:`~eo_pipeline.simulation.atmosphere.SimAtmosphere` (or a mapping of its
        fields): 6S at the scene geometry turns surface into TOA reflectance, and
        ``truth_reflectance`` is the surface reflectance.
    date
        Acquisition date (``YYYY-MM-DD`` or a date): every scene is taken that day (a day of
        the constellation), or a revisit series starts that day. Default: drawn from the seed.
    format
        ``"cog"``: one COG per band. ``"dimap"`` (``gain_bias`` sensors, i.e. KazEOSat-1):
        Airbus DIMAP V2 products, ``P`` and ``MS``, each a ``DIM_*.XML`` beside
        ``dimap_tile``-pixel GeoTIFF tiles (see :mod:`eo_pipeline.simulation.dimap`); the item's
        band assets are single-band VRT mosaics of the tiles, the documents are assets with
        role ``metadata`` (``DIM_P``, ``DIM_MS``), the tiles assets with role ``tile``.
    dimap_tile
        Tile size of DIMAP products in pixels (a multiple of 256).

    Returns
    -------
    list[pystac.Item]
        The items as written to the catalog (relative asset hrefs, self links set).

    Raises
    ------
    UnknownSensorError
        ``sensor`` is not a known sensor (the message lists them).
    InputDataError
        ``scenes < 1``, ``size < 32``, an unknown ``format``, ``"dimap"`` for a sensor whose
        products are not DIMAP (convention other than ``gain_bias``), a bad ``dimap_tile``.

    Examples
    --------
    >>> import tempfile
    >>> items = simulate("sentinel2a", tempfile.mkdtemp(), size=60, seed=3, noise=False)
    >>> items[0].collection_id, items[0].assets["B01"].extra_fields["proj:shape"]
    ('sentinel2a-l1c', [10, 10])
    """
    sens = sensors.get(sensor)
    if isinstance(scenes, bool) or not isinstance(scenes, int) or scenes < 1:
        raise InputDataError(f"simulate: scenes must be an integer >= 1, got {scenes!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE:
        raise InputDataError(
            f"simulate: size must be an integer >= {MIN_SIZE} pixels, got {size!r}"
        )
    if revisit and (
        isinstance(revisit_days, bool) or not isinstance(revisit_days, int) or revisit_days < 1
    ):
        raise InputDataError(
            f"simulate: revisit_days must be an integer >= 1, got {revisit_days!r}"
        )
    try:
        day = dt.date.fromisoformat(date) if isinstance(date, str) else date
    except ValueError:
        raise InputDataError(f"simulate: date {date!r} is not YYYY-MM-DD") from None
    if format not in ("cog", "dimap"):
        raise InputDataError(f"simulate: format {format!r} is not supported; use 'cog' or 'dimap'")
    if format == "dimap":
        if sens.convention != "gain_bias":
            raise InputDataError(
                f"simulate: format 'dimap' writes Airbus DIMAP V2 (L = DN / GAIN + BIAS) products; "
                f"sensor {sens.name!r} uses convention {sens.convention!r}: use format='cog' "
                "or a gain_bias sensor such as kazeosat1"
            )
        if (
            isinstance(dimap_tile, bool)
            or not isinstance(dimap_tile, int)
            or dimap_tile <= 0
            or dimap_tile % 256
        ):
            raise InputDataError(
                f"simulate: dimap_tile must be a positive multiple of 256 pixels, got {dimap_tile!r}"
            )
    if level not in ("ortho", "primary"):
        raise InputDataError(f"simulate: level {level!r}; use 'ortho' or 'primary'")
    if level == "primary":
        return _primary(sens, catalog_dir, scenes, size, seed, format, off_nadir, day)
    grid = scene_grid(sens, size)
    root = Path(catalog_dir)
    root.mkdir(parents=True, exist_ok=True)
    workdir = root / f".simulate-{uuid.uuid4().hex[:12]}"
    workdir.mkdir()
    try:
        tile = dimap_tile if format == "dimap" else None
        items = [
            _make_scene(
                sens,
                grid,
                seed,
                k,
                noise,
                workdir,
                tile,
                revisit_days if revisit else None,
                day,
                SimAtmosphere.from_value(atmosphere),
            )
            for k in range(scenes)
        ]
        return add_items(root, items, asset_mode="move")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

"""Simulated Primary (sensor-geometry) KazEOSat-1 products: pushbroom over real relief.

The physical model (:class:`Pushbroom`) is a line scanner flying north at ``altitude`` over a
local map frame (the scene's UTM zone), rolled ``off_nadir`` degrees across track: image
line ``i`` is the ground row ``N = top - (i + 0.5) gsd``; sample ``j`` looks at the
across-track angle ``psi_j = off_nadir + (j - (cols - 1) / 2) ifov`` from the satellite at
``E_s``, so the ground point at height ``h`` is at ``E = E_s + (altitude - h) tan(psi_j)``.
Every pixel is rendered where its ray meets the DEM (a fixed point iteration on the DEM's
bilinear heights), from a landscape defined everywhere on the ground (:func:`landscape`), so
the truth orthoimage is that landscape sampled on any map grid.

The DEM (:func:`foothills_dem`) is synthetic Tien Shan foothills south of Almaty: a slope
rising ~1 km over the scene, ridges and valleys of a few hundred metres, metre-scale
roughness; heights above the ellipsoid. The RPC is fitted to the physical model by least
squares on a 3-D grid of image points and heights (:func:`eo_pipeline.catalogs.rpc.fit_rpc`)
and checked on independent points (``fit residual`` in the item).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eo_pipeline.atomic import atomic_write
from eo_pipeline.catalogs.rpc import RPCModel, fit_rpc

__all__ = ["Pushbroom", "SimulatedPrimary", "foothills_dem", "landscape", "simulate_primary"]

_EPSG = 32643  # UTM 43N: Almaty
_CENTER_E, _CENTER_N = 630_000.0, 4_765_000.0  # ~76.6 E, 43.0 N: Tien Shan foothills


@dataclass(frozen=True)
class Pushbroom:
    """An off-nadir pushbroom camera over a local map frame (metres, heights above ellipsoid)."""

    rows: int
    cols: int
    gsd: float
    """Ground pixel (metres) along track and across track at the scene centre on h = 0."""
    off_nadir: float
    """Across-track roll (degrees, positive: looking east)."""
    top: float
    """Northing of the first line's upper edge."""
    center_e: float
    """Easting seen by the centre sample at h = 0."""
    altitude: float = 750_000.0

    @property
    def _theta(self) -> float:
        return math.radians(self.off_nadir)

    @property
    def ifov(self) -> float:
        """Angular pixel (radians)."""
        return self.gsd * math.cos(self._theta) ** 2 / self.altitude

    @property
    def sat_e(self) -> float:
        """Easting of the satellite ground track."""
        return self.center_e - self.altitude * math.tan(self._theta)

    def project(self, e: Any, n: Any, h: Any) -> tuple[np.ndarray, np.ndarray]:
        """(line, sample) of ground points (0-based pixel centres)."""
        e, n, h = (np.asarray(v, np.float64) for v in (e, n, h))
        line = (self.top - n) / self.gsd - 0.5
        psi = np.arctan((e - self.sat_e) / (self.altitude - h))
        samp = (psi - self._theta) / self.ifov + (self.cols - 1) / 2.0
        return line, samp

    def ground(self, line: Any, samp: Any, h: Any) -> tuple[np.ndarray, np.ndarray]:
        """(E, N) seen at image points at height ``h``."""
        line, samp, h = (np.asarray(v, np.float64) for v in (line, samp, h))
        psi = self._theta + (samp - (self.cols - 1) / 2.0) * self.ifov
        return self.sat_e + (self.altitude - h) * np.tan(psi), self.top - (line + 0.5) * self.gsd

    def on_dem(
        self, line: Any, samp: Any, dem: Any, iterations: int = 12
    ) -> tuple[np.ndarray, ...]:
        """(E, N, h) where the rays of image points meet the DEM (``dem(e, n) -> h``)."""
        h = np.zeros(np.broadcast(line, samp).shape)
        for _ in range(iterations):
            e, n = self.ground(line, samp, h)
            h = dem(e, n)
        e, n = self.ground(line, samp, h)
        return e, n, h


@dataclass(frozen=True)
class DEMGrid:
    """A DEM raster on the map frame (bilinear heights anywhere inside)."""

    heights: np.ndarray
    left: float
    top: float
    res: float

    def __call__(self, e: Any, n: Any) -> np.ndarray:
        fc = (np.asarray(e) - self.left) / self.res - 0.5
        fr = (self.top - np.asarray(n)) / self.res - 0.5
        rows, cols = self.heights.shape
        c0 = np.clip(np.floor(fc).astype(np.int64), 0, cols - 2)
        r0 = np.clip(np.floor(fr).astype(np.int64), 0, rows - 2)
        wc, wr = np.clip(fc - c0, 0, 1), np.clip(fr - r0, 0, 1)
        z = self.heights
        top = z[r0, c0] * (1 - wc) + z[r0, c0 + 1] * wc
        bottom = z[r0 + 1, c0] * (1 - wc) + z[r0 + 1, c0 + 1] * wc
        return np.asarray(top * (1 - wr) + bottom * wr)

    def coarsened(self, res: float) -> DEMGrid:
        """The same terrain as a coarser DEM (block means of ``res`` metres cells)."""
        k = max(1, round(res / self.res))
        rows, cols = (s // k * k for s in self.heights.shape)
        z = self.heights[:rows, :cols].reshape(rows // k, k, cols // k, k).mean(axis=(1, 3))
        return DEMGrid(z, self.left, self.top, self.res * k)


def foothills_dem(left: float, top: float, size_m: float, res: float, seed: int = 0) -> DEMGrid:
    """Synthetic Tien Shan foothills: heights (m above the ellipsoid) on a ``res`` grid."""
    rng = np.random.default_rng(seed)
    n = math.ceil(size_m / res)
    y, x = np.mgrid[0:n, 0:n] * res
    z = 900.0 + 0.25 * y  # rising southwards towards the range, 250 m per km
    for _ in range(6):  # ridges and valleys: 1-4 km wavelengths, slopes up to ~25 degrees
        k = rng.uniform(2 * math.pi / 4000, 2 * math.pi / 1000)
        a = rng.uniform(0, math.pi)
        z += rng.uniform(20, 70) * np.sin(
            k * (x * math.cos(a) + y * math.sin(a)) + rng.uniform(0, 6.3)
        )
    for _ in range(12):  # roughness: 40-150 m wavelengths, 0.5-2 m
        k = rng.uniform(2 * math.pi / 150, 2 * math.pi / 40)
        a = rng.uniform(0, math.pi)
        z += rng.uniform(0.5, 2.0) * np.sin(
            k * (x * math.cos(a) + y * math.sin(a)) + rng.uniform(0, 6.3)
        )
    return DEMGrid(z.astype(np.float64), left, top, res)


def _lattice(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) at integer lattice points (a hash)."""
    h = (
        (ix.astype(np.int64) * 73_856_093)
        ^ (iy.astype(np.int64) * 19_349_663)
        ^ (seed * 83_492_791)
    )
    h = (h ^ (h >> 13)) * 1_274_126_177
    h = h ^ (h >> 16)
    return (h & 0xFFFF).astype(np.float64) / 65536.0


def _value_noise(e: np.ndarray, n: np.ndarray, spacing: float, seed: int) -> np.ndarray:
    """Smooth aperiodic noise (0..1) with features of ``spacing`` metres."""
    fx, fy = e / spacing, n / spacing
    x0, y0 = np.floor(fx), np.floor(fy)
    tx, ty = fx - x0, fy - y0
    tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
    v00, v10 = _lattice(x0, y0, seed), _lattice(x0 + 1, y0, seed)
    v01, v11 = _lattice(x0, y0 + 1, seed), _lattice(x0 + 1, y0 + 1, seed)
    return (v00 * (1 - tx) + v10 * tx) * (1 - ty) + (v01 * (1 - tx) + v11 * tx) * ty


def landscape(e: Any, n: Any, seed: int = 0) -> np.ndarray:
    """Ground reflectance-like texture (0..1) defined everywhere and aperiodic: noise of
    3-60 m features (fields, shrubs, rocks) over a slow 300 m variation."""
    e, n = np.broadcast_arrays(np.asarray(e, np.float64), np.asarray(n, np.float64))
    v = 0.15 + 0.2 * _value_noise(e, n, 300.0, seed)
    for k, (spacing, weight) in enumerate(((60.0, 0.2), (17.0, 0.25), (7.0, 0.2), (3.0, 0.05))):
        v = v + weight * _value_noise(e, n, spacing, seed + 7 * (k + 1))
    return np.clip(v, 0.02, 0.98)


@dataclass(frozen=True)
class SimulatedPrimary:
    """What :func:`simulate_primary` made (beside the STAC item)."""

    camera: Pushbroom
    dem: DEMGrid
    rpc: RPCModel
    fit_rms: float
    """RPC vs the physical model on independent points (pixels, RMS)."""
    fit_max: float
    """... and at worst (pixels)."""
    epsg: int = _EPSG


def fit_camera(
    camera: Pushbroom, heights: tuple[float, float], epsg: int = _EPSG
) -> tuple[RPCModel, float, float]:
    """The RPC of ``camera`` (least squares on a 21 x 21 x 7 grid) and its check residuals."""
    from pyproj import Transformer

    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)
    lo, hi = heights[0] - 250.0, heights[1] + 250.0  # the RPC's range: relief and a margin

    def points(line: np.ndarray, samp: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, ...]:
        e, n = camera.ground(line, samp, h)
        lon, lat = to_ll.transform(e, n)
        return np.asarray(lon), np.asarray(lat)

    g = np.meshgrid(
        np.linspace(-0.5, camera.rows - 0.5, 21),
        np.linspace(-0.5, camera.cols - 0.5, 21),
        np.linspace(lo, hi, 7),
        indexing="ij",
    )
    line, samp, h = (v.ravel() for v in g)
    lon, lat = points(line, samp, h)
    rpc = fit_rpc(lon, lat, h, line, samp, source="fitted to the simulated pushbroom")
    rng = np.random.default_rng(7)
    cl, cs = rng.uniform(0, camera.rows - 1, 2000), rng.uniform(0, camera.cols - 1, 2000)
    ch = rng.uniform(lo, hi, 2000)
    clon, clat = points(cl, cs, ch)
    pr, pc = rpc.project(clon, clat, ch)
    err = np.hypot(pr - cl, pc - cs)
    return rpc, float(np.sqrt(np.mean(err**2))), float(err.max())


def render(camera: Pushbroom, dem: DEMGrid, seed: int, factor: float = 1.0) -> np.ndarray:
    """The landscape seen by every pixel of ``camera`` (float, 0..1), row strip by strip."""
    out = np.empty((camera.rows, camera.cols), np.float32)
    samp = np.arange(camera.cols, dtype=np.float64)
    step = max(1, 2_000_000 // camera.cols)
    for r0 in range(0, camera.rows, step):
        line = np.arange(r0, min(camera.rows, r0 + step), dtype=np.float64)[:, None]
        e, n, _ = camera.on_dem(line, samp[None, :], dem)
        out[r0 : r0 + len(line)] = landscape(e, n, seed) * factor
    return out


def _write_dem_and_truth(
    folder: Path, dataset: str, dem: DEMGrid, gsd: float, extent: float, margin: float,
    top: float, seed: int,
) -> tuple[Path, Path]:  # fmt: skip
    """The DEM (ellipsoidal, tagged) and the truth orthoimage GeoTIFFs of a simulation."""
    import rasterio
    from rasterio.transform import from_origin

    dem_path = folder / f"{dataset}_DEM.tif"
    with rasterio.open(
        dem_path, "w", driver="GTiff", width=dem.heights.shape[1], height=dem.heights.shape[0],
        count=1, dtype="float32", crs=f"EPSG:{_EPSG}",
        transform=from_origin(dem.left, dem.top, dem.res, dem.res), compress="deflate",
    ) as dst:  # fmt: skip
        dst.write(dem.heights.astype(np.float32), 1)
        dst.update_tags(VERTICAL_DATUM="ellipsoid")
    truth_path = folder / f"{dataset}_truth_ortho.tif"
    x0, y1 = (
        math.floor((_CENTER_E - extent / 2 - margin / 2) / gsd) * gsd,
        math.ceil((top + margin / 4) / gsd) * gsd,
    )
    n = int((extent + margin) / gsd)
    yy, xx = np.mgrid[0:n, 0:n]
    truth = landscape(x0 + (xx + 0.5) * gsd, y1 - (yy + 0.5) * gsd, seed)
    with rasterio.open(
        truth_path, "w", driver="GTiff", width=n, height=n, count=1, dtype="float32",
        crs=f"EPSG:{_EPSG}", transform=from_origin(x0, y1, gsd, gsd), compress="deflate",
    ) as dst:  # fmt: skip
        dst.write(truth.astype(np.float32), 1)
    return dem_path, truth_path


def simulate_primary(
    catalog_dir: str | os.PathLike[str],
    *,
    size: int = 1024,
    gsd: float = 1.0,
    off_nadir: float = 20.0,
    seed: int = 0,
    tile: int = 1024,
    date: dt.date | None = None,
    sensor: Any = "kazeosat1",
) -> tuple[Any, SimulatedPrimary]:
    """A KazEOSat-1 Primary delivery (PAN ``size`` px, MS ``size / 4``) as a STAC item.

    ``sensor`` (a name or :class:`~eo_pipeline.catalogs.sensors.Sensor`) may be any sensor of
    that layout (a PAN band ``P`` and multispectral bands), e.g. an operator's new file.

    Writes the DIMAP V2 products (``KZ1_SENSOR`` profile, tiles in pixel space, RPC_*.XML
    fitted to the pushbroom), the DEM (asset ``DEM``, float32 GeoTIFF, ellipsoidal heights,
    tag ``VERTICAL_DATUM=ellipsoid``) and the truth orthoimage of the PAN band (asset
    ``truth_ortho``: the landscape on the UTM grid at ``gsd``), and ingests them.
    Returns the stored item and the simulation facts (camera, DEM, RPC, fit residuals).
    """
    import tempfile

    from eo_pipeline.catalogs import sensors
    from eo_pipeline.catalogs.scene import BandCalibration
    from eo_pipeline.catalogs.stac import AssetSpec, build_item
    from eo_pipeline.catalogs.store import add_items
    from eo_pipeline.io.ingest_dimap import dimap_scene, lineage
    from eo_pipeline.simulation.dimap import DimapGroup, DimapScene, write_dimap

    size = int(math.ceil(size / 4) * 4)
    sens = sensors.get(sensor) if isinstance(sensor, str) else sensor
    extent = size * gsd
    top = _CENTER_N + extent / 2
    cam = Pushbroom(size, size, gsd, off_nadir, top, _CENTER_E)
    ms_cam = Pushbroom(size // 4, size // 4, gsd * 4, off_nadir, top, _CENTER_E)
    # the DEM must reach the ground seen by the edge pixels at the highest terrain
    margin = (1500.0 + 0.25 * extent) * abs(math.tan(math.radians(off_nadir))) + 300.0
    dem = foothills_dem(
        _CENTER_E - extent / 2 - margin, top + margin, extent + 2 * margin, max(2.0, gsd * 2), seed
    )
    grid = np.meshgrid(np.linspace(0, size - 1, 33), np.linspace(0, size - 1, 33))
    seen = cam.on_dem(grid[0], grid[1], dem)[2]  # the heights the scene really shows
    heights = (float(seen.min()), float(seen.max()))
    rpc, rms, worst = fit_camera(cam, heights)
    ms_rpc, _, _ = fit_camera(ms_cam, heights)
    cal = {}
    for b in sens.bands:
        gain = 1.0 / (b.radiance_mult or 0.1)
        cal[b.id] = BandCalibration(
            band=b.id,
            esun=b.esun,
            gain=gain,
            bias=b.radiance_add or 0.0,
            radiance_mult=1.0 / gain,
            radiance_add=b.radiance_add or 0.0,
            nodata=0,
            saturation=4095,
        )
    pan = render(cam, dem, seed)
    ms = render(ms_cam, dem, seed)
    dn_pan = np.clip(np.round(200 + pan * 3000), 1, 4095).astype(np.uint16)
    ms_bands = tuple(b for b in sens.bands if b.common_name != "pan")
    ms_dn = tuple(
        np.clip(np.round(150 + ms * (2000 + 400 * k)), 1, 4095).astype(np.uint16)
        for k in range(len(ms_bands))
    )
    when = dt.datetime.combine(date or dt.date(2024, 7, 15), dt.time(5, 30), tzinfo=dt.UTC)
    ring = rpc.footprint(size, size, float(dem.heights.mean()), n=1)
    root = Path(catalog_dir)
    root.mkdir(parents=True, exist_ok=True)
    dataset = f"KZ1_SIM_PRIMARY_{seed}_{int(off_nadir)}"
    with tempfile.TemporaryDirectory(prefix="eo-pipeline-primary-", dir=root) as tmp:
        folder = Path(tmp)
        scene = DimapScene(
            sensor=sens, dataset=dataset, tile=tile, epsg=_EPSG, left=0.0, top=0.0, when=when,
            sun_elevation=62.0, sun_azimuth=140.0, cloud_cover=0.0, corners=ring,
            calibration=cal, geometry="sensor",
        )  # fmt: skip
        groups = [
            DimapGroup("P", (sens.band("P"),), (dn_pan,), gsd),
            DimapGroup("MS", ms_bands, ms_dn, gsd * 4),
        ]
        product = write_dimap(folder, scene, groups)
        for name, model in (("P", rpc), ("MS", ms_rpc)):
            doc = product.documents[name]
            atomic_write(doc.parent / f"RPC_{doc.name[4:]}", model.to_dimap_xml())
        dem_path, truth_path = _write_dem_and_truth(
            folder, dataset, dem, gsd, extent, margin, top, seed
        )
        docs = [product.documents["P"], product.documents["MS"]]
        meta, specs = dimap_scene(docs, folder)
        specs += [
            AssetSpec("DEM", dem_path, roles=("elevation",), title="DEM of the simulation (heights above the WGS84 ellipsoid)"),
            AssetSpec("truth_ortho", truth_path, roles=("truth",), title="truth orthoimage of the PAN landscape (0..1)"),
        ]  # fmt: skip
        props = {
            "processing:lineage": lineage(docs)
            + "; simulated pushbroom, RPC fitted by least squares",
            "eo_pipeline:format": "dimap",
            "eo_pipeline:geometry": "sensor",
            "eo_pipeline:simulated": True,
            "view:off_nadir": off_nadir,
            "eo_pipeline:rpc_fit_residual_px": {"rms": round(rms, 5), "max": round(worst, 5)},
        }
        item = build_item(meta, specs, properties=props)
        (stored,) = add_items(root, [item], asset_mode="move", overwrite=True)
    return stored, SimulatedPrimary(cam, dem, rpc, rms, worst)


def _shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Sub-pixel (dy, dx) with ``b(x) ~ a(x - d)``: phase correlation + parabolic peak."""
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    fa, fb = np.fft.fft2((a - a.mean()) * win), np.fft.fft2((b - b.mean()) * win)
    cross = fb * np.conj(fa)
    r = np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-12)).real
    py, px = np.unravel_index(int(np.argmax(r)), r.shape)
    out = []
    for axis, p in ((0, py), (1, px)):
        n = r.shape[axis]
        idx = [py, px]
        vals = []
        for d in (-1, 0, 1):
            idx[axis] = (p + d) % n
            vals.append(r[idx[0], idx[1]])
        den = vals[0] - 2 * vals[1] + vals[2]
        frac = 0.5 * (vals[0] - vals[2]) / den if den != 0 else 0.0
        q = p + frac
        out.append(q - n if q > n / 2 else q)
    return out[0], out[1]


def ce90(
    ortho: Any, seed: int = 0, *, dn: tuple[float, float] = (200.0, 3000.0), tile: int = 64
) -> dict[str, float]:
    """Geolocation error of a simulated PAN orthoimage against the landscape truth.

    The truth is the landscape sampled on the orthoimage's own grid; each ``tile`` x
    ``tile`` block fully inside the image gives one displacement (phase correlation); CE90
    is the 90th percentile of the displacement lengths, in output pixels.
    """
    values = np.asarray(ortho.values, np.float64)
    x = np.asarray(ortho.x.values)
    y = np.asarray(ortho.y.values)
    res = float(abs(x[1] - x[0]))
    ee, nn = np.meshgrid(x, y)
    truth = landscape(ee, nn, seed)
    valid = values > 0
    image = (values - dn[0]) / dn[1]
    errors = []
    for r in range(0, values.shape[0] - tile + 1, tile):
        for c in range(0, values.shape[1] - tile + 1, tile):
            if not valid[r : r + tile, c : c + tile].all():
                continue
            win = (slice(r, r + tile), slice(c, c + tile))
            dy, dx = _shift(truth[win], image[win])
            d = _refine(
                image[win],
                ee[win],
                nn[win],
                np.array([round(dx) * res, -round(dy) * res]),
                seed,
                res,
            )
            errors.append(float(np.hypot(*d)) / res)
    if not errors:
        return {"ce90": math.nan, "rms": math.nan, "tiles": 0}
    err = np.asarray(errors)
    return {
        "ce90": float(np.percentile(err, 90)),
        "rms": float(np.sqrt(np.mean(err**2))),
        "tiles": len(err),
    }


def _refine(
    image: np.ndarray, e: np.ndarray, n: np.ndarray, d: np.ndarray, seed: int, res: float
) -> np.ndarray:
    """Gauss-Newton on the ground displacement ``d`` (metres) with ``image ~ truth(x - d)``;
    the truth is analytic, so no interpolation biases the estimate."""
    h = 0.05 * res
    for _ in range(6):
        t0 = landscape(e - d[0], n - d[1], seed)
        ge = (landscape(e - d[0] - h, n - d[1], seed) - landscape(e - d[0] + h, n - d[1], seed)) / (
            2 * h
        )
        gn = (landscape(e - d[0], n - d[1] - h, seed) - landscape(e - d[0], n - d[1] + h, seed)) / (
            2 * h
        )
        jac = np.column_stack([ge.ravel(), gn.ravel(), np.ones(ge.size)])  # + a radiometric offset
        step, *_ = np.linalg.lstsq(jac, (image - t0).ravel(), rcond=None)
        d = d + step[:2]
        if np.hypot(*step[:2]) < 1e-3 * res:
            break
    return d

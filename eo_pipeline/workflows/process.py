"""What a worker does for one unit: load, run the steps, write products and their STAC item.

Runs inside a dask.distributed task. The unit's own dask graph (chunks of its scenes) is
computed with a local threaded scheduler inside the task, with numba's threads capped, so the
cluster spreads *units* over workers and each worker streams its unit chunk by chunk.

Everything is written into a hidden stage folder of the output and moved into place whole
when complete, and only while the run that launched the unit still owns the output
(:mod:`.completion`); the completion record is written last, so a unit either has its item
(and every file it lists) or nothing, and an orphaned task never finishes a product.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eo_pipeline.atomic import swap_folder, write_json
from eo_pipeline.errors import InputDataError, WorkflowError
from eo_pipeline.workflows.completion import recorded, run_gone, write_record
from eo_pipeline.workflows.plan import Unit
from eo_pipeline.workflows.products import ProductFile, product_item, product_name
from eo_pipeline.workflows.registry import Product, UnitState, run_steps
from eo_pipeline.workflows.spec import Workflow

__all__ = ["ProductFile", "UnitResult", "process_unit"]


@dataclass(frozen=True)
class UnitResult:
    """What :func:`process_unit` returns to the runner."""

    key: str
    item_path: str
    """Product item JSON, relative to the output catalog folder."""
    files: tuple[ProductFile, ...]
    timings: dict[str, float]
    worker: str
    notes: tuple[str, ...] = ()
    """What the run summary and the manifest should say of the unit (all pixels nodata...)."""


@contextlib.contextmanager
def _threads_cap(threads: int, scheduler: str) -> Iterator[None]:
    """Local dask scheduler and numba threads for one unit, restored afterwards; the output
    pool's free memory is given back when the unit ends."""
    import dask

    previous = os.environ.get("EO_PIPELINE_NUMBA_THREADS")
    os.environ["EO_PIPELINE_NUMBA_THREADS"] = str(threads)
    try:
        with dask.config.set(scheduler=scheduler, num_workers=threads):
            yield
    finally:
        if previous is None:
            os.environ.pop("EO_PIPELINE_NUMBA_THREADS", None)
        else:
            os.environ["EO_PIPELINE_NUMBA_THREADS"] = previous
        from eo_pipeline.kernels.buffers import POOL

        POOL.clear()  # a worker gives back the unit's recycled output memory between units


def _load_items(unit: Unit) -> list[Any]:
    from eo_pipeline.catalogs.store import read_item

    return [read_item(h) for h in unit.item_hrefs]


ENCODING_ATTR = "eo_pipeline:encoding"
"""Product variable attr: ``int16`` packs float data with scale 1e-4 when writing; absent
keeps the variable's dtype."""
RANGE_ATTR = "eo_pipeline:valid_range"
"""Product variable attr: ``(minimum, maximum, how)``, stated in the asset's raster:bands."""


def _write_options(obj: Any, wf: Workflow) -> Any:
    from eo_pipeline.io.writing import WriteOptions

    var = next(iter(obj.data_vars.values()))
    dtype = var.attrs.get(ENCODING_ATTR)
    if np.dtype(var.dtype).kind != "f":
        dtype = None
    return WriteOptions(dtype=dtype, compress=wf.output.compress)


def _write_products(
    products: list[Product], folder: Path, wf: Workflow, root: Path
) -> list[ProductFile]:
    """Write ``(obj, stem, key, roles)`` products as single-band COGs in one dask computation.

    One computation for all of a unit's products: the scene's chunks are read and
    calibrated once, not once per product (indices share the calibrated reflectance).
    """
    from eo_pipeline.io.writing import write_many

    outs = write_many(
        [(obj, folder / f"{stem}.tif", _write_options(obj, wf)) for obj, stem, _, _ in products]
    )
    return [
        _product_file(out, obj, key, roles, root)
        for out, (obj, _, key, roles) in zip(outs, products, strict=True)
    ]


def _product_file(out: Any, obj: Any, key: str, roles: tuple[str, ...], root: Path) -> ProductFile:
    nodata = None if out.nodata is None or np.isnan(out.nodata) else out.nodata
    attrs = next(iter(obj.data_vars.values())).attrs
    rng = attrs.get(RANGE_ATTR)
    return ProductFile(
        key=key,
        path=str(out.path.relative_to(root)),
        size=out.size,
        checksum=out.checksum,
        media_type="image/tiff; application=geotiff; profile=cloud-optimized",
        roles=roles,
        raster={
            "dtype": out.dtype,
            "nodata": "nan" if out.nodata is not None and np.isnan(out.nodata) else nodata,
            "scale": out.scale,
            "offset": out.offset,
            "unit": attrs.get("units"),
            "statistics": list(out.statistics),
            "valid_range": None if rng is None else [float(rng[0]), float(rng[1])],
            "valid_range_how": "" if rng is None else str(rng[2]),
            "bands": list(out.bands),
            "shape": list(out.shape[1:]),
            "transform": list(out.transform),
            "crs": out.crs,
        },
    )


def _image_file(path: Path, key: str, roles: tuple[str, ...], root: Path) -> ProductFile:
    from eo_pipeline.catalogs.checksum import file_checksum

    return ProductFile(
        key=key,
        path=str(path.relative_to(root)),
        size=path.stat().st_size,
        checksum=file_checksum(path),
        media_type="image/png",
        roles=roles,
    )


def _rgb_bands(names: list[str], common: dict[str, str]) -> list[str]:
    by_common = {c: n for n, c in common.items()}
    want = ["red", "green", "blue"]
    if all(w in by_common for w in want):
        return [by_common[w] for w in want]
    return names[:3] if len(names) >= 3 else names[:1]


def _start(unit: Unit, wf: Workflow) -> UnitState:
    """Load the unit's items on the multispectral grid (PAN has its own, finer grid: the
    step that needs it loads it apart)."""
    import xarray as xr

    from eo_pipeline.catalogs import sensors
    from eo_pipeline.errors import WorkflowError

    items = _load_items(unit)
    chunks = {"x": wf.resources.chunk_size, "y": wf.resources.chunk_size}
    sensor = sensors.from_properties(items[0].properties, f"item {items[0].id}")
    state = UnitState(
        unit, wf, items, sensor, chunks, set(), [], [], dn=xr.Dataset(), data=xr.Dataset()
    )
    sensor_geometry = [i.id for i in items if i.properties.get("eo_pipeline:geometry") == "sensor"]
    if sensor_geometry:  # Primary products: the orthorectify step loads them once on a map grid
        if wf.step("orthorectify") is None:
            raise WorkflowError(
                f"unit {unit.key}: item(s) {', '.join(sensor_geometry)} are in sensor geometry "
                "(Primary); add the step `- orthorectify: {dem: <DEM file>}` to the workflow"
            )
        return state
    load_state(state, items)
    return state


def load_state(state: UnitState, items: list[Any]) -> None:
    """(Re)load ``items`` into ``state`` on the multispectral grid (DN; PAN loaded apart)."""
    from eo_pipeline.io.loading import load

    state.items = items
    state.present = set(items[0].assets)
    bands = state.sensor.bands
    state.pan_ids = [b.id for b in bands if b.common_name == "pan" and b.id in state.present]
    state.ms_ids = [b.id for b in bands if b.common_name != "pan" and b.id in state.present]
    extra = [k for k in ("QA_PIXEL",) if k in state.present]
    state.dn = state.data = load(items, bands=state.ms_ids + extra, chunks=state.chunks)


def _unit_products(state: UnitState) -> list[Product]:
    """One single-band product per reflectance band (asset key = band id), then the steps'
    products (indices), then the mask (unless a composite used it up)."""
    from eo_pipeline.workflows.step_kinds import is_reflectance, reflectance_range

    refl = state.single_scene()
    wf = state.wf
    products: list[Product] = []
    for band in state.band_vars:
        var = refl[band].copy()
        if wf.output.reflectance == "int16":
            var.attrs[ENCODING_ATTR] = "int16"
        if is_reflectance(wf):
            lo, hi = reflectance_range(wf)
            var.attrs[RANGE_ATTR] = (lo, hi, "physical range of reflectance")
        products.append(
            (var.to_dataset(name=band), state.product_name(band), band, ("data", "reflectance"))
        )
    products.extend(state.products)
    if "aot550" in state.data.data_vars and state.band_vars:  # an atmospheric correction ran
        products.append(_aot_product(state, refl))
    if state.mask is not None:
        m = state.mask.isel(time=0, drop=True) if "time" in state.mask.dims else state.mask
        products.append(
            (m.to_dataset(name="mask"), state.product_name("mask"), "mask", ("cloud", "mask"))
        )
    return products


def _aot_product(state: UnitState, refl: Any) -> Product:
    """The AOT at 550 nm the correction used, per pixel (float32, nodata where the first
    reflectance band is: outside the scene and where the mask excludes the pixel)."""
    aot = state.data["aot550"]
    if "time" in aot.dims:
        aot = aot.isel(time=0, drop=True)
    aot = aot.where(refl[state.band_vars[0]].notnull())
    lo, hi = state.data.attrs.get("eo_pipeline:aot_range", (0.0, float("inf")))
    aot.attrs = {"units": "1", RANGE_ATTR: (float(lo), float(hi), "range of the 6S lookup table")}
    return (aot.to_dataset(name="aot550"), state.product_name("aot550"), "aot550", ("data", "aot"))


def _quicklooks(
    state: UnitState, files: list[ProductFile], folder: Path, root: Path, item_id: str
) -> None:
    """PNG quicklook and thumbnail of the reflectance bands (red, green, blue files), a map
    per index titled with the product name (appended to files)."""
    from eo_pipeline.io.quicklook import index_map, quicklook, thumbnail

    wf, unit = state.wf, state.unit
    band_vars = state.band_vars
    common = {v: str(state.data[v].attrs.get("common_name", "")) for v in band_vars}
    by_key = {f.key: f for f in files}
    rgb = [root / by_key[b].path for b in _rgb_bands(band_vars, common)]
    ql = quicklook(rgb, folder / f"{product_name(wf, unit, 'quicklook')}.png")
    files.append(_image_file(ql, "quicklook", ("overview", "visual"), root))
    th = thumbnail(rgb, folder / f"{product_name(wf, unit, 'thumbnail')}.png")
    files.append(_image_file(th, "thumbnail", ("thumbnail",), root))
    for name in state.index_names:
        src = by_key[name]
        lo, hi = src.raster.get("valid_range") or (-1.0, 1.0)
        im = index_map(
            root / src.path,
            folder / f"{product_name(wf, unit, name + '_map')}.png",
            band=1,
            title=f"{name} - {item_id}",
            label=name,
            vmin=max(float(lo), -1.0),
            vmax=min(float(hi), 1.0),
        )
        files.append(_image_file(im, f"{name}_map", ("overview",), root))


def process_unit(
    unit: Unit,
    wf: Workflow,
    root: str,
    threads: int = 1,
    scheduler: str = "threads",
    run: str | None = None,
) -> UnitResult:
    """Process one unit and write its products under ``root`` (the output catalog folder).

    The workflow's steps run through the step registry (:mod:`.registry`, built-in kinds
    in :mod:`.step_kinds`) in their kinds' order. ``threads`` caps dask's local worker
    threads and numba's threads; ``scheduler`` is the local dask scheduler the unit's chunk
    graph runs on (``"threads"``; ``"sync"`` runs every task in the calling thread: the
    end-to-end benchmark's no-scheduler reference). ``run``: the id of the run that
    launched the unit (in the output's lock file); the products are moved into place only
    while that run still owns the output, else discarded (:func:`.completion.run_gone`).
    """
    t0 = time.perf_counter()
    out_root = Path(root)
    item_id = product_name(wf, unit, wf.name).replace("/", "_")
    folder = out_root / "items" / item_id
    params = wf.params_hash()
    done = recorded(folder, unit.inputs_signature, params, out_root)
    if done is not None:  # finished before (a dead worker, a killed runner): final
        return _from_record(done)
    stage = out_root / f".unit-{uuid.uuid4().hex[:12]}.stage"  # completion.STAGE_GLOB
    try:
        (stage / "items" / item_id).mkdir(parents=True)
        result = _process_into(unit, wf, out_root, stage, item_id, threads, scheduler, t0)
        return _commit(unit, params, result, stage, folder, run)
    except InputDataError as err:
        if "reading the input pixels failed" in str(err):
            _name_bad_input(unit, err)
        raise
    finally:  # nothing of a failed, discarded or finished unit stays in the stage
        shutil.rmtree(stage, ignore_errors=True)


def _commit(
    unit: Unit, params: str, result: UnitResult, stage: Path, folder: Path, run: str | None
) -> UnitResult:
    """Move the staged item folder into place (replacing a stale one) and record it, if the
    run still owns the output; a result recorded meanwhile by another execution wins."""
    out_root = folder.parent.parent
    gone = "its task was cancelled" if _abandoned() else run_gone(out_root, run)
    if gone is not None:
        raise WorkflowError(
            f"unit {unit.key}: the run that submitted it is gone ({gone}); its products "
            "were discarded, nothing written - the next run does it"
        )
    done = recorded(folder, unit.inputs_signature, params, out_root)
    if done is not None:
        return _from_record(done)
    folder.parent.mkdir(parents=True, exist_ok=True)
    swap_folder(stage / "items" / folder.name, folder)
    write_record(folder, unit.inputs_signature, params, asdict(result), out_root)
    return result


def _name_bad_input(unit: Unit, err: InputDataError) -> None:
    """GDAL's read errors name no file: find the input that does not decode, and say so."""
    from eo_pipeline.io.asset_checks import unreadable

    items = _load_items(unit)
    keys = sorted({k for it in items for k, a in it.assets.items() if "data" in (a.roles or ())})
    bad = unreadable(items, keys)
    if bad is not None:
        raise InputDataError(
            f"unit {unit.key}: an input is corrupt: {bad}; re-ingest that scene"
        ) from err


def _abandoned() -> bool:
    """Whether this unit's task was cancelled on its dask worker (its runner died or let go).

    A Python function cannot be interrupted; a unit checks once before it writes anything.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
        key = worker.get_current_task()
    except (ImportError, ValueError, AttributeError, KeyError):
        return False  # not in a distributed task (a local or synchronous run)
    task = worker.state.tasks.get(key)
    return task is None or task.state == "cancelled"


def _from_record(rec: dict[str, Any]) -> UnitResult:
    files = tuple(ProductFile(**{**f, "roles": tuple(f.get("roles", ()))}) for f in rec["files"])
    notes = tuple(rec.get("notes", ()))
    return UnitResult(rec["key"], rec["item_path"], files, rec["timings"], rec["worker"], notes)


def _all_nodata(root: Path, files: list[ProductFile]) -> bool:
    """Whether every GeoTIFF product holds only nodata (read from its smallest overview)."""
    import rasterio

    tifs = [f for f in files if f.path.endswith(".tif")]
    for f in tifs:
        with rasterio.open(root / f.path) as src:
            factor = (src.overviews(1) or [1])[-1]
            shape = (src.count, max(1, src.height // factor), max(1, src.width // factor))
            data = src.read(out_shape=shape)
            nodata = src.nodata
        valid = ~np.isnan(data) if data.dtype.kind == "f" else np.ones(data.shape, bool)
        if nodata is not None and not np.isnan(nodata):
            valid &= data != nodata
        if valid.any():
            return False
    return bool(tifs)


def _process_into(unit: Unit, wf: Workflow, out_root: Path, stage: Path, item_id: str,
                  threads: int, scheduler: str, t0: float) -> UnitResult:  # fmt: skip
    """:func:`process_unit`'s work, written into ``stage`` (laid out as ``out_root``)."""
    folder = stage / "items" / item_id
    timings: dict[str, float] = {}
    files: list[ProductFile] = []
    with _threads_cap(threads, scheduler):
        state = _start(unit, wf)
        state.root = str(out_root)
        timings["load"] = time.perf_counter() - t0
        run_steps(state)
        products = _unit_products(state)
        timings["graph"] = time.perf_counter() - t0
        if _abandoned():
            raise WorkflowError(
                f"unit {unit.key}: the run that submitted it is gone (its task was cancelled); "
                "nothing written - the next run does it"
            )
        files.extend(_write_products(products, folder, wf, stage))
        timings["write"] = time.perf_counter() - t0
        if wf.output.quicklook:
            _quicklooks(state, files, folder, stage, item_id)
        timings["total"] = time.perf_counter() - t0
    item = product_item(item_id, unit, wf, state.items, files, state.dn, state.data.attrs)
    item_path = folder / f"{item_id}.json"
    write_json(item_path, item, indent=1)
    empty = _all_nodata(stage, files)
    return UnitResult(
        key=unit.key,
        item_path=str(item_path.relative_to(stage)),
        files=tuple(files),
        notes=("every pixel of its products is nodata: the input holds no valid data",)
        if empty
        else (),
        timings={k: round(v, 3) for k, v in timings.items()},
        worker=f"{os.uname().nodename}:{os.getpid()}@{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
    )

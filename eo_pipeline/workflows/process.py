"""What a worker does for one unit: load, run the steps, write products and their STAC item.

Runs inside a dask.distributed task. The unit's own dask graph (chunks of its scenes) is
computed with a local threaded scheduler inside the task, with numba's threads capped, so the
cluster spreads *units* over workers and each worker streams its unit chunk by chunk.

Everything is written under temporary names and renamed when complete; the product item
JSON is written last, so a unit either has its item (and every file it lists) or nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from eo_pipeline.atomic import write_json
from eo_pipeline.errors import WorkflowError
from eo_pipeline.workflows.plan import Unit
from eo_pipeline.workflows.spec import Workflow

__all__ = ["ProductFile", "UnitResult", "process_unit"]


@dataclass(frozen=True)
class ProductFile:
    """One file a unit wrote."""

    key: str
    """Asset key in the product item (``reflectance``, ``NDVI``, ``mask``, ``quicklook``...)."""
    path: str
    """Path relative to the output catalog folder."""
    size: int
    checksum: str
    """sha2-256 multihash hex."""
    media_type: str
    roles: tuple[str, ...]
    raster: dict[str, Any] = field(default_factory=dict)
    """dtype, nodata, scale, offset, unit, bands, proj fields (for STAC)."""


@dataclass(frozen=True)
class UnitResult:
    """What :func:`process_unit` returns to the runner."""

    key: str
    item_path: str
    """Product item JSON, relative to the output catalog folder."""
    files: tuple[ProductFile, ...]
    timings: dict[str, float]
    worker: str


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
    import pystac

    return [pystac.Item.from_file(h) for h in unit.item_hrefs]


def _product_name(wf: Workflow, unit: Unit, product: str) -> str:
    # a composite's unit key already names its collection; a place suffix keeps the
    # composites of several places in one period apart
    label = unit.key if unit.period is None else unit.period
    if unit.site:
        label = f"{label}_{unit.site}"
    return wf.output.naming.format(collection=unit.collection, unit=label, product=product)


def _write_options(obj: Any, key: str, wf: Workflow) -> Any:
    from eo_pipeline.io.writing import WriteOptions

    dtype: str | None = None
    src_kind = np.dtype(
        next(iter(obj.data_vars.values())).dtype if hasattr(obj, "data_vars") else obj.dtype
    ).kind
    if wf.output.reflectance == "int16" and src_kind == "f" and key == "reflectance":
        dtype = "int16"
    return WriteOptions(dtype=dtype, compress=wf.output.compress)


def _write_products(
    products: list[tuple[Any, str, str, tuple[str, ...]]], folder: Path, wf: Workflow, root: Path
) -> list[ProductFile]:
    """Write ``(obj, stem, key, roles)`` products as COGs in one dask computation.

    One computation for all of a unit's products: the scene's chunks are read and
    calibrated once, not once per product (indices share the calibrated reflectance).
    """
    from eo_pipeline.io.writing import write_many

    outs = write_many(
        [
            (obj, folder / f"{stem}.tif", _write_options(obj, key, wf))
            for obj, stem, key, _ in products
        ]
    )
    return [
        _product_file(out, key, roles, root)
        for out, (_, _, key, roles) in zip(outs, products, strict=True)
    ]


def _product_file(out: Any, key: str, roles: tuple[str, ...], root: Path) -> ProductFile:
    nodata = None if out.nodata is None or np.isnan(out.nodata) else out.nodata
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


def process_unit(
    unit: Unit, wf: Workflow, root: str, threads: int = 1, scheduler: str = "threads"
) -> UnitResult:
    """Process one unit and write its products under ``root`` (the output catalog folder).

    ``threads`` caps dask's local worker threads and numba's threads; ``scheduler`` is the
    local dask scheduler the unit's chunk graph runs on (``"threads"``; ``"sync"`` runs every
    task in the calling thread: the end-to-end benchmark's no-scheduler reference).
    """
    import eo_pipeline as eo

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    out_root = Path(root)
    item_id = _product_name(wf, unit, wf.name).replace("/", "_")
    folder = out_root / "items" / item_id
    folder.mkdir(parents=True, exist_ok=True)
    files: list[ProductFile] = []
    with _threads_cap(threads, scheduler):
        items = _load_items(unit)
        chunks = {"x": wf.resources.chunk_size, "y": wf.resources.chunk_size}
        sensor = eo.sensors.get(str(items[0].properties.get("eo_pipeline:sensor", "")))
        present = set(items[0].assets)
        pan_ids = [b.id for b in sensor.bands if b.common_name == "pan" and b.id in present]
        ms_ids = [b.id for b in sensor.bands if b.common_name != "pan" and b.id in present]
        extra = [k for k in ("QA_PIXEL",) if k in present]
        # PAN has its own, finer grid: the MS product is made on the MS grid, PAN loaded apart
        ds = eo.load(items, bands=ms_ids + extra, chunks=chunks)
        timings["load"] = time.perf_counter() - t0
        data = ds
        mask = None
        cal = wf.step("calibrate")
        if cal is not None:
            data = eo.calibrate(ds, **dict(cal.params))
        mstep = wf.step("mask")
        if mstep is not None:
            mask = eo.masks(ds if "QA_PIXEL" in ds else data, **dict(mstep.params))
        comp = wf.step("composite")
        band_vars = [v for v in ms_ids if v in data.data_vars]
        common = {v: str(data[v].attrs.get("common_name", "")) for v in band_vars}
        refl = data[band_vars]
        if comp is not None:
            refl = eo.composite(refl, **dict(comp.params, period=None), mask=mask)
        ps = wf.step("pansharpen")
        if ps is not None:
            if not pan_ids:
                raise WorkflowError(
                    f"unit {unit.key}: pansharpen needs a pan band; sensor {sensor.name} "
                    f"items have {sorted(present)}"
                )
            pan_gsd = sensor.band(pan_ids[0]).gsd
            pan_ds = eo.load(items, bands=pan_ids, chunks=chunks, resolution=pan_gsd)
            pan = eo.calibrate(pan_ds, **dict(cal.params)) if cal is not None else pan_ds
            refl = eo.pansharpen(refl, pan[pan_ids[0]], **dict(ps.params))
        refl = (
            refl.isel(time=0, drop=True)
            if "time" in refl.dims and refl.sizes["time"] == 1
            else refl
        )
        if "time" in refl.dims:
            raise WorkflowError(
                f"unit {unit.key}: {refl.sizes['time']} scenes in one unit without a composite step"
            )
        products: list[tuple[Any, str, str, tuple[str, ...]]] = [
            (
                refl[band_vars],
                _product_name(wf, unit, "reflectance"),
                "reflectance",
                ("data", "reflectance"),
            )
        ]
        istep = wf.step("indices")
        index_names: list[str] = []
        if istep is not None:
            # named (ASI) indices and custom formulas: one fused kernel each, merged
            constants = dict(istep.params.get("constants", {}))
            requests: list[Any] = [
                r
                for r in (
                    list(istep.params.get("names", [])),
                    dict(istep.params.get("formulas", {})),
                )
                if r
            ]
            idx = xr.merge([eo.compute_indices(refl, r, **constants) for r in requests])
            for name in idx.data_vars:
                products.append(
                    (idx[[name]], _product_name(wf, unit, str(name)), str(name), ("data", "index"))
                )
                index_names.append(str(name))
        if mask is not None and comp is None:
            m = mask.isel(time=0, drop=True) if "time" in mask.dims else mask
            products.append(
                (
                    m.to_dataset(name="mask"),
                    _product_name(wf, unit, "mask"),
                    "mask",
                    ("cloud", "mask"),
                )
            )
        timings["graph"] = time.perf_counter() - t0
        files.extend(_write_products(products, folder, wf, out_root))
        timings["write"] = time.perf_counter() - t0
        if wf.output.quicklook:
            from eo_pipeline.io.quicklook import index_map, quicklook, thumbnail

            refl_path = out_root / files[0].path
            rgb = _rgb_bands(band_vars, common)
            ql = quicklook(
                refl_path, folder / f"{_product_name(wf, unit, 'quicklook')}.png", bands=rgb
            )
            files.append(_image_file(ql, "quicklook", ("overview", "visual"), out_root))
            th = thumbnail(
                refl_path, folder / f"{_product_name(wf, unit, 'thumbnail')}.png", bands=rgb
            )
            files.append(_image_file(th, "thumbnail", ("thumbnail",), out_root))
            for name in index_names:
                src = next(f for f in files if f.key == name)
                im = index_map(
                    out_root / src.path,
                    folder / f"{_product_name(wf, unit, name + '_map')}.png",
                    band=1,
                    title=name,
                )
                files.append(_image_file(im, f"{name}_map", ("overview",), out_root))
        timings["total"] = time.perf_counter() - t0
    from eo_pipeline.workflows.products import product_item

    item = product_item(item_id, unit, wf, items, files, ds)
    item_path = folder / f"{item_id}.json"
    write_json(item_path, item, indent=1)
    return UnitResult(
        key=unit.key,
        item_path=str(item_path.relative_to(out_root)),
        files=tuple(files),
        timings={k: round(v, 3) for k, v in timings.items()},
        worker=f"{os.uname().nodename}:{os.getpid()}@{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
    )

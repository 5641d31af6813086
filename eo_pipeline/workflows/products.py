"""STAC items and collections of workflow products (lineage, checksums, raster and proj fields)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac

from eo_pipeline.catalogs.stac import EXTENSION_URIS, with_proj_epsg
from eo_pipeline.catalogs.stac import _eo_band as eo_band_entry
from eo_pipeline.catalogs.store import write_json_atomic

if TYPE_CHECKING:
    from eo_pipeline.workflows.plan import Unit
    from eo_pipeline.workflows.spec import Workflow

__all__ = [
    "ProductFile",
    "atmosphere_properties",
    "build_product_catalog",
    "product_collection_id",
    "product_item",
    "product_name",
    "software_versions",
]

_SHARED_PROPS = (
    "platform",
    "instruments",
    "constellation",
    "gsd",
    "eo_pipeline:sensor",
    "eo_pipeline:sensor_definition",
)


@dataclass(frozen=True)
class ProductFile:
    """One file a unit wrote."""

    key: str
    """Asset key in the product item: a band id for reflectance (``B4``), an index name
    (``NDVI``), ``mask``, ``quicklook``..."""
    path: str
    """Path relative to the output catalog folder."""
    size: int
    checksum: str
    """sha2-256 multihash hex."""
    media_type: str
    roles: tuple[str, ...]
    raster: dict[str, Any] = field(default_factory=dict)
    """dtype, nodata, scale, offset, unit, statistics, valid_range (+ how), bands, proj
    fields (for STAC)."""


def product_name(wf: Workflow, unit: Unit, product: str) -> str:
    """The file stem of a unit's ``product`` (the workflow's ``output.naming`` pattern)."""
    # a composite's unit key already names its collection; a place suffix keeps the
    # composites of several places in one period apart
    label = unit.key if unit.period is None else unit.period
    if unit.site:
        label = f"{label}_{unit.site}"
    name = wf.output.naming.format(collection=unit.collection, unit=label, product=product)
    # fields come from input catalogs (collection, item id): one path component, always
    name = name.replace("/", "_").replace("\\", "_")
    return "_" + name if name.startswith(".") else name


def product_collection_id(unit_collection: str, wf: Workflow) -> str:
    """``{input collection}-{workflow name}``, e.g. ``kazeosat2-l1-toa-indices``."""
    return f"{unit_collection}-{wf.name}".lower()


def _level(wf: Workflow) -> str:
    if wf.step("composite") is not None:
        return "L3"
    cal = wf.step("calibrate")
    to = cal.params.get("to", "toa_reflectance") if cal is not None else None
    return {"toa_reflectance": "L1-TOA", "radiance": "L1-RAD", "surface_reflectance": "L2"}.get(
        str(to), "L1"
    )


def software_versions() -> dict[str, str]:
    """Versions of eo-pipeline and the libraries that shape its products (for lineage)."""
    import dask
    import numba
    import rasterio
    import xarray

    from eo_pipeline._version import __version__

    return {
        "eo-pipeline": __version__,
        "numba": numba.__version__,
        "xarray": xarray.__version__,
        "dask": dask.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
    }


VALID_RANGE_FIELD = "eo_pipeline:valid_range"
"""Per ``raster:bands`` entry: ``{"minimum", "maximum", "how"}``, the range every valid pixel
of the band lies in, in physical units (after scale and offset). ``how`` is ``by
construction`` (derived from the inputs' domain: no pixel can fall outside), ``documented:
<source>`` (pixels outside were set to nodata) or ``physical range of reflectance`` (pixels
outside are flagged in the mask and nodata in every product)."""


def _raster_band(r: Mapping[str, Any], k: int) -> dict[str, Any]:
    b: dict[str, Any] = {"data_type": r["dtype"]}
    if r.get("nodata") is not None:
        b["nodata"] = r["nodata"]
    if r.get("scale") is not None:
        b["scale"] = r["scale"]
        b["offset"] = r.get("offset") or 0.0
    if r.get("unit"):
        b["unit"] = r["unit"]
    stats = r.get("statistics") or []
    if k < len(stats):
        b["statistics"] = dict(stats[k])
    if r.get("valid_range") is not None:
        lo, hi = r["valid_range"]
        b[VALID_RANGE_FIELD] = {"minimum": lo, "maximum": hi, "how": r.get("valid_range_how", "")}
    return b


def _asset(f: ProductFile, sensor: Any) -> dict[str, Any]:
    """One product file as a STAC asset: file, raster (scale, offset, nodata, unit,
    statistics, valid range), eo (reflectance bands) and projection fields.

    Both ``proj:code`` and ``proj:epsg`` are written on every raster asset (projection
    v1.2.0 defines both; stackstac 0.5 reads only ``proj:epsg``): see
    :func:`eo_pipeline.catalogs.stac.with_proj_epsg`.
    """
    a: dict[str, Any] = {
        "href": Path(f.path).name,
        "type": f.media_type,
        "roles": list(f.roles),
        "title": f.key,
        "file:size": f.size,
        "file:checksum": f.checksum,
    }
    r = f.raster
    if r:
        a["raster:bands"] = [_raster_band(r, k) for k in range(len(r["bands"]))]
        if "reflectance" in f.roles and sensor is not None and f.key in sensor.band_ids:
            band = sensor.band(f.key)
            a["eo:bands"] = [eo_band_entry(band)]
            a["title"] = f"{f.key} reflectance" + (
                f" ({band.common_name})" if band.common_name else ""
            )
        a["proj:shape"] = r["shape"]
        a["proj:transform"] = r["transform"]
        crs = str(r.get("crs") or "")
        if crs.startswith("EPSG:"):
            a["proj:code"] = crs
            a["proj:epsg"] = int(crs.split(":", 1)[1])
    return a


def product_item(
    item_id: str,
    unit: Unit,
    wf: Workflow,
    inputs: Sequence[pystac.Item],
    files: Sequence[ProductFile],
    ds: Any,
    data_attrs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The product item of one unit as a STAC 1.1 JSON dict (hrefs relative to its folder).

    ``data_attrs`` are the processed data's attrs: when they record an atmospheric
    correction (:mod:`eo_pipeline.steps.atmosphere`), the item is ``processing:level`` L2A
    and carries the AOT used and the correction's lineage (:func:`atmosphere_properties`).
    """
    first = inputs[0]
    times = sorted(i.datetime for i in inputs if i.datetime is not None)
    props: dict[str, Any] = {k: first.properties[k] for k in _SHARED_PROPS if k in first.properties}
    if len(inputs) == 1 and first.datetime is not None:
        props["datetime"] = first.datetime.isoformat().replace("+00:00", "Z")
        for k in ("view:sun_elevation", "view:sun_azimuth", "eo:cloud_cover"):
            if k in first.properties:
                props[k] = first.properties[k]
        if "eo:cloud_cover" in first.properties:
            how = first.properties.get("eo_pipeline:cloud_cover_method", "input metadata")
            props["eo_pipeline:cloud_cover_method"] = f"of the input scene {first.id}: {how}"
    else:
        props["datetime"] = None
        props["start_datetime"] = times[0].isoformat().replace("+00:00", "Z")
        props["end_datetime"] = times[-1].isoformat().replace("+00:00", "Z")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    props.update(
        {
            "created": now,
            "processing:level": _level(wf),
            "processing:software": software_versions(),
            "processing:lineage": (
                f"eo-pipeline workflow {wf.name!r}: "
                + " -> ".join(
                    f"{s.name}({', '.join(f'{k}={v}' for k, v in s.params.items())})"
                    for s in wf.steps
                )
                + f" on {len(inputs)} input item(s)"
            ),
            "eo_pipeline:workflow": wf.name,
            "eo_pipeline:unit": unit.key,
        }
    )
    atmos = atmosphere_properties(data_attrs or {})
    if atmos:
        props.update(atmos)
        props["processing:level"] = "L2A" if wf.step("composite") is None else "L3"
        props["processing:lineage"] += (
            f"; surface reflectance by atmospheric correction of Level-1 DN with "
            f"{atmos['eo_pipeline:atmosphere']['radiative_transfer']} (LUT "
            f"{atmos['eo_pipeline:atmosphere']['lut']} version {atmos['eo_pipeline:atmosphere']['lut_version']}, "
            f"{atmos['eo_pipeline:atmosphere']['aerosol_model']} aerosol, AOT550 "
            f"{atmos['eo_pipeline:aot550']:.3f} {atmos['eo_pipeline:aot_method']})"
        )
    codes = {f.raster.get("crs") for f in files if f.raster}
    if len(codes) == 1:
        code = codes.pop()
        if code and code.startswith("EPSG:"):
            props["proj:code"] = code
    from eo_pipeline.catalogs import sensors

    name = str(first.properties.get("eo_pipeline:sensor", ""))
    sensor = sensors.get(name) if name in sensors.names() else None
    assets = {f.key: _asset(f, sensor) for f in files}
    links: list[dict[str, Any]] = []
    for inp in inputs:
        href = inp.get_self_href()
        if href:
            links.append(
                {"rel": "derived_from", "href": href, "type": "application/json", "title": inp.id}
            )
    geometry = first.geometry
    bbox = first.bbox
    if len(inputs) > 1:
        import shapely.geometry
        from shapely.ops import unary_union

        union = unary_union([shapely.geometry.shape(i.geometry) for i in inputs if i.geometry])
        geometry, bbox = shapely.geometry.mapping(union), list(union.bounds)
    exts = {EXTENSION_URIS[k] for k in ("processing", "file", "raster", "projection")}
    if any("eo:bands" in a for a in assets.values()) or "eo:cloud_cover" in props:
        exts.add(EXTENSION_URIS["eo"])
    if "view:sun_elevation" in props:
        exts.add(EXTENSION_URIS["view"])
    doc = {
        "type": "Feature",
        "stac_version": pystac.get_stac_version(),
        "stac_extensions": sorted(exts),
        "id": item_id,
        "geometry": geometry,
        "bbox": list(bbox) if bbox else None,
        "properties": props,
        "links": links,
        "assets": assets,
        "collection": product_collection_id(unit.collection, wf),
    }
    return with_proj_epsg(doc)


def atmosphere_properties(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Item properties of an atmospheric correction from the corrected data's attrs
    (empty when none ran): ``eo_pipeline:aot550`` (scene mean), ``eo_pipeline:aot_method``
    and ``eo_pipeline:atmosphere`` (radiative-transfer code, LUT file name and version,
    aerosol model, water vapour, ozone and pressure used).

    Examples
    --------
    >>> p = atmosphere_properties({"eo_pipeline:aot550": 0.2, "eo_pipeline:aot_method": "user value",
    ...     "eo_pipeline:lut": "/x/kazeosat2.npz", "eo_pipeline:lut_version": "1",
    ...     "eo_pipeline:aerosol_model": "continental", "eo_pipeline:gases": {"water": 1.5}})
    >>> p["eo_pipeline:atmosphere"]["lut"], p["eo_pipeline:atmosphere"]["water"]
    ('kazeosat2.npz', 1.5)
    """
    if "eo_pipeline:aot_method" not in attrs:
        return {}
    gases = attrs.get("eo_pipeline:gases") or {}
    atmosphere = {
        "radiative_transfer": "6SV1.1 (lookup table)",
        "lut": Path(str(attrs.get("eo_pipeline:lut", ""))).name,
        "lut_version": str(attrs.get("eo_pipeline:lut_version", "")),
        "aerosol_model": str(attrs.get("eo_pipeline:aerosol_model", "")),
        **{k: v for k, v in gases.items() if isinstance(v, int | float | str | bool)},
    }
    return {
        "eo_pipeline:aot550": round(float(attrs.get("eo_pipeline:aot550", float("nan"))), 4),
        "eo_pipeline:aot_method": str(attrs["eo_pipeline:aot_method"]),
        "eo_pipeline:atmosphere": atmosphere,
    }


def build_product_catalog(
    root: str | os.PathLike[str], item_paths: Sequence[str], wf: Workflow
) -> Path:
    """(Re)write ``root/catalog.json`` and one collection per product type over the items."""
    root = Path(root)
    items = [pystac.Item.from_file(str(root / p)) for p in item_paths]
    catalog = pystac.Catalog(
        id=f"eo-pipeline-products-{wf.name}",
        description=f"Products of the eo-pipeline workflow {wf.name!r}. {wf.description}".strip(),
        title=f"eo-pipeline products: {wf.name}",
    )
    by_coll: dict[str, list[pystac.Item]] = {}
    for it in items:
        by_coll.setdefault(it.collection_id or wf.name, []).append(it)
    for cid, members in sorted(by_coll.items()):
        extent = pystac.Extent.from_items(members)
        coll = pystac.Collection(
            id=cid,
            description=f"{wf.name} products derived from {cid.removesuffix('-' + wf.name)} scenes.",
            extent=extent,
            license="other",
            title=cid,
        )
        for it in members:
            for asset in it.assets.values():
                asset.href = asset.get_absolute_href() or asset.href
            for rel in ("root", "parent", "collection"):
                it.remove_links(rel)
            it.set_self_href(None)
            coll.add_item(it)
        catalog.add_child(coll)
    # keep each item in the folder its assets live in (items/<id>/<id>.json)
    catalog.normalize_hrefs(str(root), strategy=_ItemsFolder())
    for child in catalog.get_children():
        child.set_self_href(str(root / child.id / "collection.json"))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    for it in catalog.get_items(recursive=True):  # pystac dropped proj:epsg (stackstac needs it)
        path = Path(it.get_self_href() or "")
        if path.is_file():
            write_json_atomic(path, with_proj_epsg(json.loads(path.read_text())))
    return root / "catalog.json"


class _ItemsFolder(pystac.layout.HrefLayoutStrategy):
    def get_catalog_href(self, cat: pystac.Catalog, parent_dir: str, is_root: bool) -> str:
        return (
            os.path.join(parent_dir, "catalog.json")
            if is_root
            else os.path.join(parent_dir, cat.id, "catalog.json")
        )

    def get_collection_href(self, col: pystac.Collection, parent_dir: str, is_root: bool) -> str:
        return (
            os.path.join(parent_dir, "collection.json")
            if is_root
            else os.path.join(parent_dir, col.id, "collection.json")
        )

    def get_item_href(self, item: pystac.Item, parent_dir: str) -> str:
        root = Path(parent_dir).parent
        return str(root / "items" / item.id / f"{item.id}.json")

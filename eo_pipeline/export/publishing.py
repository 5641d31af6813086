"""Publish products as sellable STAC collections in an export catalog.

:func:`publish` reads a product catalog (``catalog.json -> collections -> items`` with COG
assets) and writes a self-contained export catalog in which each product collection carries
what a buyer needs:

- title, description, keywords, providers (producer + licensor, processor, host), licence
  (an SPDX id, or ``other`` with a ``license`` link to the terms), extent, summaries;
- ``item_assets`` (item-assets extension v1.0.0) describing every asset of its items;
- the order extension v1.1.0: ``order:status: orderable`` on the collection and on each item
  (the schema requires it on items that declare the extension), and a ``terms-of-service``
  link to the order terms;
- ``eo_pipeline:pricing``, the price list (STAC has no pricing extension), a custom field::

      "eo_pipeline:pricing": {
        "currency": "USD",             # ISO 4217 code
        "per_km2": 12.0,               # price of one km2 of one item's footprint
        "per_collection": 25000.0,     # price of the whole collection (archive licence)
        "minimum_km2": 25.0,           # smallest billable area per order (optional)
        "notes": "..."                 # free text (optional)
      }

- ``eo_pipeline:public``: ``true`` lets anonymous API users see the collection (samples).

Each item keeps its processing lineage (``processing:level``, ``processing:software`` with the
software versions, ``derived_from`` links to its L1 inputs) and gets ``file:size`` and
``file:checksum`` for every local asset, ``published`` and, where the licence ends,
``expires`` (timestamps extension v1.1.0).

The export catalog is built in a staging folder beside the destination, validated offline
against the official schemas with :func:`eo_pipeline.catalogs.validation.validate`
(``check_assets=True``: every checksum is recomputed), and only then swapped in; a catalog that
fails validation is refused with the reason and the destination is left untouched.
Collections already published and absent from the source are carried over. The API index
(``index.sqlite`` in the private state folder beside the export, ``<export>.eo-pipeline/``; see
:func:`eo_pipeline.export.api.signing.state_dir`) is rebuilt after the swap.

Default providers are neutral placeholders, marked "(nominal)"; licence and terms links
default to placeholder URLs under the reserved ``.invalid`` domain: set the real ones in the
YAML given to ``eo-pipeline publish --config``.

Examples
--------
>>> cfg = PublishConfig.from_dict({"currency": "EUR", "collections": {
...     "kazeosat2-l2": {"title": "KazEOSat-2 surface reflectance", "per_km2": 4.5}}})
>>> cfg.offer("kazeosat2-l2").pricing(cfg)["per_km2"], cfg.currency
(4.5, 'EUR')
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac

from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.catalogs.stac import EXTENSION_URIS, merge_collection, with_proj_epsg
from eo_pipeline.catalogs.store import add_items, find_stac_file, read_items, write_json_atomic
from eo_pipeline.errors import CatalogError, ConfigError, StacValidationError
from eo_pipeline.export.sales import Offer, Provider, PublishConfig, providers_for
from eo_pipeline.lockfile import exclusive, lock_beside

__all__ = ["Offer", "Provider", "PublishConfig", "PublishReport", "publish", "publish_cli"]

ORDER_URI = "https://stac-extensions.github.io/order/v1.1.0/schema.json"
ITEM_ASSETS_URI = "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json"
TIMESTAMPS_URI = "https://stac-extensions.github.io/timestamps/v1.1.0/schema.json"
PRICING_FIELD = "eo_pipeline:pricing"
PUBLIC_FIELD = "eo_pipeline:public"
_STATE = ".eo-pipeline"
# Per-item asset fields that do not belong in a collection's item_assets.
_PER_ITEM = (
    "href",
    "file:",
    "proj:shape",
    "proj:transform",
    "proj:bbox",
    "proj:geometry",
    "proj:centroid",
    "proj:code",
    "proj:epsg",
    "proj:wkt2",
    "proj:projjson",
    "eo_pipeline:calibration",
    "created",
    "updated",
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PublishReport:
    """What :func:`publish` wrote."""

    catalog: Path
    """The export ``catalog.json``."""
    collections: tuple[str, ...]
    """Collections published by this call."""
    carried_over: tuple[str, ...]
    """Collections already in the export catalog, kept unchanged."""
    items: int
    """Items in the published collections."""
    validation: str
    """The validator's summary."""

    def __str__(self) -> str:
        kept = f", kept {', '.join(self.carried_over)}" if self.carried_over else ""
        return (
            f"published {self.items} item(s) in {', '.join(self.collections)} to {self.catalog}"
            f"{kept}\n{self.validation}"
        )


def _level(item: pystac.Item, collection_id: str) -> str:
    level = item.properties.get("processing:level")
    if level:
        return str(level)
    suffix = collection_id.rsplit("-", 1)[-1].upper()
    if suffix.startswith("L") and suffix[1:2].isdigit():
        return suffix
    raise CatalogError(
        f"item {item.id!r} ({collection_id}): no processing:level and none in the collection "
        "id; products written by eo-pipeline carry it, set it on the item"
    )


def _item_assets(items: list[pystac.Item]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        for key, asset in item.assets.items():
            if key in out:
                continue
            d = {
                k: v
                for k, v in asset.to_dict().items()
                if not any(k == p or (p.endswith(":") and k.startswith(p)) for p in _PER_ITEM)
            }
            if "raster:bands" in d:
                d["raster:bands"] = [
                    {k: v for k, v in b.items() if k not in _PER_ITEM_BAND}
                    for b in d["raster:bands"]
                ]
            d.setdefault("title", key)
            out[key] = d
    return out


_PREFIX_URIS = {
    "eo:": EXTENSION_URIS["eo"],
    "raster:": EXTENSION_URIS["raster"],
    "proj:": EXTENSION_URIS["projection"],
    "view:": EXTENSION_URIS["view"],
    "sat:": EXTENSION_URIS["sat"],
    "processing:": EXTENSION_URIS["processing"],
    "file:": EXTENSION_URIS["file"],
    "order:": ORDER_URI,
    "published": TIMESTAMPS_URI,
    "expires": TIMESTAMPS_URI,
}
_PER_ITEM_BAND = ("statistics",)
"""``raster:bands`` fields that describe one item's pixels, not the collection's assets."""


def _extensions_used(doc: dict[str, Any]) -> list[str]:
    """The schema URIs of every extension whose fields a collection uses (top level,
    ``summaries``, ``item_assets``), so that none is used undeclared."""
    keys = set(doc) | set(doc.get("summaries") or {})
    for asset in (doc.get("item_assets") or {}).values():
        keys |= set(asset)
    uris = {uri for key in keys for p, uri in _PREFIX_URIS.items() if key.startswith(p)}
    if doc.get("item_assets"):
        uris.add(ITEM_ASSETS_URI)
    return sorted(uris)


def _collection(
    cid: str, items: list[pystac.Item], source: dict[str, Any] | None, cfg: PublishConfig
) -> dict[str, Any]:
    offer = cfg.offer(cid)
    first = items[0].properties
    platform = first.get("platform", cid.split("-")[0])
    level = _level(items[0], cid)
    coll = pystac.Collection(
        id=cid,
        title=offer.title or (source or {}).get("title") or f"{platform} {level} products",
        description=offer.description
        or (source or {}).get("description")
        or f"{platform} products at processing level {level}, processed by eo-pipeline.",
        extent=pystac.Extent.from_items(items),
        license=offer.license or cfg.license,
    )
    for key, value in ((source or {}).get("summaries") or {}).items():
        coll.summaries.add(key, value)
    merge_collection(coll, items)
    levels = sorted({_level(i, cid) for i in items})
    coll.summaries.add("processing:level", levels)
    d = coll.to_dict(include_self_link=False, transform_hrefs=False)
    keywords = dict.fromkeys([*cfg.keywords, *offer.keywords, str(platform), level])
    license_href = offer.license_href or cfg.license_href
    d.update(
        {
            "keywords": list(keywords),
            "providers": providers_for(cfg, str(platform)),
            "item_assets": _item_assets(items),
            "order:status": "orderable",
            PRICING_FIELD: offer.pricing(cfg),
            PUBLIC_FIELD: bool(offer.public),
            "links": [
                {"rel": "license", "href": license_href, "type": "text/html", "title": "Licence"},
                {
                    "rel": "terms-of-service",
                    "href": cfg.terms_href,
                    "type": "text/html",
                    "title": "Order terms",
                },
            ],
        }
    )
    d["stac_extensions"] = _extensions_used(d)
    return d


def _finish_item(
    path: Path,
    source: pystac.Item,
    new: bool,
    cfg: PublishConfig,
    published: dt.datetime,
    root: Path,
) -> None:
    """Add publishing fields and lineage links to an item JSON written by ``add_items``.

    ``new`` items get processing, timestamp and order fields; carried-over items keep theirs.
    """
    d = json.loads(path.read_text())
    props = d["properties"]
    cid = d.get("collection", "")
    if new:
        props["processing:level"] = _level(source, cid)
        software = dict(props.get("processing:software") or {})
        from eo_pipeline._version import __version__

        software.setdefault("eo-pipeline", __version__)
        props["processing:software"] = software
        props["published"] = _rfc3339(published)
        days = cfg.offer(cid).licence_days
        days = cfg.licence_days if days is None else days
        if days is not None:
            props["expires"] = _rfc3339(published + dt.timedelta(days=days))
        else:
            props.pop("expires", None)
        props["order:status"] = "orderable"
    for link in source.links:  # add_items writes hierarchy links only: put the lineage back
        if link.rel != "derived_from":
            continue
        target = Path(link.get_absolute_href() or link.href)
        href = str(target)
        if target.is_absolute() and target.is_relative_to(root):
            href = os.path.relpath(target, path.parent)
        entry = {"rel": "derived_from", "href": href, "type": "application/json"}
        if link.title:
            entry["title"] = link.title
        d["links"].append(entry)
    for asset in d["assets"].values():
        local = path.parent / asset["href"]
        if "://" not in asset["href"] and local.is_file():
            asset["file:size"] = local.stat().st_size
            if "file:checksum" not in asset:  # not setdefault: it would hash every file
                asset["file:checksum"] = file_checksum(local)
    exts = set(d.get("stac_extensions", []))
    exts |= {EXTENSION_URIS["processing"], EXTENSION_URIS["file"], TIMESTAMPS_URI, ORDER_URI}
    d["stac_extensions"] = sorted(exts)
    write_json_atomic(path, with_proj_epsg(d))


def _check_hrefs(item: pystac.Item, src_root: Path) -> None:
    """Every asset of a source item is a file of the source catalog (or marked as read in
    place at ingest): publish copies what it sells into the export, never ``/etc/x`` or a
    remote URL (:mod:`eo_pipeline.catalogs.hrefs`)."""
    from eo_pipeline.catalogs.hrefs import FIX, escape, is_reference, target

    self_href = item.get_self_href()
    base = Path(self_href).parent if self_href else None
    for key, asset in item.assets.items():
        what = f"item {item.id!r} asset {key!r}"
        if target(asset.href, base).kind == "remote":
            raise CatalogError(
                f"{what}: href {asset.href!r} is remote; an export holds the files it sells "
                "(download it into the source catalog first, or drop the asset)"
            )
        problem = escape(asset.href, base, src_root, reference=is_reference(asset))
        if problem is not None:
            raise CatalogError(f"{what}: {problem}; nothing published; {FIX}")


def _read_collection_doc(stac_dir: Path, cid: str) -> dict[str, Any] | None:
    path = stac_dir / cid / "collection.json"
    return json.loads(path.read_text()) if path.exists() else None


def _swap(staging: Path, export: Path) -> None:
    if export.exists():
        state = export / _STATE
        if state.exists():
            os.replace(state, staging / _STATE)
        trash = export.with_name(f".{export.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(export, trash)
        os.replace(staging, export)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, export)


def publish(
    source_catalog: str | os.PathLike[str],
    export_catalog: str | os.PathLike[str],
    config: PublishConfig | None = None,
) -> PublishReport:
    """Publish the product collections of ``source_catalog`` into ``export_catalog``.

    Parameters
    ----------
    source_catalog
        Product catalog (``catalog.json`` or its folder) written by eo-pipeline.
    export_catalog
        Export catalog folder (created, or updated: other collections are kept).
    config
        Titles, providers, licence, prices; default :class:`PublishConfig` ``()``.

    Returns
    -------
    PublishReport

    Raises
    ------
    StacValidationError
        When the staged export catalog breaks the official schemas or an asset's size or
        checksum disagrees with its file; nothing is changed then.
    CatalogError
        When the source has no items (or none in ``config.only``) or cannot be read.

    Examples
    --------
    >>> report = publish("demo-output/products", "demo-output/export")  # doctest: +SKIP
    >>> report.collections  # doctest: +SKIP
    ('kazeosat2-l2-indices',)
    """
    cfg = config or PublishConfig()
    export = Path(export_catalog).resolve()
    # publishes into one export merge one after the other: each reads what the previous one
    # wrote (two at once each kept only their own new collection); see eo_pipeline.lockfile
    with exclusive(lock_beside(export), f"the export catalog {export}", wait=_lock_wait()):
        return _publish_locked(source_catalog, export, cfg)


def _lock_wait() -> float:
    """Seconds a publish waits for another one into the same export (``EO_PIPELINE_LOCK_WAIT``)."""
    raw = os.environ.get("EO_PIPELINE_LOCK_WAIT", "600")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"EO_PIPELINE_LOCK_WAIT={raw!r} is not a number of seconds") from None
    if not value >= 0:
        raise ConfigError(f"EO_PIPELINE_LOCK_WAIT={raw!r} must be >= 0 seconds")
    return value


def _publish_locked(source_catalog: str | os.PathLike[str], export: Path, cfg: PublishConfig
                    ) -> PublishReport:  # fmt: skip
    """:func:`publish` while holding the export's lock."""
    from eo_pipeline.catalogs.validation import validate
    from eo_pipeline.export.api.index import open_index

    src_file = Path(source_catalog)
    src_dir = src_file.parent if src_file.is_file() else src_file
    src_root = find_stac_file(source_catalog).resolve().parent
    groups: dict[str, list[pystac.Item]] = {}
    for item in read_items(source_catalog):
        cid = item.collection_id or ""
        if cfg.only and cid not in cfg.only:
            continue
        dropped = [k for k, a in item.assets.items() if set(a.roles or ()) & set(cfg.exclude_roles)]
        for key in dropped:  # e.g. the simulator's ground truth: not for sale
            del item.assets[key]
        _check_hrefs(item, src_root)
        groups.setdefault(cid, []).append(item)
    if not groups:
        raise CatalogError(f"{source_catalog}: no items to publish (config.only={list(cfg.only)})")
    carried: dict[str, list[pystac.Item]] = {}
    if (export / "catalog.json").exists():
        for item in read_items(export):
            if item.collection_id not in groups:
                carried.setdefault(item.collection_id or "", []).append(item)
    staging = export.with_name(f".{export.name}.publish-{uuid.uuid4().hex[:8]}")
    published = _now()
    try:
        everything = [i for g in (*groups.values(), *carried.values()) for i in g]
        for cid in [*groups, *carried]:  # a skeleton, so add_items needs no sensor file
            skeleton = pystac.Collection(
                cid, cid, pystac.Extent.from_items(groups.get(cid) or carried[cid])
            )
            (staging / cid).mkdir(parents=True, exist_ok=True)
            write_json_atomic(
                staging / cid / "collection.json",
                skeleton.to_dict(include_self_link=False, transform_hrefs=False),
            )
        add_items(staging, everything, asset_mode="link", catalog_id=cfg.catalog_id)
        for cid, members in groups.items():
            for item in members:
                _finish_item(
                    staging / cid / item.id / f"{item.id}.json", item, True, cfg, published, export
                )
        for cid, members in carried.items():
            for item in members:
                _finish_item(
                    staging / cid / item.id / f"{item.id}.json", item, False, cfg, published, export
                )
        for cid in [*groups, *carried]:
            path = staging / cid / "collection.json"
            links = json.loads(path.read_text())["links"]
            if cid in groups:
                written = list(read_items(path))
                doc = _collection(cid, written, _read_collection_doc(src_dir, cid), cfg)
            else:
                doc = _read_collection_doc(export, cid) or {}
            doc["links"] = links + [
                link
                for link in doc.get("links", [])
                if link.get("rel") not in {"root", "parent", "item", "child", "self"}
            ]
            write_json_atomic(path, doc)
        root = json.loads((staging / "catalog.json").read_text())
        root.update(title=cfg.catalog_title, description=cfg.catalog_description)
        write_json_atomic(staging / "catalog.json", root)
        try:
            report = validate(staging / "catalog.json", check_assets=True)
        except StacValidationError as err:
            raise StacValidationError(
                f"publish refused, {export} left unchanged: {str(err).replace(str(staging), str(export))}"
            ) from None
        _swap(staging, export)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    open_index(export, rebuild=True)
    return PublishReport(
        catalog=export / "catalog.json",
        collections=tuple(sorted(groups)),
        carried_over=tuple(sorted(carried)),
        items=sum(len(g) for g in groups.values()),
        validation=str(report).replace(str(staging), str(export)),
    )


def publish_cli(args: argparse.Namespace) -> int:
    """``eo-pipeline publish SOURCE --catalog DIR [--config FILE.yaml]``."""
    cfg = PublishConfig.from_yaml(args.config) if args.config else PublishConfig()
    print(publish(args.source, args.catalog, cfg))
    return 0

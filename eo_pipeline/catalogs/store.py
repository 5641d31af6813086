"""A self-contained static STAC catalog on disk: create it, add items, read items back.

Layout (``pystac.CatalogType.SELF_CONTAINED``: relative links, no ``self`` links)::

    catalog.json
    {collection_id}/collection.json
    {collection_id}/{item_id}/{item_id}.json
    {collection_id}/{item_id}/<asset files>

Writes are all-or-nothing per item: each item folder is staged under a hidden temporary
name beside its final place and renamed when complete; JSON files are written to a
temporary name and renamed (``os.replace``), so a reader never sees half a file. One
writer at a time per catalog (no locking).

Examples
--------
>>> from eo_pipeline.catalogs.store import add_items, read_items
>>> written = add_items("catalog", [item])  # doctest: +SKIP
>>> [i.id for i in read_items("catalog")]  # doctest: +SKIP
['LC08_L2SP_001070_20190114_20200830_02_T2']
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import pystac

from eo_pipeline.atomic import swap_folder, write_json
from eo_pipeline.catalogs.index_rows import read_json
from eo_pipeline.catalogs.stac import build_collection, merge_collection, with_proj_epsg
from eo_pipeline.errors import CatalogError, InputDataError, WriteError

__all__ = [
    "AssetMode",
    "add_items",
    "find_stac_file",
    "item_from_dict",
    "item_problem",
    "read_item",
    "read_items",
    "write_json_atomic",
]

AssetMode = Literal["link", "copy", "move", "reference"]
CATALOG_FILE = "catalog.json"
COLLECTION_FILE = "collection.json"


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as JSON to a temporary name beside ``path``, then rename it into place.

    The catalog's use of :func:`eo_pipeline.atomic.write_json` (fsync, ``os.replace``, no
    temporary left on failure), failing with a :class:`CatalogError`.

    >>> import tempfile, pathlib
    >>> p = write_json_atomic(pathlib.Path(tempfile.mkdtemp()) / "x.json", {"a": 1})
    >>> p.read_text()
    '{\\n  "a": 1\\n}\\n'
    """
    try:
        return write_json(path, data)
    except WriteError as err:
        raise CatalogError(str(err)) from None


def _write_links_doc(path: Path, doc: dict[str, Any]) -> None:
    """A catalog or collection document (JSON, indented like :func:`write_json_atomic`)
    through orjson: a collection of 10^5 item links encodes in ~50 ms instead of ~1.5 s
    with the standard library, which made adding one item to a large archive slow."""
    import orjson

    from eo_pipeline.atomic import atomic_write

    try:
        text = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # a value orjson does not encode: the standard library's error
        write_json_atomic(path, doc)
        return
    try:
        atomic_write(path, text)
    except WriteError as err:
        raise CatalogError(str(err)) from None


def _place_file(src: Path, dst: Path, mode: AssetMode) -> None:
    """Hard-link (falling back to a copy across filesystems/permissions), copy or move."""
    if mode == "move":
        try:
            os.replace(src, dst)
            return
        except OSError:
            shutil.copyfile(src, dst)
            src.unlink()
            return
    if mode == "link":
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # other filesystem, or not allowed to link a file we do not own: copy
    shutil.copyfile(src, dst)


def _local_asset_path(item: pystac.Item, href: str) -> Path | None:
    if urlparse(href).scheme not in ("", "file") or href.startswith("//"):
        return None  # remote asset: kept as it is
    if href.startswith("file://"):
        href = urlparse(href).path
    p = Path(href)
    if not p.is_absolute():
        base = item.get_self_href()
        if base is None:
            raise CatalogError(
                f"item {item.id!r}: asset href {href!r} is relative but the item has no self "
                "href; give absolute paths (build_item does)"
            )
        p = Path(base).parent / p
    return p


def _item_dict(item: pystac.Item, hrefs: dict[str, str], in_place: set[str]) -> dict[str, Any]:
    from eo_pipeline.catalogs.hrefs import REFERENCE

    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    for key, href in hrefs.items():
        d["assets"][key]["href"] = href
        d["assets"][key].pop(REFERENCE, None)  # placed in the catalog: no longer in place
    for key in in_place:  # read where it lies on purpose (catalogs.hrefs: not an escape)
        d["assets"][key][REFERENCE] = True
    d["links"] = [
        {"rel": "root", "href": f"../../{CATALOG_FILE}", "type": "application/json"},
        {"rel": "parent", "href": f"../{COLLECTION_FILE}", "type": "application/json"},
        {"rel": "collection", "href": f"../{COLLECTION_FILE}", "type": "application/json"},
    ]
    return d


def _stage_item(
    item: pystac.Item,
    coll_dir: Path,
    mode: AssetMode,
    modes: Mapping[str, AssetMode] | None = None,
) -> tuple[Path, dict[str, Any]]:
    from eo_pipeline.catalogs.archive import is_vsi, vsi_exists

    staging = coll_dir / f".{item.id}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        hrefs: dict[str, str] = {}
        in_place: set[str] = set()
        used: dict[str, str] = {}
        for key, asset in item.assets.items():
            this = (modes or {}).get(key, mode)
            if is_vsi(asset.href):  # a member of an archive, read in place by GDAL
                if asset.href.startswith("/vsizip/"):
                    if not vsi_exists(asset.href):
                        raise InputDataError(
                            f"item {item.id!r} asset {key!r}: {asset.href} does not exist"
                        )
                    in_place.add(key)
                continue
            src = _local_asset_path(item, asset.href)
            if src is None:
                continue
            if this == "reference":  # referenced in place: an absolute path, nothing placed
                if not src.is_file():
                    raise InputDataError(
                        f"item {item.id!r} asset {key!r}: file {src} does not exist"
                    )
                hrefs[key] = str(src.resolve())
                in_place.add(key)
                continue
            if not src.is_file():
                raise InputDataError(f"item {item.id!r} asset {key!r}: file {src} does not exist")
            if src.name in used:
                raise CatalogError(
                    f"item {item.id!r}: assets {used[src.name]!r} and {key!r} both have the file "
                    f"name {src.name!r}; give the files distinct names"
                )
            used[src.name] = key
            _place_file(src, staging / src.name, this)
            hrefs[key] = f"./{src.name}"
        # proj:epsg beside proj:code (projection v1.2.0): stackstac reads only proj:epsg
        data = with_proj_epsg(_item_dict(item, hrefs, in_place))
        write_json_atomic(staging / f"{item.id}.json", data)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, data


def _write_collection(coll_dir: Path, cid: str, items: Sequence[pystac.Item]) -> None:
    path = coll_dir / COLLECTION_FILE
    old_links: list[dict[str, Any]] = []
    if path.exists():
        old = read_json(path)
        old_links = [link for link in old.get("links", []) if link.get("rel") == "item"]
        old["links"] = []
        coll = pystac.Collection.from_dict(old)
        merge_collection(coll, items)
    else:
        coll = build_collection(cid, items)
    d = coll.to_dict(include_self_link=False, transform_hrefs=False)
    hrefs = {link["href"] for link in old_links} | {f"./{i.id}/{i.id}.json" for i in items}
    d["links"] = [
        {"rel": "root", "href": f"../{CATALOG_FILE}", "type": "application/json"},
        {"rel": "parent", "href": f"../{CATALOG_FILE}", "type": "application/json"},
        *[{"rel": "item", "href": h, "type": "application/geo+json"} for h in sorted(hrefs)],
    ]
    _write_links_doc(path, d)


def _write_catalog(catalog_dir: Path, collection_ids: Iterable[str], catalog_id: str) -> None:
    path = catalog_dir / CATALOG_FILE
    if path.exists():
        d = read_json(path)
    else:
        cat = pystac.Catalog(
            id=catalog_id,
            description="Scenes catalogued by eo-pipeline: one collection per sensor and level.",
            title="eo-pipeline catalog",
        )
        d = cat.to_dict(include_self_link=False, transform_hrefs=False)
        d["links"] = []
    children = {link["href"] for link in d.get("links", []) if link.get("rel") == "child"}
    children |= {f"./{cid}/{COLLECTION_FILE}" for cid in collection_ids}
    others = [
        link for link in d.get("links", []) if link.get("rel") not in {"child", "root", "self"}
    ]
    d["links"] = [
        {"rel": "root", "href": f"./{CATALOG_FILE}", "type": "application/json"},
        *others,
        *[{"rel": "child", "href": h, "type": "application/json"} for h in sorted(children)],
    ]
    write_json_atomic(path, d)


def add_items(
    catalog_dir: str | os.PathLike[str],
    items: Sequence[pystac.Item],
    *,
    asset_mode: AssetMode = "link",
    overwrite: bool = False,
    catalog_id: str = "eo-pipeline",
    asset_modes: Mapping[str, Mapping[str, AssetMode]] | None = None,
) -> list[pystac.Item]:
    """Add items to the self-contained static catalog at ``catalog_dir`` (created when missing).

    Each item goes to ``{collection}/{item_id}/{item_id}.json`` with its local asset files
    beside it (asset hrefs become ``./<file name>``); the collection (``item.collection_id``,
    created on first use) gets the item link, wider extents and summaries; the root catalog
    gets the collection as a child.

    Parameters
    ----------
    catalog_dir
        Folder holding (or to hold) ``catalog.json``.
    items
        Items from :func:`eo_pipeline.catalogs.stac.build_item` (absolute local asset hrefs;
        remote hrefs are kept as they are).
    asset_mode
        ``"link"``: hard-link each file into the item folder, copying when that is not
        possible (another filesystem, a file we may not link); ``"copy"``; ``"move"`` (for
        files the caller wrote only for this catalog, e.g. the simulator's temporary COGs);
        ``"reference"``: leave the files where they are, the href is their absolute path (a
        Sentinel-2 SAFE product read in place). ``/vsizip/`` hrefs (members of an archive) are
        always kept as they are. Assets left in place are marked
        ``"eo_pipeline:reference": true`` (:data:`eo_pipeline.catalogs.hrefs.REFERENCE`): the
        readers of the catalog accept them outside its folder, and no other local href.
    overwrite
        Replace items already in the catalog; by default that is a :class:`CatalogError`.
    catalog_id
        Id of a newly created root catalog.
    asset_modes
        Item id -> asset key -> mode, overriding ``asset_mode`` for those assets (bands
        converted to COG are moved in while the rest of the product is referenced).

    Returns
    -------
    list[pystac.Item]
        The written items, read back from disk (self hrefs set, relative asset hrefs).

    Raises
    ------
    CatalogError
        An item without collection, an id already present (without ``overwrite``), two
        assets with one file name, a catalog file that cannot be read or written.
    InputDataError
        An asset file that does not exist.
    """
    root = Path(catalog_dir)
    by_coll: dict[str, list[pystac.Item]] = {}
    for item in items:
        cid = item.collection_id
        if not cid:
            raise CatalogError(f"item {item.id!r} has no collection id; build it with build_item")
        final = root / cid / item.id
        if final.exists() and not overwrite:
            raise CatalogError(
                f"item {item.id!r} is already in {root / cid}; pass overwrite=True (CLI: --overwrite) to replace it"
            )
        by_coll.setdefault(cid, []).append(item)
    if not by_coll:
        raise CatalogError(f"{root}: no items to add")
    if (root / CATALOG_FILE).exists():
        read_json(root / CATALOG_FILE)  # fail before writing anything when it is broken

    created_root = not root.exists()
    staged: list[tuple[Path, Path]] = []
    try:
        for cid, group in by_coll.items():
            for item in group:
                modes = (asset_modes or {}).get(item.id)
                staging, _ = _stage_item(item, root / cid, asset_mode, modes)
                staged.append((staging, root / cid / item.id))
    except BaseException:
        for staging, _ in staged:
            shutil.rmtree(staging, ignore_errors=True)
        for cid in by_coll:  # remove collection folders this call created and left empty
            d = root / cid
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        if created_root and root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        raise
    from eo_pipeline.catalogs.index import collections_as_indexed, update_index

    current = collections_as_indexed(root, by_coll)  # before this write changes them
    for staging, final in staged:
        swap_folder(staging, final)
    for cid, group in by_coll.items():
        _write_collection(root / cid, cid, group)
    _write_catalog(root, by_coll, catalog_id)
    files = [final / f"{final.name}.json" for _, final in staged]
    update_index(root, files, current)
    return [read_item(f) for f in files]


def find_stac_file(path: str | os.PathLike[str]) -> Path:
    """The STAC JSON at ``path``: the file itself, or ``catalog.json``/``collection.json``
    (or the single ``*.json`` item) inside a folder."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        for name in (CATALOG_FILE, COLLECTION_FILE, f"{p.name}.json"):
            if (p / name).is_file():
                return p / name
        raise CatalogError(
            f"{p}: no {CATALOG_FILE}, {COLLECTION_FILE} or {p.name}.json in this folder; "
            "give the path of a STAC catalog, collection or item"
        )
    raise CatalogError(f"{p}: no such file or folder")


_NUMBERS = ("gsd", "eo:cloud_cover", "view:sun_elevation", "view:sun_azimuth",
            "view:off_nadir", "eo_pipeline:earth_sun_distance")  # fmt: skip
"""Item properties that must be numbers when present (the calibration reads them)."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def item_problem(data: dict[str, Any]) -> str | None:
    """What makes an item dict unusable (JSON path and rule), or ``None``.

    The fields pystac and the pipeline rely on: ``properties`` an object with a ``datetime``
    (or ``start_datetime`` and ``end_datetime``) string, ``bbox`` 4 or 6 numbers, ``assets``
    an object of objects with an ``href`` string, numeric properties numbers.
    """
    if data.get("type") != "Feature":
        return f"$.type: {data.get('type')!r} is not 'Feature'"
    if not isinstance(data.get("id"), str) or not data["id"]:
        return f"$.id: {data.get('id')!r} is not an item id"
    props = data.get("properties")
    if not isinstance(props, dict):
        return "$.properties: missing or not an object"
    if props.get("datetime") is None:
        if not (
            isinstance(props.get("start_datetime"), str)
            and isinstance(props.get("end_datetime"), str)
        ):
            return "$.properties.datetime: missing (null needs start_datetime and end_datetime)"
    elif not isinstance(props["datetime"], str):
        return f"$.properties.datetime: {props['datetime']!r} is not an RFC 3339 string"
    bbox = data.get("bbox")
    if bbox is not None and not (
        isinstance(bbox, list) and len(bbox) in (4, 6) and all(_number(v) for v in bbox)
    ):
        return f"$.bbox: {bbox!r} is not a list of 4 (or 6) numbers"
    for key in _NUMBERS:
        if key in props and props[key] is not None and not _number(props[key]):
            return f"$.properties.{key}: {props[key]!r} is not a number"
    assets = data.get("assets", {})
    if not isinstance(assets, dict):
        return "$.assets: not an object"
    for key, asset in assets.items():
        if not isinstance(asset, dict) or not isinstance(asset.get("href"), str):
            return f"$.assets.{key}: not an object with an href string"
    return None


def item_from_dict(data: dict[str, Any], href: str) -> pystac.Item:
    """A pystac Item from its dict, or a :class:`CatalogError` naming the file and the field."""
    problem = item_problem(data)
    if problem is None:
        try:
            return pystac.Item.from_dict(data, href=href, preserve_dict=False)
        except (
            KeyError, TypeError, ValueError, AttributeError, pystac.STACError,
            pystac.errors.STACTypeError,
        ) as err:  # fmt: skip
            problem = f"$: {type(err).__name__}: {err}"
    raise CatalogError(f"{href}: not a usable STAC item: {problem}; fix or re-create the item")


def read_item(href: str | os.PathLike[str]) -> pystac.Item:
    """One STAC item from a local JSON file (or a URL), checked by :func:`item_problem`."""
    text = str(href)
    if "://" in text and not text.startswith("file://"):
        try:
            data = pystac.StacIO.default().read_json(text)
        except Exception as err:  # network and parse errors of any HTTP stack
            raise CatalogError(f"{text}: cannot read STAC item ({err})") from None
        return item_from_dict(data, text)
    path = Path(text.removeprefix("file://"))
    return item_from_dict(read_json(path), str(path.resolve()))


def read_items(path: str | os.PathLike[str]) -> Iterator[pystac.Item]:
    """Every item under a catalog, collection or item JSON (or a folder holding one)."""
    stac_file = find_stac_file(path)
    data = read_json(stac_file)
    kind = data.get("type")
    if kind == "Feature":
        yield item_from_dict(data, str(stac_file.resolve()))
        return
    if kind not in ("Catalog", "Collection"):
        raise CatalogError(f"{stac_file}: type {kind!r} is not a STAC Catalog, Collection or item")
    for link in data.get("links", []):
        target = stac_file.parent / link.get("href", "")
        if link.get("rel") == "item":
            yield from read_items(target)
        elif link.get("rel") == "child":
            yield from read_items(target)

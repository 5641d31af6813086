"""From a workflow to units of work: find the input items and group them.

Each scene is a unit; with a ``composite`` step each (collection, period) is a unit. A unit
carries everything a worker needs (item JSON hrefs, workflow, parameters) and a signature of
its inputs (asset checksums), so a re-run can tell whether its products are still current.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pystac

from eo_pipeline.catalogs.store import read_item
from eo_pipeline.errors import WorkflowError
from eo_pipeline.workflows.spec import Workflow

__all__ = ["Plan", "Unit", "find_items", "inapplicable", "plan", "plan_units"]


@dataclass(frozen=True)
class Unit:
    """One independent unit of work: a scene, or a composite period of one collection."""

    key: str
    """Unique, filesystem-safe name (item id, ``<collection>_<period>`` or, when a period has
    several places, ``<collection>_<period>_<site>``)."""
    collection: str
    """Collection of the input items."""
    item_hrefs: tuple[str, ...]
    """Absolute hrefs of the input item JSON files (or API item URLs)."""
    item_ids: tuple[str, ...]
    period: str | None
    """Composite period label (``2026-05``) or ``None`` for a scene unit."""
    inputs_signature: str
    """sha256 over the input items' ids and asset checksums."""
    site: str | None = None
    """Place label of a composite when its period has several places (``N48.12E066.30``)."""

    def __dask_tokenize__(self) -> object:
        return ("eo_pipeline.Unit", self.key, self.inputs_signature)


@dataclass(frozen=True)
class Plan:
    """The units of a run, and the selected items left out with the reason."""

    units: tuple[Unit, ...]
    excluded: tuple[tuple[str, str], ...] = ()
    """``(item id, why)`` for selected items the steps cannot apply to."""


def _item_signature(item: pystac.Item) -> dict[str, Any]:
    assets = {
        k: a.extra_fields.get("file:checksum") or a.href
        for k, a in sorted(item.assets.items())
        if "data" in (a.roles or []) or "cloud" in (a.roles or [])
    }
    return {"id": item.id, "assets": assets}


def _bound(text: str, end: bool) -> dt.datetime:
    """An RFC 3339 interval end; a date alone is its whole UTC day; naive means UTC."""
    when = pystac.utils.str_to_datetime(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if end and len(text.strip()) == 10:  # YYYY-MM-DD: up to the end of that day
        when = when + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    return when


def _in_range(item: pystac.Item, interval: str | None) -> bool:
    if not interval:
        return True
    when = item.datetime or pystac.utils.str_to_datetime(item.properties["start_datetime"])
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    parts = interval.split("/")
    try:
        start = None if parts[0] in ("", "..") else _bound(parts[0], end=False)
        last = parts[-1] if len(parts) >= 2 else parts[0]
        end = None if last in ("", "..") else _bound(last, end=True)
    except ValueError as err:
        raise WorkflowError(f"inputs.datetime: {interval!r} is not RFC 3339 ({err})") from None
    if len(parts) == 1 and len(parts[0].strip()) != 10:
        return when == start
    return (start is None or when >= start) and (end is None or when <= end)


def _lon_ranges(w: float, e: float) -> list[tuple[float, float]]:
    """A bbox's longitudes as ranges that do not cross the antimeridian."""
    return [(w, e)] if w <= e else [(w, 180.0), (-180.0, e)]


def _boxes_meet(a: Sequence[float], b: Sequence[float]) -> bool:
    """Two ``(w, s, e, n)`` boxes overlap (either may cross the antimeridian)."""
    if a[1] > b[3] or b[1] > a[3]:
        return False
    return any(
        lo1 <= hi2 and lo2 <= hi1
        for lo1, hi1 in _lon_ranges(a[0], a[2])
        for lo2, hi2 in _lon_ranges(b[0], b[2])
    )


def _intersects(item: pystac.Item, bbox: Sequence[float] | None) -> bool:
    if bbox is None or item.bbox is None:
        return True
    return _boxes_meet(item.bbox, bbox)


def find_items(wf: Workflow) -> list[pystac.Item]:
    """The input items a workflow selects, sorted by collection and time."""
    inp = wf.inputs
    if inp.stac_api:
        import pystac_client

        try:
            client = pystac_client.Client.open(inp.stac_api)
            search = client.search(
                collections=list(inp.collections) or None,
                bbox=list(inp.bbox) if inp.bbox else None,
                datetime=inp.datetime,
                ids=list(inp.ids) or None,
                query={"eo:cloud_cover": {"lte": inp.max_cloud_cover}}
                if inp.max_cloud_cover is not None
                else None,
                filter=inp.filter,
                filter_lang=None
                if inp.filter is None
                else "cql2-json"
                if inp.filter.lstrip().startswith("{")
                else "cql2-text",
            )
            items: Iterable[pystac.Item] = list(search.items())
        except Exception as err:  # pystac-client raises several unrelated types
            raise WorkflowError(
                f"{wf.source}: STAC API search at {inp.stac_api} failed: {err}"
            ) from err
    else:
        path = wf.resolve(str(inp.catalog))
        if path.is_dir():
            path = path / "catalog.json"
        if not path.exists():
            raise WorkflowError(
                f"{wf.source}: inputs.catalog: {path} does not exist; simulate or ingest scenes first"
            )
        if path.name == "catalog.json":  # a static catalog: its index reads only the matches
            return _indexed_items(path, inp)
        from eo_pipeline.catalogs.geoparquet import is_geoparquet, read_geoparquet

        if is_geoparquet(path):
            items = read_geoparquet(path)
        else:
            from eo_pipeline.catalogs.store import read_items

            items = list(read_items(path))  # each item checked: a broken one is named
        items = _filtered(list(items), inp.filter)
    chosen = [it for it in items if _selected(it, inp)]
    return sorted(
        chosen, key=lambda it: (it.collection_id or "", it.datetime or dt.datetime.min, it.id)
    )


def _filtered(items: list[pystac.Item], cql2: str | None) -> list[pystac.Item]:
    """Items (not from an indexed catalog) that pass ``inputs.filter``, evaluated by the
    catalog index's SQL (:func:`eo_pipeline.catalogs.index.filter_items`)."""
    if cql2 is None:
        return items
    from eo_pipeline.catalogs.index_rows import filter_items

    keep = filter_items([it.to_dict(include_self_link=False) for it in items], cql2)
    return [it for it, ok in zip(items, keep, strict=True) if ok]


def _selected(it: pystac.Item, inp: Any) -> bool:
    """Whether an item passes a workflow's ``inputs`` selection."""
    return (
        (not inp.collections or it.collection_id in inp.collections)
        and (not inp.ids or it.id in inp.ids)
        and _intersects(it, inp.bbox)
        and _in_range(it, inp.datetime)
        and (
            inp.max_cloud_cover is None
            or it.properties.get("eo:cloud_cover") is None
            or it.properties["eo:cloud_cover"] <= inp.max_cloud_cover
        )
    )


def _indexed_items(path: Any, inp: Any) -> list[pystac.Item]:
    """Planning through the catalog index: only the matching items' JSON is read."""
    from eo_pipeline.catalogs.index import CatalogIndex, IndexQuery

    query = IndexQuery(
        collections=tuple(inp.collections),
        ids=tuple(inp.ids),
        bbox=tuple(inp.bbox) if inp.bbox else None,
        datetime=inp.datetime,
        max_cloud_cover=inp.max_cloud_cover,
        filter=inp.filter,
    )
    items = [read_item(f) for f in CatalogIndex.open(path).search(query)]
    # the index matches on bboxes and intervals; the exact tests are the same as a walk's
    return [it for it in items if _selected(it, inp)]


def _period_label(when: dt.datetime, period: str) -> str:
    import pandas as pd

    ts = pd.Timestamp(when)
    ts = (ts.tz_convert(None) if ts.tzinfo else ts).normalize()
    try:
        offset = pd.tseries.frequencies.to_offset(period)
    except ValueError as err:
        raise WorkflowError(
            f"composite.period: {period!r} is not a pandas frequency like 1MS, 1W, 1D: {err}"
        ) from None
    # the start of the period holding ``when`` (what pandas' resample labels it by)
    return f"{offset.rollback(ts):%Y-%m-%d}"


def check_steps(wf: Workflow, items: Sequence[pystac.Item]) -> None:
    """Fail before any work when a step asks for what the input sensors cannot give.

    Index names must be indices the sensor's bands support (custom formulas are parsed);
    pansharpening needs a sensor with a pan band. Errors name the workflow file and line.
    """
    from eo_pipeline.catalogs import sensors
    from eo_pipeline.steps.indices import available_indices

    firsts = {str(it.properties.get("eo_pipeline:sensor") or ""): it for it in items}
    istep, ps = wf.step("indices"), wf.step("pansharpen")
    for name in sorted(firsts):
        try:
            sensor = sensors.from_properties(firsts[name].properties, f"item {firsts[name].id}")
        except KeyError:
            raise WorkflowError(
                f"{wf.source}: input items name sensor {name!r}, which no sensor file defines"
            ) from None
        if istep is not None:
            given = istep.params.get("constants", {})
            supported = set(available_indices(sensor, constants=given))
            for index in istep.params.get("names", []):
                if index not in supported:
                    _missing_constant(wf, istep, sensor, index)
                    import difflib

                    close = difflib.get_close_matches(index, supported, n=3)
                    hint = f"; did you mean {', '.join(close)}?" if close else ""
                    raise WorkflowError(
                        f"{wf.source}:{istep.line}: indices: {index!r} is not an index sensor "
                        f"{sensor.name} supports (its bands: "
                        f"{', '.join(str(b.common_name or b.id) for b in sensor.bands)}){hint}"
                    )
        if istep is not None:
            _check_optional(wf, istep)
        if ps is not None and not any(b.common_name == "pan" for b in sensor.bands):
            raise WorkflowError(
                f"{wf.source}:{ps.line}: pansharpen: sensor {sensor.name} has no pan band; "
                "select its items out with inputs.collections"
            )
    if istep is not None and istep.params.get("formulas"):
        from eo_pipeline.kernels.formula import parse_formula

        for key, formula in istep.params["formulas"].items():
            try:
                parse_formula(str(formula))
            except ValueError as err:
                raise WorkflowError(
                    f"{wf.source}:{istep.line}: indices.formulas.{key}: {err}"
                ) from None


def _check_optional(wf: Workflow, istep: Any) -> None:
    """``indices.optional`` names must be indices of the catalogue (a misspelt one would be
    skipped on every sensor without a word)."""
    from eo_pipeline.errors import UnknownIndexError
    from eo_pipeline.steps.indices import get_index

    for index in istep.params.get("optional", []):
        try:
            get_index(index)
        except UnknownIndexError as err:
            raise WorkflowError(
                f"{wf.source}:{istep.line}: indices.optional: {err.args[0]}"
            ) from None


def inapplicable(wf: Workflow, item: pystac.Item) -> str | None:
    """Why the workflow's steps cannot run on ``item`` (``None`` when they can).

    The calibrate step's target must fit the product: ``toa_reflectance``/``radiance`` need
    L1 DN (an L2 product's bands declare ``sr_scale``, the same test
    :func:`eo_pipeline.steps.calibration` makes); ``surface_reflectance`` takes an L2 product
    (scaled) or L1 DN whose sensor has a 6S lookup table (atmospheric correction).
    """
    step = wf.step("calibrate")
    if step is None:
        return None
    to = str(step.params.get("to", "toa_reflectance"))
    cals: list[dict[str, Any]] = [
        c
        for a in item.assets.values()
        if isinstance(c := a.extra_fields.get("eo_pipeline:calibration"), dict)
    ]
    if not cals:
        return None
    level = item.properties.get("processing:level") or "unknown level"
    if any("sr_scale" in c for c in cals):
        if to != "surface_reflectance":
            return (
                f"an L2 surface-reflectance product ({level}): calibrate to {to} does not apply "
                "(use to: surface_reflectance, or leave its collection out of inputs.collections)"
            )
    elif to == "surface_reflectance":
        return _no_lut(item, step.params.get("atmosphere"), level)
    return None


def _no_lut(item: pystac.Item, atmosphere: Any, level: str) -> str | None:
    """Why Level-1 ``item`` cannot be corrected to surface reflectance: no 6S lookup table
    for its sensor (or the workflow's ``atmosphere.lut``), or not the aerosol model asked."""
    from eo_pipeline.atmosphere.lut import load_lut
    from eo_pipeline.errors import AtmosphereError

    opts = atmosphere if isinstance(atmosphere, dict) else {}
    sensor = str(item.properties.get("eo_pipeline:sensor") or "")
    try:
        lut = load_lut(str(opts.get("lut") or sensor))
    except AtmosphereError as err:
        return f"a Level-1 product ({level}) with no atmospheric correction available: {err}"
    model = str(opts.get("model", opts.get("aerosol_model", "continental")))
    if model not in lut.grid.models:
        return (
            f"the lookup table {lut.source} has no aerosol model {model!r} (it has "
            f"{', '.join(lut.grid.models)}); rebuild it with `eo-pipeline atmosphere build-lut "
            f"--sensor {sensor}` or choose one of those"
        )
    return None


def _sites(items: Sequence[pystac.Item]) -> list[list[pystac.Item]]:
    """Items grouped by place: connected components of overlapping bounding boxes.

    A composite is taken per place; scenes of one period that do not overlap (a day of the
    constellation over a whole country) are separate composites, never one mosaic spanning
    the gaps between them.
    """
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(items):
        for j in range(i + 1, len(items)):
            if _intersects(items[j], a.bbox):
                parent[root(j)] = root(i)
    groups: dict[int, list[pystac.Item]] = defaultdict(list)
    for i, it in enumerate(items):
        groups[root(i)].append(it)
    return list(groups.values())


def _lon_extent(boxes: Sequence[Sequence[float]]) -> tuple[float, float]:
    """``(west, width)`` in degrees of the narrowest longitude range holding every box
    (boxes may cross the antimeridian: ``west > east``)."""
    import numpy as np

    west = np.array([b[0] for b in boxes], dtype=np.float64)
    span = np.array([(b[2] - b[0]) % 360.0 for b in boxes], dtype=np.float64)
    # the range starts at some box's western edge: try each (a revisited tile repeats its
    # edge: candidates once each), keep the narrowest
    starts = np.unique(west)
    widths = np.array([((west - w) % 360.0 + span).max() for w in starts])
    best = int(np.argmin(widths))
    return float(starts[best]), float(min(widths[best], 360.0))


def _composite_gpix(items: Sequence[pystac.Item]) -> float:
    """Gigapixels per band of the grid covering the items' footprints at the finest
    non-pan band resolution (0 when footprints or resolutions are unknown)."""
    import math

    from eo_pipeline.catalogs import sensors

    boxes = [it.bbox for it in items if it.bbox is not None]
    try:
        sensor = sensors.from_properties(items[0].properties, f"item {items[0].id}")
        gsd = min(b.gsd for b in sensor.bands if b.common_name != "pan" and b.gsd)
    except (KeyError, ValueError):
        gsd = float(items[0].properties.get("gsd") or 0.0)
    if not boxes or not gsd:
        return 0.0
    south, north = min(b[1] for b in boxes), max(b[3] for b in boxes)
    metres = 111_320.0
    height = (north - south) * metres
    width = _lon_extent(boxes)[1] * metres * math.cos(math.radians((north + south) / 2))
    return (width / gsd) * (height / gsd) / 1e9


def _site_label(items: Sequence[pystac.Item]) -> str:
    """``N48.12E066.30``: the centre of the items' bounding boxes, for unit names."""
    boxes = [it.bbox for it in items if it.bbox is not None]
    if not boxes:
        return items[0].id
    west, width = _lon_extent(boxes)
    lon = (west + width / 2 + 180.0) % 360.0 - 180.0
    lat = (min(b[1] for b in boxes) + max(b[3] for b in boxes)) / 2
    return f"{'N' if lat >= 0 else 'S'}{abs(lat):05.2f}{'E' if lon >= 0 else 'W'}{abs(lon):06.2f}"


def plan_units(wf: Workflow, items: Sequence[pystac.Item] | None = None) -> list[Unit]:
    """Group the selected items into units (after :func:`check_steps`); see :func:`plan`."""
    return list(plan(wf, items).units)


def plan(wf: Workflow, items: Sequence[pystac.Item] | None = None) -> Plan:
    """The units of a run and the selected items left out (:func:`inapplicable`).

    Items the steps cannot apply to (an L2 surface-reflectance scene in a catalog given to
    a TOA workflow) are left out with their reason instead of failing their unit after
    every retry; when nothing is left, or nothing matched, it is an error.
    """
    items = find_items(wf) if items is None else list(items)
    if not items:
        raise WorkflowError(
            f"{wf.source}: no input items match (catalog={wf.inputs.catalog or wf.inputs.stac_api}, "
            f"collections={list(wf.inputs.collections)}, bbox={wf.inputs.bbox}, "
            f"datetime={wf.inputs.datetime}); nothing to do"
        )
    excluded: list[tuple[str, str]] = []
    kept = []
    for it in items:  # by identity: the same id may exist in another collection
        why = inapplicable(wf, it)
        if why is None:
            kept.append(it)
        else:
            excluded.append((_name(it), why))
    if not kept:
        step = wf.step("calibrate")
        where = f"{wf.source}:{step.line}" if step is not None else wf.source
        raise WorkflowError(
            f"{where}: calibrate cannot apply to any selected item: {_few(excluded)}"
        )
    items = kept
    check_steps(wf, items)
    comp = wf.step("composite")
    groups: dict[tuple[str, str | None], list[pystac.Item]] = defaultdict(list)
    for it in items:
        coll = it.collection_id or "items"
        if comp is None:
            groups[(coll, it.id)].append(it)
        else:
            period = str(comp.params.get("period", "1MS"))
            groups[(coll, _period_label(it.datetime or dt.datetime.min, period))].append(it)
    units = []
    for (coll, label), members in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        sites = [members]
        if comp is not None:
            sites = []
            for site in _sites(members):
                if len({m.datetime for m in site}) < 2:
                    why = (
                        f"the only date of {coll} over this place in the period {label} "
                        "(a composite needs two or more dates of the same place)"
                    )
                elif (size := _composite_gpix(site)) > wf.resources.max_composite_gpix:
                    why = (
                        f"the composite of {coll} over this place in {label} would be a grid of "
                        f"{size:.1f} gigapixels per band (its {len(site)} scenes' footprints "
                        f"overlap in a chain), above resources.max_composite_gpix = "
                        f"{wf.resources.max_composite_gpix:g}; restrict inputs.bbox or raise it"
                    )
                else:
                    sites.append(site)
                    continue
                excluded += [(_name(m), why) for m in site]
        for site in sites:
            place = _site_label(site) if len(sites) > 1 else None
            key = label if comp is None else f"{coll}_{label}" + (f"_{place}" if place else "")
            signature = hashlib.sha256(
                json.dumps([_item_signature(m) for m in site], sort_keys=True).encode()
            ).hexdigest()
            units.append(
                Unit(
                    key=str(key).replace("/", "_"),
                    collection=coll,
                    item_hrefs=tuple(m.get_self_href() or "" for m in site),
                    item_ids=tuple(m.id for m in site),
                    period=None if comp is None else label,
                    inputs_signature=signature,
                    site=place,
                )
            )
    if not units:
        raise WorkflowError(f"{wf.source}: nothing left to run: {_few(excluded)}")
    return Plan(_unique_keys(units), tuple(excluded))


def _name(item: pystac.Item) -> str:
    return f"{item.collection_id}/{item.id}" if item.collection_id else item.id


def _few(excluded: Sequence[tuple[str, str]]) -> str:
    """The reasons, each once, with how many items it left out."""
    counts: dict[str, list[str]] = defaultdict(list)
    for name, why in excluded:
        counts[why].append(name)
    return "; ".join(
        f"{names[0]}{f' and {len(names) - 1} more' if len(names) > 1 else ''}: {why}"
        for why, names in counts.items()
    )


def _unique_keys(units: list[Unit]) -> tuple[Unit, ...]:
    """Units whose keys collide (two places with one label) get a short hash of their items."""
    seen: dict[str, int] = defaultdict(int)
    for u in units:
        seen[u.key] += 1
    out = []
    for u in units:
        if seen[u.key] > 1:
            tag = hashlib.sha256("|".join(sorted(u.item_ids)).encode()).hexdigest()[:6]
            u = replace(u, key=f"{u.key}-{tag}", site=f"{u.site or 'site'}-{tag}")
        out.append(u)
    return tuple(out)


def _missing_constant(wf: Workflow, istep: Any, sensor: Any, index: str) -> None:
    """Raise the error naming the constant(s) an index lacks (NIRvP needs PAR), if that is why."""
    from eo_pipeline.steps.index_catalog import catalog

    cat = catalog()
    d = cat.indices.get(index)
    if d is None:
        return
    lacking = [c for c in d.constants if cat.constants[c].default is None]
    lacking = [c for c in lacking if not c.startswith("lambda")]
    lacking = [c for c in lacking if c not in istep.params.get("constants", {})]
    from eo_pipeline.steps.indices import available_indices

    if lacking and index in available_indices(sensor, constants=lacking):
        raise WorkflowError(
            f"{wf.source}:{istep.line}: indices: {index!r} needs constant(s) "
            f"{', '.join(f'{c} ({cat.constants[c].description})' for c in lacking)}, which have "
            f"no default; add them to the step, e.g. constants: {{{lacking[0]}: <number>}}"
        )

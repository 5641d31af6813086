"""Workflow files: YAML parsed into frozen dataclasses, validated with errors naming the line.

A workflow says which items (a static catalog or a STAC API search), which steps, how products
are named and where they go, and the resources a run may use::

    name: toa-indices
    inputs:
      catalog: demo-output/catalog/catalog.json     # or: stac_api: https://host/stac
      collections: [kazeosat2-l1]
      bbox: [50, 40, 90, 56]
      datetime: 2026-01-01/2026-12-31
      max_cloud_cover: 60
      filter: "view:off_nadir < 15"                # optional: CQL2, as the export API takes
    steps:
      - calibrate: {to: toa_reflectance}
      - mask: {}                  # products NaN where nodata/cloud/shadow/cirrus/saturated
      - indices: {names: [NDVI, NDWI, EVI]}
      - composite: {method: median, period: 1MS}     # optional: composites by period
    output:
      catalog: demo-output/products
      naming: "{collection}_{unit}_{product}"
      reflectance: int16          # or float32
      indices: int16              # or float32
      quicklook: true
    resources:
      chunk_size: 1024
      retries: 2
      max_composite_gpix: 2       # composites larger than this (per band) are left out
    sensors: [sensors/kazsat7.yaml]   # optional: sensor files the inputs need (relative paths
                                      # resolve against the current directory); shipped to workers

Each scene (no composite step) or each composite period (with one) is a *unit* of work.

Examples
--------
>>> spec = parse_workflow('''
... name: demo
... inputs: {catalog: cat/catalog.json}
... steps: [{calibrate: {}}, {indices: {names: [NDVI]}}]
... output: {catalog: out}
... ''')
>>> [s.name for s in spec.steps]
['calibrate', 'indices']
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from eo_pipeline.errors import WorkflowError
from eo_pipeline.workflows import step_kinds  # noqa: F401  (registers the built-in step kinds)
from eo_pipeline.workflows.registry import STEP_KINDS, STEPS

__all__ = [
    "STEPS",
    "Inputs",
    "Output",
    "Resources",
    "Step",
    "Workflow",
    "builtin_workflows",
    "load_workflow",
    "parse_workflow",
    "read_text",
]


@dataclass(frozen=True)
class Step:
    """One processing step."""

    name: str
    """One of :data:`STEPS`."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Its parameters, validated against :data:`STEPS`."""
    line: int = 0
    """Line of the step in the workflow file (for messages)."""


@dataclass(frozen=True)
class Inputs:
    """Which items a run processes."""

    catalog: str | None = None
    """A static catalog (path to catalog.json or its folder); a relative path resolves
    against the current directory (see :attr:`Workflow.root`)."""
    stac_api: str | None = None
    """Or a STAC API root URL searched with pystac-client."""
    collections: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    datetime: str | None = None
    """RFC 3339 instant or ``start/end`` interval."""
    max_cloud_cover: float | None = None
    """Percent; items with a larger ``eo:cloud_cover`` are left out."""
    ids: tuple[str, ...] = ()
    filter: str | None = None
    """A CQL2 filter (text, or CQL2-JSON as text) over the queryables the export API has
    (:mod:`eo_pipeline.catalogs.queryables`), e.g. ``"view:off_nadir < 15"``."""


@dataclass(frozen=True)
class Output:
    """Where and how products are written."""

    catalog: str
    """Output catalog folder; a relative path resolves against the current directory."""
    naming: str = "{collection}_{unit}_{product}"
    """Product file stem; fields: collection, unit (item id or period), product."""
    reflectance: str = "int16"
    """``int16`` (scaled, ``raster:scale`` declared, half the size) or ``float32``."""
    indices: str = "int16"
    """``int16`` (scaled by 1e-4 as USGS delivers its spectral indices; an index whose valid
    range is unknown or beyond +-3.2767 is written float32 anyway) or ``float32``."""
    compress: str = "deflate"
    """``deflate`` or ``zstd``."""
    quicklook: bool = True
    """Write a PNG quicklook, a thumbnail and index maps as assets."""


@dataclass(frozen=True)
class Resources:
    """What a run may use."""

    chunk_size: int = 1024
    """Spatial chunk edge in pixels (a multiple of the COG tile size 512 is best)."""
    retries: int = 2
    """Times a failing unit is retried before it is reported as failed."""
    workers: int | None = None
    """LocalCluster worker processes (default: sized to the machine)."""
    max_composite_gpix: float = 2.0
    """Largest composite grid, in gigapixels per band (the union of its scenes' footprints at
    the sensor's resolution); a larger place is left out with the reason, not started."""


@dataclass(frozen=True)
class Workflow:
    """A validated workflow."""

    name: str
    inputs: Inputs
    steps: tuple[Step, ...]
    output: Output
    resources: Resources = field(default_factory=Resources)
    description: str = ""
    source: str = "<string>"
    """The file it was read from (for messages)."""
    root: str | None = None
    """Folder that relative paths resolve against; ``None`` (what :func:`load_workflow`
    gives, for built-in and user files alike) means the current directory at run time, as
    for every path on the command line (``--input``, ``--output``)."""
    sensors: tuple[str, ...] = ()
    """Sensor files (paths as written, see :meth:`resolve`) registered before planning and
    shipped with every task to the dask workers."""

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    @property
    def base_dir(self) -> Path:
        return Path(self.root) if self.root else Path.cwd()

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else (self.base_dir / p)

    def params_hash(self) -> str:
        """Hash of everything that changes products (steps, output format), for resumability."""
        data = {
            "steps": [[s.name, dict(s.params)] for s in self.steps],
            "output": {k: v for k, v in asdict(self.output).items() if k != "catalog"},
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


MAX_BYTES = 1 << 20
"""Largest workflow file read (1 MiB); real workflows are a few hundred bytes."""
MAX_NODES = 20_000
"""Most YAML nodes a workflow may expand to, aliases counted at every use: an alias bomb
(nested anchors, each used many times) fails here in milliseconds instead of expanding to
millions of nodes and gigabytes."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_NAMING_FIELDS = ("collection", "unit", "product")


def _lines(node: yaml.Node, source: str) -> dict[tuple[Any, ...], int]:
    """Map each key path of a composed YAML document to its 1-based line (bounded size)."""
    out: dict[tuple[Any, ...], int] = {}
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(node, ())]
    count = 0
    while stack:
        node, path = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise WorkflowError(
                f"{source}:{node.start_mark.line + 1}: the document expands to more than "
                f"{MAX_NODES} YAML nodes (aliases counted where used); a workflow is small - "
                "remove the anchors/aliases (*name) that repeat whole sections"
            )
        out.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value
                out[(*path, k)] = key.start_mark.line + 1
                stack.append((value, (*path, k)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((value, (*path, i)) for i, value in enumerate(node.value))
    return out


class _Ctx:
    def __init__(self, source: str, lines: dict[tuple[Any, ...], int]) -> None:
        self.source, self.lines = source, lines

    def fail(self, path: tuple[Any, ...], message: str) -> WorkflowError:
        p = path
        while p and p not in self.lines:
            p = p[:-1]
        line = self.lines.get(p, 1)
        where = ".".join(str(x) for x in path) or "top level"
        return WorkflowError(f"{self.source}:{line}: {where}: {message}")

    def mapping(self, raw: Any, path: tuple[Any, ...], allowed: set[str]) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            raise self.fail(path, f"must be a mapping, got {type(raw).__name__}")
        unknown = set(raw) - allowed
        if unknown:
            raise self.fail(
                (*path, sorted(map(str, unknown))[0]),
                f"unknown key(s) {sorted(map(str, unknown))}; allowed: {sorted(allowed)}",
            )
        return dict(raw)


def _step(ctx: _Ctx, raw: Any, i: int) -> Step:
    path: tuple[Any, ...] = ("steps", i)
    if isinstance(raw, str):
        raw = {raw: {}}
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ctx.fail(path, "each step is a one-key mapping like `- indices: {names: [NDVI]}`")
    ((name, params),) = raw.items()
    if name not in STEPS:
        import difflib

        close = difflib.get_close_matches(str(name), STEPS, n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ctx.fail(path, f"unknown step {name!r}{hint}; steps are {', '.join(STEPS)}")
    params = ctx.mapping(params, (*path, name), set(STEPS[name]))
    for key, value in params.items():
        if not isinstance(value, STEPS[name][key]) or isinstance(value, bool) != (
            STEPS[name][key] == (bool,)
        ):
            raise ctx.fail(
                (*path, name, key), f"expected {STEPS[name][key][0].__name__}, got {value!r}"
            )
    for key, allowed in STEP_KINDS[name].choices.items():
        if key in params and params[key] not in allowed:
            raise ctx.fail(
                (*path, name, key), f"{params[key]!r} is not one of {', '.join(allowed)}"
            )
    if name == "mask":
        _mask_params(ctx, params, path)
    if name == "calibrate" and "atmosphere" in params:
        _atmosphere_params(ctx, params, path)
    if name == "indices":
        names = params.get("names", [])
        for key in ("names", "optional"):
            if not all(isinstance(n, str) for n in params.get(key, [])):
                raise ctx.fail((*path, name, key), "index names must be strings")
        if not names and not params.get("formulas") and not params.get("optional"):
            raise ctx.fail((*path, name), "give `names: [...]` and/or `formulas: {NAME: formula}`")
    return Step(name=str(name), params=params, line=ctx.lines.get(path, 0))


def _filter(ctx: _Ctx, raw: Any) -> str:
    """``inputs.filter``: CQL2 text or a CQL2-JSON mapping, checked against the queryables
    now (an unknown property fails here with the line, not after planning)."""
    import json

    from eo_pipeline.catalogs.cql2_sql import cql2_to_sql, parse_cql2
    from eo_pipeline.catalogs.index_rows import QUERYABLES
    from eo_pipeline.errors import FilterError

    if not isinstance(raw, str | Mapping):
        raise ctx.fail(
            ("inputs", "filter"), f"must be CQL2 text or a CQL2-JSON mapping, got {raw!r}"
        )
    try:
        cql2_to_sql(parse_cql2(raw if isinstance(raw, str) else dict(raw)), QUERYABLES)
    except FilterError as err:
        raise ctx.fail(("inputs", "filter"), str(err)) from None
    return raw if isinstance(raw, str) else json.dumps(raw)


def _atmosphere_params(ctx: _Ctx, params: Mapping[str, Any], path: tuple[Any, ...]) -> None:
    """``calibrate: {to: surface_reflectance, atmosphere: {...}}``: the options of
    :class:`~eo_pipeline.atmosphere.options.AtmosphereOptions`; ``aot550`` may also name an
    AOT raster file (opened by the step), ``elevation`` a DEM file."""
    from eo_pipeline.atmosphere.options import AtmosphereOptions
    from eo_pipeline.errors import AtmosphereError

    where = (*path, "calibrate", "atmosphere")
    if params.get("to", "toa_reflectance") != "surface_reflectance":
        raise ctx.fail(where, "atmosphere options apply only with `to: surface_reflectance`")
    raw = params["atmosphere"]
    if not isinstance(raw, Mapping):
        raise ctx.fail(where, f"expected a mapping of atmosphere options, got {raw!r}")
    checked = dict(raw)
    if isinstance(checked.get("aot550"), str):
        checked["aot550"] = None  # a raster file: opened (and checked) by the step
    if isinstance(checked.get("elevation"), str):
        checked["elevation"] = None  # a DEM file: opened (and checked) by the correction
    elif isinstance(checked.get("aot550"), int | float) and not isinstance(checked["aot550"], bool):
        if not 0 <= float(checked["aot550"]) < float("inf"):
            raise ctx.fail((*where, "aot550"), f"{checked['aot550']!r}: expected a number >= 0")
    try:
        AtmosphereOptions.from_dict(checked)
    except AtmosphereError as err:
        key = next((k for k in map(str, raw) if f" {k}" in str(err)), None)
        raise ctx.fail((*where, key) if key else where, str(err)) from None


def _mask_params(ctx: _Ctx, params: Mapping[str, Any], path: tuple[Any, ...]) -> None:
    from eo_pipeline.kernels.masks import MASK_BITS

    flags = [n for _, n, _ in MASK_BITS if n != "clear"]
    exclude = params.get("exclude", [])
    for flag in exclude:
        if flag not in flags:
            raise ctx.fail(
                (*path, "mask", "exclude"),
                f"unknown mask flag {flag!r}; flags are {', '.join(flags)} ([] keeps every pixel)",
            )
    vr = params.get("valid_range")
    if vr is not None and not (
        len(vr) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vr)
        and vr[0] < vr[1]
    ):
        raise ctx.fail(
            (*path, "mask", "valid_range"), "must be [low, high] reflectance, low < high"
        )


def _check_output(ctx: _Ctx, out: dict[str, Any]) -> None:
    """Types of ``output`` and a ``naming`` pattern that always gives one safe file name."""
    if not isinstance(out["catalog"], str) or not out["catalog"]:
        raise ctx.fail(("output", "catalog"), f"must be a folder path, got {out['catalog']!r}")
    if "quicklook" in out and not isinstance(out["quicklook"], bool):
        raise ctx.fail(("output", "quicklook"), f"must be true or false, got {out['quicklook']!r}")
    naming = out.get("naming", Output.naming)
    if not isinstance(naming, str):
        raise ctx.fail(("output", "naming"), f"must be text, got {naming!r}")
    try:
        parts = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(naming)]
    except ValueError as err:
        raise ctx.fail(("output", "naming"), f"{naming!r}: {err}") from None
    if any(spec or conv for f, spec, conv in parts if f is not None):
        raise ctx.fail(("output", "naming"), f"{naming!r}: write fields plainly, e.g. {{unit}}")
    fields = [f for f, _, _ in parts if f is not None]
    bad = [f for f in fields if f not in _NAMING_FIELDS]
    if bad:
        raise ctx.fail(
            ("output", "naming"),
            f"unknown field(s) {{{'}, {'.join(bad)}}} in {naming!r}; fields are "
            + ", ".join(f"{{{f}}}" for f in _NAMING_FIELDS),
        )
    literal = naming.format(**{f: "x" for f in _NAMING_FIELDS})
    if not _NAME.fullmatch(literal) or ".." in literal:
        raise ctx.fail(
            ("output", "naming"),
            f"{naming!r} must give a plain file name (letters, digits, '.', '_', '-'; no '/', "
            "'..' or leading '.'): products stay inside the output catalog",
        )
    if "product" not in fields or "unit" not in fields:
        raise ctx.fail(
            ("output", "naming"),
            f"{naming!r} must contain {{unit}} and {{product}} (names collide)",
        )


def parse_workflow(text: str, source: str = "<string>", root: str | None = None) -> Workflow:
    """Parse and validate workflow YAML text; errors name ``source`` and the line."""
    if len(text) > MAX_BYTES:
        raise WorkflowError(
            f"{source}: {len(text)} characters; a workflow file is at most {MAX_BYTES}"
        )
    try:
        node = yaml.compose(text)
        lines = _lines(node, source) if node is not None else {}  # bounded before constructing
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise WorkflowError(
            f"{source}{line}: not valid YAML: {getattr(err, 'problem', err)}"
        ) from None
    ctx = _Ctx(source, lines)
    top = ctx.mapping(
        raw, (), {"name", "description", "inputs", "steps", "output", "resources", "sensors"}
    )
    for key in ("name", "inputs", "steps", "output"):
        if key not in top:
            raise ctx.fail((), f"missing required key {key!r}")
    if not isinstance(top["name"], str) or not _NAME.fullmatch(top["name"]):
        raise ctx.fail(
            ("name",),
            f"{top['name']!r} is not a workflow name: letters, digits, '.', '_' and '-' "
            "(it names product collections and folders), e.g. toa-indices",
        )
    if not isinstance(top.get("description", ""), str):
        raise ctx.fail(("description",), "must be text")
    inp = ctx.mapping(
        top["inputs"], ("inputs",), {f.name for f in Inputs.__dataclass_fields__.values()}
    )
    if bool(inp.get("catalog")) == bool(inp.get("stac_api")):
        raise ctx.fail(("inputs",), "give exactly one of `catalog: PATH` or `stac_api: URL`")
    bbox = inp.get("bbox")
    if bbox is not None:
        if not (
            isinstance(bbox, list)
            and len(bbox) == 4
            and all(isinstance(v, int | float) for v in bbox)
        ):
            raise ctx.fail(("inputs", "bbox"), "must be [west, south, east, north] in degrees")
        if not (-90 <= bbox[1] <= bbox[3] <= 90):
            raise ctx.fail(("inputs", "bbox"), "south must be <= north, both within [-90, 90]")
    for key in ("collections", "ids"):
        if key in inp and not (
            isinstance(inp[key], list) and all(isinstance(v, str) for v in inp[key])
        ):
            raise ctx.fail(("inputs", key), "must be a list of strings")
    if "datetime" in inp and not isinstance(inp["datetime"], str):
        inp["datetime"] = str(inp["datetime"])
    cloud = inp.get("max_cloud_cover")
    if cloud is not None and (
        isinstance(cloud, bool) or not isinstance(cloud, int | float) or not 0 <= cloud <= 100
    ):
        raise ctx.fail(("inputs", "max_cloud_cover"), f"{cloud!r} is not a percentage (0-100)")
    for key in ("catalog", "stac_api"):
        if inp.get(key) is not None and not isinstance(inp[key], str):
            raise ctx.fail(("inputs", key), f"must be a path or URL, got {inp[key]!r}")
    if inp.get("filter") is not None:
        inp["filter"] = _filter(ctx, inp["filter"])
    inputs = Inputs(
        catalog=inp.get("catalog"),
        stac_api=inp.get("stac_api"),
        collections=tuple(inp.get("collections", ())),
        bbox=(bbox[0], bbox[1], bbox[2], bbox[3]) if bbox else None,
        datetime=inp.get("datetime"),
        max_cloud_cover=inp.get("max_cloud_cover"),
        ids=tuple(inp.get("ids", ())),
        filter=inp.get("filter"),
    )
    if not isinstance(top["steps"], list) or not top["steps"]:
        raise ctx.fail(("steps",), "must be a non-empty list of steps")
    steps = tuple(_step(ctx, s, i) for i, s in enumerate(top["steps"]))
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ctx.fail(("steps",), f"each step may appear once, got {names}")
    if "indices" in names and "calibrate" not in names:
        raise ctx.fail(("steps",), "`indices` needs reflectance: add a `calibrate` step before it")
    out = ctx.mapping(
        top["output"], ("output",), {f.name for f in Output.__dataclass_fields__.values()}
    )
    if "catalog" not in out:
        raise ctx.fail(("output",), "missing required key 'catalog' (the output folder)")
    _check_output(ctx, out)
    for key in ("reflectance", "indices"):
        if out.get(key, "int16") not in ("int16", "float32"):
            raise ctx.fail(("output", key), f"unknown encoding {out[key]!r}: int16 or float32")
    if out.get("compress", "deflate") not in ("deflate", "zstd"):
        raise ctx.fail(("output", "compress"), "must be deflate or zstd")
    res = ctx.mapping(
        top.get("resources"),
        ("resources",),
        {f.name for f in Resources.__dataclass_fields__.values()},
    )
    for key in ("chunk_size", "retries", "workers"):
        value = res.get(key)
        if key not in res or (value is None and key == "workers"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ctx.fail(("resources", key), f"must be a non-negative integer, got {value!r}")
    gpix = res.get("max_composite_gpix", 2.0)
    if isinstance(gpix, bool) or not isinstance(gpix, int | float) or not gpix > 0:
        raise ctx.fail(("resources", "max_composite_gpix"), "must be a positive number")
    if res.get("chunk_size", 1024) < 64:
        raise ctx.fail(("resources", "chunk_size"), "must be at least 64 pixels")
    sensor_files = _sensor_files(ctx, top.get("sensors"), root)
    return Workflow(
        name=str(top["name"]),
        description=str(top.get("description", "")),
        inputs=inputs,
        steps=steps,
        output=Output(**out),
        resources=Resources(**res),
        source=source,
        root=root,
        sensors=sensor_files,
    )


def _sensor_files(ctx: _Ctx, raw: Any, root: str | None) -> tuple[str, ...]:
    """``sensors: [PATH, ...]``: each file must exist and be a valid sensor file."""
    from eo_pipeline.catalogs.sensors import load_file
    from eo_pipeline.errors import SensorFileError

    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ctx.fail(("sensors",), "must be a list of sensor-file paths")
    base = Path(root) if root else Path.cwd()
    for i, value in enumerate(raw):
        path = Path(value) if Path(value).is_absolute() else base / value
        if not path.is_file():
            raise ctx.fail(("sensors", i), f"no sensor file {path}")
        try:
            load_file(path)
        except SensorFileError as err:
            raise ctx.fail(("sensors", i), f"invalid sensor file: {err}") from None
    return tuple(raw)


def read_text(path: Path, what: str) -> str:
    """A small UTF-8 text file, or a :class:`WorkflowError` naming it (size, encoding, access)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as err:
        raise WorkflowError(f"{path}: cannot read {what}: {err.strerror}") from None
    if len(data) > MAX_BYTES:
        raise WorkflowError(f"{path}: larger than {MAX_BYTES} bytes; is it really a {what}?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise WorkflowError(
            f"{path}:{line}: not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start}); "
            f"save the {what} as UTF-8"
        ) from None


def builtin_workflows() -> dict[str, Path]:
    """Built-in workflow name -> file (shipped in ``eo_pipeline/workflows/builtin/``)."""
    folder = resources.files("eo_pipeline.workflows") / "builtin"
    return {Path(str(e)).stem: Path(str(e)) for e in folder.iterdir() if e.name.endswith(".yaml")}


def load_workflow(path_or_name: str | Path, **overrides: Any) -> Workflow:
    """Read a workflow file, or a built-in one by name.

    ``overrides`` replace top-level sections' keys, e.g. ``inputs={"catalog": "x"}``.
    Relative paths resolve against the current directory for every workflow.
    """
    p = Path(path_or_name)
    # relative paths in any workflow, built-in or the user's, resolve against the current
    # directory (not the file's folder): `eo-pipeline run x.yaml` and `run toa-indices` read
    # and write the same places from the same directory
    root: str | None = None
    if not p.exists():
        builtins = builtin_workflows()
        if str(path_or_name) in builtins:
            p = builtins[str(path_or_name)]
        else:
            raise WorkflowError(
                f"{path_or_name}: no such workflow file, and no built-in workflow of that name "
                f"(built-ins: {', '.join(sorted(builtins))})"
            )
    text = read_text(p, "workflow file")
    if overrides:
        raw = yaml.safe_load(text) or {}
        for section, values in overrides.items():
            if isinstance(values, Mapping):
                raw.setdefault(section, {}).update(values)
            else:
                raw[section] = values
        text = yaml.safe_dump(raw, sort_keys=False)
    return parse_workflow(text, str(p), root)

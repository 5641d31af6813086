"""Validate STAC catalogs, collections and items offline against the official JSON schemas.

Where the schemas come from (no network when they are on disk):

- core STAC schemas (item, catalog, collection, GeoJSON): pystac's bundled copies (STAC
  1.1.0), and ``<schemas>/stac-spec/v1.0.0`` for STAC 1.0.0 objects;
- extension schemas: ``<schemas>/<extension>/<version>/schema.json`` where ``<schemas>`` is
  ``$EO_PIPELINE_STAC_SCHEMAS``, else ``<repo>/../shared/stac-schemas`` (``<repo>`` = the
  folder holding the ``eo_pipeline`` package), else ``../shared/stac-schemas`` from the
  current directory. A schema found in none of them is fetched over the network.

Beyond the schemas, :func:`validate` checks what schemas cannot: every relative link
resolves to a file, every local asset file exists and has its declared ``file:size``; with
``check_assets=True`` also that ``file:checksum`` matches the bytes.

Examples
--------
>>> from eo_pipeline.catalogs.validation import validate
>>> report = validate("demo-output/catalog")  # doctest: +SKIP
>>> print(report)  # doctest: +SKIP
valid: 1 Catalog, 1 Collection, 1 Item under demo-output/catalog/catalog.json ...
"""

from __future__ import annotations

import functools
import json
import os
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from eo_pipeline.catalogs.checksum import verify_checksum
from eo_pipeline.catalogs.hrefs import FIX, escape, is_reference, vrt_escape
from eo_pipeline.catalogs.jp2 import file_problem, jp2_problem
from eo_pipeline.errors import StacValidationError

__all__ = ["ValidationReport", "schemas_dir", "validate"]

_EXT_URL = "https://stac-extensions.github.io/{ext}/{version}/schema.json"
_CORE_URL = "https://schemas.stacspec.org/{version}/{kind}-spec/json-schema/{name}.json"
_CORE_KIND = {"Feature": "item", "Catalog": "catalog", "Collection": "collection"}
_LINK_RELS = {"root", "parent", "child", "item", "collection"}


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`validate` checked (it raises on the first invalid object)."""

    path: Path
    """The STAC file validation started from."""
    counts: Mapping[str, int]
    """Objects validated per STAC type (``Catalog``, ``Collection``, ``Item``)."""
    schemas: tuple[str, ...]
    """Every schema URI used (core and extensions)."""
    files: tuple[Path, ...] = ()
    """Every STAC JSON file validated."""
    assets_checked: int = 0
    """Local asset files found (and sized) on disk."""
    checksums_verified: int = 0
    """Asset files whose ``file:checksum`` was recomputed and matched."""
    schema_source: str = ""
    """Where extension schemas were read from."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        exts = sorted(
            {
                s.split("/")[3] + "/" + s.split("/")[4]
                for s in self.schemas
                if "stac-extensions" in s
            }
        )
        lines = [
            f"valid: {kinds} under {self.path}",
            f"  schemas: STAC core + {', '.join(exts) or 'no extensions'} (from {self.schema_source})",
            f"  asset files present: {self.assets_checked}; checksums verified: {self.checksums_verified}",
        ]
        return "\n".join(lines)


def schemas_dir() -> Path | None:
    """The folder of local STAC schemas, or ``None`` when none exists (see module docstring)."""
    env = os.environ.get("EO_PIPELINE_STAC_SCHEMAS")
    candidates = [Path(env)] if env else []
    repo = Path(__file__).resolve().parents[2]
    candidates += [
        repo.parent / "shared" / "stac-schemas",
        Path.cwd().parent / "shared" / "stac-schemas",
    ]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def _pystac_schema(rel: str) -> dict[str, Any]:
    text = (
        resources.files("pystac.validation.jsonschemas").joinpath(rel).read_text(encoding="utf-8")
    )
    return dict(json.loads(text))


@functools.cache
def _local_resources(root: str | None) -> dict[str, dict[str, Any]]:
    """URI -> schema for every schema on disk (pystac's core copies and ``root``)."""
    found: dict[str, dict[str, Any]] = {}
    core = resources.files("pystac.validation.jsonschemas").joinpath("stac-spec")
    for vdir in core.iterdir():
        for f in vdir.iterdir():
            if not f.name.endswith(".json"):
                continue
            name = f.name[:-5]
            kind = name if name in ("catalog", "collection") else "item"
            found[_CORE_URL.format(version=vdir.name, kind=kind, name=name)] = _pystac_schema(
                f"stac-spec/{vdir.name}/{f.name}"
            )
    for name in ("Feature", "Geometry"):
        found[f"https://geojson.org/schema/{name}.json"] = _pystac_schema(f"geojson/{name}.json")
    if root is None:
        return found
    base = Path(root)
    for schema in base.glob("*/*/schema.json"):
        ext, version = schema.parent.parent.name, schema.parent.name
        found[_EXT_URL.format(ext=ext, version=version)] = json.loads(schema.read_text("utf-8"))
    for schema in base.glob("stac-spec/*/*-spec/json-schema/*.json"):
        version, kind = schema.parents[2].name, schema.parents[1].name.removesuffix("-spec")
        url = _CORE_URL.format(version=version, kind=kind, name=schema.stem)
        found.setdefault(url, json.loads(schema.read_text("utf-8")))
    return found


def _fetch(uri: str) -> dict[str, Any]:
    with urllib.request.urlopen(uri, timeout=20) as resp:
        return dict(json.loads(resp.read().decode("utf-8")))


class _Schemas:
    """A ``referencing`` registry over the local schemas, fetching only what is missing."""

    def __init__(self) -> None:
        from referencing import Registry, Resource
        from referencing.exceptions import NoSuchResource
        from referencing.jsonschema import DRAFT7

        self.root = schemas_dir()
        self.local = _local_resources(str(self.root) if self.root else None)
        self.fetched: set[str] = set()

        def retrieve(uri: str) -> Resource[Any]:
            try:
                contents = _fetch(uri)
            except Exception as err:  # no network, 404...
                raise NoSuchResource(ref=uri) from err  # type: ignore[call-arg]
            self.fetched.add(uri)
            return Resource.from_contents(contents, default_specification=DRAFT7)

        self.registry = Registry(retrieve=retrieve).with_resources(  # type: ignore[call-arg]
            (uri, Resource.from_contents(s, default_specification=DRAFT7))
            for uri, s in self.local.items()
        )
        self.used: set[str] = set()
        self._validators: dict[str, Any] = {}

    def validator(self, uri: str, where: Path) -> Any:
        """A (cached) validator for the schema at ``uri``."""
        from jsonschema.validators import Draft7Validator, validator_for

        uri = uri.rstrip("#")
        if uri in self._validators:
            return self._validators[uri]
        schema = self.local.get(uri)
        if schema is None:
            try:
                schema = _fetch(uri)
            except Exception as err:
                raise StacValidationError(
                    f"{where}: schema {uri} is not in {self.root or 'any local schema folder'} "
                    f"and could not be fetched ({err}); put it at "
                    "<EO_PIPELINE_STAC_SCHEMAS>/<extension>/<version>/schema.json"
                ) from None
            self.fetched.add(uri)
        self.used.add(uri)
        cls = validator_for(schema, default=Draft7Validator)
        self._validators[uri] = cls(schema, registry=self.registry)
        return self._validators[uri]


def _leaves(errors: Any) -> Iterator[Any]:
    for err in errors:
        if err.context:
            yield from _leaves(err.context)
        else:
            yield err


def _deepest(errors: list[Any]) -> Any:
    """The most specific error: the deepest in the instance, not a branch-selection error."""

    def rank(e: Any) -> tuple[int, int]:
        return (len(e.absolute_path), e.validator not in ("oneOf", "anyOf", "const", "enum"))

    return max(_leaves(errors), key=rank)


def _rule(err: Any) -> str:
    path = "/".join(str(p) for p in err.absolute_schema_path)
    return f"{err.validator}: {err.validator_value!r}"[:120] + f" at #/{path}"


def _check_schema(data: dict[str, Any], file: Path, schemas: _Schemas) -> None:
    kind = _CORE_KIND.get(str(data.get("type")))
    if kind is None:
        raise StacValidationError(
            f"{file}: $.type: {data.get('type')!r} is not 'Feature', 'Catalog' or 'Collection' "
            "(rule: a STAC object must declare its type)"
        )
    version = data.get("stac_version")
    if not isinstance(version, str):
        raise StacValidationError(f"{file}: $.stac_version: missing (rule: required field)")
    core = _CORE_URL.format(version=f"v{version}", kind=kind, name=kind)
    uris = [core, *[str(u) for u in data.get("stac_extensions", []) if isinstance(u, str)]]
    for uri in uris:
        errors = list(schemas.validator(uri, file).iter_errors(data))
        if errors:
            err = _deepest(errors)
            more = f" ({len(errors) - 1} more error(s) from this schema)" if len(errors) > 1 else ""
            raise StacValidationError(
                f"{file}: {err.json_path}: {err.message}; rule broken: {_rule(err)} "
                f"in schema {uri}{more}"
            )


def _is_local(href: str) -> bool:
    return urlparse(href).scheme in ("", "file") and not href.startswith("//")


def _local(base: Path, href: str) -> Path:
    if href.startswith("file://"):
        href = urlparse(href).path
    p = Path(href)
    return p if p.is_absolute() else base.parent / p


def _check_links(data: dict[str, Any], file: Path) -> list[Path]:
    """Resolve local links; return the child/item files to walk."""
    walk = []
    for i, link in enumerate(data.get("links", [])):
        rel, href = link.get("rel"), link.get("href", "")
        if rel not in _LINK_RELS or not _is_local(href):
            continue
        target = _local(file, href)
        if not target.is_file():
            raise StacValidationError(
                f"{file}: $.links[{i}].href: {rel} link {href!r} does not resolve "
                f"(no file {target}); rule broken: links of a static catalog must resolve"
            )
        if rel in ("child", "item"):
            walk.append(target.resolve())
    return walk


def _check_assets(
    data: dict[str, Any], file: Path, checksums: bool, counts: Counter[str], root: Path | None
) -> None:
    for key, asset in (data.get("assets") or {}).items():
        href = asset.get("href", "")
        where = f"{file}: $.assets.{key}"
        problem = escape(href, file.parent, root, reference=is_reference(asset))
        if problem is not None:
            raise StacValidationError(
                f"{where}.href: {problem}; rule broken: a catalog holds its asset files "
                f"unless they are marked as read in place; {FIX}"
            )
        if href.startswith("/vsizip/"):
            _check_zip_member(asset, href, where, checksums, counts)
            continue
        if not _is_local(href) or href.startswith("/vsi"):
            continue
        target = _local(file, href)
        if not target.is_file():
            raise StacValidationError(
                f"{where}.href: asset file {target} does not exist; rule broken: "
                "asset hrefs must point at existing files (re-ingest or fix the href)"
            )
        problem = vrt_escape(target, root, reference=is_reference(asset))
        if problem is not None:
            raise StacValidationError(
                f"{where}.href: {problem}; rule broken: a catalog holds its asset files; {FIX}"
            )
        counts["assets"] += 1
        size = asset.get("file:size")
        if isinstance(size, int) and target.stat().st_size != size:
            raise StacValidationError(
                f"{where}.file:size: declares {size} bytes but {target.name} has "
                f"{target.stat().st_size}; rule broken: file:size must match the file"
            )
        expected = asset.get("file:checksum")
        if checksums:
            problem = file_problem(target)
            if problem is not None:
                raise StacValidationError(
                    f"{where}.href: {target.name} is incomplete or corrupt: {problem}; "
                    "rule broken: asset files must be whole (re-download and re-ingest)"
                )
        if checksums and isinstance(expected, str):
            if not verify_checksum(target, expected):
                raise StacValidationError(
                    f"{where}.file:checksum: {target.name} does not hash to {expected}; "
                    "rule broken: file:checksum must match the file (the file changed or is corrupt)"
                )
            counts["checksums"] += 1


def _check_zip_member(
    asset: dict[str, Any], href: str, where: str, checksums: bool, counts: Counter[str]
) -> None:
    """An asset read in place from a zip archive (``/vsizip/<archive>/<member>``)."""
    from eo_pipeline.catalogs.archive import member_size, vsi_exists

    if not vsi_exists(href):
        raise StacValidationError(
            f"{where}.href: {href} names no member of an existing zip archive; rule broken: "
            "asset hrefs must point at existing files (re-ingest or fix the href)"
        )
    counts["assets"] += 1
    size = asset.get("file:size")
    if isinstance(size, int) and member_size(href) != size:
        raise StacValidationError(
            f"{where}.file:size: declares {size} bytes but the member has {member_size(href)}; "
            "rule broken: file:size must match the file"
        )
    expected = asset.get("file:checksum")
    problem = jp2_problem(href) if checksums else None
    if problem is not None:
        raise StacValidationError(
            f"{where}.href: {href} is incomplete or corrupt: {problem}; rule broken: asset "
            "files must be whole (re-download and re-ingest)"
        )
    if checksums and isinstance(expected, str):
        if not verify_checksum(href, expected):
            raise StacValidationError(
                f"{where}.file:checksum: {href} does not hash to {expected}; rule broken: "
                "file:checksum must match the file (the file changed or is corrupt)"
            )
        counts["checksums"] += 1


def _read(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise StacValidationError(f"{file}: cannot read: {err.strerror}") from None
    except ValueError as err:
        raise StacValidationError(f"{file}: $: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise StacValidationError(f"{file}: $: a STAC object must be a JSON object")
    return data


def validate(
    path: str | os.PathLike[str], *, check_assets: bool = False, allow_outside: bool = False
) -> ValidationReport:
    """Validate a STAC catalog (walking every child and item), a collection or an item.

    Parameters
    ----------
    path
        ``catalog.json``, ``collection.json``, an item JSON, or a folder holding one of them.
    check_assets
        Also recompute each local asset's ``file:checksum`` (reads every asset file) and
        check that every TIFF holds all its tiles (a file truncated after its header).
    allow_outside
        Accept local asset hrefs that lead out of the folder of ``path`` (``../``, absolute
        paths, ``file://`` URLs, links). Refused by default unless the asset is marked
        ``"eo_pipeline:reference": true`` (ingest's in-place Sentinel-2 assets): a catalog
        holds its files, and ``/etc/x`` is a broken or hostile catalog
        (:mod:`eo_pipeline.catalogs.hrefs`). Remote (http, s3...) hrefs are not fetched.

    Returns
    -------
    ValidationReport
        Objects validated per type and the schemas used; ``str(report)`` is a summary.

    Raises
    ------
    StacValidationError
        On the first problem: the message names the file, the JSON path and the schema rule
        (or the link/asset rule) broken.
    CatalogError
        When ``path`` is not a STAC file or a folder holding one.

    Examples
    --------
    >>> validate("catalog/catalog.json", check_assets=True).counts  # doctest: +SKIP
    {'Catalog': 1, 'Collection': 1, 'Item': 1}
    """
    from eo_pipeline.catalogs.store import find_stac_file

    start = find_stac_file(path).resolve()
    schemas = _Schemas()
    counts: Counter[str] = Counter()
    extra: Counter[str] = Counter()
    seen: set[Path] = set()
    todo = [start]
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        data = _read(file)
        _check_schema(data, file, schemas)
        counts["Item" if data["type"] == "Feature" else str(data["type"])] += 1
        todo.extend(reversed(_check_links(data, file)))
        _check_assets(data, file, check_assets, extra, None if allow_outside else start.parent)
    return ValidationReport(
        path=start,
        counts=dict(counts),
        schemas=tuple(sorted(schemas.used)),
        files=tuple(sorted(seen)),
        assets_checked=extra["assets"],
        checksums_verified=extra["checksums"],
        schema_source=str(schemas.root) if schemas.root else "the network",
        extra={"fetched": sorted(schemas.fetched)},
    )

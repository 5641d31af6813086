"""The STAC API fields extension: which parts of each item a response carries.

Semantics (those of the fields extension and of ``stac-api-validator``):

- no ``fields`` at all: the full item;
- ``fields`` given but empty: the default set (``type``, ``stac_version``, ``id``,
  ``collection``, ``geometry``, ``bbox``, ``links``, ``assets``, ``properties.datetime``
  or the start/end pair), still a valid Item;
- ``include`` given: those fields plus ``type``, ``stac_version``, ``id``, ``collection``;
  excluding a parent does not remove an included child, and a field both included and excluded
  is included;
- only ``exclude``: the full item without those fields (or the default set without them, when
  ``include`` was given explicitly empty or null).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from stac_fastapi.types.errors import InvalidQueryParameter
from stac_fastapi.types.search import BaseSearchPostRequest

__all__ = ["FieldSelection", "apply_fields", "fields_of_get", "fields_of_post"]

_ALWAYS = ("type", "stac_version", "id", "collection")
_DEFAULT = ("geometry", "bbox", "links", "assets")
_DEFAULT_PROPS = ("datetime", "start_datetime", "end_datetime")


def _get_path(doc: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _put_path(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        sub = target.get(part)
        if not isinstance(sub, dict):
            sub = target[part] = {}
        target = sub
    target[last] = copy.deepcopy(value)


def _drop_path(target: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    for part in parents:
        sub = target.get(part)
        if not isinstance(sub, dict):
            return
        target = sub
    target.pop(last, None)


@dataclass(frozen=True)
class FieldSelection:
    """The fields extension's request: what to include and exclude.

    ``include=None`` means the request gave no ``include`` at all (then an ``exclude``-only
    request trims the full item); an explicitly empty ``include`` means the default set.
    """

    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()


def apply_fields(doc: dict[str, Any], fields: FieldSelection) -> dict[str, Any]:
    """The fields extension on one item (the STAC API fields extension's semantics).

    - nothing to include or exclude: the default set (``id``, ``type``, ``geometry``,
      ``bbox``, ``links``, ``assets``, ``properties.datetime``...): still a valid Item;
    - ``include`` given: those fields (plus ``type``, ``stac_version``, ``id``,
      ``collection``); an ``exclude`` of a parent does not remove an included child, and a
      field both included and excluded stays;
    - only ``exclude``: the full item (or the default set, when ``include`` was given empty)
      without those fields.

    Examples
    --------
    >>> doc = {"id": "a", "type": "Feature", "properties": {"x": 1, "y": 2}}
    >>> apply_fields(doc, FieldSelection(frozenset({"properties.x"}), frozenset({"properties"})))
    {'type': 'Feature', 'id': 'a', 'properties': {'x': 1}}
    """
    include = set(fields.include or ())
    exclude = set(fields.exclude)
    if include:
        out: dict[str, Any] = {k: doc[k] for k in _ALWAYS if k in doc}
        for path in sorted(include, key=lambda p: p.count(".")):
            found, value = _get_path(doc, path)
            if found:
                _put_path(out, path, value)
        for path in exclude:
            keeps_child = any(i == path or i.startswith(path + ".") for i in include)
            if not keeps_child and path not in _ALWAYS:
                _drop_path(out, path)
        return out
    if fields.include is None and exclude:
        out = copy.deepcopy(doc)
    else:
        out = {k: copy.deepcopy(doc[k]) for k in (*_ALWAYS, *_DEFAULT) if k in doc}
        props = doc.get("properties", {})
        out["properties"] = {k: props[k] for k in _DEFAULT_PROPS if k in props}
    for path in exclude:
        if path not in _ALWAYS:
            _drop_path(out, path)
    return out


def fields_of_get(request: Request) -> FieldSelection | None:
    if "fields" not in request.query_params:
        return None
    include, exclude = set(), set()
    for raw in request.query_params.getlist("fields"):
        for term in raw.split(","):
            term = term.strip()
            if term.startswith("-"):
                exclude.add(term[1:])
            elif term:
                include.add(term.lstrip("+"))
    if not include and not exclude:  # `fields=`: the default set
        return FieldSelection(frozenset(), frozenset())
    return FieldSelection(frozenset(include) if include else None, frozenset(exclude))


def fields_of_post(search: BaseSearchPostRequest) -> FieldSelection | None:
    if "fields" not in search.model_fields_set:
        return None
    fields = getattr(search, "fields", None)
    if fields is None:
        raise InvalidQueryParameter("fields: give an object {include: [...], exclude: [...]}")
    given = "include" in fields.model_fields_set
    return FieldSelection(
        frozenset(fields.include or ()) if given else None, frozenset(fields.exclude or ())
    )

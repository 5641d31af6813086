"""What customers can filter on: queryables, free text (``q``) and the query extension.

- :data:`ITEM_QUERYABLES`: every property the filter extension (CQL2) and the query extension
  accept, as SQL over the index's ``items i`` table (see :mod:`~eo_pipeline.export.api.index`);
  ``datetime`` is the item's time span (its start in plain comparisons), ``geometry`` its
  footprint; other properties are read from the stored item JSON;
- :func:`queryables_document`: the ``/queryables`` JSON schema (API-wide or per collection);
- :func:`parse_free_text` / :func:`free_text_sql`: the free-text extension's ``q`` (terms and
  quoted phrases, comma or space separated, any of them matching, case-insensitive) over
  titles, descriptions and keywords;
- :func:`query_to_cql2`: the STAC query extension (``{"eo:cloud_cover": {"lt": 10}}``) as CQL2
  JSON, so both go through one translator (:func:`eo_pipeline.catalogs.cql2_sql.cql2_to_sql`).

Examples
--------
>>> parse_free_text('landsat, "surface reflectance" ndvi')
('landsat', 'surface reflectance', 'ndvi')
>>> query_to_cql2({"eo:cloud_cover": {"lt": 10}})
{'op': '<', 'args': [{'property': 'eo:cloud_cover'}, 10]}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from eo_pipeline.catalogs.cql2_sql import Queryable
from eo_pipeline.catalogs.index_core import QUERYABLES
from eo_pipeline.catalogs.queryables import query_to_cql2
from eo_pipeline.errors import FilterError

__all__ = [
    "ITEM_QUERYABLES",
    "free_text",
    "free_text_sql",
    "parse_free_text",
    "query_to_cql2",
    "queryables_document",
]


ITEM_QUERYABLES: dict[str, Queryable] = QUERYABLES
"""Item properties a filter may use (name -> SQL over ``items i``): the catalog index's own
(:data:`eo_pipeline.catalogs.index_core.QUERYABLES`), on the same item store."""

ALWAYS_QUERYABLE = ("id", "collection", "geometry", "datetime")
"""Listed for every collection; the others only where some item of it has a value."""


def queryables_document(
    url: str, names: Iterable[str], title: str = "Queryables"
) -> dict[str, Any]:
    """The JSON schema served at ``/queryables`` (``$id`` is its own URL).

    Examples
    --------
    >>> doc = queryables_document("http://x/queryables", ["eo:cloud_cover"])
    >>> doc["properties"]["eo:cloud_cover"]["maximum"], doc["additionalProperties"]
    (100, False)
    """
    props = {name: ITEM_QUERYABLES[name].json_schema() for name in names}
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": url,
        "type": "object",
        "title": title,
        "description": "Properties usable in `filter` (CQL2 text or JSON) and `query`.",
        "properties": props,
        "additionalProperties": False,
    }


def free_text(properties: Mapping[str, Any]) -> str:
    """The searchable text of an item or collection: title, description and keywords."""
    parts = [properties.get("title"), properties.get("description")]
    keywords = properties.get("keywords")
    if isinstance(keywords, list):
        parts += [str(k) for k in keywords]
    return " ".join(str(p) for p in parts if p).lower()


_TERM = re.compile(r'"([^"]*)"|([^\s,"]+)')
MAX_TERMS = 20


def parse_free_text(q: str | Iterable[str] | None) -> tuple[str, ...]:
    """``q`` as search terms: quoted phrases kept whole, other words split on commas/spaces.

    Raises
    ------
    FilterError
        For more than 20 terms or a term longer than 200 characters.
    """
    if q is None:
        return ()
    texts = [q] if isinstance(q, str) else [str(x) for x in q]
    terms: list[str] = []
    for text in texts:
        for phrase, word in _TERM.findall(text):
            term = (phrase or word).strip()
            if term and term.upper() not in ("OR",):
                terms.append(term)
    if len(terms) > MAX_TERMS:
        raise FilterError(f"q: {len(terms)} terms; at most {MAX_TERMS}")
    if any(len(t) > 200 for t in terms):
        raise FilterError("q: a term is longer than 200 characters")
    return tuple(dict.fromkeys(terms))


def free_text_sql(column: str, terms: Iterable[str]) -> tuple[str, list[Any]]:
    """A ``WHERE`` term matching any of ``terms`` inside ``column`` (lower-case text)."""
    params = []
    for term in terms:
        escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(f"%{escaped}%")
    sql = " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for _ in params)
    return f"({sql})", params

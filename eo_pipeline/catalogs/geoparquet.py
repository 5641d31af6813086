"""stac-geoparquet export and import: how the ecosystem moves large STAC collections.

The format is done by the ``stac-geoparquet`` library (the reference implementation of the
stac-geoparquet specification, read by rustac, DuckDB, GeoPandas...), never by hand here:

- :func:`export_geoparquet` streams the items a catalog index selects into one GeoParquet
  file (``stac_geoparquet.arrow.parse_stac_items_to_arrow`` in chunks, then ``to_parquet``);
  asset hrefs are made absolute, since a Parquet file has no place to resolve relative ones,
  and marked ``"eo_pipeline:reference": true`` (the rows read the catalog's files in place,
  :mod:`eo_pipeline.catalogs.hrefs`); an href that led out of the catalog is not marked, so
  ``load`` refuses it as it would from the catalog;
- :func:`read_geoparquet` yields :class:`pystac.Item` objects batch by batch
  (``stac_table_to_items``), so ``eo.load("items.parquet")`` and a workflow whose
  ``inputs.catalog`` is a ``.parquet`` file read it without unpacking it into JSON files.

It needs the ``geoparquet`` extra (``pip install eo-pipeline[geoparquet]``).

Examples
--------
>>> export_geoparquet("catalog", "items.parquet", IndexQuery(collections=("kazeosat2-l1",)))  # doctest: +SKIP
1204
>>> [it.id for it in read_geoparquet("items.parquet")][:1]  # doctest: +SKIP
['kazeosat2_sim_20260615T052200_s7_000']
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pystac

from eo_pipeline.atomic import atomic_path
from eo_pipeline.catalogs.index import CatalogIndex, IndexQuery
from eo_pipeline.catalogs.store import item_from_dict
from eo_pipeline.errors import CatalogError

__all__ = ["GEOPARQUET_SUFFIXES", "export_geoparquet", "is_geoparquet", "read_geoparquet"]

GEOPARQUET_SUFFIXES = (".parquet", ".geoparquet")
_REQUIRED = ("id", "geometry", "assets")


def is_geoparquet(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a (stac-)geoparquet file by its suffix."""
    return Path(path).suffix.lower() in GEOPARQUET_SUFFIXES


def _library() -> Any:
    try:
        import stac_geoparquet.arrow as sgp
    except ImportError:
        raise CatalogError(
            "stac-geoparquet support needs the 'stac-geoparquet' package: "
            "pip install 'eo-pipeline[geoparquet]'"
        ) from None
    return sgp


def _absolute(path: Path, root: Path) -> dict[str, Any]:
    from eo_pipeline.catalogs.hrefs import REFERENCE, inside

    doc: dict[str, Any] = json.loads(path.read_bytes())
    for asset in (doc.get("assets") or {}).values():
        href = asset.get("href") if isinstance(asset, dict) else None
        if isinstance(href, str) and "://" not in href and not os.path.isabs(href):
            asset["href"] = os.path.normpath(path.parent / href)
            if inside(root, Path(asset["href"])):  # a file of the catalog, read in place
                asset[REFERENCE] = True
    doc["links"] = [
        ln
        for ln in doc.get("links") or ()
        if ln.get("rel") not in ("self", "root", "parent", "collection")
    ]
    return doc


def export_geoparquet(
    catalog: str | os.PathLike[str],
    out: str | os.PathLike[str],
    query: IndexQuery = IndexQuery(),
    *,
    chunk_size: int = 8192,
) -> int:
    """Write the items of ``catalog`` that ``query`` selects to a stac-geoparquet file.

    Returns the number of items written. The file appears atomically (temporary name, then
    rename); memory is bounded by ``chunk_size`` items.
    """
    sgp = _library()
    index = CatalogIndex.open(catalog)
    files = index.search(query)
    if not files:
        raise CatalogError(f"{catalog}: no item matches {query}; nothing to export")
    import tempfile

    with (
        tempfile.TemporaryDirectory(prefix="eo-pipeline-geoparquet-") as scratch,
        atomic_path(out) as tmp,
    ):
        # ChunksToDisk: the schema is inferred chunk by chunk, chunks spill to disk
        reader = sgp.parse_stac_items_to_arrow(
            (_absolute(f, index.root) for f in files),
            chunk_size=chunk_size,
            schema="ChunksToDisk",
            tmpdir=scratch,
        )
        sgp.to_parquet(reader, tmp)
    return len(files)


def read_geoparquet(
    path: str | os.PathLike[str], *, batch_size: int = 8192
) -> Iterator[pystac.Item]:
    """The items of a stac-geoparquet file, read batch by batch.

    Raises
    ------
    CatalogError
        Not a Parquet file, or a Parquet file without the stac-geoparquet columns (``id``,
        ``geometry``, ``assets``), or a row that is not a valid STAC item.
    """
    sgp = _library()
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    try:
        pf = pq.ParquetFile(p)
    except (OSError, pa.ArrowInvalid) as err:
        raise CatalogError(f"{p}: not a readable Parquet file ({err})") from None
    names = set(pf.schema_arrow.names)
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise CatalogError(
            f"{p}: not stac-geoparquet: no column(s) {', '.join(missing)} (it has "
            f"{', '.join(sorted(names)[:12])}); export one with "
            "'eo-pipeline catalog export CATALOG --format geoparquet --out FILE'"
        )
    row = -1
    for batch in pf.iter_batches(batch_size=batch_size):
        for doc in sgp.stac_table_to_items(pa.Table.from_batches([batch])):
            row += 1
            try:  # the one item checker, as for item JSON files
                item = item_from_dict(doc, str(p))
            except CatalogError as err:
                raise CatalogError(f"{err} (row {row} of the file)") from None
            item.set_self_href(None)  # rows have no location; their asset hrefs are absolute
            yield item

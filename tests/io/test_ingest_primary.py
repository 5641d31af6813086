"""Ingest of sensor-geometry (Primary) DIMAP products: the real Pléiades bundle, RPC assets,
footprint from the RPC, and orthorectification of an ingested Primary item."""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer

import eo_pipeline as eo
from eo_pipeline.catalogs.rpc import fit_rpc
from eo_pipeline.catalogs.validation import validate
from eo_pipeline.errors import MetadataWarning, OrthorectificationError
from tests.catalogs.test_dimap import EPSG, LEFT, TOP, edit, write_product
from tests.conftest import REAL_DATA

SEN = REAL_DATA / "pleiades-dimap-v2" / "PHR1A-SEN-5897098101"


@pytest.mark.realdata
def test_real_pleiades_primary_bundle_ingests(
    tmp_path: Path,
) -> None:
    if not (SEN / "VOL_PHR.XML").is_file():
        pytest.skip(f"real Pléiades Primary bundle not found at {SEN}; set EO_PIPELINE_REAL_DATA")
    with pytest.warns(MetadataWarning, match="metadata \\(document, RPC\\) only"):
        item = eo.ingest(SEN, tmp_path / "catalog")
    assert item.properties["processing:level"] == "SEN"
    assert item.properties["eo_pipeline:geometry"] == "sensor"
    assert {"RPC_P", "RPC_MS", "DIM_P", "DIM_MS"} <= set(item.assets)
    assert "rpc" in item.assets["RPC_P"].roles
    assert "RPC_PHR1A_MS" in item.properties["processing:lineage"]
    # footprint from the RPC over its heights vs the document's own extent (at its heights)
    west, south, east, north = item.bbox
    assert (west, south, east, north) == pytest.approx(
        (-73.7077, 18.3244, -73.5081, 18.4013), abs=0.01
    )
    report = validate(tmp_path / "catalog", check_assets=True)  # raises when invalid
    assert report.counts["Item"] == 1


def _sensor_geometry(root: ET.Element) -> None:
    """A delivered ORTHO document turned into a sensor-geometry (Primary) one."""
    root.remove(root.find("Geoposition"))  # type: ignore[arg-type]
    root.find("Metadata_Identification/METADATA_PROFILE").text = "KZ1_SENSOR"  # type: ignore[union-attr]


def _rpc_of_grid(px: float, rows: int, cols: int) -> str:
    """An RPC (fitted) that maps ground to the map grid of the test product: a nadir view."""
    line, samp = np.meshgrid(np.linspace(-0.5, rows - 0.5, 9), np.linspace(-0.5, cols - 0.5, 9))
    line, samp = line.ravel(), samp.ravel()
    x, y = LEFT + (samp + 0.5) * px, TOP - (line + 0.5) * px
    lon, lat = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(x, y)
    h = np.repeat([[0.0, 500.0, 1000.0]], len(lon), axis=0)
    rep = lambda v: np.repeat(v[:, None], 3, axis=1)  # noqa: E731
    model = fit_rpc(rep(lon), rep(lat), h, rep(line), rep(samp))
    return model.to_dimap_xml()


def test_primary_product_with_tiles_ingests_and_orthorectifies_back(tmp_path: Path) -> None:
    product = write_product(tmp_path / "sensor", pan=False, ms_px=300)
    doc = edit(product.documents["MS"], _sensor_geometry)
    with pytest.raises(
        OrthorectificationError, match="KZ1_SENSOR product in sensor geometry but no RPC"
    ):
        eo.ingest(doc, tmp_path / "catalog")
    (doc.parent / f"RPC_{doc.name[4:]}").write_text(_rpc_of_grid(4.0, 300, 300))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MetadataWarning)
        item = eo.ingest(doc, tmp_path / "catalog")
    assert item.properties["processing:level"] == "SEN"
    assert item.assets["B2"].extra_fields["eo_pipeline:rpc"] == "RPC_MS"
    with pytest.warns(RuntimeWarning, match="no DEM"):
        ortho = eo.orthorectify(
            item, None, crs=f"EPSG:{EPSG}", resolution=4.0, resampling="nearest"
        )
    assert json.loads(ortho.attrs["orthorectification"])["crs"] == f"EPSG:{EPSG}"
    # the RPC is the product's own grid: the orthoimage is the delivered image again
    with rasterio.open(next(p for _, r, c, p in product.tiles if (r, c) == (1, 1))) as ds:
        tile = ds.read(1 + ds.descriptions.index("B2") if "B2" in ds.descriptions else 3)
    x0 = round((LEFT - float(ortho.x[0]) + 2.0) / 4.0)
    y0 = round((float(ortho.y[0]) - TOP + 2.0) / 4.0)
    got = ortho["B2"].values[y0 : y0 + 256, x0 : x0 + 256]
    match = (got == tile).mean()
    assert match > 0.99, (match, x0, y0)


def test_ortho_item_is_a_valid_ort_product_that_loads(tmp_path: Path) -> None:
    from eo_pipeline.io.ortho_product import orthorectify_item

    product = write_product(tmp_path / "sensor", pan=False, ms_px=120)
    doc = edit(product.documents["MS"], _sensor_geometry)
    (doc.parent / f"RPC_{doc.name[4:]}").write_text(_rpc_of_grid(4.0, 120, 120))
    item = eo.ingest(doc, tmp_path / "catalog")
    with pytest.warns(RuntimeWarning, match="no DEM"):
        ortho = orthorectify_item(item, tmp_path / "catalog", crs=f"EPSG:{EPSG}")
    assert ortho.collection_id == "kazeosat1-ort"
    assert ortho.properties["processing:level"] == "ORT"
    assert (
        ortho.properties["proj:code"] == f"EPSG:{EPSG}"
        or ortho.assets["B2"].extra_fields.get("proj:code") == f"EPSG:{EPSG}"
    )
    assert "constant height" in ortho.properties["processing:lineage"]
    validate(tmp_path / "catalog", check_assets=True)
    ds = eo.load([ortho], bands=["B2"])
    assert ds["B2"].dtype == "uint16" and int(ds["B2"].max()) > 0

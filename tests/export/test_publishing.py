"""publish(): sellable collections, lineage, checksums, validation before swap-in."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from eo_pipeline.catalogs.checksum import file_checksum
from eo_pipeline.catalogs.validation import validate
from eo_pipeline.cli import main
from eo_pipeline.errors import CatalogError, StacValidationError
from eo_pipeline.export.api.signing import state_dir
from eo_pipeline.export.publishing import (
    ITEM_ASSETS_URI,
    ORDER_URI,
    PRICING_FIELD,
    Offer,
    PublishConfig,
    publish,
)
from tests.export.api.conftest import publish_config
from tests.export.api.factory import make_product_catalog


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_product_catalog(tmp_path_factory.mktemp("publish-src"))


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_collections_are_sellable(source: Path, tmp_path: Path) -> None:
    report = publish(source, tmp_path / "export", publish_config())
    assert report.collections == ("kazeosat1-l2", "kazeosat2-l2", "landsat8-ndvi")
    assert report.items == 6 and "checksums verified: 12" in report.validation
    c = _json(tmp_path / "export" / "kazeosat2-l2" / "collection.json")
    assert {ITEM_ASSETS_URI, ORDER_URI} <= set(c["stac_extensions"])
    assert c["title"] and c["description"] and "Kazakhstan" in c["keywords"]
    roles = {r for p in c["providers"] for r in p["roles"]}
    assert {"producer", "processor", "host", "licensor"} <= roles
    assert c["license"] == "other"
    rels = {link["rel"]: link["href"] for link in c["links"]}
    assert rels["license"].startswith("https://") and rels["terms-of-service"].startswith(
        "https://"
    )
    assert c["order:status"] == "orderable"
    assert c[PRICING_FIELD] == {
        "currency": "USD",
        "per_km2": 10.0,
        "per_collection": 20000.0,
        "minimum_km2": 25.0,
        "notes": "Indicative list prices, excluding taxes.",
    }
    assert set(c["item_assets"]) == {"B1", "B2"}
    assert all("href" not in a and "file:checksum" not in a for a in c["item_assets"].values())
    assert c["summaries"]["platform"] == ["kazeosat-2"]
    assert c["summaries"]["processing:level"] == ["L2"]
    ((w, s, e, n),) = c["extent"]["spatial"]["bbox"]
    assert w < 51.2 < 76.9 < e and s < 43.22 < 51.1 < n
    assert c["extent"]["temporal"]["interval"][0][0].startswith("2024-06-10")
    public = _json(tmp_path / "export" / "landsat8-ndvi" / "collection.json")
    assert public["license"] == "CC0-1.0" and public["eo_pipeline:public"] is True
    assert public["providers"][0]["name"] == "U.S. Geological Survey"  # a partner mission
    assert c["providers"][0]["name"] == "KazEOSat operator (nominal)"
    # the whole export catalog is valid against the official schemas (what publish checked)
    assert validate(tmp_path / "export", check_assets=True).counts["Item"] == 6


def test_items_carry_lineage_checksums_and_timestamps(source: Path, tmp_path: Path) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    publish(source, tmp_path / "export", PublishConfig(licence_days=30))
    item_dir = tmp_path / "export" / "kazeosat1-l2" / "kazeosat1-l2-shymkent-20240901"
    item = _json(item_dir / "kazeosat1-l2-shymkent-20240901.json")
    props = item["properties"]
    assert props["processing:level"] == "L2"
    assert props["processing:software"]["eo-pipeline"]
    assert props["order:status"] == "orderable"
    published = dt.datetime.fromisoformat(props["published"])
    assert published >= before
    assert dt.datetime.fromisoformat(props["expires"]) - published == dt.timedelta(days=30)
    lineage = [link for link in item["links"] if link["rel"] == "derived_from"]
    assert [link["title"] for link in lineage] == ["kazeosat1-l1-shymkent-20240901"]
    assert _json(Path(lineage[0]["href"]))["id"] == "kazeosat1-l1-shymkent-20240901"
    for asset in item["assets"].values():
        local = item_dir / asset["href"]
        assert asset["file:size"] == local.stat().st_size
        assert asset["file:checksum"] == file_checksum(local)


def test_invalid_catalog_refused_and_export_untouched(source: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    publish(source, export, PublishConfig())
    before = {p: p.read_bytes() for p in export.rglob("*.json")}
    bad_src = tmp_path / "bad"
    import shutil

    shutil.copytree(source.parent, bad_src)
    item = next((bad_src / "kazeosat2-l2").glob("*/*.json"))
    doc = _json(item)
    doc["properties"]["eo:cloud_cover"] = 140.0  # the eo schema allows 0..100
    item.write_text(json.dumps(doc))
    with pytest.raises(StacValidationError, match=r"publish refused.*cloud_cover"):
        publish(bad_src / "catalog.json", export, PublishConfig())
    assert {p: p.read_bytes() for p in export.rglob("*.json")} == before
    assert not list(tmp_path.glob(".export.publish-*")), "staging folder left behind"


def test_republish_keeps_other_collections_and_private_state(source: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    publish(source, export, PublishConfig(only=("kazeosat2-l2", "landsat8-ndvi")))
    (state_dir(export) / "marker").write_text("private")
    report = publish(source, export, PublishConfig(only=("kazeosat1-l2",)))
    assert report.carried_over == ("kazeosat2-l2", "landsat8-ndvi")
    ids = {
        link["href"].split("/")[1]
        for link in _json(export / "catalog.json")["links"]
        if link["rel"] == "child"
    }
    assert ids == {"kazeosat1-l2", "kazeosat2-l2", "landsat8-ndvi"}
    assert (state_dir(export) / "marker").read_text() == "private"
    assert not list(export.rglob(".eo-pipeline")), "private state inside the published tree"
    kept = next((export / "kazeosat2-l2").glob("*/*.json"))
    assert any(link["rel"] == "derived_from" for link in _json(kept)["links"])
    validate(export, check_assets=True)


def test_config_from_yaml_and_cli(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "publish.yaml"
    cfg.write_text(
        "currency: EUR\n"
        "providers:\n"
        "  - {name: Operator, roles: [producer, licensor], url: 'https://op.example'}\n"
        "  - {name: Processor, roles: [processor]}\n"
        "  - {name: Host, roles: [host]}\n"
        "collections:\n"
        "  kazeosat2-l2: {title: KazEOSat-2 surface reflectance, per_km2: 4.5, keywords: [SR]}\n"
    )
    parsed = PublishConfig.from_yaml(cfg)
    assert parsed.offer("kazeosat2-l2") == Offer(
        title="KazEOSat-2 surface reflectance", per_km2=4.5, keywords=("SR",)
    )
    assert (
        main(["publish", str(source), "--catalog", str(tmp_path / "x"), "--config", str(cfg)]) == 0
    )
    assert "published 6 item(s)" in capsys.readouterr().out
    c = _json(tmp_path / "x" / "kazeosat2-l2" / "collection.json")
    assert c["title"] == "KazEOSat-2 surface reflectance" and "SR" in c["keywords"]
    assert c[PRICING_FIELD]["currency"] == "EUR" and c[PRICING_FIELD]["per_km2"] == 4.5
    assert c["providers"][0] == {
        "name": "Operator",
        "roles": ["producer", "licensor"],
        "url": "https://op.example",
    }


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"prices": 3}, "unknown key"),
        ({"collections": {"a": {"per_m2": 1}}}, "collections.a: unknown key"),
        ({"providers": [{"name": "X", "roles": ["seller"]}]}, "unknown roles"),
    ],
)
def test_bad_config_names_the_key(data: dict, words: str) -> None:
    with pytest.raises(CatalogError, match=words):
        PublishConfig.from_dict(data)


def test_empty_source_refused(source: Path, tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no items to publish"):
        publish(source, tmp_path / "export", PublishConfig(only=("no-such-collection",)))


def test_truth_assets_are_not_for_sale(source: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(source.parent, src)
    item_json = next((src / "kazeosat1-l2").glob("*/*.json"))
    shutil.copyfile(next(item_json.parent.glob("*_B1.tif")), item_json.parent / "truth.tif")
    doc = _json(item_json)
    doc["assets"]["truth_class"] = {"href": "./truth.tif", "roles": ["truth"], "title": "truth"}
    item_json.write_text(json.dumps(doc))
    publish(src / "catalog.json", tmp_path / "export", PublishConfig(only=("kazeosat1-l2",)))
    out = _json(tmp_path / "export" / "kazeosat1-l2" / item_json.parent.name / item_json.name)
    assert set(out["assets"]) == {"B1", "B2"}
    assert not (tmp_path / "export" / "kazeosat1-l2" / item_json.parent.name / "truth.tif").exists()
    kept = PublishConfig(only=("kazeosat1-l2",), exclude_roles=())
    publish(src / "catalog.json", tmp_path / "export2", kept)
    out = _json(tmp_path / "export2" / "kazeosat1-l2" / item_json.parent.name / item_json.name)
    assert "truth_class" in out["assets"]


def test_collections_declare_every_extension_they_use(source: Path, tmp_path: Path) -> None:
    """#12: summaries and item_assets use eo/raster/proj/view fields: each is declared; the
    Landsat collection names USGS as producer even under a config with its own producer."""
    from eo_pipeline.catalogs.stac import EXTENSION_URIS
    from eo_pipeline.export.sales import Provider

    cfg = PublishConfig(
        providers=(
            Provider("Operator", ("producer", "licensor")),
            Provider("Centre", ("processor",)),
        )
    )
    publish(source, tmp_path / "export", cfg)
    for cid in ("kazeosat2-l2", "landsat8-ndvi"):
        c = _json(tmp_path / "export" / cid / "collection.json")
        used = set(c.get("summaries", {})) | {k for a in c["item_assets"].values() for k in a}
        for prefix, ext in (("eo:", "eo"), ("raster:", "raster"), ("proj:", "projection")):
            if any(k.startswith(prefix) for k in used):
                assert EXTENSION_URIS[ext] in c["stac_extensions"], (cid, prefix)
        assert all(
            "statistics" not in b
            for a in c["item_assets"].values()
            for b in a.get("raster:bands", [])
        )
        producers = [p["name"] for p in c["providers"] if "producer" in p["roles"]]
        assert producers == (
            ["U.S. Geological Survey"] if cid.startswith("landsat") else ["Operator"]
        )
        assert "Centre" in [p["name"] for p in c["providers"]]


@pytest.mark.parametrize("form", ["absolute", "remote"])
def test_asset_outside_the_source_is_not_published(source: Path, tmp_path: Path, form: str) -> None:
    """An attack (issue #16): a source item pointing at /etc/... would be copied into the
    export and sold; a remote href would be sold without being held."""
    import shutil

    secret = tmp_path / "secret.tif"
    secret.write_bytes(b"not for sale")
    bad_src = tmp_path / "bad"
    shutil.copytree(source.parent, bad_src)
    item = next((bad_src / "kazeosat2-l2").glob("*/*.json"))
    doc = _json(item)
    key = next(iter(doc["assets"]))
    doc["assets"][key]["href"] = str(secret) if form == "absolute" else "https://x.invalid/a.tif"
    item.write_text(json.dumps(doc))
    words = "points outside the catalog folder" if form == "absolute" else "is remote"
    with pytest.raises(CatalogError, match=rf"item '{doc['id']}' asset '{key}': .*{words}"):
        publish(bad_src / "catalog.json", tmp_path / "export", PublishConfig())
    assert not (tmp_path / "export").exists()
    assert not list(tmp_path.glob(".export.publish-*"))

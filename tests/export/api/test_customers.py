"""Customers, hashed API keys, entitlements, the signing secret and link signatures."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import shapely

from eo_pipeline.cli import main
from eo_pipeline.errors import CatalogError, CustomerError
from eo_pipeline.export.api.customers import (
    CustomerStore,
    Entitlement,
    parse_bbox,
    parse_interval,
)
from eo_pipeline.export.api.signing import SECRET_ENV, LinkSigner, load_secret, state_dir
from tests.export.api.conftest import Published


def test_keys_are_stored_hashed_and_revocable(tmp_path: Path) -> None:
    store = CustomerStore(tmp_path)
    key = store.add(
        "acme", Entitlement(frozenset({"a"}), bbox=(50, 40, 60, 45), start=0.0, end=10.0)
    )
    assert key.startswith("eok_") and len(key) > 40
    raw = store.path.read_bytes()
    assert key.encode() not in raw and key[4:].encode() not in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    found = store.authenticate(key)
    assert found is not None and found.entitlement.bbox == (50, 40, 60, 45)
    assert store.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.authenticate("not-a-key") is None
    with pytest.raises(CustomerError, match="already exists"):
        store.add("acme", Entitlement(frozenset({"a"})))
    store.revoke("acme")
    assert store.authenticate(key) is None
    new = store.add("acme", Entitlement(frozenset({"b"})))  # re-issued after revocation
    assert new != key and store.authenticate(new).entitlement.collections == {"b"}  # type: ignore[union-attr]
    with pytest.raises(CustomerError, match="no customer"):
        store.revoke("nobody")
    for bad in ("anonymous", "", "a b", "x/../y"):
        with pytest.raises(CustomerError):
            store.add(bad, Entitlement(frozenset({"a"})))


def test_entitlement_allows() -> None:
    e = Entitlement(frozenset({"a"}), bbox=(0, 0, 1, 1), start=100.0, end=200.0)
    inside = shapely.box(0.5, 0.5, 2, 2)
    assert e.allows("a", inside, 150.0, 150.0)
    assert e.allows("a", inside, 50.0, 100.0)  # a span touching the range counts
    assert not e.allows("b", inside, 150.0, 150.0)
    assert not e.allows("a", shapely.box(2, 2, 3, 3), 150.0, 150.0)
    assert not e.allows("a", inside, 201.0, 300.0)
    assert not e.allows("a", inside, 0.0, 99.0)
    assert not e.allows("a", None, 150.0, 150.0)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "10,0,5,1", "0,50,1,40", "0,0,200,1"])
def test_bad_bbox(text: str) -> None:
    with pytest.raises(CustomerError, match="--bbox"):
        parse_bbox(text)


@pytest.mark.parametrize(
    "text", ["2024-01-01", "2025-01-01T00:00:00Z/2024-01-01T00:00:00Z", "x/.."]
)
def test_bad_interval(text: str) -> None:
    with pytest.raises(CustomerError, match="--datetime"):
        parse_interval(text)


def test_customers_cli(
    published: Published, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(published.root)
    args = ["customers", "--catalog", root, "add", "dave", "--collections", "kazeosat1-l2"]
    assert main([*args, "--bbox", "60,40,80,50", "--datetime", "2024-01-01T00:00:00Z/.."]) == 0
    out = capsys.readouterr().out
    key = out.strip().splitlines()[-1]
    assert key.startswith("eok_")
    assert main(["customers", "--catalog", root, "list"]) == 0
    listing = capsys.readouterr().out
    assert "dave" in listing and "active" in listing and key not in listing
    assert "60,40,80,50" in listing and "2024-01-01T00:00:00Z/.." in listing
    assert main(["customers", "--catalog", root, "add", "eve", "--collections", "nope"]) == 2
    assert "nope not in" in capsys.readouterr().err
    assert main(["customers", "--catalog", root, "add", "eve"]) == 2
    assert main(["customers", "--catalog", root, "revoke", "dave"]) == 0
    assert main(["customers", "--catalog", root, "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["customers", "--catalog", str(tmp_path), "add", "x", "--collections", "a"]) == 2


def test_secret_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    secret = load_secret(tmp_path)
    path = state_dir(tmp_path) / "signing.key"
    assert not path.is_relative_to(tmp_path)  # private state stays out of the published tree
    assert len(secret) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(tmp_path) == secret  # stable across restarts
    os.chmod(path, 0o644)
    with pytest.raises(CatalogError, match="chmod 600"):
        load_secret(tmp_path)
    monkeypatch.setenv(SECRET_ENV, "short")
    with pytest.raises(CatalogError, match="at least 32"):
        load_secret(tmp_path)
    monkeypatch.setenv(SECRET_ENV, "s" * 40)
    assert load_secret(tmp_path) == b"s" * 40


def test_link_signatures() -> None:
    signer = LinkSigner(b"k" * 32)
    q = signer.sign("c/i/a.tif", "acme", "k1", 1000)
    sig = q["signature"]
    assert signer.verify("c/i/a.tif", "acme", "k1", q["expires"], sig, now=999)
    assert not signer.verify("c/i/a.tif", "acme", "k1", q["expires"], sig, now=1000)  # expired
    assert not signer.verify("c/i/b.tif", "acme", "k1", q["expires"], sig, now=0)
    assert not signer.verify("c/i/a.tif", "bob", "k1", q["expires"], sig, now=0)
    assert not signer.verify("c/i/a.tif", "acme", "k2", q["expires"], sig, now=0)  # other key
    assert not signer.verify("c/i/a.tif", "acme", "k1", "1001", sig, now=0)
    assert not signer.verify("c/i/a.tif", "acme", "k1", "soon", sig, now=0)
    assert not signer.verify("c/i/a.tif", "acme", "k1", "9" * 5000, sig, now=0)
    assert not signer.verify("c/i/a.tif", "acme", "k1", q["expires"], "éééé", now=0)
    assert not signer.verify("c/i/a.tif", "acme", "k1", q["expires"], sig.upper(), now=0)
    assert not LinkSigner(b"x" * 32).verify("c/i/a.tif", "acme", "k1", 1000, sig, now=0)

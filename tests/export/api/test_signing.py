"""Signed links and the private state: forgeries, expiry, the secret's file and its mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from eo_pipeline.errors import CatalogError
from eo_pipeline.export.api.signing import (
    STATE_DIRNAME,
    STATE_ENV,
    LinkSigner,
    load_secret,
    state_dir,
)

NOW = 1_800_000_000


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EO_PIPELINE_SIGNING_SECRET", raising=False)
    monkeypatch.delenv(STATE_ENV, raising=False)


def test_a_link_is_bound_to_file_customer_key_and_time() -> None:
    s = LinkSigner(b"k" * 32)
    q = s.sign("c/i/B1.tif", "acme", "k1", NOW + 60)
    args = ("c/i/B1.tif", q["customer"], q["key"], q["expires"], q["signature"])
    assert s.verify(*args, now=NOW)
    assert not s.verify(*args, now=NOW + 61)  # expired
    assert not s.verify("c/i/B2.tif", *args[1:], now=NOW)  # another file
    assert not s.verify(args[0], "evil", *args[2:], now=NOW)  # another customer
    assert not s.verify(args[0], args[1], "k2", *args[3:], now=NOW)  # a re-issued key
    assert not s.verify(*args[:3], str(NOW + 9999), args[4], now=NOW)  # stretched expiry
    assert not LinkSigner(b"j" * 32).verify(*args, now=NOW)  # another server secret
    for bad in ("", "zz", args[4].upper(), args[4][:-1], None):
        assert not s.verify(*args[:4], bad, now=NOW)  # type: ignore[arg-type]
    assert not s.verify(*args[:3], "soon", args[4], now=NOW)


def test_secret_file_created_private_and_stable(tmp_path: Path) -> None:
    cat = tmp_path / "export"
    cat.mkdir()
    first = load_secret(cat)
    path = state_dir(cat) / "signing.key"
    assert path.parent == tmp_path / "export.eo-pipeline"  # beside the catalog, never in it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(first) == 64 and load_secret(cat) == first
    os.chmod(path, 0o644)
    with pytest.raises(CatalogError, match="chmod 600"):
        load_secret(cat)


def test_secret_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EO_PIPELINE_SIGNING_SECRET", "short")
    with pytest.raises(CatalogError, match="at least 32"):
        load_secret(tmp_path)
    monkeypatch.setenv("EO_PIPELINE_SIGNING_SECRET", "x" * 40)
    assert load_secret(tmp_path) == b"x" * 40
    assert not (tmp_path.parent / f"{tmp_path.name}.eo-pipeline" / "signing.key").exists()


def test_legacy_state_moves_out_and_env_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = tmp_path / "export"
    (cat / STATE_DIRNAME).mkdir(parents=True)
    (cat / STATE_DIRNAME / "customers.sqlite").write_bytes(b"db")
    moved = state_dir(cat)
    assert (moved / "customers.sqlite").read_bytes() == b"db"
    assert not (cat / STATE_DIRNAME).exists()
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "elsewhere"))
    assert state_dir(cat) == tmp_path / "elsewhere" and (tmp_path / "elsewhere").is_dir()

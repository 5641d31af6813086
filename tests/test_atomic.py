"""The one atomic write: replace-or-nothing, no temporaries left, errors name the file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

import pytest

from eo_pipeline.atomic import (
    PARTIAL_GLOB,
    atomic_path,
    atomic_write,
    scratch_path,
    temp_name,
    write_json,
)
from eo_pipeline.errors import WriteError


def test_text_bytes_and_writer(tmp_path: Path) -> None:
    assert atomic_write(tmp_path / "a.txt", "é\n").read_bytes() == "é\n".encode()
    assert atomic_write(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "c.txt", lambda p: p.write_text("via writer"))
    assert (tmp_path / "c.txt").read_text() == "via writer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.txt"]


def test_replaces_existing_and_keeps_it_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json(target, {"v": 1})
    write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 2}

    def half_then_fail(p: Path) -> None:
        p.write_text('{"v": 3')  # half a document
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        atomic_write(target, half_then_fail)
    assert json.loads(target.read_text()) == {"v": 2}  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary left


def test_unserialisable_json_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_json(tmp_path / "x.json", {"a": object()})
    assert list(tmp_path.iterdir()) == []
    write_json(tmp_path / "y.json", {"a": Path("p")}, default=str, indent=None)
    assert (tmp_path / "y.json").read_text() == '{"a": "p"}\n'


def test_rename_failure_is_write_error_naming_the_file(tmp_path: Path) -> None:
    with (
        mock.patch("os.replace", side_effect=OSError(28, "No space left on device")),
        pytest.raises(WriteError, match=r"out\.txt.*No space left"),
    ):
        atomic_write(tmp_path / "out.txt", "data")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_and_interrupt(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="missing"):
        atomic_write(tmp_path / "missing" / "x.txt", "data")
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "k.tif") as tmp:
        tmp.write_bytes(b"II*\x00")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_writer_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="no file"), atomic_path(tmp_path / "x.png"):
        pass
    assert not (tmp_path / "x.png").exists()


def test_temporary_names_are_hidden_beside_the_target_and_cleanable(tmp_path: Path) -> None:
    t = temp_name(tmp_path / "scene.tif")
    assert t.parent == tmp_path and t.name.startswith(".scene.tif.") and t.suffix == ".tif"
    assert t != temp_name(tmp_path / "scene.tif")
    with scratch_path(tmp_path / "scene.tif", "tiled") as s:
        s.write_bytes(b"scratch")
        seen = {p.name for p in tmp_path.glob(PARTIAL_GLOB)}
        assert seen == {s.name}
    assert not s.exists()
    with atomic_path(tmp_path / "scene.tif") as tmp:
        tmp.write_bytes(b"cog")
        assert {p.name for p in tmp_path.glob(PARTIAL_GLOB)} == {tmp.name}
    assert os.listdir(tmp_path) == ["scene.tif"]

"""`eo-pipeline run --input/--output` and relative paths resolving alike for every workflow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eo_pipeline.cli import main
from eo_pipeline.workflows.spec import load_workflow


def test_run_input_output_overrides(
    l1_catalog: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    rel = os.path.relpath(l1_catalog, tmp_path)  # relative to the current directory
    assert main(["run", "toa-indices", "--input", str(rel), "--output", "prod", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"-> {tmp_path / 'prod'}" in out and "4 unit(s)" in out


def test_relative_paths_resolve_alike_for_builtin_and_user_workflows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "workflows"
    sub.mkdir()
    text = (Path(load_workflow("toa-indices").source)).read_text()
    (sub / "mine.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    builtin, mine = load_workflow("toa-indices"), load_workflow(sub / "mine.yaml")
    for wf in (builtin, mine):
        assert wf.resolve(wf.output.catalog) == tmp_path / "demo-output" / "products"
        assert wf.resolve(str(wf.inputs.catalog)) == tmp_path / "demo-output/catalog/catalog.json"

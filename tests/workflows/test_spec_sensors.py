"""Workflows name the sensor files their inputs need (``sensors:``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eo_pipeline.errors import WorkflowError
from eo_pipeline.workflows.spec import load_workflow
from tests.catalogs.test_sensors import KAZSAT7

WF = """name: k7
sensors: [{files}]
inputs: {{catalog: cat/catalog.json}}
steps: [{{calibrate: {{}}}}]
output: {{catalog: out}}
"""


def _workflow(tmp_path: Path, files: str) -> Path:
    (tmp_path / "sensors").mkdir(exist_ok=True)
    (tmp_path / "sensors" / "kazsat7.yaml").write_text(KAZSAT7)
    (tmp_path / "sensors" / "bad.yaml").write_text(KAZSAT7.replace("gsd: 5.0,", "gsd: -5,"))
    path = tmp_path / "wf.yaml"
    path.write_text(WF.format(files=files))
    return path


def test_sensor_files_resolve_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like every relative path of every workflow, built-in or not (#12)."""
    monkeypatch.chdir(tmp_path)
    wf = load_workflow(_workflow(tmp_path, "sensors/kazsat7.yaml"))
    assert wf.sensors == ("sensors/kazsat7.yaml",)
    assert wf.resolve(wf.sensors[0]) == tmp_path / "sensors" / "kazsat7.yaml"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ("sensors/absent.yaml", r"wf.yaml:2: sensors\.0: no sensor file .*absent\.yaml"),
        ("sensors/bad.yaml", r"wf.yaml:2: sensors\.0: invalid sensor file: .*bad\.yaml:9: "
         r"bands\[0\]\.gsd: must be positive, got -5"),
        ("{a: 1}", r"wf.yaml:2: sensors: must be a list of sensor-file paths"),
    ],
)  # fmt: skip
def test_bad_sensor_entries_name_the_workflow_line(
    tmp_path: Path, files: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkflowError, match=message):
        load_workflow(_workflow(tmp_path, files))

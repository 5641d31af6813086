"""``eo-pipeline sensors list|show|check`` and ``--sensor NAME|FILE`` on the other commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from eo_pipeline.catalogs import sensors
from eo_pipeline.cli import main
from tests.catalogs.test_sensors import KAZSAT7


@pytest.fixture
def kazsat7(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sensors.registry, "_REGISTERED", {})
    path = tmp_path / "kazsat7.yaml"
    path.write_text(KAZSAT7)
    return path


def test_list_shows_every_sensor_and_where_it_comes_from(capsys: pytest.CaptureFixture) -> None:
    assert main(["sensors", "list"]) == 0
    out = capsys.readouterr().out
    for name in sensors.names():
        assert name in out
    line = next(x for x in out.splitlines() if x.startswith("pleiadesneo3 "))
    assert "gain_bias" in line and " yes " in line and "built-in" in line
    assert "EO_PIPELINE_SENSORS" in out and "eo_pipeline.sensors" in out


def test_show_by_name_or_file(kazsat7: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["sensors", "show", "spot-6"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("spot6: spot-6 naomi (spot)")
    row = next(x for x in out.splitlines() if x.strip().startswith("B3 "))
    assert "nir" in row and "1094.75" in row and "0.0720461" in row  # 1 / GAIN 13.88
    assert main(["sensors", "show", str(kazsat7)]) == 0
    out = capsys.readouterr().out
    assert "kazsat7: kazsat-7 mrc" in out and "(registered)" in out and "NOMINAL" in out


def test_check_reports_each_file(kazsat7: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(KAZSAT7.replace("id: B2", "id: B1"))
    assert main(["sensors", "check", str(kazsat7), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"ok   {kazsat7}: sensor kazsat7 (kazsat-7), 2 bands, mult_add")
    assert out[1] == (
        f"FAIL {bad}:11: bands[1].id: duplicate band id 'B1' (also bands[0]); "
        "band ids must be unique"
    )


def test_sensor_option_takes_a_file_on_every_command(kazsat7: Path, capsys) -> None:
    assert "kazsat7" not in sensors.names()
    # any command: the file is registered before it runs (validate of an empty folder fails
    # after that, for its own reason)
    code = main(["validate", str(kazsat7.parent / "nothing"), "--sensor", str(kazsat7)])
    assert sensors.get("kazsat7").origin == "registered"
    assert code == 2
    err = capsys.readouterr().err
    assert "kazsat7" not in err
    code = main(["validate", ".", "--sensor", "kazsat9"])
    assert code == 2 and "unknown sensor 'kazsat9'" in capsys.readouterr().err
    code = main(["validate", ".", "--sensor", str(kazsat7.parent / "absent.yaml")])
    assert code == 2 and "no such file" in capsys.readouterr().err


def test_simulate_with_a_sensor_file(kazsat7: Path, tmp_path: Path, capsys) -> None:
    argv = ["simulate", "--sensor", str(kazsat7), "--size", "32", "--catalog", str(tmp_path / "c")]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("simulated kazsat7_sim_")
    (item,) = (tmp_path / "c" / "kazsat7-l1").rglob("kazsat7_*.json")
    assert '"eo_pipeline:sensor_definition"' in item.read_text()

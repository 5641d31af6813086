"""A catalog carries its sensor: it loads where the sensor file is unknown or different."""

from __future__ import annotations

from pathlib import Path

import pytest

import eo_pipeline as eo
from eo_pipeline.catalogs import sensors
from tests.catalogs.test_sensors import KAZSAT7


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A simulated kazsat7 scene, made while the sensor file was registered, then forgotten."""
    monkeypatch.setattr(sensors.registry, "_REGISTERED", {})
    path = tmp_path / "kazsat7.yaml"
    path.write_text(KAZSAT7)
    eo.simulate(str(path), tmp_path / "cat", size=32, seed=2, noise=False)
    sensors.unregister("kazsat7")
    return tmp_path / "cat"


def test_unknown_sensor_loads_and_calibrates_from_the_items(catalog: Path) -> None:
    assert "kazsat7" not in sensors.names()
    ds = eo.load(catalog)
    assert ds.attrs["sensor"] == "kazsat7" and ds["B1"].attrs["saturation"] == 4095
    refl = eo.calibrate(ds, "toa_reflectance")
    assert float(refl["B2"].mean()) > 0.0
    assert sensors.get("kazsat7").origin == "item"


def test_the_item_wins_over_a_different_file_with_a_warning(catalog: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed.yaml"
    changed.write_text(KAZSAT7.replace("saturation: 4095", "saturation: 4000"))
    sensors.register_file(changed)
    with pytest.warns(
        UserWarning, match=r"its definition of sensor 'kazsat7' differs from .*changed"
    ):
        ds = eo.load(catalog)
    assert ds["B1"].attrs["saturation"] == 4095  # as the items say, not the changed file

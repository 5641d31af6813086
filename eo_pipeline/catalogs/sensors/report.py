"""Sensors as text for operators: ``eo-pipeline sensors list | show NAME | check FILE``."""

from __future__ import annotations

import argparse

from eo_pipeline.catalogs.sensors.model import Sensor
from eo_pipeline.catalogs.sensors.parsing import load_file
from eo_pipeline.catalogs.sensors.registry import ENTRY_POINT_GROUP, ENV, get, names
from eo_pipeline.errors import SensorFileError

__all__ = ["describe", "listing", "sensors_cli"]


def listing() -> str:
    """One line per known sensor: name, platform, bands, convention, nominal, origin, file.

    >>> "pleiadesneo4" in listing()
    True
    """
    rows = [("NAME", "PLATFORM", "BANDS", "CONVENTION", "NOMINAL", "FROM", "FILE")]
    for n in names():
        s = get(n)
        rows.append(
            (s.name, s.platform, str(len(s.bands)), s.convention, "yes" if s.nominal else "no",
             s.origin or "-", s.path or "-")
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1]
             for r in rows]  # fmt: skip
    lines.append(
        f"(search path: built-in folder, then ${ENV} folders, then entry points "
        f"{ENTRY_POINT_GROUP}, then files registered or named with --sensor)"
    )
    return "\n".join(lines)


def describe(sensor: Sensor) -> str:
    """A sensor's identity, orbit and band table (nominal radiance in ``L = mult*DN + add``)."""
    o = sensor.orbit
    head = [
        f"{sensor.name}: {sensor.platform} {sensor.instrument}"
        + (f" ({sensor.constellation})" if sensor.constellation else ""),
        f"  file: {sensor.path or '-'} ({sensor.origin or 'given'})",
        f"  convention: {sensor.convention}; "
        + ("NOMINAL numbers (no published specification)" if sensor.nominal else "published"),
        "  orbit: "
        + ", ".join(
            f"{label} {'-' if v is None else v}{unit}"
            for label, v, unit in (
                ("altitude", o.altitude_km, " km"),
                ("inclination", o.inclination_deg, " deg"),
                ("local time", o.local_time, ""),
                ("repeat", o.repeat_days, " d"),
                ("swath", o.swath_km, " km"),
            )
        ),
    ]
    if sensor.description:
        head.append(f"  {sensor.description.strip()}")
    rows = [("BAND", "COMMON", "CENTRE um", "FWHM um", "GSD m", "DTYPE", "NODATA", "SAT",
             "ESUN", "MULT", "ADD")]  # fmt: skip
    for b in sensor.bands:
        rows.append(
            (b.id, b.common_name or "-", f"{b.center_wavelength:.4f}",
             f"{b.full_width_half_max:.4f}", f"{b.gsd:g}", b.dtype, str(b.nodata),
             str(b.saturation), "-" if b.esun is None else f"{b.esun:g}",
             "-" if b.radiance_mult is None else f"{b.radiance_mult:.6g}",
             "-" if b.radiance_add is None else f"{b.radiance_add:.6g}")
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(head + table)


def sensors_cli(args: argparse.Namespace) -> int:
    """``eo-pipeline sensors list | show NAME|FILE | check FILE...``; exit 1 if a file is bad."""
    if args.action == "list":
        print(listing())
        return 0
    if args.action == "show":
        print(describe(get(args.name)))
        return 0
    bad = 0
    for f in args.files:
        try:
            s = load_file(f)
        except SensorFileError as err:
            print(f"FAIL {err}")
            bad += 1
            continue
        print(f"ok   {f}: sensor {s.name} ({s.platform}), {len(s.bands)} bands, {s.convention}")
    return 1 if bad else 0

"""The ``eo-pipeline`` command line.

Each sub-command is a thin shell over a public function; heavy imports happen inside
the handler so ``eo-pipeline --help`` is instant. Errors from the exception tree print
as one clear line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from eo_pipeline.errors import CatalogError, EOPipelineError

__all__ = ["build_parser", "main"]

_Handler = Callable[[argparse.Namespace], int]


def _use_sensors(args: argparse.Namespace) -> None:
    """``--sensor NAME|FILE`` (repeatable): make sensor files known before the command runs."""
    from eo_pipeline.catalogs import sensors

    for value in getattr(args, "sensors", None) or ():
        sensors.get(value)


def _cmd_sensors(args: argparse.Namespace) -> int:
    from eo_pipeline.catalogs.sensors.report import sensors_cli

    return sensors_cli(args)


def _cmd_ingest(args: argparse.Namespace) -> int:
    from eo_pipeline.io.ingestion import ingest

    item = ingest(args.path, args.catalog, overwrite=args.overwrite, to_cog=args.to_cog)
    bands = [k for k, a in item.assets.items() if "data" in (a.roles or [])]
    cover = item.properties.get("eo:cloud_cover")
    print(
        f"ingested {item.id} into {args.catalog} (collection {item.collection_id}): "
        f"{len(bands)} bands ({' '.join(bands)}), {len(item.assets)} assets"
        + (f", eo:cloud_cover {cover:.2f}%" if cover is not None else "")
        + f"\n  item: {item.get_self_href()}"
    )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from eo_pipeline.catalogs.validation import validate

    report = validate(args.path, check_assets=args.check_assets, allow_outside=args.allow_outside)
    print(report)
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from pathlib import Path

    from eo_pipeline.catalogs.index import CatalogIndex

    if args.action == "check":
        index = CatalogIndex.open(args.catalog, build=False)
        changed = index.sweep()
        print(f"{index.path}: {index.count()} item(s) indexed; {changed} (re-)indexed now")
        return 0
    path = Path(args.catalog)
    root = path.parent if path.is_file() else path
    if not (root / "catalog.json").is_file():
        raise CatalogError(f"{path}: no catalog.json; give a static catalog or its folder")
    report = CatalogIndex(root.resolve()).rebuild()
    print(f"{root}: {report}")
    for line in report.skipped[:20]:
        print(f"  skipped {line}", file=sys.stderr)
    return 0


def _cmd_catalog(args: argparse.Namespace) -> int:
    from eo_pipeline.catalogs.geoparquet import export_geoparquet
    from eo_pipeline.catalogs.index import IndexQuery

    bbox = None
    if args.bbox:
        try:
            w, s, e, n = (float(v) for v in args.bbox.split(","))
        except ValueError:
            raise CatalogError(f"--bbox {args.bbox!r}: give west,south,east,north") from None
        bbox = (w, s, e, n)
    query = IndexQuery(
        collections=tuple(c for c in args.collections.split(",") if c),
        bbox=bbox,
        datetime=args.datetime,
        filter=args.filter,
    )
    n = export_geoparquet(args.catalog, args.out, query)
    print(f"{n} item(s) -> {args.out} (stac-geoparquet)")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from eo_pipeline.catalogs import sensors
    from eo_pipeline.simulation.simulator import simulate

    items = simulate(
        sensors.get(args.sensor).name,
        args.catalog,
        scenes=args.scenes,
        size=args.size,
        seed=args.seed,
        noise=not args.no_noise,
        format=args.format,
        revisit=args.revisit,
        date=args.date,
        level=args.level,
        off_nadir=args.off_nadir,
    )
    for item in items:
        fit = item.properties.get("eo_pipeline:rpc_fit_residual_px")
        print(
            f"simulated {item.id}"
            + (
                f" (RPC fit residual {fit['rms']:.2g} px RMS, {fit['max']:.2g} px max)"
                if fit
                else ""
            )
        )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from eo_pipeline.workflows.runner import run_cli

    return run_cli(args)


def _cmd_publish(args: argparse.Namespace) -> int:
    from eo_pipeline.export.publishing import publish_cli

    return publish_cli(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    from eo_pipeline.export.api import require_web_stack

    require_web_stack("`eo-pipeline serve`")
    from eo_pipeline.export.api.server import serve_cli

    return serve_cli(args)


def _cmd_customers(args: argparse.Namespace) -> int:
    from eo_pipeline.export.api.customers import customers_cli

    return customers_cli(args)


def _cmd_atmosphere(args: argparse.Namespace) -> int:
    from eo_pipeline.atmosphere.build import build_lut_cli

    return build_lut_cli(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from eo_pipeline.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eo-pipeline",
        description="Earth-observation scenes to calibrated, STAC-catalogued products.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "ingest",
        help="ingest a Landsat/Sentinel-2/DIMAP scene folder into a STAC catalog",
    )
    p.add_argument(
        "path",
        help="scene folder or metadata file (MTL, DIM_*.XML); Sentinel-2: SAFE folder, "
        "MTD_MSIL1C.xml/MTD_MSIL2A.xml or the SAFE .zip (read in place)",
    )
    p.add_argument("--catalog", required=True, help="static catalog folder (created when missing)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the item if already catalogued"
    )
    p.add_argument(
        "--to-cog",
        action="store_true",
        help="Sentinel-2: convert the JPEG 2000 bands (and AOT, WVP, SCL) to COGs in the "
        "catalog (faster to read); without it the SAFE files are referenced in place",
    )
    p.set_defaults(handler=_cmd_ingest)

    p = sub.add_parser(
        "index",
        help="the catalog index that planning and eo.load query (rebuild, check)",
    )
    p.add_argument(
        "action",
        choices=["rebuild", "check"],
        help="rebuild: read every item into a new index; check: re-index what changed",
    )
    p.add_argument("catalog", help="a static catalog (catalog.json or its folder)")
    p.set_defaults(handler=_cmd_index)

    p = sub.add_parser("catalog", help="export a catalog's items as stac-geoparquet")
    p.add_argument("action", choices=["export"], help="export: write the selected items")
    p.add_argument("catalog", help="a static catalog (catalog.json or its folder)")
    p.add_argument("--format", choices=["geoparquet"], default="geoparquet", help="output format")
    p.add_argument("--out", required=True, help="output file (items.parquet)")
    p.add_argument("--collections", default="", help="comma-separated collection ids (all)")
    p.add_argument("--bbox", default=None, help="west,south,east,north (degrees)")
    p.add_argument("--datetime", default=None, help="RFC 3339 instant or start/end interval")
    p.add_argument("--filter", default=None, help="CQL2 text or JSON (the export API's queryables)")
    p.set_defaults(handler=_cmd_catalog)

    p = sub.add_parser("validate", help="validate a STAC catalog, collection or item offline")
    p.add_argument(
        "path", help="catalog.json, collection.json, an item JSON, or a folder holding one"
    )
    p.add_argument(
        "--check-assets", action="store_true", help="also verify every asset's file:checksum"
    )
    p.add_argument(
        "--allow-outside",
        action="store_true",
        help="accept local asset hrefs outside the catalog folder (refused by default unless "
        'the asset is marked "eo_pipeline:reference": true, as ingest marks files it reads '
        "in place)",
    )
    p.set_defaults(handler=_cmd_validate)

    p = sub.add_parser("simulate", help="simulate L1 scenes of a sensor over Kazakhstan")
    p.add_argument(
        "--sensor",
        required=True,
        metavar="NAME|FILE",
        help="sensor name (eo-pipeline sensors list) or sensor file",
    )
    p.add_argument(
        "--scenes", type=int, default=1, help="number of scenes to simulate (default: 1)"
    )
    p.add_argument(
        "--size",
        type=int,
        default=1024,
        help="pixels per side of the finest multispectral grid (PAN bands get 2-4x more)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random seed: same seed, same scenes (default: 0)"
    )
    p.add_argument("--no-noise", action="store_true", help="switch sensor noise off")
    p.add_argument(
        "--format",
        choices=["cog", "dimap"],
        default="cog",
        help="cog: one COG per band (default); dimap: an Airbus DIMAP V2 delivery (KazEOSat-1)",
    )
    p.add_argument(
        "--date", default=None, help="acquisition date YYYY-MM-DD (default: from the seed)"
    )
    p.add_argument(
        "--level",
        choices=["ortho", "primary"],
        default="ortho",
        help="ortho: map-projected (default); primary: sensor geometry with an RPC, DEM and "
        "truth orthoimage (--format dimap, kazeosat1)",
    )
    p.add_argument(
        "--off-nadir",
        type=float,
        default=20.0,
        help="primary: across-track viewing angle in degrees (default: 20)",
    )
    p.add_argument(
        "--revisit",
        action="store_true",
        help="a time series over one place (every 3 days from the 2nd of a month), for composites",
    )
    p.add_argument(
        "--catalog", required=True, help="static catalog folder to add the scenes to (created)"
    )
    p.set_defaults(handler=_cmd_simulate)

    p = sub.add_parser("run", help="run a workflow file on a dask cluster")
    p.add_argument("workflow", help="workflow YAML, or the name of a built-in workflow")
    p.add_argument(
        "--scheduler",
        default=None,
        help="tcp://HOST:PORT (default: DASK_SCHEDULER_ADDRESS or a LocalCluster)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="validate and print the plan, compute nothing"
    )
    p.add_argument(
        "--input",
        metavar="CATALOG",
        default=None,
        help="read this static catalog (catalog.json or its folder) instead of the workflow's "
        "inputs.catalog; relative to the current directory",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        default=None,
        help="write products to this folder instead of the workflow's output.catalog; "
        "relative to the current directory",
    )
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser("publish", help="publish products as sellable collections")
    p.add_argument("source", help="product catalog to publish from")
    p.add_argument("--catalog", required=True, help="export catalog folder")
    p.add_argument(
        "--config", default=None, help="YAML with collection titles, licence, providers, prices"
    )
    p.set_defaults(handler=_cmd_publish)

    p = sub.add_parser("serve", help="serve a catalog through the STAC API")
    p.add_argument("--catalog", required=True, help="export catalog folder (from publish)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default: 8080)")
    p.add_argument(
        "--workers", type=int, default=1, help="server processes sharing the port and the index"
    )
    p.add_argument(
        "--public-url",
        default=None,
        help="base URL every link is built on (e.g. https://data.example.com/stac/)",
    )
    p.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        help="proxy address or network whose Forwarded/X-Forwarded-* headers count (repeatable)",
    )
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("customers", help="manage export customers, API keys and entitlements")
    p.add_argument("--catalog", required=True, help="export catalog folder (from publish)")
    p.add_argument(
        "action",
        choices=["add", "list", "revoke"],
        help="add a customer (prints its new API key), list them, or revoke one",
    )
    p.add_argument("name", nargs="?", help="customer name (for add and revoke)")
    p.add_argument("--collections", default="", help="comma-separated collection ids")
    p.add_argument("--bbox", default=None, help="west,south,east,north entitlement area")
    p.add_argument("--datetime", default=None, help="start/end entitlement interval (RFC 3339)")
    p.set_defaults(handler=_cmd_customers)

    p = sub.add_parser("atmosphere", help="atmospheric correction tools (6S lookup tables)")
    asub = p.add_subparsers(dest="action", required=True)
    a = asub.add_parser(
        "build-lut", help="run 6S over a grid for a sensor's bands and store its lookup table"
    )
    a.add_argument(
        "--sensor", required=True, help="sensor file name (eo_pipeline.catalogs.sensors)"
    )
    a.add_argument("--out", default=".", help="folder for <sensor>.npz (default: here)")
    a.add_argument(
        "--grid",
        choices=["default", "tiny"],
        default="default",
        help="node set: default (the shipped LUTs) or tiny (tests; a few dozen 6S runs)",
    )
    a.add_argument(
        "--processes", type=int, default=None, help="6S processes at once (default: cores)"
    )
    a.add_argument(
        "--scattering",
        default=None,
        help="sensor-independent scattering table to reuse (default: the shipped one when its "
        "grid matches, else it is computed with 6S: the slow stage)",
    )
    p.set_defaults(handler=_cmd_atmosphere)

    p = sub.add_parser("demo", help="the main job on simulated scenes (what `make demo` runs)")
    p.add_argument("--out", default="demo-output", help="output folder (default: ./demo-output)")
    p.add_argument("--no-serve", action="store_true", help="do not start the STAC API at the end")
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser("sensors", help="list, show and check sensor files")
    ss = p.add_subparsers(dest="action", required=True)
    q = ss.add_parser("list", help="every known sensor and where its file is")
    q.set_defaults(handler=_cmd_sensors)
    q = ss.add_parser("show", help="one sensor's bands and radiometry")
    q.add_argument("name", metavar="NAME|FILE", help="a sensor name or a sensor file")
    q.set_defaults(handler=_cmd_sensors)
    q = ss.add_parser("check", help="validate sensor files (errors name file:line and key)")
    q.add_argument("files", nargs="+", metavar="FILE", help="sensor files (YAML or JSON)")
    q.set_defaults(handler=_cmd_sensors)
    for name, command in sub.choices.items():
        if name not in ("simulate", "sensors"):  # simulate has its own --sensor
            command.add_argument(
                "--sensor",
                dest="sensors",
                action="append",
                metavar="NAME|FILE",
                help="a sensor by name, or a sensor file to use (repeatable); see "
                "`eo-pipeline sensors`",
            )
    return parser


def _version() -> str:
    from eo_pipeline import __version__

    return f"eo-pipeline {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: _Handler = args.handler
    try:
        if args.command != "sensors":
            _use_sensors(args)
        return handler(args)
    except EOPipelineError as err:
        print(f"eo-pipeline {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

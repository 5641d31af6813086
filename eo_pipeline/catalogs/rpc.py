"""Rational polynomial camera models (RPC00B): one type for every file that carries one.

An RPC maps a ground point (longitude, latitude in degrees on WGS84, height in metres above
the **ellipsoid**) to an image point (line, sample)::

    line   = LINE_NUM(P, L, H) / LINE_DEN(P, L, H) * LINE_SCALE + LINE_OFF
    sample = SAMP_NUM(P, L, H) / SAMP_DEN(P, L, H) * SAMP_SCALE + SAMP_OFF

with ``L = (lon - LONG_OFF) / LONG_SCALE``, ``P = (lat - LAT_OFF) / LAT_SCALE``,
``H = (h - HEIGHT_OFF) / HEIGHT_SCALE`` and each polynomial the 20 cubic terms in the NITF
RPC00B order (:data:`TERMS`). That is the *inverse* localisation (ground -> image);
:meth:`RPCModel.localize` solves it for the ground point of an image point at a given height
(the *direct* localisation) by Newton iteration, as GDAL's RPC transformer does.

Pixel convention
----------------
:class:`RPCModel` is always **0-based at pixel centres** (NITF RPC00B, GDAL's RPC metadata,
``_RPC.TXT``, ``.RPB``, GeoTIFF RPC tags, OSSIM ``.geom``): line 0, sample 0 is the centre of
the first pixel, so array index ``[i, j]`` is line ``i``, sample ``j``. Airbus DIMAP V2
``RPC_*.XML`` files are **1-based** (the first pixel centre is 1, 1): :func:`read_rpc` takes
1 off their ``LINE_OFF``/``SAMP_OFF`` (as GDAL's DIMAP driver does).

Readers: :func:`read_rpc` (DIMAP ``RPC_*.XML``, ``*_RPC.TXT``, ``*.RPB``, OSSIM ``*.geom``,
a GeoTIFF with RPC tags) and :meth:`RPCModel.from_gdal` (GDAL's RPC metadata dictionary,
``rasterio``'s ``src.rpcs.to_gdal()``).

Examples
--------
>>> m = RPCModel.from_gdal(example_rpc())
>>> row, col = m.project(37.0, 45.0, 100.0)
>>> lon, lat = m.localize(row, col, 100.0)
>>> bool(abs(lon - 37.0) < 1e-9 and abs(lat - 45.0) < 1e-9)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from eo_pipeline.errors import MetadataError

__all__ = ["SCALARS", "TERMS", "RPCModel", "example_rpc", "find_rpc_file", "fit_rpc", "read_rpc"]

TERMS = (
    "1", "L", "P", "H", "LP", "LH", "PH", "LL", "PP", "HH",
    "PLH", "LLL", "LPP", "LHH", "LLP", "PPP", "PHH", "LLH", "PPH", "HHH",
)  # fmt: skip
"""The 20 monomials of an RPC00B polynomial, in coefficient order (L lon, P lat, H height)."""
SCALARS = (
    "LINE_OFF", "SAMP_OFF", "LAT_OFF", "LONG_OFF", "HEIGHT_OFF",
    "LINE_SCALE", "SAMP_SCALE", "LAT_SCALE", "LONG_SCALE", "HEIGHT_SCALE",
)  # fmt: skip
"""GDAL metadata keys of the ten normalisation numbers."""
_POLYS = ("LINE_NUM_COEFF", "LINE_DEN_COEFF", "SAMP_NUM_COEFF", "SAMP_DEN_COEFF")
_FIX = (
    "ask the provider for the complete RPC file (20 coefficients per polynomial, 10 offsets/scales)"
)


def _monomials(
    x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The 20 RPC00B monomials of (x=L, y=P, z=H), stacked on a new last axis."""
    one = np.ones_like(x)
    return np.stack(
        [
            one, x, y, z, x * y, x * z, y * z, x * x, y * y, z * z,
            x * y * z, x**3, x * y * y, x * z * z, x * x * y, y**3, y * z * z, x * x * z,
            y * y * z, z**3,
        ],
        axis=-1,
    )  # fmt: skip


@dataclass(frozen=True)
class RPCModel:
    """An RPC00B camera model, 0-based at pixel centres (see the module docstring).

    Heights are metres above the WGS84 ellipsoid; longitudes and latitudes in degrees.
    """

    line_off: float
    """Line offset (0-based pixel centres)."""
    samp_off: float
    """Sample offset (0-based pixel centres)."""
    lat_off: float
    """Latitude offset (degrees)."""
    long_off: float
    """Longitude offset (degrees)."""
    height_off: float
    """Height offset (metres above the ellipsoid): the scene's mean height."""
    line_scale: float
    """Line scale."""
    samp_scale: float
    """Sample scale."""
    lat_scale: float
    """Latitude scale (degrees)."""
    long_scale: float
    """Longitude scale (degrees)."""
    height_scale: float
    """Height scale (metres)."""
    line_num: tuple[float, ...]
    """20 coefficients of the line numerator, :data:`TERMS` order."""
    line_den: tuple[float, ...]
    """20 coefficients of the line denominator."""
    samp_num: tuple[float, ...]
    """20 coefficients of the sample numerator."""
    samp_den: tuple[float, ...]
    """20 coefficients of the sample denominator."""
    err_bias: float | None = None
    """Bias error (metres, horizontal) when the file states it."""
    err_rand: float | None = None
    """Random error (metres) when the file states it."""
    source: str = ""
    """Where the model was read from (for messages and lineage)."""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """Format-specific facts: ``validity`` (lon/lat box), Airbus ``direct`` coefficients."""

    def __post_init__(self) -> None:
        for name in ("line_num", "line_den", "samp_num", "samp_den"):
            if len(getattr(self, name)) != 20:
                raise MetadataError(
                    f"{self.source or 'RPC'}: {name.upper()} has {len(getattr(self, name))} "
                    f"coefficients, RPC00B needs 20; {_FIX}"
                )
        for name in ("line_scale", "samp_scale", "lat_scale", "long_scale", "height_scale"):
            if not getattr(self, name):
                raise MetadataError(f"{self.source or 'RPC'}: {name.upper()} is 0; {_FIX}")

    # ------------------------------------------------------------------ conversions
    @classmethod
    def from_gdal(cls, md: Mapping[str, Any], *, source: str = "") -> RPCModel:
        """From GDAL's RPC metadata dictionary (``LINE_OFF``..., coefficients as text or lists).

        Accepts what ``rasterio``'s ``RPC.to_gdal()`` and GDAL's ``RPC`` metadata domain give.
        """
        up = {str(k).upper(): v for k, v in md.items()}
        missing = [k for k in (*SCALARS, *_POLYS) if k not in up]
        if missing:
            raise MetadataError(f"{source or 'RPC metadata'}: missing {', '.join(missing)}; {_FIX}")

        def num(key: str) -> float:
            text = str(up[key]).split()[0] if isinstance(up[key], str) else up[key]
            try:
                return float(text)
            except (TypeError, ValueError):
                raise MetadataError(
                    f"{source or 'RPC'}: {key} = {up[key]!r} is not a number"
                ) from None

        def coeffs(key: str) -> tuple[float, ...]:
            value = up[key]
            items = value.split() if isinstance(value, str) else list(value)
            try:
                out = tuple(float(v) for v in items)
            except ValueError:
                raise MetadataError(f"{source or 'RPC'}: {key} holds a non-number") from None
            if len(out) != 20:
                raise MetadataError(
                    f"{source or 'RPC'}: {key} has {len(out)} coefficients, RPC00B needs 20; {_FIX}"
                )
            return out

        def opt(key: str) -> float | None:
            return num(key) if key in up and str(up[key]).strip() not in ("", "-1") else None

        return cls(
            line_off=num("LINE_OFF"), samp_off=num("SAMP_OFF"), lat_off=num("LAT_OFF"),
            long_off=num("LONG_OFF"), height_off=num("HEIGHT_OFF"),
            line_scale=num("LINE_SCALE"), samp_scale=num("SAMP_SCALE"),
            lat_scale=num("LAT_SCALE"), long_scale=num("LONG_SCALE"),
            height_scale=num("HEIGHT_SCALE"),
            line_num=coeffs("LINE_NUM_COEFF"), line_den=coeffs("LINE_DEN_COEFF"),
            samp_num=coeffs("SAMP_NUM_COEFF"), samp_den=coeffs("SAMP_DEN_COEFF"),
            err_bias=opt("ERR_BIAS"),
            err_rand=opt("ERR_RAND"),
            source=source,
        )  # fmt: skip

    def to_gdal(self) -> dict[str, str]:
        """GDAL's RPC metadata dictionary (what ``rasterio.rpc.RPC.from_gdal`` takes)."""
        out = {k: repr(float(getattr(self, k.lower()))) for k in SCALARS}
        for key in _POLYS:
            values = getattr(self, key.lower().replace("_coeff", ""))
            out[key] = " ".join(repr(float(v)) for v in values)
        if self.err_bias is not None:
            out["ERR_BIAS"] = repr(self.err_bias)
        if self.err_rand is not None:
            out["ERR_RAND"] = repr(self.err_rand)
        return out

    def to_dimap_xml(self) -> str:
        """An Airbus DIMAP V2 ``RPC_*.XML`` document of this model (1-based pixels, inverse
        model only), which :func:`read_rpc` and GDAL's DIMAP driver read back."""
        inv = []
        for key in _POLYS:
            values = getattr(self, key.lower().replace("_coeff", ""))
            inv += [f"        <{key}_{i}>{float(v)!r}</{key}_{i}>" for i, v in enumerate(values, 1)]
        scal = dict(self.to_gdal())
        scal["LINE_OFF"] = repr(self.line_off + 1.0)
        scal["SAMP_OFF"] = repr(self.samp_off + 1.0)
        order = ("LONG_SCALE", "LONG_OFF", "LAT_SCALE", "LAT_OFF", "HEIGHT_SCALE", "HEIGHT_OFF",
                 "SAMP_SCALE", "SAMP_OFF", "LINE_SCALE", "LINE_OFF")  # fmt: skip
        validity = "\n".join(f"        <{k}>{scal[k]}</{k}>" for k in order)
        body = "\n".join(inv)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Dimap_Document>\n'
            "  <Metadata_Identification>\n"
            '    <METADATA_FORMAT version="2.0">DIMAP</METADATA_FORMAT>\n'
            "    <METADATA_PROFILE>KZ1_SENSOR</METADATA_PROFILE>\n"
            "    <METADATA_SUBPROFILE>RPC</METADATA_SUBPROFILE>\n"
            "  </Metadata_Identification>\n  <Rational_Function_Model>\n    <Global_RFM>\n"
            f"      <Inverse_Model>\n{body}\n      </Inverse_Model>\n"
            f"      <RFM_Validity>\n{validity}\n      </RFM_Validity>\n"
            "    </Global_RFM>\n  </Rational_Function_Model>\n</Dimap_Document>\n"
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (GDAL keys; lists of numbers); :meth:`from_dict` reverses it."""
        out: dict[str, Any] = {k: float(getattr(self, k.lower())) for k in SCALARS}
        for key in _POLYS:
            out[key] = [float(v) for v in getattr(self, key.lower().replace("_coeff", ""))]
        if self.err_bias is not None:
            out["ERR_BIAS"] = self.err_bias
        if self.err_rand is not None:
            out["ERR_RAND"] = self.err_rand
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "") -> RPCModel:
        """The model of :meth:`as_dict` (or any GDAL-style mapping)."""
        return cls.from_gdal(d, source=source)

    def shifted(self, line0: float, samp0: float) -> RPCModel:
        """The model of a window whose first pixel is (``line0``, ``samp0``) of this image."""
        return replace(self, line_off=self.line_off - line0, samp_off=self.samp_off - samp0)

    # ------------------------------------------------------------------ localisation
    def project(
        self, lon: ArrayLike, lat: ArrayLike, height: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Inverse localisation: (line, sample) of ground points (0-based pixel centres)."""
        lon_a, lat_a, h_a = np.broadcast_arrays(
            np.asarray(lon, np.float64), np.asarray(lat, np.float64), np.asarray(height, np.float64)
        )
        L = (lon_a - self.long_off) / self.long_scale
        P = (lat_a - self.lat_off) / self.lat_scale
        H = (h_a - self.height_off) / self.height_scale
        m = _monomials(L, P, H)
        coeff = np.array([self.line_num, self.line_den, self.samp_num, self.samp_den]).T
        ln, ld, sn, sd = np.moveaxis(m @ coeff, -1, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            line = ln / ld * self.line_scale + self.line_off
            samp = sn / sd * self.samp_scale + self.samp_off
        return line, samp

    def localize(
        self,
        line: ArrayLike,
        samp: ArrayLike,
        height: ArrayLike,
        *,
        tol: float = 1e-8,
        max_iter: int = 30,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Direct localisation: (lon, lat) seen at image points (line, sample) at ``height``.

        Newton iteration on :meth:`project` (Jacobian by central differences), started from
        the offsets; converges to ``tol`` pixels (1e-8 by default) in a few steps.

        Raises
        ------
        MetadataError
            When the iteration does not converge (a point far outside the model's domain).
        """
        line_a, samp_a, h_a = np.broadcast_arrays(
            np.asarray(line, np.float64),
            np.asarray(samp, np.float64),
            np.asarray(height, np.float64),
        )
        lon = np.full(line_a.shape, self.long_off)
        lat = np.full(line_a.shape, self.lat_off)
        dlon, dlat = 1e-4 * self.long_scale, 1e-4 * self.lat_scale
        for _ in range(max_iter):
            r0, c0 = self.project(lon, lat, h_a)
            er, ec = line_a - r0, samp_a - c0
            if np.all(np.hypot(er, ec) < tol):
                return lon, lat
            r1, c1 = self.project(lon + dlon, lat, h_a)
            r2, c2 = self.project(lon - dlon, lat, h_a)
            r3, c3 = self.project(lon, lat + dlat, h_a)
            r4, c4 = self.project(lon, lat - dlat, h_a)
            a, b = (r1 - r2) / (2 * dlon), (r3 - r4) / (2 * dlat)  # dline/dlon, dline/dlat
            c, d = (c1 - c2) / (2 * dlon), (c3 - c4) / (2 * dlat)  # dsamp/dlon, dsamp/dlat
            det = a * d - b * c
            with np.errstate(divide="ignore", invalid="ignore"):
                lon = lon + (d * er - b * ec) / det
                lat = lat + (-c * er + a * ec) / det
        r0, c0 = self.project(lon, lat, h_a)
        worst = float(np.nanmax(np.hypot(line_a - r0, samp_a - c0)))
        if not worst < 0.1:  # a tenth of a pixel: GDAL's own threshold is 0.1
            raise MetadataError(
                f"{self.source or 'RPC'}: direct localisation did not converge (residual "
                f"{worst:.3g} px); the image points lie outside the model's domain"
            )
        return lon, lat

    def direct_polynomial(
        self, line: ArrayLike, samp: ArrayLike, height: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lon, lat) from the Airbus DIMAP *direct* polynomials, when the file had them.

        Raises
        ------
        MetadataError
            When the model has no direct polynomials (only DIMAP ``RPC_*.XML`` carry them).
        """
        direct = self.extra.get("direct")
        if not direct:
            raise MetadataError(
                f"{self.source or 'RPC'}: no direct (image -> ground) polynomials; use localize()"
            )
        line_a, samp_a, h_a = np.broadcast_arrays(
            np.asarray(line, np.float64),
            np.asarray(samp, np.float64),
            np.asarray(height, np.float64),
        )
        x = (samp_a - self.samp_off) / self.samp_scale
        y = (line_a - self.line_off) / self.line_scale
        z = (h_a - self.height_off) / self.height_scale
        m = _monomials(x, y, z)
        coeff = np.array(
            [direct["lon_num"], direct["lon_den"], direct["lat_num"], direct["lat_den"]]
        ).T
        xn, xd, yn, yd = np.moveaxis(m @ coeff, -1, 0)
        return xn / xd * self.long_scale + self.long_off, yn / yd * self.lat_scale + self.lat_off

    def footprint(
        self, rows: int, cols: int, height: float | tuple[float, float] = 0.0, *, n: int = 8
    ) -> list[tuple[float, float]]:
        """Ground (lon, lat) ring around an image of ``rows`` x ``cols`` pixels.

        ``n`` points per edge at the outer pixel edges; with a (low, high) height pair the
        ring encloses the ground seen at both heights (the convex hull of both rings).
        """
        heights = (height, height) if isinstance(height, int | float) else height
        t = np.linspace(0.0, 1.0, n, endpoint=False)
        top, right = -0.5, cols - 0.5
        bottom, left = rows - 0.5, -0.5
        line = np.concatenate(
            [np.full(n, top), top + t * rows, np.full(n, bottom), bottom - t * rows]
        )
        samp = np.concatenate(
            [left + t * cols, np.full(n, right), right - t * cols, np.full(n, left)]
        )
        rings = [np.column_stack(self.localize(line, samp, h)) for h in heights]
        pts = np.concatenate(rings)
        if heights[0] == heights[1]:
            return [(float(a), float(b)) for a, b in rings[0]]
        import shapely

        hull = shapely.MultiPoint(pts).convex_hull
        return [(float(a), float(b)) for a, b in list(hull.exterior.coords)[:-1]]

    def view_tan(self, line: float | None = None, samp: float | None = None) -> float:
        """tan(viewing angle from the vertical) at an image point (the centre by default).

        Measured on the model: how far the ground point moves horizontally per metre of
        height. A height error ``dh`` moves the orthoimage by ``dh * view_tan()`` metres.
        """
        line = self.line_off if line is None else line
        samp = self.samp_off if samp is None else samp
        h0, h1 = self.height_off - 50.0, self.height_off + 50.0
        lon0, lat0 = self.localize(line, samp, h0)
        lon1, lat1 = self.localize(line, samp, h1)
        lat_m = 111_132.954 * float(lat1 - lat0)
        lon_m = 111_319.49 * math.cos(math.radians(float(lat0))) * float(lon1 - lon0)
        return math.hypot(lat_m, lon_m) / (h1 - h0)


def _fit_one(
    m: NDArray[np.float64], target: NDArray[np.float64], ridge: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Numerator and denominator of ``target = num(m) / den(m)`` (den[0] = 1), linearised
    least squares re-weighted by 1/den (Tao & Hu 2001), with a small ridge."""
    den: NDArray[Any] = np.ones(len(target))
    coef: NDArray[Any] = np.zeros(39)
    for _ in range(4):
        a = np.hstack([m, -target[:, None] * m[:, 1:]]) / den[:, None]
        b = target / den
        lhs = a.T @ a + ridge * np.eye(39)
        coef = np.linalg.solve(lhs, a.T @ b)
        den = m @ np.concatenate([[1.0], coef[20:]])
    return tuple(float(v) for v in coef[:20]), (1.0, *(float(v) for v in coef[20:]))


def fit_rpc(
    lon: ArrayLike, lat: ArrayLike, height: ArrayLike, line: ArrayLike, samp: ArrayLike,
    *, ridge: float = 1e-12, source: str = "fitted",
) -> RPCModel:  # fmt: skip
    """Fit an RPC00B model to ground control points (e.g. from a physical sensor model).

    Normalisation from the points' ranges; each of line and sample is fitted by linearised
    least squares with denominator re-weighting. Check the fit with :meth:`RPCModel.project`
    on independent points.

    Examples
    --------
    >>> g = np.meshgrid(np.linspace(0, 1, 6), np.linspace(0, 1, 6), np.linspace(0, 1000, 4))
    >>> lon, lat, h = 37 + 0.1 * g[0].ravel(), 45 + 0.1 * g[1].ravel(), g[2].ravel()
    >>> m = fit_rpc(lon, lat, h, (45.1 - lat) * 1e4 + 0.01 * h, (lon - 37) * 1e4)
    >>> r, c = m.project(37.05, 45.05, 500.0)
    >>> round(float(r), 3), round(float(c), 3)
    (505.0, 500.0)
    """
    lo, la, h = (np.asarray(v, np.float64).ravel() for v in (lon, lat, height))
    ln, sp = (np.asarray(v, np.float64).ravel() for v in (line, samp))

    def norm(v: NDArray[np.float64]) -> tuple[float, float]:
        off = float((v.max() + v.min()) / 2)
        return off, float(max((v.max() - v.min()) / 2, 1e-9))

    (lon_o, lon_s), (lat_o, lat_s), (h_o, h_s) = norm(lo), norm(la), norm(h)
    (ln_o, ln_s), (sp_o, sp_s) = norm(ln), norm(sp)
    m = _monomials((lo - lon_o) / lon_s, (la - lat_o) / lat_s, (h - h_o) / h_s)
    line_num, line_den = _fit_one(m, (ln - ln_o) / ln_s, ridge)
    samp_num, samp_den = _fit_one(m, (sp - sp_o) / sp_s, ridge)
    return RPCModel(
        line_off=ln_o, samp_off=sp_o, lat_off=lat_o, long_off=lon_o, height_off=h_o,
        line_scale=ln_s, samp_scale=sp_s, lat_scale=lat_s, long_scale=lon_s, height_scale=h_s,
        line_num=line_num, line_den=line_den, samp_num=samp_num, samp_den=samp_den,
        source=source,
    )  # fmt: skip


def example_rpc() -> dict[str, str]:
    """A small, well-conditioned RPC (a 10 000 x 10 000 image near 37 E 45 N) for examples."""
    line_num = [0.0] * 20
    samp_num = [0.0] * 20
    den = [1.0] + [0.0] * 19
    line_num[2], line_num[3], line_num[4] = -1.0, 0.02, 1e-3  # line ~ -lat
    samp_num[1], samp_num[3], samp_num[7] = 1.0, 0.05, 1e-3  # sample ~ lon
    md = {
        "LINE_OFF": "5000", "SAMP_OFF": "5000", "LAT_OFF": "45", "LONG_OFF": "37",
        "HEIGHT_OFF": "200", "LINE_SCALE": "5000", "SAMP_SCALE": "5000", "LAT_SCALE": "0.05",
        "LONG_SCALE": "0.07", "HEIGHT_SCALE": "500",
    }  # fmt: skip
    for key, values in zip(_POLYS, (line_num, den, samp_num, den), strict=True):
        md[key] = " ".join(repr(v) for v in values)
    return md


def read_rpc(path: str | Path) -> RPCModel:
    """Read an RPC file (DIMAP ``RPC_*.XML``, ``*_RPC.TXT``, ``*.RPB``, ``.geom``, an image
    with RPC tags); see :func:`eo_pipeline.catalogs.rpc_files.read_rpc`.

    Examples
    --------
    >>> read_rpc("/no/such/RPC.XML")
    Traceback (most recent call last):
    ...
    eo_pipeline.errors.MetadataError: /no/such/RPC.XML: no such RPC file; give the product's RPC_*.XML, *_RPC.TXT, *.RPB, .geom or an image with RPC tags
    """
    from eo_pipeline.catalogs import rpc_files

    return rpc_files.read_rpc(path)


def find_rpc_file(document: Path) -> Path | None:
    """The ``RPC_*.XML`` beside a DIMAP ``DIM_*.XML`` document (``None`` when absent)."""
    stem = document.name[4:] if document.name.upper().startswith("DIM_") else document.name
    exact = document.parent / f"RPC_{stem}"
    if exact.is_file():
        return exact
    found = sorted(document.parent.glob("RPC_*.XML")) + sorted(document.parent.glob("RPC_*.xml"))
    return found[0] if found else None

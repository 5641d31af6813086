"""Mask kernels against straightforward numpy references (hypothesis) and the USGS QA tables."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eo_pipeline.kernels import masks as k
from eo_pipeline.steps.masking import SpectralTests

E8 = np.empty((0, 0), np.uint8)
E16 = np.empty((0, 0), np.uint16)
E32 = np.empty((0, 0), np.float32)


def reference_qa(
    qa: np.ndarray,
    radsat: np.ndarray | None = None,
    dilated_as_cloud: bool = True,
    conf: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> np.ndarray:
    """Plain numpy decoding of Landsat C2 QA_PIXEL (LSDS-1619 bit table) into our mask."""
    q = qa.astype(np.int64)

    def bit(n: int) -> np.ndarray:
        return (q >> n) & 1 == 1

    def pair(n: int) -> np.ndarray:
        return (q >> n) & 3

    cloud_c, shadow_c, snow_c, cirrus_c = conf
    cloud = bit(3) | (bit(1) & dilated_as_cloud) | ((cloud_c > 0) & (pair(8) >= cloud_c))
    shadow = bit(4) | ((shadow_c > 0) & (pair(10) >= shadow_c))
    snow = bit(5) | ((snow_c > 0) & (pair(12) >= snow_c))
    water = bit(7)
    cirrus = bit(2) | ((cirrus_c > 0) & (pair(14) >= cirrus_c))
    sat = np.zeros(q.shape, bool) if radsat is None else (radsat.astype(np.int64) & 0x1FF) != 0
    out = (
        cloud * k.CLOUD
        + shadow * k.SHADOW
        + snow * k.SNOW
        + water * k.WATER
        + cirrus * k.CIRRUS
        + sat * k.SATURATED
    )
    out = out + (~(cloud | shadow | cirrus | sat)) * k.CLEAR
    return np.where(bit(0), k.NODATA, out).astype(np.uint8)


def run_qa(qa: np.ndarray, radsat: np.ndarray = E16, prior: np.ndarray = E8, **kw: object):
    out = np.empty(qa.shape, np.uint8)
    conf = kw.get("conf", (0, 0, 0, 0))
    k.qa_pixel_to_mask(qa, radsat, prior, kw.get("dilated", True), *conf, out)
    return out


@pytest.mark.parametrize(
    ("value", "names", "confidences"),
    [
        # LSDS-1619 QA_PIXEL value interpretations (Landsat 8-9): confidences cloud, shadow,
        # snow, cirrus as 0 none / 1 low / 2 medium / 3 high.
        (1, ("nodata",), None),
        (21824, ("clear",), (1, 1, 1, 1)),  # "clear with lows set"
        (21952, ("water", "clear"), (1, 1, 1, 1)),  # "water with lows set"
        (55052, ("cloud", "cirrus"), (3, 1, 1, 3)),  # high-confidence cloud and cirrus
        (22280, ("cloud",), (3, 1, 1, 1)),  # high-confidence cloud
        (21762, ("cloud",), (1, 1, 1, 1)),  # dilated cloud over land
        (23888, ("shadow",), (1, 3, 1, 1)),  # high-confidence cloud shadow
        (30048, ("snow", "clear"), (1, 1, 3, 1)),  # high-confidence snow/ice
    ],
)
def test_known_qa_values(value: int, names: tuple[str, ...], confidences) -> None:
    out = run_qa(np.array([[value]], np.uint16))
    got = k.mask_names(int(out[0, 0]))
    # "clear" also stands for the absence of cloud/shadow/cirrus in our format
    assert got == names
    if confidences is not None:
        pairs = tuple((value >> s) & 3 for s in (8, 10, 12, 14))
        assert pairs == confidences


def test_clear_bit_matches_usgs_clear_bit() -> None:
    """USGS bit 6 (clear) is set exactly when neither cloud bit 3 nor dilated bit 1 is set."""
    for value in (21824, 21952, 22280, 55052, 21762, 23888, 30048):
        usgs_clear = bool(value >> 6 & 1)
        assert usgs_clear == (not (value >> 3 & 1 or value >> 1 & 1))


@settings(max_examples=60, deadline=None)
@given(
    qa=hnp.arrays(np.uint16, st.tuples(st.integers(1, 9), st.integers(1, 9))),
    dilated=st.booleans(),
    conf=st.tuples(*(st.integers(0, 3) for _ in range(4))),
)
def test_qa_matches_numpy_for_any_uint16(qa: np.ndarray, dilated: bool, conf) -> None:
    out = run_qa(qa, dilated=dilated, conf=conf)
    np.testing.assert_array_equal(out, reference_qa(qa, None, dilated, conf))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shape=st.tuples(st.integers(1, 8), st.integers(1, 8)))
def test_qa_with_radsat_and_prior(data: st.DataObject, shape: tuple[int, int]) -> None:
    qa = data.draw(hnp.arrays(np.uint16, shape))
    radsat = data.draw(hnp.arrays(np.uint16, shape))
    prior = data.draw(hnp.arrays(np.uint8, shape, elements=st.sampled_from([0, 1, 64, 128])))
    out = run_qa(qa, radsat, prior)
    ref = reference_qa(qa, radsat)
    sat_prior = (prior & k.SATURATED) != 0
    ref = np.where(sat_prior & (ref != k.NODATA), (ref | k.SATURATED) & (0xFF ^ k.CLEAR), ref)
    ref = np.where((prior & k.NODATA) != 0, k.NODATA, ref).astype(np.uint8)
    np.testing.assert_array_equal(out, ref)


def test_qa_real_band_matches_numpy(landsat_dir) -> None:
    import rasterio

    (path,) = landsat_dir.glob("*_QA_PIXEL.TIF")
    with rasterio.open(path) as src:
        qa = src.read(1)
    out = run_qa(qa)
    np.testing.assert_array_equal(out, reference_qa(qa))
    # the scene has fill, clear land, water, clouds, shadows and snow/ice flags
    for name in ("nodata", "clear", "water", "cloud", "shadow", "cirrus"):
        bit = next(b for b, n, _ in k.MASK_BITS if n == name)
        assert ((out >> bit) & 1).sum() > 0, name


@settings(max_examples=50, deadline=None)
@given(data=st.data(), nb=st.integers(1, 4), shape=st.tuples(st.integers(1, 7), st.integers(1, 7)))
def test_dn_nodata_saturation(data: st.DataObject, nb: int, shape: tuple[int, int]) -> None:
    small = st.integers(0, 5) | st.integers(0, 65535)
    bands = tuple(data.draw(hnp.arrays(np.uint16, shape, elements=small)) for _ in range(nb))
    nodata = np.array([data.draw(st.integers(0, 3)) for _ in range(nb)], np.int64)
    sat = np.array([data.draw(st.integers(3, 65535)) for _ in range(nb)], np.int64)
    out = np.empty(shape, np.uint8)
    k.dn_nodata_saturation(bands, nodata, sat, out)
    stack = np.stack(bands).astype(np.int64)
    is_nodata = (stack == nodata[:, None, None]).any(0)
    is_sat = (stack >= sat[:, None, None]).any(0)
    ref = np.where(is_nodata, k.NODATA, np.where(is_sat, k.SATURATED, k.CLEAR))
    np.testing.assert_array_equal(out, ref)


def reference_dilate(mask: np.ndarray, bit: int, radius: int, drop: int) -> np.ndarray:
    rows, cols = mask.shape
    has = np.pad((mask & bit) != 0, radius)
    grown = np.zeros((rows, cols), bool)
    for dr in range(2 * radius + 1):
        for dc in range(2 * radius + 1):
            grown |= has[dr : dr + rows, dc : dc + cols]
    new = grown & ((mask & bit) == 0) & ((mask & k.NODATA) == 0)
    return np.where(new, (mask | bit) & (0xFF ^ drop), mask).astype(np.uint8)


@settings(max_examples=60, deadline=None)
@given(
    mask=hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 12), st.integers(1, 12)),
        elements=st.sampled_from([0, 1, 2, 128, 130, 144]),
    ),
    radius=st.integers(0, 4),
)
def test_dilate_matches_numpy(mask: np.ndarray, radius: int) -> None:
    out = np.empty_like(mask)
    k.dilate_flag(mask, k.CLOUD, radius, k.CLEAR, out)
    np.testing.assert_array_equal(out, reference_dilate(mask, k.CLOUD, radius, k.CLEAR))


def reference_shadow(
    flags: np.ndarray,
    nir: np.ndarray,
    reference: np.ndarray | None,
    dark_max: float,
    ratio: float,
    rows: np.ndarray,
    cols: np.ndarray,
) -> np.ndarray:
    out = flags.astype(np.int64) & ~k.CLEAR
    dark = nir < dark_max
    if reference is not None:
        dark |= nir < ratio * reference
    cloud = (flags & k.CLOUD) != 0
    h, w = flags.shape
    for r in range(h):
        for c in range(w):
            if not dark[r, c] or flags[r, c] & (k.NODATA | k.CLOUD | k.WATER):
                continue
            for dr, dc in zip(rows, cols, strict=True):
                rr, cc = r - dr, c - dc
                if 0 <= rr < h and 0 <= cc < w and cloud[rr, cc]:
                    out[r, c] |= k.SHADOW
                    break
    clear = (out & k.NOT_CLEAR) == 0
    return (out | clear * k.CLEAR).astype(np.uint8)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    shape=st.tuples(st.integers(1, 10), st.integers(1, 10)),
    offsets=st.lists(st.tuples(st.integers(-4, 4), st.integers(-4, 4)), max_size=6),
    use_ref=st.booleans(),
)
def test_shadow_and_clear_matches_numpy(data: st.DataObject, shape, offsets, use_ref) -> None:
    flags = data.draw(
        hnp.arrays(np.uint8, shape, elements=st.sampled_from([0, 1, 2, 8, 16, 64, 128, 160]))
    )
    nir = data.draw(hnp.arrays(np.float32, shape, elements=st.sampled_from([0.05, 0.2, 0.5])))
    ref = data.draw(hnp.arrays(np.float32, shape, elements=st.sampled_from([0.1, 0.4, np.nan])))
    rows = np.array([o[0] for o in offsets], np.int64)
    cols = np.array([o[1] for o in offsets], np.int64)
    out = np.empty_like(flags)
    k.shadow_and_clear(flags, nir, ref if use_ref else E32, 0.15, 0.6, rows, cols, out)
    expected = reference_shadow(flags, nir, ref if use_ref else None, 0.15, 0.6, rows, cols)
    np.testing.assert_array_equal(out, expected)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    shape=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    radius=st.integers(0, 5),
)
def test_box_mean_matches_numpy(data: st.DataObject, shape, radius: int) -> None:
    values = data.draw(
        hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32) | st.just(np.nan))
    )
    weight = data.draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 1)))
    out = np.empty(shape, np.float32)
    k.box_mean(values, weight, radius, out)
    ok = (weight == 1) & ~np.isnan(values)
    v = np.pad(np.where(ok, values, 0).astype(np.float64), radius)
    n = np.pad(ok.astype(np.int64), radius)
    h, w = shape
    total = sum(
        v[i : i + h, j : j + w] for i in range(2 * radius + 1) for j in range(2 * radius + 1)
    )
    count = sum(
        n[i : i + h, j : j + w] for i in range(2 * radius + 1) for j in range(2 * radius + 1)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


THRESHOLDS = SpectralTests().args()


def run_spectral(bands: dict[str, np.ndarray], prior: np.ndarray = E8) -> np.ndarray:
    shape = bands["blue"].shape
    flags = np.empty(shape, np.uint8)
    k.spectral_flags(
        bands["blue"],
        bands["green"],
        bands["red"],
        bands["nir"],
        bands.get("swir16", E32),
        bands.get("swir22", E32),
        bands.get("cirrus", E32),
        prior,
        *THRESHOLDS,
        flags,
    )
    out = np.empty(shape, np.uint8)
    none = np.empty(0, np.int64)
    k.shadow_and_clear(flags, bands["nir"], E32, 0.15, 0.6, none, none, out)
    return out


reflectance = st.floats(-0.25, 1.5, width=32) | st.just(float("nan")) | st.just(0.0)


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    shape=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    optional=st.sets(st.sampled_from(["swir16", "swir22", "cirrus"])),
)
def test_spectral_flags_invariants(data: st.DataObject, shape, optional) -> None:
    names = ["blue", "green", "red", "nir", *sorted(optional)]
    bands = {n: data.draw(hnp.arrays(np.float32, shape, elements=reflectance)) for n in names}
    prior = data.draw(hnp.arrays(np.uint8, shape, elements=st.sampled_from([0, 1, 64])))
    out = run_spectral(bands, prior)
    any_nan = np.logical_or.reduce([np.isnan(bands[n]) for n in names])
    nodata = ((prior & k.NODATA) != 0) | (any_nan & ((prior & k.SATURATED) == 0))
    # nodata pixels carry only the nodata bit; valid ones never carry it
    np.testing.assert_array_equal(out == k.NODATA, nodata)
    valid = ~nodata
    assert not (out[valid] & k.NODATA).any()
    # saturated prior survives; clear is exactly "no cloud/shadow/cirrus/saturated"
    sat = valid & ((prior & k.SATURATED) != 0)
    assert ((out[sat] & k.SATURATED) != 0).all()
    np.testing.assert_array_equal((out[valid] & k.CLEAR) != 0, (out[valid] & k.NOT_CLEAR) == 0)
    # cloud, snow and water exclude each other
    for a, b in ((k.CLOUD, k.SNOW), (k.CLOUD, k.WATER), (k.SNOW, k.WATER)):
        assert not (((out & a) != 0) & ((out & b) != 0)).any()
    if "cirrus" not in optional:
        assert not (out & k.CIRRUS).any()


def one(values: dict[str, float]) -> dict[str, np.ndarray]:
    return {n: np.array([[v]], np.float32) for n, v in values.items()}


@pytest.mark.parametrize(
    ("pixel", "expected"),
    [
        ({"blue": 0.55, "green": 0.52, "red": 0.5, "nir": 0.5}, "cloud"),
        ({"blue": 0.55, "green": 0.52, "red": 0.5, "nir": 0.5, "swir16": 0.35}, "cloud"),
        ({"blue": 0.9, "green": 0.86, "red": 0.82, "nir": 0.68}, "snow"),
        ({"blue": 0.9, "green": 0.86, "red": 0.82, "nir": 0.68, "swir16": 0.08}, "snow"),
        # an ice cloud: NDSI 0.5 like snow, but bright at 1.6 and 2.2 um
        (
            {"blue": 0.8, "green": 0.78, "red": 0.76, "nir": 0.75, "swir16": 0.25, "swir22": 0.18},
            "cloud",
        ),
        (
            {"blue": 0.9, "green": 0.86, "red": 0.82, "nir": 0.7, "swir16": 0.1, "swir22": 0.04},
            "snow",
        ),
        ({"blue": 0.08, "green": 0.07, "red": 0.04, "nir": 0.02}, "water"),
        ({"blue": 0.05, "green": 0.08, "red": 0.05, "nir": 0.35}, "clear"),  # vegetation
        ({"blue": 0.12, "green": 0.16, "red": 0.22, "nir": 0.28}, "clear"),  # bare soil
        # bright desert/rock: white-ish but its NIR/SWIR ratio rules out cloud
        ({"blue": 0.30, "green": 0.33, "red": 0.36, "nir": 0.40, "swir16": 0.6}, "clear"),
    ],
)
def test_spectral_signatures(pixel: dict[str, float], expected: str) -> None:
    names = k.mask_names(int(run_spectral(one(pixel))[0, 0]))
    assert expected in names
    if expected == "clear":
        assert names == ("clear",)


def test_cirrus_band() -> None:
    px = {"blue": 0.05, "green": 0.08, "red": 0.05, "nir": 0.35, "cirrus": 0.05}
    assert k.mask_names(int(run_spectral(one(px))[0, 0])) == ("cirrus",)


def test_saturated_nan_is_not_nodata() -> None:
    px = one({"blue": float("nan"), "green": 0.9, "red": 0.9, "nir": 0.9})
    assert run_spectral(px, np.array([[k.SATURATED]], np.uint8))[0, 0] == k.SATURATED
    assert run_spectral(px)[0, 0] == k.NODATA

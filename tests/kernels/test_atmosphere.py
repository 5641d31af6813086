"""The numba atmospheric-correction kernel: exact inversion of its own forward model."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from eo_pipeline.kernels import atmosphere as k

SZA = np.array([0.0, 40.0, 70.0])
VZA = np.array([0.0, 30.0])
CRAA = np.array([-1.0, 1.0])
AOT = np.array([0.0, 0.5, 1.0])
AIRMASS = np.array([1.0, 2.0, 4.0])


def _tables(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    path = rng.uniform(0.0, 0.2, (3, 3, 2, 2))
    tdown = rng.uniform(0.6, 1.0, (3, 3))
    tup = rng.uniform(0.6, 1.0, (3, 2))
    sph = rng.uniform(0.0, 0.3, 3)
    return path, tdown, tup, sph


def _run(dn: np.ndarray, sza: float, vza: float, craa: float, aot: float, seed: int,
         lng: np.ndarray, nodata: int = 0, sat: int = 65000) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    shape = dn.shape
    out = np.empty(shape, np.float32)
    mask = np.empty(shape, np.uint8)
    k.correct(
        dn, np.array([1e-5]), np.array([0.0]), False,
        np.broadcast_to(sza, shape), np.broadcast_to(vza, shape), np.broadcast_to(craa, shape),
        np.broadcast_to(aot, shape), 85.0, *_tables(seed), SZA, VZA, CRAA, AOT, lng, AIRMASS,
        np.uint16(nodata), True, np.uint16(sat), True, np.uint8(4), out, mask,
    )  # fmt: skip
    return out, mask


@settings(max_examples=40, deadline=None)
@given(
    rho=st.floats(0.0, 0.5),
    sza=st.floats(0.0, 70.0),
    vza=st.floats(0.0, 30.0),
    craa=st.floats(-1.0, 1.0),
    aot=st.floats(0.0, 1.0),
    seed=st.integers(0, 5),
)
def test_correct_inverts_forward_model(
    rho: float, sza: float, vza: float, craa: float, aot: float, seed: int
) -> None:
    lng = np.log(np.array([[0.95, 0.9, 0.8]]))
    toa = k.forward_toa(
        rho, sza, vza, craa, aot, *_tables(seed), SZA, VZA, CRAA, AOT, lng[0], AIRMASS
    )
    dn = np.full((1, 1, 3), round(toa / 1e-5), dtype=np.uint16)
    out, mask = _run(dn, sza, vza, craa, aot, seed, lng)
    # DN quantization of 1e-5 in TOA; the inversion amplifies it by < 1/(Tg T) ~ 3
    assert np.allclose(out, rho, atol=5e-5), (out, rho)
    assert not mask.any()


def test_empty_atmosphere_is_identity_and_flags_follow_toa() -> None:
    path = np.zeros((3, 3, 2, 2))
    tdown, tup, sph = np.ones((3, 3)), np.ones((3, 2)), np.zeros(3)
    dn = np.array([[[0, 12345, 60000, 40000]]], dtype=np.uint16)
    shape = dn.shape
    out = np.empty(shape, np.float32)
    mask = np.empty(shape, np.uint8)
    sza = np.array([[[30.0, 30.0, 30.0, np.nan]]])
    k.correct(
        dn, np.array([1e-5]), np.array([0.0]), True, sza, np.zeros(shape), np.ones(shape),
        np.zeros(shape), 85.0, path, tdown, tup, sph, SZA, VZA, CRAA, AOT, np.zeros((1, 3)),
        AIRMASS, np.uint16(0), True, np.uint16(60000), True, np.uint8(2), out, mask,
    )  # fmt: skip
    assert np.isnan(out[0, 0, 0]) and np.isnan(out[0, 0, 2]) and np.isnan(out[0, 0, 3])
    assert out[0, 0, 1] == np.float32(0.12345 / np.cos(np.radians(30.0)))
    assert mask.tolist() == [[[0, 0, 2, 0]]]


def test_locate_clamps_and_interpolates() -> None:
    nodes = np.array([0.0, 10.0, 30.0])
    assert k.locate(nodes, -5.0) == (0, 0.0)
    assert k.locate(nodes, 40.0) == (1, 1.0)
    i, w = k.locate(nodes, 20.0)
    assert i == 1 and abs(w - 0.5) < 1e-12


@settings(max_examples=30, deadline=None)
@given(
    sza=st.floats(0.0, 80.0),
    vza=st.floats(0.0, 30.0),
    craa=st.floats(-1.0, 1.0),
    seed=st.integers(0, 5),
    divide_cos=st.booleans(),
    data_seed=st.integers(0, 1000),
)
def test_row_paths_agree_with_the_per_pixel_path(
    sza: float, vza: float, craa: float, seed: int, divide_cos: bool, data_seed: int
) -> None:
    """The three ways through a row give the same numbers: constant geometry and AOT
    (branch-free), constant geometry with an AOT field (coefficients at the AOT nodes, linear
    in AOT), and every input materialised per pixel (full interpolation per change)."""
    rng = np.random.default_rng(data_seed)
    shape = (2, 3, 17)
    dn = rng.integers(0, 40000, shape).astype(np.uint16)
    dn[0, 0, :3] = (0, 65000, 65535)  # nodata, saturated, saturated
    lng = np.log(np.array([[0.95, 0.9, 0.8], [0.97, 0.92, 0.85]]))
    a, b = np.array([2e-5, 2.1e-5]), np.array([-0.1, -0.09])
    field = rng.uniform(0.0, 1.0, shape)
    field[1, 2, 5] = np.nan

    def run(aot: np.ndarray, materialise: bool) -> tuple[np.ndarray, np.ndarray]:
        geo = [np.broadcast_to(v, shape) for v in (sza, vza, craa)]
        if materialise:
            geo, aot = [np.array(g) for g in geo], np.array(aot)
        out = np.empty(shape, np.float32)
        mask = np.empty(shape, np.uint8)
        k.correct(dn, a, b, divide_cos, *geo, aot, 85.0, *_tables(seed), SZA, VZA, CRAA, AOT,
                  lng, AIRMASS, np.uint16(0), True, np.uint16(65000), True, np.uint8(4),
                  out, mask)  # fmt: skip
        return out, mask

    for aot in (np.broadcast_to(np.float64(0.37), shape), field):
        fast, fast_mask = run(aot, materialise=False)
        slow, slow_mask = run(aot, materialise=True)
        np.testing.assert_allclose(fast, slow, rtol=2e-6, atol=1e-7)
        assert np.array_equal(np.isnan(fast), np.isnan(slow))
        assert np.array_equal(fast_mask, slow_mask)
    assert np.isnan(fast[1, 2, 5]) and fast_mask[0, 0, 1] == 4  # NaN AOT; saturated flagged

"""Pan-sharpening kernel: bilinear upsampling against a numpy reference, detail injection."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eo_pipeline.kernels.pansharpen import BROVEY, IHS, pad_edge, sharpen_block


def _bilinear_reference(ms: np.ndarray, ratio: int) -> np.ndarray:
    """Pixel-centre aligned bilinear upsampling with edge clamping (plain numpy)."""
    _, h, w = ms.shape
    yy = np.clip((np.arange(h * ratio) + 0.5) / ratio - 0.5, 0, h - 1)
    xx = np.clip((np.arange(w * ratio) + 0.5) / ratio - 0.5, 0, w - 1)
    y0 = np.minimum(np.floor(yy).astype(int), h - 1)
    x0 = np.minimum(np.floor(xx).astype(int), w - 1)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (yy - y0)[:, None], (xx - x0)[None, :]
    m = ms.astype(np.float64)
    top = m[:, y0][:, :, x0] * (1 - fx) + m[:, y0][:, :, x1] * fx
    bottom = m[:, y1][:, :, x0] * (1 - fx) + m[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bottom * fy


def _run(ms: np.ndarray, pan: np.ndarray, ratio: int, w: np.ndarray, method: int) -> np.ndarray:
    out = np.empty((ms.shape[0], *pan.shape), np.float32)
    sharpen_block(pad_edge(ms), pan, ratio, w, np.ones_like(w), method, np.nan, np.nan, out)
    return out


ms_arrays = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
    elements=st.floats(0.0625, 1.0, width=32),
)


@settings(max_examples=60, deadline=None)
@given(ms_arrays, st.integers(1, 5), st.sampled_from([BROVEY, IHS]))
def test_pan_equal_to_intensity_gives_plain_bilinear(
    ms: np.ndarray, ratio: int, method: int
) -> None:
    w = np.full(ms.shape[0], 1.0 / ms.shape[0], np.float32)
    up = _bilinear_reference(ms, ratio)
    pan = np.tensordot(w, up, axes=1).astype(np.float32)
    got = _run(ms, pan, ratio, w, method)
    np.testing.assert_allclose(got, up, rtol=1e-4, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(ms_arrays, st.integers(2, 4), st.sampled_from([BROVEY, IHS]), st.data())
def test_sharpened_intensity_equals_pan(
    ms: np.ndarray, ratio: int, method: int, data: st.DataObject
) -> None:
    h, w_ = ms.shape[1] * ratio, ms.shape[2] * ratio
    pan = data.draw(hnp.arrays(np.float32, (h, w_), elements=st.floats(0.0625, 1.0, width=32)))
    weights = data.draw(
        hnp.arrays(np.float32, ms.shape[0], elements=st.floats(0.125, 1.0, width=32))
    )
    weights = (weights / weights.sum()).astype(np.float32)
    got = _run(ms, pan, ratio, weights, method)
    np.testing.assert_allclose(np.tensordot(weights, got, axes=1), pan, rtol=1e-4, atol=1e-5)


def test_zero_intensity_and_missing_values_give_nan() -> None:
    ms = np.zeros((2, 2, 2), np.float32)
    pan = np.ones((4, 4), np.float32)
    out = _run(ms, pan, 2, np.float32([0.5, 0.5]), BROVEY)
    assert np.isnan(out).all()  # 0 / 0 -> NaN, never inf
    ms = np.ones((2, 2, 2), np.float32)
    ms[0, 0, 0] = np.nan
    pan[3, 3] = np.nan
    out = _run(ms, pan, 2, np.float32([0.5, 0.5]), IHS)
    assert np.isnan(out[:, 0, 0]).all() and np.isnan(out[:, 3, 3]).all()
    assert np.isfinite(out[:, 3, 0]).all()
    out = np.empty((2, 4, 4), np.float32)
    sharpen_block(
        pad_edge(np.ones((2, 2, 2), np.uint16)),
        np.zeros((4, 4), np.uint16),
        2,
        np.float32([0.5, 0.5]),
        np.ones(2, np.float32),
        IHS,
        0.0,
        0.0,
        out,
    )
    assert np.isnan(out).all()  # PAN nodata 0


@settings(max_examples=40, deadline=None)
@given(ms_arrays, st.integers(2, 4), st.data())
def test_injection_gains_scale_the_detail(ms: np.ndarray, ratio: int, data: st.DataObject) -> None:
    nb = ms.shape[0]
    shape = (ms.shape[1] * ratio, ms.shape[2] * ratio)
    pan = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(0.0625, 1.0, width=32)))
    gains = data.draw(hnp.arrays(np.float32, nb, elements=st.floats(-1.0, 2.0, width=32)))
    w = np.full(nb, 1.0 / nb, np.float32)
    up = _bilinear_reference(ms, ratio)
    intensity = np.tensordot(w, up, axes=1)
    for method, expected in (
        (IHS, up + gains[:, None, None] * (pan - intensity)),
        (BROVEY, up * (1 + gains[:, None, None] * (pan / intensity - 1))),
    ):
        out = np.empty((nb, *shape), np.float32)
        sharpen_block(pad_edge(ms), pan, ratio, w, gains, method, np.nan, np.nan, out)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)

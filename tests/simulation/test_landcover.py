"""Land cover and clouds are functions of ground position: any grid sees the same landscape."""

from __future__ import annotations

import numpy as np

from eo_pipeline.simulation.landcover import CloudParams, LandscapeParams, clouds, landcover


def _params(month: int, seed: int = 7) -> LandscapeParams:
    return LandscapeParams.draw(np.random.default_rng(seed), month=month, extent_m=6000.0)


def test_same_landscape_on_nested_grids() -> None:
    p = _params(7)
    cls2, mix2, bright2 = landcover(p, x0=0.0, y0=0.0, pixel=20.0, rows=64, cols=64)
    # a 10 m grid shifted by half its pixel has every 2nd centre on the 20 m grid's centres
    cls1, mix1, bright1 = landcover(p, x0=5.0, y0=-5.0, pixel=10.0, rows=128, cols=128)
    np.testing.assert_array_equal(cls2, cls1[::2, ::2])
    np.testing.assert_allclose(mix2, mix1[::2, ::2], atol=1e-6)
    np.testing.assert_allclose(bright2, bright1[::2, ::2], atol=1e-6)
    again = landcover(p, x0=0.0, y0=0.0, pixel=20.0, rows=64, cols=64)[0]
    np.testing.assert_array_equal(cls2, again)  # seeded: the same scene every time


def test_classes_ranges_and_seasons() -> None:
    summer = landcover(_params(7), x0=0.0, y0=0.0, pixel=30.0, rows=160, cols=160)
    winter = landcover(_params(1), x0=0.0, y0=0.0, pixel=30.0, rows=160, cols=160)
    for cls, mix, bright in (summer, winter):
        assert cls.dtype == np.uint8 and set(np.unique(cls)) <= set(range(1, 9))
        assert 0.0 <= mix.min() and mix.max() <= 1.0
        assert 0.7 < bright.min() and bright.max() < 1.3
    snow = 6
    assert (winter[0] == snow).mean() > 0.3  # January: mostly snow
    assert (summer[0] == snow).mean() == 0.0  # July: none
    other = landcover(_params(7, seed=8), x0=0.0, y0=0.0, pixel=30.0, rows=160, cols=160)[0]
    assert (other != summer[0]).mean() > 0.2  # another seed, another landscape


def test_cloud_cover_and_shadow_direction() -> None:
    grid = {"x0": 0.0, "y0": 0.0, "pixel": 30.0, "rows": 96, "cols": 160}
    none = CloudParams(seed=3, cover=0.0, size=3000.0, height=300.0, shadow_strength=0.7)
    a0, s0 = clouds(none, sun_zenith=45.0, sun_azimuth=90.0, **grid)
    assert not a0.any() and not s0.any()
    means = []
    for cover in (0.1, 0.4, 0.8):
        c = CloudParams(seed=3, cover=cover, size=3000.0, height=300.0, shadow_strength=0.7)
        alpha, shadow = clouds(c, sun_zenith=45.0, sun_azimuth=90.0, **grid)
        assert alpha.dtype == np.float32 and 0.0 <= alpha.min() and alpha.max() <= 1.0
        means.append(float(alpha.mean()))
        # sun in the east at 45 degrees: a cloud 300 m up shades the ground 300 m (10 px) west
        np.testing.assert_allclose(shadow[:, :-10], alpha[:, 10:], atol=1e-4)
    assert means[0] < means[1] < means[2]

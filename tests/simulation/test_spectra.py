"""Material spectra and the PAN weights derived from them."""

from __future__ import annotations

import numpy as np
import pytest

from eo_pipeline.catalogs import sensors
from eo_pipeline.simulation.spectra import MATERIALS, band_matrix, pan_weights, reflectance_at


def test_spectral_shapes_a_user_recognises() -> None:
    veg = [reflectance_at("vegetation", w) for w in (0.48, 0.56, 0.66, 0.86, 1.61, 2.2)]
    assert veg[3] > 5 * veg[2]  # red edge: NIR far above red
    assert veg[1] > veg[0] and veg[1] > veg[2]  # green peak
    assert reflectance_at("water", 0.86) < 0.01 < reflectance_at("water", 0.48)
    assert reflectance_at("snow", 0.56) > 0.9 > 0.2 > reflectance_at("snow", 1.61)  # NDSI > 0
    assert reflectance_at("sand", 0.30) == reflectance_at("sand", 0.40)  # ends held
    m = band_matrix([0.66, 0.86])
    ndvi = (m[:, 1] - m[:, 0]) / (m[:, 1] + m[:, 0])
    by = dict(zip(MATERIALS, ndvi, strict=True))
    assert by["vegetation"] > 0.7 and by["water"] < 0 and abs(by["concrete"]) < 0.1
    assert m.dtype == np.float32 and m.shape == (len(MATERIALS), 2)


def test_pan_weights_follow_the_pass_band_and_solar_energy() -> None:
    s = sensors.get("kazeosat1")
    pan = s.band("P")
    w = pan_weights(s, pan)
    assert sum(w.values()) == pytest.approx(1.0)
    lo, hi = (
        pan.center_wavelength - pan.full_width_half_max / 2,
        pan.center_wavelength + pan.full_width_half_max / 2,
    )
    for b in s.bands:
        inside = b.common_name != "pan" and lo <= b.center_wavelength <= hi
        assert (b.id in w) == inside
    raw = {k: (s.band(k).esun or 1.0) * s.band(k).full_width_half_max for k in w}
    for k in w:
        assert w[k] == pytest.approx(raw[k] / sum(raw.values()))

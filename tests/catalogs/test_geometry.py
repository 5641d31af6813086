"""Footprints from corners and from projected bounds, across the antimeridian and not."""

from __future__ import annotations

import math

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from eo_pipeline.catalogs.geometry import footprint_from_bounds, footprint_from_corners
from eo_pipeline.errors import MetadataError


def _parts(geometry: dict) -> list[shapely.Polygon]:
    shape = shapely.geometry.shape(geometry)
    return list(shape.geoms) if isinstance(shape, shapely.MultiPolygon) else [shape]


def _all_lons(geometry: dict) -> list[float]:
    return [x for part in _parts(geometry) for x, _ in part.exterior.coords]


def _unwrapped_area(corners: list[tuple[float, float]]) -> float:
    lons = [corners[0][0]]
    for lon, _ in corners[1:]:
        step = lon - lons[-1]
        lons.append(lons[-1] + step - 360.0 * round(step / 360.0))
    return shapely.Polygon(list(zip(lons, [c[1] for c in corners], strict=True))).area


@pytest.mark.parametrize(
    "corners",
    [
        # Landsat 8 path 001 row 070 (south), as printed in its MTL, clockwise UL UR LR LL.
        [
            (-68.73860, -13.40827),
            (-66.61945, -13.39718),
            (-66.59689, -15.50565),
            (-68.73612, -15.51856),
        ],
        # a northern scene (Kazakhstan), counter-clockwise.
        [(70.0, 50.0), (70.0, 49.0), (71.5, 49.0), (71.5, 50.0)],
    ],
)
def test_not_crossing_is_a_ccw_polygon_with_plain_bbox(corners):
    fp = footprint_from_corners(corners)
    assert fp.geometry["type"] == "Polygon"
    assert not fp.crosses_antimeridian
    ring = fp.geometry["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    assert shapely.LinearRing(ring).is_ccw  # RFC 7946 exterior ring orientation
    lons, lats = [c[0] for c in corners], [c[1] for c in corners]
    assert fp.bbox == (min(lons), min(lats), max(lons), max(lats))
    assert fp.bbox[0] < fp.bbox[2]


@pytest.mark.parametrize("south", [True, False])
@pytest.mark.parametrize("start_east", [True, False])
def test_crossing_splits_into_multipolygon_with_west_greater_than_east(south, start_east):
    lat0, lat1 = (-16.0, -15.0) if south else (65.0, 66.0)
    corners = [(179.4, lat1), (-179.3, lat1), (-179.2, lat0), (179.5, lat0)]
    if not start_east:
        corners = corners[1:] + corners[:1]
    fp = footprint_from_corners(corners)
    assert fp.crosses_antimeridian
    assert fp.geometry["type"] == "MultiPolygon"
    parts = _parts(fp.geometry)
    assert len(parts) == 2
    assert all(-180.0 <= x <= 180.0 for x in _all_lons(fp.geometry))
    east_part = next(p for p in parts if p.bounds[0] > 0)
    west_part = next(p for p in parts if p.bounds[2] < 0)
    assert east_part.bounds[2] == 180.0 and west_part.bounds[0] == -180.0
    assert all(shapely.LinearRing(p.exterior.coords).is_ccw for p in parts)
    west, south_, east, north = fp.bbox
    assert west > east
    assert (west, east) == (179.4, -179.2)
    assert (south_, north) == (lat0, lat1)
    assert math.isclose(sum(p.area for p in parts), _unwrapped_area(corners), rel_tol=1e-9)


def test_longitudes_in_0_360_are_the_same_footprint():
    a = footprint_from_corners([(179.5, -1.0), (180.5, -1.0), (180.5, -2.0), (179.5, -2.0)])
    b = footprint_from_corners([(179.5, -1.0), (-179.5, -1.0), (-179.5, -2.0), (179.5, -2.0)])
    assert a == b
    c = footprint_from_corners([(350.0, 10.0), (352.0, 10.0), (352.0, 9.0), (350.0, 9.0)])
    assert c.bbox == (-10.0, 9.0, -8.0, 10.0) and not c.crosses_antimeridian


def test_ring_touching_180_without_crossing_stays_a_polygon():
    fp = footprint_from_corners([(179.0, 1.0), (180.0, 1.0), (180.0, 0.0), (179.0, 0.0)])
    assert fp.geometry["type"] == "Polygon" and fp.bbox == (179.0, 0.0, 180.0, 1.0)


def test_closing_point_is_accepted():
    corners = [(10.0, 1.0), (11.0, 1.0), (11.0, 0.0), (10.0, 0.0)]
    assert footprint_from_corners([*corners, corners[0]]) == footprint_from_corners(corners)


@pytest.mark.parametrize(
    ("corners", "message"),
    [
        ([(0.0, 0.0), (1.0, 1.0)], "at least 3"),
        ([(0.0, 0.0), (1.0, 91.0), (2.0, 0.0)], "not a valid longitude/latitude"),
        ([(0.0, 0.0), (1.0, math.nan), (2.0, 0.0)], "not a valid longitude/latitude"),
        ([(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)], "no area"),
        ([(-120.0, 80.0), (0.0, 80.0), (120.0, 80.0)], "encloses a pole"),
    ],
)
def test_bad_corners_raise_metadata_error(corners, message):
    with pytest.raises(MetadataError, match=message) as err:
        footprint_from_corners(corners, where="scene_MTL.txt")
    assert "scene_MTL.txt" in str(err.value)


@settings(max_examples=60, deadline=None)
@given(
    lon=st.floats(-180.0, 180.0, allow_nan=False),
    lat=st.floats(-80.0, 80.0, allow_nan=False),
    width=st.floats(0.05, 5.0),
    height=st.floats(0.05, 5.0),
    skew=st.floats(-0.5, 0.5),
)
def test_any_small_quadrilateral_keeps_its_area_and_stays_in_range(lon, lat, width, height, skew):
    corners = [
        (lon + skew, lat + height),
        (lon + width + skew, lat + height),
        (lon + width, lat),
        (lon, lat),
    ]
    wrapped = [((x + 180.0) % 360.0 - 180.0, y) for x, y in corners]
    fp = footprint_from_corners(wrapped)
    lons = _all_lons(fp.geometry)
    assert all(-180.0 <= x <= 180.0 for x in lons)
    area = sum(p.area for p in _parts(fp.geometry))
    assert math.isclose(area, _unwrapped_area(corners), rel_tol=1e-6, abs_tol=1e-9)
    west, south, east, north = fp.bbox
    assert south <= north
    # east edge of the ring once its west edge is brought into [-180, 180)
    reaches = max(x for x, _ in corners) - 360.0 * math.floor(
        (min(x for x, _ in corners) + 180) / 360
    )
    if reaches > 180.0 + 1e-6:
        assert fp.crosses_antimeridian and fp.geometry["type"] == "MultiPolygon"
    elif reaches <= 180.0:
        assert not fp.crosses_antimeridian and fp.geometry["type"] == "Polygon"
    assert (west > east) == fp.crosses_antimeridian


def test_bounds_of_the_real_landsat_grid_match_the_printed_corners():
    # CORNER_*_PROJECTION_* of LC08_L2SP_001070_20190114 (EPSG:32619) vs its printed lat/lons.
    fp = footprint_from_bounds((528300.0, -1715700.0, 757800.0, -1482300.0), "EPSG:32619")
    printed = (-68.73860, -15.51856, -66.59689, -13.39718)
    assert fp.geometry["type"] == "Polygon"
    for ours, theirs in zip(fp.bbox, printed, strict=True):
        assert abs(ours - theirs) < 1e-4  # the MTL prints 5 decimals
    # 20 densified points per edge, closed ring.
    assert len(fp.geometry["coordinates"][0]) == 4 * 20 + 1


def test_bounds_crossing_the_antimeridian_south():
    # Sentinel-2 tile 01LAC grid (MTD_TL: ULX 99960, ULY 8300020, 10980 x 10 m), EPSG:32701.
    fp = footprint_from_bounds(
        (99960.0, 8300020.0 - 109800.0, 99960.0 + 109800.0, 8300020.0), 32701
    )
    assert fp.crosses_antimeridian and fp.geometry["type"] == "MultiPolygon"
    west, _, east, _ = fp.bbox
    assert 179.0 < west < 180.0 and -180.0 < east < -179.0


def test_bounds_crossing_the_antimeridian_north():
    # UTM zone 60N, a grid reaching east past 180 degrees at 66N.
    fp = footprint_from_bounds((600000.0, 7300000.0, 720000.0, 7400000.0), 32660)
    assert fp.crosses_antimeridian and fp.bbox[0] > fp.bbox[2]


def test_geographic_bounds_pass_through():
    fp = footprint_from_bounds((10.0, 40.0, 11.0, 41.0), 4326, densify=2)
    assert fp.bbox == (10.0, 40.0, 11.0, 41.0)


@pytest.mark.parametrize(
    ("bounds", "crs", "message"),
    [
        ((0, 0, 1, 1), "EPSG:999999", "unknown CRS"),
        ((5, 0, 1, 1), 32619, "empty bounds"),
    ],
)
def test_bad_bounds_raise(bounds, crs, message):
    with pytest.raises(MetadataError, match=message):
        footprint_from_bounds(bounds, crs)

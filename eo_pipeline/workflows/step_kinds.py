"""The built-in workflow step kinds, one small function each (see :mod:`.registry`).

Each takes the unit's :class:`~eo_pipeline.workflows.registry.UnitState` and the step's
validated parameters. The science lives in :mod:`eo_pipeline.steps`; these functions only
say which data each step reads and what it leaves for the next one. Imports of the steps
are deferred to the call, so parsing a workflow file stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from eo_pipeline.errors import WorkflowError
from eo_pipeline.workflows.registry import UnitState, step

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "calibrate",
    "composite",
    "indices",
    "is_reflectance",
    "mask",
    "orthorectify",
    "pansharpen",
    "reflectance_range",
]

CALIBRATE_TO = ("toa_reflectance", "radiance", "surface_reflectance")
COMPOSITE_METHODS = ("median", "max_ndvi", "bap")
PANSHARPEN_METHODS = ("brovey", "ihs")
MASK_METHODS = ("auto", "qa", "spectral")


@step(
    "orthorectify",
    order=10,
    params={
        "dem": (str,), "vertical_datum": (str,), "geoid": (str,), "voids": (str,),
        "resampling": (str,), "crs": (str,), "height": (float, int),
    },
    choices={
        "vertical_datum": ("ellipsoid", "egm96", "egm2008"), "voids": ("fill", "flag"),
        "resampling": ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average"),
    },
)  # fmt: skip
def orthorectify(state: UnitState, params: Mapping[str, Any]) -> None:
    """Sensor-geometry (Primary) items -> ortho items (COGs + STAC, under the output catalog's
    ``ortho/``), then loaded as the unit's data; map-projected items pass unchanged. Without
    ``dem`` a constant height is used (with a warning stating the error bound)."""
    from eo_pipeline.io.dem import DEMSpec
    from eo_pipeline.io.ortho_product import orthorectify_item
    from eo_pipeline.workflows.process import load_state

    if not any(i.properties.get("eo_pipeline:geometry") == "sensor" for i in state.items):
        return
    dem = None
    if "dem" in params:
        dem = DEMSpec(
            params["dem"], vertical_datum=params.get("vertical_datum"),
            geoid=params.get("geoid"), voids=str(params.get("voids", "fill")),
        )  # fmt: skip
    catalog = Path(state.root or ".") / "ortho"
    items = [
        orthorectify_item(
            i, catalog, dem, crs=params.get("crs"), overwrite=True,
            resampling=str(params.get("resampling", "cubic")), height=params.get("height"),
        )
        if i.properties.get("eo_pipeline:geometry") == "sensor"
        else i
        for i in state.items
    ]  # fmt: skip
    load_state(state, items)


@step(
    "calibrate",
    order=20,
    params={"to": (str,), "per_pixel_sun": (bool,), "atmosphere": (dict,)},
    choices={"to": CALIBRATE_TO},
)
def calibrate(state: UnitState, params: Mapping[str, Any]) -> None:
    """DN -> radiance / TOA / surface reflectance (:func:`eo_pipeline.calibrate`); on
    Level-1 DN, ``surface_reflectance`` is the atmospheric correction, with the step's
    ``atmosphere`` options (``aot550`` a number or an AOT raster file)."""
    from eo_pipeline.steps.calibration import calibrate as run

    kw = dict(params)
    atmosphere = dict(kw.pop("atmosphere", None) or {})
    if isinstance(atmosphere.get("aot550"), str):
        from eo_pipeline.io.fields import read_field

        atmosphere["aot550"] = read_field(atmosphere["aot550"], like=state.dn, what="AOT raster")
    state.data = run(state.dn, **kw, atmosphere=atmosphere or None)


def is_reflectance(wf: Any) -> bool:
    """The workflow calibrates to (TOA or surface) reflectance, not radiance or nothing."""
    cal = wf.step("calibrate")
    return cal is not None and cal.params.get("to", "toa_reflectance") != "radiance"


def reflectance_range(wf: Any) -> tuple[float, float]:
    """The ``mask`` step's ``valid_range``, else
    :data:`eo_pipeline.steps.validity.VALID_REFLECTANCE`."""
    from eo_pipeline.steps.validity import VALID_REFLECTANCE

    mstep = wf.step("mask")
    vr = mstep.params.get("valid_range") if mstep is not None else None
    return (float(vr[0]), float(vr[1])) if vr else VALID_REFLECTANCE


@step(
    "mask",
    order=30,
    params={"method": (str,), "dilate": (int,), "exclude": (list,), "valid_range": (list,)},
    choices={"method": MASK_METHODS},
)
def mask(state: UnitState, params: Mapping[str, Any]) -> None:
    """The unit's mask, from the QA band when loaded, else from the (calibrated) data;
    reflectance outside the physical range is flagged in it (bit 6), and the reflectance
    (hence every product) is NaN where it has one of ``exclude``'s flags (default nodata,
    cloud, shadow, cirrus, saturated; :mod:`eo_pipeline.steps.validity`). Radiance and DN
    are masked, never range-checked."""
    import numpy as np

    from eo_pipeline.steps.masking import masks
    from eo_pipeline.steps.validity import DEFAULT_EXCLUDE, apply_mask, flag_out_of_range

    kwargs = {k: v for k, v in params.items() if k not in ("exclude", "valid_range")}
    state.mask = masks(state.dn if "QA_PIXEL" in state.dn else state.data, **kwargs)
    refl = state.bands()
    if is_reflectance(state.wf):
        state.mask = flag_out_of_range(state.mask, refl, reflectance_range(state.wf))
    if all(np.dtype(v.dtype).kind == "f" for v in refl.data_vars.values()):
        state.refl = apply_mask(refl, state.mask, list(params.get("exclude", DEFAULT_EXCLUDE)))


@step(
    "composite",
    order=40,
    params={"method": (str,), "period": (str,)},
    choices={"method": COMPOSITE_METHODS},
)
def composite(state: UnitState, params: Mapping[str, Any]) -> None:
    """One composite of the unit's dates (the planner made one unit per period and place);
    the mask is used up by it (no mask product)."""
    from eo_pipeline.steps.compositing import composite as run

    # a Dataset in, a Dataset out
    state.refl = cast(
        "xr.Dataset", run(state.bands(), **dict(params, period=None), mask=state.mask)
    )
    state.mask = None


@step(
    "pansharpen",
    order=50,
    params={"method": (str,), "injection": (str,)},
    choices={"method": PANSHARPEN_METHODS, "injection": ("unit", "adaptive")},
)
def pansharpen(state: UnitState, params: Mapping[str, Any]) -> None:
    """The reflectance sharpened with the pan band (loaded on its own grid, calibrated the
    same way as the multispectral bands)."""
    from eo_pipeline.io.loading import load
    from eo_pipeline.steps.calibration import calibrate as run_calibrate
    from eo_pipeline.steps.pansharpening import pansharpen as run

    if not state.pan_ids:
        raise WorkflowError(
            f"unit {state.unit.key}: pansharpen needs a pan band; sensor {state.sensor.name} "
            f"items have {sorted(state.present)}"
        )
    pan_id = state.pan_ids[0]
    pan = load(state.items, bands=state.pan_ids, chunks=state.chunks,
               resolution=state.sensor.band(pan_id).gsd)  # fmt: skip
    cal = state.wf.step("calibrate")
    if cal is not None:
        pan = run_calibrate(pan, **dict(cal.params))
    state.refl = cast("xr.Dataset", run(state.bands(), pan[pan_id], **dict(params)))


@step(
    "indices",
    order=70,
    params={"names": (list,), "optional": (list,), "formulas": (dict,), "constants": (dict,)},
)
def indices(state: UnitState, params: Mapping[str, Any]) -> None:
    """Spectral indices of the (single-date) reflectance: named (ASI) indices, ``optional``
    ones (computed where the unit's sensor has their bands, skipped elsewhere) and custom
    formulas, one fused kernel each, merged; one product per index. Inputs are limited to
    physical reflectance (normalized differences stay in [-1, 1] by construction); each
    index carries its valid range, and indices with a documented (not derived) range are NaN
    outside it (:mod:`eo_pipeline.steps.validity`)."""
    import xarray as xr

    from eo_pipeline.steps.indices import compute_indices
    from eo_pipeline.steps.validity import guard_index, index_inputs, ranges_of

    wf = state.wf
    refl = state.single_scene()
    valid = reflectance_range(wf)
    inputs = index_inputs(refl, valid) if is_reflectance(wf) else refl
    constants = dict(params.get("constants", {}))
    names = list(params.get("names", []))
    if params.get("optional"):  # the indices the unit's sensor has the bands for
        from eo_pipeline.steps.indices import available_indices

        have = set(available_indices(state.sensor, constants=constants))
        names += [n for n in params["optional"] if n in have and n not in names]
    requests: list[Any] = [r for r in (names, dict(params.get("formulas", {}))) if r]
    idx = xr.merge([compute_indices(inputs, r, **constants) for r in requests])
    for name, rng in ranges_of(idx, valid).items():
        var = guard_index(idx[name], rng)
        if rng is not None:
            var.attrs["eo_pipeline:valid_range"] = (rng.minimum, rng.maximum, rng.how)
        packable = rng is not None and max(abs(rng.minimum), abs(rng.maximum)) <= 3.2767
        if wf.output.indices == "int16" and packable:
            var.attrs["eo_pipeline:encoding"] = "int16"
        state.products.append(
            (var.to_dataset(name=name), state.product_name(name), name, ("data", "index"))
        )
        state.index_names.append(name)

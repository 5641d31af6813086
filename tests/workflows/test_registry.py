"""The step registry: a new step kind is one registered function, validated and run in order."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from eo_pipeline.errors import WorkflowError
from eo_pipeline.workflows.plan import plan_units
from eo_pipeline.workflows.process import process_unit
from eo_pipeline.workflows.registry import STEP_KINDS, STEPS, UnitState, step
from eo_pipeline.workflows.spec import parse_workflow

WF = """\
name: t
inputs: {{catalog: {catalog}}}
steps:
  - scale: {{factor: 2.0}}
  - calibrate: {{}}
output: {{catalog: {out}, quicklook: false, reflectance: float32}}
resources: {{chunk_size: 128}}
"""


@pytest.fixture()
def scale_kind() -> Iterator[list[str]]:
    """A test step kind that doubles the reflectance, run after calibrate whatever the order
    the file lists them in."""
    seen: list[str] = []

    @step("scale", order=21, params={"factor": (float,)})
    def scale(state: UnitState, params: Mapping[str, Any]) -> None:
        seen.append("calibrated" if "calibration" in state.data[state.band_vars[0]].attrs else "dn")
        state.refl = state.bands() * params["factor"]

    yield seen
    STEP_KINDS.pop("scale")
    STEPS.pop("scale")


def test_builtin_kinds_are_registered_in_order() -> None:
    orders = {k: STEP_KINDS[k].order for k in ("calibrate", "mask", "composite", "indices")}
    assert orders["calibrate"] < orders["mask"] < orders["composite"] < orders["indices"]
    assert STEPS["calibrate"] == {"to": (str,), "per_pixel_sun": (bool,), "atmosphere": (dict,)}


def test_registered_kind_is_validated_and_run(
    scale_kind: list[str], l1_catalog: Path, tmp_path: Path
) -> None:
    wf = parse_workflow(WF.format(catalog=l1_catalog, out=tmp_path / "a"), "wf.yaml")
    ref = parse_workflow(
        WF.format(catalog=l1_catalog, out=tmp_path / "b").replace("  - scale: {factor: 2.0}\n", ""),
        "ref.yaml",
    )
    unit = plan_units(wf)[0]
    doubled = process_unit(unit, wf, str(tmp_path / "a"))
    plain = process_unit(plan_units(ref)[0], ref, str(tmp_path / "b"))
    assert scale_kind == ["calibrated"]  # ran after calibrate although listed first
    with (
        rasterio.open(tmp_path / "a" / doubled.files[0].path) as a,
        rasterio.open(tmp_path / "b" / plain.files[0].path) as b,
    ):
        np.testing.assert_allclose(a.read(), 2 * b.read(), rtol=1e-6, equal_nan=True)
    with pytest.raises(WorkflowError, match=r"factor.*expected float"):
        parse_workflow(WF.format(catalog=l1_catalog, out=tmp_path).replace("2.0", "'x'"), "w")


def test_duplicate_and_choices() -> None:
    with pytest.raises(WorkflowError, match="registered twice"):

        @step("calibrate", order=1)
        def other(state: UnitState, params: Mapping[str, Any]) -> None:  # pragma: no cover
            pass

    with pytest.raises(WorkflowError, match="'sr' is not one of"):
        parse_workflow(
            "name: t\ninputs: {catalog: x}\nsteps: [{calibrate: {to: sr}}]\noutput: {catalog: o}",
            "w.yaml",
        )

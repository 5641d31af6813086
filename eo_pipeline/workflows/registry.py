"""The step registry: one small function per workflow step kind.

A step kind is a function that takes the unit's :class:`UnitState` and the step's validated
parameters and updates the state (calibrated data, mask, reflectance, extra products).
Registering it with :func:`step` is all a new kind needs: the workflow parser
(:mod:`eo_pipeline.workflows.spec`) learns its parameters from the registration, and
:func:`eo_pipeline.workflows.process.process_unit` runs it. Steps run in the order of their
kind's ``order`` (a workflow file lists *which* steps, not their order), for example::

    @step("orthorectify", order=10, params={"dem": (str,)})
    def orthorectify(state: UnitState, params: Mapping[str, Any]) -> None:
        state.data = ...   # replace the loaded data by its orthorectified version

Built-in kinds live in :mod:`eo_pipeline.workflows.step_kinds` (imported by the parser, so
they are always registered); their orders are ``calibrate`` 20, ``mask`` 30, ``composite``
40, ``pansharpen`` 50, ``indices`` 70 (leave gaps: an atmospheric correction between
``calibrate`` and ``mask`` takes 25, a geometric step before calibration 10).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eo_pipeline.errors import WorkflowError

if TYPE_CHECKING:
    import pystac
    import xarray as xr

    from eo_pipeline.catalogs.sensors import Sensor
    from eo_pipeline.workflows.plan import Unit
    from eo_pipeline.workflows.spec import Workflow

__all__ = ["STEPS", "STEP_KINDS", "Product", "StepKind", "UnitState", "run_steps", "step"]

Product = tuple[Any, str, str, tuple[str, ...]]
"""A raster product before writing: ``(dataset, file stem, asset key, roles)``."""

StepFunction = Callable[["UnitState", Mapping[str, Any]], None]


@dataclass(frozen=True)
class StepKind:
    """A registered step kind."""

    name: str
    """The key in a workflow file's ``steps`` list."""
    run: StepFunction
    """``run(state, params)`` updates the unit's state."""
    order: float
    """Position in a unit's processing (lower first)."""
    params: Mapping[str, tuple[type, ...]]
    """Allowed parameters and their types (checked by the workflow parser)."""
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Parameters restricted to a set of values."""


STEP_KINDS: dict[str, StepKind] = {}
"""Step kind name -> :class:`StepKind`, filled by :func:`step`."""

STEPS: dict[str, dict[str, tuple[type, ...]]] = {}
"""Step kind name -> allowed parameters and their types (the parser's view of the registry)."""


def step(
    name: str,
    *,
    order: float,
    params: Mapping[str, tuple[type, ...]] | None = None,
    choices: Mapping[str, Sequence[str]] | None = None,
) -> Callable[[StepFunction], StepFunction]:
    """Register the decorated function as the step kind ``name``.

    Parameters
    ----------
    name
        The step's key in workflow files (``- calibrate: {to: toa_reflectance}``).
    order
        Where it runs in a unit (see the module docstring for the built-in orders).
    params
        Parameter name -> accepted types (``(str,)``, ``(bool,)``, ``(list,)``...).
    choices
        Parameter name -> the values it may take.

    Raises
    ------
    WorkflowError
        ``name`` is already registered (two kinds would silently shadow each other).
    """

    def register(fn: StepFunction) -> StepFunction:
        if name in STEP_KINDS and STEP_KINDS[name].run is not fn:
            raise WorkflowError(
                f"step kind {name!r} is registered twice ({STEP_KINDS[name].run.__module__} and "
                f"{fn.__module__}); give the new one another name"
            )
        kind = StepKind(
            name=name,
            run=fn,
            order=order,
            params=dict(params or {}),
            choices={k: tuple(v) for k, v in (choices or {}).items()},
        )
        STEP_KINDS[name] = kind
        STEPS[name] = dict(kind.params)
        return fn

    return register


@dataclass
class UnitState:
    """What the steps of one unit work on (mutable: each step updates it in turn).

    Loaded on the multispectral grid; a pan band (finer grid) is loaded apart by the step
    that needs it.
    """

    unit: Unit
    wf: Workflow
    items: list[pystac.Item]
    sensor: Sensor
    chunks: dict[str, int]
    present: set[str]
    """Asset keys of the unit's first item."""
    ms_ids: list[str]
    """Multispectral band ids present (the reflectance product's bands)."""
    pan_ids: list[str]
    """Pan band ids present."""
    dn: xr.Dataset
    """The loaded data as stored (DN; QA bands included)."""
    data: xr.Dataset
    """The current data: ``dn`` until a step (calibrate...) replaces it."""
    mask: xr.DataArray | None = None
    """The unit's mask (``mask`` step); ``None`` once a composite has used it up."""
    refl: xr.Dataset | None = None
    """The reflectance bands once a step has taken them from ``data`` (see :meth:`bands`)."""
    products: list[Product] = field(default_factory=list)
    """Products written after the reflectance (indices...)."""
    index_names: list[str] = field(default_factory=list)
    """Products that get an index map quicklook."""
    root: str = ""
    """The output catalog folder (steps that write intermediate items put them there)."""

    @property
    def band_vars(self) -> list[str]:
        """The multispectral bands present in :attr:`data`."""
        return [v for v in self.ms_ids if v in self.data.data_vars]

    def bands(self) -> xr.Dataset:
        """The reflectance bands: :attr:`refl` once set, else taken from :attr:`data`."""
        if self.refl is None:
            self.refl = self.data[self.band_vars]
        return self.refl

    def single_scene(self) -> xr.Dataset:
        """:meth:`bands` without a length-1 ``time``; several dates left is an error."""
        refl = self.bands()
        if "time" in refl.dims and refl.sizes["time"] == 1:
            refl = refl.isel(time=0, drop=True)
        if "time" in refl.dims:
            raise WorkflowError(
                f"unit {self.unit.key}: {refl.sizes['time']} scenes in one unit without a "
                "composite step"
            )
        self.refl = refl
        return refl

    def product_name(self, product: str) -> str:
        """The file stem of one of the unit's products (the workflow's naming pattern)."""
        from eo_pipeline.workflows.products import product_name

        return product_name(self.wf, self.unit, product)


def run_steps(state: UnitState) -> None:
    """Run the workflow's steps on ``state`` in their kinds' order."""
    kinds = []
    for s in state.wf.steps:
        kind = STEP_KINDS.get(s.name)
        if kind is None:
            raise WorkflowError(
                f"step {s.name!r} (line {s.line}) has no registered step kind; known: "
                f"{', '.join(STEP_KINDS)}"
            )
        kinds.append((kind.order, kind, s))
    for _, kind, s in sorted(kinds, key=lambda k: k[0]):
        kind.run(state, s.params)

"""Workflow files: parsing, built-ins, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from eo_pipeline.errors import WorkflowError
from eo_pipeline.workflows.spec import builtin_workflows, load_workflow, parse_workflow

GOOD = """\
name: t
inputs:
  catalog: cat
  collections: [kazeosat2-l1]
  bbox: [50, 40, 90, 56]
steps:
  - calibrate: {to: toa_reflectance}
  - mask: {}
  - indices: {names: [NDVI], formulas: {MY: "(N - R) / (N + R + 0.5)"}}
  - composite: {method: median, period: 1MS}
output:
  catalog: out
resources: {chunk_size: 512, retries: 1}
"""


def test_parse_good(tmp_path: Path) -> None:
    f = tmp_path / "wf.yaml"
    f.write_text(GOOD)
    wf = load_workflow(f)
    assert [s.name for s in wf.steps] == ["calibrate", "mask", "indices", "composite"]
    assert wf.inputs.bbox == (50, 40, 90, 56)
    assert wf.resolve("out") == Path.cwd() / "out"  # built-in or not: the current directory
    assert wf.resources.retries == 1
    assert wf.params_hash() == load_workflow(f).params_hash()
    changed = parse_workflow(GOOD.replace("median", "bap"))
    assert changed.params_hash() != wf.params_hash()


def test_builtins_parse() -> None:
    names = builtin_workflows()
    assert {"toa-indices", "monthly-median", "kazeosat1-pansharpened"} <= set(names)
    for name in names:
        wf = load_workflow(name)
        assert wf.steps and wf.base_dir == Path.cwd()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            GOOD.replace("  - mask: {}", "  - maks: {}"),
            8,
            "unknown step 'maks' .*did you mean mask",
        ),
        (GOOD.replace("method: median", "method: mean"), 10, "'mean' is not one of"),
        (GOOD.replace("bbox: [50, 40, 90, 56]", "bbox: [50, 60, 90, 56]"), 5, "south must be"),
        (
            GOOD.replace("resources: {chunk_size: 512, retries: 1}", "resources: {chunk_size: 8}"),
            13,
            "at least 64",
        ),
        (GOOD.replace("  catalog: cat\n", ""), 2, "exactly one of"),
        (GOOD.replace("name: t\n", ""), 1, "missing required key 'name'"),
        ("name: [unclosed\n", 2, "not valid YAML"),
        (GOOD.replace("  - calibrate: {to: toa_reflectance}\n", ""), 6, "needs reflectance"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(WorkflowError, match=rf"^wf\.yaml:{line}: .*{message}"):
        parse_workflow(text, "wf.yaml")


def test_missing_file() -> None:
    with pytest.raises(WorkflowError, match="no such workflow file"):
        load_workflow("does-not-exist.yaml")

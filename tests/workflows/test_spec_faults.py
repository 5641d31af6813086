"""Workflow files written as attacks (issue #16 items 3 and 7) and a fuzzed parser.

Every bad workflow is refused by the parser with a WorkflowError naming the file and line,
before any unit runs; nothing else escapes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from eo_pipeline.errors import WorkflowError
from eo_pipeline.workflows.products import product_name
from eo_pipeline.workflows.spec import load_workflow, parse_workflow
from tests.strategies import mutated

BASE: dict[str, Any] = {
    "name": "t",
    "inputs": {"catalog": "cat", "collections": ["kazeosat2-l1"], "max_cloud_cover": 60},
    "steps": [{"calibrate": {"to": "toa_reflectance"}}, {"indices": {"names": ["NDVI"]}}],
    "output": {"catalog": "out", "naming": "{collection}_{unit}_{product}", "quicklook": True},
    "resources": {"chunk_size": 512, "retries": 1},
}


def _text(**changes: Any) -> str:
    doc = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        if key:
            doc[section][key] = value
        else:
            doc[section] = value
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"output__naming": "../../../escaped_{product}"}, None, "plain file name"),
        ({"output__naming": "/tmp/abs_{unit}_{product}"}, None, "plain file name"),
        ({"output__naming": "{nope}_{unit}_{product}"}, None, "{nope}"),
        ({"output__naming": "{product}"}, None, "{unit}"),
        ({"output__naming": "{unit}_{product!r:>{x}}"}, None, "naming"),
        ({"name": "../../evil"}, None, "not a workflow name"),
        ({"name": 12}, None, "not a workflow name"),
        ({"inputs__max_cloud_cover": "lots"}, None, "percentage"),
        ({"inputs__max_cloud_cover": 250}, None, "percentage"),
        ({"output__quicklook": "maybe"}, None, "true or false"),
        ({"output__catalog": ["a"]}, None, "folder path"),
    ],
)
def test_bad_fields_refused_at_parsing_with_line(
    tmp_path: Path, changes: dict[str, Any], key: None, words: str
) -> None:
    f = tmp_path / "wf.yaml"
    f.write_text(_text(**changes))
    section, _, field = next(iter(changes)).rpartition("__")
    text = f.read_text().splitlines()
    start = text.index(f"{section}:") if section else 0
    line = 1 + next(i for i in range(start, len(text)) if f"{field}:" in text[i])
    with pytest.raises(WorkflowError) as err:
        load_workflow(f)
    assert f"{f}:{line}:" in str(err.value) and words in str(err.value)


def test_non_utf8_file_is_a_workflow_error(tmp_path: Path) -> None:
    f = tmp_path / "wf.yaml"
    good = _text().encode()
    f.write_bytes(good + b"description: caf\xe9\n")
    line = good.count(b"\n") + 1
    with pytest.raises(WorkflowError, match=rf"wf.yaml:{line}: not UTF-8 text \(byte 0xe9"):
        load_workflow(f)


def test_alias_bomb_fails_fast(tmp_path: Path) -> None:
    """8 levels x 9 aliases took 160 s and 8.9 GB before failing; now bounded."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    f = tmp_path / "bomb.yaml"
    f.write_text(_text() + "\n".join(lines).replace("a0:", "description:", 1) + "\n")
    start = time.process_time()
    with pytest.raises(WorkflowError, match="expands to more than"):
        load_workflow(f)
    assert time.process_time() - start < 5  # CPU seconds; it was minutes (a bound, not a benchmark)


def test_product_names_stay_one_path_component() -> None:
    """Input catalogs name collections and items: a '/' or leading '.' cannot leave the folder."""
    from eo_pipeline.workflows.plan import Unit

    wf = parse_workflow(_text())
    unit = Unit("../x", "../../up", (), (), None, "")
    name = product_name(wf, unit, "NDVI")
    assert "/" not in name and not name.startswith(".")


FIELDS = [
    ("name",),
    ("inputs",),
    ("inputs", "catalog"),
    ("inputs", "collections"),
    ("inputs", "bbox"),
    ("inputs", "datetime"),
    ("inputs", "max_cloud_cover"),
    ("inputs", "ids"),
    ("steps",),
    ("output",),
    ("output", "catalog"),
    ("output", "naming"),
    ("output", "reflectance"),
    ("output", "quicklook"),
    ("output", "compress"),
    ("resources",),
    ("resources", "chunk_size"),
    ("resources", "retries"),
    ("resources", "workers"),
    ("resources", "max_composite_gpix"),
    ("description",),
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(BASE, FIELDS))
def test_fuzzed_workflow_parses_or_is_refused_with_a_line(doc: dict[str, Any]) -> None:
    try:
        wf = parse_workflow(yaml.safe_dump(doc), "fuzz.yaml")
    except WorkflowError as err:
        assert str(err).startswith("fuzz.yaml:")
        return
    assert isinstance(wf.name, str) and isinstance(wf.output.quicklook, bool)
    cloud = wf.inputs.max_cloud_cover
    assert cloud is None or 0 <= cloud <= 100

"""The public API: small, re-exported, and callable however its modules were imported."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import eo_pipeline

SAME_NAMED = [
    n for n, m in eo_pipeline._EXPORTS.items() if m == f"eo_pipeline.{n}" and n != "errors"
]


@pytest.mark.parametrize("name", SAME_NAMED)
def test_functions_stay_callable_after_submodule_import(name: str) -> None:
    importlib.import_module(f"eo_pipeline.{name}")  # Python then sets the module on the package
    assert callable(getattr(eo_pipeline, name))


def test_all_lists_the_exports_and_they_resolve() -> None:
    assert set(eo_pipeline.__all__) >= {"load", "calibrate", "masks", "compute_indices", "write"}
    for name in eo_pipeline.__all__:
        assert getattr(eo_pipeline, name) is not None


def test_cli_help_and_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "eo_pipeline.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in (
        "ingest",
        "validate",
        "simulate",
        "run",
        "publish",
        "serve",
        "customers",
        "demo",
    ):
        assert command in out
    bad = subprocess.run(
        [sys.executable, "-m", "eo_pipeline.cli", "simulate", "--sensor", "nope", "--catalog", "x"],
        capture_output=True,
        text=True,
    )
    assert (
        bad.returncode == 2 and "unknown sensor 'nope'" in bad.stderr and "kazeosat2" in bad.stderr
    )

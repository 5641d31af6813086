"""The public API: small, re-exported, and callable however its modules were imported."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import eo_pipeline

FUNCTIONS = [
    n for n, m in eo_pipeline._EXPORTS.items() if n[0].islower() and n not in ("errors", "sensors")
]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_functions_are_functions_whatever_was_imported(name: str) -> None:
    """No module is named like the function it defines, so importing a module never shadows one."""
    module = importlib.import_module(eo_pipeline._EXPORTS[name])
    assert module.__name__.rsplit(".", 1)[-1] != name
    assert callable(getattr(eo_pipeline, name))
    assert not isinstance(getattr(eo_pipeline, name), type(importlib))


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

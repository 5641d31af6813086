"""The README's Python examples run as written (the scientist's chain included)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [b for b in _blocks() if "pystac_client" not in b]  # the API one needs a server
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # our own README, not user input
    assert (tmp_path / "ndvi.tif").exists()
    median = namespace["median"]
    assert set(median.data_vars) >= {"NDVI", "NDWI"}  # type: ignore[attr-defined]
    assert "time" not in median.dims  # type: ignore[attr-defined]
    assert os.listdir(tmp_path / "cat")

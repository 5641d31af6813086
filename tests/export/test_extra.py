"""The export web stack is the optional `export` extra: not pulled by a plain install, and its
absence is one clear error naming the pip command."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ("stac-fastapi", "uvicorn", "httpx", "fastapi", "starlette")

# run code with the web stack made unimportable (sys.modules[name] = None blocks an import)
BLOCK = "import sys\nfor m in ('fastapi', 'uvicorn', 'httpx', 'stac_fastapi'):\n    sys.modules[m] = None\n"


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_plain_install_pulls_no_web_server() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    assert not [w for w in WEB if w in runtime], runtime
    export = " ".join(project["optional-dependencies"]["export"]).lower()
    assert all(w in export for w in ("stac-fastapi.api", "uvicorn", "httpx"))
    assert any("[export]" in d for d in project["optional-dependencies"]["dev"])
    assert "[dev,export]" in (ROOT / "Makefile").read_text()


def test_serve_without_the_extra_names_the_pip_command(tmp_path: Path) -> None:
    res = _run(
        "from eo_pipeline.cli import main\n"
        f"raise SystemExit(main(['serve', '--catalog', {str(tmp_path)!r}]))\n",
        tmp_path,
    )
    assert res.returncode == 2, res.stderr
    assert "pip install 'eo-pipeline[export]'" in res.stderr
    assert "Traceback" not in res.stderr


def test_publishing_side_needs_no_web_stack(tmp_path: Path) -> None:
    res = _run(
        "import eo_pipeline.export.publishing, eo_pipeline.export.api.index\n"
        "import eo_pipeline.export.api.customers, eo_pipeline.export.api.signing\n"
        "from eo_pipeline.export.api.index import open_index\n"
        "print('ok')\n",
        tmp_path,
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr

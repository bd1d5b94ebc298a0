"""docs/openapi.json is the live OpenAPI document, exported by scripts/openapi."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ecs.app import create_app
from ecs.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXPORTED = ROOT / "docs" / "openapi.json"
FIX = "docs/openapi.json is out of date with the API: run scripts/openapi and commit the result"


def test_exported_document_equals_the_live_one() -> None:
    """docs/openapi.json holds exactly what create_app(...).openapi() serves at /openapi.json."""
    live = json.loads(json.dumps(create_app(load_settings(None)).openapi()))
    assert json.loads(EXPORTED.read_text(encoding="utf-8")) == live, FIX


def test_export_script_reproduces_the_file_byte_for_byte(tmp_path: Path) -> None:
    """scripts/openapi writes sorted keys and a final newline, the same as the committed file."""
    out = tmp_path / "openapi.json"
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["sh", str(ROOT / "scripts" / "openapi"), str(out)], env=env, check=True)
    assert out.read_bytes().endswith(b"}\n")
    assert out.read_text(encoding="utf-8") == EXPORTED.read_text(encoding="utf-8"), FIX


def test_api_docs_cover_every_path() -> None:
    """docs/api.md has a section for every path of the OpenAPI document."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    paths = json.loads(EXPORTED.read_text(encoding="utf-8"))["paths"]
    for path, operations in paths.items():
        for method in operations:
            assert f"{method.upper()} {path}" in text, f"docs/api.md lacks {method.upper()} {path}"
    for extra in ("GET /metrics", "GET /docs", "GET /openapi.json"):
        assert extra in text


def test_api_docs_show_every_error_status() -> None:
    """docs/api.md shows an example answer for every error status ECS gives."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for status in (400, 401, 403, 404, 405, 413, 415, 429, 500, 503):
        assert f"HTTP/1.1 {status} " in text, f"docs/api.md has no example of a {status}"

"""``proctor demo``: the acceptance run of the whole product on one laptop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_data

pytestmark = pytest.mark.slow


def test_demo_reports_what_a_proctor_must_see(tmp_path: Path) -> None:
    require_data()
    report = tmp_path / "r.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "demo",
            "--exit-when-done",
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    students = json.loads(report.read_text())["students"]
    types = {s["scenario"]: [a["type"] for a in s["alerts"]] for s in students.values()}
    assert "FACE_MISMATCH" not in types["honest"]
    assert "FACE_MISMATCH" in types["impostor"]
    assert "MULTIPLE_FACES" in types["second_person"]
    assert "NO_FACE" in types["leaving"]
    for name, student in students.items():
        assert student["chunks_uploaded"] > 0, name
        assert student["results"] == student["chunks_uploaded"], name

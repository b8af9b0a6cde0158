"""The docs tell the truth about what an operator can set and run."""

from __future__ import annotations

from pathlib import Path

from proctoring.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented_in_operations() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    missing = [
        f"PROCTOR_{n.upper()}"
        for n in Settings.model_fields
        if f"`PROCTOR_{n.upper()}`" not in operations
    ]
    assert missing == []


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text()[:400]
    assert "make demo" in head and "make test" in head

"""The docs tell the truth about what an operator can set and run."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

from packaging.requirements import Requirement

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


def test_every_declared_dependency_says_why_it_is_there() -> None:
    """Each direct dependency (setup.cfg, requirements/*.in, package.json) has its reason
    in docs/dependencies.md, written as `name`."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    sections = [config["options"]["install_requires"], *config["options.extras_require"].values()]
    sections += [p.read_text(encoding="utf-8") for p in (ROOT / "requirements").glob("*.in")]
    names = {
        Requirement(line.split("#")[0].strip()).name
        for text in sections
        for line in text.splitlines()
        if line.split("#")[0].strip()
    }
    npm = json.loads((ROOT / "package.json").read_text())
    names |= {*npm.get("dependencies", {}), *npm.get("devDependencies", {})}
    documented = (ROOT / "docs" / "dependencies.md").read_text(encoding="utf-8").lower()
    missing = sorted(n for n in names if f"`{n.lower()}" not in documented)
    assert missing == []

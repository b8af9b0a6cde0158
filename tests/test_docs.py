"""The docs tell the truth about what an operator can set and run."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

from packaging.requirements import Requirement

from proctoring.metric_names import MetricName
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


def test_the_operations_metrics_table_names_exactly_the_declared_metrics() -> None:
    """Each row of docs/operations.md's metrics table names its metrics as `Name` in the first
    cell; together they are proctoring.metric_names, no more, no fewer."""
    lines = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("| metric | unit | dimensions | meaning |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1])
    documented = [name for cell in rows for name in re.findall(r"`(\w+)`", cell)]
    assert len(documented) == len(set(documented)), "a metric documented twice"
    assert sorted(set(documented) ^ {m.value for m in MetricName}) == []


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


_NAMED_TEST = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _defines(path: Path, test: str) -> bool:
    return path.is_file() and bool(
        re.search(rf"^(async )?def {test}\(", path.read_text(encoding="utf-8"), re.MULTILINE)
    )


def test_every_test_the_threat_model_names_exists() -> None:
    """docs/security.md proves each claim with `file::test`: every test it names is defined in
    that file, and every row of a table with a "proved by" column names at least one."""
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    named = set(_NAMED_TEST.findall(text))
    assert len(named) > 50
    assert sorted(f"{f}::{t}" for f, t in named if not _defines(ROOT / f, t)) == []
    lines = text.splitlines()
    unproved, proving = [], False
    for line, after in zip(lines, [*lines[1:], ""], strict=True):
        if not line.startswith("|"):
            proving = False
        elif after.startswith("| ---"):  # a header
            proving = line.rstrip(" |").endswith("proved by")
        elif (
            proving
            and not line.startswith("| ---")
            and not _NAMED_TEST.search(line.rsplit("|", 2)[1])
        ):
            unproved.append(line[:80])
    assert unproved == []

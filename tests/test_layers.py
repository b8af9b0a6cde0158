"""The core knows no deployable, and every package imports only what docs/architecture.md allows.

The imports are read from the source with ``ast`` (nothing is imported), at any
depth: a function's lazy import and a ``TYPE_CHECKING`` block count, and so does
``importlib.import_module("...")`` with a literal name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = "proctoring"
DEPLOYABLES = {"consumer", "lambdas", "producer", "dashboard", "infrastructure", "bench", "cli"}
_TABLE_HEADING = "## Packages and their allowed imports"


@dataclass(frozen=True)
class Import:
    module: str  # the importing file, relative to the root
    line: int
    name: str  # the imported module, absolute

    @property
    def package(self) -> str:
        return self.name.split(".")[0]

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.name}"


def imports_of(root: Path, package: str) -> list[Import]:
    """Every absolute import (relative ones resolved) in ``root/package``'s modules."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root)
        here = list(relative.parent.parts)  # the package a relative import starts from
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                names = [".".join([*base, *([node.module] if node.module else [])])]
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and not node.args[0].value.startswith(".")
            ):
                names = [node.args[0].value]
            found += [Import(relative.as_posix(), node.lineno, name) for name in names if name]
    return found


def project_packages(root: Path) -> set[str]:
    return {
        p.parent.name
        for p in root.glob("*/__init__.py")
        if p.parent.name != "tests" and not p.parent.name.startswith(".")
    }


def allowed_imports(architecture: str) -> dict[str, set[str]]:
    """The table under the heading: package -> the project's packages it may import."""
    section = architecture.split(_TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    for row in re.findall(r"^\| `(\w+)` \|(.*)\|\s*$", section, flags=re.MULTILINE):
        package, allowed = row
        table[package] = set(re.findall(r"`(\w+)`", allowed))
    return table


def violations(root: Path, table: dict[str, set[str]]) -> list[str]:
    """Imports of another project package that the table does not allow, and allowed
    imports no module makes (the table drawing more than the code does)."""
    packages = project_packages(root)
    problems = []
    for package in sorted(packages):
        allowed = table.get(package, set())
        used = set()
        for found in imports_of(root, package):
            if found.package not in packages or found.package == package:
                continue
            used.add(found.package)
            if found.package not in allowed:
                problems.append(f"{found} ({package} may import: {sorted(allowed) or 'nothing'})")
        problems += [
            f"{package} may import {unused} (docs/architecture.md) but no module of it does"
            for unused in sorted(allowed - used)
        ]
    return problems


def test_no_module_of_the_core_imports_a_deployable() -> None:
    found = [str(i) for i in imports_of(ROOT, CORE) if i.package in DEPLOYABLES]
    assert found == [], "the core (proctoring/) must not import a deployable:\n" + "\n".join(found)


def test_every_package_imports_what_the_architecture_table_allows_and_no_more() -> None:
    table = allowed_imports((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert set(table) == project_packages(ROOT), "the table lists every package, once"
    assert table[CORE] == set(), "the core may import no other package of the project"
    problems = violations(ROOT, table)
    assert problems == [], "\n".join(problems)


def test_the_check_names_the_module_and_the_import_it_catches(tmp_path: Path) -> None:
    """The scanner finds what a careless change would add: a lazy import in a function,
    a relative import, a TYPE_CHECKING import and import_module with a literal name."""
    core = tmp_path / "proctoring"
    (core / "sub").mkdir(parents=True)
    (core / "__init__.py").write_text("")
    (core / "sub" / "__init__.py").write_text("from ..storage import Tables\n")
    (core / "storage.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from consumer.worker import Worker\n"
        "def later():\n"
        "    import cli.services\n"
        "    importlib.import_module('lambdas.api')\n"
    )
    (tmp_path / "consumer").mkdir()
    (tmp_path / "consumer" / "__init__.py").write_text("import proctoring.storage\n")
    for name in ("cli", "lambdas"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")

    found = {str(i) for i in imports_of(tmp_path, "proctoring")}
    assert found == {
        "proctoring/sub/__init__.py:1 imports proctoring.storage",
        "proctoring/storage.py:1 imports typing",
        "proctoring/storage.py:3 imports consumer.worker",
        "proctoring/storage.py:5 imports cli.services",
        "proctoring/storage.py:6 imports lambdas.api",
    }
    problems = violations(
        tmp_path, {"proctoring": set(), "consumer": {"proctoring", "cli"}, "cli": set()}
    )
    assert problems == [
        "consumer may import cli (docs/architecture.md) but no module of it does",
        "proctoring/storage.py:3 imports consumer.worker (proctoring may import: nothing)",
        "proctoring/storage.py:5 imports cli.services (proctoring may import: nothing)",
        "proctoring/storage.py:6 imports lambdas.api (proctoring may import: nothing)",
    ]
